"""A persistent cache of file sha256 digests, so unchanged files are not re-read.

:class:`HashCache` is a :data:`~taskgraph_images.context.FileHasher`: pass it
where a hasher is taken (``hash_context(..., hasher=cache)``,
``ImageCatalog.load(..., hasher=cache)``). It answers from an SQLite file when
the file's identity and change stamps are the ones it recorded, and reads and
hashes the file otherwise.

What a hit requires
    The same path, and the same ``(st_dev, st_ino, st_size, st_mtime_ns,
    st_ctime_ns)`` as when the digest was recorded (``stat`` follows
    symlinks, as reading does). The kernel sets ``st_ctime`` to the current
    time on every write, truncate, rename over, ``chmod`` or ``utime``, and no
    unprivileged call sets it back, so a file rewritten with the same size and
    its mtime restored still misses.

Racy entries are not recorded
    A digest is recorded only when the file's mtime and ctime are more than
    ``racy_seconds`` (default 2 s) in the past and a second ``stat`` after
    reading matches the one taken before. Otherwise a write in the same timestamp tick
    (coarse clocks, 1-2 s on FAT, HFS+ and some network file systems) could
    leave every stamp unchanged after the digest was taken; this is git's
    "racy git" rule.

Limits (documented, not caught)
    A change that leaves size, mtime and ctime all unchanged is not seen: the
    system clock set back by more than ``racy_seconds`` between two writes; a
    file system that does not maintain ctime, or a network file system whose
    server clock runs behind the client's by more than ``racy_seconds``;
    writes through a shared ``mmap`` (the kernel may stamp them late); a
    privileged process that sets the clock to forge a ctime; and a block
    device edited underneath the file system. Anyone who can write the cache
    file can make it answer what they like: keep it private (it is created
    with mode 0600 in a 0700 folder) and use ``none`` where that matters.

Safety
    Every row carries a keyed checksum of its path, stamps and digest; a row
    that fails it is a miss, never an answer. An unreadable or corrupt
    database is deleted and rebuilt once; if that fails, a one-line
    :class:`~taskgraph_images.errors.ContextError` says so. SQLite's WAL mode
    and a busy timeout let concurrent processes share the file; writes are
    batched and not synced to disk (a row a power cut loses is hashed again),
    and a write that cannot get the lock in time is dropped (the next run
    hashes that file again). Entries are never evicted; a row costs
    about 150 bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import struct
import threading
import time
import weakref
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

from taskgraph_images._hashing.filehash import FileHasher, file_sha256, hash_paths, user_cache_folder
from taskgraph_images.errors import ContextError, InvalidValueError

#: Files smaller than this are not cached (see :class:`HashCache`). With the
#: multi-buffer kernel, hashing a 64 KiB file takes about as long as one
#: lookup and one insert.
SMALL_FILE = 64 * 1024

if TYPE_CHECKING:  # pragma: no cover
    import sqlite3

__all__ = ["SMALL_FILE", "HashCache", "default_cache_path", "hasher_for_option"]

PathLike = Union[str, "os.PathLike[str]"]

#: Bump when the table changes; an older file is emptied and reused.
_SCHEMA = 1
#: Folders whose rows a cache keeps in memory.
_FOLDERS = 16
#: Queued rows are written, all in one transaction, once at least this many wait.
_BATCH = 512
#: How long a process waits for another's write lock (seconds).
_BUSY_SECONDS = 10.0
_STAMPS = struct.Struct("<QQqqq")
_CHECK_KEY = b"taskgraph-images file-hash cache v1"
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def default_cache_path(environ: Optional[Mapping[str, str]] = None) -> str:
    """Return the user's cache file: ``$XDG_CACHE_HOME`` or ``~/.cache``, then
    ``taskgraph-images/file-hashes.sqlite3``.

    ``environ`` defaults to :data:`os.environ`; a relative ``XDG_CACHE_HOME``
    is ignored, as the XDG specification says.
    """
    return os.path.join(user_cache_folder(environ), "file-hashes.sqlite3")


def _stamps(st: os.stat_result) -> bytes:
    return _STAMPS.pack(
        st.st_dev & 0xFFFFFFFFFFFFFFFF,
        st.st_ino & 0xFFFFFFFFFFFFFFFF,
        st.st_size,
        st.st_mtime_ns,
        st.st_ctime_ns,
    )


def _check(path: bytes, stamps: bytes, digest: bytes) -> bytes:
    data = b"".join((len(path).to_bytes(4, "little"), path, stamps, digest))
    return hashlib.blake2b(data, key=_CHECK_KEY, digest_size=8).digest()


def _is_corrupt(error: BaseException) -> bool:
    import sqlite3

    if not isinstance(error, sqlite3.DatabaseError):
        return False
    code = getattr(error, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return (code & 0xFF) in (11, 26)  # SQLITE_CORRUPT, SQLITE_NOTADB
    text = str(error)
    return "malformed" in text or "not a database" in text


def _answer(row: Optional[tuple[Any, ...]], key: bytes, stamps: bytes) -> Optional[str]:
    """The hexdigest ``row`` holds for ``key``, when its stamps are ``stamps`` and it checks."""
    if row is None:
        return None
    got_stamps, digest, chk = row
    if not (isinstance(got_stamps, bytes) and isinstance(digest, bytes)):
        return None
    if got_stamps != stamps or len(digest) != 32 or chk != _check(key, stamps, digest):
        return None
    return digest.hex()


class _Store:
    """The SQLite side of a :class:`HashCache`; owned by it, shared by its threads.

    Kept apart from :class:`HashCache` so that a finalizer can flush it
    without keeping the cache object alive.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.conn: Optional[sqlite3.Connection] = None
        self.pid = 0
        self.pending: list[tuple[bytes, bytes, bytes, bytes]] = []
        self.folders: dict[bytes, dict[bytes, tuple[Any, ...]]] = {}
        self.rebuilt = False
        self.broken: Optional[str] = None  # why writes stopped, when they did

    # -- connection ---------------------------------------------------------
    def connection(self) -> sqlite3.Connection:
        """Return the open connection, opening (or reopening after a fork) it."""
        if self.conn is not None and self.pid == os.getpid():
            return self.conn
        if self.conn is not None:  # inherited through fork(): never touch it
            self.conn = None
            self.pending = []
            self.folders = {}
        import sqlite3

        try:
            self.conn = self._open()
        except sqlite3.DatabaseError as e:
            if not _is_corrupt(e):
                raise ContextError(
                    f"cannot open the file hash cache {self.path}: {e}; "
                    "pass --hash-cache none to run without it"
                ) from e
            self.conn = self.rebuild(e)
        self.pid = os.getpid()
        return self.conn

    def _open(self) -> sqlite3.Connection:
        import sqlite3

        folder = os.path.dirname(self.path)
        try:
            if folder:
                os.makedirs(folder, mode=0o700, exist_ok=True)
            if not os.path.exists(self.path):
                os.close(os.open(self.path, os.O_WRONLY | os.O_CREAT | _OPEN_FLAGS, 0o600))
        except OSError as e:
            raise ContextError(
                f"cannot create the file hash cache {self.path}: {e.strerror}; "
                "pass --hash-cache none to run without it"
            ) from e
        conn = sqlite3.connect(
            self.path, timeout=_BUSY_SECONDS, isolation_level=None, check_same_thread=False
        )
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            # A cache needs no durability: a row lost to a power cut is hashed again,
            # a torn one fails its check, a corrupt file is rebuilt.
            conn.execute("PRAGMA synchronous=OFF")
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if version != _SCHEMA:
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("DROP TABLE IF EXISTS files")
                conn.execute(
                    "CREATE TABLE files (path BLOB PRIMARY KEY, stamps BLOB NOT NULL, "
                    "sha256 BLOB NOT NULL, chk BLOB NOT NULL) WITHOUT ROWID"
                )
                conn.execute(f"PRAGMA user_version={_SCHEMA}")
                conn.execute("COMMIT")
        except BaseException:
            conn.close()
            raise
        return conn

    def rebuild(self, error: BaseException) -> sqlite3.Connection:
        """Delete a corrupt cache file and start an empty one (once per cache).

        :raises ContextError: when it was rebuilt already or cannot be.
        """
        import sqlite3

        if self.conn is not None:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
            self.conn = None
        self.pending = []
        if self.rebuilt:
            raise ContextError(
                f"the file hash cache {self.path} is corrupt again after a rebuild ({error}); "
                "delete it or pass --hash-cache none"
            ) from error
        self.rebuilt = True
        try:
            for suffix in ("", "-wal", "-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.path + suffix)
            return self._open()
        except (OSError, sqlite3.Error) as e:
            raise ContextError(
                f"the file hash cache {self.path} is corrupt ({error}) and cannot be rebuilt: "
                f"{e}; delete it or pass --hash-cache none"
            ) from e

    # -- rows ---------------------------------------------------------------
    def lookup_many(self, wanted: Sequence[tuple[bytes, bytes]]) -> list[Optional[str]]:
        """Return the recorded hexdigest of each ``(key, stamps)``, or None where there is
        no row, its stamps differ or its check fails.

        A folder's rows are read in one range query and kept for the next
        lookups (contexts are hashed folder by folder); only the last
        :data:`_FOLDERS` folders are kept.
        """
        found: list[Optional[str]] = []
        rows: Optional[dict[bytes, tuple[Any, ...]]] = None
        current = None
        with self.lock:
            for key, stamps in wanted:
                folder = key.rpartition(b"/")[0]
                if folder != current:
                    current, rows = folder, self._folder_rows(folder)
                row = rows.get(key) if rows is not None else None
                found.append(_answer(row, key, stamps))
        return found

    def _folder_rows(self, folder: bytes) -> Optional[dict[bytes, tuple[Any, ...]]]:
        """The rows of the files directly in ``folder`` (lock held); None when unreadable."""
        import sqlite3

        rows = self.folders.get(folder)
        if rows is not None:
            return rows
        conn = self.connection()
        try:
            # The range holds the sub-folders' rows too, which SQLite skips
            # (they have a '/' after the folder's).
            found = conn.execute(
                "SELECT path, stamps, sha256, chk FROM files "
                "WHERE path > ? AND path < ? AND instr(substr(path, ?), x'2f') = 0",
                (folder + b"/", folder + b"0", len(folder) + 2),
            ).fetchall()
        except sqlite3.DatabaseError as e:
            if _is_corrupt(e):
                self.conn = self.rebuild(e)
                self.pid = os.getpid()
            return None  # locked or rebuilt: hash the files
        rows = {bytes(r[0]): r[1:] for r in found}
        if len(self.folders) >= _FOLDERS:
            del self.folders[next(iter(self.folders))]
        self.folders[folder] = rows
        return rows

    def record_many(self, found: Sequence[tuple[bytes, bytes, bytes]]) -> None:
        """Queue ``(key, stamps, digest)`` rows; write the queue once it is a batch."""
        rows = [(key, stamps, digest, _check(key, stamps, digest)) for key, stamps, digest in found]
        with self.lock:
            self.pending.extend(rows)
            for key, stamps, digest, chk in rows:
                known = self.folders.get(key.rpartition(b"/")[0])
                if known is not None:
                    known[key] = (stamps, digest, chk)
            if len(self.pending) >= _BATCH:
                self._flush_locked()

    def flush(self) -> None:
        """Write queued rows now."""
        with self.lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        import sqlite3

        rows, self.pending = self.pending, []
        if not rows or self.broken:
            return
        conn = self.connection()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.executemany(
                    "INSERT OR REPLACE INTO files (path, stamps, sha256, chk) VALUES (?, ?, ?, ?)",
                    rows,
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as e:
            if _is_corrupt(e):
                self.conn = self.rebuild(e)
                self.pid = os.getpid()
            elif isinstance(e, sqlite3.OperationalError) and "locked" not in str(e):
                self.broken = str(e)  # read-only file, full disk: stop trying
            # A busy database: these rows are dropped; a later run records them.

    def close(self) -> None:
        """Write queued rows and close the connection."""
        import sqlite3

        with self.lock:
            if self.conn is None or self.pid != os.getpid():
                self.conn = None
                return
            try:
                self._flush_locked()
            except ContextError:
                pass
            finally:
                if self.conn is not None:
                    with contextlib.suppress(sqlite3.Error):
                        self.conn.close()
                self.conn = None


class HashCache:
    """A :data:`~taskgraph_images.context.FileHasher` that remembers digests on disk.

    ``path`` is the SQLite file (default: :func:`default_cache_path`); it and
    its folder are created on first use. Files smaller than ``min_size``
    bytes (default :data:`SMALL_FILE`) are hashed every time and never
    recorded: reading and hashing them costs less than looking them up and
    recording them, and they do not count as hits or misses. Safe to call
    from several threads and to share between processes. Call :meth:`close` (or use ``with``) to
    write the last batch; an unclosed cache writes it when it is collected or
    at interpreter exit.

    >>> cache = HashCache("/tmp/example-hashes.sqlite3")  # doctest: +SKIP
    >>> hash_context(root, "taskcluster/docker/base", hasher=cache)  # doctest: +SKIP
    """

    def __init__(self, path: Optional[PathLike] = None, *, racy_seconds: float = 2.0,
                 min_size: int = SMALL_FILE) -> None:
        self.path = os.path.abspath(os.fspath(path) if path is not None else default_cache_path())
        if racy_seconds < 0:
            raise InvalidValueError(f"racy_seconds must be >= 0, not {racy_seconds}")
        if min_size < 0:
            raise InvalidValueError(f"min_size must be >= 0, not {min_size}")
        self._racy_ns = int(racy_seconds * 1e9)
        self.min_size = min_size
        self._store = _Store(self.path)
        self.hits = 0  # counts for reports; approximate when threads share the cache
        self.misses = 0
        self._finalizer = weakref.finalize(self, self._store.close)

    def __repr__(self) -> str:
        return f"HashCache({self.path!r})"

    def __call__(self, path: str) -> str:
        return self.sha256(path)

    def sha256(self, path: str) -> str:
        """Return the sha256 hexdigest of the file at ``path`` (a symlink is followed).

        :raises ContextError: when the file cannot be read, or the cache file
            is unusable (see the module docs).
        """
        return self.sha256_many((path,), jobs=1)[0]

    def sha256_many(self, paths: Sequence[str], *, jobs: Optional[int] = None) -> list[str]:
        """Return the sha256 hexdigest of each file, in order (symlinks are followed).

        Answers what it can from the cache, then hashes the rest (misses and
        files under ``min_size``) together with
        :func:`~taskgraph_images._hashing.filehash.hash_paths` (on up to ``jobs``
        cores). A digest is recorded when a ``stat`` after reading matches
        the one taken before, and its stamps are settled.

        :raises ContextError: as :meth:`sha256`.
        """
        wanted = []
        cached = []  # indexes of the paths the cache answers for
        for i, path in enumerate(paths):
            try:
                st = os.stat(path)
            except OSError as e:
                raise ContextError(f"cannot read {path}: {e.strerror}") from e
            if st.st_size < self.min_size:
                continue
            key = os.fsencode(path if os.path.isabs(path) else os.path.abspath(path))
            wanted.append((key, _stamps(st)))
            cached.append(i)
        answers = self._store.lookup_many(wanted)
        results = [""] * len(paths)
        for i, answer in zip(cached, answers):
            results[i] = answer or ""
        missed = [(i, key, stamps) for i, (key, stamps), a in zip(cached, wanted, answers)
                  if a is None]
        self.hits += len(cached) - len(missed)
        self.misses += len(missed)
        unknown = [i for i, r in enumerate(results) if not r]  # small files and misses
        for i, hexdigest in zip(unknown, hash_paths([paths[i] for i in unknown], jobs=jobs)):
            results[i] = hexdigest
        settled = []
        for i, key, stamps in missed:
            hexdigest = results[i]
            try:
                after = os.stat(paths[i])
            except OSError:
                continue  # gone since: nothing to record
            if _stamps(after) == stamps and self._settled(after):
                settled.append((key, stamps, bytes.fromhex(hexdigest)))
        self._store.record_many(settled)
        return results

    def _settled(self, st: os.stat_result) -> bool:
        """Whether ``st``'s stamps are old enough that a later write must change them."""
        newest = max(st.st_mtime_ns, st.st_ctime_ns)
        return newest < time.time_ns() - self._racy_ns

    def flush(self) -> None:
        """Write the digests recorded so far to the cache file."""
        self._store.flush()

    def close(self) -> None:
        """Write what is queued and close the cache file (it reopens on next use)."""
        self._store.close()

    def __enter__(self) -> HashCache:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def hasher_for_option(value: Optional[str], environ: Optional[Mapping[str, str]] = None
                      ) -> FileHasher:
    """Return the hasher a ``--hash-cache`` value asks for.

    ``"none"`` hashes every file; a path is that cache file; ``None`` (the
    option not given) is the user's cache (:func:`default_cache_path`), or
    no cache when its folder cannot be created (a read-only home).
    """
    if value is not None and value.lower() == "none":
        return file_sha256
    if value:
        return HashCache(value)
    path = default_cache_path(environ)
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    except OSError:
        return file_sha256
    if not os.access(os.path.dirname(path), os.W_OK):
        return file_sha256
    return HashCache(path)
