"""Kept-alive connections for the index's GET calls: opened ahead, reused, bounded."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Optional

import pytest
from clirun import error_line, run_cli
from loopserver import LoopbackServer
from plan_helpers import GECKO
from tcserver import TCServer, make_index

from taskgraph_images._redact import quote_value
from taskgraph_images.errors import ConfigError
from taskgraph_images.index import TaskclusterIndex, _keepalive
from taskgraph_images.index._keepalive import BodyTooLarge, KeptConnections
from taskgraph_images.index.taskcluster import _session
from taskgraph_images.tc.env import Credentials, TaskclusterEnv


class Origin(LoopbackServer):
    """A keep-alive JSON server that counts the connections it accepted.

    ``/json`` answers ``{"path": ...}``; ``/close`` answers and closes;
    ``/slow`` answers after ``delay`` seconds; ``/big`` answers ``size`` bytes.
    """

    def __init__(self) -> None:
        self.connections = 0
        self.requests: list[dict[str, str]] = []
        self.delay = 0.0
        self.size = 0
        self._lock = threading.Lock()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        origin = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                with origin._lock:
                    origin.connections += 1

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                with origin._lock:
                    origin.requests.append(dict(self.headers.items()))
                if self.path == "/slow":
                    time.sleep(origin.delay)
                body = (b"x" * origin.size if self.path == "/big"
                        else json.dumps({"path": self.path}).encode())
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                if self.path == "/close":
                    self.send_header("Connection", "close")
                    self.close_connection = True
                try:
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # a client that gave up
                    self.close_connection = True

        return Handler

    @property
    def url(self) -> str:
        return f"http://{self.host_port}"


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's proxy settings would send the loopback calls through ``requests``."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY", "NETRC"):
        for variant in (name, name.lower()):
            monkeypatch.delenv(variant, raising=False)


@pytest.fixture
def origin() -> Any:
    with Origin() as server:
        yield server


def beside(url: str) -> Optional[KeptConnections]:
    """Connections beside the index's session for ``url`` (the environment's settings)."""
    return KeptConnections.beside(_session(url, 4), url)


def kept(origin: Origin) -> KeptConnections:
    connections = beside(origin.url)
    assert connections is not None
    return connections


def test_closing_closes_the_idle_connections(origin: Origin) -> None:
    connections = kept(origin)
    connections.open_ahead(2, 10.0)
    connections.open_ahead(2, 10.0)
    sockets = [c.sock for c in connections._idle]
    connections.close()
    assert connections.idle == 0
    assert [s.fileno() for s in sockets if s is not None] == [-1, -1]


def eventually(condition: Any, within: float = 5.0) -> bool:
    give_up = time.monotonic() + within
    while not condition():
        if time.monotonic() > give_up:
            return False
        time.sleep(0.01)
    return True


def soon(seconds: float = 10.0) -> float:
    return time.monotonic() + seconds


def test_calls_one_after_another_share_one_connection(origin: Origin) -> None:
    connections = kept(origin)
    answers = [connections.get(f"/json?i={i}", {}, soon()) for i in range(5)]
    assert [json.loads(a.body)["path"] for a in answers] == [f"/json?i={i}" for i in range(5)]
    assert {a.status for a in answers} == {200}
    assert origin.connections == 1 and connections.idle == 1
    # JSON, and no compressed body to undo
    assert origin.requests[0]["Accept"] == "application/json"
    assert origin.requests[0]["Accept-Encoding"] == "identity"


def test_connections_opened_ahead_serve_concurrent_calls(origin: Origin) -> None:
    connections = kept(origin)
    for _ in range(4):  # as the index's warm threads do, one each
        connections.open_ahead(3, 10.0)
    assert connections.idle == 3
    assert eventually(lambda: origin.connections == 3)  # the server accepts in its own time
    barrier = threading.Barrier(3)

    def call() -> None:
        barrier.wait()
        connections.get("/json", {}, soon())

    threads = [threading.Thread(target=call) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(origin.requests) == 3 and origin.connections == 3


def test_opening_ahead_to_a_closed_port_fails_quietly() -> None:
    with Origin() as server:
        url = server.url
    connections = beside(url)
    assert connections is not None
    connections.open_ahead(1, 2.0)  # the call that needs it will say why
    assert connections.idle == 0
    with pytest.raises(ConnectionRefusedError):
        connections.get("/json", {}, soon())


def test_a_connection_the_server_closed_while_idle_is_replaced(origin: Origin) -> None:
    connections = kept(origin)
    connections.get("/json", {}, soon())
    idle = connections._idle[0]
    assert idle.sock is not None
    idle.sock.close()  # as if the server had hung up while it waited
    idle.sock = _Hangup()
    assert json.loads(connections.get("/json", {}, soon()).body) == {"path": "/json"}
    assert origin.connections == 2


class _Hangup:
    """A socket whose other end has gone: sending fails as a reset connection."""

    def settimeout(self, timeout: float) -> None:
        pass

    def sendall(self, data: bytes) -> None:
        raise BrokenPipeError(32, "Broken pipe")

    def close(self) -> None:
        pass


def test_an_answer_that_closes_is_not_kept(origin: Origin) -> None:
    connections = kept(origin)
    connections.get("/close", {}, soon())
    assert connections.idle == 0
    connections.get("/json", {}, soon())
    assert origin.connections == 2 and connections.idle == 1


def test_a_body_larger_than_the_bound_is_refused(origin: Origin,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_keepalive, "MAX_BODY", 1000)
    origin.size = 1001
    connections = kept(origin)
    with pytest.raises(BodyTooLarge):
        connections.get("/big", {}, soon())
    assert connections.idle == 0
    origin.size = 1000
    assert len(connections.get("/big", {}, soon()).body) == 1000


def test_an_answer_later_than_the_deadline_times_out(origin: Origin) -> None:
    origin.delay = 2.0
    connections = kept(origin)
    started = time.monotonic()
    with pytest.raises(TimeoutError):
        connections.get("/slow", {}, soon(0.3))
    assert time.monotonic() - started < 1.5
    assert connections.idle == 0
    with pytest.raises(TimeoutError):  # no time left: nothing is sent
        connections.get("/json", {}, time.monotonic() - 1)


def test_a_proxy_a_netrc_entry_or_another_scheme_leaves_it_to_requests(
        origin: Origin, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert beside(origin.url) is not None
    assert beside("ftp://tc.example.com") is None
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example.com:3128")
    assert beside(origin.url) is None
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert beside(origin.url) is not None
    netrc = tmp_path / "netrc"
    netrc.write_text("machine 127.0.0.1 login me password secret\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    assert beside(origin.url) is None


def test_https_verifies_with_the_bundle_requests_would_use(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import ssl

    import requests.utils

    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    connections = beside("https://tc.example.com")
    assert connections is not None and connections.port == 443
    context = connections._context
    assert context is not None and context.verify_mode == ssl.CERT_REQUIRED
    assert context.check_hostname
    stats = context.cert_store_stats()
    assert stats["x509_ca"] > 0
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "missing.pem"))
    with pytest.raises(FileNotFoundError):  # the bundle named is the one read
        beside("https://tc.example.com")
    assert requests.utils.DEFAULT_CA_BUNDLE_PATH


@pytest.mark.parametrize("content", [None, b"not a certificate\n"])
def test_a_ca_bundle_that_cannot_be_read_is_one_line(
        content: Any, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    """``REQUESTS_CA_BUNDLE`` naming a missing file, or one with no certificate in it,
    stops the plan before any request, in one line naming the bundle."""
    bundle = tmp_path / "bundle.pem"
    if content is not None:
        bundle.write_bytes(content)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(bundle))
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    with pytest.raises(ConfigError, match="REQUESTS_CA_BUNDLE"):
        TaskclusterIndex("https://tc.example.com", env=TaskclusterEnv())
    code, _, err = run_cli(capsys, "plan", "-q", "--root", str(GECKO),
                           "--index", "taskcluster:https://tc.example.com")
    line = error_line(err)
    assert code != 0
    named = quote_value(str(bundle))  # a bounded, escaped prefix, as every value is shown
    assert line.startswith(f"the CA bundle {named} for https://tc.example.com cannot be read (")
    assert line.endswith("): check REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE")
    assert "not a certificate" not in line  # the bundle's content is never shown


# -- through the index -----------------------------------------------------------------------------


def test_the_index_signs_its_get_calls_with_hawk(tc_server: TCServer) -> None:
    """With credentials, a ``latestArtifactInfo`` on a kept connection carries a
    Hawk header that verifies with those credentials, for that URL."""
    import mohawk

    headers: list[str] = []
    task_id = tc_server.add_task()
    index = make_index(tc_server, env=TaskclusterEnv(credentials=Credentials("me", "secret")))
    assert index._kept is not None
    real = index._kept.get

    def spy(target: str, extra: dict[str, str], deadline: float) -> Any:
        headers.append(extra["Authorization"])
        return real(target, extra, deadline)

    index._kept.get = spy  # type: ignore[method-assign]
    assert index.artifact_expiries([task_id], "public/image.tar.zst")[task_id] is not None
    assert tc_server.signed == ["latestArtifactInfo"]
    url = index._queue.buildUrl("latestArtifactInfo", task_id, "public/image.tar.zst")
    mohawk.Receiver(lambda _id: {"id": "me", "key": "secret", "algorithm": "sha256"},
                    headers[0], url, "GET", content="", content_type="",
                    accept_untrusted_content=True)


def test_behind_a_proxy_the_index_asks_through_requests(
        tc_server: TCServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """The environment's proxy is honoured: the loopback server, named as the
    proxy, sees the calls (``requests`` sends them in absolute form)."""
    monkeypatch.setenv("HTTP_PROXY", tc_server.root_url)
    task_id = tc_server.add_task()
    index = make_index(tc_server)
    assert index._kept is None
    assert index.artifact_expiries([task_id], "public/image.tar.zst")[task_id] is not None
    assert tc_server.count("latestArtifactInfo") == 1
