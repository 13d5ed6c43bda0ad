"""The Taskcluster backend: the Index and Queue services, through the official client.

Lookups are batched: all candidate namespaces of a plan go to
``index.findTasksAtIndex`` (``POST /tasks/indexes``, 1000 per request,
following ``continuationToken``), the states of all indexed tasks to
``queue.statuses`` (``POST /tasks/status``), and the artifacts of the
completed ones are checked with ``queue.latestArtifactInfo`` concurrently on
a bounded thread pool. A deployment without a batch endpoint (it answers 404
or 405) is asked with concurrent ``findTask`` / ``status`` calls instead.

5xx answers and connection errors are retried with the client's
exponential backoff (``max_retries``), each retry told to the reporter; a
404 means "absent". Each API call, retries included, must finish within
``timeout`` seconds (60 by default). When a service still
cannot answer, the backend raises
:class:`~taskgraph_images.errors.IndexUnavailableError` naming the service
and the root URL.
"""

from __future__ import annotations

import datetime
import functools
import json
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence, TypeVar

import attrs

from taskgraph_images.errors import (
    ConfigError,
    IndexBackendError,
    IndexUnavailableError,
    InvalidValueError,
)
from taskgraph_images.index._base import (
    ArtifactRead,
    Clock,
    IndexedTask,
    Usability,
    utcnow,
    validate_artifact_name,
    verdict,
)
from taskgraph_images.index._common import DEFAULT_EXPIRY, validate_data, validate_rank
from taskgraph_images.keys.namespaces import validate_namespace, validate_task_id
from taskgraph_images.progress import Reporter, Wait
from taskgraph_images.tc.env import Credentials, TaskclusterEnv, artifact_url, client
from taskgraph_images.tc.time import format_time, parse_time

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = ["TaskclusterIndex"]

T = TypeVar("T")
R = TypeVar("R")

_MISSING_ENDPOINT = (404, 405)

#: Seconds an API call may take, its retries included.
DEFAULT_TIMEOUT = 60.0
#: How often a 5xx answer or a connection error is tried again.
DEFAULT_RETRIES = 5


