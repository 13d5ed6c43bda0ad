"""Image artifacts: save an image as ``.tar.zst``, and load one back, retagged on the fly.

Saving streams the engine's ``docker save`` tarball through a multi-threaded
zstd compressor into a temporary file beside the output, renamed only when
complete (a failure, a full disk included, leaves nothing behind).

Loading reads a local file, an HTTP(S) URL, a Taskcluster task's
``public/image.tar.zst`` or an indexed image (:mod:`.source`), decompresses
it with fixed buffers, checks and optionally retags it with
:class:`~taskgraph_images.images.tarball.TarRewriter` (layers pass through as
raw bytes; only ``manifest.json``, ``repositories`` and OCI ``index.json``
are rewritten, by :mod:`.retag`) and pipes it into the engine's load or a
file (:mod:`.sinks`). The tar's end blocks are sent only after the zstd
stream proved complete (every frame ended, its checksum matched) and the tar
proved complete: a truncated or corrupt artifact makes the upload abort
before its end, so the engine loads nothing.
"""

from __future__ import annotations

import os
import re
from typing import IO, TYPE_CHECKING, Any, Iterable, Iterator, Optional, Union

import attrs

from taskgraph_images._floors import require
from taskgraph_images.errors import ArtifactError, DockerError, InvalidValueError
from taskgraph_images.images.compression import BUFFER, ZSTD_MAGIC, ZstdFrameChecker, compress_stream
from taskgraph_images.images.retag import METADATA_MEMBERS, retagger
from taskgraph_images.images.sinks import FileSink, PathLike, Sink
from taskgraph_images.images.source import ARTIFACT_NAME, open_named_source
from taskgraph_images.images.tarball import TarRewriter
from taskgraph_images.progress import Meter, Reporter, announcing, format_size

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.images.engine import Engine
    from taskgraph_images.index import SearchOrder

__all__ = [
    "DEFAULT_MAX_SIZE",
    "LoadResult",
    "ZstdFrameChecker",
    "compress_stream",
    "load_image",
    "parse_size",
    "save_image",
    "stream_image",
]

#: Default limit on the decompressed size of an artifact (a guard against zstd bombs).
DEFAULT_MAX_SIZE = 64 << 30


# -- parsing a size ---------------------------------------------------------------------


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
    """Load the image artifact ``source`` into ``engine`` or ``output``.

    ``source`` is what :func:`~taskgraph_images.images.source.open_source`
    opens. With ``tag`` (``name:tag``) the image is retagged on the fly. With
    ``output`` (a path, or a binary file object such as stdout) the
    (retagged) tarball is written there instead of loaded, compressed as
    :class:`~taskgraph_images.images.sinks.FileSink` says (``compression``:
    ``"zstd"`` or ``"none"``, by default from the name). Every error names
    the artifact: the file, URL or task id.

    :raises ArtifactError: for a missing, corrupt, truncated or unsafe artifact.
    :raises DockerError: when the engine refuses it.
    """
    if tag is not None:
        _check_reference(tag)
    raw, name = open_named_source(source, index=index, catalog=catalog, level=level,
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
