"""The embedded index: an SQLite file plus a folder of artifacts beside it.

This is the default backend when no Taskcluster deployment is configured.
The database holds four tables: ``entries`` (namespace -> task id, rank,
expiry, data, with the Index service's rank and expiry semantics),
``tasks`` (task id -> state), ``artifacts`` (task id, name -> stored
file, size, expiry) and ``manifests`` (task id, artifact name -> the build's
context manifest, see :mod:`taskgraph_images.manifest`). Artifact files live
in ``<stem>-artifacts/<taskId>/<name>`` next to the database.

The schema is versioned (SQLite's ``user_version``). An index of an older
version is read as it is (it simply has no manifests) and upgraded in place,
in one transaction, by the first write: version 1 (no ``manifests``) gains
the table.

Concurrency: every operation opens its own connection, writes run in
``BEGIN IMMEDIATE`` transactions on a WAL database with a busy timeout and
retries on ``SQLITE_BUSY``, so several processes can record builds at once
without losing any. Artifact files are written to a hidden temporary file and
renamed into place before the row that points at them is committed, so a
process killed at any moment leaves neither a half-written artifact that a
lookup would accept nor a half-recorded build.
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import shutil
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional, Sequence, TypeVar, Union

from taskgraph_images.errors import IndexStoreError
from taskgraph_images.index._base import (
    DEFAULT_ARTIFACT,
    ArtifactRead,
    Clock,
    IndexedTask,
    Usability,
    utcnow,
    validate_artifact_name,
    verdict,
)
from taskgraph_images.index._common import (
    DEFAULT_EXPIRY,
    build_record,
    children,
    validate_data,
    validate_rank,
    validate_state,
)
from taskgraph_images.keys.namespaces import (
    DEFAULT_PREFIX,
    PushDate,
    validate_namespace,
    validate_task_id,
)
from taskgraph_images.manifest import DEFAULT_MANIFEST_ARTIFACT

__all__ = ["LocalIndex", "default_index_path"]

SCHEMA_VERSION = 2
_CHUNK = 500  # namespaces per query, well under SQLite's variable limit

# Added by schema version 2.
_MANIFESTS = """
CREATE TABLE IF NOT EXISTS manifests (
    task_id TEXT NOT NULL,
    name TEXT NOT NULL,
    body BLOB NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (task_id, name)
) WITHOUT ROWID
"""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    namespace TEXT PRIMARY KEY,
    task_id TEXT NOT NULL,
    rank REAL NOT NULL,
    expires REAL NOT NULL,
    data TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS tasks (
    task_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated REAL NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS artifacts (
    task_id TEXT NOT NULL,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (task_id, name)
) WITHOUT ROWID;
"""
_SCHEMA += _MANIFESTS + ";"

# What upgrades an index of version N to N + 1.
_MIGRATIONS = {
    1: _MANIFESTS,
}

# The schema version and the number of tables, read together.
_SCHEMA_STATE = (
    "SELECT (SELECT user_version FROM pragma_user_version), (SELECT count(*) FROM sqlite_master)"
)

_UPSERT = """
INSERT INTO entries (namespace, task_id, rank, expires, data) VALUES (?, ?, ?, ?, ?)
ON CONFLICT (namespace) DO UPDATE SET
    task_id = excluded.task_id, rank = excluded.rank,
    expires = excluded.expires, data = excluded.data
WHERE excluded.rank >= entries.rank OR entries.expires <= ?
"""

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.manifest import ContextManifest

T = TypeVar("T")
PathLike = Union[str, "os.PathLike[str]"]


def default_index_path(environ: Optional[Mapping[str, str]] = None) -> Path:
    """Return ``$XDG_CACHE_HOME/taskgraph-images/index.sqlite`` (``~/.cache`` by default)."""
    env = os.environ if environ is None else environ
    cache = env.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "taskgraph-images" / "index.sqlite"


