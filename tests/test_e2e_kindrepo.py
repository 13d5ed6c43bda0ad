"""Issue 8 end to end on ``tests/data/kindrepo``: build, context, plan and the record loop.

The fixture repository has six images described by a kind config (``base``;
``run-task`` and ``multi`` and ``lint`` on it; ``decision`` and ``python`` on
``run-task``), ``# %include`` of a file and a folder, ``# %ARG``, a
multi-stage Dockerfile and a README-only folder. Images are built with the
private ``dockerd`` of ``tests/support/dockerd.py``, each child on its in-tree
parent's local tag (``DOCKER_IMAGE_PARENT``).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shutil
import tarfile
from pathlib import Path
from typing import Any, Callable, NamedTuple

import attrs
import pytest
from dockerd import BUSYBOX, DockerEngine, require_or_skip
from plan_helpers import NOW, params, seeded_task_ids

from taskgraph_images.builder.local import Built, build_image
from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.cli import main
from taskgraph_images.config import BuildConfig
from taskgraph_images.context import write_context
from taskgraph_images.index import LocalIndex, MemoryIndex
from taskgraph_images.plan import Plan, plan_images

KINDREPO = Path(__file__).resolve().parent / "data" / "kindrepo"
KIND = "taskcluster/kinds/docker-image/kind.yml"
NAMES = ("base", "run-task", "decision", "python", "multi", "lint")
BUILDER = "taskcluster/image_builder:4.0.0"
CONFIG = attrs.evolve(BuildConfig(), image_builder=BUILDER)

#: What ``/etc/image`` holds in each image: the chain of its ancestors.
ETC_IMAGE = {
    "base": "base\n",
    "run-task": "base\nrun-task\n",
    "decision": "base\nrun-task\nlib-one\nlib-two\n",
    "python": "base\nrun-task\nhello 3.13 3.12\n",
    "multi": "base\nbuilt-in-stage\n",
    "lint": "base\n",
}


def _copy_repo(dest: Path) -> Path:
    """Copy the kindrepo to ``dest`` with the static busybox that ``base`` copies in."""
    if not os.path.exists(BUSYBOX):
        require_or_skip(f"{BUSYBOX} is missing (apt-get install busybox-static)")
    shutil.copytree(KINDREPO, dest, symlinks=True)
    shutil.copy(BUSYBOX, dest / "taskcluster" / "docker" / "base" / "busybox")
    (dest / ".git").mkdir()
    return dest


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the kindrepo shared by the tests that do not change it."""
    return _copy_repo(tmp_path_factory.mktemp("kindrepo") / "repo")


@pytest.fixture
def own_repo(tmp_path: Path) -> Path:
    """A copy of the kindrepo that the test may change."""
    return _copy_repo(tmp_path / "repo")


