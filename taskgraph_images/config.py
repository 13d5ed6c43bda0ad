"""The build-task configuration: everything about an image build task that is not per image.

Defaults follow the image build task of the 2016 decision task that the seed
describes; a YAML file (``kind.yml`` style: kebab-case keys, durations such
as ``24 hours``) overrides any of them. See ``docs/tasks.rst`` for every key.
Unknown keys and wrong types are :class:`~taskgraph_images.errors.ConfigError`
naming the key and the file.
"""

from __future__ import annotations

import datetime
import os
import re
from typing import Any, Callable, Mapping, Optional, Union

import attrs

from taskgraph_images.errors import ConfigError, InvalidValueError
from taskgraph_images.tctime import parse_offset

__all__ = [
    "DEFAULT_ENV_NAMES",
    "ENV_ROLES",
    "FEATURES",
    "KEYS",
    "MAX_DEADLINE",
    "PRIORITIES",
    "BuildConfig",
    "load_config",
    "parse_config",
    "parse_duration",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The environment variables a build task gets, by role, and their default names.
DEFAULT_ENV_NAMES: Mapping[str, str] = {
    "hash": "HASH",
    "project": "PROJECT",
    "image-name": "IMAGE_NAME",
    "context-path": "CONTEXT_PATH",
    "base-repository": "GECKO_BASE_REPOSITORY",
    "head-repository": "GECKO_HEAD_REPOSITORY",
    "head-rev": "GECKO_HEAD_REV",
    "parent-task": "DOCKER_IMAGE_PARENT_TASK",
    "build-args": "DOCKER_BUILD_ARGS",
}
ENV_ROLES = tuple(DEFAULT_ENV_NAMES)

#: Task priorities the Queue accepts.
PRIORITIES = ("highest", "very-high", "high", "medium", "low", "very-low", "lowest")
#: docker-worker feature flags (``payload.features``) of the payload schema.
FEATURES = (
    "allowPtrace",
    "artifacts",
    "bulkLog",
    "chainOfTrust",
    "interactive",
    "localLiveLog",
    "taskclusterProxy",
)

_PROVISIONER = re.compile(r"[a-zA-Z0-9_-]{1,38}\Z")
_WORKER_TYPE = re.compile(r"[a-z](?:[-a-z0-9]{0,36}[a-z0-9])?\Z")
_TASK_QUEUE = re.compile(r"[a-zA-Z0-9_-]{1,38}/[a-z](?:[-a-z0-9]{0,36}[a-z0-9])?\Z")
_SCHEDULER = re.compile(r"[a-zA-Z0-9_-]{1,38}\Z")
_PROJECT_ID = re.compile(r"[a-zA-Z0-9._/-]{1,500}\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_WORD = r"[A-Za-z0-9_-]+"
_DOTTED = re.compile(rf"{_WORD}(?:\.{_WORD})*\Z")
_IMAGE_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*\Z")
_ARTIFACT = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*\Z")
_CACHE_NAME = re.compile(r"[A-Za-z0-9_.-]*(?:\{level\}[A-Za-z0-9_.-]*)*\Z")
_SCOPE = re.compile(r"[ -~]*\Z")
_TREEHERDER_GROUP = re.compile(r"[A-Za-z0-9_-]{1,25}\Z")
# The Queue refuses deadlines more than five days ahead.
MAX_DEADLINE = datetime.timedelta(days=5)


def parse_duration(value: object, key: str = "duration") -> datetime.timedelta:
    """Return ``value`` as a timedelta: a time offset as ``taskcluster.fromNow``
    reads it (``"24 hours"``, ``"1 day 12 hours"``, ``"2d"``: see
    :mod:`taskgraph_images.tctime`) or a whole number of seconds; a build
    task's durations are positive.

    >>> parse_duration("1 day 12 hours")
    datetime.timedelta(days=1, seconds=43200)

    :raises ConfigError: naming ``key``.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            delta = datetime.timedelta(seconds=value)
        except OverflowError:
            raise ConfigError(f"{key}: invalid duration {value!r}: too large") from None
    elif isinstance(value, str):
        try:
            delta = parse_offset(value)
        except InvalidValueError as e:
            raise ConfigError(f"{key}: {e}") from None
    else:
        raise ConfigError(
            f"{key}: invalid duration {value!r}: expected a time offset such as "
            "'1 day 12 hours' or '2d', or whole seconds"
        )
    if delta <= datetime.timedelta(0):
        raise ConfigError(f"{key}: invalid duration {value!r}: a build task's durations "
                          "must be positive")
    return delta


def _nonempty_str(value: object) -> bool:
    return isinstance(value, str) and bool(value)


@attrs.frozen
class BuildConfig:
    """How image build tasks are made; every field has a default (see ``docs/tasks.rst``).

    Build one from YAML with :func:`load_config` / :func:`parse_config`, or
    directly (``BuildConfig(worker_type="images")``); change one with
    :func:`attrs.evolve`. Field names are the YAML keys with ``_`` for ``-``.
    """

    provisioner_id: Optional[str] = "aws-provisioner-v1"
    worker_type: Optional[str] = "taskcluster-images"
    task_queue_id: Optional[str] = None
    scheduler_id: str = "task-graph-scheduler"
    project_id: Optional[str] = None
    priority: Optional[str] = None
    retries: int = 5
    deadline_after: datetime.timedelta = datetime.timedelta(hours=24)
    expires_after: datetime.timedelta = datetime.timedelta(days=365)
    artifact_expires_after: Optional[datetime.timedelta] = None
    max_run_time: int = 3600
    image_builder: str = "image_builder"
    image_builder_bootstrap: Optional[str] = None
    command: Optional[tuple[str, ...]] = None
    artifact_name: str = "public/image.tar.zst"
    artifact_path: str = "/builds/worker/artifacts/image.tar.zst"
    #: The artifact a build publishes its context manifest as (see :mod:`~taskgraph_images.manifest`).
    manifest_artifact: str = "public/context-manifest.json"
    cache_name: Optional[str] = "level-{level}-imagebuilder-v1"
    cache_mount: str = "/builds/worker/checkouts"
    privileged: bool = True
    features: tuple[tuple[str, bool], ...] = ()
    env_names: tuple[tuple[str, str], ...] = tuple(DEFAULT_ENV_NAMES.items())
    env: tuple[tuple[str, str], ...] = ()
    scopes: tuple[str, ...] = ()
    exact_route_scopes: bool = False
    treeherder: bool = True
    treeherder_group: str = "I"
    treeherder_group_name: str = "Docker images"
    treeherder_platform: str = "taskcluster-images/opt"
    treeherder_routes: tuple[str, ...] = ("tc-treeherder.v2",)
    treeherder_tier: int = 1
    index_prefix: str = "docker.images.v2"
    source: str = "<defaults>"

    def __attrs_post_init__(self) -> None:
        _check(self)

    def env_name(self, role: str) -> str:
        """Return the environment variable name configured for ``role`` (see :data:`ENV_ROLES`)."""
        return dict(self.env_names)[role]

    def cache_for(self, level: int) -> Optional[str]:
        """Return the checkout cache's name at ``level``, or ``None`` without a cache."""
        if self.cache_name is None:
            return None
        return self.cache_name.replace("{level}", str(level))


def _fail(config: BuildConfig, key: str, message: str) -> ConfigError:
    return ConfigError(f"{config.source}: {key}: {message}")


def _check(c: BuildConfig) -> None:
    def need(ok: bool, key: str, message: str) -> None:
        if not ok:
            raise _fail(c, key, message)

    if c.task_queue_id is not None:
        need(bool(_TASK_QUEUE.match(c.task_queue_id)), "task-queue-id",
             f"{c.task_queue_id!r} is not PROVISIONER/WORKER-TYPE")
    else:
        need(c.provisioner_id is not None and bool(_PROVISIONER.match(c.provisioner_id)),
             "provisioner-id", f"invalid provisioner id {c.provisioner_id!r}")
        need(c.worker_type is not None and bool(_WORKER_TYPE.match(c.worker_type)),
             "worker-type", f"invalid worker type {c.worker_type!r}")
    need(bool(_SCHEDULER.match(c.scheduler_id)), "scheduler-id",
         f"invalid scheduler id {c.scheduler_id!r}")
    need(c.project_id is None or bool(_PROJECT_ID.match(c.project_id)), "project-id",
         f"invalid project id {c.project_id!r}")
    need(c.priority is None or c.priority in PRIORITIES, "priority",
         f"{c.priority!r} is not one of {', '.join(PRIORITIES)}")
    need(0 <= c.retries <= 49, "retries", f"{c.retries} is not between 0 and 49")
    need(c.deadline_after <= MAX_DEADLINE, "deadline-after",
         "the Queue refuses deadlines more than 5 days ahead")
    need(c.expires_after >= c.deadline_after, "expires-after",
         "a task cannot expire before its deadline")
    if c.artifact_expires_after is not None:
        need(c.artifact_expires_after <= c.expires_after, "artifact-expires-after",
             "an artifact cannot outlive its task (expires-after)")
    need(c.max_run_time >= 1, "max-run-time", f"{c.max_run_time} is not a positive number of seconds")
    need(bool(_IMAGE_NAME.match(c.image_builder)) or ":" in c.image_builder,
         "image-builder", f"{c.image_builder!r} is neither an image name nor a registry tag")
    need(c.image_builder_bootstrap is None or _nonempty_str(c.image_builder_bootstrap),
         "image-builder-bootstrap", "expected a registry tag")
    need(c.command is None or (len(c.command) > 0 and all(_nonempty_str(a) for a in c.command)),
         "command", "expected a non-empty list of strings")
    need(bool(_ARTIFACT.match(c.artifact_name))
         and not any(p in (".", "..") for p in c.artifact_name.split("/")),
         "artifact-name", f"invalid artifact name {c.artifact_name!r}")
    need(c.artifact_path.startswith("/"), "artifact-path", "expected an absolute path")
    need(bool(_ARTIFACT.match(c.manifest_artifact))
         and not any(p in (".", "..") for p in c.manifest_artifact.split("/"))
         and c.manifest_artifact != c.artifact_name,
         "manifest-artifact", f"invalid manifest artifact name {c.manifest_artifact!r} "
         "(a relative artifact name other than artifact-name)")
    if c.cache_name is not None:
        need(bool(c.cache_name) and bool(_CACHE_NAME.match(c.cache_name)), "cache-name",
             f"invalid cache name {c.cache_name!r} (letters, digits, '.', '-', '_' and {{level}})")
    need(c.cache_mount.startswith("/"), "cache-mount", "expected an absolute path")
    for name, _ in c.features:
        need(name in FEATURES, f"features.{name}",
             f"unknown docker-worker feature (known: {', '.join(FEATURES)})")
    roles = dict(c.env_names)
    need(set(roles) == set(ENV_ROLES), "env-names", f"expected the roles {', '.join(ENV_ROLES)}")
    for role, var in c.env_names:
        need(bool(_ENV_NAME.match(var)), f"env-names.{role}", f"invalid variable name {var!r}")
    need(len(set(roles.values())) == len(roles), "env-names", "two roles share a variable name")
    for var, _ in c.env:
        need(bool(_ENV_NAME.match(var)), f"env.{var}", "invalid variable name")
        need(var not in roles.values(), f"env.{var}", "is set by the build task itself")
    for scope in c.scopes:
        need(bool(_SCOPE.match(scope)) and not scope.endswith("**"), "scopes",
             f"invalid scope {scope!r}")
    need(bool(_TREEHERDER_GROUP.match(c.treeherder_group)), "treeherder-group",
         f"invalid treeherder group symbol {c.treeherder_group!r}")
    need(bool(c.treeherder_platform), "treeherder-platform", "expected a platform name")
    for route in c.treeherder_routes:
        need(bool(_DOTTED.match(route)), "treeherder-routes", f"invalid route prefix {route!r}")
    need(1 <= c.treeherder_tier <= 3, "treeherder-tier", "expected 1, 2 or 3")
    need(bool(_DOTTED.match(c.index_prefix)), "index-prefix",
         f"invalid index prefix {c.index_prefix!r}")


# -- parsing ---------------------------------------------------------------------


def _type_error(source: str, key: str, expected: str, value: object) -> ConfigError:
    return ConfigError(f"{source}: {key}: expected {expected}, got {type(value).__name__}")


def _str(source: str, key: str, value: object) -> str:
    if not isinstance(value, str):
        raise _type_error(source, key, "a string", value)
    return value


def _opt_str(source: str, key: str, value: object) -> Optional[str]:
    return None if value is None else _str(source, key, value)


def _int(source: str, key: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _type_error(source, key, "an integer", value)
    return value


def _bool(source: str, key: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise _type_error(source, key, "true or false", value)
    return value


def _str_list(source: str, key: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _type_error(source, key, "a list of strings", value)
    return tuple(_str(source, f"{key}[{i}]", v) for i, v in enumerate(value))


def _opt_str_list(source: str, key: str, value: object) -> Optional[tuple[str, ...]]:
    return None if value is None else _str_list(source, key, value)


def _mapping(source: str, key: str, value: object) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise _type_error(source, key, "a mapping", value)
    for k in value:
        if not isinstance(k, str):
            raise ConfigError(f"{source}: {key}: key {k!r} is not a string")
    return value


def _features(source: str, key: str, value: object) -> tuple[tuple[str, bool], ...]:
    items = _mapping(source, key, value)
    return tuple(sorted((k, _bool(source, f"{key}.{k}", v)) for k, v in items.items()))


def _env(source: str, key: str, value: object) -> tuple[tuple[str, str], ...]:
    items = _mapping(source, key, value)
    return tuple(sorted((k, _str(source, f"{key}.{k}", v)) for k, v in items.items()))


def _env_names(source: str, key: str, value: object) -> tuple[tuple[str, str], ...]:
    items = _mapping(source, key, value)
    for role in items:
        if role not in DEFAULT_ENV_NAMES:
            raise ConfigError(
                f"{source}: {key}.{role}: unknown role (known: {', '.join(ENV_ROLES)})"
            )
    names = dict(DEFAULT_ENV_NAMES)
    names.update({k: _str(source, f"{key}.{k}", v) for k, v in items.items()})
    return tuple(names.items())


def _duration(source: str, key: str, value: object) -> datetime.timedelta:
    try:
        return parse_duration(value, key)
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


def _opt_duration(source: str, key: str, value: object) -> Optional[datetime.timedelta]:
    return None if value is None else _duration(source, key, value)


_PARSERS: dict[str, tuple[str, Callable[[str, str, object], Any]]] = {
    "provisioner-id": ("provisioner_id", _opt_str),
    "worker-type": ("worker_type", _opt_str),
    "task-queue-id": ("task_queue_id", _opt_str),
    "scheduler-id": ("scheduler_id", _str),
    "project-id": ("project_id", _opt_str),
    "priority": ("priority", _opt_str),
    "retries": ("retries", _int),
    "deadline-after": ("deadline_after", _duration),
    "expires-after": ("expires_after", _duration),
    "artifact-expires-after": ("artifact_expires_after", _opt_duration),
    "max-run-time": ("max_run_time", _int),
    "image-builder": ("image_builder", _str),
    "image-builder-bootstrap": ("image_builder_bootstrap", _opt_str),
    "command": ("command", _opt_str_list),
    "artifact-name": ("artifact_name", _str),
    "artifact-path": ("artifact_path", _str),
    "manifest-artifact": ("manifest_artifact", _str),
    "cache-name": ("cache_name", _opt_str),
    "cache-mount": ("cache_mount", _str),
    "privileged": ("privileged", _bool),
    "features": ("features", _features),
    "env-names": ("env_names", _env_names),
    "env": ("env", _env),
    "scopes": ("scopes", _str_list),
    "exact-route-scopes": ("exact_route_scopes", _bool),
    "treeherder": ("treeherder", _bool),
    "treeherder-group": ("treeherder_group", _str),
    "treeherder-group-name": ("treeherder_group_name", _str),
    "treeherder-platform": ("treeherder_platform", _str),
    "treeherder-routes": ("treeherder_routes", _str_list),
    "treeherder-tier": ("treeherder_tier", _int),
    "index-prefix": ("index_prefix", _str),
}
#: Every key a config file may hold.
KEYS = tuple(_PARSERS)


def parse_config(data: object, source: str = "<config>") -> BuildConfig:
    """Validate parsed YAML ``data`` (a mapping of the keys in ``docs/tasks.rst``).

    An empty document (``None``) gives the defaults. Setting ``task-queue-id``
    replaces the default ``provisioner-id``/``worker-type``; setting both
    kinds is an error.

    :raises ConfigError: naming ``source`` and the key at fault.
    """
    if data is None:
        return BuildConfig(source=source)
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the build-task config must be a mapping of keys to values")
    fields: dict[str, Any] = {"source": source}
    for key, value in data.items():
        entry = _PARSERS.get(key) if isinstance(key, str) else None
        if entry is None:
            raise ConfigError(
                f"{source}: unknown key {key!r} (known keys: {', '.join(sorted(KEYS))})"
            )
        field, parse = entry
        fields[field] = parse(source, key, value)
    if fields.get("task_queue_id") is not None:
        for key in ("provisioner-id", "worker-type"):
            if data.get(key) is not None:
                raise ConfigError(f"{source}: {key}: set either task-queue-id or {key}, not both")
        fields["provisioner_id"] = None
        fields["worker_type"] = None
    return BuildConfig(**fields)


def load_config(path: PathLike) -> BuildConfig:
    """Read and validate the build-task config YAML file at ``path``.

    :raises ConfigError: when the file cannot be read, is not YAML, or a key
        is unknown or has the wrong type (the message names the file and key).
    """
    from taskgraph_images._yamlfile import load_yaml_file

    data = load_yaml_file(path, "build-task config", ConfigError)
    return parse_config(data, os.fspath(path))
