"""plan_images: reuse or build, parents first; the Plan value and its JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Sequence

import attrs
import pytest
from index_helpers import PAST
from plan_helpers import GECKO, NOW, params, seeded_task_ids
from tcschemas import errors
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.config import BuildConfig
from taskgraph_images.errors import IndexUnavailableError, PlanError
from taskgraph_images.index import IndexedTask, MemoryIndex, Usability, hash_namespace
from taskgraph_images.plan import Decision, Plan, plan_images

CHAIN = Path(__file__).resolve().parent / "data" / "plan_chain"


@pytest.fixture(scope="module")
def gecko() -> ImageCatalog:
    return ImageCatalog.load(GECKO)


@pytest.fixture(scope="module")
def chain() -> ImageCatalog:
    return ImageCatalog.load(CHAIN)


def plan(catalog: ImageCatalog, index: Any, config: BuildConfig | None = None, **kw: Any) -> Plan:
    kw.setdefault("task_ids", seeded_task_ids())
    kw.setdefault("explain", False)  # the lookup's reasons; explanations: test_explain.py
    return plan_images(catalog, kw.pop("params", params()), index, config, now=NOW, **kw)


def indexed(catalog: ImageCatalog, *names: str, level: int = 3, expired: bool = False) -> MemoryIndex:
    index = MemoryIndex()
    for name in names:
        index.record_build(level, name, catalog.digest(name), 1478546787)
    if expired:
        for name in names:
            entry = index.find_task(hash_namespace(level, name, catalog.digest(name)))
            assert entry is not None
            index.add_artifact(entry.task_id, expires=PAST)
    return index


class Counting:
    """Wraps a backend and counts the batch calls."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.find_calls: list[Sequence[str]] = []

    @property
    def description(self) -> str:
        return "counting"

    def find_tasks(self, namespaces: Sequence[str]) -> dict[str, IndexedTask]:
        self.find_calls.append(list(namespaces))
        return dict(self.inner.find_tasks(namespaces))

    def usable_artifacts(self, task_ids: Sequence[str], artifact: str) -> dict[str, Usability]:
        return dict(self.inner.usable_artifacts(task_ids, artifact))


class Broken:
    description = "broken index"

    def find_tasks(self, namespaces: Sequence[str]) -> dict[str, IndexedTask]:
        raise IndexUnavailableError("Index: connection refused")

    def usable_artifacts(self, task_ids: Sequence[str], artifact: str) -> dict[str, Usability]:
        raise AssertionError("not reached")


def test_empty_index_builds_every_task_image(gecko: ImageCatalog) -> None:
    p = plan(gecko, MemoryIndex())
    assert {n: d.action for n, d in p.decisions.items()} == {
        "base": "prebuilt",
        "builder": "build",
        "image_builder": "prebuilt",
        "tester": "build",
    }
    assert p["builder"].reason == "not indexed"


def test_decisions_are_parents_first(gecko: ImageCatalog) -> None:
    assert plan(gecko, MemoryIndex()).names() == gecko.order()


def test_child_of_a_built_parent_is_built_and_depends_on_it(gecko: ImageCatalog) -> None:
    p = plan(gecko, indexed(gecko, "tester"))
    tester = p["tester"]
    assert (tester.action, tester.reason) == ("build", "parent builder rebuilt")
    task = p.tasks[tester.task_id or ""]
    assert p["builder"].task_id in task["dependencies"]
    assert task["payload"]["env"]["DOCKER_IMAGE_PARENT_TASK"] == p["builder"].task_id


def test_indexed_image_is_reused_with_namespace_and_level(gecko: ImageCatalog) -> None:
    index = indexed(gecko, "builder")
    p = plan(gecko, index)
    builder = p["builder"]
    assert builder.action == "reuse"
    assert (builder.namespace, builder.level) == (hash_namespace(3, "builder", gecko.digest("builder")), 3)


def test_child_of_a_reused_parent_names_the_parent_task_but_does_not_depend(gecko: ImageCatalog) -> None:
    p = plan(gecko, indexed(gecko, "builder"))
    task = p.tasks[p["tester"].task_id or ""]
    assert task["dependencies"] == []
    assert task["payload"]["env"]["DOCKER_IMAGE_PARENT_TASK"] == p["builder"].task_id


