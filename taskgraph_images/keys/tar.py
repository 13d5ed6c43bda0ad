"""taskgraph's context hash: the sha256 of the tar stream taskgraph writes for a context.

``taskcluster-taskgraph`` hashes an image's context by writing it as an
uncompressed tar (``taskgraph.util.archive.create_tar_from_files``) into a
sha256. :func:`context_hash` returns the same hex digest for the same
members without writing or holding the archive: it builds each 512-byte
header itself and streams file content straight into one sha256.

The stream, as taskgraph's use of :mod:`tarfile` produces it:

- members sorted by archive name (Python string order), regular files only;
- GNU format: a name longer than 100 bytes (after encoding) is preceded by a
  ``././@LongLink`` header of type ``L`` carrying the whole name and a NUL,
  and the member's own header keeps the first 100 bytes;
- names encoded with the file-system encoding and ``surrogateescape``;
- mode: the permission bits of the source (followed through symlinks), or
  ``0644`` for content given as bytes; setuid and setgid are refused;
- uid and gid 0, empty owner names, mtime fixed at :data:`DEFAULT_MTIME`;
- the device fields written as the octal number 0 in every header (taskgraph
  keeps Python 3.8's output on later Pythons);
- content padded with NULs to a 512-byte block, then two zero blocks, then
  NULs up to a multiple of :data:`RECORD` (10240) bytes.
"""

from __future__ import annotations

import hashlib
import os
import queue
import stat
import sys
import threading
from typing import Callable, Mapping, Optional, Union

from taskgraph_images.errors import ContextError

__all__ = ["BLOCK", "DEFAULT_MTIME", "NATIVE", "RECORD", "context_hash", "cores", "member_header",
           "write_context_tar"]

#: taskgraph's fixed modification time for every member (2016-01-01T00:00:00Z).
DEFAULT_MTIME = 1451606400
#: The tar block size.
BLOCK = 512
#: What :mod:`tarfile` pads the end of an archive to (20 blocks).
RECORD = 20 * BLOCK

_NAME = 100
_GNU_MAGIC = b"ustar  \0"
_ZERO8 = b"0000000\0"  # an octal 0 in an 8-byte field
_ZEROS = bytes(RECORD)
#: The size of each buffer the stream passes through.
_BATCH = 1 << 20
#: A buffer filled by this many members or more starts the hashing thread.
_OVERLAP_FROM = 16
#: After the checksum of a regular member's header: its type, no link name,
#: the GNU magic, no owner names, device numbers 0, no prefix, the block's padding.
_REG_TAIL = b"0" + bytes(100) + _GNU_MAGIC + bytes(64) + _ZERO8 + _ZERO8 + bytes(167)
#: A regular member's uid and gid (0), and its mtime.
_OWNER = _ZERO8 + _ZERO8
_MTIME = b"%011o\0" % DEFAULT_MTIME
#: The sum of a regular member's header bytes but its name, mode and size (the
#: checksum field counts as eight spaces).
_REG_SUM = 8 * 32 + sum(_REG_TAIL) + sum(_OWNER) + sum(_MTIME)
#: NULs that fill a name field after a name of each length.
_NAME_FILL = [bytes(_NAME - n) for n in range(_NAME + 1)]


def _octal(n: int, digits: int, gnu: bool) -> bytes:
    """A tar number field of ``digits`` bytes: octal and a NUL, or GNU base-256."""
    if 0 <= n < 8 ** (digits - 1):
        return b"%0*o\0" % (digits - 1, n)
    if gnu and 0 <= n < 256 ** (digits - 1):
        return b"\x80" + n.to_bytes(digits - 1, "big")
    raise ContextError(f"a tar number field of {digits} bytes cannot hold {n}")


def _block(name: bytes, type_: bytes, mode: int, size: int, mtime: int, gnu: bool) -> bytes:
    """One header block in full, its checksum filled in (the name already encoded)."""
    head = (name[:_NAME].ljust(_NAME, b"\0") + _octal(mode, 8, gnu) + _OWNER
            + _octal(size, 12, gnu) + _octal(mtime, 12, gnu))
    tail = type_ + _REG_TAIL[1:]
    return head + b"%06o\0 " % (sum(head) + sum(tail) + 8 * 32) + tail


def _header(raw: bytes, mode: int, size: int) -> bytes:
    """The header block(s) of a regular member named ``raw`` (encoded); ``mode`` & 0o7777."""
    if len(raw) <= _NAME and size < 8 ** 11:
        mode_field = b"%07o\0" % mode
        size_field = b"%011o\0" % size
        checksum = _REG_SUM + sum(raw) + sum(mode_field) + sum(size_field)
        return b"".join((raw, _NAME_FILL[len(raw)], mode_field, _OWNER, size_field, _MTIME,
                         b"%06o\0 " % checksum, _REG_TAIL))
    head = b""
    if len(raw) > _NAME:
        payload = raw + b"\0"
        head = _block(b"././@LongLink", b"L", 0, len(payload), 0, False)
        head += payload + bytes(-len(payload) % BLOCK)
    return head + _block(raw, b"0", mode, size, DEFAULT_MTIME, True)


