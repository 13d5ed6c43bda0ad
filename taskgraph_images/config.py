"""The build-task configuration: everything about an image build task that is not per image.

The defaults serve the local loop (a local index, ``run-task``): they name
no Taskcluster queue, and a plan meant for a real Taskcluster must set
``task-queue-id``. A YAML file (``kind.yml`` style: kebab-case keys,
durations such as ``24 hours``) overrides any default; the values that
differ per trust level (queue, scheduler, expiry, zstd level, cache name...)
take ``{level}`` (and ``{trust-domain}``) in a string, or a ``by-level``
mapping. See ``docs/tasks.rst`` for every key. Unknown keys and wrong types
are :class:`~taskgraph_images.errors.ConfigError` naming the key and the file.
"""

from __future__ import annotations

import datetime
import os
import re
from typing import TYPE_CHECKING, Any, Callable, Generic, Mapping, Optional, Sequence, TypeVar, Union

import attrs

from taskgraph_images.errors import ConfigError, InvalidValueError
from taskgraph_images.names import is_artifact_name, is_dotted_words, is_image_name
from taskgraph_images.tc.time import parse_offset

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.graphconfig import Setting

__all__ = [
    "BUILDERS",
    "CACHE_KEYS",
    "DEFAULT_COMMAND",
    "DEFAULT_CONFIG_PATH",
    "DEFAULT_ENV_NAMES",
    "DEFAULT_FEATURES",
    "ENV_ROLES",
    "FEATURES",
    "KEYS",
    "LEVELS",
    "LOCAL_TASK_QUEUE",
    "MAX_DEADLINE",
    "PER_LEVEL_KEYS",
    "PRIORITIES",
    "BuildConfig",
    "ByLevel",
    "LevelConfig",
    "find_config",
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
    "zstd-level": "DOCKER_IMAGE_ZSTD_LEVEL",
    "config": "TASKGRAPH_IMAGES_CONFIG",
    "artifact-path": "IMAGE_ARTIFACT_PATH",
}
ENV_ROLES = tuple(DEFAULT_ENV_NAMES)

#: Where :func:`find_config` looks for the build-task config, from the repository root.
DEFAULT_CONFIG_PATH = "taskcluster/taskgraph-images.yml"
#: The trust levels a push can have.
LEVELS = (1, 2, 3)
#: The ``taskQueueId`` of a task made without ``task-queue-id``: no Taskcluster
#: deployment has it; such tasks are for ``run-task`` only and are never submitted.
LOCAL_TASK_QUEUE = "taskgraph-images-local/run-task"
#: The command a build task runs in the image builder (the in-task builder).
DEFAULT_COMMAND = ("taskgraph-images", "build-in-task")
#: docker-worker features every build task asks for unless ``features`` turns them off.
DEFAULT_FEATURES: Mapping[str, bool] = {"chainOfTrust": True, "taskclusterProxy": True}

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

_TASK_QUEUE = re.compile(r"[a-zA-Z0-9_-]{1,38}/[a-z](?:[-a-z0-9]{0,36}[a-z0-9])?\Z")
_SCHEDULER = re.compile(r"[a-zA-Z0-9_-]{1,38}\Z")
_PROJECT_ID = re.compile(r"[a-zA-Z0-9._/-]{1,500}\Z")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_CACHE_NAME = re.compile(r"[A-Za-z0-9_.-]+\Z")
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
_COLLECTION = re.compile(r"[a-z0-9]{1,25}\Z")
_SCOPE = re.compile(r"[ -~]*\Z")
_TREEHERDER_GROUP = re.compile(r"[A-Za-z0-9_-]{1,25}\Z")
#: The cache-key modes: whose digests and index namespaces the plan uses.
CACHE_KEYS = ("seed", "taskgraph")
#: Who builds the images of taskgraph's docker-image kind (``taskgraph_images.taskgraph``):
#: taskgraph's image_builder, or our in-task builder.
BUILDERS = ("taskgraph", "taskgraph-images")
# The Queue refuses deadlines more than five days ahead.
MAX_DEADLINE = datetime.timedelta(days=5)


