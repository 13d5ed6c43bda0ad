"""Trust between levels, at the plan level, on every backend.

A level is the trust of a push: 1 (try, anyone with commit access to try),
2 (project branches), 3 (mozilla-central and release branches). A plan looks
images up at its own level and then the levels above it, never below, so a
level-1 push can never place the image a level-3 push runs. Here the same
digest is indexed at several levels, the level-1 entry by a "malicious" task,
and the whole plan (decisions, build tasks, their parent and builder
references) is checked never to mention a task from below the plan's level.

Then, a property over levels and image names: every build task a plan makes
writes index routes, and holds route scopes, only under
``index.docker.images.v2.level-{its level}.``.
"""

from __future__ import annotations

import itertools
import re
import tempfile
from pathlib import Path
from typing import Any, Optional

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from index_helpers import BACKENDS, Plant, make_backend
from plan_helpers import NOW, params, seeded_task_ids
from tcserver import TCServer
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.config import BuildConfig
from taskgraph_images.index import MemoryIndex, hash_namespace
from taskgraph_images.plan import Plan, plan_images

D = "taskcluster/docker"
BOOTSTRAP = "taskcluster/image_builder:0.1.0"
LEVELS = (1, 2, 3)
#: Every subset of the levels an image can be indexed at.
PLANTINGS = [frozenset(c) for n in range(4) for c in itertools.combinations(LEVELS, n)]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> ImageCatalog:
    """``image_builder`` and ``app`` (task images), ``child`` (FROM app, never indexed)."""
    root = make_tree(
        tmp_path_factory.mktemp("repo"),
        {
            f"{D}/image_builder/Dockerfile": "FROM debian:12\nRUN echo builder\n",
            f"{D}/app/Dockerfile": "FROM debian:12\nRUN echo app\n",
            f"{D}/child/Dockerfile": "FROM app\nRUN echo child\n",
        },
    )
    return ImageCatalog.load(root)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Plant]:
    server: Optional[TCServer] = None
    if request.param == "taskcluster":
        server = request.getfixturevalue("tc_server")
    return make_backend(request.param, tmp_path, server)


def make_plan(catalog: ImageCatalog, index: Any, level: int) -> Plan:
    config = BuildConfig(image_builder_bootstrap=BOOTSTRAP)
    # The lookup's reasons; the explanations' trust rule: test_explain.py.
    return plan_images(catalog, params(level=level), index, config, task_ids=seeded_task_ids(),
                       now=NOW, explain=False)


def nearest_at_or_above(level: int, planted: frozenset[int]) -> Optional[int]:
    """The trust rule: the plan's own level first, then each higher one; never lower."""
    return next((lv for lv in range(level, 4) if lv in planted), None)


@pytest.mark.parametrize("planted", PLANTINGS, ids=lambda p: "levels-" + "".join(map(str, sorted(p))))
def test_plans_use_their_own_level_then_higher_ones_and_never_a_lower_one(
    backend: tuple[Any, Plant], catalog: ImageCatalog, planted: frozenset[int]
) -> None:
    index, plant = backend
    tasks: dict[str, dict[int, str]] = {
        name: {lv: plant(lv, name, catalog.digest(name)) for lv in sorted(planted)}
        for name in ("image_builder", "app")
    }
    for level in LEVELS:
        plan = make_plan(catalog, index, level)
        text = plan.to_json()
        below = [t for name in tasks for lv, t in tasks[name].items() if lv < level]
        assert not [t for t in below if t in text], f"level-{level} plan names a lower-level task"
        expected = nearest_at_or_above(level, planted)
        for name in ("image_builder", "app"):
            decision = plan[name]
            if expected is None:
                assert (decision.action, decision.reason) == ("build", "not indexed")
            else:
                assert (decision.action, decision.level) == ("reuse", expected)
                assert decision.task_id == tasks[name][expected]
                assert decision.namespace == hash_namespace(expected, name, catalog.digest(name))
        child = plan.tasks[plan["child"].task_id or ""]
        assert child["payload"]["env"]["DOCKER_IMAGE_PARENT_TASK"] == plan["app"].task_id
        assert child["payload"]["image"]["taskId"] == plan["image_builder"].task_id


