"""A loopback Taskcluster server for tests: the Index and Queue, with faults.

:class:`TCServer` is a real HTTP server on 127.0.0.1 (ephemeral port) that
serves, under the real routes of ``tests/data/taskcluster/references/*/v1/api.json``
(``/api/index/v1/...``, ``/api/queue/v1/...``):

- Index: ``findTask``, ``findTasksAtIndex``, ``insertTask``, ``listTasks``;
- Queue: ``ping``, ``status``, ``statuses``, ``latestArtifactInfo``,
  ``listLatestArtifacts``, ``getLatestArtifact`` (303 to ``/blobs/...``,
  which it also serves, with ``Range``), ``createTask`` (idempotent for the
  same body, 409 for another, 400 when a dependency does not exist), ``task``.

:meth:`TCServer.complete_task` resolves a created task with its artifacts and
indexes it at its routes, as the Queue and the Index do when a worker
reports success.

Request and response bodies are validated against the schemas (a bad request
gets the services' 400 ``InputValidationError``; a bad response is recorded
in :attr:`TCServer.schema_errors` and answered 500). Errors have the services'
shape ``{"code": ..., "message": ..., "requestInfo": ...}``.

Faults, per test: :attr:`TCServer.latency` (seconds added to every request),
:meth:`TCServer.inject` (an HTTP status, a dropped connection, a slow answer,
a malformed JSON body or a continuation token that never ends, for ``count``
requests or forever, after ``after`` requests, on one endpoint or all) and
:meth:`TCServer.disable` (an endpoint answers 404 or 405).
:attr:`TCServer.peak` is the most requests handled at once since the last reset;
:meth:`TCServer.in_sequence` how many were answered one after another. Benchmarks
may turn off :attr:`TCServer.validate_requests` and
:attr:`TCServer.validate_responses` (the tests keep both on): a real service's
CPU is not the client's machine's.

Fixtures (pulled into ``conftest.py``): ``tc_server_session`` (one server per
session), ``tc_server`` (the same server, reset before and after each test)
and ``tc_index`` (a :class:`~taskgraph_images.index.TaskclusterIndex` on it
with small retries and timeout).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import re
import socket
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Iterator, Mapping, Optional

import attrs
import pytest
import slugid
from loopserver import LoopbackServer
from tcschemas import TASKCLUSTER_DATA, Schemas

__all__ = [
    "Fault",
    "TCServer",
    "new_task_id",
    "tc_index",
    "tc_server",
    "tc_server_session",
]

IMPLEMENTED = {
    "index": ("findTask", "findTasksAtIndex", "insertTask", "listTasks"),
    "queue": (
        "ping",
        "status",
        "statuses",
        "latestArtifactInfo",
        "listLatestArtifacts",
        "getLatestArtifact",
        "createTask",
        "task",
    ),
}
PAGE_SIZE = 1000
DEFAULT_ARTIFACT = "public/image.tar.zst"


def new_task_id() -> str:
    """Return a fresh "nice" slugid."""
    return str(slugid.nice())


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _iso(when: datetime.datetime) -> str:
    when = when.astimezone(datetime.timezone.utc)
    return when.strftime("%Y-%m-%dT%H:%M:%S.") + f"{when.microsecond // 1000:03d}Z"


def _parse(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))


@attrs.define
class Fault:
    """One injected fault. ``count=None`` means forever."""

    kind: str  # "status" | "drop" | "slow" | "malformed" | "stuck"
    endpoint: Optional[str] = None
    status: int = 503
    delay: float = 0.0
    count: Optional[int] = None
    #: Matching requests let through before the fault starts.
    after: int = 0


@attrs.define
class _Route:
    service: str
    name: str
    method: str
    pattern: re.Pattern[str]
    input: Optional[str]
    output: Optional[str]


class _Reply(Exception):
    """Raised by a handler to answer with an error."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


