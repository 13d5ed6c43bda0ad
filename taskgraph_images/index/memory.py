"""An index held in memory, for tests and for callers that pre-load results."""

from __future__ import annotations

import datetime
import threading
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

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
    replaces,
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

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.manifest import ContextManifest

__all__ = ["MemoryIndex"]


class MemoryIndex:
    """An in-memory index and queue with the Index service's semantics.

    Entries are inserted with a rank (an equal or higher rank replaces the
    entry) and an expiry (expired entries are not found). Tasks have a state
    and artifacts an expiry, so that lookups can be tested end to end::

        index = MemoryIndex()
        task_id = index.record_build(3, "builder", digest, pushdate)

    Thread-safe; ``clock`` returns the current aware time (for tests).
    """

    def __init__(self, *, clock: Clock = utcnow) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, IndexedTask] = {}
        self._states: dict[str, str] = {}
        self._artifacts: dict[tuple[str, str], datetime.datetime] = {}
        self._contents: dict[tuple[str, str], bytes] = {}

    @property
    def description(self) -> str:
        """``in-memory index``."""
        return "in-memory index"

    def __repr__(self) -> str:
        return f"MemoryIndex({len(self._entries)} entries)"

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

        :raises InvalidValueError: for an invalid namespace, task id, rank or data.
        """
        now = self._clock()
        entry = IndexedTask(
            validate_namespace(namespace),
            validate_task_id(task_id),
            validate_rank(rank),
            expires if expires is not None else now + DEFAULT_EXPIRY,
            validate_data(data),
        )
        with self._lock:
            old = self._entries.get(namespace)
            if not replaces(old, entry.rank, now):
                assert old is not None
                return old
            self._entries[namespace] = entry
            return entry

    def find_task(self, namespace: str) -> Optional[IndexedTask]:
        """Return the live entry at ``namespace``, or ``None``."""
        return self.find_tasks([namespace]).get(namespace)

    def find_tasks(self, namespaces: Sequence[str]) -> dict[str, IndexedTask]:
        """Return the live entry at each of ``namespaces`` that has one."""
        now = self._clock()
        with self._lock:
            found = {ns: self._entries.get(ns) for ns in namespaces}
        return {ns: e for ns, e in found.items() if e is not None and e.expires > now}

    def list_tasks(self, namespace: str, *, recursive: bool = False) -> list[IndexedTask]:
        """Return the live entries under ``namespace`` (immediately, unless ``recursive``)."""
        now = self._clock()
        with self._lock:
            names = children(namespace, list(self._entries), recursive=recursive)
            entries = [self._entries[n] for n in names]
        return [e for e in entries if e.expires > now]

    def set_task_state(self, task_id: str, state: str) -> None:
        """Record the queue state of ``task_id`` (``completed``, ``failed``, ...)."""
        validate_task_id(task_id)
        validate_state(state)
        with self._lock:
            self._states[task_id] = state

    def add_artifact(
        self,
        task_id: str,
        name: str = DEFAULT_ARTIFACT,
        *,
        expires: Optional[datetime.datetime] = None,
    ) -> None:
        """Record that ``task_id`` has artifact ``name`` until ``expires``."""
        validate_task_id(task_id)
        validate_artifact_name(name)
        when = expires if expires is not None else self._clock() + DEFAULT_EXPIRY
        with self._lock:
            self._artifacts[(task_id, name)] = when

    def add_manifest(
        self,
        task_id: str,
        manifest: Union[ContextManifest, bytes],
        name: str = DEFAULT_MANIFEST_ARTIFACT,
        *,
        expires: Optional[datetime.datetime] = None,
    ) -> None:
        """Give ``task_id`` the context manifest artifact ``name`` (bytes are kept as given)."""
        data = manifest if isinstance(manifest, bytes) else manifest.dumps()
        self.add_artifact(task_id, name, expires=expires)
        with self._lock:
            self._contents[(task_id, name)] = data

    def read_artifacts(
        self, task_ids: Sequence[str], name: str, *, limit: int
    ) -> dict[str, ArtifactRead]:
        """Return the content of each task's artifact ``name`` given with :meth:`add_manifest`."""
        validate_artifact_name(name)
        now = self._clock()
        result = {}
        with self._lock:
            for task_id in task_ids:
                data = self._contents.get((task_id, name))
                expires = self._artifacts.get((task_id, name))
                if data is None or expires is None or expires <= now:
                    result[task_id] = ArtifactRead(problem=f"task {task_id} has no {name}")
                elif len(data) > limit:
                    result[task_id] = ArtifactRead(
                        problem=f"task {task_id}'s {name} is {len(data)} bytes, more than {limit}"
                    )
                else:
                    result[task_id] = ArtifactRead(data)
        return result

    def usable_artifacts(self, task_ids: Sequence[str], artifact: str) -> dict[str, Usability]:
        """Return a verdict for each task id (state, then artifact presence and expiry)."""
        now = self._clock()
        with self._lock:
            return {
                t: verdict(self._states.get(t), self._artifacts.get((t, artifact)), now)
                for t in task_ids
            }

    def record_build(
        self,
        level: int,
        name: str,
        digest: str,
        pushdate: PushDate,
        *,
        task_id: Optional[str] = None,
        expires: Optional[datetime.datetime] = None,
        rank: float = 0,
        prefix: str = DEFAULT_PREFIX,
        artifact: str = DEFAULT_ARTIFACT,
        state: str = "completed",
        manifest: Optional[ContextManifest] = None,
        manifest_artifact: str = DEFAULT_MANIFEST_ARTIFACT,
        namespaces: Optional[Sequence[str]] = None,
    ) -> str:
        """Record a finished build: task state, artifact, manifest and its three namespaces.

        ``namespaces``, when given, replace the three (taskgraph's, for
        example: :meth:`~taskgraph_images.keys.indexkeys.IndexKeys.record`).
        Returns the task id (a new one unless given).
        """
        record = build_record(level, name, digest, pushdate, task_id, prefix, namespaces)
        self.set_task_state(record.task_id, state)
        self.add_artifact(record.task_id, artifact, expires=expires)
        if manifest is not None:
            self.add_manifest(record.task_id, manifest, manifest_artifact, expires=expires)
        for namespace in record.namespaces:
            self.insert_task(namespace, record.task_id, rank=rank, expires=expires,
                             data=record.data)
        return record.task_id