def _encode(name: str, encoding: str) -> bytes:
    try:
        return name.encode(encoding, "surrogateescape")
    except UnicodeError as e:
        raise ContextError(f"context member name {name!r} cannot be encoded: {e}") from None


def member_header(name: str, mode: int, size: int, encoding: Optional[str] = None) -> bytes:
    """The header block(s) :mod:`tarfile` writes for a regular member as taskgraph adds it.

    ``mode`` is reduced to its permission bits (``& 0o7777``); ``encoding``
    defaults to the file-system encoding, as :mod:`tarfile`'s does. One
    block, or for a name of more than 100 bytes (encoded) a GNU long-name
    header and the name's blocks before it.

    :raises ContextError: the name cannot be encoded, or the size does not fit.
    """
    return _header(_encode(name, encoding or sys.getfilesystemencoding()), mode & 0o7777, size)


class _Stream:
    """The tar stream on its way into one sha256, through a fixed buffer.

    Headers and file content are copied (read) into the buffer, and a full
    buffer is hashed. When buffers fill with many small members, the time
    goes to opening and reading files as much as to hashing: from then on a
    thread hashes each full buffer while the next one fills (three buffers
    at most), if ``overlap`` (the process may run on two cores or more).
    Big files are read and hashed in turn, as one core does best.
    Memory stays flat whatever the context's size. With a ``sink``, each
    buffer is also written to it before it is reused (and no thread hashes).
    """

    def __init__(self, overlap: bool, sink: Optional[Callable[[memoryview], object]] = None,
                 ) -> None:
        self.overlap_from = _OVERLAP_FROM if overlap and sink is None else sys.maxsize
        self.sink = sink
        self.hash = hashlib.sha256()
        self.buf = bytearray(_BATCH)
        self.view = memoryview(self.buf)
        self.pos = 0
        self.handed = 0  # bytes already handed to the hash
        self.members = 0  # members begun in this buffer
        self.full: queue.SimpleQueue[Optional[tuple[bytearray, int]]] = queue.SimpleQueue()
        self.free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
        self.thread: Optional[threading.Thread] = None

    def _hash_full(self) -> None:
        while True:
            item = self.full.get()
            if item is None:
                return
            buf, n = item
            with memoryview(buf) as view:
                self.hash.update(view[:n])
            self.free.put(buf)

    def _hand_over(self) -> None:
        self.handed += self.pos
        if self.sink is not None:
            self.sink(self.view[:self.pos])
        if self.thread is None and self.members < self.overlap_from:
            self.hash.update(self.view[:self.pos])
        else:
            if self.thread is None:
                self.thread = threading.Thread(target=self._hash_full, daemon=True,
                                               name="taskgraph-tar-hash")
                self.thread.start()
                for _ in range(2):
                    self.free.put(bytearray(_BATCH))
            self.view.release()
            self.full.put((self.buf, self.pos))
            self.buf = self.free.get()
            self.view = memoryview(self.buf)
        self.pos = 0
        self.members = 0

    def put(self, data: bytes) -> None:
        """Append ``data`` to the stream."""
        pos = self.pos
        n = len(data)
        if pos + n < _BATCH:
            self.view[pos:pos + n] = data
            self.pos = pos + n
            return
        done = 0
        while done < n:
            step = min(n - done, _BATCH - self.pos)
            self.view[self.pos:self.pos + step] = data[done:done + step]
            self.pos += step
            done += step
            if self.pos == _BATCH:
                self._hand_over()

    def read(self, fd: int, size: int) -> int:
        """Append the next ``size`` bytes of ``fd``; return how many there were."""
        left = size
        while left:
            n = os.readv(fd, [self.view[self.pos:self.pos + min(left, _BATCH - self.pos)]])
            if not n:
                break
            self.pos += n
            left -= n
            if self.pos == _BATCH:
                self._hand_over()
        return size - left

    @property
    def offset(self) -> int:
        """How many bytes the stream holds so far."""
        return self.handed + self.pos

    def close(self) -> None:
        """Stop the hashing thread (the digest is complete only after :meth:`finish`)."""
        if self.thread is not None:
            self.full.put(None)
            self.thread.join()
            self.thread = None

    def finish(self) -> str:
        """Hash what is left; return the hex digest."""
        self.close()
        if self.sink is not None:
            self.sink(self.view[:self.pos])
        self.hash.update(self.view[:self.pos])
        self.view.release()
        return self.hash.hexdigest()


#: Mode bits that make a source unusable: any file type but regular, setuid, setgid.
_NOT_PLAIN = stat.S_IFMT(0o7777777) | stat.S_ISUID | stat.S_ISGID
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC  # a FIFO must not block the open