def parse_duration(value: object, key: str = "duration") -> datetime.timedelta:
    """Return ``value`` as a timedelta: a time offset as ``taskcluster.fromNow``
    reads it (``"24 hours"``, ``"1 day 12 hours"``, ``"2d"``: see
    :mod:`taskgraph_images.tc.time`) or a whole number of seconds; a build
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


T = TypeVar("T")


@attrs.frozen
class ByLevel(Generic[T]):
    """A value that differs per trust level: ``values[0]`` at level 1, up to level 3.

    >>> ByLevel((3, 10, 10)).at(1)
    3
    """

    values: tuple[T, T, T]

    def at(self, level: int) -> T:
        """Return the value at ``level`` (1, 2 or 3)."""
        return self.values[level - 1]


#: A value that is the same at every level, or one per level.
PerLevel = Union[T, ByLevel[T]]


def _at(value: PerLevel[T], level: int) -> T:
    return value.at(level) if isinstance(value, ByLevel) else value


@attrs.frozen
class LevelConfig:
    """The per-level values of a :class:`BuildConfig` at one level, placeholders replaced."""

    level: int
    #: ``None`` when no queue is configured (the local loop).
    task_queue_id: Optional[str]
    scheduler_id: str
    priority: Optional[str]
    deadline_after: datetime.timedelta
    expires_after: datetime.timedelta
    #: Resolved: ``expires-after`` when not set.
    artifact_expires_after: datetime.timedelta
    max_run_time: int
    zstd_level: int
    cache_name: Optional[str]


@attrs.frozen
class BuildConfig:
    """How image build tasks are made; every field has a default (see ``docs/tasks.rst``).

    Build one from YAML with :func:`load_config` / :func:`parse_config`, or
    directly (``BuildConfig(task_queue_id="proj-{level}/images")``); change
    one with :func:`attrs.evolve`. Field names are the YAML keys with ``_``
    for ``-``. The fields of :data:`PER_LEVEL_KEYS` hold a plain value or a
    :class:`ByLevel`; :meth:`at` gives them at one level.
    """

    task_queue_id: PerLevel[Optional[str]] = None
    scheduler_id: PerLevel[str] = "-"
    trust_domain: Optional[str] = None
    project_id: Optional[str] = None
    priority: PerLevel[Optional[str]] = None
    retries: int = 5
    deadline_after: PerLevel[datetime.timedelta] = datetime.timedelta(hours=24)
    expires_after: PerLevel[datetime.timedelta] = ByLevel(
        (datetime.timedelta(days=28), datetime.timedelta(days=365), datetime.timedelta(days=365))
    )
    artifact_expires_after: PerLevel[Optional[datetime.timedelta]] = None
    #: How long a reused image's artifact must still live after the deadline a
    #: build task of this push would have (taskgraph's docker-image strategy).
    min_artifact_lifetime: Optional[datetime.timedelta] = None
    max_run_time: PerLevel[int] = 3600
    zstd_level: PerLevel[int] = ByLevel((3, 10, 10))
    image_builder: str = "image_builder"
    image_builder_bootstrap: Optional[str] = None
    command: tuple[str, ...] = DEFAULT_COMMAND
    artifact_name: str = "public/image.tar.zst"
    artifact_path: str = "/builds/worker/artifacts/image.tar.zst"
    #: The artifact a build publishes its context manifest as (see :mod:`~taskgraph_images.manifest`).
    manifest_artifact: str = "public/context-manifest.json"
    cache_name: PerLevel[Optional[str]] = "level-{level}-imagebuilder-v1"
    cache_mount: str = "/builds/worker/checkouts"
    features: tuple[tuple[str, bool], ...] = tuple(sorted(DEFAULT_FEATURES.items()))
    env_names: tuple[tuple[str, str], ...] = tuple(DEFAULT_ENV_NAMES.items())
    env: tuple[tuple[str, str], ...] = ()
    scopes: tuple[str, ...] = ()
    exact_route_scopes: bool = False
    treeherder: bool = True
    treeherder_group: str = "I"
    treeherder_group_name: str = "Docker images"
    treeherder_platform: str = "taskcluster-images"
    treeherder_collection: str = "opt"
    treeherder_routes: tuple[str, ...] = ("tc-treeherder.v2",)
    treeherder_tier: int = 1
    index_prefix: str = "docker.images.v2"
    #: ``"seed"`` (this library's digests and namespaces) or ``"taskgraph"``
    #: (taskcluster-taskgraph's, shared with it; see ``docs/hash.rst``).
    cache_keys: str = "seed"
    #: taskgraph's ``taskgraph.cached-task-prefix``: its cache namespaces' first
    #: words, when not the trust domain.
    cached_task_prefix: Optional[str] = None
    #: taskgraph's ``taskgraph.cache-pull-requests``: whether pull requests index
    #: and find images under their own namespace.
    cache_pull_requests: bool = True
    #: In taskgraph's docker-image kind, who builds the images: ``"taskgraph"``
    #: (its image_builder) or ``"taskgraph-images"`` (our in-task builder).
    builder: str = "taskgraph"
    #: A folder (from the repository root) holding the run-task files; default:
    #: the installed taskgraph package's.
    run_task: Optional[str] = None
    #: Names the config in messages: its file, or ``<defaults>``.
    source: str = "<defaults>"
    #: The file the config was read from (:func:`load_config`), if any.
    path: Optional[str] = None
    #: ``(key, where it was set)`` for each key not left at its default: the
    #: config file, or taskgraph's graph config (:mod:`taskgraph_images.graphconfig`).
    origins: tuple[tuple[str, str], ...] = ()

    def __attrs_post_init__(self) -> None:
        _check(self)

    def env_name(self, role: str) -> str:
        """Return the environment variable name configured for ``role`` (see :data:`ENV_ROLES`)."""
        return dict(self.env_names)[role]

    def at(self, level: int) -> LevelConfig:
        """Return the per-level values at ``level``, with ``{level}`` and ``{trust-domain}`` replaced.

        :raises ConfigError: for a level other than 1, 2 or 3, or a placeholder
            that cannot be replaced (naming the key).
        """
        if level not in LEVELS:
            raise ConfigError(f"{self.source}: there is no level {level!r} (levels: 1, 2, 3)")

        expires = _at(self.expires_after, level)
        scheduler = _substitute(self, "scheduler-id", _at(self.scheduler_id, level), level)
        assert scheduler is not None
        return LevelConfig(
            level=level,
            task_queue_id=_substitute(
                self, "task-queue-id", _at(self.task_queue_id, level), level
            ),
            scheduler_id=scheduler,
            priority=_at(self.priority, level),
            deadline_after=_at(self.deadline_after, level),
            expires_after=expires,
            artifact_expires_after=_at(self.artifact_expires_after, level) or expires,
            max_run_time=_at(self.max_run_time, level),
            zstd_level=_at(self.zstd_level, level),
            cache_name=_substitute(self, "cache-name", _at(self.cache_name, level), level),
        )

    def cache_for(self, level: int) -> Optional[str]:
        """Return the checkout cache's name at ``level``, or ``None`` without a cache."""
        return self.at(level).cache_name

    def require_queue(self, level: int, why: str) -> None:
        """Refuse a plan for a real Taskcluster (``why`` says what makes it one) without a queue.

        :raises ConfigError: when ``task-queue-id`` is not set at ``level``.
        """
        if self.at(level).task_queue_id is None:
            raise ConfigError(
                f"task-queue-id is not set (at level {level}), but {why}: "
                + self.ask('task-queue-id: "{trust-domain}-{level}/images"')
            )

    def ask(self, line: str) -> str:
        """Say where to add the config ``line`` a message asks for: this config's file
        (its :attr:`source`), else the repository's :data:`DEFAULT_CONFIG_PATH`.

        >>> BuildConfig().ask("trust-domain: NAME")
        'add the line `trust-domain: NAME` to taskcluster/taskgraph-images.yml'
        """
        named = not self.source.startswith("<")  # a file, not <defaults> or <config>
        return f"add the line `{line}` to {self.source if named else DEFAULT_CONFIG_PATH}"


