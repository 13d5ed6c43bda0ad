"""With ``cache-keys: taskgraph`` the plan and ``why`` explain builds from taskgraph's own
``latest`` namespaces, on every backend, under the same trust rule as the seed keys."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import manifest_helpers
import pytest
from manifest_helpers import BUILDER, KIND, PUSHDATE, TREE
from plan_helpers import NOW, params, seeded_task_ids
from tcserver import TCServer
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.cli import main
from taskgraph_images.config import BuildConfig
from taskgraph_images.explain import FIRST_BUILD
from taskgraph_images.keys.taskgraph import index_routes
from taskgraph_images.manifest import ContextManifest, build_manifest
from taskgraph_images.plan import Plan, plan_images

TRUST = "myproject"
CONFIG = BuildConfig(image_builder="taskcluster/image_builder:4.0.0", cache_keys="taskgraph",
                     trust_domain=TRUST, task_queue_id="{trust-domain}-{level}/images")
CONFIG_YML = f"cache-keys: taskgraph\ntrust-domain: {TRUST}\n" \
             "image-builder: taskcluster/image_builder:4.0.0\n"
IMAGES = ("base", "builder", "image_builder")


def taskgraph_namespaces(level: int, name: str, digest: str) -> list[str]:
    """Where taskgraph indexes a push's build of ``name`` (its routes without ``index.``)."""
    routes = index_routes(TRUST, name, digest, level=level, tasks_for="github-push",
                          build_date=PUSHDATE)
    return [r.removeprefix("index.") for r in routes]


class Backend(manifest_helpers.Backend):
    """An index of one kind, and builds recorded in it as taskgraph's build tasks index them."""

    def record(self, level: int, manifest: ContextManifest, data: Any = "", *,
               rank: float = 0, state: str = "completed",
               namespaces: Optional[Sequence[str]] = None) -> str:
        if namespaces is None:
            namespaces = taskgraph_namespaces(level, manifest.image, manifest.digest)
        return super().record(level, manifest, data, rank=rank, state=state,
                              namespaces=namespaces)


@pytest.fixture(params=["memory", "local", "taskcluster"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    server = request.getfixturevalue("tc_server") if request.param == "taskcluster" else None
    return Backend(request.param, tmp_path, server)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "repo", TREE)


def load(repo: Path) -> ImageCatalog:
    return ImageCatalog.load(repo, cache_keys="taskgraph")


def record_tree(backend: Backend, repo: Path, level: int = 3) -> dict[str, str]:
    catalog = load(repo)
    return {n: backend.record(level, build_manifest(catalog, n)) for n in IMAGES}


def make_plan(repo: Path, backend: Backend, level: int = 3, **kw: Any) -> Plan:
    return plan_images(load(repo), params(level=level, **kw), backend.index, CONFIG,
                       task_ids=seeded_task_ids(), now=NOW)


def reasons(plan: Plan) -> dict[str, str]:
    return {n: d.reason for n, d in plan.decisions.items() if d.action == "build"}


def edit(repo: Path, path: str, text: Optional[str]) -> None:
    if text is None:
        (repo / path).unlink()
    else:
        make_tree(repo, {path: text})


# A taskgraph context holds the image's folder at its root: members are named as there.
CHANGES: list[tuple[str, Callable[[Path], None], dict[str, str]]] = [
    ("change-a-file", lambda r: edit(r, f"{BUILDER}/build.sh", "echo new\n"), {
        "builder": "not indexed; 1 file changed (build.sh), 0 added, 0 removed"}),
    ("add-one", lambda r: edit(r, f"{BUILDER}/new.sh", "echo added\n"), {
        "builder": "not indexed; 1 file changed, 1 added, 0 removed"}),
    ("remove-one", lambda r: edit(r, f"{BUILDER}/lib.sh", None), {
        "builder": "not indexed; 1 file changed, 0 added, 1 removed"}),
    ("move-one", lambda r: shutil.move(str(r / BUILDER / "lib.sh"),
                                       str(r / BUILDER / "zz-lib.sh")), {
        "builder": "not indexed; 1 file changed, 0 added, 0 removed, 1 moved "
                   "(lib.sh -> zz-lib.sh)"}),
    ("change-an-arg", lambda r: edit(r, "taskcluster/kinds/docker-image/kind.yml",
                                     KIND.format(versions="3.13")), {
        "builder": "not indexed; args changed: PYTHON_VERSIONS"}),
    ("change-the-parent", lambda r: edit(r, "taskcluster/docker/base/setup.sh", "echo 2\n"), {
        "base": "not indexed; 1 file changed (setup.sh), 0 added, 0 removed",
        "builder": "parent base rebuilt (its 1 file changed)"}),
]


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _, c, e in CHANGES],
                         ids=[i for i, _, _ in CHANGES])
def test_each_change_is_explained_from_taskgraphs_latest_namespace(
    backend: Backend, repo: Path, change: Callable[[Path], None], expected: dict[str, str]
) -> None:
    earlier = record_tree(backend, repo)
    change(repo)
    plan = make_plan(repo, backend)
    assert reasons(plan) == expected
    assert plan.warnings == ()
    for name in expected:
        assert plan[name].compared_with == earlier[name]
        assert plan[name].changes is not None
    assert plan["image_builder"].action == "reuse"


def test_an_image_taskgraph_never_built_is_a_first_build(backend: Backend, repo: Path) -> None:
    plan = make_plan(repo, backend)
    assert reasons(plan) == {"base": f"not indexed; {FIRST_BUILD}",
                             "builder": f"parent base rebuilt; {FIRST_BUILD}",
                             "image_builder": f"not indexed; {FIRST_BUILD}"}


