"""Our docker-image transform inside taskgraph: the same graph as taskgraph's own.

A repository adopts us by changing one line of its docker-image kind:
``taskgraph.transforms.docker_image:transforms`` becomes
``taskgraph_images.taskgraph:transforms``. These tests run the installed
taskcluster-taskgraph itself, as a decision task or a developer would
(``taskgraph full -k docker-image -J``), on a copy of
``tests/data/tgrepo`` (a repository shaped like real ones: its own
register hook and transforms, a packages kind, ``task-defaults``, a
definition reused with args, parents, dotted names, ``tasks-from``,
``cached-task-prefix``, ``# %include`` and ``# %include-run-task``), once
with each line, and compare everything taskgraph prints.

Set ``TASKGRAPH_IMAGES_OTHER_TASKGRAPH`` to the ``taskgraph`` command of
another release (a virtual environment with taskcluster-taskgraph 24.2, say)
to compare under it too.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any, Optional

import pytest
from importcheck import modules_added_by
from peer_taskgraph import peer, peer_tar_bytes

from taskgraph_images.errors import ConfigError, TaskgraphImagesError
from taskgraph_images.keys.tar import context_hash, write_context_tar

DATA = Path(__file__).parent / "data" / "tgrepo"
KIND = "taskcluster/kinds/docker-image/kind.yml"
THEIRS = "taskgraph.transforms.docker_image:transforms"
OURS = "taskgraph_images.taskgraph:transforms"
WORKTREE = str(Path(__file__).parent.parent)
#: The decision's parameters (the rest taskgraph takes from the checkout, the same for both).
PUSH = {"build_date": 1700000000, "pushdate": 1700000000, "moz_build_date": "20231114221320",
        "head_rev": "5" * 40, "head_ref": "refs/heads/main", "files_changed": []}
PULL_REQUEST = {**PUSH, "level": "1", "tasks_for": "github-pull-request",
                "head_ref": "refs/heads/feature"}


def _commands() -> list[Any]:
    """The ``taskgraph`` commands to compare under: the installed one, and the other release's."""
    found = [pytest.param(shutil.which("taskgraph") or "taskgraph", id="installed")]
    other = os.environ.get("TASKGRAPH_IMAGES_OTHER_TASKGRAPH")
    return [*found, pytest.param(other, id="other_taskgraph")] if other else found


def _python(command: str) -> str:
    """The interpreter beside a ``taskgraph`` command (this one for the installed)."""
    if command == (shutil.which("taskgraph") or "taskgraph"):
        return sys.executable
    return str(Path(command).parent / "python")


def make_repo(where: Path, transform: str, source: Path = DATA) -> Path:
    """A copy of ``source`` as a git repository, its docker-image kind using ``transform``."""
    shutil.copytree(source, where)
    kind = where / KIND
    kind.write_text(kind.read_text().replace(THEIRS, transform))
    # bytecode is never committed, but lies in real checkouts: taskgraph skips it
    pycache = where / "taskcluster/scripts/lib/__pycache__"
    pycache.mkdir(parents=True, exist_ok=True)
    (pycache / "helpers.cpython-311.pyc").write_bytes(b"\x00\x01")
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "the tree"],
                 ["remote", "add", "origin", "https://github.com/example/myproject"]):
        subprocess.run([*git, *args], cwd=where, check=True)
    return where


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (WORKTREE, env.get("PYTHONPATH")) if p)
    return env


def taskgraph_full(repo: Path, params: dict[str, Any], *extra: str,
                   command: str = "taskgraph") -> dict[str, Any]:
    """What ``taskgraph full -k docker-image -J`` prints for ``repo`` (parsed)."""
    path = repo.parent / f"{repo.name}-params.yml"
    path.write_text(json.dumps(params))  # JSON is YAML
    done = subprocess.run([command, "full", "-k", "docker-image", "-J", "-p", str(path), *extra],
                          cwd=repo, env=_env(), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, Any] = json.loads(done.stdout)
    return result


@pytest.fixture
def repos(tmp_path: Path) -> tuple[Path, Path]:
    peer("taskgraph")
    return make_repo(tmp_path / "theirs", THEIRS), make_repo(tmp_path / "ours", OURS)


