"""Image artifacts: save an image as ``.tar.zst``, and load one back, retagged on the fly.

Saving streams the engine's ``docker save`` tarball through a multi-threaded
zstd compressor into a temporary file beside the output, renamed only when
complete (a failure, a full disk included, leaves nothing behind).

Loading reads a local file, an HTTP(S) URL, a Taskcluster task's
``public/image.tar.zst`` or an indexed image, decompresses it with fixed
buffers, checks and optionally retags it with
:class:`~taskgraph_images.images.tarball.TarRewriter` (layers pass through as raw
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
from taskgraph_images._floors import require
from taskgraph_images.errors import ArtifactError, DockerError, InvalidValueError
from taskgraph_images.images.compression import BUFFER, ZSTD_MAGIC, Buffer, ZstdFrameChecker, compress_stream
from taskgraph_images.images.tarball import TarRewriter
from taskgraph_images.progress import Meter, Reporter, Wait, announcing, format_size
from taskgraph_images.tc.env import TaskclusterEnv, artifact_url

if TYPE_CHECKING:  # pragma: no cover
    import requests

    from taskgraph_images.images.engine import Engine
    from taskgraph_images.index._lookup import SearchOrder

__all__ = [
    "ARTIFACT_NAME",
    "DEFAULT_MAX_SIZE",
    "FileSink",
    "HttpReader",
    "LoadResult",
    "NullSink",
    "Sink",
    "ZstdFrameChecker",
    "compress_stream",
    "load_image",
    "looks_like_file",
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
    except RecursionError:
        raise ArtifactError(f"the image archive's {what} is refused: nested too deeply") from None


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


#: The members of an image archive the engine reads its tags from: always
#: regular files (a link there would escape the retag, see docs/security.rst).
METADATA_MEMBERS = ("manifest.json", "repositories", "index.json")


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
    out: Union[PathLike, IO[bytes]],
    *,
    level: int = 3,
    threads: int = 0,
    reporter: Optional[Reporter] = None,
    compression: str = "zstd",
) -> int:
    """Save image ``tag`` from ``engine`` as a tarball (zstd-compressed by default) at ``out``.

    ``out`` is a path (the file appears only when complete) or a binary
    file object (stdout, say). ``compression`` is ``"zstd"`` or ``"none"``
    (the plain tar ``docker save`` writes). The bytes read from the engine
    are reported to ``reporter`` as a transfer labelled ``saving TAG``.
    Returns the uncompressed size.

    :raises DockerError: for an unknown image or a broken engine stream.
    :raises ArtifactError: when ``out`` cannot be written (the partial file is removed).
    """
    if not 1 <= level <= 22:
        raise ArtifactError(f"invalid zstd level {level}: use 1 to 22")
    if compression not in ("zstd", "none"):
        raise ArtifactError(f"invalid compression {compression!r}: use zstd or none")
    chunks: Iterator[bytes] = engine.save(tag)
    meter = None
    if reporter is not None:
        meter = Meter(reporter, f"saving {tag}")
        chunks = _counting(chunks, meter)
    where = out if isinstance(out, (str, os.PathLike)) else "stdout"
    try:
        size = FileSink(out, compression=compression, level=level, threads=threads).write_all(
            chunks
        )
    except OSError as e:
        raise ArtifactError(f"cannot write {os.fspath(where)}: {e.strerror or e}") from e
    finally:
        if meter is not None:
            meter.finish()
    return size


def _counting(chunks: Iterable[bytes], meter: Meter) -> Iterator[bytes]:
    for chunk in chunks:
        meter.update(len(chunk))
        yield chunk


# -- sources --------------------------------------------------------------------------


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
    :meth:`IndexKeys.search <taskgraph_images.cachekeys.IndexKeys.search>`).

    :raises ArtifactError: when the source cannot be found or opened.
    """
    return _open_source(source, index=index, catalog=catalog, level=level, root_url=root_url,
                        env=env, artifact=artifact, prefix=prefix, search=search)[0]


#: Names that can only mean a file: a path separator or an image archive's suffix.
_FILE_LIKE = re.compile(r"(?:.*/.*|.*\.(?:tar|zst|tzst|gz|tgz))\Z", re.DOTALL)


def looks_like_file(source: str) -> bool:
    """Whether ``source`` can only be meant as a file (``./x``, ``a.tar.zst``).

    >>> looks_like_file("image.tar.zst"), looks_like_file("builder")
    (True, False)
    """
    return not source.startswith(("https://", "http://")) and bool(_FILE_LIKE.match(source))