class TCServer(LoopbackServer):
    """The loopback Index and Queue. Use :meth:`start` / :meth:`stop`, or the fixtures."""

    def __init__(self, data: Path = TASKCLUSTER_DATA) -> None:
        self.data = Path(data)
        self.schemas = Schemas(self.data)
        self.routes = self._load_routes()
        self._lock = threading.Lock()
        self.reset()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        return _make_handler(self)

    @property
    def root_url(self) -> str:
        """``http://127.0.0.1:PORT``: the rootUrl to give the client."""
        return f"http://{self.host_port}"

    def reset(self) -> None:
        """Forget all state, faults and counters."""
        with self._lock:
            self.index: dict[str, dict[str, Any]] = {}
            self.tasks: dict[str, dict[str, Any]] = {}
            self.definitions: dict[str, dict[str, Any]] = {}
            self.artifacts: dict[tuple[str, str], dict[str, Any]] = {}
            self.faults: list[Fault] = []
            self.disabled: dict[str, int] = {}
            self.latency = 0.0
            self.requests: list[str] = []
            #: The endpoints of the requests that came signed (with an Authorization header).
            self.signed: list[str] = []
            #: (start, end) of every request answered, on the monotonic clock.
            self.spans: list[tuple[float, float]] = []
            # The requests of this generation (since this reset) being answered right now,
            # and the most at once. A request of an earlier test still being answered (a
            # slow fault its client gave up on) counts in neither, nor in spans.
            self.generation = getattr(self, "generation", 0) + 1
            self.active = 0
            self.peak = 0
            self.schema_errors: list[str] = []
            self.validate_responses = True
            self.validate_requests = True

    # -- planting state -----------------------------------------------------------

    def add_task(
        self,
        task_id: Optional[str] = None,
        *,
        state: str = "completed",
        artifacts: Optional[Mapping[str, bytes]] = None,
        artifact_expires: Optional[datetime.datetime] = None,
    ) -> str:
        """Create a task in ``state`` with ``artifacts`` (default: a small image artifact)."""
        task_id = task_id or new_task_id()
        now = _now()
        run: dict[str, Any] = {
            "runId": 0,
            "state": state,
            "reasonCreated": "scheduled",
            "scheduled": _iso(now),
        }
        if state in ("completed", "failed", "exception"):
            run.update(
                started=_iso(now),
                resolved=_iso(now),
                reasonResolved={"exception": "internal-error"}.get(state, state),
                workerGroup="loopback",
                workerId="worker-1",
                takenUntil=_iso(now),
            )
        status = {
            "taskId": task_id,
            "provisionerId": "proj-loopback",
            "workerType": "images",
            "taskQueueId": "proj-loopback/images",
            "schedulerId": "-",
            "projectId": "none",
            "taskGroupId": task_id,
            "deadline": _iso(now + datetime.timedelta(days=1)),
            "expires": _iso(now + datetime.timedelta(days=400)),
            "retriesLeft": 5,
            "state": state,
            "runs": [run] if state != "unscheduled" else [],
        }
        with self._lock:
            self.tasks[task_id] = status
        if artifacts is None:
            artifacts = {DEFAULT_ARTIFACT: b"\x28\xb5\x2f\xfd image " + task_id.encode()}
        for name, content in artifacts.items():
            self.add_artifact(task_id, name, content, expires=artifact_expires)
        return task_id

    def add_artifact(
        self,
        task_id: str,
        name: str,
        content: bytes = b"",
        *,
        expires: Optional[datetime.datetime] = None,
        storage_type: str = "s3",
    ) -> None:
        """Give ``task_id`` an artifact (``expires`` in the past: expired, not yet deleted)."""
        with self._lock:
            self.artifacts[(task_id, name)] = {
                "storageType": storage_type,
                "name": name,
                "contentType": "application/zstd",
                "expires": _iso(expires or _now() + datetime.timedelta(days=365)),
                "content": content,
            }

    def add_definition(self, task_id: str, body: Mapping[str, Any]) -> None:
        """Give ``queue.task`` the definition of planted task ``task_id`` (a ``createTask``
        body; the answer adds the Queue's defaults)."""
        with self._lock:
            self.definitions[task_id] = dict(body)

    def index_task(
        self,
        namespace: str,
        task_id: str,
        *,
        rank: float = 0,
        expires: Optional[datetime.datetime] = None,
        data: Optional[dict[str, Any]] = None,
    ) -> None:
        """Index ``task_id`` at ``namespace`` (no rank check)."""
        with self._lock:
            self.index[namespace] = {
                "namespace": namespace,
                "taskId": task_id,
                "rank": rank,
                "data": data or {},
                "expires": _iso(expires or _now() + datetime.timedelta(days=365)),
            }

    # -- faults and counters ----------------------------------------------------------

    def inject(
        self,
        endpoint: Optional[str] = None,
        *,
        status: Optional[int] = None,
        drop: bool = False,
        delay: Optional[float] = None,
        malformed: bool = False,
        stuck: bool = False,
        count: Optional[int] = None,
        after: int = 0,
    ) -> Fault:
        """Add a fault on ``endpoint`` (an API method name, ``"blob"``, or all when None).

        Exactly one of ``status`` (answer that code), ``drop`` (close the
        connection without answering), ``delay`` (answer normally after that
        many seconds), ``malformed`` (answer 200 with broken JSON) or
        ``stuck`` (answer normally, but always with ``continuationToken`` "0",
        so a client that follows it blindly never ends). The first ``after``
        matching requests pass untouched.
        """
        kinds = (status, drop, delay, malformed, stuck)
        if sum(x is not None and x is not False for x in kinds) != 1:
            raise ValueError("give exactly one of status, drop, delay, malformed, stuck")
        if status is not None:
            fault = Fault("status", endpoint, status=status, count=count)
        elif drop:
            fault = Fault("drop", endpoint, count=count)
        elif delay is not None:
            fault = Fault("slow", endpoint, delay=delay, count=count)
        elif malformed:
            fault = Fault("malformed", endpoint, count=count)
        else:
            fault = Fault("stuck", endpoint, count=count)
        fault.after = after
        with self._lock:
            self.faults.append(fault)
        return fault

    def disable(self, endpoint: str, status: int = 404) -> None:
        """Make ``endpoint`` answer ``status`` (404 or 405), as if it did not exist."""
        with self._lock:
            self.disabled[endpoint] = status

    def count(self, endpoint: Optional[str] = None) -> int:
        """Return how many requests reached ``endpoint`` (all when None)."""
        with self._lock:
            return sum(1 for r in self.requests if endpoint is None or r == endpoint)

    def in_sequence(self) -> int:
        """How many requests were answered one after another: the longest chain of
        requests each starting after the previous one ended (round trips in sequence)."""
        with self._lock:
            spans = sorted(self.spans, key=lambda s: s[1])
        chain, end = 0, float("-inf")
        for start, stop in spans:
            if start >= end:
                chain, end = chain + 1, stop
        return chain

    def _take_fault(self, endpoint: str) -> Optional[Fault]:
        with self._lock:
            for fault in self.faults:
                if fault.endpoint not in (None, endpoint):
                    continue
                if fault.after > 0:
                    fault.after -= 1
                    continue
                if fault.count is not None:
                    if fault.count <= 0:
                        continue
                    fault.count -= 1
                return fault
        return None

    # -- routing ------------------------------------------------------------------

    def _load_routes(self) -> list[_Route]:
        routes = []
        for service, names in IMPLEMENTED.items():
            ref = self.data / "references" / service / "v1" / "api.json"
            api = json.loads(ref.read_text(encoding="utf-8"))
            for entry in api["entries"]:
                if entry.get("type") != "function" or entry["name"] not in names:
                    continue
                route = re.sub(r"<([A-Za-z]+)>", r"(?P<\1>[^/]+)", entry["route"])
                routes.append(
                    _Route(
                        service,
                        entry["name"],
                        entry["method"].upper(),
                        re.compile(f"^/api/{service}/v1{route}$"),
                        entry.get("input"),
                        entry.get("output"),
                    )
                )
        return routes

    def match(self, method: str, path: str) -> Optional[tuple[_Route, dict[str, str]]]:
        """Return the route and its (decoded) parameters for a request."""
        for route in self.routes:
            if route.method != method:
                continue
            m = route.pattern.match(path)
            if m:
                return route, {k: urllib.parse.unquote(v) for k, v in m.groupdict().items()}
        return None

    def schema_path(self, route: _Route, ref: str) -> str:
        return f"{route.service}/{ref.split('#', 1)[0]}"

    # -- endpoints ------------------------------------------------------------------

    def _live(self, namespace: str) -> Optional[dict[str, Any]]:
        entry = self.index.get(namespace)
        if entry is None or _parse(entry["expires"]) <= _now():
            return None
        return entry

    @staticmethod
    def _page(items: list[Any], query: Mapping[str, str], key: str) -> dict[str, Any]:
        try:
            limit = max(1, min(int(query.get("limit", PAGE_SIZE)), PAGE_SIZE))
            start = int(query.get("continuationToken", "0"))
        except ValueError as e:
            raise _Reply(400, "InvalidRequestArguments", f"bad query: {e}") from e
        body: dict[str, Any] = {key: items[start : start + limit]}
        if start + limit < len(items):
            body["continuationToken"] = str(start + limit)
        return body

    def handle(
        self, route: _Route, params: dict[str, str], query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        """Answer one API call: (status, JSON body, extra headers)."""
        name = route.name
        with self._lock:
            if name == "ping":
                return 200, {"alive": True, "uptime": 1}, {}
            if name == "findTask":
                entry = self._live(params["indexPath"])
                if entry is None:
                    raise _Reply(404, "ResourceNotFound", "Indexed task not found")
                return 200, dict(entry), {}
            if name == "findTasksAtIndex":
                found = [self._live(ns) for ns in dict.fromkeys(body.get("indexes", []))]
                items = [dict(e) for e in found if e is not None]
                return 200, self._page(items, query, "tasks"), {}
            if name == "listTasks":
                head = params["namespace"] + "." if params["namespace"] else ""
                items = [
                    dict(e)
                    for ns, e in sorted(self.index.items())
                    if ns.startswith(head) and "." not in ns[len(head) :] and self._live(ns)
                ]
                return 200, self._page(items, query, "tasks"), {}
            if name == "insertTask":
                namespace = params["namespace"]
                old = self._live(namespace)
                if old is None or body["rank"] >= old["rank"]:
                    self.index[namespace] = {"namespace": namespace, **body}
                return 200, dict(self.index[namespace]), {}
            if name == "status":
                status = self.tasks.get(params["taskId"])
                if status is None:
                    raise _Reply(404, "ResourceNotFound", f"task {params['taskId']} not found")
                return 200, {"status": status}, {}
            if name == "statuses":
                items = [
                    {"taskId": t, "status": self.tasks[t]}
                    for t in dict.fromkeys(body.get("taskIds", []))
                    if t in self.tasks
                ]
                return 200, self._page(items, query, "statuses"), {}
            if name in ("latestArtifactInfo", "getLatestArtifact", "listLatestArtifacts"):
                task_id = params["taskId"]
                if task_id not in self.tasks:
                    raise _Reply(404, "ResourceNotFound", f"task {task_id} not found")
                if name == "listLatestArtifacts":
                    items = [
                        {k: v for k, v in art.items() if k != "content"}
                        for (t, _), art in sorted(self.artifacts.items())
                        if t == task_id
                    ]
                    return 200, self._page(items, query, "artifacts"), {}
                art = self.artifacts.get((task_id, params["name"]))
                if art is None:
                    raise _Reply(404, "ResourceNotFound", f"artifact {params['name']} not found")
                if name == "latestArtifactInfo":
                    return 200, {k: v for k, v in art.items() if k != "content"}, {}
                url = self.blob_url(task_id, params["name"])
                return 303, {"storageType": art["storageType"], "url": url}, {"Location": url}
            if name == "createTask":
                return self._create_task(params["taskId"], body)
            if name == "task":
                definition = self.definitions.get(params["taskId"])
                if definition is None:
                    raise _Reply(404, "ResourceNotFound", f"task {params['taskId']} not found")
                return 200, self._definition(params["taskId"], definition), {}
        raise _Reply(404, "ResourceNotFound", f"{name} is not implemented")  # pragma: no cover

    def _create_task(self, task_id: str, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        problems = self.schemas.errors(body.get("payload"), "docker-worker/v1/payload.json") if (
            self.validate_requests) else []
        if problems:
            raise _Reply(400, "InputValidationError", "payload: " + "; ".join(problems))
        old = self.definitions.get(task_id)
        if old is not None and old != body:
            raise _Reply(409, "RequestConflict", f"task {task_id} exists with another definition")
        missing = [d for d in body.get("dependencies", []) if d not in self.tasks and d != task_id]
        if missing:
            raise _Reply(400, "InputError", f"the dependencies {', '.join(missing)} do not exist")
        self.definitions[task_id] = body
        if task_id not in self.tasks:
            queue = body.get("taskQueueId") or (
                f"{body.get('provisionerId', 'proj-loopback')}/{body.get('workerType', 'images')}"
            )
            status = {
                "taskId": task_id,
                "provisionerId": queue.split("/")[0],
                "workerType": queue.split("/")[1],
                "taskQueueId": queue,
                "schedulerId": body.get("schedulerId", "-"),
                "projectId": body.get("projectId", "none"),
                "taskGroupId": body.get("taskGroupId", task_id),
                "deadline": body["deadline"],
                "expires": body.get("expires", body["deadline"]),
                "retriesLeft": body.get("retries", 5),
                "state": "pending",
                "runs": [{"runId": 0, "state": "pending", "reasonCreated": "scheduled",
                          "scheduled": _iso(_now())}],
            }
            self.tasks[task_id] = status
        return 200, {"status": self.tasks[task_id]}, {}

    def _definition(self, task_id: str, body: Mapping[str, Any]) -> dict[str, Any]:
        """The task as ``queue.task`` answers: the created body with the Queue's defaults."""
        task = dict(body)
        if "taskQueueId" in task:
            provisioner, _, worker_type = str(task["taskQueueId"]).partition("/")
            task.setdefault("provisionerId", provisioner)
            task.setdefault("workerType", worker_type)
        else:
            task["taskQueueId"] = f"{task['provisionerId']}/{task['workerType']}"
        for key, value in (("schedulerId", "-"), ("taskGroupId", task_id), ("dependencies", []),
                           ("requires", "all-completed"), ("routes", []), ("priority", "lowest"),
                           ("retries", 5), ("scopes", []), ("tags", {}), ("extra", {})):
            task.setdefault(key, value)
        return task

    def complete_task(self, task_id: str, artifacts: Mapping[str, bytes]) -> None:
        """Resolve a created task as completed with ``artifacts``, as the Queue does when
        its worker reports success, and index it at its ``index.`` routes, as the Index
        service does on the task-completed message (rank ``extra.index.rank``, else 0;
        expiring with the task)."""
        with self._lock:
            body = self.definitions[task_id]
            status = self.tasks[task_id]
            now = _iso(_now())
            status["state"] = "completed"
            status["runs"] = [{
                "runId": 0, "state": "completed", "reasonCreated": "scheduled",
                "reasonResolved": "completed", "scheduled": now, "started": now,
                "resolved": now, "workerGroup": "loopback", "workerId": "run-task",
                "takenUntil": now,
            }]
        for name, content in artifacts.items():
            self.add_artifact(task_id, name, content)
        rank = float(((body.get("extra") or {}).get("index") or {}).get("rank", 0))
        for route in body.get("routes", []):
            if route.startswith("index."):
                self.index_task(route[len("index."):], task_id, rank=rank,
                                expires=_parse(body.get("expires", body["deadline"])))

    def blob_url(self, task_id: str, name: str) -> str:
        """Where ``getLatestArtifact`` redirects to."""
        return f"{self.root_url}/blobs/{task_id}/{urllib.parse.quote(name, safe='')}"

    def blob(self, task_id: str, name: str) -> Optional[bytes]:
        with self._lock:
            art = self.artifacts.get((task_id, name))
        return None if art is None else bytes(art["content"])


def _make_handler(server: TCServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: without TCP_NODELAY, a client
        # that keeps its connection alive waits for a delayed ACK (40 ms) on
        # every answer after the first, which no real service makes it do.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_GET(self) -> None:
            self._dispatch("GET")

        def do_POST(self) -> None:
            self._dispatch("POST")

        def do_PUT(self) -> None:
            self._dispatch("PUT")

        def _answered(self) -> None:
            """Stop counting this request as in flight: once its answer starts going
            out, the client may send its next one, which must not count twice."""
            if self._in_flight:
                self._in_flight = False
                with server._lock:
                    if self._generation == server.generation:
                        server.active -= 1

        def _send(self, status: int, data: bytes, headers: Mapping[str, str]) -> None:
            self._answered()
            self.send_response(status)
            for key, value in headers.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                try:
                    self.wfile.write(data)
                except ConnectionError:  # a client that read enough (a size bound) and left
                    self.close_connection = True

        def _json(self, status: int, body: Any, headers: Mapping[str, str] = {}) -> None:
            data = json.dumps(body).encode()
            self._send(status, data, {"Content-Type": "application/json", **headers})

        def _error(self, status: int, code: str, message: str, info: dict[str, Any]) -> None:
            self._json(status, {"code": code, "message": message, "requestInfo": info})

        def _dispatch(self, method: str) -> None:
            split = urllib.parse.urlsplit(self.path)
            query = dict(urllib.parse.parse_qsl(split.query))
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            found = server.match(method, split.path)
            blob = split.path.startswith("/blobs/") and method == "GET"
            endpoint = found[0].name if found else ("blob" if blob else "unknown")
            with server._lock:
                server.requests.append(endpoint)
                if self.headers.get("Authorization"):
                    server.signed.append(endpoint)
                self._generation = server.generation
                server.active += 1
                server.peak = max(server.peak, server.active)
            self._in_flight = True
            start = time.monotonic()
            try:
                self._answer(method, split, query, raw, found, blob, endpoint)
            finally:
                self._answered()
                with server._lock:
                    if self._generation == server.generation:
                        server.spans.append((start, time.monotonic()))

        def _answer(
            self,
            method: str,
            split: urllib.parse.SplitResult,
            query: dict[str, str],
            raw: bytes,
            found: Optional[tuple[_Route, dict[str, str]]],
            blob: bool,
            endpoint: str,
        ) -> None:
            info: dict[str, Any] = {"method": endpoint, "params": found[1] if found else {},
                                    "payload": {}, "time": _iso(_now())}
            fault = server._take_fault(endpoint)
            if server.latency:
                time.sleep(server.latency)
            if fault is not None:
                if fault.kind == "drop":
                    self.close_connection = True
                    with contextlib.suppress(OSError):
                        self.connection.shutdown(socket.SHUT_RDWR)
                    return
                if fault.kind == "status":
                    self._error(fault.status, "InternalServerError" if fault.status >= 500
                                else "InjectedFault", f"injected {fault.status}", info)
                    return
                if fault.kind == "malformed":
                    self._send(200, b'{"tasks": [{"namespace": "tru', {
                        "Content-Type": "application/json"})
                    return
                if fault.kind == "slow":
                    time.sleep(fault.delay)
            if endpoint in server.disabled:
                status = server.disabled[endpoint]
                self._error(status, "ResourceNotFound" if status == 404 else "MethodNotAllowed",
                            f"no such endpoint: {split.path}", info)
                return
            if blob:
                self._blob(split.path)
                return
            if found is None:
                self._error(404, "ResourceNotFound", f"no route for {method} {split.path}", info)
                return
            route, params = found
            body: Any = {}
            if route.input is not None:
                try:
                    body = json.loads(raw or b"{}")
                except ValueError:
                    self._error(400, "MalformedPayload", "body is not JSON", info)
                    return
                info["payload"] = body
                problems = server.schemas.errors(body, server.schema_path(route, route.input)) if (
                    server.validate_requests) else []
                if problems:
                    self._error(400, "InputValidationError", "; ".join(problems), info)
                    return
            try:
                status, answer, headers = server.handle(route, params, query, body)
            except _Reply as e:
                self._error(e.status, e.code, e.message, info)
                return
            if fault is not None and fault.kind == "stuck" and isinstance(answer, dict):
                answer["continuationToken"] = "0"
            if route.output is not None and server.validate_responses:
                problems = server.schemas.errors(answer, server.schema_path(route, route.output))
                if problems:
                    with server._lock:
                        server.schema_errors.append(f"{route.name}: {'; '.join(problems)}")
                    self._error(500, "InternalServerError", "response failed validation", info)
                    return
            self._json(status, answer, headers)

        def _blob(self, path: str) -> None:
            parts = path.split("/")
            data = server.blob(parts[2], urllib.parse.unquote(parts[3])) if len(parts) == 4 else None
            if data is None:
                self._send(404, b"not found", {"Content-Type": "text/plain"})
                return
            headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
            m = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
            if m and (m.group(1) or m.group(2)):
                size = len(data)
                if m.group(1):
                    start = int(m.group(1))
                    end = min(int(m.group(2)), size - 1) if m.group(2) else size - 1
                else:
                    start, end = max(0, size - int(m.group(2))), size - 1
                if start >= size or start > end:
                    self._send(416, b"", {"Content-Range": f"bytes */{size}"})
                    return
                headers["Content-Range"] = f"bytes {start}-{end}/{size}"
                self._send(206, data[start : end + 1], headers)
                return
            self._send(200, data, headers)

    return Handler


# -- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def tc_server_session() -> Iterator[TCServer]:
    """One loopback server for the whole session (prefer ``tc_server``)."""
    with TCServer() as server:
        yield server


@pytest.fixture
def tc_server(tc_server_session: TCServer) -> Iterator[TCServer]:
    """The loopback server, with empty state and no faults, for one test."""
    tc_server_session.reset()
    yield tc_server_session
    tc_server_session.reset()


@pytest.fixture
def tc_index(tc_server: TCServer) -> Any:
    """A ``TaskclusterIndex`` on ``tc_server``: 2 retries, 5 s timeout, no env."""
    from taskgraph_images.index import TaskclusterIndex
    from taskgraph_images.tc.env import TaskclusterEnv

    return TaskclusterIndex(tc_server.root_url, max_retries=2, timeout=5.0, env=TaskclusterEnv())


def make_index(server: TCServer, **kwargs: Any) -> Any:
    """A ``TaskclusterIndex`` on ``server`` with test-friendly defaults (overridable)."""
    from taskgraph_images.index import TaskclusterIndex
    from taskgraph_images.tc.env import TaskclusterEnv

    options: dict[str, Any] = {"max_retries": 2, "timeout": 5.0, "env": TaskclusterEnv()}
    options.update(kwargs)
    return TaskclusterIndex(server.root_url, **options)



