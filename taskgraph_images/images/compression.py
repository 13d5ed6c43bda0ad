"""zstd for image artifacts: compress a stream, and follow a stream's frames.

Kept apart from :mod:`taskgraph_images.images.artifacts` (which re-exports both
names) so that compressing needs nothing but :mod:`zstandard`, imported on
first use.
"""

from __future__ import annotations

import os
from typing import IO, Iterable, Optional, Union

from taskgraph_images._floors import require
from taskgraph_images.errors import ArtifactError

__all__ = [
    "BUFFER",
    "SUFFIXES",
    "ZSTD_MAGIC",
    "Buffer",
    "ZstdFrameChecker",
    "compress_stream",
    "compression_by_suffix",
    "compression_for_name",
]

#: Read and write size for streaming (1 MiB).
BUFFER = 1 << 20
#: The first four bytes of every zstd frame.
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"

Buffer = Union[bytes, bytearray, memoryview]


#: How a tarball (an image's or a context's) is stored, by the end of its file name.
SUFFIXES = (
    (".tar.zst", "zstd"), (".tzst", "zstd"), (".zst", "zstd"),
    (".tar.gz", "gzip"), (".tgz", "gzip"),
    (".tar", "none"),
)

#: The compressions an image tarball may have.
_IMAGE_COMPRESSIONS = ("zstd", "none")


def compression_by_suffix(name: str) -> Optional[str]:
    """Return ``"zstd"``, ``"gzip"`` or ``"none"`` for a tarball's file name (:data:`SUFFIXES`).

    ``None`` when the name ends in none of them.

    >>> compression_by_suffix("context.tar.gz"), compression_by_suffix("image.tzst")
    ('gzip', 'zstd')
    """
    for suffix, kind in SUFFIXES:
        if name.endswith(suffix):
            return kind
    return None


def compression_for_name(name: str) -> str:
    """Return ``"zstd"`` or ``"none"`` (plain tar) for an image tarball's file name.

    >>> compression_for_name("image.tar.zst"), compression_for_name("image.tar")
    ('zstd', 'none')

    :raises ArtifactError: for a name with another ending (gzip included).
    """
    kind = compression_by_suffix(name)
    if kind is not None and kind in _IMAGE_COMPRESSIONS:
        return kind
    raise ArtifactError(
        f"cannot tell the format of {name!r} from its name: use .tar (plain) or "
        ".tar.zst (zstd-compressed)"
    )


# -- pure: zstd frame boundaries ----------------------------------------------------


class ZstdFrameChecker:
    """Follow the frame and block structure of a zstd stream without decompressing it.

    It tells whether the bytes seen so far end exactly at the end of a frame
    (the decompressor alone cannot tell a truncated stream from a finished
    one). Fed with every compressed byte, in order.
    """

    _MAGIC = int.from_bytes(ZSTD_MAGIC, "little")

    def __init__(self) -> None:
        self._need = 4  # bytes still needed for the current header field
        self._buf = bytearray()
        self._skip = 0
        self._step = "magic"
        self._checksum = False
        self.frames = 0

    @property
    def complete(self) -> bool:
        """True when at least one frame was seen and the stream ends between frames."""
        return self.frames > 0 and self._step == "magic" and not self._buf and not self._skip

    def feed(self, data: Buffer) -> None:
        """Follow ``data``; raise :class:`ArtifactError` when it cannot be zstd."""
        view = memoryview(data)
        pos, end = 0, len(view)
        while pos < end:
            if self._skip:
                n = min(self._skip, end - pos)
                self._skip -= n
                pos += n
                if not self._skip:
                    self._after_skip()
                continue
            n = min(self._need - len(self._buf), end - pos)
            self._buf += view[pos : pos + n]
            pos += n
            if len(self._buf) == self._need:
                field = bytes(self._buf)
                self._buf.clear()
                self._on_field(field)

    def _after_skip(self) -> None:
        if self._step == "block-end":
            self._step, self._need = "block", 3
        elif self._step == "skippable":
            self._step, self._need = "magic", 4
        elif self._step == "last-block-end":
            self._end_frame()

    def _end_frame(self) -> None:
        if self._checksum:
            self._checksum = False
            self._step, self._need = "checksum", 4
        else:
            self.frames += 1
            self._step, self._need = "magic", 4

    def _on_field(self, field: bytes) -> None:
        step = self._step
        if step == "magic":
            magic = int.from_bytes(field, "little")
            if magic == self._MAGIC:
                self._step, self._need = "descriptor", 1
            elif magic & 0xFFFFFFF0 == 0x184D2A50:
                self._step, self._need = "skippable-size", 4
            else:
                raise ArtifactError("not a zstd stream, or corrupt data between zstd frames")
        elif step == "skippable-size":
            self._step = "skippable"
            self._skip = int.from_bytes(field, "little")
            if not self._skip:
                self._step, self._need = "magic", 4
        elif step == "descriptor":
            fhd = field[0]
            if fhd & 0x08:
                raise ArtifactError("corrupt zstd frame header (reserved bit set)")
            single = bool(fhd & 0x20)
            self._checksum = bool(fhd & 0x04)
            dict_size = (0, 1, 2, 4)[fhd & 0x03]
            fcs_size = (1 if single else 0, 2, 4, 8)[fhd >> 6]
            rest = (0 if single else 1) + dict_size + fcs_size
            if rest:
                self._step, self._need = "header-rest", rest
            else:
                self._step, self._need = "block", 3
        elif step == "header-rest":
            self._step, self._need = "block", 3
        elif step == "block":
            value = int.from_bytes(field, "little")
            last, kind, size = value & 1, (value >> 1) & 3, value >> 3
            if kind == 3:
                raise ArtifactError("corrupt zstd block (reserved block type)")
            body = 1 if kind == 1 else size
            self._step = "last-block-end" if last else "block-end"
            self._skip = body
            if not body:
                self._after_skip()
        elif step == "checksum":
            self.frames += 1
            self._step, self._need = "magic", 4


# -- compress -------------------------------------------------------------------------


def compress_stream(
    chunks: Iterable[Buffer], out: IO[bytes], *, level: int = 3, threads: int = 0
) -> int:
    """Compress ``chunks`` into ``out`` as one zstd frame with a checksum; return bytes read.

    ``threads`` is the number of compression workers (0: one per core).

    :raises DependencyError: for a ``zstandard`` older than the floor.
    """
    require("zstandard")
    import zstandard

    workers = threads if threads > 0 else (os.cpu_count() or 1)
    cctx = zstandard.ZstdCompressor(level=level, threads=workers, write_checksum=True)
    total = 0
    with cctx.stream_writer(out, write_size=BUFFER, closefd=False) as writer:
        for chunk in chunks:
            writer.write(chunk)
            total += len(chunk)
    return total