def _cli(host: str, *argv: str) -> tuple[int, str, str]:
    """Run ``taskgraph-images ARGV`` against the engine at ``host``; return code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DOCKER_HOST", host)
        mp.delenv("TASKCLUSTER_ROOT_URL", raising=False)
        mp.delenv("TASKCLUSTER_PROXY_URL", raising=False)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def _members(catalog: ImageCatalog, name: str) -> dict[str, tarfile.TarInfo]:
    buf = io.BytesIO()
    write_context(catalog, name, buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        return {m.name: m for m in tar.getmembers()}


def _read_member(catalog: ImageCatalog, name: str, member: str) -> bytes:
    buf = io.BytesIO()
    write_context(catalog, name, buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        f = tar.extractfile(member)
        assert f is not None
        return f.read()


# -- building all six images with the real engine -------------------------------------------------


class Built6(NamedTuple):
    catalog: ImageCatalog
    cli: tuple[int, str, str]  # `taskgraph-images build python`
    decision: list[Built]  # build_image(..., "decision") after the CLI build


@pytest.fixture(scope="module")
def built(docker_engine: DockerEngine, repo: Path) -> Built6:
    """Every image built: ``python`` (with base, run-task) by the CLI, the rest by ``build_image``."""
    engine = docker_engine.engine
    for name in NAMES:  # nothing left over from another run under the same tags
        if engine.exists(f"{name}:latest"):
            engine.remove(f"{name}:latest", force=True)
    cli = _cli(docker_engine.host, "build", "python", "--root", str(repo), "--hash-cache", "none")
    catalog = ImageCatalog.load(repo)
    decision = build_image(engine, catalog, "decision")
    for name in ("multi", "lint"):
        build_image(engine, catalog, name)
    return Built6(catalog, cli, decision)


@pytest.mark.docker
def test_cli_build_builds_the_in_tree_parents_first(built: Built6) -> None:
    code, out, err = built.cli
    assert code == 0, err
    sent = re.findall(r"building (\S+): sending context \(\d+\.\d [KM]iB\)", err)
    assert sent == ["base:latest", "run-task:latest", "python:latest"]
    assert "Successfully tagged python:latest" in out


@pytest.mark.docker
def test_build_image_reuses_parents_already_in_the_engine(built: Built6) -> None:
    assert [(b.name, b.reused) for b in built.decision] == [
        ("base", True), ("run-task", True), ("decision", False)]


@pytest.mark.docker
@pytest.mark.parametrize("name", NAMES)
def test_each_image_shows_its_chain_in_etc_image(
    docker_engine: DockerEngine, built: Built6, name: str
) -> None:
    assert docker_engine.run(f"{name}:latest", "/bin/busybox", "cat", "/etc/image") == ETC_IMAGE[name]


@pytest.mark.docker
@pytest.mark.parametrize(
    ("child", "parent"),
    [("run-task", "base"), ("decision", "run-task"), ("python", "run-task"), ("multi", "base"),
     ("lint", "base")],
)
def test_child_is_built_on_the_in_tree_parents_layers(
    docker_engine: DockerEngine, built: Built6, child: str, parent: str
) -> None:
    def layers(tag: str) -> list[str]:
        found = docker_engine.engine.inspect(tag)
        assert found is not None
        return list(found["RootFS"]["Layers"])

    parent_layers = layers(f"{parent}:latest")
    child_layers = layers(f"{child}:latest")
    assert child_layers[: len(parent_layers)] == parent_layers
    assert len(child_layers) > len(parent_layers)


@pytest.mark.docker
def test_lint_image_runs_its_copied_script(docker_engine: DockerEngine, built: Built6) -> None:
    assert docker_engine.run("lint:latest", "/usr/local/bin/lint") == "lint ok\n"


# -- write_context ------------------------------------------------------------------------------

FILES = {
    "base": ["Dockerfile", "busybox"],
    "run-task": ["Dockerfile", "topsrcdir/tools/run-task.sh"],
    "decision": ["Dockerfile", "topsrcdir/tools/lib/one.txt", "topsrcdir/tools/lib/two.txt"],
    "python": ["Dockerfile"],
    "multi": ["Dockerfile"],
    "lint": ["Dockerfile", "lint.sh"],
}


@pytest.mark.parametrize("name", NAMES)
def test_context_holds_the_image_folder_and_its_includes_under_topsrcdir(repo: Path, name: str) -> None:
    members = _members(ImageCatalog.load(repo), name)
    assert sorted(n for n, m in members.items() if m.isfile()) == FILES[name]


@pytest.mark.parametrize("name", NAMES)
def test_context_has_nothing_from_the_readme_only_folder(repo: Path, name: str) -> None:
    names = _members(ImageCatalog.load(repo), name)
    assert not [n for n in names if "docs-only" in n or n.endswith("README.md")]


def test_context_dockerfile_drops_arg_lines_and_substitutes_both_spellings(repo: Path) -> None:
    text = _read_member(ImageCatalog.load(repo), "python", "Dockerfile").decode()
    assert text == (
        "ARG DOCKER_IMAGE_PARENT\n"
        "FROM run-task:latest\n"
        'RUN ["/bin/busybox", "sh", "-c", "echo hello 3.13 3.12 >> /etc/image"]\n'
    )


def test_context_dockerfile_without_directives_only_resolves_the_parent(repo: Path) -> None:
    catalog = ImageCatalog.load(repo)
    path = repo / catalog["multi"].dockerfile
    assert _read_member(catalog, "multi", "Dockerfile") == path.read_bytes().replace(
        b"$DOCKER_IMAGE_PARENT", b"base:latest")


def test_included_file_keeps_its_content_and_executable_mode(repo: Path) -> None:
    catalog = ImageCatalog.load(repo)
    member = _members(catalog, "run-task")["topsrcdir/tools/run-task.sh"]
    content = _read_member(catalog, "run-task", "topsrcdir/tools/run-task.sh")
    assert member.mode == 0o755 and content == (repo / "tools/run-task.sh").read_bytes()


def test_included_symlink_reaches_the_context_with_its_targets_content(tmp_path: Path) -> None:
    from trees import make_tree

    root = make_tree(tmp_path / "repo", {
        "taskcluster/docker/a/Dockerfile": "FROM scratch\n# %include tools/link\n",
        "tools/real": "real content\n"})
    (root / "tools" / "link").symlink_to("real")
    buf = io.BytesIO()
    write_context(ImageCatalog.load(root), "a", buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        f = tar.extractfile("topsrcdir/tools/link")  # follows a link to a member of the tar
        assert f is not None and f.read() == b"real content\n"


def test_included_symlink_whose_target_is_included_stays_a_link(tmp_path: Path) -> None:
    from trees import make_tree

    root = make_tree(tmp_path / "repo", {
        "taskcluster/docker/a/Dockerfile": "FROM scratch\n# %include tools\n",
        "tools/real": "real content\n"})
    (root / "tools" / "link").symlink_to("real")
    buf = io.BytesIO()
    write_context(ImageCatalog.load(root), "a", buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        link = tar.getmember("topsrcdir/tools/link")
        assert link.issym() and link.linkname == "real"


@pytest.mark.parametrize("name", NAMES)
def test_context_bytes_are_identical_across_two_checkouts(tmp_path: Path, name: str) -> None:
    one = _copy_repo(tmp_path / "a" / "repo")
    two = _copy_repo(tmp_path / "somewhere" / "else" / "checkout")
    write_context(ImageCatalog.load(one), name, tmp_path / "one.tar")
    write_context(ImageCatalog.load(two), name, tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()


# -- the plan ---------------------------------------------------------------------------------


def _plan(root: Path, index: Any = None) -> Plan:
    return plan_images(ImageCatalog.load(root), params(), index if index is not None else MemoryIndex(),
                       CONFIG, task_ids=seeded_task_ids(), now=NOW)


@pytest.fixture(scope="module")
def fresh_plan(repo: Path) -> Plan:
    """The plan of the kindrepo against an empty index: everything is built."""
    return _plan(repo)


def _task(plan: Plan, name: str) -> dict[str, Any]:
    return dict(plan.tasks[plan.task_id_for_image(name)])


@pytest.mark.parametrize(
    ("name", "symbol"),
    [("base", "base"), ("run-task", "rt"), ("decision", "d"), ("python", "py"), ("multi", "m"),
     ("lint", "lint")],
)
def test_plan_takes_treeherder_symbols_from_the_kind_config(
    fresh_plan: Plan, name: str, symbol: str
) -> None:
    treeherder = _task(fresh_plan, name)["extra"]["treeherder"]
    assert (treeherder["groupSymbol"], treeherder["symbol"]) == ("I", symbol)


def test_python_build_task_gets_its_args_as_docker_build_args_json(fresh_plan: Plan) -> None:
    env = _task(fresh_plan, "python")["payload"]["env"]
    assert json.loads(env["DOCKER_BUILD_ARGS"]) == {"GREETING": "hello", "PYTHON_VERSIONS": "3.13 3.12"}


def test_images_without_args_get_no_docker_build_args(fresh_plan: Plan) -> None:
    assert [n for n in NAMES if "DOCKER_BUILD_ARGS" in _task(fresh_plan, n)["payload"]["env"]] == [
        "python"]


@pytest.mark.parametrize(
    ("child", "parent"),
    [("run-task", "base"), ("decision", "run-task"), ("python", "run-task"), ("multi", "base"),
     ("lint", "base")],
)
def test_build_task_depends_on_its_in_tree_parents_task(fresh_plan: Plan, child: str, parent: str) -> None:
    task = _task(fresh_plan, child)
    parent_id = fresh_plan.task_id_for_image(parent)
    assert task["dependencies"] == [parent_id]
    assert task["payload"]["env"]["DOCKER_IMAGE_PARENT_TASK"] == parent_id


def test_plan_lists_parents_before_children(fresh_plan: Plan) -> None:
    order = list(fresh_plan.tasks)
    position = {name: order.index(fresh_plan.task_id_for_image(name)) for name in NAMES}
    for name in NAMES:
        for parent in ImageCatalog.load(KINDREPO)[name].parents:
            assert position[parent] < position[name]


def _change_two_txt(root: Path) -> None:
    (root / "tools/lib/two.txt").write_text("lib-two changed\n")


def _change_run_task_sh(root: Path) -> None:
    (root / "tools/run-task.sh").write_text('#!/bin/sh\nexec "$@"  # changed\n')


def _change_python_arg(root: Path) -> None:
    kind = root / KIND
    kind.write_text(kind.read_text().replace('"3.13 3.12"', '"3.14"'))


def _change_base_dockerfile(root: Path) -> None:
    with open(root / "taskcluster/docker/base/Dockerfile", "a") as f:
        f.write("# a comment\n")


def _change_readme(root: Path) -> None:
    (root / "taskcluster/docker/docs-only/README.md").write_text("changed\n")


@pytest.mark.parametrize(
    ("change", "affected"),
    [
        (_change_two_txt, {"decision"}),
        (_change_run_task_sh, {"run-task", "decision", "python"}),
        (_change_python_arg, {"python"}),
        (_change_base_dockerfile, set(NAMES)),
        (_change_readme, set()),
    ],
    ids=["included-folder-file", "included-file", "arg", "root-image", "readme-only-folder"],
)
def test_a_change_rebuilds_exactly_the_affected_images_and_their_descendants(
    own_repo: Path, change: Callable[[Path], None], affected: set[str]
) -> None:
    before = ImageCatalog.load(own_repo)
    index = MemoryIndex()
    for name in NAMES:  # everything built and indexed for the tree as it was
        index.record_build(3, name, before.digest(name), 1478546787)
    change(own_repo)
    plan = _plan(own_repo, index)
    assert {n for n in NAMES if plan[n].digest != before.digest(n)} == affected
    assert {n for n in NAMES if plan[n].action == "build"} == affected


# -- the record loop at plan level ----------------------------------------------------------------


def _index_arg(tmp: Path) -> str:
    return f"local:{tmp / 'idx' / 'index.db'}"


class Recorded(NamedTuple):
    index: str
    code: int
    out: str
    err: str
    task_ids: dict[str, str]


@pytest.fixture(scope="module")
def recorded(
    docker_engine: DockerEngine, repo: Path, tmp_path_factory: pytest.TempPathFactory
) -> Recorded:
    """``build decision --record`` into a fresh local index (at the default level 3)."""
    index = _index_arg(tmp_path_factory.mktemp("record"))
    code, out, err = _cli(docker_engine.host, "build", "decision", "--root", str(repo), "--record",
                          "--index", index, "--hash-cache", "none")
    ids = dict(re.findall(r"recorded (\S+) as task (\S+) at level 3", out))
    return Recorded(index, code, out, err, ids)


@pytest.fixture(scope="module")
def config_file(repo: Path) -> str:
    """A build-task config naming a registry image builder (the kindrepo has none in tree).

    It lives in the repository, as the build tasks read it from their checkout.
    """
    path = repo / "taskcluster" / "build.yml"
    path.write_text(f"image-builder: {BUILDER}\n")
    return str(path)


def _cli_plan(host: str, repo: Path, index: str, config: str, *extra: str) -> dict[str, Any]:
    code, out, err = _cli(host, "plan", "--root", str(repo), "--index", index, "--config", config,
                          "--json", "--hash-cache", "none", "--pushdate", "1478546787", *extra)
    assert code == 0, err
    images: dict[str, Any] = json.loads(out)["images"]
    return images


@pytest.mark.docker
def test_build_record_records_the_image_and_its_ancestors(recorded: Recorded) -> None:
    assert recorded.code == 0, recorded.err
    assert sorted(recorded.task_ids) == ["base", "decision", "run-task"]
    assert len(set(recorded.task_ids.values())) == 3


@pytest.mark.docker
def test_build_record_stores_each_builds_context_manifest(
    docker_engine: DockerEngine, repo: Path, recorded: Recorded
) -> None:
    from taskgraph_images.manifest import DEFAULT_MANIFEST_ARTIFACT, build_manifest, parse_manifest

    catalog = ImageCatalog.load(repo)
    index = LocalIndex(recorded.index.split(":", 1)[1])
    reads = index.read_artifacts(list(recorded.task_ids.values()), DEFAULT_MANIFEST_ARTIFACT,
                                 limit=1 << 20)
    for name, task_id in recorded.task_ids.items():
        data = reads[task_id].data
        assert data is not None, reads[task_id].problem
        assert parse_manifest(data) == build_manifest(catalog, name)
    code, out, err = _cli(docker_engine.host, "why", "decision", "--root", str(repo), "--index",
                          recorded.index, "--hash-cache", "none", "--level", "3")
    assert code == 0, err
    assert out.splitlines() == [
        "decision: unchanged since the earlier build",
        f"compared with task {recorded.task_ids['decision']} (level 3)",
        f"digest   {catalog.digest('decision')[:12]} -> {catalog.digest('decision')[:12]}",
    ]


@pytest.mark.docker
@pytest.mark.parametrize("level", [None, "1", "3"], ids=["default-level", "level-1", "level-3"])
def test_plan_after_build_record_reuses_the_recorded_chain_at_level_3(
    docker_engine: DockerEngine, repo: Path, recorded: Recorded, config_file: str,
    level: str | None,
) -> None:
    extra = ("--level", level) if level else ()
    images = _cli_plan(docker_engine.host, repo, recorded.index, config_file, *extra)
    for name in ("base", "run-task", "decision"):
        assert (images[name]["action"], images[name]["level"], images[name]["task_id"]) == (
            "reuse", 3, recorded.task_ids[name])
    assert {n: images[n]["action"] for n in ("python", "multi", "lint")} == dict.fromkeys(
        ("python", "multi", "lint"), "build")


@pytest.mark.docker
def test_load_of_a_recorded_task_id_retags_and_runs(
    docker_engine: DockerEngine, recorded: Recorded
) -> None:
    code, out, err = _cli(docker_engine.host, "load", recorded.task_ids["decision"],
                          "--index", recorded.index, "-t", "other:tag")
    assert (code, out) == (0, "Loaded image: other:tag\n"), err
    assert docker_engine.run("other:tag", "/bin/busybox", "cat", "/etc/image") == ETC_IMAGE["decision"]


@pytest.mark.docker
def test_build_record_at_level_1_is_not_reused_by_a_level_3_plan(
    docker_engine: DockerEngine, repo: Path, tmp_path: Path, config_file: str
) -> None:
    index = _index_arg(tmp_path)
    code, _, err = _cli(docker_engine.host, "build", "base", "--root", str(repo), "--record",
                        "--level", "1", "--index", index, "--hash-cache", "none")
    assert code == 0, err
    assert _cli_plan(docker_engine.host, repo, index, config_file, "--level", "1")["base"]["action"] == (
        "reuse")
    assert _cli_plan(docker_engine.host, repo, index, config_file, "--level", "3")["base"]["action"] == (
        "build")


@pytest.mark.docker
def test_build_record_and_load_follow_the_configs_index_prefix_and_artifact_name(
    docker_engine: DockerEngine, repo: Path, tmp_path: Path
) -> None:
    config = repo / "taskcluster" / "custom.yml"
    config.write_text(f"image-builder: {BUILDER}\nindex-prefix: project.images.v9\n"
                      "artifact-name: public/build/image.tar.zst\n")
    index = _index_arg(tmp_path)
    code, out, err = _cli(docker_engine.host, "build", "base", "--root", str(repo), "--record",
                          "--index", index, "--config", str(config), "--hash-cache", "none")
    assert code == 0, err
    task_id = re.findall(r"recorded base as task (\S+) ", out)[0]
    recorded = LocalIndex(index.split(":", 1)[1])
    assert recorded.list_tasks("project.images.v9.level-3.base", recursive=True)
    assert recorded.artifact_path(task_id, "public/build/image.tar.zst") is not None
    assert _cli_plan(docker_engine.host, repo, index, str(config))["base"]["action"] == "reuse"
    for source in ("base", task_id):  # by image name (looked up) and by task id
        code, out, err = _cli(docker_engine.host, "load", source, "--root", str(repo), "--index",
                              index, "--config", str(config), "--hash-cache", "none",
                              "-t", "custom:loaded")
        assert (code, out) == (0, "Loaded image: custom:loaded\n"), err
    code, _, err = _cli(docker_engine.host, "load", task_id, "--index", index, "-t", "x:y")
    assert code == 1 and "has no public/image.tar.zst" in err


def test_build_record_refuses_extra_build_args(repo: Path, tmp_path: Path) -> None:
    code, _, err = _cli(f"unix://{tmp_path}/none.sock", "build", "python", "--root", str(repo),
                        "--record", "--index", _index_arg(tmp_path), "--build-arg", "X=1")
    assert code == 1 and "cannot take --build-arg" in err and err.count("\n") == 1