def test_a_lower_levels_build_is_never_compared_against(backend: Backend, repo: Path) -> None:
    record_tree(backend, repo, level=1)
    edit(repo, f"{BUILDER}/build.sh", "echo new\n")
    assert reasons(make_plan(repo, backend, level=3)) == {
        "base": f"not indexed; {FIRST_BUILD}", "builder": f"parent base rebuilt; {FIRST_BUILD}",
        "image_builder": f"not indexed; {FIRST_BUILD}"}
    # A level-1 push trusts them: base is reused, builder compared against.
    assert reasons(make_plan(repo, backend, level=1)) == {
        "builder": "not indexed; 1 file changed (build.sh), 0 added, 0 removed"}


def test_a_higher_levels_build_is_compared_against_and_the_highest_rank_wins(
    backend: Backend, repo: Path
) -> None:
    catalog = load(repo)
    old = {n: build_manifest(catalog, n) for n in IMAGES}
    edit(repo, f"{BUILDER}/lib.sh", "echo lib2\n")
    newer = build_manifest(load(repo), "builder")
    backend.record(2, old["builder"], rank=1)
    best = backend.record(3, newer, rank=5)
    edit(repo, f"{BUILDER}/build.sh", "echo new\n")
    plan = make_plan(repo, backend, level=2)
    assert plan["builder"].compared_with == best
    assert plan["builder"].reason.endswith("1 file changed (build.sh), 0 added, 0 removed")


def test_a_pull_request_compares_with_the_pushes_builds(backend: Backend, repo: Path) -> None:
    earlier = record_tree(backend, repo, level=1)
    edit(repo, f"{BUILDER}/build.sh", "echo new\n")
    plan = make_plan(repo, backend, level=1, tasks_for="github-pull-request")
    assert plan["builder"].compared_with == earlier["builder"]
    assert plan["builder"].reason == "not indexed; 1 file changed (build.sh), 0 added, 0 removed"


def test_only_the_built_images_manifests_are_fetched(
    tc_server: TCServer, repo: Path, tmp_path: Path
) -> None:
    backend = Backend("taskcluster", tmp_path, tc_server)
    record_tree(backend, repo)
    edit(repo, f"{BUILDER}/build.sh", "echo new\n")
    counts = {}
    for explain in (False, True):
        tc_server.requests.clear()
        plan = plan_images(load(repo), params(level=3), backend.index, CONFIG,
                           task_ids=seeded_task_ids(), now=NOW, explain=explain)
        assert [n for n, d in plan.decisions.items() if d.action == "build"] == ["builder"]
        counts[explain] = {e: tc_server.count(e) for e in set(tc_server.requests)}
    # The latest namespaces go in the plan's one findTasksAtIndex; only the
    # built image's manifest is downloaded (getLatestArtifact, then its blob),
    # never those of base and the image builder, which are reused.
    assert counts[True] == {**counts[False], "getLatestArtifact": 1, "blob": 1}
    assert counts[False]["findTasksAtIndex"] == 1


# -- why NAME -----------------------------------------------------------------------------------


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_why_reads_taskgraphs_latest_namespace(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path
) -> None:
    backend = Backend("local", tmp_path, None)
    tasks = record_tree(backend, repo, level=2)
    before = load(repo).digest("builder")
    edit(repo, f"{BUILDER}/build.sh", "echo new\n")
    make_tree(repo, {"taskcluster/taskgraph-images.yml": CONFIG_YML})
    argv = ["why", "builder", "--root", str(repo), "--index", f"local:{backend.index.path}"]
    assert main([*argv, "--level", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "builder: 1 file changed (build.sh), 0 added, 0 removed",
        f"compared with task {tasks['builder']} (level 2)",
        f"digest   {before[:12]} -> {load(repo).digest('builder')[:12]}",
        f"changed  build.sh  {sha(b'echo build' + bytes([10]))[:12]} -> "
        f"{sha(b'echo new' + bytes([10]))[:12]}",
    ]
    assert main([*argv, "--level", "3", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"image": "builder",
                                                   "explanation": FIRST_BUILD}


def test_the_prefetch_tells_reused_from_built_by_the_plans_own_search(
    repo: Path, tmp_path: Path
) -> None:
    """Given taskgraph's search, an image indexed under taskgraph's ``hash`` namespace is
    reused, so its manifest is not fetched ahead; this library's search would miss it."""
    from taskgraph_images.explain import Prefetch
    from taskgraph_images.keys.indexkeys import IndexKeys

    backend = Backend("memory", tmp_path, None)
    tasks = record_tree(backend, repo)
    digest = load(repo).digest("base")
    keys = IndexKeys.for_config(CONFIG)
    asked: list[list[str]] = []
    read = backend.index.read_artifacts

    def counting(task_ids: Any, name: str, *, limit: int) -> Any:
        asked.append(list(task_ids))
        return read(task_ids, name, limit=limit)

    backend.index.read_artifacts = counting
    namespaces = [c.namespace for c in keys.search("base", digest, 3)]
    for search, fetched in ((keys.search, []), (None, [[tasks["base"]]])):
        asked.clear()
        prefetch = Prefetch(backend.index, [("base", digest, [])], 3, search=search,
                            latest_order=keys.latest)
        assert prefetch.find_tasks(namespaces)
        prefetch.explain({})
        assert asked == fetched
