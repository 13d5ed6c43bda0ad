"""Where an image artifact is read from: a file, an HTTP(S) URL, a task's
artifact or an indexed image, opened as one binary reader.

:class:`HttpReader` reads a URL through transient failures: errors 429/5xx
and dropped connections are retried with backoff, and a body that breaks
off is resumed with ``Range``.
"""

from __future__ import annotations

import os
import re
import time
from typing import IO, TYPE_CHECKING, Any, Callable, Iterator, Optional

from taskgraph_images.errors import ArtifactError
from taskgraph_images.images.compression import BUFFER
from taskgraph_images.names import is_task_id
from taskgraph_images.progress import Reporter, Wait
from taskgraph_images.tc.env import TaskclusterEnv, artifact_url

if TYPE_CHECKING:  # pragma: no cover
    import requests

    from taskgraph_images.index import SearchOrder

__all__ = ["ARTIFACT_NAME", "HttpReader", "looks_like_file", "open_named_source", "open_source"]

#: The artifact a build task uploads and a consumer loads.
ARTIFACT_NAME = "public/image.tar.zst"


class HttpReader:
    """A file-like reader of an HTTP(S) URL that survives transient failures.

    Errors 429/5xx and connection failures are retried with backoff, each
    retry told to ``reporter``; a body that breaks off is resumed with
    ``Range`` (or, when the server ignores ranges, fetched again with the
    bytes already read skipped).
    """

    def __init__(
        self,
        url: str,
        *,
        session: Optional[requests.Session] = None,
        attempts: int = 5,
        timeout: float = 60.0,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
        reporter: Optional[Reporter] = None,
    ) -> None:
        import requests

        self.url = url
        self._reporter = reporter
        self._own_session = session is None
        self._session = session if session is not None else requests.Session()
        self._attempts = attempts
        self._timeout = timeout
        self._backoff = backoff
        self._sleep = sleep
        self._pos = 0
        self._total: Optional[int] = None
        self._response: Optional[requests.Response] = None
        self._chunks: Optional[Iterator[bytes]] = None
        self._left = b""
        self._failures = 0
        self._eof = False
        self.requests = 0  #: how many requests were made (for tests)

    @property
    def total(self) -> Optional[int]:
        """The body's size, once the server has said it (``Content-Length``)."""
        return self._total

    def __enter__(self) -> HttpReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection."""
        self._drop()
        if self._own_session:
            self._session.close()

    def _drop(self) -> None:
        if self._response is not None:
            self._response.close()
        self._response = None
        self._chunks = None

    def _fail(self, why: str) -> None:
        self._drop()
        self._failures += 1
        if self._failures >= self._attempts:
            raise ArtifactError(f"cannot download {self.url}: {why} (gave up after "
                                f"{self._attempts} attempts)")
        if self._reporter is not None:
            import posixpath
            import urllib.parse

            path = urllib.parse.unquote(urllib.parse.urlsplit(self.url).path)
            name = posixpath.basename(path) or self.url
            self._reporter.waiting(Wait("the download", name, self._failures + 1,
                                        self._attempts, reason=why))
        self._sleep(self._backoff * (2 ** (self._failures - 1)))

    def _connect(self) -> None:
        import requests

        headers = {"Accept-Encoding": "identity"}
        if self._pos:
            headers["Range"] = f"bytes={self._pos}-"
        self.requests += 1
        try:
            response = self._session.get(
                self.url, stream=True, headers=headers, timeout=(30.0, self._timeout)
            )
        except (requests.ConnectionError, requests.Timeout) as e:
            from taskgraph_images._neterrors import describe

            self._fail(describe(e))
            return
        status = response.status_code
        if status == 429 or status >= 500:
            response.close()
            self._fail(f"HTTP {status}")
            return
        if status >= 400:
            response.close()
            raise ArtifactError(f"cannot download {self.url}: HTTP {status}")
        skip = 0
        if status == 206:
            match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", response.headers.get("Content-Range", ""))
            if not match or int(match.group(1)) != self._pos:
                response.close()
                raise ArtifactError(f"cannot resume {self.url}: bad Content-Range")
            if match.group(2) != "*":
                self._total = int(match.group(2))
        else:
            skip = self._pos  # no range support: restart and drop what was read
            length = response.headers.get("Content-Length")
            self._total = int(length) if length and length.isdigit() else None
        self._response = response
        self._chunks = self._iterate(response, skip)

    @staticmethod
    def _iterate(response: requests.Response, skip: int) -> Iterator[bytes]:
        for chunk in response.iter_content(BUFFER):
            if skip:
                if len(chunk) <= skip:
                    skip -= len(chunk)
                    continue
                chunk, skip = chunk[skip:], 0
            yield chunk

    def read(self, n: int = -1) -> bytes:
        """Return up to ``n`` bytes (fewer at times); ``b""`` at the end of the body."""
        import requests

        if self._eof:
            return b""
        if self._left:
            data, self._left = (self._left, b"") if n < 0 else (self._left[:n], self._left[n:])
            return data
        while True:
            if self._chunks is None:
                self._connect()
                continue
            try:
                chunk = next(self._chunks, b"")
            except (requests.ConnectionError, requests.Timeout,
                    requests.exceptions.ChunkedEncodingError) as e:
                from taskgraph_images._neterrors import describe

                self._fail(f"connection dropped ({describe(e)})")
                continue
            if not chunk:
                if self._total is not None and self._pos < self._total:
                    self._fail(f"connection dropped at byte {self._pos} of {self._total}")
                    continue
                self._drop()
                self._eof = True
                return b""
            self._pos += len(chunk)
            if 0 <= n < len(chunk):
                chunk, self._left = chunk[:n], chunk[n:]
            return chunk


def open_source(
    source: str,
    *,
    index: Any = None,
    catalog: Any = None,
    level: int = 3,
    root_url: Optional[str] = None,
    env: Optional[TaskclusterEnv] = None,
    artifact: str = ARTIFACT_NAME,
    prefix: Optional[str] = None,
    search: Optional[SearchOrder] = None,
) -> IO[bytes]:
    """Open the artifact ``source`` names, as a binary reader.

    ``source`` is a file path, an ``http(s)://`` URL, a Taskcluster task id
    (the task's ``artifact``, by default ``public/image.tar.zst``: from
    ``index``'s local artifact store when it has it, else from the Queue at
    ``root_url``, ``index``'s root URL or the one ``env`` names, signed with
    ``env``'s credentials: see :mod:`taskgraph_images.tc.env`) or an image name of ``catalog``
    (looked up in ``index`` by its digest at ``level``, under the index
    ``prefix`` when given, as the plan does; ``search`` gives the namespaces
    to try instead, and is needed for a catalog of taskgraph's cache keys:
    :meth:`IndexKeys.search <taskgraph_images.keys.indexkeys.IndexKeys.search>`).

    :raises ArtifactError: when the source cannot be found or opened.
    """
    return open_named_source(source, index=index, catalog=catalog, level=level, root_url=root_url,
                             env=env, artifact=artifact, prefix=prefix, search=search)[0]


#: Names that can only mean a file: a path separator or an image archive's suffix.
_FILE_LIKE = re.compile(r"(?:.*/.*|.*\.(?:tar|zst|tzst|gz|tgz))\Z", re.DOTALL)


def looks_like_file(source: str) -> bool:
    """Whether ``source`` can only be meant as a file (``./x``, ``a.tar.zst``).

    >>> looks_like_file("image.tar.zst"), looks_like_file("builder")
    (True, False)
    """
    return not source.startswith(("https://", "http://")) and bool(_FILE_LIKE.match(source))


def open_named_source(
    source: str,
    *,
    index: Any,
    catalog: Any,
    level: int,
    root_url: Optional[str],
    env: Optional[TaskclusterEnv],
    artifact: str,
    prefix: Optional[str],
    reporter: Optional[Reporter] = None,
    search: Optional[SearchOrder] = None,
) -> tuple[IO[bytes], str]:
    """Open ``source`` and return it with the words that name it in messages."""
    if os.path.exists(source):
        try:
            return open(source, "rb"), source
        except OSError as e:
            raise ArtifactError(f"cannot read {source}: {e.strerror}") from e
    if source.startswith(("https://", "http://")):
        return HttpReader(source, reporter=reporter), source  # type: ignore[return-value]
    if looks_like_file(source):
        raise ArtifactError(f"{source}: no such file")
    task_id: Optional[str] = None
    what = ""
    if is_task_id(source) and not (catalog is not None and source in catalog):
        task_id = source
        what = f"{artifact} of task {task_id}"
    elif catalog is not None and source in catalog:
        if index is None:
            raise ArtifactError(f"cannot look image {source!r} up: no index")
        if getattr(catalog, "cache_keys", "seed") != "seed" and search is None:
            raise ArtifactError(
                f"cannot look image {source!r} up by name: its digest is taskgraph's "
                "(cache-keys: taskgraph), indexed under taskgraph's namespaces; give the task id"
            )
        from taskgraph_images.index import find_images

        options: dict[str, Any] = {"artifact": artifact, "search": search}
        if prefix is not None:
            options["prefix"] = prefix
        lookup = find_images(index, [(source, catalog.digest(source))], level, **options)[source]
        if lookup.found is None:
            raise ArtifactError(
                f"image {source!r} (digest {catalog.digest(source)}) is not in the "
                f"{index.description} at level {level}: {lookup.reason}"
            )
        task_id = lookup.found.task_id
        what = f"image {source} ({artifact} of task {task_id})"
    if task_id is None:
        raise ArtifactError(
            f"{source!r} is not a file, a URL, a task id or an image of the catalog"
        )
    local = getattr(index, "artifact_path", None)
    if local is not None:
        path = local(task_id, artifact)
        if path is not None:
            return open(path, "rb"), what
    tc_env = TaskclusterEnv.from_environment() if env is None else env
    root = tc_env.root(root_url or getattr(index, "root_url", None))
    if not root:
        raise ArtifactError(
            f"task {task_id} has no {artifact} in the local artifact store, and no "
            "Taskcluster root URL is set (TASKCLUSTER_ROOT_URL or --index taskcluster:URL)"
        )
    reader = HttpReader(artifact_url(tc_env.options(root), task_id, artifact), reporter=reporter)
    return reader, what  # type: ignore[return-value]