def _substitute(c: BuildConfig, key: str, value: Optional[str], level: int) -> Optional[str]:
    if value is None:
        return None

    def replace(m: re.Match[str]) -> str:
        name = m.group(1)
        if name == "level":
            return str(level)
        if name == "trust-domain":
            if c.trust_domain is None:
                raise _fail(c, key, "{trust-domain} needs trust-domain to be set: "
                            + c.ask("trust-domain: NAME"))
            return c.trust_domain
        raise _fail(c, key, f"unknown placeholder {m.group(0)} (known: {{level}}, {{trust-domain}})")

    return _PLACEHOLDER.sub(replace, value)


def _fail(config: BuildConfig, key: str, message: str) -> ConfigError:
    return ConfigError(f"{dict(config.origins).get(key, config.source)}: {key}: {message}")


def _check(c: BuildConfig) -> None:
    def need(ok: bool, key: str, message: str) -> None:
        if not ok:
            raise _fail(c, key, message)

    need(c.trust_domain is None or is_dotted_words(c.trust_domain), "trust-domain",
         f"invalid trust domain {c.trust_domain!r}")
    for level in LEVELS:
        _check_level(c, c.at(level))
    need(c.project_id is None or bool(_PROJECT_ID.match(c.project_id)), "project-id",
         f"invalid project id {c.project_id!r}")
    need(0 <= c.retries <= 49, "retries", f"{c.retries} is not between 0 and 49")
    need(is_image_name(c.image_builder) or ":" in c.image_builder,
         "image-builder", f"{c.image_builder!r} is neither an image name nor a registry tag")
    need(c.image_builder_bootstrap is None or _nonempty_str(c.image_builder_bootstrap),
         "image-builder-bootstrap", "expected a registry tag")
    need(len(c.command) > 0 and all(_nonempty_str(a) for a in c.command),
         "command", "expected a non-empty list of strings")
    need(is_artifact_name(c.artifact_name),
         "artifact-name", f"invalid artifact name {c.artifact_name!r}")
    need(c.artifact_path.startswith("/"), "artifact-path", "expected an absolute path")
    need(is_artifact_name(c.manifest_artifact) and c.manifest_artifact != c.artifact_name,
         "manifest-artifact", f"invalid manifest artifact name {c.manifest_artifact!r} "
         "(a relative artifact name other than artifact-name)")
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
    need(bool(c.treeherder_platform) and "/" not in c.treeherder_platform, "treeherder-platform",
         f"{c.treeherder_platform!r}: expected a platform name without '/' "
         "(the collection is treeherder-collection)")
    need(bool(_COLLECTION.match(c.treeherder_collection)), "treeherder-collection",
         f"invalid collection {c.treeherder_collection!r} (e.g. opt, debug)")
    for route in c.treeherder_routes:
        need(is_dotted_words(route), "treeherder-routes", f"invalid route prefix {route!r}")
    need(1 <= c.treeherder_tier <= 3, "treeherder-tier", "expected 1, 2 or 3")
    need(is_dotted_words(c.index_prefix), "index-prefix",
         f"invalid index prefix {c.index_prefix!r}")
    need(c.cache_keys in CACHE_KEYS, "cache-keys",
         f"{c.cache_keys!r} is not one of {', '.join(CACHE_KEYS)}")
    need(c.cached_task_prefix is None or is_dotted_words(c.cached_task_prefix),
         "cached-task-prefix", f"invalid namespace prefix {c.cached_task_prefix!r}")
    need(c.cache_keys != "taskgraph" or c.trust_domain is not None, "cache-keys",
         "'taskgraph' needs the trust domain (taskgraph's cache namespaces start with it): "
         + c.ask("trust-domain: NAME"))
    need(c.run_task is None or (bool(c.run_task) and not os.path.isabs(c.run_task)), "run-task",
         "expected a folder relative to the repository root")
    need(c.builder in BUILDERS, "builder", f"{c.builder!r} is not one of {', '.join(BUILDERS)}")
    need(c.builder != "taskgraph-images" or c.cache_keys == "taskgraph", "builder",
         "'taskgraph-images' builds taskgraph's images: it needs cache-keys: taskgraph")
    need(c.builder != "taskgraph-images" or ":" in c.image_builder, "builder",
         f"'taskgraph-images' runs in image-builder, which must then be a registry tag "
         f"(taskgraph's tasks name their image so), not {c.image_builder!r}")


