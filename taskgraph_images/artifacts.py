"""Image artifacts: save an image as ``.tar.zst``, and load one back, retagged on the fly.

Saving streams the engine's ``docker save`` tarball through a multi-threaded
zstd compressor into a temporary file beside the output, renamed only when
complete (a failure, a full disk included, leaves nothing behind).

Loading reads a local file, an HTTP(S) URL, a Taskcluster task's
``public/image.tar.zst`` or an indexed image, decompresses it with fixed
buffers, checks and optionally retags it with
:class:`~taskgraph_images._tarball.TarRewriter` (layers pass through as raw
bytes; only ``manifest.json``, ``repositories`` and OCI ``index.json`` are
rewritten) and pipes it into the engine's load or a file. The tar's end
blocks are sent only after the zstd stream proved complete (every frame
ended, its checksum matched) and the tar proved complete: a truncated or
corrupt artifact makes the upload abort before its end, so the engine loads
nothing.
"""

from __future__ import annotations

import json
import os
import re
import sys
import time
from typing import (
    IO,
    TYPE_CHECKING,
    Any,
    Callable,
    Iterable,
    Iterator,
    Optional,
    Protocol,
    Union,
)

import attrs

from taskgraph_images._dockerfile import split_reference
from taskgraph_images._tarball import TarRewriter
from taskgraph_images.compression import BUFFER, ZSTD_MAGIC, Buffer, ZstdFrameChecker, compress_stream
from taskgraph_images.errors import ArtifactError, InvalidValueError
from taskgraph_images.tcenv import TaskclusterEnv, artifact_url

if TYPE_CHECKING:  # pragma: no cover
    import requests

    from taskgraph_images.docker import Engine

__all__ = [
    "ARTIFACT_NAME",
    "DEFAULT_MAX_SIZE",
    "FileSink",
    "HttpReader",
    "LoadResult",
    "NullSink",
    "Progress",
    "Sink",
    "ZstdFrameChecker",
    "compress_stream",
    "load_image",
    "open_source",
    "parse_size",
    "retag_index",
    "retag_manifest",
    "retag_repositories",
    "retagger",
    "save_image",
    "stream_image",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The artifact a build task uploads and a consumer loads.
ARTIFACT_NAME = "public/image.tar.zst"
#: Default limit on the decompressed size of an artifact (a guard against zstd bombs).
DEFAULT_MAX_SIZE = 64 << 30
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]\Z")


# -- pure: retagging the tag files ---------------------------------------------------


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ArtifactError(f"the image archive's {what} is not valid JSON: {e}") from e


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def retag_manifest(data: bytes, reference: str) -> bytes:
    """Return ``manifest.json`` with the single image's ``RepoTags`` set to ``[reference]``.

    >>> retag_manifest(b'[{"Config":"c.json","RepoTags":["a:1"],"Layers":[]}]', "b:2")
    b'[{"Config":"c.json","RepoTags":["b:2"],"Layers":[]}]'

    :raises ArtifactError: when the manifest is malformed or holds several images.
    """
    value = _json(data, "manifest.json")
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise ArtifactError("the image archive's manifest.json is not a list of images")
    if len(value) != 1:
        raise ArtifactError(
            f"cannot retag an archive holding {len(value)} images; it must hold exactly one"
        )
    value[0]["RepoTags"] = [reference]
    return _dump(value)


def retag_repositories(data: bytes, reference: str) -> bytes:
    """Return the legacy ``repositories`` file naming only ``reference``.

    >>> retag_repositories(b'{"a":{"1":"abc"}}', "reg/b")
    b'{"reg/b":{"latest":"abc"}}'
    """
    value = _json(data, "repositories")
    ids = [
        i for tags in (value.values() if isinstance(value, dict) else [])
        if isinstance(tags, dict) for i in tags.values()
    ]
    if not ids:
        raise ArtifactError("the image archive's repositories file names no image")
    if len(set(ids)) != 1:
        raise ArtifactError("cannot retag an archive holding several images")
    repo, tag = split_reference(reference)
    return _dump({repo: {tag: ids[0]}})


def retag_index(data: bytes, reference: str) -> bytes:
    """Return an OCI ``index.json`` whose image-name annotations name ``reference``."""
    value = _json(data, "index.json")
    manifests = value.get("manifests") if isinstance(value, dict) else None
    if not isinstance(manifests, list):
        raise ArtifactError("the image archive's index.json has no manifests list")
    repo, tag = split_reference(reference)
    for entry in manifests:
        notes = entry.get("annotations") if isinstance(entry, dict) else None
        if not isinstance(notes, dict):
            continue
        if "io.containerd.image.name" in notes:
            notes["io.containerd.image.name"] = _full_name(repo, tag)
        if "org.opencontainers.image.ref.name" in notes:
            notes["org.opencontainers.image.ref.name"] = tag
    return _dump(value)


