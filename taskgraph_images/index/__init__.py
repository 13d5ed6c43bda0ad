"""Index namespaces, the trusted search order and the index backends.

Pure parts: :func:`index_namespaces`, :func:`search_order` and the lookup
decision in :func:`find_images` / :func:`find_image`, which work over any
:class:`IndexBackend`. Backends: :class:`TaskclusterIndex` (the real
services), :class:`LocalIndex` (an SQLite file, the default without
Taskcluster) and :class:`MemoryIndex` (tests, pre-loaded results).

Each name is imported on first use (:pep:`562`), so importing a module that
needs only the namespaces does not load SQLite or the backends.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from taskgraph_images._lazy import import_lazily

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.index._base import (
        DEFAULT_ARTIFACT,
        ArtifactRead,
        Found,
        IndexBackend,
        IndexedTask,
        Lookup,
        Usability,
        utcnow,
        validate_artifact_name,
        verdict,
    )
    from taskgraph_images.index._common import new_task_id
    from taskgraph_images.index._lookup import (
        NOT_INDEXED,
        OnError,
        SearchOrder,
        decide,
        find_image,
        find_images,
    )
    from taskgraph_images.index.local import LocalIndex, default_index_path
    from taskgraph_images.index.memory import MemoryIndex
    from taskgraph_images.index.taskcluster import TaskclusterIndex
    from taskgraph_images.keys.namespaces import (
        DEFAULT_PREFIX,
        LEVELS,
        Candidate,
        hash_namespace,
        index_namespaces,
        latest_namespace,
        search_order,
    )

#: Where each exported name lives.
_HOMES = {
    "DEFAULT_ARTIFACT": "taskgraph_images.index._base",
    "ArtifactRead": "taskgraph_images.index._base",
    "Found": "taskgraph_images.index._base",
    "IndexBackend": "taskgraph_images.index._base",
    "IndexedTask": "taskgraph_images.index._base",
    "Lookup": "taskgraph_images.index._base",
    "Usability": "taskgraph_images.index._base",
    "utcnow": "taskgraph_images.index._base",
    "validate_artifact_name": "taskgraph_images.index._base",
    "verdict": "taskgraph_images.index._base",
    "new_task_id": "taskgraph_images.index._common",
    "NOT_INDEXED": "taskgraph_images.index._lookup",
    "OnError": "taskgraph_images.index._lookup",
    "SearchOrder": "taskgraph_images.index._lookup",
    "decide": "taskgraph_images.index._lookup",
    "find_image": "taskgraph_images.index._lookup",
    "find_images": "taskgraph_images.index._lookup",
    "DEFAULT_PREFIX": "taskgraph_images.keys.namespaces",
    "LEVELS": "taskgraph_images.keys.namespaces",
    "Candidate": "taskgraph_images.keys.namespaces",
    "hash_namespace": "taskgraph_images.keys.namespaces",
    "index_namespaces": "taskgraph_images.keys.namespaces",
    "latest_namespace": "taskgraph_images.keys.namespaces",
    "search_order": "taskgraph_images.keys.namespaces",
    "LocalIndex": "taskgraph_images.index.local",
    "default_index_path": "taskgraph_images.index.local",
    "MemoryIndex": "taskgraph_images.index.memory",
    "TaskclusterIndex": "taskgraph_images.index.taskcluster",
}

__all__ = [
    "DEFAULT_ARTIFACT",
    "DEFAULT_PREFIX",
    "LEVELS",
    "NOT_INDEXED",
    "ArtifactRead",
    "Candidate",
    "Found",
    "IndexBackend",
    "IndexedTask",
    "LocalIndex",
    "Lookup",
    "MemoryIndex",
    "OnError",
    "SearchOrder",
    "TaskclusterIndex",
    "Usability",
    "decide",
    "default_index_path",
    "find_image",
    "find_images",
    "hash_namespace",
    "index_namespaces",
    "latest_namespace",
    "new_task_id",
    "search_order",
    "utcnow",
    "validate_artifact_name",
    "verdict",
]


def __getattr__(name: str) -> Any:
    """Import ``name`` from its module on first use."""
    return import_lazily(globals(), _HOMES, name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_HOMES))