def _open_source(
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
    if _is_task_id(source) and not (catalog is not None and source in catalog):
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


# -- sinks ----------------------------------------------------------------------------


class Sink(Protocol):
    """Where a loaded tarball goes: the engine's load, a file, or nowhere.

    A sink whose :meth:`finish` may take long says what it waits for in a
    ``finish_waits_for`` attribute, ``(subject, call)``, for progress messages.
    """

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
    """Writes the tarball to a file, atomically, or to a binary file object.

    ``compression`` is ``"zstd"`` or ``"none"``; by default it follows the
    file's name (``.tar`` plain, ``.tar.zst`` zstd; other names are
    refused), and a file object gets the plain tar.
    """

    #: What :meth:`finish` waits for, and the call, in progress messages.
    finish_waits_for = ("the disk", "fsync")

    def __init__(
        self, out: Union[PathLike, IO[bytes]], *, compression: Optional[str] = None,
        level: int = 3, threads: int = 0,
    ) -> None:
        from taskgraph_images._atomic import atomic_output
        from taskgraph_images.images.compression import compression_for_name

        self._context: Any = None
        if isinstance(out, (str, os.PathLike)):
            self.path = os.fspath(out)
            kind = compression or compression_for_name(self.path)
        else:
            self.path = "stdout"
            kind = compression or "none"
        if kind == "zstd":
            require("zstandard")  # before anything is written
        if isinstance(out, (str, os.PathLike)):
            self._context = atomic_output(out)
            self._file: IO[bytes] = self._context.__enter__()
        else:
            self._file = out
        self._zstd: Any = None
        if kind == "zstd":
            import zstandard

            workers = threads if threads > 0 else (os.cpu_count() or 1)
            cctx = zstandard.ZstdCompressor(level=level, threads=workers, write_checksum=True)
            self._zstd = cctx.stream_writer(self._file, write_size=BUFFER, closefd=False)

    def write(self, data: Buffer) -> None:
        (self._zstd or self._file).write(data)

    def write_all(self, chunks: Iterable[Buffer]) -> int:
        """Write every chunk of ``chunks`` and :meth:`finish`; return the bytes taken.

        When ``chunks`` or a write raises, the sink is aborted (a file is
        not left behind) and the error goes on.
        """
        size = 0
        try:
            for chunk in chunks:
                self.write(chunk)
                size += len(chunk)
        except BaseException:
            self.abort()
            raise
        self.finish()
        return size

    def finish(self) -> list[str]:
        if self._zstd is not None:
            try:
                self._zstd.close()  # the frame's end: the disk may be full
            except BaseException:
                self.abort()
                raise
        if self._context is not None:
            self._context.__exit__(None, None, None)
        else:
            self._file.flush()
        return [f"Wrote {self.path}"]

    def abort(self) -> None:
        import contextlib

        with contextlib.suppress(Exception):
            if self._zstd is not None:
                self._zstd.close()
        if self._context is None:
            return  # a stream cannot be taken back: the reader sees it end early
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
                 meter: Optional[Meter]) -> None:
        self._raw = raw
        self._head = head
        self._checker = checker
        self._meter = meter
        if checker is not None and head:
            checker.feed(head)
        if meter is not None:
            # Known now or never: the head has been read, so an HTTP body is open.
            if meter.total is None:
                meter.total = _size_of(raw)
            if head:
                meter.update(len(head))

    def read(self, n: int = -1) -> bytes:
        if self._head:
            data, self._head = self._head, b""
            return data
        try:
            data = self._raw.read(n)
        except OSError as e:
            raise ArtifactError(f"cannot read it: {e}") from e
        if data:
            if self._checker is not None:
                self._checker.feed(data)
            if self._meter is not None:
                self._meter.update(len(data))
        return data


def _size_of(raw: IO[bytes]) -> Optional[int]:
    """The size of what ``raw`` reads, when it can tell (a file; an HTTP body)."""
    total = getattr(raw, "total", None)
    if isinstance(total, int):
        return total
    try:
        return os.fstat(raw.fileno()).st_size or None
    except (AttributeError, OSError, ValueError):
        return None


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
    reporter: Optional[Reporter] = None,
    name: str = "the image artifact",
) -> LoadResult:
    """Decompress (when zstd), check and retag the tarball read from ``raw`` into ``sink``.

    Plain tar input is accepted too. On any error the sink is aborted (the
    engine loads nothing, a file is not created) and the error raised, its
    message starting with ``name`` (the file, URL or task the bytes come
    from). The compressed bytes read are reported to ``reporter`` as a
    transfer labelled ``loading NAME``.

    :raises ArtifactError: for a corrupt, truncated, unsafe or too large
        artifact, one that is neither zstd nor tar, or one with nothing to
        retag (no ``manifest.json``) when ``tag`` is given.
    :raises DockerError: when the engine refuses the image.
    """
    meter = None
    if reporter is not None:
        meter = Meter(reporter, f"loading {name}")
    try:
        try:
            result = _stream(raw, sink, tag, max_size, meter)
        except BaseException:
            sink.abort()
            raise
    except ArtifactError as e:
        raise ArtifactError(f"{name}: {e}") from e
    except DockerError as e:
        raise type(e)(f"{name}: {e}") from e
    finally:
        if meter is not None:
            meter.finish()
    return result


