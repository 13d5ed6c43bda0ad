"""The optional ``docker-image`` kind config (``kind.yml``) that describes images.

Each entry of ``tasks:`` (or the older ``jobs:``), and of the files
``tasks-from:`` names, is merged onto ``task-defaults:`` the way taskgraph
merges them (:func:`merge`), then read. Every key of taskgraph's
``docker-image`` kind is honoured or refused: ``symbol``, ``parent``,
``args``, ``definition``, ``cache`` and ``index`` are read; ``packages``
(package tasks this library does not make) is refused unless empty; any
other key is refused. Top-level keys other than those are taskgraph's own
machinery (``loader``, ``transforms``, ``kind-dependencies``) and name no
image setting. Errors name the file, the task and the key.
"""

from __future__ import annotations

import copy
import os
from typing import Any, Mapping, Optional, Union

import attrs

from taskgraph_images.errors import ConfigError

__all__ = [
    "KIND_CONFIG_PATHS",
    "TASK_KEYS",
    "ImageConfig",
    "IndexConfig",
    "find_kind_config",
    "load_kind_config",
    "merge",
    "parse_kind_config",
]

#: Where a kind config is looked for, relative to the repository root, in order.
KIND_CONFIG_PATHS = (
    "taskcluster/kinds/docker-image/kind.yml",
    "taskcluster/ci/docker-image/kind.yml",
)

#: The keys of one ``docker-image`` task, as taskgraph 24.x's schema has them.
TASK_KEYS = ("symbol", "parent", "args", "definition", "packages", "index", "cache")
#: The keys of a task's ``index`` (taskgraph's ``IndexSchema``).
INDEX_KEYS = ("product", "job-name", "type", "rank")


@attrs.frozen
class IndexConfig:
    """A task's ``index``: the routes taskgraph's ``generic`` index type gives it."""

    product: str
    job_name: str
    #: ``"by-tier"``, ``"build_date"`` or a number.
    rank: Union[str, int] = "by-tier"


@attrs.frozen
class ImageConfig:
    """What the kind config says about one image."""

    name: str
    definition: str
    symbol: Optional[str] = None
    parent: Optional[str] = None
    args: tuple[tuple[str, str], ...] = ()
    #: ``False``: never reused from the index; built on every push.
    cache: bool = True
    index: Optional[IndexConfig] = None


def find_kind_config(root: str) -> Optional[str]:
    """Return the first of :data:`KIND_CONFIG_PATHS` that exists below ``root``."""
    for rel in KIND_CONFIG_PATHS:
        path = os.path.join(root, *rel.split("/"))
        # lexists: a FIFO or a link out of the repository is refused when
        # read, not skipped as if there were no kind config.
        if os.path.lexists(path):
            return path
    return None