def _check_level(c: BuildConfig, lc: LevelConfig) -> None:
    def need(ok: bool, key: str, message: str) -> None:
        if not ok:
            field = getattr(c, key.replace("-", "_"))
            where = f" (at level {lc.level})" if isinstance(field, ByLevel) else ""
            raise _fail(c, key, message + where)

    if lc.task_queue_id is not None:
        need(bool(_TASK_QUEUE.match(lc.task_queue_id)), "task-queue-id",
             f"{lc.task_queue_id!r} is not PROVISIONER/WORKER-TYPE")
    need(bool(_SCHEDULER.match(lc.scheduler_id)), "scheduler-id",
         f"invalid scheduler id {lc.scheduler_id!r}")
    need(lc.priority is None or lc.priority in PRIORITIES, "priority",
         f"{lc.priority!r} is not one of {', '.join(PRIORITIES)}")
    need(lc.deadline_after <= MAX_DEADLINE, "deadline-after",
         "the Queue refuses deadlines more than 5 days ahead")
    need(lc.expires_after >= lc.deadline_after, "expires-after",
         "a task cannot expire before its deadline")
    need(lc.artifact_expires_after <= lc.expires_after, "artifact-expires-after",
         "an artifact cannot outlive its task (expires-after)")
    need(lc.max_run_time >= 1, "max-run-time",
         f"{lc.max_run_time} is not a positive number of seconds")
    need(1 <= lc.zstd_level <= 22, "zstd-level", f"{lc.zstd_level} is not between 1 and 22")
    if lc.cache_name is not None:
        need(bool(_CACHE_NAME.match(lc.cache_name)), "cache-name",
             f"invalid cache name {lc.cache_name!r} "
             "(letters, digits, '.', '-', '_', {level} and {trust-domain})")


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


