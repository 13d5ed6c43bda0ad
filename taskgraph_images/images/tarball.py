"""Tar archives: a deterministic writer, and a streaming reader that rewrites members.

Writing (:func:`write_tar`): members sorted by name bytes, every directory
listed before its contents, mtime fixed at :data:`DEFAULT_MTIME`, uid/gid 0
with empty owner names, modes reduced to 0644/0755 (0777 for symlinks), PAX
format (extended headers only for long or non-ASCII names), so that the same
files give the same bytes on any machine.

Reading (:class:`TarRewriter`): a push parser over a tar stream that hands
back the pieces to pass on. Member data goes through untouched as slices of
the caller's buffer (no copies, no re-encoding); only members a ``rewrite``
callback asks for are buffered (bounded) and replaced. Every member name and
link target is checked (:func:`check_member`). The end-of-archive blocks are
withheld until :meth:`TarRewriter.close`, so a consumer that only sees what
was passed on never sees a complete archive from a truncated stream.

Both sides are pure: they read and write file objects and buffers given to
them, never paths of their own choosing.
"""

from __future__ import annotations

import io
import os
import posixpath
import tarfile
from typing import IO, Callable, Collection, Optional, Sequence, Union

import attrs

from taskgraph_images.errors import ArtifactError, ContextError
from taskgraph_images.images.compression import Buffer, compression_by_suffix

__all__ = [
    "BLOCK",
    "DEFAULT_MTIME",
    "Member",
    "TarRewriter",
    "check_member",
    "compression_for",
    "parse_header",
    "write_tar",
    "write_tar_to",
]

#: The fixed modification time of every written member (2001-09-09T01:46:40Z).
DEFAULT_MTIME = 1_000_000_000
BLOCK = 512
_COPY = 1 << 20


@attrs.frozen
class Member:
    """One member to write: a file (from ``source`` or ``data``), a directory or a symlink."""

    name: str
    kind: str  # "file", "dir" or "symlink"
    source: Optional[str] = None  # a path to read a file's content from
    data: Optional[bytes] = None  # or the content itself
    link: Optional[str] = None  # a symlink's target
    executable: Optional[bool] = None  # None: a source file's own mode says; data: not executable


def _with_directories(members: Sequence[Member]) -> list[Member]:
    by_name: dict[str, Member] = {}
    for m in members:
        parts = m.name.split("/")
        for i in range(1, len(parts)):
            d = "/".join(parts[:i])
            by_name.setdefault(d, Member(d, "dir"))
        if m.name in by_name and by_name[m.name].kind != "dir":
            raise ValueError(f"two tar members named {m.name!r}")
        by_name[m.name] = m
    return sorted(by_name.values(), key=lambda m: m.name.encode("utf-8", "surrogateescape"))


