"""taskgraph's graph config (``taskcluster/config.yml``) as build-task config settings.

A repository that runs taskcluster-taskgraph already says, in its graph
config and its ``docker-image`` kind file, most of what its image build
tasks need. This module reads those facts and gives them as settings of the
build-task config (:mod:`taskgraph_images.config`), each with the place it
came from; the repository's own ``taskcluster/taskgraph-images.yml`` is read
over them, key by key (:func:`taskgraph_images.config.parse_config`'s
``defaults``).

======================================  ===================================================
graph config                            build-task config key
======================================  ===================================================
``trust-domain``                        ``trust-domain``
``taskgraph.cached-task-prefix``        ``cached-task-prefix``
``taskgraph.cache-pull-requests``       ``cache-pull-requests``
``task-expires-after``                  ``expires-after`` at level 1 (1 year above it, as
                                        taskgraph's docker-image transform sets it)
``task-priority``                       ``priority`` (``by-project`` for the push's
                                        project, ``by-level`` per level)
``workers.aliases.images``              ``task-queue-id``: ``{provisioner}/{worker-type}``,
                                        ``by-level`` allowed, ``{alias}``, ``{level}`` and
                                        ``{trust-domain}`` replaced
======================================  ===================================================

The graph config's ``docker-image-kind`` names the kind whose file lists the
images (:func:`kind_config_of`). And when that kind file runs taskgraph's own
``taskgraph.transforms.docker_image:transforms``, taskgraph decides the
images' digests: ``cache-keys: taskgraph`` and ``image-builder`` the image
builder reference taskgraph digests (:func:`taskgraph_image_builder`).

Every other key of the graph config is taskgraph's business and is not
read. A key read here with a value of the wrong shape is a
:class:`~taskgraph_images.errors.ConfigError` naming the file and the key.
:func:`graph_settings` is pure; :func:`read_graph_config` and
:func:`kind_uses_taskgraph_transforms` read one bounded regular file inside
the repository.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any, Mapping, Optional

import attrs

from taskgraph_images._safefile import MAX_CONFIG_BYTES
from taskgraph_images.errors import ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.config import BuildConfig

__all__ = [
    "DOCKER_IMAGE_TRANSFORMS",
    "GRAPH_CONFIG_PATH",
    "MAX_FILE_BYTES",
    "Setting",
    "graph_settings",
    "kind_config_of",
    "kind_uses_taskgraph_transforms",
    "read_graph_config",
    "repository_config",
    "repository_settings",
    "taskgraph_image_builder",
]

#: Where taskgraph keeps its graph config, from the repository root.
GRAPH_CONFIG_PATH = "taskcluster/config.yml"
#: The transforms that make a kind's tasks taskgraph's docker-image tasks.
DOCKER_IMAGE_TRANSFORMS = "taskgraph.transforms.docker_image:transforms"
#: The largest graph config or kind file read (real ones are a few KiB): the
#: bound of every YAML file a repository holds.
MAX_FILE_BYTES = MAX_CONFIG_BYTES
#: The worker alias taskgraph's docker-image tasks run on.
IMAGES_ALIAS = "images"
_LEVELS = ("1", "2", "3")


@attrs.frozen
class Setting:
    """One build-task config key's value, in the config file's form, and where it came from."""

    #: The build-task config key (``task-queue-id``, ...).
    key: str
    #: The value as a config file would write it (``{by-level: ...}`` included).
    value: Any
    #: Where it came from: ``FILE (its key there)``.
    origin: str


# -- reading ---------------------------------------------------------------------------


def _read_yaml(root: str, rel: str, what: str) -> tuple[bool, Any]:
    """``(True, document)`` for the YAML file ``rel`` under ``root``, ``(False, None)`` when absent.

    The file follows the repository rule (a regular file inside ``root``,
    bounded: :func:`~taskgraph_images._yamlfile.load_yaml_file`).
    """
    from taskgraph_images._yamlfile import load_yaml_file

    if not os.path.lexists(os.path.join(root, *rel.split("/"))):
        return False, None
    return True, load_yaml_file(rel, what, ConfigError, root=root)


def read_graph_config(root: str) -> Optional[Mapping[str, Any]]:
    """Return the parsed ``taskcluster/config.yml`` of ``root``, or ``None`` without one.

    :raises ConfigError: for a file that is not a regular file inside the
        repository, larger than :data:`MAX_FILE_BYTES`, not UTF-8 or not a YAML mapping.
    """
    exists, data = _read_yaml(root, GRAPH_CONFIG_PATH, "graph config")
    if not exists:
        return None
    if not isinstance(data, Mapping):
        raise ConfigError(f"{GRAPH_CONFIG_PATH}: the graph config must be a mapping of keys")
    return data


def kind_uses_taskgraph_transforms(root: str, kind_config: str) -> bool:
    """Whether the kind file ``kind_config`` (from ``root``) runs taskgraph's docker-image transforms.

    :raises ConfigError: as :func:`read_graph_config`, for the kind file.
    """
    _, data = _read_yaml(root, kind_config, "kind config")
    transforms = data.get("transforms") if isinstance(data, Mapping) else None
    return isinstance(transforms, list) and DOCKER_IMAGE_TRANSFORMS in transforms


def taskgraph_image_builder() -> str:
    """The image builder reference taskgraph digests: the installed taskgraph's, else ours.

    The installed taskgraph's ``IMAGE_BUILDER_IMAGE`` is read from its
    ``transforms/docker_image.py`` without importing taskgraph (which takes
    ~0.4 s). Without taskgraph installed, or where that file does not say it
    as a string, it is the reference of the newest taskgraph release this
    library is tested against (:data:`taskgraph_images.keys.taskgraph.IMAGE_BUILDER_IMAGE`).
    """
    from taskgraph_images.keys.taskgraph import IMAGE_BUILDER_IMAGE

    found = _installed_constant("transforms/docker_image.py", "IMAGE_BUILDER_IMAGE")
    return IMAGE_BUILDER_IMAGE if found is None else found


def _installed_constant(module_path: str, name: str) -> Optional[str]:
    """The string constant ``name`` of the installed taskgraph's ``module_path``, if any."""
    import ast

    from taskgraph_images.keys.taskgraph import installed_package_dirs

    for location in installed_package_dirs():
        try:
            with open(os.path.join(location, *module_path.split("/")), encoding="utf-8") as f:
                tree = ast.parse(f.read())
        except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
            continue
        for node in tree.body:
            if (isinstance(node, ast.Assign) and len(node.targets) == 1
                    and isinstance(node.targets[0], ast.Name) and node.targets[0].id == name
                    and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                return node.value.value
    return None


# -- the settings (pure) ---------------------------------------------------------------


def _fail(source: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {message}")


def _keyed(value: Any, source: str, key: str, attributes: Mapping[str, Optional[str]]) -> Any:
    """Evaluate ``by-NAME`` mappings as taskgraph does: an exact key, else a regex, else default."""
    while isinstance(value, Mapping) and len(value) == 1:
        (by, alternatives), = value.items()
        if not (isinstance(by, str) and by.startswith("by-")):
            return value
        name = by[3:]
        if name not in attributes:
            raise _fail(source, key, f"{by} is not supported here (known: "
                        f"{', '.join('by-' + a for a in attributes)})")
        if not isinstance(alternatives, Mapping) or not alternatives:
            raise _fail(source, key, f"{by}: expected a mapping of values")
        target = attributes[name]
        matches: list[Any] = []
        if target is not None:
            if target in alternatives:
                matches = [alternatives[target]]
            else:
                matches = [v for k, v in alternatives.items()
                           if isinstance(k, str) and _full_match(k, target, source, key)]
        if not matches and "default" in alternatives:
            matches = [alternatives["default"]]
        if len(matches) != 1:
            what = "nothing" if not matches else "more than one value"
            raise _fail(source, key, f"{by}: {what} for {name} {target!r} and no single default")
        value = matches[0]
    return value


def _full_match(pattern: str, target: str, source: str, key: str) -> bool:
    try:
        return re.match(pattern + "$", target) is not None
    except re.error as e:
        raise _fail(source, key, f"{pattern!r} is not a regular expression: {e}") from None


def _per_level(value: Any, source: str, key: str,
               attributes: Mapping[str, Optional[str]], expect: type) -> Any:
    """``value`` evaluated at each level: one value, or ``{by-level: {1: ..., 2: ..., 3: ...}}``."""
    at = []
    for level in _LEVELS:
        got = _keyed(value, source, key, {**attributes, "level": level})
        if not isinstance(got, expect):
            raise _fail(source, key, f"expected {expect.__name__}, got {type(got).__name__}")
        at.append(got)
    if at[0] == at[1] == at[2]:
        return at[0]
    return {"by-level": {int(level): v for level, v in zip(_LEVELS, at)}}


def graph_settings(
    data: Mapping[str, Any],
    *,
    source: str = GRAPH_CONFIG_PATH,
    project: Optional[str] = None,
) -> list[Setting]:
    """Return the build-task config settings the graph config ``data`` makes (pure).

    ``project`` is the push's project, for a ``task-priority`` written
    ``by-project``; without one, such a priority takes its ``default``, if any.

    :raises ConfigError: naming ``source`` and the graph config key.
    """
    out: list[Setting] = []

    def put(key: str, value: Any, where: str) -> None:
        out.append(Setting(key, value, f"{source} ({where})"))

    for where, key, kind, expected in _COPIED:
        value = _get(data, where, source)
        if value is None:
            continue
        if not isinstance(value, kind):
            raise _fail(source, where, f"expected {expected}")
        put(key, value, where)
    expires = data.get("task-expires-after")
    if expires is not None:
        if not isinstance(expires, str):
            raise _fail(source, "task-expires-after", "expected a time offset such as '28 days'")
        # taskgraph's docker-image transform: level 1 takes it, the others a year.
        put("expires-after", {"by-level": {1: expires, "default": "1 year"}}, "task-expires-after")
    priority = data.get("task-priority")
    # A priority by-project with no default waits for the push's project (a plan's).
    if priority is not None and (project is not None or not _waits_for_project(priority)):
        put("priority", _per_level(priority, source, "task-priority", {"project": project}, str),
            "task-priority")
    queue = _images_queue(data, source)
    if queue is not None:
        put("task-queue-id", queue, f"workers.aliases.{IMAGES_ALIAS}")
    return out


# Graph config keys copied as they are: (where, build-task config key, type, in words).
_COPIED: tuple[tuple[str, str, type, str], ...] = (
    ("trust-domain", "trust-domain", str, "a string"),
    ("taskgraph.cached-task-prefix", "cached-task-prefix", str, "a string"),
    ("taskgraph.cache-pull-requests", "cache-pull-requests", bool, "true or false"),
)


def _get(data: Mapping[str, Any], where: str, source: str) -> Any:
    """The value at the dotted path ``where``, or ``None``."""
    value: Any = data
    walked: list[str] = []
    for part in where.split("."):
        if not isinstance(value, Mapping):
            raise _fail(source, ".".join(walked), "expected a mapping")
        value = value.get(part)
        walked.append(part)
        if value is None:
            return None
    return value


def _waits_for_project(value: Any) -> bool:
    """Whether ``value`` is ``{by-project: {...}}`` without a ``default``."""
    if not isinstance(value, Mapping) or set(value) != {"by-project"}:
        return False
    alternatives = value["by-project"]
    return not (isinstance(alternatives, Mapping) and "default" in alternatives)


def _images_queue(data: Mapping[str, Any], source: str) -> Any:
    workers = data.get("workers")
    aliases = workers.get("aliases") if isinstance(workers, Mapping) else None
    if not isinstance(aliases, Mapping) or IMAGES_ALIAS not in aliases:
        return None
    key = f"workers.aliases.{IMAGES_ALIAS}"
    alias = aliases[IMAGES_ALIAS]
    if not isinstance(alias, Mapping):
        raise _fail(source, key, "expected a mapping with provisioner and worker-type")
    parts = []
    for field in ("provisioner", "worker-type"):
        if field not in alias:
            raise _fail(source, key, f"has no {field}")
        value = _per_level(alias[field], source, f"{key}.{field}", {}, str)
        parts.append(value)
    provisioner, worker_type = parts

    def at(value: Any, level: int) -> str:
        text: str = value["by-level"][level] if isinstance(value, Mapping) else value
        # taskgraph formats {alias} too; {level} and {trust-domain} the config replaces.
        return text.replace("{alias}", IMAGES_ALIAS)

    if isinstance(provisioner, Mapping) or isinstance(worker_type, Mapping):
        return {"by-level": {level: f"{at(provisioner, level)}/{at(worker_type, level)}"
                             for level in (1, 2, 3)}}
    return f"{at(provisioner, 1)}/{at(worker_type, 1)}"


def repository_settings(
    root: str,
    kind_config: Optional[str],
    *,
    project: Optional[str] = None,
) -> list[Setting]:
    """The settings ``root``'s graph config and docker-image kind file make (see the module).

    ``kind_config`` is the kind file the catalog reads, from ``root`` (or
    ``None``). A repository without ``taskcluster/config.yml`` gets none.

    :raises ConfigError: as :func:`read_graph_config` and :func:`graph_settings`.
    """
    data = read_graph_config(root)
    if data is None:
        return []
    settings = graph_settings(data, project=project)
    if kind_config is not None and kind_uses_taskgraph_transforms(root, kind_config):
        where = f"{kind_config} (transforms: {DOCKER_IMAGE_TRANSFORMS})"
        settings.append(Setting("cache-keys", "taskgraph", where))
        settings.append(Setting("image-builder", taskgraph_image_builder(), where))
    return settings


def repository_config(
    root: str,
    config_file: Optional[str] = None,
    *,
    kind_config: Optional[str] = "auto",
    project: Optional[str] = None,
    confine: bool = False,
) -> BuildConfig:
    """The build-task config of the repository at ``root``: ``config_file`` (if
    any) read over what taskgraph's files there say (:func:`repository_settings`).

    With ``confine``, ``config_file`` is the repository's own and must be a
    regular file inside ``root`` (see ``docs/security.rst``).

    ``kind_config`` is the kind file from ``root``, ``"auto"`` for the one the
    catalog finds by default, or ``None``. A repository without
    ``taskcluster/config.yml`` gets exactly ``config_file``'s config (or the
    defaults).

    >>> from taskgraph_images.config import BuildConfig
    >>> repository_config("/nonexistent") == BuildConfig()
    True

    :raises ConfigError: naming the file and key at fault.
    """
    from taskgraph_images.config import BuildConfig, load_config, parse_config

    if kind_config == "auto":
        kind_config = kind_config_of(root)
    defaults = repository_settings(root, kind_config, project=project)
    if config_file is not None:
        return load_config(config_file, defaults=defaults, root=root if confine else None)
    return parse_config(None, "<defaults>", defaults=defaults) if defaults else BuildConfig()


def kind_config_of(root: str) -> Optional[str]:
    """The docker-image kind file of ``root``, from ``root``, or ``None``.

    taskgraph's graph config may name the kind (``docker-image-kind``); then
    it is ``taskcluster/kinds/{kind}/kind.yml``. Otherwise the first of
    :data:`~taskgraph_images.kindconfig.KIND_CONFIG_PATHS` that exists.

    :raises ConfigError: for a ``docker-image-kind`` that is not a kind's
        name, or whose kind file does not exist.
    """
    from taskgraph_images.kindconfig import find_kind_config

    data = read_graph_config(root)
    kind = data.get("docker-image-kind") if data is not None else None
    if kind is not None:
        if not isinstance(kind, str) or not re.fullmatch(r"[A-Za-z0-9_-]+", kind):
            raise _fail(GRAPH_CONFIG_PATH, "docker-image-kind", f"{kind!r} is not a kind's name")
        rel = f"taskcluster/kinds/{kind}/kind.yml"
        if not os.path.isfile(os.path.join(root, *rel.split("/"))):
            raise _fail(GRAPH_CONFIG_PATH, "docker-image-kind", f"{rel} does not exist")
        return rel
    found = find_kind_config(root)
    return None if found is None else os.path.relpath(found, root).replace(os.sep, "/")