@pytest.mark.parametrize("command", _commands())
@pytest.mark.parametrize("params", [PUSH, PULL_REQUEST], ids=["push", "pull-request"])
def test_the_full_graph_is_taskgraphs(repos: tuple[Path, Path], params: dict[str, Any],
                                      command: str) -> None:
    theirs, ours = repos
    expected = taskgraph_full(theirs, params, command=command)
    got = taskgraph_full(ours, params, command=command)
    assert got == expected
    # the comparison covers what the kind makes: every image, cached or not
    images = {label for label in expected if label.startswith("docker-image-")}
    assert images == {f"docker-image-{n}" for n in (
        "base", "run-task", "python3.11", "python3.12", "decision", "tools", "plain")}
    assert "cached_task" in got["docker-image-python3.11"]["attributes"]
    assert "cached_task" not in got["docker-image-plain"]["attributes"]


@pytest.mark.parametrize("command", _commands())
def test_under_taskgraph_fast_the_graph_is_taskgraphs(repos: tuple[Path, Path],
                                                      command: str) -> None:
    theirs, ours = repos
    expected = taskgraph_full(theirs, PUSH, "--fast", command=command)
    assert taskgraph_full(ours, PUSH, "--fast", command=command) == expected
    assert expected["docker-image-base"]["task"]["payload"]["env"]["HASH"] == "0" * 40


def test_the_same_graph_on_a_tree_that_changes(repos: tuple[Path, Path]) -> None:
    theirs, ours = repos
    for repo in repos:
        (repo / "taskcluster/scripts/run.sh").write_text("#!/bin/sh\nexec \"$@\" # v2\n")
    expected = taskgraph_full(theirs, PUSH)
    assert taskgraph_full(ours, PUSH) == expected


_WRITE = """\
import sys
from taskgraph.generator import TaskGraphGenerator
from taskgraph.parameters import parameters_loader

params = parameters_loader(sys.argv[1], strict=False, overrides={"target-kinds": ["docker-image"]})
generator = TaskGraphGenerator("taskcluster", params, write_artifacts=True)
print(len(generator.full_task_set.tasks))
"""


