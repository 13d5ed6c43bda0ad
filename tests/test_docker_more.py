"""The Engine API client's error handling, against a fake engine on loopback TCP.

``tests/test_docker.py`` drives a real private dockerd; here a tiny HTTP
server answers each Engine API call as told, so that every way an engine can
refuse (an error status with a JSON or a plain-text body, an error inside a
stream of progress messages, an answer of the wrong shape) is checked to
come out as one :class:`~taskgraph_images.errors.DockerError` line quoting
the engine.
"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Iterator

import pytest

from taskgraph_images.docker import Engine
from taskgraph_images.errors import DockerError, DockerUnavailableError


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