def merge(base: Mapping[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """Return ``over`` merged onto ``base`` as taskgraph merges a task onto ``task-defaults``.

    Where both hold a mapping, they merge key by key; where both hold a list,
    ``over``'s items follow ``base``'s; a one-key mapping whose key starts
    ``by-`` replaces whatever was there, and so does any value of another
    type. Neither argument is changed.

    >>> merge({"args": {"A": "1"}, "symbol": "I(a)"}, {"args": {"B": "2"}})
    {'args': {'A': '1', 'B': '2'}, 'symbol': 'I(a)'}
    """
    result = copy.deepcopy(dict(base))
    for key, value in over.items():
        mine: Any = result.get(key)
        by_key = isinstance(value, dict) and len(value) == 1 and str(next(iter(value))).startswith(
            "by-"
        )
        if by_key or type(value) is not type(mine):
            result[key] = copy.deepcopy(value)
        elif isinstance(value, dict):
            result[key] = merge(mine, value)
        elif isinstance(value, list):
            result[key] = mine + copy.deepcopy(value)
        else:
            result[key] = copy.deepcopy(value)
    return result


def _arg_value(source: str, where: str, key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(
            f"{source}: {where}.args.{key} must be a string or number, got {type(value).__name__}"
        )
    return str(value)


def _index(source: str, where: str, value: Any) -> IndexConfig:
    if not isinstance(value, Mapping):
        raise ConfigError(f"{source}: {where}.index must be a mapping (product, job-name, ...)")
    for key in value:
        if key not in INDEX_KEYS:
            raise ConfigError(
                f"{source}: {where}.index has an unknown key {key!r} "
                f"(known: {', '.join(INDEX_KEYS)})"
            )
    kind = value.get("type", "generic")
    if kind != "generic":
        raise ConfigError(
            f"{source}: {where}.index.type {kind!r} is not supported: only 'generic' is"
        )
    fields = {}
    for key in ("product", "job-name"):
        item = value.get(key)
        if not isinstance(item, str) or not item:
            raise ConfigError(f"{source}: {where}.index.{key} must be a non-empty string")
        fields[key] = item
    rank = value.get("rank", "by-tier")
    if isinstance(rank, bool) or not (isinstance(rank, int) or rank in ("by-tier", "build_date")):
        raise ConfigError(
            f"{source}: {where}.index.rank must be 'by-tier', 'build_date' or a number"
        )
    return IndexConfig(product=fields["product"], job_name=fields["job-name"], rank=rank)


def _task(source: str, where: str, name: str, entry: Mapping[str, Any]) -> ImageConfig:
    for key in entry:
        if key not in TASK_KEYS:
            raise ConfigError(
                f"{source}: {where} has an unknown key {key!r} "
                f"(the docker-image kind's keys: {', '.join(TASK_KEYS)})"
            )
    fields: dict[str, Any] = {}
    for field in ("symbol", "parent", "definition"):
        value = entry.get(field)
        if value is not None and not isinstance(value, str):
            raise ConfigError(
                f"{source}: {where}.{field} must be a string, got {type(value).__name__}"
            )
        fields[field] = value
    packages = entry.get("packages")
    if packages:
        raise ConfigError(
            f"{source}: {where}.packages is not supported: taskgraph-images makes no "
            "package tasks; build what the image needs in its Dockerfile"
        )
    if packages is not None and not isinstance(packages, list):
        raise ConfigError(f"{source}: {where}.packages must be a list")
    cache = entry.get("cache", True)
    if not isinstance(cache, bool):
        raise ConfigError(f"{source}: {where}.cache must be true or false")
    raw_args = entry.get("args") or {}
    if not isinstance(raw_args, Mapping):
        raise ConfigError(f"{source}: {where}.args must be a mapping of NAME: value")
    args = []
    for arg_name, value in raw_args.items():
        if not isinstance(arg_name, str):
            raise ConfigError(f"{source}: {where}.args has a non-string name {arg_name!r}")
        args.append((arg_name, _arg_value(source, where, arg_name, value)))
    index = entry.get("index")
    return ImageConfig(
        name=name,
        definition=fields["definition"] or name,
        symbol=fields["symbol"],
        parent=fields["parent"],
        args=tuple(sorted(args)),
        cache=cache,
        index=_index(source, where, index) if index is not None else None,
    )


def _tasks(source: str, key: str, tasks: Any, defaults: Mapping[str, Any],
           result: dict[str, ImageConfig]) -> None:
    if not isinstance(tasks, Mapping):
        raise ConfigError(f"{source}: '{key}' must be a mapping of image name to settings")
    for name, entry in tasks.items():
        if not isinstance(name, str):
            raise ConfigError(f"{source}: {key} has a non-string name {name!r}")
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: {key}.{name} must be a mapping")
        if name in result:
            raise ConfigError(f"{source}: image {name!r} is defined twice")
        result[name] = _task(source, f"{key}.{name}", name, merge(defaults, entry))


def _defaults(source: str, data: Mapping[str, Any]) -> dict[str, Any]:
    defaults = data.get("task-defaults")
    if defaults is None:
        return {}
    if not isinstance(defaults, Mapping):
        raise ConfigError(f"{source}: 'task-defaults' must be a mapping")
    return dict(defaults)


def parse_kind_config(data: Any, source: str,
                      tasks_from: Optional[Mapping[str, Any]] = None) -> dict[str, ImageConfig]:
    """Validate parsed YAML ``data`` of a kind config; ``source`` names it in errors.

    ``tasks_from`` maps each file named in ``tasks-from:`` to its parsed
    YAML (:func:`load_kind_config` reads them); a ``task-defaults`` in such
    a file applies, over the kind's own, to that file's tasks only.
    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the kind config must be a mapping with a 'tasks' key")
    key = "tasks" if "tasks" in data else "jobs" if "jobs" in data else None
    files = data.get("tasks-from") or []
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise ConfigError(f"{source}: 'tasks-from' must be a list of file names")
    if key is None and not files:
        raise ConfigError(f"{source}: the kind config has no 'tasks' mapping")
    defaults = _defaults(source, data)
    result: dict[str, ImageConfig] = {}
    if key is not None:
        _tasks(source, key, data[key] or {}, defaults, result)
    for name in files:
        other = (tasks_from or {}).get(name)
        where = os.path.join(os.path.dirname(source), name)
        if other is None:
            other = {}
        if not isinstance(other, Mapping):
            raise ConfigError(f"{where}: must be a mapping of image name to settings")
        other = dict(other)
        own = _defaults(where, other)
        other.pop("task-defaults", None)
        _tasks(where, "tasks", other, merge(defaults, own), result)
    return result


def load_kind_config(path: Union[str, os.PathLike[str]], *,
                     root: Optional[Union[str, os.PathLike[str]]] = None
                     ) -> dict[str, ImageConfig]:
    """Read and validate the kind config at ``path`` (and the files its ``tasks-from`` names).

    ``root`` is the repository root: the kind config and every file
    ``tasks-from`` names must be regular files inside it (default: the kind
    config's own folder). A ``tasks-from`` name is relative to the kind
    config's folder and may not be absolute.

    :raises ConfigError: when a file cannot be read, breaks that rule, is not
        YAML, or a key is unknown, refused or of the wrong type.
    """
    from taskgraph_images._redact import quote_value
    from taskgraph_images._yamlfile import load_yaml_file

    source = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(source))
    top = os.fspath(root) if root is not None else folder
    data = load_yaml_file(source, "kind config", ConfigError, root=top)
    extra: dict[str, Any] = {}
    files = data.get("tasks-from") if isinstance(data, Mapping) else None
    if isinstance(files, list):
        for name in files:
            if isinstance(name, str):
                if not name or os.path.isabs(name) or "\0" in name:
                    raise ConfigError(
                        f"{source}: tasks-from {quote_value(name)} must be a file name "
                        "relative to the kind config's folder"
                    )
                extra[name] = load_yaml_file(os.path.join(folder, name),
                                             "kind config tasks-from file", ConfigError, root=top)
    return parse_kind_config(data, source, extra)