def _full_name(repo: str, tag: str) -> str:
    first = repo.split("/", 1)[0]
    if "/" not in repo:
        repo = f"docker.io/library/{repo}"
    elif not ("." in first or ":" in first or first == "localhost"):
        repo = f"docker.io/{repo}"
    return f"{repo}:{tag}"


def retagger(reference: str) -> Callable[[str], Optional[Callable[[bytes], bytes]]]:
    """Return the :class:`TarRewriter` callback that retags an image archive to ``reference``."""
    repo, tag = split_reference(reference)
    reference = f"{repo}:{tag}"
    table = {
        "manifest.json": retag_manifest,
        "repositories": retag_repositories,
        "index.json": retag_index,
    }

    def choose(name: str) -> Optional[Callable[[bytes], bytes]]:
        fn = table.get(name)
        if fn is None:
            return None
        return lambda data: fn(data, reference)

    return choose


# -- progress -------------------------------------------------------------------------


class Progress:
    """A one-line progress display (bytes and speed) on a terminal; silent otherwise."""

    def __init__(
        self, label: str, stream: Optional[IO[str]] = None, *, enabled: Optional[bool] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.label = label
        self._clock = clock
        self._start = clock()
        self._last = 0.0
        self.done = 0

    def update(self, n: int) -> None:
        """Count ``n`` more bytes (redrawing at most four times a second)."""
        self.done += n
        if not self.enabled:
            return
        now = self._clock()
        if now - self._last >= 0.25:
            self._last = now
            self._draw(now)

    def _draw(self, now: float) -> None:
        elapsed = max(now - self._start, 1e-6)
        rate = self.done / elapsed
        self.stream.write(f"\r{self.label}: {_human(self.done)} at {_human(rate)}/s   ")
        self.stream.flush()

    def finish(self) -> None:
        """End the line."""
        if self.enabled:
            self._draw(self._clock())
            self.stream.write("\n")
            self.stream.flush()


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def parse_size(text: str) -> int:
    """Parse a size such as ``64G``, ``512MiB`` or ``1000000``.

    >>> parse_size("2G")
    2147483648
    """
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(i?b)?\s*", text, re.IGNORECASE)
    if not m:
        raise ArtifactError(f"invalid size {text!r}: use a number with an optional K, M, G or T")
    power = " kmgt".index(m.group(2).lower() or " ")
    return int(m.group(1)) << (10 * power)


# -- save -----------------------------------------------------------------------------


def save_image(
    engine: Engine,
    tag: str,
    out: PathLike,
    *,
    level: int = 3,
    threads: int = 0,
    progress: Optional[Progress] = None,
) -> int:
    """Save image ``tag`` from ``engine`` as a zstd-compressed tarball at ``out``.

    Returns the uncompressed size. The file appears only when complete.

    :raises DockerError: for an unknown image or a broken engine stream.
    :raises ArtifactError: when ``out`` cannot be written (the partial file is removed).
    """
    from taskgraph_images._atomic import atomic_output

    if not 1 <= level <= 22:
        raise ArtifactError(f"invalid zstd level {level}: use 1 to 22")
    chunks: Iterator[bytes] = engine.save(tag)
    if progress is not None:
        chunks = _counting(chunks, progress)
    try:
        with atomic_output(out) as f:
            size = compress_stream(chunks, f, level=level, threads=threads)
    except OSError as e:
        raise ArtifactError(f"cannot write {os.fspath(out)}: {e.strerror or e}") from e
    finally:
        if progress is not None:
            progress.finish()
    return size


def _counting(chunks: Iterable[bytes], progress: Progress) -> Iterator[bytes]:
    for chunk in chunks:
        progress.update(len(chunk))
        yield chunk


# -- sources --------------------------------------------------------------------------


class HttpReader:
    """A file-like reader of an HTTP(S) URL that survives transient failures.

    Errors 429/5xx and connection failures are retried with backoff; a body
    that breaks off is resumed with ``Range`` (or, when the server ignores
    ranges, fetched again with the bytes already read skipped).
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
    ) -> None:
        import requests

        self.url = url
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
            self._fail(type(e).__name__)
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
                self._fail(f"connection dropped ({type(e).__name__})")
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


def _is_task_id(text: str) -> bool:
    return bool(_TASK_ID.match(text))


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
) -> IO[bytes]:
    """Open the artifact ``source`` names, as a binary reader.

    ``source`` is a file path, an ``http(s)://`` URL, a Taskcluster task id
    (the task's ``artifact``, by default ``public/image.tar.zst``: from
    ``index``'s local artifact store when it has it, else from the Queue at
    ``root_url``, ``index``'s root URL or the one ``env`` names, signed with
    ``env``'s credentials: see :mod:`taskgraph_images.tcenv`) or an image name of ``catalog``
    (looked up in ``index`` by its digest at ``level``, under the index
    ``prefix`` when given, as the plan does).

    :raises ArtifactError: when the source cannot be found or opened.
    """
    if os.path.exists(source):
        try:
            return open(source, "rb")
        except OSError as e:
            raise ArtifactError(f"cannot read {source}: {e.strerror}") from e
    if source.startswith(("https://", "http://")):
        return HttpReader(source)  # type: ignore[return-value]
    task_id: Optional[str] = None
    if _is_task_id(source) and not (catalog is not None and source in catalog):
        task_id = source
    elif catalog is not None and source in catalog:
        if index is None:
            raise ArtifactError(f"cannot look image {source!r} up: no index")
        from taskgraph_images.index import find_image

        options: dict[str, Any] = {"artifact": artifact}
        if prefix is not None:
            options["prefix"] = prefix
        lookup = find_image(index, source, catalog.digest(source), level, **options)
        if lookup.found is None:
            raise ArtifactError(
                f"image {source!r} (digest {catalog.digest(source)}) is not in the "
                f"{index.description} at level {level}: {lookup.reason}"
            )
        task_id = lookup.found.task_id
    if task_id is None:
        raise ArtifactError(
            f"{source!r} is not a file, a URL, a task id or an image of the catalog"
        )
    local = getattr(index, "artifact_path", None)
    if local is not None:
        path = local(task_id, artifact)
        if path is not None:
            return open(path, "rb")
    tc_env = TaskclusterEnv.from_environment() if env is None else env
    root = tc_env.root(root_url or getattr(index, "root_url", None))
    if not root:
        raise ArtifactError(
            f"task {task_id} has no {artifact} in the local artifact store, and no "
            "Taskcluster root URL is set (TASKCLUSTER_ROOT_URL or --index taskcluster:URL)"
        )
    return HttpReader(artifact_url(tc_env.options(root), task_id, artifact))  # type: ignore[return-value]


# -- sinks ----------------------------------------------------------------------------


class Sink(Protocol):
    """Where a loaded tarball goes: the engine's load, a file, or nowhere."""

    def write(self, data: Buffer) -> None: ...

    def finish(self) -> list[str]: ...

    def abort(self) -> None: ...


class NullSink:
    """Discards the tarball, counting its bytes (for benchmarks and checks)."""

    def __init__(self) -> None:
        self.size = 0

    def write(self, data: Buffer) -> None:
        self.size += len(data)

    def finish(self) -> list[str]:
        return []

    def abort(self) -> None:
        pass


class FileSink:
    """Writes the tarball to ``path`` (plain, or zstd when it ends in ``.zst``), atomically."""

    def __init__(self, path: PathLike, *, level: int = 3, threads: int = 0) -> None:
        from taskgraph_images._atomic import atomic_output

        self.path = os.fspath(path)
        self._context = atomic_output(path)
        self._file = self._context.__enter__()
        self._zstd: Any = None
        if self.path.endswith(".zst"):
            import zstandard

            workers = threads if threads > 0 else (os.cpu_count() or 1)
            cctx = zstandard.ZstdCompressor(level=level, threads=workers, write_checksum=True)
            self._zstd = cctx.stream_writer(self._file, write_size=BUFFER, closefd=False)

    def write(self, data: Buffer) -> None:
        (self._zstd or self._file).write(data)

    def finish(self) -> list[str]:
        if self._zstd is not None:
            self._zstd.close()
        self._context.__exit__(None, None, None)
        return [f"Wrote {self.path}"]

    def abort(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            if self._zstd is not None:
                self._zstd.close()
        err = ArtifactError(f"aborted writing {self.path}")
        with contextlib.suppress(ArtifactError):
            self._context.__exit__(ArtifactError, err, None)


# -- load -----------------------------------------------------------------------------


@attrs.frozen
class LoadResult:
    """What a load did."""

    messages: tuple[str, ...]
    compressed: bool
    size: int  # decompressed bytes read
    retagged: tuple[str, ...]  # tag files rewritten


class _Tracked:
    """Reads the source for the decompressor, following zstd frames and counting."""

    def __init__(self, raw: IO[bytes], head: bytes, checker: Optional[ZstdFrameChecker],
                 progress: Optional[Progress]) -> None:
        self._raw = raw
        self._head = head
        self._checker = checker
        self._progress = progress
        if checker is not None and head:
            checker.feed(head)
        if progress is not None and head:
            progress.update(len(head))

    def read(self, n: int = -1) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        try:
            data = self._raw.read(n)
        except OSError as e:
            raise ArtifactError(f"cannot read the image artifact: {e}") from e
        if data:
            if self._checker is not None:
                self._checker.feed(data)
            if self._progress is not None:
                self._progress.update(len(data))
        return data


def _read_head(raw: IO[bytes]) -> bytes:
    head = b""
    while len(head) < 4:
        more = raw.read(4 - len(head))
        if not more:
            break
        head += more
    return head


def stream_image(
    raw: IO[bytes],
    sink: Sink,
    *,
    tag: Optional[str] = None,
    max_size: int = DEFAULT_MAX_SIZE,
    progress: Optional[Progress] = None,
) -> LoadResult:
    """Decompress (when zstd), check and retag the tarball read from ``raw`` into ``sink``.

    Plain tar input is accepted too. On any error the sink is aborted (the
    engine loads nothing, a file is not created) and the error raised.

    :raises ArtifactError: for a corrupt, truncated, unsafe or too large artifact.
    :raises DockerError: when the engine refuses the image.
    """
    rewriter = TarRewriter(retagger(tag) if tag else None)
    head = _read_head(raw)
    compressed = head == ZSTD_MAGIC
    checker = ZstdFrameChecker() if compressed else None
    source = _Tracked(raw, head, checker, progress)
    total = 0
    try:
        if compressed:
            import zstandard

            reader: Any = zstandard.ZstdDecompressor().stream_reader(
                source,  # type: ignore[arg-type]
                read_size=BUFFER, read_across_frames=True, closefd=False
            )
        else:
            reader = source
        buf = bytearray(BUFFER)
        view = memoryview(buf)
        try:
            while True:
                if compressed:
                    n = reader.readinto(buf)
                else:
                    chunk = reader.read(BUFFER)
                    n = len(chunk)
                    view_n = memoryview(chunk)
                if not n:
                    break
                total += n
                if total > max_size:
                    raise ArtifactError(
                        f"the image artifact decompresses to more than {max_size} bytes "
                        "(the limit; raise it with --max-size if the image is that large)"
                    )
                for piece in rewriter.feed(view[:n] if compressed else view_n):
                    sink.write(piece)
        except ArtifactError:
            raise
        except Exception as e:
            if compressed and type(e).__name__ == "ZstdError":
                raise ArtifactError(f"corrupt zstd data in the image artifact: {e}") from e
            raise
        finally:
            if compressed:
                reader.close()
        if compressed:
            while source.read(BUFFER):  # anything after the last frame the reader left
                pass
            assert checker is not None
            if not checker.complete:
                raise ArtifactError(
                    "truncated zstd stream: the image artifact ends inside a frame"
                )
        tail = rewriter.close()
        sink.write(tail)
    except BaseException:
        sink.abort()
        if progress is not None:
            progress.finish()
        raise
    messages = sink.finish()
    if progress is not None:
        progress.finish()
    return LoadResult(tuple(messages), compressed, total, tuple(rewriter.rewritten))


def load_image(
    source: str,
    *,
    engine: Optional[Engine] = None,
    tag: Optional[str] = None,
    output: Optional[PathLike] = None,
    max_size: int = DEFAULT_MAX_SIZE,
    index: Any = None,
    catalog: Any = None,
    level: int = 3,
    root_url: Optional[str] = None,
    progress: Optional[Progress] = None,
    artifact: str = ARTIFACT_NAME,
    prefix: Optional[str] = None,
) -> LoadResult:
    """Load the image artifact ``source`` (see :func:`open_source`) into ``engine`` or ``output``.

    With ``tag`` (``name:tag``) the image is retagged on the fly. With
    ``output`` the (retagged) tarball is written there instead of loaded.

    :raises ArtifactError: for a missing, corrupt, truncated or unsafe artifact.
    :raises DockerError: when the engine refuses it.
    """
    if tag is not None:
        _check_reference(tag)
    raw = open_source(source, index=index, catalog=catalog, level=level, root_url=root_url,
                      artifact=artifact, prefix=prefix)
    try:
        sink: Sink
        if output is not None:
            sink = FileSink(output)
        else:
            if engine is None:
                from taskgraph_images.docker import Engine

                engine = Engine.from_env()
            sink = engine.start_load()
        return stream_image(raw, sink, tag=tag, max_size=max_size, progress=progress)
    except OSError as e:
        raise ArtifactError(f"loading {source}: {e}") from e
    finally:
        raw.close()


_REFERENCE = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?\Z"
)


def _check_reference(reference: str) -> None:
    if not _REFERENCE.match(reference):
        raise InvalidValueError(f"invalid image reference {reference!r}: use name[:tag]")