def _info(m: Member, size: int, executable: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(m.name)
    info.mtime = DEFAULT_MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    if m.kind == "dir":
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
    elif m.kind == "symlink":
        info.type = tarfile.SYMTYPE
        info.mode = 0o777
        info.linkname = m.link or ""
    else:
        info.type = tarfile.REGTYPE
        info.mode = 0o755 if executable else 0o644
        info.size = size
    return info


def write_tar(members: Sequence[Member], out: IO[bytes]) -> None:
    """Write ``members`` (plus their parent directories) to ``out`` deterministically.

    File contents are streamed from ``source`` in chunks.

    :raises OSError: when a source cannot be read or ``out`` written.
    """
    with tarfile.open(
        fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8",
        errors="surrogateescape",
    ) as tar:
        for m in _with_directories(members):
            if m.kind != "file":
                tar.addfile(_info(m, 0))
            elif m.data is not None:
                tar.addfile(_info(m, len(m.data), bool(m.executable)), io.BytesIO(m.data))
            else:
                assert m.source is not None
                with open(m.source, "rb") as f:
                    st = os.fstat(f.fileno())
                    executable = bool(st.st_mode & 0o111) if m.executable is None else m.executable
                    tar.addfile(_info(m, st.st_size, executable), _Exact(f, st.st_size, m.source))


def compression_for(out: object, compression: Optional[str]) -> str:
    """Return ``"none"``, ``"gzip"`` or ``"zstd"``: ``compression`` spelled out, else
    from the suffix of the path ``out``
    (:func:`~taskgraph_images.images.compression.compression_by_suffix`, the rule image
    tarballs follow too), else ``"none"`` for a file object.

    :raises ContextError: for an unknown compression or a path with no known suffix.
    """
    if compression is not None:
        value = {"gz": "gzip", "zst": "zstd", "": "none"}.get(compression, compression)
        if value not in ("none", "gzip", "zstd"):
            raise ContextError(
                f"unknown compression {compression!r}: use 'none', 'gzip' or 'zstd'"
            )
        return value
    if isinstance(out, (str, os.PathLike)):
        name = os.fspath(out)
        by_name = compression_by_suffix(name)
        if by_name is not None:
            return by_name
        raise ContextError(
            f"cannot tell the compression of {name!r} from its name: "
            "use .tar, .tar.gz or .tar.zst, or pass compression="
        )
    return "none"



def write_tar_to(members: Sequence[Member], out: Union[str, os.PathLike[str], IO[bytes]],
                 compression: str = "none") -> None:
    """Write ``members`` with :func:`write_tar` to ``out``, compressed with ``compression``.

    ``out`` is a path (written atomically) or a binary file object;
    ``compression`` is ``"none"``, ``"gzip"`` (no name, mtime 0) or ``"zstd"``
    (level 3, with a checksum).

    :raises OSError: when a source cannot be read or ``out`` written.
    """

    def emit(raw: IO[bytes]) -> None:
        if compression == "gzip":
            import gzip

            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                write_tar(members, gz)  # type: ignore[arg-type]
        elif compression == "zstd":
            import zstandard

            cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
            with cctx.stream_writer(raw, closefd=False) as zw:
                write_tar(members, zw)
        else:
            write_tar(members, raw)

    if isinstance(out, (str, os.PathLike)):
        from taskgraph_images._atomic import atomic_output

        with atomic_output(out) as f:
            emit(f)
    else:
        emit(out)


class _Exact:
    """A reader that yields exactly ``size`` bytes, or fails if the file changed size."""

    def __init__(self, f: IO[bytes], size: int, path: str) -> None:
        self._f = f
        self._left = size
        self._path = path

    def read(self, n: int = -1) -> bytes:
        want = self._left if n < 0 else min(n, self._left)
        data = self._f.read(want)
        if len(data) < want:
            raise OSError(f"{self._path} shrank while it was being written to the tar")
        self._left -= len(data)
        return data


# -- reading ---------------------------------------------------------------------

_FILE_TYPES = (b"0", b"\0", b"7")
_EXT_TYPES = (b"x", b"g", b"L", b"K")
_EXT_LIMIT = 1 << 20


@attrs.frozen
class Header:
    """The fields of one 512-byte tar header this module needs."""

    name: str
    type: bytes
    size: int
    linkname: str


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _number(raw: bytes, what: str) -> int:
    if raw and raw[0] & 0x80:  # GNU base-256
        value = int.from_bytes(raw[1:], "big")
        if raw[0] & 0x40:
            raise ArtifactError(f"corrupt tar header: negative {what}")
        return value | ((raw[0] & 0x3F) << (8 * (len(raw) - 1)))
    text = raw.split(b"\0", 1)[0].strip(b" ")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError:
        raise ArtifactError(f"corrupt tar header: bad {what} field {text!r}") from None


def parse_header(block: Buffer) -> Header:
    """Parse a 512-byte tar header block (checksum verified).

    :raises ArtifactError: when the block is not a valid tar header.
    """
    raw = bytes(block)
    try:
        stored = _number(raw[148:156], "checksum")
    except ArtifactError:
        stored = -1
    unsigned = sum(raw[:148]) + 8 * 32 + sum(raw[156:])
    if stored != unsigned:
        signed = unsigned - sum(b for b in raw if b > 127) * 2 + sum(
            256 - b for b in raw[148:156] if b > 127
        )
        if stored != signed:
            raise ArtifactError("not a tar archive, or a corrupt tar header (bad checksum)")
    name = _cstr(raw[0:100])
    if raw[257:263] == b"ustar\0" and raw[345] != 0:
        name = _cstr(raw[345:500]) + "/" + name
    return Header(name, raw[156:157], _number(raw[124:136], "size"), _cstr(raw[157:257]))


def check_member(name: str, kind: bytes, linkname: str = "") -> None:
    """Refuse a member that could write outside the folder it is unpacked into.

    ``kind`` is the tar type flag. Absolute names, ``..`` components, links
    pointing outside the archive, devices and FIFOs are refused.

    :raises ArtifactError: naming the member.
    """
    if not name:
        raise ArtifactError("tar member with an empty name")
    if name.startswith("/"):
        raise ArtifactError(f"tar member {name!r} has an absolute path")
    if ".." in name.split("/"):
        raise ArtifactError(f"tar member {name!r} has a '..' component (path traversal)")
    if kind in (b"3", b"4", b"6"):
        raise ArtifactError(f"tar member {name!r} is a device file or FIFO")
    if kind == b"2":
        if linkname.startswith("/"):
            raise ArtifactError(f"tar member {name!r} is a symlink to an absolute path {linkname!r}")
        target = posixpath.normpath(posixpath.join(posixpath.dirname(name), linkname))
        if target == ".." or target.startswith("../"):
            raise ArtifactError(f"tar member {name!r} is a symlink leaving the archive ({linkname!r})")
    elif kind == b"1":
        if not linkname or linkname.startswith("/") or ".." in linkname.split("/"):
            raise ArtifactError(f"tar member {name!r} is a hard link leaving the archive ({linkname!r})")
    elif kind not in (*_FILE_TYPES, b"5"):
        raise ArtifactError(f"tar member {name!r} has an unsupported type {kind!r}")


def _parse_pax(data: bytes) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        space = data.find(b" ", pos)
        if space < 0:
            break
        try:
            length = int(data[pos:space])
        except ValueError:
            raise ArtifactError("corrupt PAX header in the tar") from None
        if length <= 0:
            raise ArtifactError("corrupt PAX header in the tar")
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _with_size(block: bytes, size: int) -> bytes:
    """Return header ``block`` with its size field set to ``size`` and the checksum redone."""
    raw = bytearray(block)
    raw[124:136] = b"%011o\0" % size
    raw[148:156] = b" " * 8
    raw[148:156] = b"%06o\0 " % sum(raw)
    return bytes(raw)


#: Decides whether a member is rewritten: given its name, return a function
#: from the old content to the new one, or None to pass the member through.
Rewrite = Callable[[str], Optional[Callable[[bytes], bytes]]]

_HEADER, _DATA, _COLLECT, _END = range(4)


class TarRewriter:
    """Push parser over a tar stream; see the module docstring.

    Feed it with :meth:`feed`; each call returns the pieces to pass on now
    (they may be views of the buffer fed, so use them before reusing it).
    :meth:`close` checks that the archive ended properly and returns the
    withheld end-of-archive blocks.
    """

    def __init__(self, rewrite: Optional[Rewrite] = None, *, max_collect: int = 16 << 20,
                 regular: Collection[str] = ()) -> None:
        self._rewrite = rewrite
        # Names that must be regular files (an image's metadata: a link or a
        # folder there would let the engine read something the retag never saw).
        self._regular = frozenset(regular)
        #: True once a valid header was read: the stream is a tar, whatever follows.
        self.started = False
        self._max_collect = max_collect
        self._state = _HEADER
        self._partial = bytearray()  # an incomplete header block
        self._left = 0  # bytes of data (with padding) still to pass or collect
        self._collected = bytearray()
        self._collect_header = b""
        self._collect_size = 0
        self._collect_fn: Optional[Callable[[bytes], bytes]] = None
        self._pending_ext: list[bytes] = []  # raw extended headers of the next member
        self._pending_size = 0  # their bytes: bounded, as one member's extended headers
        self._pax: dict[str, str] = {}
        self._long_name: Optional[str] = None
        self._long_link: Optional[str] = None
        self._tail = bytearray()
        self.members: list[str] = []  #: names seen, in order
        self.rewritten: list[str] = []  #: names whose content was replaced

    def feed(self, data: Buffer) -> list[Buffer]:
        """Consume ``data``; return the pieces to pass on."""
        view = memoryview(data).cast("B") if not isinstance(data, memoryview) else data
        out: list[Buffer] = []
        pos, end = 0, len(view)
        while pos < end:
            state = self._state
            if state == _DATA:
                n = min(self._left, end - pos)
                out.append(view[pos : pos + n])
                pos += n
                self._left -= n
                if self._left == 0:
                    self._state = _HEADER
            elif state == _HEADER:
                if not self._partial and end - pos >= BLOCK:
                    block = view[pos : pos + BLOCK]
                    pos += BLOCK
                else:
                    n = min(BLOCK - len(self._partial), end - pos)
                    self._partial += view[pos : pos + n]
                    pos += n
                    if len(self._partial) < BLOCK:
                        continue
                    block = memoryview(bytes(self._partial))
                    self._partial.clear()
                self._on_header(block, out)
            elif state == _COLLECT:
                n = min(self._left, end - pos)
                self._collected += view[pos : pos + n]
                pos += n
                self._left -= n
                if self._left == 0:
                    self._on_collected(out)
            else:  # _END
                if len(self._tail) + end - pos > _EXT_LIMIT:
                    raise ArtifactError("more than 1 MiB of data after the tar's end-of-archive")
                self._tail += view[pos:end]
                pos = end
        return out

    def close(self) -> bytes:
        """Check that the archive is complete and return the withheld end blocks.

        :raises ArtifactError: for a truncated archive or data after its end.
        """
        if self._state != _END:
            last = self.members[-1] if self.members else None
            where = f" after member {last!r}" if last else ""
            raise ArtifactError(f"truncated tar archive: it ends{where} without an end marker")
        if any(self._tail):
            raise ArtifactError("unexpected data after the tar's end-of-archive marker")
        return bytes(self._tail)

    # -- internals ----------------------------------------------------------------

    def _on_header(self, block: memoryview, out: list[Buffer]) -> None:
        if not any(block):
            self._state = _END
            self._tail += block
            if self._pending_ext:
                raise ArtifactError("truncated tar archive: extended header without a member")
            return
        header = parse_header(block)
        self.started = True
        padded = -(-header.size // BLOCK) * BLOCK
        if header.type == b"g":
            # A global header would change every later member's name or link
            # after check_member saw it; no image archive needs one.
            raise ArtifactError("the tar has a global PAX header, which is refused")
        if header.type in _EXT_TYPES:
            self._pending_size += BLOCK + padded
            if header.size > _EXT_LIMIT or self._pending_size > _EXT_LIMIT:
                raise ArtifactError("tar extended headers of one member larger than 1 MiB")
            self._start_collect(bytes(block), header.size, padded, None, out)
            return
        name = self._pax.get("path") or self._long_name or header.name
        link = self._pax.get("linkpath") or self._long_link or header.linkname
        kind = header.type
        try:
            size = int(self._pax.get("size", header.size))
        except ValueError:
            raise ArtifactError(f"corrupt PAX size for tar member {name!r}") from None
        name = name.rstrip("/") if kind == b"5" else name
        while name.startswith("./"):
            name = name[2:]
        check_member(name, kind, link)
        if name in self._regular and kind not in _FILE_TYPES:
            what = {b"1": "a hard link", b"2": "a symlink", b"5": "a folder"}.get(kind, "not a file")
            raise ArtifactError(f"tar member {name!r} is {what}: an image archive's "
                                "metadata must be a regular file")
        self.members.append(name)
        padded = -(-size // BLOCK) * BLOCK if kind in _FILE_TYPES else 0
        fn = self._rewrite(name) if (self._rewrite and kind in _FILE_TYPES) else None
        ext, self._pending_ext, self._pending_size = self._pending_ext, [], 0
        pax, self._pax, self._long_name, self._long_link = self._pax, {}, None, None
        if fn is not None:
            if "size" in pax:
                raise ArtifactError(f"cannot rewrite tar member {name!r}: its size is in a PAX header")
            if size > self._max_collect:
                raise ArtifactError(
                    f"tar member {name!r} is {size} bytes, too large to rewrite "
                    f"(limit {self._max_collect})"
                )
            out.extend(ext)
            self.rewritten.append(name)
            self._start_collect(bytes(block), size, padded, fn, out)
            return
        out.extend(ext)
        out.append(block if isinstance(block, bytes) else bytes(block))
        if padded:
            self._state = _DATA
            self._left = padded

    def _start_collect(
        self,
        header: bytes,
        size: int,
        padded: int,
        fn: Optional[Callable[[bytes], bytes]],
        out: list[Buffer],
    ) -> None:
        self._collect_header = header
        self._collect_size = size
        self._collect_fn = fn
        self._collected = bytearray()
        self._left = padded
        self._state = _COLLECT
        if not padded:
            self._on_collected(out)

    def _on_collected(self, out: list[Buffer]) -> None:
        self._state = _HEADER
        data = bytes(self._collected[: self._collect_size])
        header = self._collect_header
        self._collected = bytearray()
        if self._collect_fn is None:  # an extended header
            kind = header[156:157]
            if kind == b"x":
                self._pax.update(_parse_pax(data))
            elif kind == b"L":
                self._long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif kind == b"K":
                self._long_link = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            pad = -(-len(data) // BLOCK) * BLOCK - len(data)
            self._pending_ext += [header, data + b"\0" * pad]
            return
        new = self._collect_fn(data)
        pad = -(-len(new) // BLOCK) * BLOCK - len(new)
        out.append(_with_size(header, len(new)))
        out.append(new + b"\0" * pad)