@pytest.mark.parametrize(("level_1", "level_2", "expected"), [
    ({"state": "failed"}, {}, 2),
    ({"artifact": "expired"}, {"artifact": "missing"}, 3),
    ({"state": "exception"}, {"state": "running"}, 3),
])
def test_level_1_plan_skips_its_unusable_entries_for_the_next_level_up(
    backend: tuple[Any, Plant], catalog: ImageCatalog, level_1: dict[str, str],
    level_2: dict[str, str], expected: int,
) -> None:
    index, plant = backend
    digest = catalog.digest("app")
    tasks = {1: plant(1, "app", digest, **level_1), 2: plant(2, "app", digest, **level_2),
             3: plant(3, "app", digest)}
    decision = make_plan(catalog, index, 1)["app"]
    assert (decision.action, decision.level, decision.task_id) == ("reuse", expected, tasks[expected])
    assert decision.reason.startswith(f"indexed at level {expected} (")


def test_a_malicious_level_1_entry_never_reaches_a_level_3_build_through_its_parent(
    backend: tuple[Any, Plant], catalog: ImageCatalog
) -> None:
    index, plant = backend
    malicious = plant(1, "app", catalog.digest("app"))
    plan = make_plan(catalog, index, 3)
    assert plan["app"].action == "build" and plan["child"].action == "build"
    assert malicious not in plan.to_json()
    child = plan.tasks[plan["child"].task_id or ""]
    assert child["dependencies"][-1] == plan["app"].task_id


# -- routes and scopes of generated tasks ------------------------------------------------

image_names = st.from_regex(r"[a-z][a-z0-9_-]{0,15}", fullmatch=True).filter(
    lambda n: n != "image_builder"
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    level=st.sampled_from(LEVELS),
    names=st.lists(image_names, min_size=1, max_size=4, unique=True),
    chained=st.booleans(),
    exact=st.booleans(),
    indexed_at=st.dictionaries(st.integers(0, 3), st.sampled_from(LEVELS), max_size=3),
)
def test_build_task_routes_and_scopes_stay_within_the_plans_level(
    level: int, names: list[str], chained: bool, exact: bool, indexed_at: dict[int, int]
) -> None:
    files = {f"{D}/image_builder/Dockerfile": "FROM debian:12\n",
             f"{D}/image_builder/VERSION": "1.0\n", f"{D}/REGISTRY": "taskcluster\n"}
    for i, name in enumerate(names):
        base = names[i - 1] if chained and i else "debian:12"
        files[f"{D}/{name}/Dockerfile"] = f"FROM {base}\nRUN echo {name}\n"
    with tempfile.TemporaryDirectory() as tmp:
        catalog = ImageCatalog.load(make_tree(Path(tmp), files))
        index = MemoryIndex()
        for i, other_level in indexed_at.items():  # some images are reused, from any level
            if i < len(names):
                index.record_build(other_level, names[i], catalog.digest(names[i]), 0)
        plan = plan_images(catalog, params(level=level), index, BuildConfig(exact_route_scopes=exact),
                           task_ids=seeded_task_ids(), now=NOW)
    head = f"index.docker.images.v2.level-{level}."
    assert plan.tasks or all(d.action != "build" for d in plan.decisions.values())
    for task in plan.tasks.values():
        name = task["extra"]["imageMeta"]["imageName"]
        index_routes = [r for r in task["routes"] if r.startswith("index.")]
        assert len(index_routes) == 3
        assert all(r.startswith(f"{head}{name}.") for r in index_routes)
        for scope in task["scopes"]:
            if scope.startswith("queue:route:index."):
                assert scope.startswith(f"queue:route:{head}")
                assert exact or scope == f"queue:route:{head}*"
            elif scope.startswith("docker-worker:cache:"):
                assert re.fullmatch(rf"docker-worker:cache:level-{level}-[a-z0-9-]+", scope)
            else:
                assert not scope.startswith("queue:route:index")
        assert task["extra"]["imageMeta"]["level"] == level
