"""Index namespaces, the trusted search order and the index backends.

Pure parts: :func:`index_namespaces`, :func:`search_order` and the lookup
decision in :func:`find_images` / :func:`find_image`, which work over any
:class:`IndexBackend`. Backends: :class:`TaskclusterIndex` (the real
services), :class:`LocalIndex` (an SQLite file, the default without
Taskcluster) and :class:`MemoryIndex` (tests, pre-loaded results).
"""

from __future__ import annotations

from taskgraph_images.index._base import (
    DEFAULT_ARTIFACT,
    ArtifactRead,
    Found,
    IndexBackend,
    IndexedTask,
    Lookup,
    Usability,
)
from taskgraph_images.index._lookup import OnError, find_image, find_images
from taskgraph_images.index._namespaces import (
    DEFAULT_PREFIX,
    LEVELS,
    Candidate,
    hash_namespace,
    index_namespaces,
    latest_namespace,
    search_order,
)
from taskgraph_images.index.local import LocalIndex, default_index_path
from taskgraph_images.index.memory import MemoryIndex
from taskgraph_images.index.taskcluster import TaskclusterIndex  # imports the client lazily

__all__ = [
    "DEFAULT_ARTIFACT",
    "DEFAULT_PREFIX",
    "LEVELS",
    "ArtifactRead",
    "Candidate",
    "Found",
    "IndexBackend",
    "IndexedTask",
    "LocalIndex",
    "Lookup",
    "MemoryIndex",
    "OnError",
    "TaskclusterIndex",
    "Usability",
    "default_index_path",
    "find_image",
    "find_images",
    "hash_namespace",
    "index_namespaces",
    "latest_namespace",
    "search_order",
]