def _stream(
    raw: IO[bytes], sink: Sink, tag: Optional[str], max_size: int, meter: Optional[Meter]
) -> LoadResult:
    rewriter = TarRewriter(retagger(tag) if tag else None, regular=METADATA_MEMBERS)
    head = _read_head(raw)
    compressed = head == ZSTD_MAGIC
    checker = ZstdFrameChecker() if compressed else None
    source = _Tracked(raw, head, checker, meter)
    total = 0
    if compressed:
        require("zstandard")
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
                    f"it decompresses to more than {format_size(max_size)} "
                    "(the limit; raise it with --max-size if the image is that large)"
                )
            try:
                pieces = rewriter.feed(view[:n] if compressed else view_n)
            except ArtifactError as e:
                raise _tar_error(e, rewriter, compressed, total) from e
            for piece in pieces:
                sink.write(piece)
    except ArtifactError:
        raise
    except Exception as e:
        if compressed and type(e).__name__ == "ZstdError":
            raise ArtifactError(f"corrupt zstd data: {e}") from e
        raise
    finally:
        if compressed:
            reader.close()
    if compressed:
        while source.read(BUFFER):  # anything after the last frame the reader left
            pass
        assert checker is not None
        if not checker.complete:
            raise ArtifactError("truncated zstd stream: it ends inside a frame")
    try:
        tail = rewriter.close()
    except ArtifactError as e:
        raise _tar_error(e, rewriter, compressed, total) from e
    if tag is not None and not rewriter.rewritten:
        raise ArtifactError(
            f"nothing to retag as {tag}: the archive has no manifest.json (nor repositories or "
            "index.json); it is not an image saved by docker save"
        )
    sink.write(tail)
    if meter is None:
        messages = sink.finish()
    else:
        # The engine answers a load only once it has unpacked the image.
        subject, call = getattr(sink, "finish_waits_for", ("the output", "finish"))
        with announcing(meter.reporter, subject, call):
            messages = sink.finish()
    return LoadResult(tuple(messages), compressed, total, tuple(rewriter.rewritten))


def _tar_error(
    error: ArtifactError, rewriter: TarRewriter, compressed: bool, size: int
) -> ArtifactError:
    """The error to raise for a tar that does not parse: plain bytes that never
    began a tar are not a damaged tar but something else altogether."""
    if compressed or rewriter.started:
        return error
    return ArtifactError(
        "not zstd-compressed (it does not start with the zstd magic number) "
        f"and not a tar archive either ({format_size(size)})"
    )


def load_image(
    source: str,
    *,
    engine: Optional[Engine] = None,
    tag: Optional[str] = None,
    output: Optional[Union[PathLike, IO[bytes]]] = None,
    max_size: int = DEFAULT_MAX_SIZE,
    index: Any = None,
    catalog: Any = None,
    level: int = 3,
    root_url: Optional[str] = None,
    reporter: Optional[Reporter] = None,
    artifact: str = ARTIFACT_NAME,
    prefix: Optional[str] = None,
    compression: Optional[str] = None,
    search: Optional[SearchOrder] = None,
) -> LoadResult:
    """Load the image artifact ``source`` (see :func:`open_source`) into ``engine`` or ``output``.

    With ``tag`` (``name:tag``) the image is retagged on the fly. With
    ``output`` (a path, or a binary file object such as stdout) the
    (retagged) tarball is written there instead of loaded, compressed as
    :class:`FileSink` says (``compression``: ``"zstd"`` or ``"none"``, by
    default from the name). Every error names the artifact: the file, URL
    or task id.

    :raises ArtifactError: for a missing, corrupt, truncated or unsafe artifact.
    :raises DockerError: when the engine refuses it.
    """
    if tag is not None:
        _check_reference(tag)
    raw, name = _open_source(source, index=index, catalog=catalog, level=level,
                             root_url=root_url, env=None, artifact=artifact, prefix=prefix,
                             reporter=reporter, search=search)
    try:
        sink: Sink
        if output is not None:
            sink = FileSink(output, compression=compression)
        else:
            if engine is None:
                from taskgraph_images.images.engine import Engine

                engine = Engine.from_env()
            sink = engine.start_load()
        return stream_image(raw, sink, tag=tag, max_size=max_size, reporter=reporter, name=name)
    except OSError as e:
        raise ArtifactError(f"loading {name}: {e}") from e
    finally:
        raw.close()


_REFERENCE = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
    r"(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?\Z"
)


def _check_reference(reference: str) -> None:
    if not _REFERENCE.match(reference):
        raise InvalidValueError(f"invalid image reference {reference!r}: use name[:tag]")
