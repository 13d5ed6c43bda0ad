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
import os
import re
from typing import TYPE_CHECKING, Any, Mapping, Optional, Union

import attrs

from taskgraph_images.config import LOCAL_TASK_QUEUE, BuildConfig, LevelConfig
from taskgraph_images.errors import PlanError
from taskgraph_images.keys.indexkeys import PUSH, IndexKeys
from taskgraph_images.keys.namespaces import index_namespaces
from taskgraph_images.params import Params
from taskgraph_images.tc.time import format_time

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.kindconfig import IndexConfig
    from taskgraph_images.plan import Decision

__all__ = [
    "BuildSpec",
    "TaskImage",
    "build_task",
    "build_tasks",
    "default_index_routes",
    "kind_index_routes",
    "treeherder_symbol",
]

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
    #: The task's index routes (``index.`` and a namespace); ``None``: the three
    #: namespaces of :func:`~taskgraph_images.index.index_namespaces`.
    index_routes: Optional[tuple[str, ...]] = None
    #: The rank the Index gives the task's entries (``extra.index.rank``), if set.
    index_rank: Optional[int] = None
    #: The build-task config file the plan was made with, relative to the
    #: repository root (the in-task builder reads it); ``None`` for the defaults.
    config_path: Optional[str] = None


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


def kind_index_routes(product: str, job_name: str, params: Params,
                      trust_domain: str) -> tuple[str, ...]:
    """Return the routes a kind config's ``index: {product, job-name}`` gives a task.

    They are taskgraph's ``generic`` index routes::

        index.{trust-domain}.v2.{project}.latest.{product}.{job-name}
        index.{trust-domain}.v2.{project}.pushdate.{YYYY.MM.DD.YYYYMMDDHHMMSS}.{product}.{job-name}
        index.{trust-domain}.v2.{project}.pushlog-id.{pushlog id, 0 if none}.{product}.{job-name}
        index.{trust-domain}.v2.{project}.revision.{head rev}.{product}.{job-name}
    """
    # taskgraph dates the route by its build_date parameter (the push date without one).
    when = datetime.datetime.fromtimestamp(params.build_date_epoch, datetime.timezone.utc)
    stamp = when.strftime("%Y.%m.%d.%Y%m%d%H%M%S")
    top = f"index.{trust_domain}.v2.{params.project}"
    tail = f"{product}.{job_name}"
    return (
        f"{top}.latest.{tail}",
        f"{top}.pushdate.{stamp}.{tail}",
        f"{top}.pushlog-id.{params.pushlog_id or '0'}.{tail}",
        f"{top}.revision.{params.head_rev}.{tail}",
    )


def _env(
    spec: BuildSpec, params: Params, config: BuildConfig, at: LevelConfig
) -> dict[str, str]:
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
            names["zstd-level"]: str(at.zstd_level),
            names["artifact-path"]: config.artifact_path,
        }
    )
    if spec.config_path is not None:
        env[names["config"]] = spec.config_path
    if spec.parent_task_id is not None:
        env[names["parent-task"]] = spec.parent_task_id
    if spec.args:
        env[names["build-args"]] = json.dumps(dict(spec.args), sort_keys=True)
    return dict(sorted(env.items()))


def default_index_routes(
    name: str, digest: str, params: Params, config: BuildConfig
) -> list[str]:
    """Return the routes of image ``name`` at ``digest`` in this library's three namespaces.

    They are :func:`~taskgraph_images.index.index_namespaces` at the push's
    level and date, under the config's ``index-prefix``, each as ``index.NS``:
    what a build task gets unless its :class:`BuildSpec` says otherwise.
    """
    return [
        f"index.{ns}"
        for ns in index_namespaces(
            params.level, name, digest, params.pushdate, prefix=config.index_prefix
        )
    ]


def _index_routes(spec: BuildSpec, params: Params, config: BuildConfig) -> list[str]:
    if spec.index_routes is not None:
        return list(spec.index_routes)
    return default_index_routes(spec.name, spec.digest, params, config)


def _routes(spec: BuildSpec, params: Params, config: BuildConfig) -> list[str]:
    routes = _index_routes(spec, params, config)
    if config.treeherder:
        suffix = f".{params.pushlog_id}" if params.pushlog_id is not None else ""
        routes += [
            f"{prefix}.{params.project}.{params.head_rev}{suffix}"
            for prefix in config.treeherder_routes
        ]
    return routes


