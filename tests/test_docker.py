"""The Engine API client and the local build, with and without a Docker engine.

Without one, a tiny HTTP server on loopback TCP stands in for the engine and
answers each Engine API call as told, so that every way an engine can refuse
(an error status with a JSON or a plain-text body, an error inside a stream of
progress messages, an answer of the wrong shape) is checked to come out as one
:class:`~taskgraph_images.errors.DockerError` line quoting the engine. The
tests marked ``docker`` drive a real private dockerd (``tests/support/dockerd.py``):
builds (of the Dockerfile forms taskgraph's own images use, too) and the image
round trip.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import tarfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Iterator

import pytest
import zstandard
from dockerd import BUSYBOX, DockerEngine, require_or_skip
from told import Told
from trees import make_tree

from taskgraph_images.builder.local import build_image
from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.context import write_context
from taskgraph_images.errors import ArtifactError, DockerError, DockerUnavailableError, ImageBuildError
from taskgraph_images.images.artifacts import load_image, save_image
from taskgraph_images.images.engine import Engine, parse_json_stream

# -- without an engine ---------------------------------------------------------------


def test_missing_socket_says_how_to_start_docker(tmp_path: Path) -> None:
    with pytest.raises(DockerUnavailableError, match="start it"):
        Engine(f"unix://{tmp_path}/nothing.sock").ping()


def test_unsupported_docker_host_is_refused() -> None:
    with pytest.raises(DockerUnavailableError, match="ssh://x"):
        Engine("ssh://x")


def test_json_stream_keeps_the_incomplete_message() -> None:
    assert parse_json_stream('{"a": 1}{"b"') == ([{"a": 1}], '{"b"')


class _Chunks:
    """Stands in for an HTTP response that returns the given pieces, one per read."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)

    def read1(self, size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


def test_progress_messages_survive_a_character_split_between_reads() -> None:
    from taskgraph_images.images.engine import iter_messages

    data = '{"stream": "caf\u00e9 \u2713"}\r\n{"aux": {"ID": "sha256:1"}}\n'.encode()
    cut = data.index(b"\xc3") + 1  # inside the two-byte "é"
    pieces = [data[:cut], data[cut:cut + 5], data[cut + 5:]]
    messages = list(iter_messages(_Chunks(pieces)))  # type: ignore[arg-type]
    assert messages == [{"stream": "caf\u00e9 \u2713"}, {"aux": {"ID": "sha256:1"}}]


class FakeEngine:
    """Answers ``(METHOD, path prefix)`` with a fixed ``(status, body)``; records load bodies."""

    def __init__(self) -> None:
        self.answers: dict[tuple[str, str], tuple[int, bytes]] = {}
        self.loaded = bytearray()
        #: ``(METHOD, path)`` of every call, in order.
        self.calls: list[tuple[str, str]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self) -> None:
                if self.headers.get("Transfer-Encoding") == "chunked":
                    while True:
                        size = int(self.rfile.readline().strip(), 16)
                        fake.loaded += self.rfile.read(size)
                        self.rfile.readline()
                        if size == 0:
                            break
                path = self.path.split("?", 1)[0]
                fake.calls.append((self.command, path))
                status, body = next(
                    (a for (m, p), a in fake.answers.items() if m == self.command and path.startswith(p)),
                    (404, b'{"message": "no such route"}'),
                )
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _answer

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05})
        self.thread.start()
        host, port = self.server.server_address[:2]
        self.engine = Engine(f"tcp://{host!s}:{port}", timeout=5)

    def answer(self, method: str, path: str, status: int, body: Any = b"") -> None:
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.answers[(method, path)] = (status, data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def fake() -> Iterator[FakeEngine]:
    engine = FakeEngine()
    yield engine
    engine.close()


def test_an_engine_that_answers_a_ping_with_an_error_is_unavailable(fake: FakeEngine) -> None:
    fake.answer("GET", "/_ping", 500, b"down")
    with pytest.raises(DockerUnavailableError, match=r"answered HTTP 500 to a ping: .*start"):
        fake.engine.ping()


def test_an_engine_that_answers_a_ping_is_there(fake: FakeEngine) -> None:
    fake.answer("GET", "/_ping", 200, b"OK")
    assert fake.engine.ping() is None
    assert fake.calls == [("GET", "/_ping")]


def test_a_closed_tcp_port_is_an_unreachable_engine() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(DockerUnavailableError, match=f"cannot reach the Docker engine at tcp://127.0.0.1:{port}"):
        Engine(f"tcp://127.0.0.1:{port}").ping()


@pytest.mark.parametrize(("body", "says"), [
    ({"message": "  disk on fire \n"}, "disk on fire"),
    (b"plain text trouble", "plain text trouble"),
    (b"", "HTTP 500"),
    (b'{"message": ""}', '{"message": ""}'),
])
def test_an_inspect_error_quotes_the_engine(fake: FakeEngine, body: Any, says: str) -> None:
    fake.answer("GET", "/images/", 500, body)
    with pytest.raises(DockerError) as info:
        fake.engine.inspect("app:latest")
    assert str(info.value) == f"cannot inspect image app:latest: {says}"


def test_an_inspect_answer_that_is_not_an_object_is_an_error(fake: FakeEngine) -> None:
    fake.answer("GET", "/images/", 200, [1, 2])
    with pytest.raises(DockerError, match="unexpected answer from the engine"):
        fake.engine.inspect("app")


def test_an_unknown_image_does_not_exist(fake: FakeEngine) -> None:
    fake.answer("GET", "/images/", 404, {"message": "No such image"})
    assert fake.engine.exists("app") is False


def test_a_refused_tag_or_remove_quotes_the_engine(fake: FakeEngine) -> None:
    fake.answer("POST", "/images/", 409, {"message": "conflict"})
    fake.answer("DELETE", "/images/", 409, {"message": "image is in use"})
    with pytest.raises(DockerError, match="cannot tag image app as other/app:2: conflict"):
        fake.engine.tag("app", "other/app:2")
    with pytest.raises(DockerError, match="cannot remove image app: image is in use"):
        fake.engine.remove("app", force=True)


@pytest.mark.parametrize(("status", "says"), [
    (404, r"no image app in the Docker engine \(gone\)"),
    (500, "cannot save image app: gone"),
])
def test_a_refused_save_is_an_error_before_the_first_chunk(fake: FakeEngine, status: int, says: str) -> None:
    fake.answer("GET", "/images/app/get", status, {"message": "gone"})
    with pytest.raises(DockerError, match=says):
        next(fake.engine.save("app"))


def test_load_returns_the_engines_messages(fake: FakeEngine) -> None:
    fake.answer("POST", "/images/load", 200, b'{"stream": "Loaded image: app:1\\n"}')
    assert fake.engine.load([b"tar", b"", b"ball"]) == ["Loaded image: app:1"]
    assert bytes(fake.loaded) == b"tarball"


@pytest.mark.parametrize(("status", "body", "says"), [
    (500, {"message": "invalid tar header"}, "docker load failed: invalid tar header"),
    (200, b'{"stream": "Loading"}{"errorDetail": {"message": "no space left"}, "error": "no space left"}',
     "docker load failed: no space left"),
])
def test_a_refused_load_quotes_the_engine(fake: FakeEngine, status: int, body: Any, says: str) -> None:
    fake.answer("POST", "/images/load", status, body)
    with pytest.raises(DockerError, match=says):
        fake.engine.load([b"tarball"])


def test_docker_host_comes_from_the_environment() -> None:
    engine = Engine.from_env({"DOCKER_HOST": "tcp://docker.example:2376"})
    assert repr(engine) == "<Engine tcp://docker.example:2376>"
    assert "unix://" in repr(Engine.from_env({}))


# -- a real private dockerd (the docker mark) ----------------------------------------


@pytest.fixture(scope="module")
def built(docker_engine: DockerEngine, busybox_repo: Path) -> ImageCatalog:
    """The base (prebuilt), app (in-tree parent) and kinded images, built once."""
    catalog = ImageCatalog.load(busybox_repo)
    build_image(docker_engine.engine, catalog, "kinded")
    return catalog


@pytest.mark.docker
def test_build_tags_prebuilt_and_task_images(docker_engine: DockerEngine, built: ImageCatalog) -> None:
    engine = docker_engine.engine
    assert engine.exists("tgi-test/base:1.0") and engine.exists("app:latest")


@pytest.mark.docker
def test_built_image_runs_with_parent_content(docker_engine: DockerEngine, built: ImageCatalog) -> None:
    assert docker_engine.run("app:latest", "/bin/busybox", "sh", "/run.sh") == "base-ok\napp-ok\n"


@pytest.mark.docker
def test_kind_config_args_and_parent_reach_the_build(
    docker_engine: DockerEngine, built: ImageCatalog
) -> None:
    out = docker_engine.run("kinded:latest", "/bin/busybox", "cat", "/greeting.txt", "/app.txt")
    assert out == "hello-from-args\napp-ok\n"


@pytest.mark.docker
def test_present_parents_are_reused(docker_engine: DockerEngine, built: ImageCatalog) -> None:
    done = build_image(docker_engine.engine, built, "app")
    assert [(b.name, b.reused) for b in done] == [("base", True), ("app", False)]


@pytest.mark.docker
def test_failing_run_raises_the_engines_error(
    docker_engine: DockerEngine, built: ImageCatalog
) -> None:
    told = Told()
    with pytest.raises(ImageBuildError, match="non-zero code: 3"):
        build_image(docker_engine.engine, built, "broken", reporter=told)
    assert "about to fail" in "".join(told.output_text)


@pytest.mark.docker
def test_docker_cli_accepts_the_context_tarball(
    docker_engine: DockerEngine, built: ImageCatalog, tmp_path: Path
) -> None:
    write_context(built, "app", tmp_path / "ctx.tar.gz")
    with open(tmp_path / "ctx.tar.gz", "rb") as f:
        done = subprocess.run(
            ["docker", "build", "-q", "-t", "cli-built:1", "-"], stdin=f, env=docker_engine.env,
            capture_output=True, text=True, timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert docker_engine.run("cli-built:1", "/bin/busybox", "cat", "/app.txt") == "app-ok\n"


@pytest.mark.docker
def test_inspect_of_an_unknown_image_is_none(docker_engine: DockerEngine) -> None:
    assert docker_engine.engine.inspect("no-such-image:0") is None


@pytest.mark.docker
def test_saving_an_unknown_image_is_an_error(docker_engine: DockerEngine, tmp_path: Path) -> None:
    with pytest.raises(DockerError, match="no-such-image"):
        save_image(docker_engine.engine, "no-such-image:0", tmp_path / "x.tar.zst")
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def saved(
    docker_engine: DockerEngine, built: ImageCatalog, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("saved")
    save_image(docker_engine.engine, "app:latest", folder / "app.tar.zst", threads=2)
    return folder / "app.tar.zst"


@pytest.mark.docker
def test_save_remove_load_retagged_and_run(docker_engine: DockerEngine, saved: Path) -> None:
    engine = docker_engine.engine
    engine.tag("app:latest", "roundtrip:keep")
    engine.remove("roundtrip:keep")
    result = load_image(str(saved), engine=engine, tag="roundtrip/app:v2")
    assert result.messages == ("Loaded image: roundtrip/app:v2",)
    assert docker_engine.run("roundtrip/app:v2", "/bin/busybox", "sh", "/run.sh") == (
        "base-ok\napp-ok\n"
    )


@pytest.mark.docker
def test_truncated_artifact_loads_nothing(docker_engine: DockerEngine, saved: Path,
                                          tmp_path: Path) -> None:
    (tmp_path / "t.tar.zst").write_bytes(saved.read_bytes()[:-3])
    with pytest.raises(ArtifactError, match="truncated"):
        load_image(str(tmp_path / "t.tar.zst"), engine=docker_engine.engine, tag="trunc:1")
    assert not docker_engine.engine.exists("trunc:1")


@pytest.mark.docker
def test_tar_cut_at_a_member_boundary_loads_nothing(
    docker_engine: DockerEngine, saved: Path, tmp_path: Path
) -> None:
    with open(saved, "rb") as f:
        plain = zstandard.ZstdDecompressor().stream_reader(f).read()
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        members = tar.getmembers()
    cut = members[-1].offset  # everything before the last member (repositories)
    (tmp_path / "c.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(plain[:cut]))
    with pytest.raises(ArtifactError, match="truncated tar"):
        load_image(str(tmp_path / "c.tar.zst"), engine=docker_engine.engine, tag="cut:1")
    assert not docker_engine.engine.exists("cut:1")


@pytest.mark.docker
def test_engine_refusing_an_archive_is_a_docker_error(docker_engine: DockerEngine) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DockerError, match="docker load failed"):
        docker_engine.engine.load([buf.getvalue()])


# Dockerfiles in the forms taskgraph's own images use.

D = "taskcluster/docker"
KIND = "taskcluster/kinds/docker-image/kind.yml"
BASE = 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'


@pytest.fixture
def tg_repo(tmp_path: Path) -> Path:
    if not os.path.exists(BUSYBOX):
        require_or_skip(f"{BUSYBOX} is missing (apt-get install busybox-static)")
    make_tree(tmp_path, {
        f"{D}/tgbase/Dockerfile": BASE,
        # No ARG above it: the form taskgraph's images use.
        f"{D}/tgchild/Dockerfile": "FROM $DOCKER_IMAGE_PARENT\n# %include-run-task\n"
                                   "RUN echo child > /child\n",
        f"{D}/tgbraces/Dockerfile": "FROM ${DOCKER_IMAGE_PARENT}\nRUN echo braces > /braces\n",
        KIND: "task-defaults:\n  parent: tgbase\n"
              "tasks:\n  tgbase: {parent: null}\n  tgchild: {}\n  tgbraces: {}\n",
        **{f"tools/rt/{n}": f"{n}-script\n"
           for n in ("run-task", "fetch-content", "hgrc", "robustcheckout.py")},
    })
    shutil.copy(BUSYBOX, tmp_path / D / "tgbase" / "busybox")
    return tmp_path


@pytest.mark.docker
def test_from_docker_image_parent_without_an_arg_builds(docker_engine: DockerEngine,
                                                        tg_repo: Path) -> None:
    catalog = ImageCatalog.load(tg_repo, run_task="tools/rt")
    assert catalog["tgchild"].parent == "tgbase"  # from task-defaults
    build_image(docker_engine.engine, catalog, "tgchild")
    build_image(docker_engine.engine, catalog, "tgbraces")
    out = docker_engine.run("tgchild:latest", "/bin/busybox", "cat", "/child",
                            "/usr/local/bin/run-task", "/etc/mercurial/hgrc.d/mozilla.rc")
    assert out == "child\nrun-task-script\nhgrc-script\n"
    assert docker_engine.run("tgbraces:latest", "/bin/busybox", "cat", "/braces") == "braces\n"