def test_everything_indexed_means_no_tasks(gecko: ImageCatalog) -> None:
    p = plan(gecko, indexed(gecko, "builder", "tester"))
    assert p.tasks == {}
    assert {d.action for d in p.decisions.values()} == {"reuse", "prebuilt"}


def test_expired_artifact_is_rebuilt_and_says_so(gecko: ImageCatalog) -> None:
    p = plan(gecko, indexed(gecko, "builder", expired=True))
    assert (p["builder"].action, p["builder"].reason) == ("build", "artifact expired at level 3")


def test_level_3_plan_never_reuses_a_level_1_build(gecko: ImageCatalog) -> None:
    p = plan(gecko, indexed(gecko, "builder", level=1))
    assert p["builder"].action == "build"


def test_level_1_plan_reuses_a_level_3_build(gecko: ImageCatalog) -> None:
    p = plan(gecko, indexed(gecko, "builder", level=3), params=params(level=1))
    assert (p["builder"].action, p["builder"].level) == ("reuse", 3)


def test_index_is_asked_once_for_all_images(chain: ImageCatalog) -> None:
    counting = Counting(MemoryIndex())
    plan(chain, counting)
    assert len(counting.find_calls) == 1
    assert len(counting.find_calls[0]) == 3  # base, python, tools at level 3


def test_unreachable_index_raises_by_default(gecko: ImageCatalog) -> None:
    with pytest.raises(IndexUnavailableError):
        plan(gecko, Broken())


def test_unreachable_index_with_build_policy_builds_and_says_why(gecko: ImageCatalog) -> None:
    p = plan(gecko, Broken(), on_error="build")
    assert p["builder"].reason.startswith("index unavailable: ")
    assert p["builder"].index_error == "Index: connection refused"


def test_same_inputs_and_seed_give_the_same_plan(chain: ImageCatalog) -> None:
    assert plan(chain, MemoryIndex()).to_json() == plan(chain, MemoryIndex()).to_json()


def test_task_ids_come_from_the_injected_source(gecko: ImageCatalog) -> None:
    ids = iter(["Q2vWBHd8Rgu1dIUEtEfJ0Q", "aWqMYsuhQ6yvvKr-5DXpkw"])
    p = plan(gecko, MemoryIndex(), task_ids=lambda: next(ids))
    assert list(p.tasks) == ["Q2vWBHd8Rgu1dIUEtEfJ0Q", "aWqMYsuhQ6yvvKr-5DXpkw"]


def test_default_task_ids_are_nice_slugids(gecko: ImageCatalog) -> None:
    import uuid

    import slugid

    p = plan_images(gecko, params(), MemoryIndex(), now=NOW)
    assert p.tasks and len(set(p.tasks)) == len(p.tasks)
    for task_id in p.tasks:
        assert len(task_id) == 22 and not task_id.startswith("-")
        assert slugid.decode(task_id).version == 4
        assert isinstance(slugid.decode(task_id), uuid.UUID)


def test_repeated_task_id_is_a_plan_error(gecko: ImageCatalog) -> None:
    with pytest.raises(PlanError, match="twice"):
        plan(gecko, MemoryIndex(), task_ids=lambda: "Q2vWBHd8Rgu1dIUEtEfJ0Q")


def test_every_planned_task_validates(chain: ImageCatalog, gecko: ImageCatalog) -> None:
    for catalog in (chain, gecko):
        for task in plan(
            catalog, MemoryIndex(), params=params(decision_task_id="fXhVfPQPRBm5eXhvRl_2Mw")
        ).tasks.values():
            assert errors(task, "queue/v1/create-task-request.json") == []
            assert errors(task["payload"], "docker-worker/v1/payload.json") == []


def test_kind_config_symbol_and_args_reach_the_task(chain: ImageCatalog) -> None:
    p = plan(chain, MemoryIndex())
    task = p.tasks[p["python"].task_id or ""]
    assert task["extra"]["treeherder"]["symbol"] == "py"
    assert json.loads(task["payload"]["env"]["DOCKER_BUILD_ARGS"]) == {"PYTHON_VERSIONS": "3.13 3.12"}


