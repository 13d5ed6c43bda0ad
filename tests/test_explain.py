"""The plan explains every build from the last trusted build's manifest, on every backend."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Callable, Optional

import attrs
import pytest
from manifest_helpers import BUILDER, KIND, PUSHDATE, TREE, Backend
from plan_helpers import NOW, params, seeded_task_ids
from tcserver import TCServer, make_index
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.config import BuildConfig
from taskgraph_images.explain import (
    FIRST_BUILD,
    NO_INDEX,
    NO_MANIFEST,
    Explanation,
    Explanations,
    Prefetch,
    explain_builds,
    latest_candidates,
)
from taskgraph_images.index import LocalIndex, MemoryIndex, index_namespaces
from taskgraph_images.manifest import (
    DEFAULT_MANIFEST_ARTIFACT,
    MAX_MANIFEST_BYTES,
    ContextManifest,
    build_manifest,
)
from taskgraph_images.plan import Plan, plan_images


@pytest.fixture(params=["memory", "local", "taskcluster"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Backend:
    server = request.getfixturevalue("tc_server") if request.param == "taskcluster" else None
    return Backend(request.param, tmp_path, server)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "repo", TREE)


def load(repo: Path) -> ImageCatalog:
    return ImageCatalog.load(repo)


def record_tree(backend: Backend, repo: Path, level: int = 3) -> dict[str, str]:
    catalog = load(repo)
    return {n: backend.record(level, build_manifest(catalog, n)) for n in ("base", "builder")}


def make_plan(repo: Path, backend: Backend, level: int = 3, **kw: Any) -> Plan:
    # A real queue, as a plan for Taskcluster's index has (else a warning says so).
    kw.setdefault("config", BuildConfig(task_queue_id="proj-{level}/images"))
    return plan_images(load(repo), params(level=level), backend.index, task_ids=seeded_task_ids(),
                       now=NOW, **kw)


def reasons(plan: Plan) -> dict[str, str]:
    return {n: d.reason for n, d in plan.decisions.items() if d.action == "build"}


def same_decisions(a: Plan, b: Plan) -> None:
    def strip(p: Plan) -> dict[str, Any]:
        return {n: (d.action, d.task_id, d.digest, d.namespace, d.level)
                for n, d in p.decisions.items()}

    assert strip(a) == strip(b)
    assert a.tasks == b.tasks


# -- each kind of change, each explanation exact ----------------------------------------------


def edit(repo: Path, path: str, text: Optional[str]) -> None:
    if text is None:
        (repo / path).unlink()
    else:
        make_tree(repo, {path: text})


CHANGES: list[tuple[str, Callable[[Path], None], dict[str, str]]] = [
    ("change-a-file", lambda r: edit(r, f"{BUILDER}/build.sh", "echo new\n"), {
        "builder": f"not indexed; 1 file changed ({BUILDER}/build.sh), 0 added, 0 removed"}),
    ("change-two-add-one", lambda r: [edit(r, f"{BUILDER}/build.sh", "echo new\n"),
                                      edit(r, f"{BUILDER}/lib.sh", "echo lib2\n"),
                                      edit(r, f"{BUILDER}/new.sh", "echo added\n")], {
        "builder": f"not indexed; 3 files changed ({BUILDER}/build.sh, +1 more), 1 added, "
                   "0 removed"}),
    ("add-one", lambda r: edit(r, f"{BUILDER}/new.sh", "echo added\n"), {
        "builder": "not indexed; 1 file changed, 1 added, 0 removed"}),
    ("remove-one", lambda r: edit(r, f"{BUILDER}/lib.sh", None), {
        "builder": "not indexed; 1 file changed, 0 added, 1 removed"}),
    ("move-one", lambda r: shutil.move(str(r / BUILDER / "lib.sh"),
                                       str(r / BUILDER / "zz-lib.sh")), {
        "builder": f"not indexed; 1 file changed, 0 added, 0 removed, 1 moved "
                   f"({BUILDER}/lib.sh -> {BUILDER}/zz-lib.sh)"}),
    ("change-an-arg", lambda r: edit(r, "taskcluster/kinds/docker-image/kind.yml",
                                     KIND.format(versions="3.13")), {
        "builder": "not indexed; args changed: PYTHON_VERSIONS"}),
    ("change-the-parent", lambda r: edit(r, "taskcluster/docker/base/setup.sh", "echo 2\n"), {
        "base": "not indexed; 1 file changed (taskcluster/docker/base/setup.sh), 0 added, "
                "0 removed",
        "builder": "parent base rebuilt (its 1 file changed)"}),
]


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _, c, e in CHANGES],
                         ids=[i for i, _, _ in CHANGES])
def test_each_change_is_explained_exactly(
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
    # Explaining changes the reasons only.
    same_decisions(plan, make_plan(repo, backend, explain=False))
    # And the plan file keeps every difference.
    again = Plan.from_json(plan.to_json())
    assert {n: (d.reason, d.changes, d.compared_with) for n, d in again.decisions.items()} == \
        {n: (d.reason, d.changes, d.compared_with) for n, d in plan.decisions.items()}


def test_an_image_never_built_is_a_first_build(backend: Backend, repo: Path) -> None:
    plan = make_plan(repo, backend)
    assert reasons(plan) == {"base": f"not indexed; {FIRST_BUILD}",
                             "builder": f"parent base rebuilt; {FIRST_BUILD}"}
    assert plan.warnings == ()
    assert plan["base"].changes is None and plan["base"].compared_with is None


def test_a_rebuild_of_an_unchanged_context_says_so(backend: Backend, repo: Path) -> None:
    catalog = load(repo)
    backend.record(3, build_manifest(catalog, "base"))
    backend.record(3, build_manifest(catalog, "builder"), state="failed")
    plan = make_plan(repo, backend)
    assert reasons(plan) == {"builder": "task failed at level 3; unchanged since the earlier build"}


# -- what cannot be read only changes the explanation -------------------------------------------


BAD: list[tuple[str, Optional[bytes], str]] = [
    ("missing", None, "has no public/context-manifest.json"),
    ("malformed", b'{"format": "taskgraph-images-context-manifest/1", "image": ', "not JSON"),
    ("other-version", b'{"format": "taskgraph-images-context-manifest/9"}', "is not understood"),
    ("oversized", b" " * (MAX_MANIFEST_BYTES + 1), "more than"),
]


@pytest.mark.parametrize(("data", "says"), [(d, s) for _, d, s in BAD], ids=[i for i, _, _ in BAD])
def test_an_unreadable_manifest_gives_no_earlier_manifest_and_one_warning(
    backend: Backend, repo: Path, data: Optional[bytes], says: str
) -> None:
    catalog = load(repo)
    backend.record(3, build_manifest(catalog, "base"))
    earlier = backend.record(3, build_manifest(catalog, "builder"), data)
    edit(repo, f"{BUILDER}/build.sh", "echo new\n")
    plan = make_plan(repo, backend)
    assert reasons(plan) == {"builder": f"not indexed; {NO_MANIFEST}"}
    assert plan["builder"].compared_with == earlier
    assert len(plan.warnings) == 1
    warning = plan.warnings[0]
    assert "\n" not in warning
    assert warning.startswith("no earlier manifest could be read for 1 image (builder: ")
    assert says in warning and earlier in warning
    same_decisions(plan, make_plan(repo, backend, explain=False))


def test_a_manifest_of_another_image_is_not_compared(backend: Backend, repo: Path) -> None:
    catalog = load(repo)
    backend.record(3, build_manifest(catalog, "base"))
    backend.record(3, build_manifest(catalog, "builder"), build_manifest(catalog, "base").dumps())
    edit(repo, f"{BUILDER}/build.sh", "echo new\n")
    plan = make_plan(repo, backend)
    assert reasons(plan) == {"builder": f"not indexed; {NO_MANIFEST}"}
    assert "is image 'base''s" in plan.warnings[0]


def test_the_warning_names_three_images_and_counts_the_rest() -> None:
    e = {n: Explanation(n, NO_MANIFEST, problem=f"{n} broke") for n in "abcde"}
    e["f"] = Explanation("f", FIRST_BUILD)
    assert Explanations(e).warning == (
        "no earlier manifest could be read for 5 images (a: a broke; b: b broke; c: c broke; "
        "+2 more)"
    )
    assert Explanations({"f": e["f"]}).warning is None


@pytest.mark.parametrize("broken", [False, True], ids=["no-reader", "reader-raises"])
def test_an_index_without_artifacts_explains_nothing_but_plans(repo: Path, broken: bool) -> None:
    class Bare:
        def __init__(self) -> None:
            self.memory = MemoryIndex()
            self.description = "bare index"

        def find_tasks(self, namespaces: Any) -> Any:
            return self.memory.find_tasks(namespaces)

        def usable_artifacts(self, task_ids: Any, artifact: str) -> Any:
            return self.memory.usable_artifacts(task_ids, artifact)

    class Broken(Bare):
        def read_artifacts(self, task_ids: Any, name: str, *, limit: int) -> Any:
            raise OSError("disk on fire")

    bare = Broken() if broken else Bare()
    catalog = load(repo)
    for n in ("base", "builder"):
        bare.memory.record_build(3, n, catalog.digest(n), PUSHDATE)
    edit(repo, f"{BUILDER}/build.sh", "echo new\n")
    plan = plan_images(load(repo), params(), bare, now=NOW)
    assert reasons(plan) == {"builder": f"not indexed; {NO_MANIFEST}"}
    says = ("the bare index failed to read manifests: OSError: disk on fire" if broken
            else "the bare index cannot serve artifacts")
    assert says in plan.warnings[0]


# -- the trust rule ----------------------------------------------------------------------------


def test_a_lower_levels_manifest_is_never_compared_against(backend: Backend, repo: Path) -> None:
    record_tree(backend, repo, level=1)
    edit(repo, f"{BUILDER}/build.sh", "echo new\n")
    at3 = make_plan(repo, backend, level=3)
    assert reasons(at3) == {"base": f"not indexed; {FIRST_BUILD}",
                            "builder": f"parent base rebuilt; {FIRST_BUILD}"}
    at1 = make_plan(repo, backend, level=1)
    assert reasons(at1) == {
        "builder": f"not indexed; 1 file changed ({BUILDER}/build.sh), 0 added, 0 removed"}
    assert at1["builder"].compared_with is not None


def test_a_higher_level_is_compared_against_and_the_highest_rank_wins(
    backend: Backend, repo: Path
) -> None:
    catalog = load(repo)
    base = build_manifest(catalog, "base")
    old_builder = build_manifest(catalog, "builder")
    backend.record(3, base)
    at3 = backend.record(3, old_builder, rank=5)
    edit(repo, f"{BUILDER}/lib.sh", "echo lib2\n")
    newer = build_manifest(load(repo), "builder")
    at2 = backend.record(2, attrs.evolve(newer, digest="e" * 64), rank=1)
    edit(repo, f"{BUILDER}/build.sh", "echo new\n")
    plan = make_plan(repo, backend, level=2)
    # Level 3's build has the higher rank: it is the one compared against.
    assert plan["builder"].compared_with == at3
    assert plan["builder"].reason == \
        f"not indexed; 2 files changed ({BUILDER}/build.sh, +1 more), 0 added, 0 removed"
    backend.record(2, attrs.evolve(newer, digest="f" * 64), rank=5)  # a tie: own level first
    plan = make_plan(repo, backend, level=2)
    assert plan["builder"].compared_with != at3 and plan["builder"].compared_with != at2
    assert plan["builder"].reason == \
        f"not indexed; 1 file changed ({BUILDER}/build.sh), 0 added, 0 removed"


def test_latest_candidates_are_the_trusted_levels() -> None:
    assert latest_candidates("builder", 1) == [
        f"docker.images.v2.level-{lv}.builder.latest" for lv in (1, 2, 3)]
    assert latest_candidates("builder", 3, prefix="p") == ["p.level-3.builder.latest"]


# -- batching ---------------------------------------------------------------------------------


def test_explanations_ride_along_with_the_plans_own_requests(
    tc_server: TCServer, repo: Path, tmp_path: Path
) -> None:
    backend = Backend("taskcluster", tmp_path, tc_server)
    record_tree(backend, repo)
    edit(repo, "taskcluster/docker/base/setup.sh", "echo 2\n")
    counts = {}
    for explain in (False, True):
        tc_server.requests.clear()
        make_plan(repo, backend, explain=explain)
        counts[explain] = {e: tc_server.count(e) for e in set(tc_server.requests)}
    assert counts[False] == {"findTasksAtIndex": 1}
    # The latest namespaces go in the same findTasksAtIndex request; the two
    # manifests are fetched (getLatestArtifact, then its redirect).
    assert counts[True] == {"findTasksAtIndex": 1, "getLatestArtifact": 2, "blob": 2}


def test_explain_builds_asks_the_index_itself_without_a_prefetch(repo: Path) -> None:
    index = MemoryIndex()
    catalog = load(repo)
    m = build_manifest(catalog, "base")
    index.record_build(3, "base", m.digest, PUSHDATE, manifest=m)
    result = explain_builds(index, {"base": m}, 3)
    assert result.by_name["base"].text == "unchanged since the earlier build"
    assert result.warning is None


def test_an_unreachable_index_gives_no_earlier_manifest(tc_server: TCServer, repo: Path) -> None:
    m = build_manifest(load(repo), "base")
    tc_server.inject("findTasksAtIndex", status=500)
    result = explain_builds(make_index(tc_server, max_retries=0), {"base": m}, 3)
    assert result.by_name["base"].text == NO_MANIFEST
    assert result.warning is not None and "the index cannot answer" in result.warning
    tc_server.reset()
    backend = Backend("taskcluster", repo.parent, tc_server)
    backend.record(3, m)
    tc_server.inject("getLatestArtifact", status=500)
    result = explain_builds(make_index(tc_server, max_retries=1), {"base": m}, 3)
    assert result.by_name["base"].text == NO_MANIFEST
    assert "the Queue answered 500" in str(result.warning)


def test_a_plan_whose_index_fails_builds_and_explains_why_not(
    tc_server: TCServer, repo: Path
) -> None:
    tc_server.inject("findTasksAtIndex", status=500)
    plan = plan_images(load(repo), params(), make_index(tc_server, max_retries=0),
                       BuildConfig(task_queue_id="proj-{level}/images"), now=NOW, on_error="build")
    builds = [d for d in plan.decisions.values() if d.action == "build"]
    assert builds and all(d.reason.endswith(f"; {NO_INDEX}") for d in builds)
    assert plan.warnings == ()  # the index's error is the lookup's to report, once
    assert all(d.index_error for d in builds if d.name == "base")


def test_prefetch_asks_once_then_passes_through(repo: Path) -> None:
    index = MemoryIndex()
    catalog = load(repo)
    m = build_manifest(catalog, "base")
    task = index.record_build(3, "base", "e" * 64, PUSHDATE, manifest=m)
    prefetch = Prefetch(index, [("base", m.digest, []), ("builder", "f" * 64, ["base"])], 3)
    assert prefetch.description == "in-memory index"
    assert prefetch.extra is None
    hash_ns = index_namespaces(3, "base", m.digest, PUSHDATE)[2]
    assert prefetch.find_tasks([hash_ns]) == {}
    assert prefetch.extra is not None
    assert {e.task_id for e in prefetch.extra.values()} == {task}
    assert prefetch.find_tasks([hash_ns]) == {}  # no second ride-along
    assert prefetch.usable_artifacts([task], "public/image.tar.zst")[task].usable is True
    explained = prefetch.explain({"base": m})
    assert explained.by_name["base"].text == "unchanged since the earlier build"


def test_prefetch_without_an_answer_explains_nothing() -> None:
    prefetch = Prefetch(MemoryIndex(), [("base", "e" * 64, [])], 3)
    explained = prefetch.explain({"base": ContextManifest("base", "e" * 64, "seed", {})})
    assert explained.by_name["base"].text == NO_INDEX
    assert explained.warning is None


def test_a_build_the_prefetch_did_not_foresee_is_fetched_then(backend: Backend, repo: Path) -> None:
    catalog = load(repo)
    record_tree(backend, repo)
    # builder's hash entry is there but unusable: only the lookup finds out it is built.
    backend.record(3, build_manifest(catalog, "builder"), state="failed", rank=1)
    edit(repo, f"{BUILDER}/build.sh", "echo new\n")
    backend.record(3, build_manifest(load(repo), "builder"), state="failed", rank=2)
    plan = make_plan(repo, backend)
    assert reasons(plan) == {"builder": "task failed at level 3; unchanged since the earlier build"}


# -- reading manifests from Taskcluster: every way it can fail ------------------------------------


def test_taskcluster_reads_report_each_failure_as_a_problem(
    tc_server: TCServer, repo: Path
) -> None:
    m = build_manifest(load(repo), "base")
    ok = tc_server.add_task(artifacts={DEFAULT_MANIFEST_ARTIFACT: m.dumps()})
    index = make_index(tc_server, max_retries=1)
    assert index.read_artifacts([ok], DEFAULT_MANIFEST_ARTIFACT, limit=1 << 20)[ok].data == \
        m.dumps()
    tc_server.inject("getLatestArtifact", status=403, count=1)
    problem = index.read_artifacts([ok], DEFAULT_MANIFEST_ARTIFACT, limit=1 << 20)[ok].problem
    assert problem == f"task {ok}'s {DEFAULT_MANIFEST_ARTIFACT}: the Queue answered 403"
    tc_server.inject("blob", drop=True)
    problem = index.read_artifacts([ok], DEFAULT_MANIFEST_ARTIFACT, limit=1 << 20)[ok].problem
    assert problem.startswith(f"task {ok}'s {DEFAULT_MANIFEST_ARTIFACT} cannot be fetched: ")
    tc_server.reset()
    # Without credentials a private artifact is asked for unsigned, by tcenv.artifact_url's
    # rule (inside a task the proxy signs): the Queue's answer is the problem.
    private = index.read_artifacts([ok], "private/m.json", limit=10)[ok].problem
    assert private == f"task {ok} has no private/m.json"


def test_a_broken_local_index_gives_no_earlier_manifest(repo: Path, tmp_path: Path) -> None:
    m = build_manifest(load(repo), "base")
    index = LocalIndex(tmp_path / "index.sqlite")
    image = tmp_path / "image"
    image.write_bytes(b"image")
    index.record_build(3, "base", "e" * 64, PUSHDATE, image, manifest=m)
    latest = index.find_tasks(latest_candidates("base", 3))
    (tmp_path / "index.sqlite").write_bytes(b"garbage" * 1000)
    result = explain_builds(index, {"base": m}, 3, latest=latest)
    assert result.by_name["base"].text == NO_MANIFEST
    assert "the index cannot answer: local index" in str(result.warning)
