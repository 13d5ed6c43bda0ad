"""``taskgraph-images context|build|save|load`` end to end, with a private dockerd."""

from __future__ import annotations

import io
import json
import re
import tarfile
from pathlib import Path

import pytest
import zstandard
from clirun import run_cli
from dockerd import DockerEngine

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.context import write_context


def test_context_command_writes_the_deterministic_tar(
    busybox_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, _ = run_cli(capsys, "context", "app", "-o", str(tmp_path / "a.tar"),
                         "--root", str(busybox_repo))
    write_context(ImageCatalog.load(busybox_repo), "app", tmp_path / "b.tar")
    assert code == 0 and (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()


def test_load_refuses_a_traversal_member(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("/etc/passwd")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    (tmp_path / "bad.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    code, _, err = run_cli(capsys, "load", str(tmp_path / "bad.tar.zst"),
                           "--output", str(tmp_path / "o.tar"))
    assert code == 1 and "absolute path" in err and err.count("\n") == 1
    assert not (tmp_path / "o.tar").exists()


def test_build_without_an_engine_says_how_to_start_it(
    busybox_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    code, _, err = run_cli(capsys, "build", "app", "--root", str(busybox_repo))
    assert code == 1 and "start it" in err and err.count("\n") == 1


@pytest.mark.docker
def test_build_prebuilt_prints_the_push_command(
    docker_engine: DockerEngine, busybox_repo: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    code, out, _ = run_cli(capsys, "build", "base", "--root", str(busybox_repo))
    assert code == 0 and "Successfully tagged tgi-test/base:1.0" in out
    assert out.rstrip().endswith("docker push tgi-test/base:1.0")


@pytest.mark.docker
def test_build_task_image_warns_it_is_local_only(
    docker_engine: DockerEngine, busybox_repo: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    code, out, err = run_cli(capsys, "build", "app", "--root", str(busybox_repo), "--no-cache",
                             "--build-arg", "UNUSED=1")
    assert code == 0 and "Successfully tagged app:latest" in out
    assert "only meant to run locally" in err


@pytest.mark.docker
def test_failed_build_exits_1_with_the_engines_error(
    docker_engine: DockerEngine, busybox_repo: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    code, out, err = run_cli(capsys, "build", "broken", "--root", str(busybox_repo))
    assert code == 1 and "about to fail" in out
    assert re.search(r"error: building broken:latest failed: .*non-zero code: 3", err)


@pytest.mark.docker
def test_build_of_an_unknown_image_names_it(
    docker_engine: DockerEngine, busybox_repo: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(capsys, "build", "nope", "--root", str(busybox_repo))
    assert code == 1 and "unknown image 'nope'" in err


@pytest.mark.docker
def test_save_then_load_retagged_runs(
    docker_engine: DockerEngine, busybox_repo: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    assert run_cli(capsys, "build", "app", "--root", str(busybox_repo))[0] == 0
    code, _, err = run_cli(capsys, "save", "app:latest", "-o", str(tmp_path / "i.tar.zst"),
                           "--zstd-level", "5", "--threads", "1")
    assert code == 0 and "saved app:latest" in err
    code, out, _ = run_cli(capsys, "load", str(tmp_path / "i.tar.zst"), "-t", "cli/app:9")
    assert code == 0 and out == "Loaded image: cli/app:9\n"
    assert docker_engine.run("cli/app:9", "/bin/busybox", "cat", "/app.txt") == "app-ok\n"


@pytest.mark.docker
def test_load_stops_at_max_size(
    docker_engine: DockerEngine, busybox_repo: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    assert run_cli(capsys, "build", "base", "--root", str(busybox_repo))[0] == 0
    assert run_cli(capsys, "save", "tgi-test/base:1.0", "-o", str(tmp_path / "b.tar.zst"))[0] == 0
    code, _, err = run_cli(capsys, "load", str(tmp_path / "b.tar.zst"), "-t", "big:1",
                           "--max-size", "100K")
    assert code == 1 and "more than 100.0 KiB (the limit" in err
    assert not docker_engine.engine.exists("big:1")


@pytest.fixture
def local_engine(docker_engine: DockerEngine, monkeypatch: pytest.MonkeyPatch) -> DockerEngine:
    """The private engine at DOCKER_HOST, and no Taskcluster: the local loop."""
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    monkeypatch.delenv("TASKCLUSTER_ROOT_URL", raising=False)
    monkeypatch.delenv("TASKCLUSTER_PROXY_URL", raising=False)
    return docker_engine


@pytest.mark.docker
def test_record_then_index_finds_it_and_load_by_task_id(
    local_engine: DockerEngine, busybox_repo: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from taskgraph_images.index import LocalIndex, find_image

    index_arg = f"local:{tmp_path / 'idx' / 'index.db'}"
    code, out, _ = run_cli(capsys, "build", "app", "--root", str(busybox_repo), "--record",
                           "--index", index_arg)
    assert code == 0
    match = re.search(r"recorded app as task (\S+) at level 3", out)
    assert match
    task_id = match.group(1)
    catalog = ImageCatalog.load(busybox_repo)
    lookup = find_image(LocalIndex(tmp_path / "idx" / "index.db"), "app", catalog.digest("app"), 3)
    assert lookup.reuse and lookup.found is not None and lookup.found.task_id == task_id
    code, out, _ = run_cli(capsys, "load", task_id, "--index", index_arg, "-t", "recorded:1")
    assert code == 0 and out == "Loaded image: recorded:1\n"
    code, out, _ = run_cli(capsys, "load", "app", "--index", index_arg, "-t", "byname:1",
                           "--root", str(busybox_repo))
    assert code == 0 and out == "Loaded image: byname:1\n"
    assert local_engine.run("byname:1", "/bin/busybox", "cat", "/app.txt") == "app-ok\n"


@pytest.mark.docker
def test_record_takes_the_from_image_the_engine_has_instead_of_pulling_it(
    local_engine: DockerEngine, busybox_repo: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Offline: ``FROM offline-test/from:1`` is in no registry, only in the engine."""
    import shutil

    repo = tmp_path / "repo"
    shutil.copytree(busybox_repo, repo, symlinks=True)
    assert run_cli(capsys, "build", "base", "--root", str(repo))[0] == 0
    local_engine.engine.tag("tgi-test/base:1.0", "offline-test/from:1")
    outside = repo / "taskcluster" / "docker" / "outside"
    outside.mkdir()
    (outside / "Dockerfile").write_text(
        "FROM offline-test/from:1\n"
        'RUN ["/bin/busybox", "sh", "-c", "echo outside-ok > /outside.txt"]\n')
    kind = repo / "taskcluster" / "kinds" / "docker-image" / "kind.yml"
    kind.write_text(kind.read_text() + "    outside: {}\n")
    code, out, err = run_cli(capsys, "build", "outside", "--root", str(repo), "--record",
                             "--index", f"local:{tmp_path / 'idx' / 'index.db'}")
    assert code == 0, err
    assert "using the Docker engine's copy of offline-test/from:1 (not pulled from its " \
        "registry)" in err
    assert re.search(r"recorded outside as task \S+ at level 3", out)
    # Sizes as people read them, and no warning about DOCKER_IMAGE_PARENT.
    assert re.search(r"image\.tar\.zst: [\d.]+ (B|KiB|MiB), [\d.]+ (B|KiB|MiB) at zstd level", err)
    assert "not consumed" not in out + err


@pytest.mark.docker
def test_build_record_with_taskgraph_keys_records_where_plan_load_and_why_look(
    busybox_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With cache-keys: taskgraph, ``build --record`` indexes each build under taskgraph's
    namespaces, as a push's build task would: ``plan`` reuses it, ``load NAME`` finds it and
    ``plan``/``why`` explain the next build from its manifest."""
    import shutil

    from taskgraph_images.index import LocalIndex

    monkeypatch.delenv("TASKCLUSTER_ROOT_URL", raising=False)
    monkeypatch.delenv("TASKCLUSTER_PROXY_URL", raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    repo = tmp_path / "repo"
    shutil.copytree(busybox_repo, repo, symlinks=True)
    app = repo / "taskcluster/docker/app"
    (app / "Dockerfile").write_text(
        (app / "Dockerfile").read_text().replace("FROM tgi-test/base:1.0", "FROM $DOCKER_IMAGE_PARENT"))
    (repo / "taskcluster/taskgraph-images.yml").write_text(
        "cache-keys: taskgraph\ntrust-domain: myproject\n"
        "image-builder: taskcluster/image_builder:4.0.0\n")
    path = tmp_path / "idx" / "index.db"
    index_arg = f"local:{path}"
    catalog = ImageCatalog.load(repo, cache_keys="taskgraph")
    code, out, err = run_cli(capsys, "build", "app", "--root", str(repo), "--record",
                             "--index", index_arg, "--level", "2", "--json")
    assert code == 0, err
    records = {r["name"]: r for r in json.loads(out)}
    assert {n: r["digest"] for n, r in records.items()} == \
        {n: catalog.digest(n) for n in ("base", "app")}
    local = LocalIndex(path)
    for name, r in records.items():
        base = f"myproject.cache.level-2.docker-images.v2.{name}"
        for namespace in (f"{base}.hash.{r['digest']}", f"{base}.latest"):
            entry = local.find_task(namespace)
            assert entry is not None and entry.task_id == r["task_id"], namespace

    plan_argv = ["plan", "--root", str(repo), "--index", index_arg, "--json", "--level", "2",
                 "--pushdate", "1478546787"]
    code, out, err = run_cli(capsys, *plan_argv)
    assert code == 0, err
    images = json.loads(out)["images"]
    assert {n: (images[n]["action"], images[n]["task_id"]) for n in records} == \
        {n: ("reuse", r["task_id"]) for n, r in records.items()}
    # A level-3 push never trusts a level-2 build.
    code, _, err = run_cli(capsys, "load", "app", "--root", str(repo), "--index", index_arg,
                           "-o", str(tmp_path / "l3.tar"))
    assert code == 1 and "is not in the local index" in err and "at level 3" in err
    code, _, err = run_cli(capsys, "load", "app", "--root", str(repo), "--index", index_arg,
                           "--level", "2", "-o", str(tmp_path / "app.tar"))
    assert code == 0, err
    with tarfile.open(tmp_path / "app.tar") as tar:
        assert "manifest.json" in tar.getnames()

    (app / "run.sh").write_text("echo changed\n")
    code, out, err = run_cli(capsys, *plan_argv)
    assert code == 0, err
    planned = json.loads(out)["images"]["app"]
    assert planned["action"] == "build"
    assert planned["reason"] == "not indexed; 1 file changed (run.sh), 0 added, 0 removed"
    assert planned["compared_with"] == records["app"]["task_id"]
    code, out, err = run_cli(capsys, "why", "app", "--root", str(repo), "--index", index_arg,
                             "--level", "2")
    assert code == 0, err
    assert out.splitlines()[:2] == [
        "app: 1 file changed (run.sh), 0 added, 0 removed",
        f"compared with task {records['app']['task_id']} (level 2)"]


@pytest.mark.docker
def test_build_record_json_says_what_was_built_and_what_was_reused(
    busybox_repo: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``build --record`` goes through the in-task builder (buildah, no engine): its log is on
    stderr with --json, an ancestor recorded at its digest is reused, not rebuilt."""
    monkeypatch.delenv("TASKCLUSTER_ROOT_URL", raising=False)
    monkeypatch.delenv("TASKCLUSTER_PROXY_URL", raising=False)
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    index_arg = f"local:{tmp_path / 'idx' / 'index.db'}"
    catalog = ImageCatalog.load(busybox_repo)
    code, out, err = run_cli(capsys, "build", "app", "--root", str(busybox_repo), "--record",
                             "--index", index_arg, "--level", "2", "--json")
    assert code == 0, err
    [app] = json.loads(out)
    assert app == {"name": "app", "tag": "app:latest", "digest": catalog.digest("app"),
                   "task_id": app["task_id"], "level": 2, "reused": False}
    assert "COMMIT app:latest" in err
    code, out, err = run_cli(capsys, "build", "kinded", "--root", str(busybox_repo), "--record",
                             "--index", index_arg, "--level", "2", "--json")
    assert code == 0, err
    first, kinded = json.loads(out)
    assert first == dict(app, reused=True)
    assert (kinded["name"], kinded["reused"], kinded["level"]) == ("kinded", False, 2)
    assert f"fetching the parent image app from task {app['task_id']}" in err