def _epoch(when: datetime.datetime) -> float:
    if when.tzinfo is None:
        from taskgraph_images.errors import InvalidValueError

        raise InvalidValueError(f"invalid expiry {when!r}: the datetime has no timezone")
    return when.timestamp()


def _when(epoch: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc)


def _busy(error: sqlite3.OperationalError) -> bool:
    text = str(error).lower()
    return "locked" in text or "busy" in text


class LocalIndex:
    """An index in an SQLite file, with a local artifact store.

    ``path`` defaults to :func:`default_index_path`. ``busy_timeout`` is how
    long an operation waits for another process's lock before giving up with
    :class:`~taskgraph_images.errors.IndexStoreError`. Reading an index that
    does not exist yet finds nothing; the first write creates it.
    """

    def __init__(
        self,
        path: Optional[PathLike] = None,
        *,
        busy_timeout: float = 30.0,
        clock: Clock = utcnow,
    ) -> None:
        self.path = Path(path) if path is not None else default_index_path()
        self.store = self.path.parent / f"{self.path.stem}-artifacts"
        self._busy_timeout = busy_timeout
        self._clock = clock

    @property
    def description(self) -> str:
        """``local index at PATH``."""
        return f"local index at {self.path}"

    def __repr__(self) -> str:
        return f"LocalIndex({str(self.path)!r})"

    # -- plumbing -------------------------------------------------------------

    def _error(self, error: sqlite3.Error) -> IndexStoreError:
        text = str(error)
        if isinstance(error, sqlite3.OperationalError) and _busy(error):
            return IndexStoreError(
                f"local index {self.path} is locked by another process "
                f"(gave up after {self._busy_timeout:g}s)"
            )
        if "not a database" in text or "malformed" in text or "corrupt" in text:
            return IndexStoreError(
                f"local index {self.path} is corrupt ({text}); move it away to start afresh"
            )
        return IndexStoreError(f"local index {self.path} cannot be used: {text}")

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = sqlite3.connect(
            str(self.path), timeout=self._busy_timeout, isolation_level=None
        )
        try:
            yield conn
        finally:
            conn.close()

    def _schema_version(self, conn: sqlite3.Connection) -> int:
        """Return the schema version (0: no schema yet); raise if the file is someone else's."""
        # One statement, so both values come from one snapshot: read apart, another
        # process creating the schema in between looks like a foreign database.
        version, tables = conn.execute(_SCHEMA_STATE).fetchone()
        if version > SCHEMA_VERSION:
            raise IndexStoreError(
                f"local index {self.path} has schema version {version}, newer than this "
                f"version of taskgraph-images understands ({SCHEMA_VERSION})"
            )
        if version == 0 and tables:
            raise IndexStoreError(
                f"local index {self.path} is an SQLite database but not a taskgraph-images index"
            )
        return int(version)

    def _check_schema(self, conn: sqlite3.Connection) -> bool:
        """Return True if a schema (this version's or an older one) exists."""
        return self._schema_version(conn) > 0

    def _create_schema(self, conn: sqlite3.Connection) -> None:
        """Create the schema, or upgrade an older one, in one transaction."""
        if self._schema_version(conn) == SCHEMA_VERSION:
            return
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("BEGIN IMMEDIATE")
        try:
            version = self._schema_version(conn)
            if version == 0:
                statements = [s for s in _SCHEMA.split(";") if s.strip()]
            else:
                statements = [_MIGRATIONS[v] for v in range(version, SCHEMA_VERSION)]
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _write(self, body: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``body`` in one write transaction (creating the database if needed)."""
        return self._run(True, body, None)

    def _read(self, body: Callable[[sqlite3.Connection], T], empty: Callable[[], T]) -> T:
        """Run ``body`` in one read transaction; ``empty()`` when there is no index yet."""
        return self._run(False, body, empty)

    def _run(
        self,
        write: bool,
        body: Callable[[sqlite3.Connection], T],
        empty: Optional[Callable[[], T]],
    ) -> T:
        """Run ``body`` in one transaction, retrying while the database is busy."""
        if not write and not self.path.exists():
            assert empty is not None
            return empty()
        deadline = time.monotonic() + self._busy_timeout
        attempt = 0
        while True:
            try:
                if write:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                with self._connection() as conn:
                    conn.execute("PRAGMA synchronous=NORMAL")
                    if write:
                        self._create_schema(conn)
                    elif not self._check_schema(conn):
                        assert empty is not None
                        return empty()
                    conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
                    try:
                        result = body(conn)
                        conn.execute("COMMIT")
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                    return result
            except sqlite3.OperationalError as e:
                if _busy(e) and time.monotonic() < deadline:
                    time.sleep(min(0.01 * 2**attempt, 0.25))
                    attempt += 1
                    continue
                raise self._error(e) from e
            except sqlite3.Error as e:
                raise self._error(e) from e
            except OSError as e:
                raise IndexStoreError(f"local index {self.path} cannot be used: {e}") from e

    def _upsert(
        self,
        conn: sqlite3.Connection,
        namespace: str,
        task_id: str,
        rank: float,
        expires: float,
        data: dict[str, Any],
        now: float,
    ) -> None:
        conn.execute(
            _UPSERT,
            (namespace, task_id, rank, expires, json.dumps(data, sort_keys=True), now),
        )

    @staticmethod
    def _entry(row: tuple[Any, ...]) -> IndexedTask:
        namespace, task_id, rank, expires, data = row
        return IndexedTask(namespace, task_id, rank, _when(expires), json.loads(data))

    # -- index ------------------------------------------------------------------

    def insert_task(
        self,
        namespace: str,
        task_id: str,
        *,
        rank: float = 0,
        expires: Optional[datetime.datetime] = None,
        data: Optional[Mapping[str, Any]] = None,
    ) -> IndexedTask:
        """Index ``task_id`` at ``namespace``; return the entry now stored there.

        An equal or higher rank replaces the current entry, a lower one leaves
        it (as the Index service does); an expired entry is always replaced.

        :raises InvalidValueError: for an invalid namespace, task id, rank or data.
        :raises IndexStoreError: when the database is corrupt, locked or unwritable.
        """
        validate_namespace(namespace)
        validate_task_id(task_id)
        value = validate_rank(rank)
        payload = validate_data(data)
        now = self._clock()
        until = _epoch(expires if expires is not None else now + DEFAULT_EXPIRY)

        def body(conn: sqlite3.Connection) -> IndexedTask:
            self._upsert(conn, namespace, task_id, value, until, payload, now.timestamp())
            row = conn.execute(
                "SELECT namespace, task_id, rank, expires, data FROM entries WHERE namespace = ?",
                (namespace,),
            ).fetchone()
            return self._entry(row)

        return self._write(body)

    def find_task(self, namespace: str) -> Optional[IndexedTask]:
        """Return the live entry at ``namespace``, or ``None``."""
        return self.find_tasks([namespace]).get(namespace)

    def find_tasks(self, namespaces: Sequence[str]) -> dict[str, IndexedTask]:
        """Return the live entry at each of ``namespaces`` that has one (one transaction).

        :raises IndexStoreError: when the database is corrupt or locked.
        """
        wanted = list(dict.fromkeys(namespaces))
        now = self._clock().timestamp()

        def body(conn: sqlite3.Connection) -> dict[str, IndexedTask]:
            found: dict[str, IndexedTask] = {}
            for start in range(0, len(wanted), _CHUNK):
                chunk = wanted[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = conn.execute(
                    "SELECT namespace, task_id, rank, expires, data FROM entries "
                    f"WHERE namespace IN ({marks}) AND expires > ?",
                    (*chunk, now),
                )
                for row in rows:
                    found[row[0]] = self._entry(row)
            return found

        return self._read(body, dict)

    def list_tasks(self, namespace: str, *, recursive: bool = False) -> list[IndexedTask]:
        """Return the live entries under ``namespace`` (immediately, unless ``recursive``)."""
        if namespace:
            validate_namespace(namespace)
        head = f"{namespace}." if namespace else ""
        now = self._clock().timestamp()

        def body(conn: sqlite3.Connection) -> list[IndexedTask]:
            rows = conn.execute(
                "SELECT namespace, task_id, rank, expires, data FROM entries "
                "WHERE substr(namespace, 1, ?) = ? AND expires > ?",
                (len(head), head, now),
            ).fetchall()
            entries = {row[0]: self._entry(row) for row in rows}
            return [entries[n] for n in children(namespace, entries, recursive=recursive)]

        return self._read(body, list)

    # -- tasks and artifacts ----------------------------------------------------

    def set_task_state(self, task_id: str, state: str) -> None:
        """Record the state of ``task_id`` (``completed``, ``failed``, ``exception``, ...)."""
        validate_task_id(task_id)
        validate_state(state)
        now = self._clock().timestamp()

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO tasks (task_id, state, updated) VALUES (?, ?, ?)",
                (task_id, state, now),
            )

        self._write(body)

    def _place(self, task_id: str, name: str, src: PathLike, move: bool) -> tuple[Path, int]:
        """Put ``src`` at its place in the store with one rename; return (path, size)."""
        dest = self.store / task_id / name
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".partial", dir=dest.parent)
            try:
                with os.fdopen(fd, "wb") as out:
                    if move:
                        try:
                            os.replace(src, tmp)
                        except OSError:
                            move = False
                    if not move:
                        with open(src, "rb") as f:
                            shutil.copyfileobj(f, out, 1 << 20)
                    out.flush()
                    os.fsync(out.fileno())
                if move:
                    with open(tmp, "rb") as f:
                        os.fsync(f.fileno())
                size = os.stat(tmp).st_size
                os.chmod(tmp, 0o644)
                os.replace(tmp, dest)
            except BaseException:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            if move:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(src)
        except OSError as e:
            raise IndexStoreError(
                f"cannot store artifact {name} of task {task_id} in {self.store}: {e}"
            ) from e
        return dest, size

    def _artifact_row(
        self, conn: sqlite3.Connection, task_id: str, name: str, size: int, expires: float
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO artifacts (task_id, name, size, expires) VALUES (?, ?, ?, ?)",
            (task_id, name, size, expires),
        )

    def store_artifact(
        self,
        task_id: str,
        name: str,
        src: PathLike,
        *,
        move: bool = False,
        expires: Optional[datetime.datetime] = None,
    ) -> Path:
        """Copy (or with ``move``, move) the finished file ``src`` into the store.

        The file appears under its final name in one rename, and only then is
        it recorded; returns its path in the store.

        :raises IndexStoreError: when the file cannot be stored or recorded.
        """
        validate_task_id(task_id)
        validate_artifact_name(name)
        until = _epoch(expires if expires is not None else self._clock() + DEFAULT_EXPIRY)
        dest, size = self._place(task_id, name, src, move)
        self._write(lambda conn: self._artifact_row(conn, task_id, name, size, until))
        return dest

    def artifact_path(self, task_id: str, name: str = DEFAULT_ARTIFACT) -> Optional[Path]:
        """Return the stored, unexpired, complete artifact file, or ``None``."""
        validate_task_id(task_id)
        validate_artifact_name(name)
        now = self._clock().timestamp()

        def body(conn: sqlite3.Connection) -> Optional[int]:
            row = conn.execute(
                "SELECT size FROM artifacts WHERE task_id = ? AND name = ? AND expires > ?",
                (task_id, name, now),
            ).fetchone()
            return None if row is None else int(row[0])

        size = self._read(body, lambda: None)
        path = self.store / task_id / name
        if size is None:
            return None
        try:
            if path.stat().st_size != size:
                return None
        except OSError:
            return None
        return path

    def usable_artifacts(self, task_ids: Sequence[str], artifact: str) -> dict[str, Usability]:
        """Return a verdict for each task id: its state, then its stored artifact.

        :raises IndexStoreError: when the database is corrupt or locked.
        """
        ids = list(dict.fromkeys(task_ids))
        now = self._clock()

        def body(conn: sqlite3.Connection) -> dict[str, tuple[Optional[str], Any]]:
            rows: dict[str, tuple[Optional[str], Any]] = {}
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                for task_id, state, size, expires in conn.execute(
                    "SELECT t.task_id, t.state, a.size, a.expires FROM tasks t "
                    "LEFT JOIN artifacts a ON a.task_id = t.task_id AND a.name = ? "
                    f"WHERE t.task_id IN ({marks})",
                    (artifact, *chunk),
                ):
                    rows[task_id] = (state, None if size is None else (size, expires))
            return rows

        rows: dict[str, tuple[Optional[str], Any]] = self._read(body, dict)
        result: dict[str, Usability] = {}
        for task_id in ids:
            state, art = rows.get(task_id, (None, None))
            if art is None:
                result[task_id] = verdict(state, None, now)
                continue
            size, expires = art
            path = self.store / task_id / artifact
            try:
                present = path.stat().st_size == size
            except OSError:
                present = False
            result[task_id] = verdict(state, _when(expires), now, artifact_exists=present)
        return result

    # -- builds -----------------------------------------------------------------

    def record_build(
        self,
        level: int,
        name: str,
        digest: str,
        pushdate: PushDate,
        artifact_file: PathLike,
        *,
        task_id: Optional[str] = None,
        expires: Optional[datetime.datetime] = None,
        rank: float = 0,
        prefix: str = DEFAULT_PREFIX,
        artifact: str = DEFAULT_ARTIFACT,
        move: bool = False,
        manifest: Optional[ContextManifest] = None,
        manifest_artifact: str = DEFAULT_MANIFEST_ARTIFACT,
        namespaces: Optional[Sequence[str]] = None,
    ) -> str:
        """Store a built image and index it under its three namespaces; return the task id.

        The artifact is put in the store first; then the task (completed),
        the artifact, the context ``manifest`` (if given, as the task's
        ``manifest_artifact``) and the three namespaces are recorded in one
        transaction, so the ``latest`` namespace never leads to a build
        without its manifest.

        ``namespaces``, when given, replace the three (taskgraph's, for
        example: :meth:`~taskgraph_images.keys.indexkeys.IndexKeys.record`).

        :raises InvalidValueError: for an invalid level, name, digest, date or task id.
        :raises IndexStoreError: when the store or the database cannot be written.
        """
        record = build_record(level, name, digest, pushdate, task_id, prefix, namespaces)
        validate_artifact_name(artifact)
        validate_artifact_name(manifest_artifact)
        body_bytes = manifest.dumps() if manifest is not None else None
        value = validate_rank(rank)
        now = self._clock()
        until = _epoch(expires if expires is not None else now + DEFAULT_EXPIRY)
        _, size = self._place(record.task_id, artifact, artifact_file, move)

        def body(conn: sqlite3.Connection) -> None:
            conn.execute(
                "INSERT OR REPLACE INTO tasks (task_id, state, updated) VALUES (?, ?, ?)",
                (record.task_id, "completed", now.timestamp()),
            )
            self._artifact_row(conn, record.task_id, artifact, size, until)
            if body_bytes is not None:
                self._manifest_row(conn, record.task_id, manifest_artifact, body_bytes, until)
            for namespace in record.namespaces:
                self._upsert(conn, namespace, record.task_id, value, until, record.data,
                             now.timestamp())

        self._write(body)
        return record.task_id

    # -- manifests ----------------------------------------------------------------

    @staticmethod
    def _manifest_row(
        conn: sqlite3.Connection, task_id: str, name: str, body: bytes, expires: float
    ) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO manifests (task_id, name, body, expires) VALUES (?, ?, ?, ?)",
            (task_id, name, body, expires),
        )

    def store_manifest(
        self,
        task_id: str,
        manifest: ContextManifest,
        *,
        name: str = DEFAULT_MANIFEST_ARTIFACT,
        expires: Optional[datetime.datetime] = None,
    ) -> None:
        """Record ``manifest`` as the context manifest of ``task_id`` (artifact ``name``).

        :raises InvalidValueError: for an invalid task id or artifact name.
        :raises ManifestError: when the manifest is too large.
        :raises IndexStoreError: when the database cannot be written.
        """
        validate_task_id(task_id)
        validate_artifact_name(name)
        body = manifest.dumps()
        until = _epoch(expires if expires is not None else self._clock() + DEFAULT_EXPIRY)
        self._write(lambda conn: self._manifest_row(conn, task_id, name, body, until))

    def read_artifacts(
        self, task_ids: Sequence[str], name: str, *, limit: int
    ) -> dict[str, ArtifactRead]:
        """Return the content of each task's small artifact ``name`` (at most ``limit`` bytes).

        A recorded manifest is read from the database, any other artifact
        from the store; a missing, expired or larger one gets a ``problem``.

        :raises IndexStoreError: when the database is corrupt or locked.
        """
        validate_artifact_name(name)
        ids = list(dict.fromkeys(task_ids))
        now = self._clock().timestamp()

        def body(conn: sqlite3.Connection) -> dict[str, tuple[str, Any]]:
            rows: dict[str, tuple[str, Any]] = {}
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            for start in range(0, len(ids), _CHUNK):
                chunk = ids[start : start + _CHUNK]
                marks = ",".join("?" * len(chunk))
                if version >= 2:
                    for task_id, data in conn.execute(
                        "SELECT task_id, body FROM manifests "
                        f"WHERE name = ? AND expires > ? AND task_id IN ({marks})",
                        (name, now, *chunk),
                    ):
                        rows[task_id] = ("db", bytes(data))
                for task_id, size in conn.execute(
                    "SELECT task_id, size FROM artifacts "
                    f"WHERE name = ? AND expires > ? AND task_id IN ({marks})",
                    (name, now, *chunk),
                ):
                    rows.setdefault(task_id, ("file", int(size)))
            return rows

        rows: dict[str, tuple[str, Any]] = self._read(body, dict)
        result: dict[str, ArtifactRead] = {}
        for task_id in ids:
            where, value = rows.get(task_id, ("", None))
            if where == "file" and value <= limit:
                try:
                    value = (self.store / task_id / name).read_bytes()
                except OSError as e:
                    result[task_id] = ArtifactRead(
                        problem=f"task {task_id}'s {name} cannot be read: {e.strerror}"
                    )
                    continue
            if value is None:
                result[task_id] = ArtifactRead(problem=f"task {task_id} has no {name}")
            elif (len(value) if isinstance(value, bytes) else value) > limit:
                size = len(value) if isinstance(value, bytes) else value
                result[task_id] = ArtifactRead(
                    problem=f"task {task_id}'s {name} is {size} bytes, more than {limit}"
                )
            else:
                result[task_id] = ArtifactRead(value)
        return result

    def verify(self) -> None:
        """Check the database's integrity.

        :raises IndexStoreError: when SQLite's integrity check fails.
        """

        def body(conn: sqlite3.Connection) -> list[str]:
            return [row[0] for row in conn.execute("PRAGMA integrity_check")]

        problems = self._read(body, lambda: ["ok"])
        if problems != ["ok"]:
            raise IndexStoreError(
                f"local index {self.path} failed its integrity check: {'; '.join(problems)}"
            )