def test_grandchild_of_a_rebuilt_image_is_rebuilt(chain: ImageCatalog) -> None:
    p = plan(chain, indexed(chain, "python", "tools"))
    assert [p[n].reason for n in ("base", "python", "tools")] == [
        "not indexed",
        "parent base rebuilt",
        "parent python rebuilt",
    ]


def test_prebuilt_image_builder_is_referenced_by_tag(gecko: ImageCatalog) -> None:
    p = plan(gecko, MemoryIndex())
    assert {t["payload"]["image"] for t in p.tasks.values()} == {"taskcluster/image_builder:1.0.0"}


def task_builder_tree(tmp_path: Path) -> ImageCatalog:
    make_tree(
        tmp_path,
        {
            "taskcluster/docker/image_builder/Dockerfile": "FROM debian:12\n",
            "taskcluster/docker/app/Dockerfile": "FROM debian:12\nRUN true\n",
        },
    )
    return ImageCatalog.load(tmp_path)


def test_built_image_builder_needs_a_bootstrap(tmp_path: Path) -> None:
    with pytest.raises(PlanError, match="image-builder-bootstrap"):
        plan(task_builder_tree(tmp_path), MemoryIndex())


def test_built_image_builder_goes_first_and_others_depend_on_it(tmp_path: Path) -> None:
    config = BuildConfig(image_builder_bootstrap="taskcluster/image_builder:0.1.0")
    p = plan(task_builder_tree(tmp_path), MemoryIndex(), config)
    builder_id = p["image_builder"].task_id
    assert next(iter(p.tasks)) == builder_id
    assert p.tasks[builder_id or ""]["payload"]["image"] == "taskcluster/image_builder:0.1.0"
    app = p.tasks[p["app"].task_id or ""]
    assert app["dependencies"] == [builder_id]
    assert app["payload"]["image"] == {
        "type": "task-image",
        "path": "public/image.tar.zst",
        "taskId": builder_id,
    }


def test_reused_image_builder_is_a_task_image_without_dependency(tmp_path: Path) -> None:
    catalog = task_builder_tree(tmp_path)
    p = plan(catalog, indexed(catalog, "image_builder"))
    app = p.tasks[p["app"].task_id or ""]
    assert app["dependencies"] == []
    assert app["payload"]["image"]["taskId"] == p["image_builder"].task_id


def test_unknown_image_builder_is_a_plan_error(gecko: ImageCatalog) -> None:
    with pytest.raises(PlanError, match="image builder 'nope'.*known images: base"):
        plan(gecko, MemoryIndex(), BuildConfig(image_builder="nope"))


def test_image_builder_may_be_a_registry_tag(gecko: ImageCatalog) -> None:
    p = plan(gecko, MemoryIndex(), BuildConfig(image_builder="mozilla/builder:3"))
    assert {t["payload"]["image"] for t in p.tasks.values()} == {"mozilla/builder:3"}


def test_params_mapping_is_validated(gecko: ImageCatalog) -> None:
    from taskgraph_images.errors import ParamsError

    with pytest.raises(ParamsError, match="level"):
        plan(gecko, MemoryIndex(), params={"level": 4})


def test_task_id_for_image_and_references(gecko: ImageCatalog) -> None:
    p = plan(gecko, MemoryIndex())
    assert p.task_id_for_image("builder") == p["builder"].task_id
    assert p.docker_image("base") == "taskcluster/base:0.1.7"
    assert p.image_reference("base") == "taskcluster/base:0.1.7"
    assert p.image_reference("builder") == {
        "type": "task-image",
        "path": "public/image.tar.zst",
        "taskId": p["builder"].task_id,
    }


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda p: p.task_id_for_image("base"), "prebuilt"),
        (lambda p: p.docker_image("builder"), "task image"),
        (lambda p: p.image_reference("nope"), r"unknown image 'nope' \(known images: base, builder"),
    ],
)
def test_wrong_lookups_are_plan_errors(gecko: ImageCatalog, call: Callable[[Plan], Any], match: str) -> None:
    with pytest.raises(PlanError, match=match):
        call(plan(gecko, MemoryIndex()))


def test_json_round_trips(chain: ImageCatalog) -> None:
    p = plan(chain, indexed(chain, "base"))
    assert Plan.from_json(p.to_json()) == p


