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

    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.config import BuildConfig, load_config
    from taskgraph_images.index import LocalIndex, MemoryIndex, TaskclusterIndex
    from taskgraph_images.params import Params
    from taskgraph_images.plan import Decision, Plan, plan_images
    from taskgraph_images.tc.submit import submit_plan
    from taskgraph_images.templates import render_template, render_yaml

#: The decision-task API: what a decision task walks through, in order (read
#: the catalog and the build config, take the push's parameters, plan against an
#: index, then submit the tasks or render them into a template). The building
#: blocks (context hashing, keys, namespaces, lookups, builders) are imported
#: from their own modules.
__all__ = [
    "BuildConfig",
    "Decision",
    "ImageCatalog",
    "LocalIndex",
    "MemoryIndex",
    "Params",
    "Plan",
    "TaskclusterIndex",
    "__version__",
    "errors",
    "load_config",
    "plan_images",
    "render_template",
    "render_yaml",
    "submit_plan",
]

_LAZY = {
    "ImageCatalog": "taskgraph_images.catalog",
    "BuildConfig": "taskgraph_images.config",
    "load_config": "taskgraph_images.config",
    "Params": "taskgraph_images.params",
    "LocalIndex": "taskgraph_images.index",
    "MemoryIndex": "taskgraph_images.index",
    "TaskclusterIndex": "taskgraph_images.index",
    "Decision": "taskgraph_images.plan",
    "Plan": "taskgraph_images.plan",
    "plan_images": "taskgraph_images.plan",
    "submit_plan": "taskgraph_images.tc.submit",
    "render_template": "taskgraph_images.templates",
    "render_yaml": "taskgraph_images.templates",
}


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from taskgraph_images._version import version

        return version()
    if name == "errors":
        return importlib.import_module("taskgraph_images.errors")
    from taskgraph_images._lazy import import_lazily

    return import_lazily(globals(), _LAZY, name)


def __dir__() -> list[str]:
    return sorted(__all__)