def write_contexts(repo: Path, python: str = sys.executable) -> dict[str, bytes]:
    """Generate the graph as a decision does (writing artifacts); return docker-contexts/."""
    path = repo.parent / f"{repo.name}-params.yml"
    path.write_text(json.dumps(PUSH))
    done = subprocess.run([python, "-c", _WRITE, str(path)], cwd=repo, env=_env(),
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    folder = repo / "docker-contexts"
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.parametrize("command", _commands())
def test_a_decision_writes_the_same_context_tarballs(repos: tuple[Path, Path],
                                                     command: str) -> None:
    theirs, ours = repos
    expected = write_contexts(theirs, _python(command))
    got = write_contexts(ours, _python(command))
    assert sorted(got) == sorted(expected) == sorted(
        f"{n}.tar.gz" for n in ("base", "run-task", "python3.11", "python3.12", "decision",
                                "tools", "plain"))
    for name in expected:
        assert got[name] == expected[name], name
    # and the HASH a build task checks is the sha256 of the tarball's tar
    graph = taskgraph_full(ours, PUSH)
    tar = gzip.decompress(got["run-task.tar.gz"])
    assert graph["docker-image-run-task"]["task"]["payload"]["env"]["HASH"] == (
        hashlib.sha256(tar).hexdigest())


def test_the_tar_stream_written_is_the_one_hashed(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    big.write_bytes(bytes(range(256)) * 9000)  # more than one buffer
    files: dict[str, str | bytes] = {"Dockerfile": b"FROM scratch\n", "big.bin": str(big),
                                     "a/" + "long-name-" * 12: str(big)}
    pieces: list[bytes] = []
    digest = write_context_tar(files, lambda view: pieces.append(bytes(view)))
    assert b"".join(pieces) == peer_tar_bytes(files)
    assert digest == context_hash(files)


def test_importing_the_package_imports_nothing_of_taskgraph() -> None:
    loaded = modules_added_by("import taskgraph_images.taskgraph")
    assert "taskgraph_images.taskgraph._transforms" in loaded
    heavy = {"taskgraph", "yaml", "taskcluster", "requests", "zstandard"}
    assert not {m for m in loaded if m.split(".")[0] in heavy}


# -- refusals: one line naming the kind file and the task ------------------------------------


def run_ours(repo: Path, entries: list[dict[str, Any]], *, fast: bool = False,
             write: bool = False, packages: Optional[list[str]] = None,
             theirs: bool = False, kind: Optional[dict[str, Any]] = None,
             ) -> list[dict[str, Any]]:
    """Run our transform in this process over loader ``entries``, as taskgraph would.

    ``theirs``: taskgraph's own instead, then its cached-task transform after either.
    """
    taskgraph = peer("taskgraph")
    from taskgraph.config import GraphConfig
    from taskgraph.task import Task
    from taskgraph.transforms import cached_tasks, docker_image
    from taskgraph.transforms.base import TransformConfig

    from taskgraph_images.taskgraph import transforms as ours

    transforms = ours
    if theirs:
        def transforms(config: Any, tasks: Any) -> Any:
            return cached_tasks.transforms(config, docker_image.transforms(config, tasks))
    deps = {f"packages-{p}": Task(kind="packages", label=f"packages-{p}", task={}, attributes={
        "cached_task": {"type": "packages.v1", "name": p,
                        "digest": hashlib.sha256(p.encode()).hexdigest()}})
        for p in packages or []}
    params = {"level": "3", "project": "myproject", "base_repository": "https://x/r",
              "head_repository": "https://x/r", "head_rev": "0" * 40,
              "repository_type": "git", "tasks_for": "github-push",
              "head_ref": "refs/heads/main", "build_date": 1_700_000_000}
    graph = GraphConfig({"trust-domain": "myproject", "taskgraph": {}},
                        str(repo / "taskcluster"))
    config = TransformConfig(kind="docker-image", path=str(repo / "taskcluster/kinds/docker-image"),
                             config=kind or {}, params=params, kind_dependencies_tasks=deps,
                             graph_config=graph, write_artifacts=write)
    saved = taskgraph.fast
    taskgraph.fast = fast
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)  # taskgraph leaves files open
            done = list(transforms(config, copy.deepcopy(entries)))
            if not theirs:
                done = list(cached_tasks.transforms(config, done))
        return done
    finally:
        taskgraph.fast = saved


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    peer("taskgraph")
    return make_repo(tmp_path / "repo", OURS)


@pytest.mark.parametrize(("entry", "message"), [
    ({"symbol": "I(b)", "platform": "linux"},
     "task 'base' has an unknown key 'platform' (the docker-image kind's keys: parent, "),
    ({"args": {"DEBIAN_RELEASE": 12}}, "task 'base': args.DEBIAN_RELEASE must be a string, "
                                       "got int"),
    ({"args": None}, "task 'base': args must be a mapping of NAME: value, got null"),
    ({"definition": None}, "task 'base': definition must be a string, got null"),
    ({"definition": "../../.."}, "task 'base': definition '../../..' must name a folder below"),
    ({"packages": "deb12-jq"}, "task 'base': packages must be a list of package names, got str"),
    ({"cache": "yes"}, "task 'base': cache must be true or false, got str"),
    ({"parent": 3}, "task 'base': parent must be a string or null, got int"),
    ({"index": {"product": "p", "job": "x"}}, "task 'base': index has an unknown key 'job'"),
    ({"index": {"rank": True}}, "task 'base': index.rank must be 'by-tier', 'build_date' or a"),
    ({"packages": ["deb12-jq"]},
     "task 'base': package 'deb12-jq' has no task packages-deb12-jq (add the packages kind"),
])
def test_a_key_taskgraph_would_refuse_or_trip_on_is_refused_in_one_line(
        repo: Path, entry: dict[str, Any], message: str) -> None:
    task = {"args": {"DEBIAN_RELEASE": "bookworm"}, **entry, "name": "base",
            "task-from": "kind.yml"}
    with pytest.raises(ConfigError) as error:
        run_ours(repo, [task])
    text = str(error.value)
    assert text.startswith(f"taskcluster/kinds/docker-image/kind.yml: {message}"), text
    assert "\n" not in text


def test_an_entry_from_a_tasks_from_file_names_that_file(repo: Path) -> None:
    with pytest.raises(ConfigError, match=r"^taskcluster/kinds/docker-image/tools.yml: "
                                          r"task 'tools': cache must be"):
        run_ours(repo, [{"name": "tools", "task-from": "tools.yml", "cache": 1}])


def test_packages_are_dependencies_and_build_args(repo: Path) -> None:
    done = run_ours(repo, [
        {"name": "tools", "parent": "base", "packages": ["deb12-tini", "deb12-jq"],
         "task-from": "tools.yml", "args": {"DEBIAN_RELEASE": "bookworm"}},
        {"name": "base", "args": {"DEBIAN_RELEASE": "bookworm"}, "task-from": "kind.yml"},
    ], packages=["deb12-jq", "deb12-tini"])
    [tools] = [t for t in done if t["label"] == "docker-image-tools"]
    assert tools["dependencies"] == {"deb12-jq": "packages-deb12-jq",
                                     "deb12-tini": "packages-deb12-tini",
                                     "parent": "docker-image-base"}
    assert json.loads(tools["worker"]["env"]["DOCKER_BUILD_ARGS"]["task-reference"]) == {
        "DEBIAN_RELEASE": "bookworm", "DOCKER_IMAGE_PACKAGES": "<deb12-tini> <deb12-jq>"}


def test_taskgraph_fast_hashes_nothing_and_refuses_to_write_artifacts(repo: Path) -> None:
    # no Dockerfile is read under taskgraph.fast: a missing folder goes unnoticed
    [task] = run_ours(repo, [{"name": "gone", "task-from": "kind.yml"}], fast=True)
    assert task["worker"]["env"]["HASH"] == "0" * 40 and "cache" not in task
    with pytest.raises(ConfigError, match="under taskgraph.fast"):
        run_ours(repo, [{"name": "base", "task-from": "kind.yml"}], fast=True, write=True)


# -- what taskgraph's own transform lets through, and ours refuses ---------------------------


def _their_tar(repo: Path, image: str) -> bytes:
    docker = peer("taskgraph.util.docker")
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # taskgraph leaves files open
        docker.stream_context_tar(str(repo), f"taskcluster/docker/{image}", out,
                                  args={"DEBIAN_RELEASE": "bookworm"})
    return out.getvalue()


def test_a_symlink_to_a_file_outside_the_repository_is_refused(repo: Path) -> None:
    secret = repo.parent / "host-secret.txt"
    secret.write_text("a host's secret\n")
    (repo / "taskcluster/docker/base/notes.txt").symlink_to(secret)
    # taskgraph ships the host's file in the context, a public artifact of the decision
    assert b"a host's secret" in _their_tar(repo, "base")
    with pytest.raises(TaskgraphImagesError, match=r"notes.txt is a symlink to .*outside the "
                                                   r"repository"):
        run_ours(repo, [{"name": "base", "task-from": "kind.yml",
                         "args": {"DEBIAN_RELEASE": "bookworm"}}])


def test_an_include_beside_the_repository_is_refused(repo: Path) -> None:
    # taskgraph checks that the path *starts with* the repository's: a sibling
    # folder whose name extends the repository's passes
    sibling = repo.parent / f"{repo.name}-private"
    sibling.mkdir()
    (sibling / "key.txt").write_text("a private key\n")
    dockerfile = repo / "taskcluster/docker/plain/Dockerfile"
    dockerfile.write_text(f"FROM alpine:3.20\n# %include ../{sibling.name}/key.txt\n")
    assert b"a private key" in _their_tar(repo, "plain")
    with pytest.raises(TaskgraphImagesError, match=r"Dockerfile:2: '# %include .*' leaves the "
                                                   r"repository"):
        run_ours(repo, [{"name": "plain", "task-from": "tools.yml"}])


def test_a_fifo_in_a_context_is_refused_not_waited_on(repo: Path) -> None:
    os.mkfifo(repo / "taskcluster/docker/plain/pipe")
    with pytest.raises(TaskgraphImagesError, match=r"plain/pipe in the context is not a regular "
                                                   r"file \(a FIFO\)"):
        run_ours(repo, [{"name": "plain", "task-from": "tools.yml", "args": {"NOTE": "x"}}])


def test_written_in_this_process_the_tarball_is_taskgraphs(
        repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    docker = peer("taskgraph.util.docker")
    monkeypatch.chdir(tmp_path)  # a decision writes docker-contexts/ where it runs
    done = run_ours(repo, [{"name": "run-task", "parent": "base", "task-from": "kind.yml"},
                           {"name": "base", "task-from": "kind.yml",
                            "args": {"DEBIAN_RELEASE": "bookworm"}}], write=True)
    [task] = [t for t in done if t["label"] == "docker-image-run-task"]
    theirs = tmp_path / "theirs" / "run-task.tar.gz"  # the name is in the gzip header
    theirs.parent.mkdir()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # taskgraph leaves files open
        their_hash = docker.create_context_tar(str(repo), "taskcluster/docker/run-task",
                                               str(theirs), {})
    assert (tmp_path / "docker-contexts/run-task.tar.gz").read_bytes() == theirs.read_bytes()
    assert task["worker"]["env"]["HASH"] == their_hash
    assert sorted(os.listdir(tmp_path / "docker-contexts")) == ["base.tar.gz", "run-task.tar.gz"]


def test_in_this_process_every_kind_key_is_honoured_as_taskgraph_does(repo: Path) -> None:
    entries = [
        {"name": "base", "task-from": "kind.yml", "symbol": "I(base)",
         "args": {"DEBIAN_RELEASE": "bookworm"}, "index": {"product": "myproject",
                                                            "job-name": "base", "rank": 3}},
        {"name": "run-task", "task-from": "kind.yml", "parent": "base", "symbol": "",
         "index": None},
        {"name": "python3.11", "task-from": "kind.yml", "parent": "run-task",
         "definition": "python", "args": {"PYTHON_VERSION": "3.11"}, "cache": None},
        {"name": "python3.12", "task-from": "kind.yml", "parent": "run-task",
         "definition": "python", "args": {"PYTHON_VERSION": "3.12"}, "symbol": None},
        {"name": "tools", "task-from": "tools.yml", "parent": "base",
         "packages": ["deb12-tini", "deb12-jq"], "args": {"DEBIAN_RELEASE": "trixie"}},
    ]
    kwargs: dict[str, Any] = {"packages": ["deb12-jq", "deb12-tini"]}
    ours = run_ours(repo, entries, **kwargs)
    assert ours == run_ours(repo, entries, theirs=True, **kwargs)
    by_label = {t["label"]: t for t in ours}
    assert by_label["docker-image-base"]["index"]["rank"] == 3
    assert "treeherder" not in by_label["docker-image-run-task"]
    assert "cached_task" not in by_label["docker-image-python3.11"]["attributes"]


# -- builder: taskgraph-images: our in-task builder builds the kind's images --------------------

BUILDER_CONFIG = """\
trust-domain: myproject
cache-keys: taskgraph
cached-task-prefix: myproject.v2.images
builder: taskgraph-images
image-builder: ghcr.io/example/taskgraph-images-builder:1.0
"""
PAYLOAD = "taskgraph_images.taskgraph:payload"


def with_our_builder(repo: Path, *, payload_line: bool = True) -> Path:
    """Configure ``repo`` (our transform line) for our builder, committed."""
    (repo / "taskcluster/taskgraph-images.yml").write_text(BUILDER_CONFIG)
    kind = repo / KIND
    if payload_line:
        kind.write_text(kind.read_text().replace(
            "    - taskgraph.transforms.task:transforms\n",
            f"    - taskgraph.transforms.task:transforms\n    - {PAYLOAD}\n"))
    return without_packages(repo)


def without_packages(repo: Path) -> Path:
    """``repo`` with no image installing packages (image_builder's business), committed."""
    tools = repo / "taskcluster/kinds/docker-image/tools.yml"
    tools.write_text(tools.read_text().replace(
        "    packages:\n        - deb12-tini\n        - deb12-jq\n", ""))
    git = ["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", "no packages"], cwd=repo, check=True)
    return repo


def test_our_builder_runs_the_tasks_and_its_check_accepts_them(repos: tuple[Path, Path]) -> None:
    import argparse

    from taskgraph_images.builder.intask import check_task, env_names, images_dir_of, read_env
    from taskgraph_images.cli._common import load_catalog
    from taskgraph_images.config import load_config

    theirs, ours = repos
    expected = taskgraph_full(without_packages(theirs), PUSH)
    graph = taskgraph_full(with_our_builder(ours), PUSH)
    config = load_config(ours / "taskcluster/taskgraph-images.yml")
    images = {label: t for label, t in graph.items() if label.startswith("docker-image-")}
    assert len(images) == 7
    for label, task in images.items():
        payload = task["task"]["payload"]
        assert payload["image"] == "ghcr.io/example/taskgraph-images-builder:1.0"
        assert payload["command"] == ["taskgraph-images", "build-in-task"]
        assert payload["capabilities"] == {"disableSeccomp": True}
        assert "docker-worker:capability:disableSeccomp" in task["task"]["scopes"]
        assert payload["features"] == {"chainOfTrust": True, "taskclusterProxy": True}
        assert sorted(payload["artifacts"]) == ["public/context-manifest.json",
                                                "public/image.tar.zst"]
        # the routes, dependencies and treeherder symbol are what taskgraph's would be
        assert task["dependencies"] == expected[label]["dependencies"]
        assert task["task"]["extra"] == expected[label]["task"]["extra"]
        # what the builder will check: the digest the routes claim is the tree's
        env = {k: v if isinstance(v, str) else "PARENTxTASKxIDxxxxxxxx"
               for k, v in payload["env"].items()}
        task_env = read_env(env, env_names(config), artifact_path=config.artifact_path)
        catalog = load_catalog(argparse.Namespace(
            root=str(ours), images_dir=images_dir_of(task_env.context_path), kind_config=None,
            hash_cache="none"), config)
        parent_label = task["dependencies"].get("parent")
        assert check_task(catalog, task_env) == (
            parent_label[len("docker-image-"):] if parent_label else None)
        cached = task["attributes"].get("cached_task")
        if cached is not None:
            assert task_env.digest == cached["digest"]
            # the digest names our builder, so it is not the digest taskgraph's builds have
            assert cached["digest"] != expected[label]["attributes"]["cached_task"]["digest"]
            assert any(cached["digest"] in route for route in task["task"]["routes"])


def test_our_builder_needs_the_payload_line(repos: tuple[Path, Path]) -> None:
    _, ours = repos
    with_our_builder(ours, payload_line=False)
    path = ours.parent / "params.yml"
    path.write_text(json.dumps(PUSH))
    done = subprocess.run(["taskgraph", "full", "-k", "docker-image", "-J", "-p", str(path)],
                          cwd=ours, env=_env(), capture_output=True, text=True)
    assert done.returncode != 0
    assert ("taskcluster/kinds/docker-image/kind.yml: taskcluster/taskgraph-images.yml says "
            "builder: taskgraph-images, whose tasks need taskgraph_images.taskgraph:payload as "
            "the last of the kind's transforms") in done.stderr


def test_our_builder_refuses_packages(repo: Path) -> None:
    (repo / "taskcluster/taskgraph-images.yml").write_text(BUILDER_CONFIG)
    kind = {"transforms": [OURS, "taskgraph.transforms.cached_tasks:transforms",
                           "taskgraph.transforms.task:transforms", PAYLOAD]}
    with pytest.raises(ConfigError, match=r"^taskcluster/kinds/docker-image/tools.yml: task "
                                          r"'tools': packages are installed by taskgraph's "
                                          r"image builder, not ours"):
        run_ours(repo, [{"name": "tools", "task-from": "tools.yml", "packages": ["deb12-jq"]}],
                 packages=["deb12-jq"], kind=kind)