def test_plan_is_frozen(gecko: ImageCatalog) -> None:
    p = plan(gecko, MemoryIndex())
    with pytest.raises(TypeError):
        p.decisions["x"] = p["base"]  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        p.artifact = "x"  # type: ignore[misc]


def _doc(gecko: ImageCatalog) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(plan(gecko, MemoryIndex()).to_json())
    return result


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("format"),
        lambda d: d.update(images=[]),
        lambda d: d["params"].pop("level"),
        lambda d: d["images"]["builder"].update(action="maybe"),
        lambda d: d["images"]["builder"].update(extra=1),
        lambda d: d["images"]["base"].pop("docker_image"),
        lambda d: d["tasks"].clear(),
        lambda d: d["images"]["builder"].update(name="x"),
    ],
)
def test_malformed_plan_file_is_a_plan_error(
    gecko: ImageCatalog, mutate: Callable[[dict[str, Any]], Any]
) -> None:
    doc = _doc(gecko)
    mutate(doc)
    with pytest.raises(PlanError, match="not a"):
        Plan.from_json(json.dumps(doc))


@pytest.mark.parametrize("text", ["", "[]", "{", "null", b"\xff\xfe"])
def test_non_plan_text_is_a_plan_error(text: Any) -> None:
    with pytest.raises(PlanError, match="not a plan"):
        Plan.from_json(text)


def test_decision_json_leaves_out_empty_fields() -> None:
    assert Decision("a", "build", "0" * 64, task_id="x").to_json() == {
        "name": "a",
        "action": "build",
        "digest": "0" * 64,
        "task_id": "x",
        "reason": "",
    }


def test_taskcluster_index_plan_batches_lookups(chain: ImageCatalog, tc_server: Any, tc_index: Any) -> None:
    task_id = tc_server.add_task()
    tc_server.index_task(hash_namespace(3, "base", chain.digest("base")), task_id)
    p = plan(chain, tc_index)
    assert (p["base"].action, p["base"].task_id) == ("reuse", task_id)
    assert tc_server.count("findTask") == 0
    assert tc_server.count("findTasksAtIndex") == 1


def test_a_taskcluster_plan_without_a_queue_warns_as_the_cli_refuses(
    gecko: ImageCatalog, tc_server: Any
) -> None:
    """Without a config, the build tasks go to the local default queue: a plan
    for a real Taskcluster's index says so in its warnings (the CLI refuses it)."""
    from tcserver import make_index

    done = plan(gecko, make_index(tc_server))
    assert {t["taskQueueId"] for t in done.tasks.values()} == {"taskgraph-images-local/run-task"}
    assert done.warnings == (
        "task-queue-id is not set (at level 3), but the plan is for the Taskcluster of its "
        "index: add the line `task-queue-id: \"{trust-domain}-{level}/images\"` to "
        "taskcluster/taskgraph-images.yml; the build tasks go to "
        "taskgraph-images-local/run-task, which only `taskgraph-images run-task` serves",
    )
    config = BuildConfig(task_queue_id="proj-{level}/images")
    done = plan(gecko, make_index(tc_server), config)
    assert {t["taskQueueId"] for t in done.tasks.values()} == {"proj-3/images"}
    assert done.warnings == ()
    assert plan(gecko, MemoryIndex()).warnings == ()


# -- the pure core -------------------------------------------------------------------


def _in_memory_catalog() -> ImageCatalog:
    """Three task images and a prebuilt one, with no tree behind them: the root does not exist."""
    from taskgraph_images.catalog import Image

    def image(name: str, parent: str | None = None, version: str | None = None) -> Image:
        base = parent or "ubuntu:22.04"
        return Image(name, f"taskcluster/docker/{name}", version, "taskcluster" if version else None,
                     parent, base, parents=(parent,) if parent else ())

    images = [image("image_builder"), image("base"), image("app", "base"), image("tool", version="1.0")]
    return ImageCatalog("/nonexistent/repository", "taskcluster/docker",
                        {i.name: i for i in images})