def _scopes(
    routes: list[str], params: Params, config: BuildConfig, at: LevelConfig,
    spec: Optional[BuildSpec] = None,
) -> list[str]:
    scopes = set(config.scopes)
    if config.exact_route_scopes:
        scopes.update(f"queue:route:{route}" for route in routes)
    else:
        ours = f"index.{config.index_prefix}.level-{params.level}."
        if spec is None or spec.index_routes is None:
            scopes.add(f"queue:route:{ours}*")
        else:  # routes of another shape (taskgraph's, a kind's index): one scope each
            scopes.update(f"queue:route:{r}" for r in spec.index_routes)
        if config.treeherder:
            scopes.update(
                f"queue:route:{prefix}.{params.project}.*" for prefix in config.treeherder_routes
            )
    if at.cache_name is not None:
        scopes.add(f"docker-worker:cache:{at.cache_name}")
    scopes.add("docker-worker:capability:disableSeccomp")
    return sorted(scopes)


def _payload(
    spec: BuildSpec, params: Params, config: BuildConfig, at: LevelConfig, artifact_expires: str
) -> dict[str, Any]:
    from taskgraph_images.manifest import manifest_file_path

    builder = spec.builder.to_json() if isinstance(spec.builder, TaskImage) else spec.builder
    payload: dict[str, Any] = {
        "image": builder,
        "command": list(config.command),
        "env": _env(spec, params, config, at),
        "maxRunTime": at.max_run_time,
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
    if at.cache_name is not None:
        payload["cache"] = {at.cache_name: config.cache_mount}
    features = {name: True for name, on in config.features if on}
    if features:
        payload["features"] = features
    # buildah needs no privileges, only seccomp off (it unshares a user namespace).
    payload["capabilities"] = {"disableSeccomp": True}
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
    at = config.at(params.level)
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
            "collection": {config.treeherder_collection: True},
        }
    if spec.index_rank is not None:
        extra["index"] = {"rank": spec.index_rank}
    if isinstance(spec.builder, TaskImage) and dict(config.features).get("chainOfTrust"):
        # Chain of trust verifies the image the task ran in against the task that built it.
        extra["chainOfTrust"] = {"inputs": {"docker-image": spec.builder.task_id}}

    task: dict[str, Any] = {
        "taskQueueId": at.task_queue_id or LOCAL_TASK_QUEUE,
        "schedulerId": at.scheduler_id,
    }
    if params.decision_task_id is not None:
        task["taskGroupId"] = params.decision_task_id
    if config.project_id is not None:
        task["projectId"] = config.project_id
    task.update(
        {
            "created": created,
            "deadline": format_time(now + at.deadline_after),
            "expires": format_time(now + at.expires_after),
            "retries": config.retries,
            "dependencies": dependencies,
            "requires": "all-completed",
            "routes": routes,
            "scopes": _scopes(routes, params, config, at, spec),
            "payload": _payload(
                spec, params, config, at, format_time(now + at.artifact_expires_after)
            ),
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
    if at.priority is not None:
        task["priority"] = at.priority
    return task


# -- the build tasks of a plan ----------------------------------------------------------


def build_tasks(
    catalog: ImageCatalog,
    params: Params,
    config: BuildConfig,
    decisions: Mapping[str, Decision],
    now: datetime.datetime,
    *,
    config_path: Optional[str] = None,
) -> dict[str, dict[str, Any]]:
    """Return the ``createTask`` bodies of a plan's builds, by task id, in submission order.

    The image builder's own build (if any) goes first: every other build
    needs it. Each task's builder, dependencies, routes and rank are decided
    here (pure). ``config_path`` is the build-task config file's path from
    the repository root as the plan's caller resolved it (``None``: no file).

    :raises PlanError: when the image builder is unusable, the config file is
        outside the repository, or a kind config's ``index`` cannot be routed.
    """
    builds = [d for d in decisions.values() if d.action == "build"]
    if not builds:
        return {}
    builder, builder_task = _builder_reference(catalog, config, decisions)
    checked_path = _checked_config_path(config_path, config, catalog.root)
    builds.sort(key=lambda d: d.name != config.image_builder)
    tasks: dict[str, dict[str, Any]] = {}
    for decision in builds:
        assert decision.task_id is not None
        image = catalog[decision.name]
        parent_tasks = [decisions[p].task_id for p in image.parents if decisions[p].task_id]
        dependencies: list[Optional[str]] = [
            t for p in image.parents if decisions[p].action == "build" for t in [decisions[p].task_id]
        ]
        this_builder: ImageRef = builder
        if decision.name == config.image_builder:
            if config.image_builder_bootstrap is None:
                raise PlanError(
                    f"the image builder {decision.name!r} must be built, but nothing can build "
                    "it: " + config.ask("image-builder-bootstrap: REGISTRY/IMAGE:TAG")
                )
            this_builder = config.image_builder_bootstrap
        elif builder_task is not None:
            dependencies.insert(0, builder_task)
        spec = BuildSpec(
            task_id=decision.task_id,
            name=decision.name,
            digest=decision.digest,
            context_path=image.path,
            builder=this_builder,
            parent_task_id=parent_tasks[0] if parent_tasks else None,
            dependencies=tuple(t for t in dependencies if t is not None),
            args=image.args,
            symbol=image.symbol,
            index_routes=_image_index_routes(catalog, decision, params, config),
            index_rank=_index_rank(catalog[decision.name].index, params, config,
                                   image=decision.name),
            config_path=checked_path,
        )
        tasks[decision.task_id] = build_task(spec, params, config, now)
    return tasks


def _builder_reference(
    catalog: ImageCatalog,
    config: BuildConfig,
    decisions: Mapping[str, Decision],
) -> tuple[ImageRef, Optional[str]]:
    """Return the image builder's reference and its build task in this plan, if any."""
    name = config.image_builder
    if name not in catalog:
        if ":" in name:  # a registry tag, not an image of this repository
            return name, None
        known = ", ".join(catalog.names()) or "none"
        raise PlanError(
            f"image builder {name!r} is not an image of the catalog (known images: {known}): "
            + config.ask("image-builder: IMAGE_OR_REGISTRY_TAG")
        )
    decision = decisions[name]
    if decision.docker_image is not None:
        return decision.docker_image, None
    assert decision.task_id is not None
    built = decision.task_id if decision.action == "build" else None
    return TaskImage(decision.task_id, config.artifact_name), built


def _checked_config_path(relative: Optional[str], config: BuildConfig, root: str) -> Optional[str]:
    """Return the config file's path from the root (``/``-separated), as the build task sees it.

    ``relative`` is its path from ``root`` in the host's form (``None``: no file).
    """
    if relative is None:
        return None
    if relative == os.pardir or relative.startswith(os.pardir + os.sep) or os.path.isabs(relative):
        raise PlanError(
            f"the build-task config {config.source} is outside the repository {root}: the build "
            "tasks read it from their checkout of the repository (so that they build what "
            "the plan decided), where it would be missing; move it into the repository"
        )
    return relative.replace(os.sep, "/")


def _image_index_routes(catalog: ImageCatalog, decision: Decision, params: Params,
                        config: BuildConfig) -> Optional[tuple[str, ...]]:
    """The build task's index routes, or ``None`` for this library's three namespaces."""
    image = catalog[decision.name]
    taskgraph = catalog.cache_keys == "taskgraph"
    if image.cache and image.index is None and not taskgraph:
        return None
    routes: list[str] = []
    if image.cache and taskgraph:
        from taskgraph_images.keys.taskgraph import index_routes

        routes += index_routes(_cache_prefix(config), image.name, decision.digest,
                               level=params.level, tasks_for=params.tasks_for or PUSH,
                               build_date=params.build_date_epoch,
                               cache_pull_requests=config.cache_pull_requests)
    elif image.cache:
        routes += default_index_routes(image.name, decision.digest, params, config)
    if image.index is not None:
        if config.trust_domain is None:
            raise PlanError(
                f"image {image.name!r} has index: in the kind config, whose routes start with "
                "the trust domain: " + config.ask("trust-domain: NAME")
            )
        routes += kind_index_routes(image.index.product, image.index.job_name, params,
                                    config.trust_domain)
    return tuple(routes)


def _index_rank(index: Optional[IndexConfig], params: Params,
                config: BuildConfig, *, image: str = "") -> Optional[int]:
    """The kind config's ``index.rank`` as taskgraph resolves it, or ``None`` without ``index``.

    ``by-tier``: the push date for a tier-1 task, else 0 (a task without
    Treeherder counts as tier 3); ``build_date``: the push date; a number:
    itself, but at level 1 never more than the push date: a higher rank
    would keep a try push's task at ``latest`` against every later push.

    :raises PlanError: for such a rank at level 1, naming the image.
    """
    if index is None:
        return None
    if index.rank == "by-tier":
        tier = config.treeherder_tier if config.treeherder else 3
        return params.build_date_epoch if tier == 1 else 0
    if index.rank == "build_date":
        return params.build_date_epoch
    rank = int(index.rank)
    if params.level == 1 and rank > params.build_date_epoch:
        raise PlanError(
            f"image {image!r}: index.rank {rank} in the kind config is above the push date "
            f"({params.build_date_epoch}): at level 1 it would pin the 'latest' route against "
            "every later push; use by-tier or build_date"
        )
    return rank


def _cache_prefix(config: BuildConfig) -> str:
    """taskgraph's cache namespaces' first words: cached-task-prefix, else the trust domain."""
    prefix = IndexKeys.for_config(config).taskgraph_prefix
    assert prefix is not None  # only asked with cache-keys: taskgraph
    return prefix