def _add_file(stream: _Stream, name: str, raw: bytes, path: str) -> None:
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as e:
        raise ContextError(f"cannot read {path} (context member {name}): "
                           f"{e.strerror or e}") from None
    except ValueError:  # a NUL in the path: no file can have that name
        raise ContextError(f"cannot read {path!r} (context member {name}): "
                           "the path has a NUL byte") from None
    try:
        st = os.fstat(fd)
        mode = st.st_mode
        if mode & _NOT_PLAIN != stat.S_IFREG:
            if not stat.S_ISREG(mode):
                raise ContextError(f"{path} (context member {name}) is not a regular file")
            raise ContextError(f"{path} (context member {name}) has the setuid or setgid "
                               "bit, which taskgraph refuses")
        size = st.st_size
        stream.members += 1
        header = _header(raw, mode & 0o7777, size)
        pad = -size % BLOCK
        start = stream.pos + len(header)
        end = start + size
        if end + pad < _BATCH:  # the common case: the whole member fits in the buffer
            view = stream.view
            view[stream.pos:start] = header
            got = os.readv(fd, [view[start:end]]) if size else 0
            while got < size:  # a short read: read on, or the file shrank
                more = os.readv(fd, [view[start + got:end]])
                if not more:
                    break
                got += more
            view[end:end + pad] = _ZEROS[:pad]
            stream.pos = end + pad
        else:
            stream.put(header)
            got = stream.read(fd, size)
            stream.put(_ZEROS[:pad])
        if got < size:
            raise ContextError(f"{path} (context member {name}) shrank while it was "
                               "being hashed")
    except OSError as e:
        raise ContextError(f"cannot read {path} (context member {name}): "
                           f"{e.strerror or e}") from None
    finally:
        os.close(fd)


def cores() -> int:
    """How many cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        return os.cpu_count() or 1


#: Whether :func:`context_hash` uses the compiled per-file loop when it is
#: built (``taskgraph_images._hashing._sha256mb.tar_fill``); the tests turn it off to
#: check the pure-Python loop, which gives the same stream.
NATIVE = True


def _native_fill() -> Optional[Callable[..., tuple[int, int]]]:
    """The compiled per-file loop, or None where it is not built or is turned off."""
    if not NATIVE:
        return None
    try:
        from taskgraph_images._hashing import tar_fill
    except ImportError:  # pragma: no cover - the extension did not build here
        return None
    return tar_fill


def context_hash(files: Mapping[str, Union[str, bytes]]) -> str:
    """The hex sha256 of the tar stream taskgraph writes for ``files``.

    ``files`` maps each archive name to a file-system path (opened following
    symlinks, as taskgraph does) or to the member's content as bytes. The
    result equals what ``taskgraph.util.archive.create_tar_from_files``
    writes into a hashing file object for the same mapping (with each bytes
    value given to it as a file object), and so, given the members
    taskgraph's ``stream_context_tar`` collects, equals its context hash.

    :raises ContextError: a path cannot be read, is not a regular file or has
        the setuid/setgid bit; a name cannot be encoded; a value is neither
        a path nor bytes.
    """
    return _stream_members(files, _Stream(overlap=cores() > 1))


def write_context_tar(files: Mapping[str, Union[str, bytes]],
                      write: Callable[[memoryview], object]) -> str:
    """Write the tar stream of :func:`context_hash` through ``write``; return its sha256.

    ``write`` takes each piece of the stream in order (a file object's
    ``write``, a :class:`gzip.GzipFile`'s for taskgraph's ``.tar.gz``); the
    pieces are valid only during the call. The bytes are those taskgraph's
    ``create_tar_from_files`` writes for the same members.

    :raises ContextError: as :func:`context_hash`.
    """
    return _stream_members(files, _Stream(overlap=False, sink=write))


def _stream_members(files: Mapping[str, Union[str, bytes]], stream: _Stream) -> str:
    encoding = sys.getfilesystemencoding()
    names = sorted(files)
    raws = [_encode(name, encoding) for name in names]
    fill = _native_fill()
    paths: list[Optional[bytes]] = []
    if fill is not None:
        paths = [os.fsencode(source) if isinstance(source, str) else None
                 for source in map(files.__getitem__, names)]
    try:
        index = 0
        while index < len(names):
            if fill is not None:
                # the plain members, read with the GIL released; it stops at
                # the first one it leaves to the loop below
                start = index
                index, stream.pos = fill(stream.buf, stream.pos, raws, paths, index,
                                         DEFAULT_MTIME)
                stream.members += index - start
                if index == len(names):
                    break
            name = names[index]
            source = files[name]
            raw = raws[index]
            index += 1
            if isinstance(source, str):
                _add_file(stream, name, raw, source)
            elif isinstance(source, (bytes, bytearray, memoryview)):
                data = bytes(source)
                stream.members += 1
                stream.put(_header(raw, 0o644, len(data)))
                stream.put(data)
                if len(data) % BLOCK:
                    stream.put(_ZEROS[:BLOCK - len(data) % BLOCK])
            else:
                raise ContextError(f"context member {name!r}: expected a path (str) or the "
                                   f"content (bytes), got {type(source).__name__}")
        stream.put(bytes(2 * BLOCK))
        if stream.offset % RECORD:
            stream.put(_ZEROS[:RECORD - stream.offset % RECORD])
        return stream.finish()
    finally:
        stream.close()
