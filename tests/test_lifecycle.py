"""The whole lifecycle of image build tasks, with a real Docker engine and the loopback Taskcluster.

A fixture repository (a prebuilt ``base`` pushed to a loopback registry, the
task image ``app`` on it, and ``child`` on ``app``) is served over HTTP
(git's "dumb" protocol); its plan is submitted to the loopback Queue; every
created task is run by ``run-task`` in a real image-builder container (built offline,
``FROM scratch``, see ``builder_image.py``), which clones the push, builds
with buildah on the parent its parent task built, and writes the artifact;
the artifact and the index routes are then registered as the Queue and the
Index do when a task completes. Planning again reuses every image, and the
child, loaded by task id, runs.

The in-task builder's refusals (a digest that is not the task's; a parent
artifact missing, truncated or of another image; an interrupted build) are
checked with ``build-in-task`` run directly, with buildah on this machine.
"""

from __future__ import annotations

import datetime
import functools
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator, NamedTuple

import pytest
from builder_image import build_builder_image
from dockerd import BUSYBOX, DockerEngine, require_or_skip
from registry import Registry
from tcserver import TCServer

from taskgraph_images.builder.local import build_image
from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.cli import main
from taskgraph_images.manifest import DEFAULT_MANIFEST_ARTIFACT

pytestmark = [pytest.mark.docker, pytest.mark.slow]

ARTIFACT = "public/image.tar.zst"
BUILD_ID = 'RUN ["/bin/busybox", "sh", "-c", "cat /proc/sys/kernel/random/uuid > /{name}-build"]\n'


