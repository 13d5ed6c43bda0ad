"""Image build-task definitions, made from typed values in one place (pure).

:func:`build_task` turns a :class:`BuildSpec` (what to build), the decision
:class:`~taskgraph_images.params.Params` and the
:class:`~taskgraph_images.config.BuildConfig` into a ``queue.createTask``
request body; every route, scope and payload field is decided here and
nowhere else. ``docs/tasks.rst`` documents each field.
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any, Optional, Union

import attrs

from taskgraph_images.config import BuildConfig
from taskgraph_images.index import index_namespaces
from taskgraph_images.manifest import manifest_file_path
from taskgraph_images.params import Params
from taskgraph_images.tctime import format_time

__all__ = ["BuildSpec", "TaskImage", "build_task", "treeherder_symbol"]

_SYMBOL = re.compile(r"\A([A-Za-z0-9_-]{1,25})\(([^()]{1,25})\)\Z")


@attrs.frozen
class TaskImage:
    """An image that a task's artifact holds: docker-worker's ``task-image`` reference."""

    task_id: str
    path: str = "public/image.tar.zst"

    def to_json(self) -> dict[str, str]:
        """Return ``{"type": "task-image", "path": ..., "taskId": ...}``."""
        return {"type": "task-image", "path": self.path, "taskId": self.task_id}


#: An image reference in a payload: a registry tag or a task image.
ImageRef = Union[str, TaskImage]


@attrs.frozen
class BuildSpec:
    """What one build task builds, and with what."""

    #: The task id the build task gets.
    task_id: str
    #: The image name.
    name: str
    #: The image's digest: its index key and the ``HASH`` variable.
    digest: str
    #: The image folder relative to the repository root.
    context_path: str
    #: The image that runs the build (the image builder).
    builder: ImageRef
    #: The task of the in-tree parent image (built here or reused), if any.
    parent_task_id: Optional[str] = None
    #: Tasks that must complete first (parents and image builder built in this plan).
    dependencies: tuple[str, ...] = ()
    #: ``# %ARG`` values, sorted by name.
    args: tuple[tuple[str, str], ...] = ()
    #: Treeherder symbol from the kind config (``I(py)`` or ``py``), if any.
    symbol: Optional[str] = None


def treeherder_symbol(name: str, symbol: Optional[str], group: str) -> tuple[str, str]:
    """Return ``(groupSymbol, symbol)`` for an image.

    A kind-config symbol ``G(s)`` gives group ``G`` and symbol ``s``; a bare
    symbol joins ``group``; no symbol means the image name.

    >>> treeherder_symbol("python", "I(py)", "I")
    ('I', 'py')
    """
    if symbol:
        m = _SYMBOL.match(symbol)
        if m:
            return m.group(1), m.group(2)
        return group, symbol[:25]
    return group, name[:25]


def _env(spec: BuildSpec, params: Params, config: BuildConfig) -> dict[str, str]:
    names = dict(config.env_names)
    env = dict(config.env)
    env.update(
        {
            names["hash"]: spec.digest,
            names["project"]: params.project,
            names["image-name"]: spec.name,
            names["context-path"]: spec.context_path,
            names["base-repository"]: params.base_repository,
            names["head-repository"]: params.head_repository,
            names["head-rev"]: params.head_rev,
        }
    )
    if spec.parent_task_id is not None:
        env[names["parent-task"]] = spec.parent_task_id
    if spec.args:
        env[names["build-args"]] = json.dumps(dict(spec.args), sort_keys=True)
    return dict(sorted(env.items()))


def _routes(spec: BuildSpec, params: Params, config: BuildConfig) -> list[str]:
    routes = [
        f"index.{ns}"
        for ns in index_namespaces(
            params.level, spec.name, spec.digest, params.pushdate, prefix=config.index_prefix
        )
    ]
    if config.treeherder:
        suffix = f".{params.pushlog_id}" if params.pushlog_id is not None else ""
        routes += [
            f"{prefix}.{params.project}.{params.head_rev}{suffix}"
            for prefix in config.treeherder_routes
        ]
    return routes


def _scopes(routes: list[str], params: Params, config: BuildConfig) -> list[str]:
    scopes = set(config.scopes)
    if config.exact_route_scopes:
        scopes.update(f"queue:route:{route}" for route in routes)
    else:
        scopes.add(f"queue:route:index.{config.index_prefix}.level-{params.level}.*")
        if config.treeherder:
            scopes.update(
                f"queue:route:{prefix}.{params.project}.*" for prefix in config.treeherder_routes
            )
    cache = config.cache_for(params.level)
    if cache is not None:
        scopes.add(f"docker-worker:cache:{cache}")
    if config.privileged:
        scopes.add("docker-worker:capability:privileged")
    return sorted(scopes)


def _payload(
    spec: BuildSpec, params: Params, config: BuildConfig, artifact_expires: str
) -> dict[str, Any]:
    builder = spec.builder.to_json() if isinstance(spec.builder, TaskImage) else spec.builder
    payload: dict[str, Any] = {
        "image": builder,
        "env": _env(spec, params, config),
        "maxRunTime": config.max_run_time,
        "artifacts": {
            config.artifact_name: {
                "type": "file",
                "path": config.artifact_path,
                "expires": artifact_expires,
            },
            # Written by the builder beside the image (taskgraph_images.manifest).
            config.manifest_artifact: {
                "type": "file",
                "path": manifest_file_path(config.artifact_path, config.manifest_artifact),
                "expires": artifact_expires,
            },
        },
    }
    if config.command is not None:
        payload["command"] = list(config.command)
    cache = config.cache_for(params.level)
    if cache is not None:
        payload["cache"] = {cache: config.cache_mount}
    if config.features:
        payload["features"] = dict(config.features)
    if config.privileged:
        payload["capabilities"] = {"privileged": True}
    return payload


def build_task(
    spec: BuildSpec, params: Params, config: BuildConfig, now: datetime.datetime
) -> dict[str, Any]:
    """Return the ``queue.createTask`` body that builds ``spec`` for the push ``params``.

    ``now`` (aware) is the task's ``created`` time; ``deadline``, ``expires``
    and the artifact's expiry are counted from it.

    :raises InvalidValueError: for a naive ``now`` or a value that cannot make
        an index namespace.
    """
    created = format_time(now)
    artifact_after = config.artifact_expires_after or config.expires_after
    routes = _routes(spec, params, config)
    group, symbol = treeherder_symbol(spec.name, spec.symbol, config.treeherder_group)
    dependencies = list(dict.fromkeys(spec.dependencies))
    if params.decision_task_id is not None and params.decision_task_id not in dependencies:
        dependencies.append(params.decision_task_id)

    extra: dict[str, Any] = {
        "imageMeta": {"level": params.level, "contextHash": spec.digest, "imageName": spec.name}
    }
    if config.treeherder:
        extra["treeherder"] = {
            "groupSymbol": group,
            "groupName": config.treeherder_group_name,
            "symbol": symbol,
            "jobKind": "other",
            "tier": config.treeherder_tier,
            "machine": {"platform": config.treeherder_platform},
            "collection": {"opt": True},
        }

    task: dict[str, Any] = {}
    if config.task_queue_id is not None:
        task["taskQueueId"] = config.task_queue_id
    else:
        task["provisionerId"] = config.provisioner_id
        task["workerType"] = config.worker_type
    task["schedulerId"] = config.scheduler_id
    if params.decision_task_id is not None:
        task["taskGroupId"] = params.decision_task_id
    if config.project_id is not None:
        task["projectId"] = config.project_id
    task.update(
        {
            "created": created,
            "deadline": format_time(now + config.deadline_after),
            "expires": format_time(now + config.expires_after),
            "retries": config.retries,
            "dependencies": dependencies,
            "requires": "all-completed",
            "routes": routes,
            "scopes": _scopes(routes, params, config),
            "payload": _payload(spec, params, config, format_time(now + artifact_after)),
            "metadata": {
                "name": f"Docker image build: {spec.name}",
                "description": (
                    f"Build the Docker image {spec.name} (digest {spec.digest[:12]}) "
                    f"for {params.project} at level {params.level}"
                ),
                "owner": params.owner,
                "source": params.source,
            },
            "tags": {
                "createdForUser": params.owner,
                "kind": "docker-image",
                "label": f"build-docker-image-{spec.name}",
            },
            "extra": extra,
        }
    )
    if config.priority is not None:
        task["priority"] = config.priority
    return task