def _mapping(source: str, key: str, value: object) -> Mapping[Any, Any]:
    if not isinstance(value, Mapping):
        raise _type_error(source, key, "a mapping", value)
    for k in value:
        if not isinstance(k, str):
            raise ConfigError(f"{source}: {key}: key {k!r} is not a string")
    return value


def _features(source: str, key: str, value: object) -> tuple[tuple[str, bool], ...]:
    items = _mapping(source, key, value)
    features = dict(DEFAULT_FEATURES)
    features.update({k: _bool(source, f"{key}.{k}", v) for k, v in items.items()})
    return tuple(sorted(features.items()))


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


_Parser = Callable[[str, str, object], Any]
_PARSERS: dict[str, tuple[str, _Parser]] = {
    "task-queue-id": ("task_queue_id", _opt_str),
    "scheduler-id": ("scheduler_id", _str),
    "trust-domain": ("trust_domain", _opt_str),
    "project-id": ("project_id", _opt_str),
    "priority": ("priority", _opt_str),
    "retries": ("retries", _int),
    "deadline-after": ("deadline_after", _duration),
    "expires-after": ("expires_after", _duration),
    "artifact-expires-after": ("artifact_expires_after", _opt_duration),
    "min-artifact-lifetime": ("min_artifact_lifetime", _opt_duration),
    "max-run-time": ("max_run_time", _int),
    "zstd-level": ("zstd_level", _int),
    "image-builder": ("image_builder", _str),
    "image-builder-bootstrap": ("image_builder_bootstrap", _opt_str),
    "command": ("command", _str_list),
    "artifact-name": ("artifact_name", _str),
    "artifact-path": ("artifact_path", _str),
    "manifest-artifact": ("manifest_artifact", _str),
    "cache-name": ("cache_name", _opt_str),
    "cache-mount": ("cache_mount", _str),
    "features": ("features", _features),
    "env-names": ("env_names", _env_names),
    "env": ("env", _env),
    "scopes": ("scopes", _str_list),
    "exact-route-scopes": ("exact_route_scopes", _bool),
    "treeherder": ("treeherder", _bool),
    "treeherder-group": ("treeherder_group", _str),
    "treeherder-group-name": ("treeherder_group_name", _str),
    "treeherder-platform": ("treeherder_platform", _str),
    "treeherder-collection": ("treeherder_collection", _str),
    "treeherder-routes": ("treeherder_routes", _str_list),
    "treeherder-tier": ("treeherder_tier", _int),
    "index-prefix": ("index_prefix", _str),
    "cache-keys": ("cache_keys", _str),
    "cached-task-prefix": ("cached_task_prefix", _opt_str),
    "cache-pull-requests": ("cache_pull_requests", _bool),
    "builder": ("builder", _str),
    "run-task": ("run_task", _opt_str),
}
#: Every key a config file may hold.
KEYS = tuple(_PARSERS)
#: The keys whose value may differ per level (``by-level``).
PER_LEVEL_KEYS = (
    "task-queue-id",
    "scheduler-id",
    "priority",
    "deadline-after",
    "expires-after",
    "artifact-expires-after",
    "max-run-time",
    "zstd-level",
    "cache-name",
)
# Keys of older releases, refused with what replaced them.
_RETIRED = {
    "provisioner-id": "replaced by task-queue-id (PROVISIONER/WORKER-TYPE)",
    "worker-type": "replaced by task-queue-id (PROVISIONER/WORKER-TYPE)",
    "privileged": "no longer offered: build tasks run buildah with "
    "capabilities.disableSeccomp, never a privileged container",
}


def _level_key(source: str, key: str, name: object) -> Union[int, str]:
    if name == "default":
        return "default"
    if isinstance(name, str) and name.isdigit():
        name = int(name)
    if isinstance(name, int) and not isinstance(name, bool) and name in LEVELS:
        return name
    raise ConfigError(f"{source}: {key}.by-level: unknown level {name!r} (known: 1, 2, 3, default)")


