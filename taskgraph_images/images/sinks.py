"""Where a loaded image tarball goes: the engine's load, a file, or nowhere.

A sink takes the tarball's bytes as they come (:meth:`Sink.write`), then
either completes (:meth:`Sink.finish`) or takes back what it can
(:meth:`Sink.abort`): a file is written atomically, so an aborted one is
never left behind.
"""

from __future__ import annotations

import os
from typing import IO, Any, Iterable, Optional, Protocol, Union

from taskgraph_images._floors import require
from taskgraph_images.errors import ArtifactError
from taskgraph_images.images.compression import BUFFER, Buffer

__all__ = ["FileSink", "NullSink", "PathLike", "Sink"]

#: A file name, as ``open`` takes it.
PathLike = Union[str, "os.PathLike[str]"]


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
