"""Plant index entries in any backend, for the index tests (and the plan tests).

``make_backend(kind, tmp_path, tc_server)`` returns ``(backend, plant)`` where
``plant(level, name, digest, state="completed", artifact="ok"|"expired"|"missing")``
indexes a new task at ``level``'s hash namespace and returns its task id.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any, Callable, Optional

from tcserver import TCServer, make_index

from taskgraph_images.index import LocalIndex, MemoryIndex, hash_namespace
from taskgraph_images.index._common import new_task_id

__all__ = ["BACKENDS", "PAST", "Plant", "digest_of", "make_backend"]

BACKENDS = ("memory", "local", "taskcluster")
PAST = datetime.datetime(2001, 1, 1, tzinfo=datetime.timezone.utc)

Plant = Callable[..., str]


def digest_of(text: str) -> str:
    """A valid digest derived from ``text``."""
    import hashlib

    return hashlib.sha256(text.encode()).hexdigest()


def make_backend(kind: str, tmp_path: Path, server: Optional[TCServer]) -> tuple[Any, Plant]:
    """Return a backend of ``kind`` and a function that plants entries in it."""
    if kind == "memory":
        memory = MemoryIndex()

        def plant_memory(level: int, name: str, digest: str, state: str = "completed",
                         artifact: str = "ok") -> str:
            task_id = new_task_id()
            memory.set_task_state(task_id, state)
            if artifact != "missing":
                expires = PAST if artifact == "expired" else None
                memory.add_artifact(task_id, expires=expires)
            memory.insert_task(hash_namespace(level, name, digest), task_id)
            return task_id

        return memory, plant_memory
    if kind == "local":
        local = LocalIndex(tmp_path / "index.sqlite")

        def plant_local(level: int, name: str, digest: str, state: str = "completed",
                        artifact: str = "ok") -> str:
            task_id = new_task_id()
            local.set_task_state(task_id, state)
            if artifact != "missing":
                src = tmp_path / f"{task_id}.tar.zst"
                src.write_bytes(b"image " + task_id.encode())
                expires = PAST if artifact == "expired" else None
                local.store_artifact(task_id, "public/image.tar.zst", src, expires=expires)
            local.insert_task(hash_namespace(level, name, digest), task_id)
            return task_id

        return local, plant_local
    assert kind == "taskcluster" and server is not None

    def plant_tc(level: int, name: str, digest: str, state: str = "completed",
                 artifact: str = "ok") -> str:
        artifacts = {} if artifact == "missing" else None
        expires = PAST if artifact == "expired" else None
        task_id = server.add_task(state=state, artifacts=artifacts, artifact_expires=expires)
        server.index_task(hash_namespace(level, name, digest), task_id)
        return task_id

    return make_index(server), plant_tc