class _Status(Exception):
    """An HTTP 4xx answer the caller may want to interpret (404: absent)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Malformed(Exception):
    """An answer that does not have the documented shape."""


def _short(error: BaseException, limit: int = 200) -> str:
    text = " ".join(str(error).split()) or type(error).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _entry(item: object) -> IndexedTask:
    if not isinstance(item, dict):
        raise _Malformed(f"expected an indexed task, got {type(item).__name__}")
    try:
        data = item["data"]
        if not isinstance(data, dict):
            raise _Malformed("'data' is not an object")
        rank = item["rank"]
        if isinstance(rank, bool) or not isinstance(rank, (int, float)):
            raise _Malformed("'rank' is not a number")
        namespace, task_id = item["namespace"], item["taskId"]
        if not isinstance(namespace, str) or not isinstance(task_id, str):
            raise _Malformed("'namespace' or 'taskId' is not a string")
        return IndexedTask(namespace, task_id, float(rank), parse_time(item["expires"]), data)
    except KeyError as e:
        raise _Malformed(f"missing {e}") from e
    except InvalidValueError as e:
        raise _Malformed(str(e)) from e


#: Calls made through the index's own session (GET, no payload): the ones
#: issued many at once. The ``taskcluster`` client opens a new session, so a
#: new connection, for each call; through ours they reuse kept-alive ones.
_SESSION_CALLS = frozenset({"latestArtifactInfo", "task"})


def _split_url(url: str) -> tuple[str, str]:
    """``(scheme://host:port, /path?query)`` of ``url``."""
    parts = urllib.parse.urlsplit(url)
    target = parts.path or "/"
    return f"{parts.scheme}://{parts.netloc}", f"{target}?{parts.query}" if parts.query else target


def _session(root_url: str, size: int) -> requests.Session:
    """A session keeping ``size`` connections alive (one per worker thread; requests
    keeps 10). The environment's settings for ``root_url`` (proxies, CA bundle,
    netrc) are resolved once, here, not again on every request."""
    import requests

    session = requests.Session()
    adapter = requests.adapters.HTTPAdapter(pool_maxsize=size)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    settings = session.merge_environment_settings(root_url, {}, None, None, None)
    session.proxies = settings["proxies"]
    session.verify = settings["verify"]
    session.cert = settings["cert"]
    session.auth = requests.utils.get_netrc_auth(root_url)
    session.trust_env = False
    return session


class _Runners:
    """Daemon threads, each running one job at a time and kept for the next.

    Starting a thread while others hold the interpreter costs up to a switch
    interval: threads kept (and started ahead with :meth:`warm`) let many
    requests leave at once. A job that hangs keeps its thread; the next job
    then gets a new one (there is no bound: the callers bound their concurrency).
    """

    def __init__(self) -> None:
        import queue

        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._started = 0
        self._wanted = 0

    def run(self, job: Callable[[], None]) -> None:
        """Run ``job`` (which must not raise) on an idle thread, or on a new one."""
        if not self._idle.acquire(blocking=False):
            with self._lock:
                self._started += 1
            self._spawn(idle=False)
        self._jobs.put(job)

    def warm(self, threads: int, prepare: Optional[Callable[[], None]] = None) -> None:
        """Have at least ``threads`` threads started, starting the missing ones on a
        thread of its own (the caller goes on). Each new thread first runs
        ``prepare`` (which must not raise), then waits for jobs."""
        with self._lock:
            starting = self._wanted > self._started
            self._wanted = max(self._wanted, threads)
            if starting or self._wanted <= self._started:
                return
        threading.Thread(target=self._start_wanted, args=(prepare,), name="taskcluster-warm",
                         daemon=True).start()

    def _start_wanted(self, prepare: Optional[Callable[[], None]]) -> None:
        while True:
            with self._lock:
                if self._started >= self._wanted:
                    return
                self._started += 1
            self._spawn(idle=True, prepare=prepare)

    def _spawn(self, idle: bool, prepare: Optional[Callable[[], None]] = None) -> None:
        threading.Thread(target=self._loop, args=(idle, prepare), name="taskcluster-runner",
                         daemon=True).start()

    def _loop(self, idle: bool, prepare: Optional[Callable[[], None]] = None) -> None:
        if prepare is not None:
            prepare()
        if idle:
            self._idle.release()
        while True:
            job = self._jobs.get()
            job()
            self._idle.release()


class TaskclusterIndex:
    """Look images up in a Taskcluster deployment's Index and Queue.

    The root URL is, first found: ``root_url``, ``options["rootUrl"]``,
    the proxy (inside a task; it adds the task's credentials), the
    environment's root URL; credentials come from ``credentials``,
    ``options["credentials"]`` or the environment; lookups need none on a
    public deployment. ``env`` is what the environment says
    (:meth:`TaskclusterEnv.from_environment <taskgraph_images.tc.env.TaskclusterEnv.from_environment>`
    when not given).

    ``max_workers`` bounds concurrent requests; ``max_retries`` is how
    often a 5xx answer or a connection error is tried again, with the
    client's exponential backoff; ``timeout`` bounds each API call, its
    retries included (60 s by default: a hung index stops a plan within a
    minute). Every retry, and every wait longer than the reporter's
    ``report_after`` seconds, is told to ``reporter`` (:meth:`Reporter.waiting
    <taskgraph_images.progress.Reporter.waiting>`).

    :raises ConfigError: when no root URL is given or configured, or the
        environment names a CA bundle that cannot be read (HTTPS).
    :raises DependencyError: for a ``taskcluster`` client older than the floor.
    """

    def __init__(
        self,
        root_url: Optional[str] = None,
        credentials: Optional[Mapping[str, str]] = None,
        *,
        options: Optional[Mapping[str, Any]] = None,
        max_workers: int = 16,
        max_retries: int = DEFAULT_RETRIES,
        timeout: float = DEFAULT_TIMEOUT,
        batch_size: int = 1000,
        env: Optional[TaskclusterEnv] = None,
        clock: Clock = utcnow,
        reporter: Optional[Reporter] = None,
    ) -> None:
        tc_env = TaskclusterEnv.from_environment() if env is None else env
        extra = dict(options or {})
        root = tc_env.root(root_url or extra.pop("rootUrl", None))
        if credentials is None and "credentials" in extra:
            credentials = extra.pop("credentials")
        if not root:
            raise ConfigError(
                "no Taskcluster root URL: pass one (--index taskcluster:URL) or set "
                "TASKCLUSTER_ROOT_URL or TASKCLUSTER_PROXY_URL"
            )
        if max_workers < 1 or max_retries < 0 or timeout <= 0 or not 1 <= batch_size <= 1000:
            raise InvalidValueError(
                "invalid TaskclusterIndex settings: max_workers >= 1, max_retries >= 0, "
                "timeout > 0 and 1 <= batch_size <= 1000 are required"
            )
        extra["maxRetries"] = 0  # retried here, where each try can be reported
        if credentials is not None:  # given, they replace the environment's, even by none
            tc_env = attrs.evolve(tc_env, credentials=Credentials.from_options(credentials))
        opts = tc_env.options(root, **extra)
        self.root_url: str = opts["rootUrl"]
        self._options = opts
        self._index = client("Index", opts)
        self._queue = client("Queue", opts)
        self._session = _session(self.root_url, max_workers)
        from taskgraph_images.index._keepalive import KeptConnections

        try:
            self._kept = KeptConnections.beside(self._session, self.root_url)
        except OSError as e:  # ssl.SSLError too
            from taskgraph_images._neterrors import describe
            from taskgraph_images._redact import quote_value

            raise ConfigError(
                f"the CA bundle {quote_value(str(self._session.verify))} for {self.root_url} "
                f"cannot be read ({describe(e)}): check REQUESTS_CA_BUNDLE and CURL_CA_BUNDLE"
            ) from e
        self._origin = _split_url(self.root_url)[0]
        #: Connections :meth:`warm` has been asked to open ahead.
        self._ahead = 0
        self._runners = _Runners()
        self._max_workers = max_workers
        self._max_retries = max_retries
        self._timeout = timeout
        self._batch_size = batch_size
        self._clock = clock
        self._reporter = reporter if reporter is not None else Reporter()
        # Learned per instance: does this deployment have the batch endpoints?
        self._has_batch = {"findTasksAtIndex": True, "statuses": True}

    @property
    def description(self) -> str:
        """``Taskcluster index at ROOT_URL``."""
        return f"Taskcluster index at {self.root_url}"

    def __repr__(self) -> str:
        return f"TaskclusterIndex({self.root_url!r})"

    def warm(self, calls: int) -> None:
        """Get ready, in the background, for ``calls`` concurrent GET calls (at most
        ``max_workers``): the threads they will run on are started ahead, and
        as many kept-alive connections are opened."""
        self._ahead = max(self._ahead, min(calls, self._max_workers))
        kept = self._kept
        prepare = None
        if kept is not None:
            def prepare() -> None:  # the latest count: warm is called again as calls grow
                kept.open_ahead(self._ahead, self._timeout)
        self._runners.warm(2 * self._ahead, prepare)  # a caller and its try each

    # -- one call ---------------------------------------------------------------

    def _call(self, service: str, method: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Call ``service.method`` through the client, retrying within the deadline.

        A 5xx answer or a connection error is tried again, up to
        ``max_retries`` times, with the client's exponential backoff; every
        retry, and every wait longer than the reporter's ``report_after``
        seconds, goes to the reporter. All tries together must end within ``timeout``.

        :raises _Status: for a 4xx answer other than 401/403.
        :raises IndexBackendError: for anything that means the service cannot answer.
        """
        import taskcluster.exceptions as tce
        from taskcluster.utils import calculateSleepTime

        from taskgraph_images._neterrors import describe

        client = self._index if service == "index" else self._queue
        func: Callable[..., Any] = getattr(client, method)
        attempts = self._max_retries + 1
        deadline = time.monotonic() + self._timeout
        if method in _SESSION_CALLS and not kwargs:
            func = functools.partial(self._get, client, method, deadline=deadline)
        where = f"Taskcluster {service} service at {self.root_url}"
        subject = f"the {service}"
        reason = ""
        delay = 0.0
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                self._reporter.waiting(Wait(subject, method, attempt, attempts, reason=reason))
                time.sleep(delay)
            error, value = self._attempt(func, args, kwargs, deadline, service, method,
                                         attempt, attempts)
            if error is None:
                break
            if isinstance(error, tce.TaskclusterConnectionError):
                cause = error.superExc if error.superExc is not None else error
                reason = describe(cause)
                failed = IndexUnavailableError(
                    f"{where} is unreachable: {method} failed {attempt} "
                    f"time{'s' if attempt > 1 else ''} ({reason})"
                )
            elif isinstance(error, (tce.TaskclusterRestFailure, tce.TaskclusterAuthFailure)):
                status = int(getattr(error, "status_code", 0) or 0)
                if status in (401, 403):
                    raise IndexBackendError(
                        f"{where} refused {method} ({status}): {_short(error)}"
                    ) from error
                if status < 500:
                    raise _Status(status, _short(error))
                reason = f"answered {status}"
                failed = IndexUnavailableError(
                    f"{where} is unavailable: {method} answered {status} "
                    f"{attempt} time{'s' if attempt > 1 else ''} ({_short(error)})"
                )
            elif isinstance(error, tce.TaskclusterFailure):
                raise IndexBackendError(f"{where}: {method} failed: {_short(error)}") from error
            else:
                raise error
            delay = calculateSleepTime(attempt)
            if attempt == attempts or time.monotonic() + delay >= deadline:
                raise failed from error  # no try left, or no time for one
        if not isinstance(value, dict) or set(value) == {"response"}:
            raise IndexUnavailableError(f"{where} answered {method} with malformed JSON")
        return value

    def _get(self, client: Any, method: str, *args: Any, deadline: float) -> Any:
        """``client.method(*args)`` for a GET call without payload, on a kept-alive connection.

        Signed (Hawk) when there are credentials, and answered as the client
        answers: its exceptions for a connection error or a 4xx/5xx answer,
        the JSON body, ``{"response": ...}`` for a body that is not JSON.
        The connection is one of :attr:`_kept` (opened ahead by :meth:`warm`),
        else one of our ``requests`` session's (a proxy or ``.netrc`` applies).
        """
        import taskcluster.exceptions as tce

        url = client.buildUrl(method, *args)
        headers = {}
        credentials = self._options.get("credentials") or {}
        if credentials.get("clientId") and credentials.get("accessToken"):
            import mohawk  # type: ignore[import-untyped]

            sender = mohawk.Sender(
                credentials={"id": credentials["clientId"], "key": credentials["accessToken"],
                             "algorithm": "sha256"},
                ext=client.makeHawkExt() or {}, url=url, content="", content_type="",
                method="GET")
            headers["Authorization"] = sender.request_header
        status, body = self._send_get(url, headers, deadline)
        try:
            data = json.loads(body)
        except ValueError:
            data = None
        if status >= 400:
            message = data.get("message") if isinstance(data, dict) else None
            failure = (tce.TaskclusterAuthFailure if status == 401
                       else tce.TaskclusterRestFailure)
            raise failure(message or "Unknown Server Error", status_code=status,
                          body=data if isinstance(data, dict) else {}, superExc=None)
        return data if data is not None else {"response": body}

    def _send_get(self, url: str, headers: dict[str, str], deadline: float) -> tuple[int, bytes]:
        """GET ``url``; return the status and the body, or raise the client's connection error."""
        import http.client

        import requests
        import taskcluster.exceptions as tce

        from taskgraph_images.index._keepalive import MAX_BODY

        kept = self._kept
        origin, target = _split_url(url)
        if kept is not None and origin == self._origin:
            try:
                answer = kept.get(target, headers, deadline)
            except (OSError, http.client.HTTPException) as e:
                raise tce.TaskclusterConnectionError(
                    "Failed to establish connection", superExc=e) from e
            return answer.status, answer.body
        try:
            with self._session.get(url, headers=headers, allow_redirects=False, stream=True,
                                   timeout=max(0.001, deadline - time.monotonic())) as response:
                body = response.raw.read(MAX_BODY + 1, decode_content=True)
                if len(body) > MAX_BODY:
                    raise OSError(f"the answer is larger than {MAX_BODY} bytes")
                return response.status_code, body
        except (requests.RequestException, OSError) as e:
            raise tce.TaskclusterConnectionError(
                "Failed to establish connection", superExc=e) from e

    def _attempt(
        self, func: Callable[..., Any], args: Any, kwargs: Any, deadline: float,
        service: str, method: str, attempt: int, attempts: int,
    ) -> tuple[Optional[BaseException], Any]:
        """One try of ``func``, on a thread so that a hung answer cannot outlast the deadline.

        Returns ``(error, None)`` or ``(None, value)``; says on the reporter,
        every ``report_after`` seconds (the reporter's), that it is still waiting.

        :raises IndexUnavailableError: when the deadline passes first.
        """
        box: dict[str, Any] = {}

        def run() -> None:
            try:
                box["value"] = func(*args, **kwargs)
            except BaseException as e:  # handed over to the calling thread
                box["error"] = e

        finished = threading.Event()

        def job() -> None:
            run()
            finished.set()

        start = time.monotonic()
        self._runners.run(job)
        while True:
            now = time.monotonic()
            waited = now - start
            every = self._reporter.report_after
            next_report = every * (1 + int(waited // every))
            finished.wait(max(0.0, min(deadline - now, start + next_report - now)))
            if finished.is_set():
                return box.get("error"), box.get("value")
            now = time.monotonic()
            if now >= deadline:
                raise IndexUnavailableError(
                    f"Taskcluster {service} service at {self.root_url} is unavailable: "
                    f"{method} gave no answer within {self._timeout:g}s"
                )
            self._reporter.waiting(Wait(f"the {service}", method, attempt, attempts, now - start))

    def _malformed(self, service: str, method: str, error: Exception) -> IndexUnavailableError:
        return IndexUnavailableError(
            f"Taskcluster {service} service at {self.root_url} answered {method} "
            f"with a malformed body: {_short(error)}"
        )

    def _refused(self, service: str, method: str, error: _Status) -> IndexBackendError:
        return IndexBackendError(
            f"Taskcluster {service} service at {self.root_url} answered {method} "
            f"with {error.status}: {error.message}"
        )

    def _map(self, func: Callable[[T], R], items: Sequence[T]) -> list[R]:
        """Apply ``func`` to ``items`` on at most ``max_workers`` threads, in order.

        The threads are the index's kept ones (:meth:`warm` starts them
        ahead), so the calls leave together instead of one thread start
        apart. The first error, in ``items``' order, is raised once every
        thread is done (no new item is taken after an error); each call is
        bounded by its own ``timeout``.
        """
        if len(items) <= 1:
            return [func(item) for item in items]
        results: list[Any] = [None] * len(items)
        errors: dict[int, BaseException] = {}
        lock = threading.Lock()
        todo = iter(range(len(items)))
        workers = min(self._max_workers, len(items))
        running = [workers]
        done = threading.Event()

        def work() -> None:
            while True:
                with lock:
                    index = None if errors else next(todo, None)
                    if index is None:
                        running[0] -= 1
                        if not running[0]:
                            done.set()
                        return
                try:
                    results[index] = func(items[index])
                except BaseException as e:  # handed over to the calling thread
                    with lock:
                        errors[index] = e

        for _ in range(workers):
            self._runners.run(work)
        try:
            done.wait()
        except BaseException:
            with lock:  # interrupted: let no thread take another item
                errors.setdefault(-1, RuntimeError("interrupted"))
            raise
        if errors:
            raise errors[min(errors)]
        return results

    def _pages(self, service: str, method: str, key: str, **call: Any) -> list[Any]:
        """Collect ``key`` over every page of a paginated call (``call``: its arguments).

        A page whose ``continuationToken`` is not a string, or repeats one
        already followed, is malformed: following it could loop forever.
        """
        items: list[Any] = []
        seen: set[str] = set()
        token: Optional[str] = None
        while True:
            query = {"continuationToken": token} if token else {}
            answer = self._call(service, method, query=query, **call)
            page = answer.get(key)
            if not isinstance(page, list):
                raise self._malformed(service, method, _Malformed(f"no {key!r} list"))
            items.extend(page)
            token = answer.get("continuationToken")
            if not token:
                return items
            if not isinstance(token, str):
                raise self._malformed(service, method, _Malformed("bad continuationToken"))
            if token in seen:
                raise self._malformed(
                    service, method, _Malformed("a continuationToken it had already given")
                )
            seen.add(token)

    def _chunks(self, items: Sequence[str]) -> list[list[str]]:
        size = self._batch_size
        return [list(items[i : i + size]) for i in range(0, len(items), size)]

    # -- index ------------------------------------------------------------------

    def find_task(self, namespace: str) -> Optional[IndexedTask]:
        """Return the entry at ``namespace`` (``index.findTask``), or ``None``.

        :raises IndexBackendError: when the index cannot answer.
        """
        validate_namespace(namespace)
        try:
            answer = self._call("index", "findTask", namespace)
        except _Status as e:
            if e.status == 404:
                return None
            raise self._refused("index", "findTask", e) from e
        try:
            return _entry(answer)
        except _Malformed as e:
            raise self._malformed("index", "findTask", e) from e

    def _find_batch(self, namespaces: list[str]) -> list[IndexedTask]:
        items = self._pages("index", "findTasksAtIndex", "tasks", payload={"indexes": namespaces})
        try:
            return [_entry(item) for item in items]
        except _Malformed as e:
            raise self._malformed("index", "findTasksAtIndex", e) from e

    def find_tasks(self, namespaces: Sequence[str]) -> dict[str, IndexedTask]:
        """Return the live entry at each of ``namespaces`` that has one.

        Uses ``findTasksAtIndex`` in batches of ``batch_size``; falls back to
        concurrent ``findTask`` calls when the deployment lacks it.

        :raises IndexBackendError: when the index cannot answer.
        """
        wanted = list(dict.fromkeys(namespaces))
        if not wanted:
            return {}
        entries: list[Optional[IndexedTask]] = []
        if self._has_batch["findTasksAtIndex"]:
            try:
                for chunk in self._map(self._find_batch, self._chunks(wanted)):
                    entries.extend(chunk)
            except _Status as e:
                if e.status not in _MISSING_ENDPOINT:
                    raise self._refused("index", "findTasksAtIndex", e) from e
                self._has_batch["findTasksAtIndex"] = False
                entries = []
        if not self._has_batch["findTasksAtIndex"]:
            entries = self._map(self.find_task, wanted)
        now = self._clock()
        asked = set(wanted)
        return {
            e.namespace: e
            for e in entries
            if e is not None and e.namespace in asked and e.expires > now
        }

    def list_tasks(self, namespace: str) -> list[IndexedTask]:
        """Return the entries immediately under ``namespace`` (``index.listTasks``).

        :raises IndexBackendError: when the index cannot answer.
        """
        if namespace:
            validate_namespace(namespace)
        try:
            items = self._pages("index", "listTasks", "tasks", params={"namespace": namespace})
        except _Status as e:
            if e.status == 404:
                return []
            raise self._refused("index", "listTasks", e) from e
        try:
            return sorted((_entry(i) for i in items), key=lambda e: e.namespace)
        except _Malformed as e:
            raise self._malformed("index", "listTasks", e) from e

    def insert_task(
        self,
        namespace: str,
        task_id: str,
        *,
        rank: float = 0,
        expires: Optional[datetime.datetime] = None,
        data: Optional[Mapping[str, Any]] = None,
    ) -> IndexedTask:
        """Index ``task_id`` at ``namespace`` (``index.insertTask``; needs scopes).

        :raises IndexBackendError: when the index refuses or cannot answer.
        """
        payload = {
            "taskId": validate_task_id(task_id),
            "rank": validate_rank(rank),
            "data": validate_data(data),
            "expires": format_time(expires or self._clock() + DEFAULT_EXPIRY),
        }
        try:
            answer = self._call("index", "insertTask", validate_namespace(namespace), payload)
        except _Status as e:
            raise self._refused("index", "insertTask", e) from e
        try:
            return _entry(answer)
        except _Malformed as e:
            raise self._malformed("index", "insertTask", e) from e

    # -- queue ------------------------------------------------------------------

    def _status(self, task_id: str) -> Optional[str]:
        try:
            answer = self._call("queue", "status", task_id)
        except _Status as e:
            if e.status == 404:
                return None
            raise self._refused("queue", "status", e) from e
        status = answer.get("status")
        state = status.get("state") if isinstance(status, dict) else None
        if not isinstance(state, str):
            raise self._malformed("queue", "status", _Malformed("no status.state"))
        return state

    def _statuses_batch(self, task_ids: list[str]) -> dict[str, str]:
        items = self._pages("queue", "statuses", "statuses", payload={"taskIds": task_ids})
        states: dict[str, str] = {}
        for item in items:
            status = item.get("status") if isinstance(item, dict) else None
            state = status.get("state") if isinstance(status, dict) else None
            task_id = item.get("taskId") if isinstance(item, dict) else None
            if not isinstance(state, str) or not isinstance(task_id, str):
                raise self._malformed("queue", "statuses", _Malformed("bad status entry"))
            states[task_id] = state
        return states

    def task_states(self, task_ids: Sequence[str]) -> dict[str, str]:
        """Return the state of each task the queue knows (``queue.statuses``).

        :raises IndexBackendError: when the queue cannot answer.
        """
        ids = list(dict.fromkeys(task_ids))
        states: dict[str, str] = {}
        if ids and self._has_batch["statuses"]:
            try:
                for part in self._map(self._statuses_batch, self._chunks(ids)):
                    states.update(part)
                return states
            except _Status as e:
                if e.status not in _MISSING_ENDPOINT:
                    raise self._refused("queue", "statuses", e) from e
                self._has_batch["statuses"] = False
        for task_id, state in zip(ids, self._map(self._status, ids)):
            if state is not None:
                states[task_id] = state
        return states

    def _artifact_expiry(self, task_id: str, artifact: str) -> Optional[datetime.datetime]:
        try:
            answer = self._call("queue", "latestArtifactInfo", task_id, artifact)
        except _Status as e:
            if e.status == 404:
                return None
            raise IndexBackendError(
                f"Taskcluster queue service at {self.root_url} answered latestArtifactInfo "
                f"for {task_id} with {e.status}: {e.message}"
            ) from e
        if answer.get("storageType") == "error":
            return None
        try:
            return parse_time(answer.get("expires"), "artifact expiry")
        except InvalidValueError as e:
            raise self._malformed("queue", "latestArtifactInfo", e) from e

    def _definition(self, task_id: str) -> Optional[dict[str, Any]]:
        try:
            return self._call("queue", "task", task_id)
        except _Status as e:
            if e.status == 404:
                return None
            raise self._refused("queue", "task", e) from e

    def task_definitions(self, task_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return the definition of each task the queue knows (``queue.task``, all at once).

        :raises IndexBackendError: when the queue cannot answer.
        """
        ids = list(dict.fromkeys(task_ids))
        found = dict(zip(ids, self._map(self._definition, ids)))
        return {t: d for t, d in found.items() if d is not None}

    def artifact_expiries(
        self, task_ids: Sequence[str], artifact: str
    ) -> dict[str, Optional[datetime.datetime]]:
        """Return when each task's latest ``artifact`` expires, ``None`` where it has none.

        One ``queue.latestArtifactInfo`` call per task, all at once on at
        most ``max_workers`` threads: one round trip for the whole set.

        :raises IndexBackendError: when the queue cannot answer.
        """
        validate_artifact_name(artifact)
        ids = list(dict.fromkeys(task_ids))
        return dict(zip(ids, self._map(lambda t: self._artifact_expiry(t, artifact), ids)))

    def _read_artifact(
        self, session: requests.Session, task_id: str, name: str, limit: int
    ) -> ArtifactRead:
        """Fetch ``task_id``'s latest ``name`` (following the Queue's redirect), bounded."""
        import requests

        what = f"task {task_id}'s {name}"
        try:
            url = artifact_url(self._options, task_id, name, queue=self._queue)
        except Exception as e:  # the client raises several kinds for unsignable requests
            return ArtifactRead(problem=f"{what} cannot be asked for: {_short(e)}")
        problem = ""
        for attempt in range(self._max_retries + 1):
            if attempt:
                time.sleep(min(0.1 * 2 ** (attempt - 1), 2.0))
            try:
                with session.get(url, stream=True, timeout=self._timeout) as response:
                    if response.status_code == 404:
                        return ArtifactRead(problem=f"task {task_id} has no {name}")
                    if response.status_code >= 500:
                        problem = f"{what}: the Queue answered {response.status_code}"
                        continue
                    if response.status_code != 200:
                        return ArtifactRead(
                            problem=f"{what}: the Queue answered {response.status_code}"
                        )
                    data = bytearray()
                    for chunk in response.iter_content(1 << 16):
                        data += chunk
                        if len(data) > limit:
                            return ArtifactRead(problem=f"{what} is more than {limit} bytes")
                    return ArtifactRead(bytes(data))
            except requests.RequestException as e:
                problem = f"{what} cannot be fetched: {type(e).__name__}: {_short(e)}"
        return ArtifactRead(problem=problem)

    def read_artifacts(
        self, task_ids: Sequence[str], name: str, *, limit: int
    ) -> dict[str, ArtifactRead]:
        """Fetch each task's small artifact ``name`` (at most ``limit`` bytes), concurrently.

        Requests run on at most ``max_workers`` threads; a 5xx answer or a
        connection error is retried ``max_retries`` times. A task whose
        artifact is missing, larger than ``limit`` or cannot be fetched gets
        a ``problem`` instead of content; this never raises for one task.
        """
        import requests

        validate_artifact_name(name)
        ids = list(dict.fromkeys(task_ids))
        with requests.Session() as session:
            # Connections are kept alive and shared: one per worker thread.
            adapter = requests.adapters.HTTPAdapter(pool_maxsize=self._max_workers)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            return dict(zip(ids, self._map(
                lambda t: self._read_artifact(session, t, name, limit), ids)))

    def usable_artifacts(self, task_ids: Sequence[str], artifact: str) -> dict[str, Usability]:
        """Return a verdict for each task: its state (batched), then its artifact.

        :raises IndexBackendError: when the queue cannot answer.
        """
        validate_artifact_name(artifact)
        ids = list(dict.fromkeys(task_ids))
        states = self.task_states(ids)
        expiries = self.artifact_expiries([t for t in ids if states.get(t) == "completed"],
                                          artifact)
        now = self._clock()
        return {t: verdict(states.get(t), expiries.get(t), now) for t in ids}