def test_decide_makes_decisions_and_tasks_from_digests_and_lookups_alone() -> None:
    from taskgraph_images.index import Found, Lookup
    from taskgraph_images.plan import decide

    catalog = _in_memory_catalog()
    digests = {"image_builder": "1" * 64, "base": "2" * 64, "app": "3" * 64, "tool": "4" * 64}
    builder_task, base_task = "Rk3nA5J-Qb2zUa0SyrRlYw", "Sc1Wg8jYRZ-7z1Gm7p9M8w"
    lookups = {
        "image_builder": Lookup("image_builder", "1" * 64, 3,
                                Found(builder_task, "ns.builder", 3), "found at level 3"),
        "base": Lookup("base", "2" * 64, 3, Found(base_task, "ns.base", 3), "found at level 3"),
        "app": Lookup("app", "3" * 64, 3, None, "not indexed"),
    }
    ids = seeded_task_ids()
    app_task = seeded_task_ids()()

    plan = decide(catalog, digests, lookups, params(), BuildConfig(), task_ids=ids, now=NOW)

    assert [(d.name, d.action, d.task_id, d.reason) for d in plan.decisions.values()] == [
        ("base", "reuse", base_task, "found at level 3"),
        ("app", "build", app_task, "not indexed"),
        ("image_builder", "reuse", builder_task, "found at level 3"),
        ("tool", "prebuilt", None, "registry tag taskcluster/tool:1.0"),
    ]
    assert list(plan.tasks) == [app_task]
    task = plan.tasks[app_task]
    assert task["dependencies"] == []  # its parent and the image builder are reused: built already
    assert task["payload"]["image"] == {"type": "task-image", "path": "public/image.tar.zst",
                                        "taskId": builder_task}
    assert task["payload"]["env"]["HASH"] == "3" * 64
    assert plan.warnings == ()


def test_decide_builds_below_a_rebuilt_parent_and_runs_the_explanation_before_the_tasks() -> None:
    from taskgraph_images.index import Lookup
    from taskgraph_images.plan import decide

    catalog = _in_memory_catalog()
    digests = {"image_builder": "1" * 64, "base": "2" * 64, "app": "3" * 64, "tool": "4" * 64}
    lookups = {name: Lookup(name, digests[name], 3, None, "not indexed")
               for name in ("image_builder", "base", "app")}
    seen: list[list[str]] = []

    def explain(decisions: dict[str, Decision]) -> tuple[str, ...]:
        seen.append([d.name for d in decisions.values() if d.action == "build"])
        return ("one warning",)

    config = BuildConfig(image_builder_bootstrap="example/bootstrap:1")
    plan = decide(catalog, digests, lookups, params(), config, task_ids=seeded_task_ids(),
                  now=NOW, explain=explain)

    assert seen == [["base", "app", "image_builder"]]
    assert plan.warnings == ("one warning",)
    assert plan["app"].reason == "parent base rebuilt"
    builder_id, base_id, app_id = (plan[n].task_id for n in ("image_builder", "base", "app"))
    assert list(plan.tasks) == [builder_id, base_id, app_id]  # the image builder's build first
    assert plan.tasks[app_id]["dependencies"] == [builder_id, base_id]
    assert plan.tasks[builder_id]["payload"]["image"] == "example/bootstrap:1"


def test_plan_images_is_decide_after_hashing_and_the_lookup(gecko: ImageCatalog) -> None:
    from taskgraph_images.index import find_images
    from taskgraph_images.plan import decide

    index = indexed(gecko, "base", level=3)
    shell = plan(gecko, index)
    task_images = [n for n in gecko.order() if not gecko[n].prebuilt]
    digests = {n: gecko.digest(n) for n in gecko.order()}
    lookups = find_images(index, [(n, digests[n]) for n in task_images if gecko[n].cache], 3)
    core = decide(gecko, digests, lookups, params(), BuildConfig(), task_ids=seeded_task_ids(),
                  now=NOW)
    assert core.to_json() == shell.to_json()


def test_importing_the_plan_loads_no_index_backend_nor_manifest() -> None:
    """A decision task that plans pays for the decision path only: the index
    backends, SQLite, the Taskcluster client and the manifests load when used."""
    from importcheck import modules_added_by

    added = modules_added_by("import taskgraph_images.plan")
    assert "taskgraph_images.plan" in added
    assert not added & {"sqlite3", "taskcluster", "requests", "yaml", "taskgraph_images.manifest",
                        "taskgraph_images.index.local", "taskgraph_images.index.memory",
                        "taskgraph_images.index.taskcluster", "taskgraph_images.index._base"}