def cli(*argv: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    """Run ``taskgraph-images ARGV`` in this process with ``env`` set; return code, out, err."""
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for name in ("TASKCLUSTER_ROOT_URL", "TASKCLUSTER_PROXY_URL", "TASKCLUSTER_CLIENT_ID",
                     "TASKCLUSTER_ACCESS_TOKEN", "GECKO_HEAD_REPOSITORY", "GECKO_HEAD_REV",
                     "TASKGRAPH_IMAGES_CONFIG"):
            mp.delenv(name, raising=False)
        for name, value in (env or {}).items():
            mp.setenv(name, value)
        mp.setattr(sys, "stdout", out)
        mp.setattr(sys, "stderr", err)
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


class _QuietFiles(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Fixture(NamedTuple):
    """The served fixture repository."""

    root: Path
    registries_conf: Path  # lets this machine's buildah pull from the test registry
    url: str  # git:// URL the build tasks clone
    rev: str
    config: Path
    registry: Registry
    builder: str


def _git(root: Path, *args: str) -> str:
    done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                          check=True, env=dict(os.environ, GIT_AUTHOR_NAME="t",
                                               GIT_AUTHOR_EMAIL="t@example.com",
                                               GIT_COMMITTER_NAME="t",
                                               GIT_COMMITTER_EMAIL="t@example.com"))
    return done.stdout.strip()


def _write_repo(root: Path, registry: str, builder: str) -> Path:
    docker = root / "taskcluster" / "docker"
    for name in ("base", "app", "child"):
        (docker / name).mkdir(parents=True)
    (docker / "REGISTRY").write_text(f"{registry}\n")
    shutil.copy(BUSYBOX, docker / "base" / "busybox")
    (docker / "base" / "VERSION").write_text("1.0\n")
    (docker / "base" / "Dockerfile").write_text(
        'FROM scratch\nCOPY busybox /bin/busybox\n'
        'RUN ["/bin/busybox", "sh", "-c", "echo base > /base.txt"]\n')
    (docker / "app" / "Dockerfile").write_text(
        f'FROM {registry}/base:1.0\n'
        'RUN ["/bin/busybox", "sh", "-c", "echo app on $(cat /base.txt) > /app.txt"]\n'
        + BUILD_ID.format(name="app"))
    (docker / "child" / "Dockerfile").write_text(
        'FROM app:latest\n'
        'RUN ["/bin/busybox", "sh", "-c", "echo child on $(cat /app.txt) > /child.txt"]\n'
        'CMD ["/bin/busybox", "cat", "/child.txt", "/app-build"]\n')
    config = root / "taskcluster" / "taskgraph-images.yml"
    config.write_text(f"image-builder: {builder}\ntask-queue-id: proj-loopback/images\n"
                      "max-run-time: 600\n")
    return config


@pytest.fixture(scope="module")
def registry() -> Iterator[Registry]:
    with Registry() as r:
        yield r


@pytest.fixture(scope="module")
def builder(docker_engine: DockerEngine, registry: Registry) -> str:
    """The image-builder image, built once, offline, in the test engine."""
    if shutil.which("buildah") is None:
        require_or_skip("buildah is not installed (apt-get install buildah)")
    return build_builder_image(docker_engine.engine, registry.address)


@pytest.fixture(scope="module")
def fixture(
    docker_engine: DockerEngine, registry: Registry, builder: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Fixture]:
    """The repository, committed, served over HTTP, its prebuilt base pushed."""
    if not os.path.exists(BUSYBOX):
        require_or_skip(f"{BUSYBOX} is missing (apt-get install busybox-static)")
    served = tmp_path_factory.mktemp("served")
    root = served / "fixture"
    root.mkdir()
    config = _write_repo(root, registry.address, builder)
    _git(root, "init", "-q")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "fixture")
    rev = _git(root, "rev-parse", "HEAD")
    catalog = ImageCatalog.load(root)
    build_image(docker_engine.engine, catalog, "base")
    archive = served / "base.tar"
    with open(archive, "wb") as f:
        for chunk in docker_engine.engine.save(catalog.local_tag("base")):
            f.write(chunk)
    registry.add("base", "1.0", str(archive))
    _git(root, "update-server-info")  # served as git's "dumb" HTTP
    httpd = ThreadingHTTPServer(("127.0.0.1", 0),
                                functools.partial(_QuietFiles, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    port = httpd.server_address[1]
    try:
        registries = served / "registries.conf"
        registries.write_text(f'[[registry]]\nlocation = "{registry.address}"\ninsecure = true\n')
        yield Fixture(root, registries, f"http://127.0.0.1:{port}/fixture/.git", rev, config,
                      registry, builder)
    finally:
        httpd.shutdown()
        httpd.server_close()


def _plan(fix: Fixture, server: TCServer, tmp_path: Path, *extra: str,
          root: Path | None = None) -> dict[str, Any]:
    out = tmp_path / "plan.json"
    config = (root / fix.config.relative_to(fix.root)) if root else fix.config
    code, _, err = cli(
        "plan", "--root", str(root or fix.root), "--config", str(config), "--index",
        f"taskcluster:{server.root_url}", "--level", "1", "--project", "fixture",
        "--head-repository", fix.url, "--base-repository", fix.url, "--head-rev", fix.rev,
        "--pushdate", "1478546787", "--owner", "t@example.com", "--source",
        "https://example.com/fixture", "--hash-cache", "none", "--output", str(out), *extra,
    )
    assert code == 0, err
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def _run_and_complete(server: TCServer, engine: DockerEngine, task_id: str, out: Path) -> str:
    """``run-task TASK`` (fetched from the Queue), then complete it as the Queue and Index do."""
    code, stdout, err = cli("run-task", task_id, "--root-url", server.root_url, "-o", str(out),
                            env={"DOCKER_HOST": engine.host})
    assert code == 0, err
    artifact = out / "public" / "image.tar.zst"
    manifest = out / "public" / "context-manifest.json"
    assert stdout == (f"{DEFAULT_MANIFEST_ARTIFACT} -> {manifest}\n"
                      f"{ARTIFACT} -> {artifact}\n")
    server.complete_task(task_id, {ARTIFACT: artifact.read_bytes(),
                                   DEFAULT_MANIFEST_ARTIFACT: manifest.read_bytes()})
    return err


def test_the_whole_lifecycle(
    docker_engine: DockerEngine, tc_server: TCServer, fixture: Fixture, tmp_path: Path
) -> None:
    first = _plan(fixture, tc_server, tmp_path, "--submit")
    actions = {name: d["action"] for name, d in first["images"].items()}
    assert actions == {"base": "prebuilt", "app": "build", "child": "build"}
    app, child = first["images"]["app"]["task_id"], first["images"]["child"]["task_id"]
    assert sorted(tc_server.definitions) == sorted([app, child])
    payload = tc_server.definitions[child]["payload"]
    assert payload["capabilities"] == {"disableSeccomp": True}
    assert payload["env"]["DOCKER_IMAGE_PARENT_TASK"] == app
    assert payload["image"] == fixture.builder

    err = _run_and_complete(tc_server, docker_engine, app, tmp_path / "app")
    assert "exited 0" in err
    err = _run_and_complete(tc_server, docker_engine, child, tmp_path / "child")
    assert f"fetching the parent image app from task {app}" in err

    again = _plan(fixture, tc_server, tmp_path)
    assert {n: (d["action"], d.get("task_id")) for n, d in again["images"].items()} == {
        "base": ("prebuilt", None), "app": ("reuse", app), "child": ("reuse", child)}
    assert again["tasks"] == {}

    # Each build published its context manifest: a change is explained from it.
    changed = tmp_path / "changed"
    shutil.copytree(fixture.root, changed, ignore=shutil.ignore_patterns(".git"))
    (changed / "taskcluster" / "docker" / "app" / "notes.txt").write_text("new\n")
    explained = _plan(fixture, tc_server, tmp_path, root=changed)["images"]
    assert explained["app"]["reason"] == "not indexed; 1 file changed, 1 added, 0 removed"
    assert explained["app"]["compared_with"] == app
    assert explained["child"]["reason"] == "parent app rebuilt (its 1 file changed, 1 added)"
    assert explained["child"]["compared_with"] == child

    env = {"DOCKER_HOST": docker_engine.host}
    for task_id, tag in ((child, "lifecycle-child:1"), (app, "lifecycle-app:1")):
        code, out, err = cli("load", task_id, "--root-url", tc_server.root_url, "-t", tag,
                             "--index", f"taskcluster:{tc_server.root_url}", env=env)
        assert (code, out) == (0, f"Loaded image: {tag}\n"), err
    printed = docker_engine.docker("run", "--rm", "--network", "none", "lifecycle-child:1").stdout
    app_build = docker_engine.run("lifecycle-app:1", "/bin/busybox", "cat", "/app-build")
    # The child's own file, then the build id of the app its parent task built: not a rebuild.
    assert printed == "child on app on base\n" + app_build


# -- the builder's refusals ------------------------------------------------------------


def _task_env(fix: Fixture, name: str, **extra: str) -> dict[str, str]:
    catalog = ImageCatalog.load(fix.root)
    env = {"IMAGE_NAME": name, "HASH": catalog.digest(name),
           "CONTEXT_PATH": f"taskcluster/docker/{name}", "DOCKER_IMAGE_ZSTD_LEVEL": "3",
           "CONTAINERS_REGISTRIES_CONF": str(fix.registries_conf)}
    env.update(extra)
    return env


def test_a_digest_that_is_not_the_tasks_is_refused_before_building(
    fixture: Fixture, tmp_path: Path
) -> None:
    out = tmp_path / "image.tar.zst"
    code, stdout, err = cli("build-in-task", "--checkout", str(fixture.root), env=_task_env(
        fixture, "app", HASH="0" * 64, IMAGE_ARTIFACT_PATH=str(out)))
    digest = ImageCatalog.load(fixture.root).digest("app")
    assert code == 1 and stdout == ""
    assert err == (f"taskgraph-images: error: refusing to build 'app': the tree's digest is "
                   f"{digest}, the task's is {'0' * 64} (its index routes would claim an image "
                   "it does not build)\n")
    assert not out.exists()


def _child_with_parent_artifact(fix: Fixture, server: TCServer, tmp_path: Path,
                                content: bytes | None) -> tuple[int, str, Path, str]:
    """build-in-task ``child`` on a parent task with ``content`` as its artifact (None: none).

    Returns the exit code, the error line, the artifact path and the parent task.
    """
    parent = server.add_task(artifacts={} if content is None else {ARTIFACT: content})
    out = tmp_path / "artifacts" / "image.tar.zst"
    code, _, err = cli("build-in-task", "--checkout", str(fix.root), "--workdir", str(tmp_path),
                       env=_task_env(fix, "child", DOCKER_IMAGE_PARENT_TASK=parent,
                                     IMAGE_ARTIFACT_PATH=str(out),
                                     TASKCLUSTER_PROXY_URL=server.root_url))
    errors = [line for line in err.splitlines() if line.startswith("taskgraph-images: error:")]
    assert errors == err.splitlines()[-1:], err
    return code, errors[0] + "\n", out, parent


@pytest.fixture(scope="module")
def built_app(fixture: Fixture, tmp_path_factory: pytest.TempPathFactory) -> bytes:
    """``app``'s artifact as build-in-task makes it (on the host's buildah)."""
    out = tmp_path_factory.mktemp("app") / "image.tar.zst"
    code, _, err = cli("build-in-task", "--checkout", str(fixture.root),
                       env=_task_env(fixture, "app", IMAGE_ARTIFACT_PATH=str(out)))
    assert code == 0, err
    return out.read_bytes()


def test_a_missing_parent_artifact_is_refused(
    fixture: Fixture, tc_server: TCServer, tmp_path: Path
) -> None:
    code, err, out, parent = _child_with_parent_artifact(fixture, tc_server, tmp_path, None)
    assert code == 1
    assert err.startswith(f"taskgraph-images: error: cannot fetch the parent image 'app' "
                          f"(task {parent}, {ARTIFACT}): ")
    assert err.endswith(f"{ARTIFACT.replace('/', '%2F')}: HTTP 404\n")
    assert not out.exists()


def test_a_truncated_parent_artifact_is_refused(
    fixture: Fixture, tc_server: TCServer, built_app: bytes, tmp_path: Path
) -> None:
    code, err, out, parent = _child_with_parent_artifact(
        fixture, tc_server, tmp_path, built_app[: len(built_app) // 2])
    assert code == 1
    assert err.startswith(f"taskgraph-images: error: cannot fetch the parent image 'app' "
                          f"(task {parent}, {ARTIFACT}): ")
    assert "truncated" in err
    assert not out.exists()


def test_a_parent_artifact_of_another_image_is_refused(
    fixture: Fixture, tc_server: TCServer, tmp_path: Path
) -> None:
    other = tmp_path / "other.tar.zst"
    code, _, err = cli("build-in-task", "--checkout", str(fixture.root), env=_task_env(
        fixture, "base", IMAGE_ARTIFACT_PATH=str(other)))
    assert code == 0, err
    code, err, out, parent = _child_with_parent_artifact(fixture, tc_server, tmp_path,
                                                         other.read_bytes())
    catalog = ImageCatalog.load(fixture.root)
    assert code == 1
    assert err == (f"taskgraph-images: error: the parent image 'app' (task {parent}, {ARTIFACT}) "
                   f"is not that image: it has digest {catalog.digest('base')}, the tree's app "
                   f"has {catalog.digest('app')}\n")
    assert not out.exists()


def test_a_parent_artifact_without_the_digest_label_is_refused(
    fixture: Fixture, tc_server: TCServer, tmp_path: Path
) -> None:
    """An image saved from a Docker engine (not made by build-in-task) cannot be checked."""
    import zstandard

    saved = (fixture.root.parent / "base.tar").read_bytes()  # the engine's docker save
    code, err, out, parent = _child_with_parent_artifact(
        fixture, tc_server, tmp_path, zstandard.ZstdCompressor().compress(saved))
    assert code == 1
    assert err == (f"taskgraph-images: error: the parent image 'app' (task {parent}, {ARTIFACT}) "
                   "carries no org.taskgraph-images.digest label, so it cannot be checked: it "
                   "was not made by build-in-task; rebuild app\n")
    assert not out.exists()


def test_an_interrupted_build_leaves_no_artifact(
    fixture: Fixture, built_app: bytes, tc_server: TCServer, tmp_path: Path
) -> None:
    repo = tmp_path / "repo"
    shutil.copytree(fixture.root, repo, symlinks=True)
    slow = repo / "taskcluster" / "docker" / "child" / "Dockerfile"
    slow.write_text(slow.read_text() + 'RUN ["/bin/busybox", "sleep", "60"]\n')
    parent = tc_server.add_task(artifacts={ARTIFACT: built_app})
    out = tmp_path / "artifacts" / "image.tar.zst"
    env = dict(os.environ, **_task_env(fixture, "child", DOCKER_IMAGE_PARENT_TASK=parent,
                                       IMAGE_ARTIFACT_PATH=str(out),
                                       TASKCLUSTER_PROXY_URL=tc_server.root_url))
    env["HASH"] = ImageCatalog.load(repo).digest("child")
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    proc = subprocess.Popen(
        [sys.executable, "-m", "taskgraph_images", "build-in-task", "--checkout", str(repo),
         "--workdir", str(tmp_path)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )
    assert proc.stdout is not None
    seen = b""
    for line in proc.stdout:
        seen += line
        if b"sleep" in line:  # buildah runs the slow step
            break
    time.sleep(1)
    proc.send_signal(signal.SIGTERM)
    rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, (seen + rest).decode()
    assert b"taskgraph-images: interrupted" in rest
    assert not out.exists()
    assert not out.parent.exists() or list(out.parent.iterdir()) == []
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("taskgraph-images-")] == []


def test_run_task_stops_a_task_at_its_max_run_time(
    docker_engine: DockerEngine, builder: str, tmp_path: Path
) -> None:
    now = datetime.datetime.now(datetime.timezone.utc)
    task = {"taskQueueId": "proj-loopback/images", "created": now.isoformat(),
            "payload": {"image": builder, "maxRunTime": 2, "command": [
                os.path.realpath(sys.executable), "-c", "import time; time.sleep(60)"]}}
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"format": "x", "tasks": {"fGfKdQ1hRjq7b9x9XJm1yA": task}}))
    started = time.monotonic()
    code, _, err = cli("run-task", "fGfKdQ1hRjq7b9x9XJm1yA", "--plan", str(plan), "-o",
                       str(tmp_path / "out"), env={"DOCKER_HOST": docker_engine.host})
    assert time.monotonic() - started < 30
    assert code == 1
    assert err.splitlines()[-1] == ("taskgraph-images: error: task fGfKdQ1hRjq7b9x9XJm1yA ran out "
                                    "of its maxRunTime")


def test_run_task_record_indexes_a_contract_task_under_its_routes(
    docker_engine: DockerEngine, tc_server: TCServer, fixture: Fixture, tmp_path: Path
) -> None:
    """A build task written by hand as CONTRACTS.md describes it, created on the Queue,
    fetched from it, run and recorded locally."""
    import taskcluster

    from taskgraph_images.index import LocalIndex, find_image
    from taskgraph_images.tc.time import format_time

    digest = ImageCatalog.load(fixture.root).digest("base")
    now = datetime.datetime.now(datetime.timezone.utc)
    later = format_time(now + datetime.timedelta(hours=1))
    task_id = "Hu2sR1YTTbaqAUGxWnzH9A"
    task = {
        "taskQueueId": "proj-loopback/images", "schedulerId": "-", "taskGroupId": task_id,
        "created": format_time(now), "deadline": later, "expires": later,
        "metadata": {"name": "base", "description": "build base", "owner": "t@example.com",
                     "source": "https://example.com/fixture"},
        "routes": [f"index.docker.images.v2.level-1.base.hash.{digest}",
                   "index.docker.images.v2.level-1.base.latest"],
        "extra": {"imageMeta": {"level": 1, "imageName": "base", "contextHash": digest}},
        "payload": {
            "image": fixture.builder, "command": ["taskgraph-images", "build-in-task"],
            "maxRunTime": 600, "capabilities": {"disableSeccomp": True},
            "features": {"taskclusterProxy": True, "chainOfTrust": True},
            "env": {"HASH": digest, "IMAGE_NAME": "base", "CONTEXT_PATH": "taskcluster/docker/base",
                    "GECKO_HEAD_REPOSITORY": fixture.url, "GECKO_HEAD_REV": fixture.rev,
                    "GECKO_BASE_REPOSITORY": fixture.url, "PROJECT": "fixture",
                    "DOCKER_IMAGE_ZSTD_LEVEL": "10",
                    "TASKGRAPH_IMAGES_CONFIG": "taskcluster/taskgraph-images.yml",
                    "IMAGE_ARTIFACT_PATH": "/builds/worker/artifacts/image.tar.zst"},
            "artifacts": {ARTIFACT: {"type": "file", "expires": later,
                                     "path": "/builds/worker/artifacts/image.tar.zst"}},
        },
    }
    taskcluster.Queue({"rootUrl": tc_server.root_url}).createTask(task_id, task)
    index_path = tmp_path / "index" / "index.db"
    code, out, err = cli("run-task", task_id, "--record", "--index", f"local:{index_path}",
                         env={"DOCKER_HOST": docker_engine.host,
                              "TASKCLUSTER_ROOT_URL": tc_server.root_url})
    assert (code, out) == (0, f"recorded task {task_id} in the local index at {index_path} at 2 "
                              "namespaces\n"), err
    assert "zstd level 10" in err  # the builder's own lines are the task's log, on stderr
    found = find_image(LocalIndex(index_path), "base", digest, 1)
    assert found.reuse and found.found is not None and found.found.task_id == task_id
    code, out, err = cli("load", task_id, "--index", f"local:{index_path}", "-t",
                         "lifecycle-base:1", env={"DOCKER_HOST": docker_engine.host})
    assert (code, out) == (0, "Loaded image: lifecycle-base:1\n"), err
    assert docker_engine.run("lifecycle-base:1", "/bin/busybox", "cat", "/base.txt") == "base\n"


def test_build_in_task_clones_the_push_and_reads_its_config(
    fixture: Fixture, tmp_path: Path
) -> None:
    out = tmp_path / "out" / "image.tar.zst"
    env = _task_env(fixture, "base", GECKO_HEAD_REPOSITORY=fixture.url,
                    GECKO_HEAD_REV=fixture.rev, IMAGE_ARTIFACT_PATH=str(out),
                    TASKGRAPH_IMAGES_CONFIG="taskcluster/taskgraph-images.yml")
    code, stdout, err = cli("build-in-task", "--workdir", str(tmp_path), env=env)
    assert code == 0, err
    assert f"checking out {fixture.rev} of {fixture.url}" in err
    assert stdout.endswith(f"into {out}\n") and out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the clone went too


def _consumer(image: Any, artifact_path: str = "/app.txt") -> dict[str, Any]:
    """A task that runs in an image the plan built, as the tasks of a push do."""
    return {"taskQueueId": "proj-loopback/tests", "payload": {
        "image": image, "maxRunTime": 60, "command": ["/bin/busybox", "cat", "/app.txt"],
        "artifacts": {"public/out.txt": {"type": "file", "path": artifact_path}}}}


def _run_consumer(engine: DockerEngine, server: TCServer, task: dict[str, Any], tmp_path: Path,
                  *extra: str) -> tuple[int, str, str]:
    plan = tmp_path / "consumer.json"
    plan.write_text(json.dumps({"tasks": {"KQ3wTfIbSrKnJ1yBvOJOsQ": task}}))
    return cli("run-task", "KQ3wTfIbSrKnJ1yBvOJOsQ", "--plan", str(plan), "--root-url",
               server.root_url, "-o", str(tmp_path / "out"), *extra,
               env={"DOCKER_HOST": engine.host})


def test_run_task_runs_a_consumer_in_a_task_image_or_an_indexed_one(
    docker_engine: DockerEngine, tc_server: TCServer, built_app: bytes, tmp_path: Path
) -> None:
    app = tc_server.add_task(artifacts={ARTIFACT: built_app})
    tc_server.index_task("proj.images.app.latest", app)
    for image, extra in (
        ({"type": "task-image", "taskId": app, "path": ARTIFACT}, ()),
        ({"type": "indexed-image", "namespace": "proj.images.app.latest", "path": ARTIFACT},
         ("--index", f"taskcluster:{tc_server.root_url}")),
    ):
        code, out, err = _run_consumer(docker_engine, tc_server, _consumer(image), tmp_path, *extra)
        assert code == 0, err
        assert f"loading the task's image from task {app}" in err
        assert "app on base\n" in err  # the task's own output, its log
        assert out == f"public/out.txt -> {tmp_path / 'out' / 'public' / 'out.txt'}\n"
        assert (tmp_path / "out" / "public" / "out.txt").read_text() == "app on base\n"


def test_run_task_refuses_a_missing_artifact_or_image(
    docker_engine: DockerEngine, tc_server: TCServer, built_app: bytes, tmp_path: Path
) -> None:
    app = tc_server.add_task(artifacts={ARTIFACT: built_app})
    code, _, err = _run_consumer(docker_engine, tc_server, _consumer(
        {"type": "task-image", "taskId": app, "path": ARTIFACT}, "/nothing.txt"), tmp_path)
    assert code == 1
    assert err.splitlines()[-1].startswith(
        "taskgraph-images: error: task KQ3wTfIbSrKnJ1yBvOJOsQ: artifact public/out.txt: no "
        "/nothing.txt in container ")
    assert not (tmp_path / "out" / "public" / "out.txt").exists()
    code, _, err = _run_consumer(docker_engine, tc_server, _consumer("nowhere/none:1"), tmp_path)
    assert code == 1
    assert err == ("taskgraph-images: error: task KQ3wTfIbSrKnJ1yBvOJOsQ: the Docker engine has "
                   "no image nowhere/none:1 (pull or build it first; a local run does not "
                   "pull)\n")
    task = _consumer({"type": "task-image", "taskId": app, "path": ARTIFACT})
    task["payload"]["command"] = ["/bin/busybox", "sh", "-c", "exit 3"]
    code, _, err = _run_consumer(docker_engine, tc_server, task, tmp_path)
    assert code == 1
    lines = err.splitlines()
    assert lines[-1] == "taskgraph-images: error: task KQ3wTfIbSrKnJ1yBvOJOsQ failed (exit 3)"
    assert lines[-2].startswith("taskgraph-images: task KQ3wTfIbSrKnJ1yBvOJOsQ exited 3 after ")
