"""Decide which Docker images a Taskcluster decision task must build or reuse.

The public names below are loaded on first use, so that ``import
taskgraph_images`` stays cheap for decision tasks and for the CLI.
"""

from __future__ import annotations

import importlib

# typing.TYPE_CHECKING's value, without importing typing (~20 ms on a fresh interpreter);
# type checkers treat the name as true.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from typing import Any

    from taskgraph_images.catalog import Image, ImageCatalog
    from taskgraph_images.context import hash_context, write_context
    from taskgraph_images.index import (
        Found,
        LocalIndex,
        MemoryIndex,
        TaskclusterIndex,
        find_image,
        index_namespaces,
        search_order,
    )
    from taskgraph_images.plan import Decision, Plan, plan_images
    from taskgraph_images.templates import render_template, render_yaml

__all__ = [
    "Decision",
    "Found",
    "Image",
    "ImageCatalog",
    "LocalIndex",
    "MemoryIndex",
    "Plan",
    "TaskclusterIndex",
    "__version__",
    "errors",
    "find_image",
    "hash_context",
    "index_namespaces",
    "plan_images",
    "render_template",
    "render_yaml",
    "search_order",
    "write_context",
]

_LAZY = {
    "Image": "taskgraph_images.catalog",
    "ImageCatalog": "taskgraph_images.catalog",
    "hash_context": "taskgraph_images.context",
    "write_context": "taskgraph_images.context",
    "Found": "taskgraph_images.index",
    "LocalIndex": "taskgraph_images.index",
    "MemoryIndex": "taskgraph_images.index",
    "TaskclusterIndex": "taskgraph_images.index",
    "find_image": "taskgraph_images.index",
    "index_namespaces": "taskgraph_images.index",
    "search_order": "taskgraph_images.index",
    "Decision": "taskgraph_images.plan",
    "Plan": "taskgraph_images.plan",
    "plan_images": "taskgraph_images.plan",
    "render_template": "taskgraph_images.templates",
    "render_yaml": "taskgraph_images.templates",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from taskgraph_images._version import version

        return version()
    if name == "errors":
        return importlib.import_module("taskgraph_images.errors")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'taskgraph_images' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