def _by_level(source: str, key: str, field: str, parse: _Parser, value: object) -> Any:
    """Parse ``value``, or ``{by-level: {1: ..., 3: ..., default: ...}}``, for ``key``."""
    if not isinstance(value, Mapping):
        return parse(source, key, value)
    if set(value) != {"by-level"} or not isinstance(value["by-level"], Mapping):
        raise ConfigError(
            f"{source}: {key}: expected a value or by-level: {{1: ..., 3: ..., default: ...}}"
        )
    given: dict[Union[int, str], Any] = {}
    for name, item in value["by-level"].items():
        level = _level_key(source, key, name)
        given[level] = parse(source, f"{key}.by-level.{level}", item)
    builtin = attrs.fields_dict(BuildConfig)[field].default
    return ByLevel(tuple(
        given[level] if level in given
        else given["default"] if "default" in given
        else _at(builtin, level)
        for level in LEVELS
    ))


def _parse_key(source: str, key: object, value: object) -> tuple[str, Any]:
    """Return the field and parsed value of one config ``key``."""
    if isinstance(key, str) and key in _RETIRED:
        raise ConfigError(f"{source}: {key}: {_RETIRED[key]}")
    entry = _PARSERS.get(key) if isinstance(key, str) else None
    if entry is None:
        from taskgraph_images._suggest import did_you_mean

        hint = did_you_mean(key, KEYS) if isinstance(key, str) else ""
        raise ConfigError(f"{source}: unknown key {key!r} "
                          f"({hint + ' ' if hint else ''}known keys: {', '.join(sorted(KEYS))})")
    field, parse = entry
    if key in PER_LEVEL_KEYS:
        return field, _by_level(source, str(key), field, parse, value)
    return field, parse(source, str(key), value)


def parse_config(
    data: object, source: str = "<config>", *, defaults: Sequence[Setting] = ()
) -> BuildConfig:
    """Validate parsed YAML ``data`` (a mapping of the keys in ``docs/tasks.rst``).

    An empty document (``None``) gives the defaults. A key of
    :data:`PER_LEVEL_KEYS` may hold ``{by-level: {LEVEL: value, default: value}}``;
    levels left out take ``default``, else the built-in default.
    ``defaults`` are settings read elsewhere (taskgraph's graph config:
    :func:`taskgraph_images.graphconfig.repository_settings`) that replace
    the built-in defaults; ``data`` wins over them key by key.
    :attr:`BuildConfig.origins` says where each key was set.

    :raises ConfigError: naming ``source`` (or the setting's origin) and the key at fault.
    """
    if data is not None and not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the build-task config must be a mapping of keys to values")
    fields: dict[str, Any] = {"source": source}
    origins: dict[str, str] = {}
    for setting in defaults:
        field, value = _parse_key(setting.origin, setting.key, setting.value)
        fields[field] = value
        origins[setting.key] = setting.origin
    for key, value in (data or {}).items():
        field, parsed = _parse_key(source, key, value)
        fields[field] = parsed
        origins[key] = source
    return BuildConfig(**fields, origins=tuple(origins.items()))


def load_config(path: PathLike, *, root: Optional[PathLike] = None,
                defaults: Sequence[Setting] = ()) -> BuildConfig:
    """Read and validate the build-task config YAML file at ``path`` (over ``defaults``,
    as :func:`parse_config` takes them).

    With ``root`` (the repository's own config, :func:`find_config`), the file
    must be a regular file inside ``root`` (see ``docs/security.rst``).

    :raises ConfigError: when the file cannot be read, is not YAML, or a key
        is unknown or has the wrong type (the message names the file and key).
    """
    from taskgraph_images._yamlfile import load_yaml_file

    data = load_yaml_file(path, "build-task config", ConfigError, root=root)
    source = os.fspath(path)
    return attrs.evolve(parse_config(data, source, defaults=defaults),
                        path=os.path.abspath(source))


def find_config(root: PathLike) -> Optional[str]:
    """Return the path of ``root``'s :data:`DEFAULT_CONFIG_PATH` when that file exists."""
    path = os.path.join(os.fspath(root), DEFAULT_CONFIG_PATH)
    # lexists: a FIFO or a link out of the repository is refused when read
    # (load_config with root), not skipped.
    return path if os.path.lexists(path) else None
