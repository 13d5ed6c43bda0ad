"""The entries of taskgraph's ``docker-image`` kind, read as taskgraph 24.x's schema reads them.

taskgraph's loader hands each transform one mapping per image: the entry
of ``kind.yml`` (or of a ``tasks-from`` file) merged onto ``task-defaults``,
with ``name`` and ``task-from`` added. :func:`read_task` accepts exactly
what taskgraph's ``DockerImageSchema`` accepts and taskgraph can then build,
and refuses anything else in one line naming the kind file, the task and
the key:

========== ======================= ==========================================
key        accepted                honoured as
========== ======================= ==========================================
name       a string                the image's name, ``docker-image-{name}``
parent     a string, or null       the ``parent`` dependency and the digest
symbol     a string, or null       the Treeherder symbol (none when empty)
task-from  a string, or null       where the entry was written (errors)
args       a mapping of strings    ``# %ARG`` values, the digest, build args
definition a string                the folder under ``taskcluster/docker``
packages   a list of strings       ``packages-{name}`` dependencies
index      taskgraph's index, null passed to taskgraph's ``task`` transform
cache      true, false or null     cached (the default) or built every push
========== ======================= ==========================================

``args``, ``definition`` and ``packages`` may be left out but not null:
taskgraph's schema lets null through and its transform then fails.
"""

from __future__ import annotations

import copy
import posixpath
from typing import Any, Mapping, Optional

import attrs

from taskgraph_images.errors import ConfigError
from taskgraph_images.kindconfig import ImageConfig

__all__ = ["INDEX_KEYS", "TASK_KEYS", "KindTask", "read_task"]

#: The keys of one entry, as taskgraph 24.x's ``DockerImageSchema`` has them.
TASK_KEYS = ("name", "parent", "symbol", "task-from", "args", "definition", "packages",
             "index", "cache")
#: The keys of an entry's ``index`` (taskgraph's ``IndexSchema``).
INDEX_KEYS = ("product", "job-name", "type", "rank")


@attrs.frozen
class KindTask:
    """One image of the kind, as the transform builds it."""

    name: str
    #: The kind file the entry was written in, from the repository root (for errors).
    source: str
    definition: str
    parent: Optional[str] = None
    symbol: Optional[str] = None
    #: ``# %ARG`` values in the order the entry writes them (the build args keep it).
    args: tuple[tuple[str, str], ...] = ()
    packages: tuple[str, ...] = ()
    #: Whether the entry has an ``index`` key, and its value (handed on as written).
    has_index: bool = False
    index: Any = attrs.field(default=None, eq=False)
    cache: bool = True

    def image_config(self) -> ImageConfig:
        """What the catalog needs of the entry."""
        return ImageConfig(name=self.name, definition=self.definition, symbol=self.symbol,
                           parent=self.parent, args=tuple(sorted(self.args)), cache=self.cache)


def _type(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _string(where: str, key: str, value: Any, *, null: bool) -> Optional[str]:
    if value is None and null:
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{where}: {key} must be a string{' or null' if null else ''}, "
                          f"got {_type(value)}")
    return value


def _index(where: str, value: Any) -> Any:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: index must be a mapping ({', '.join(INDEX_KEYS)})")
    for key, item in value.items():
        if key not in INDEX_KEYS:
            raise ConfigError(f"{where}: index has an unknown key {key!r} "
                              f"(known: {', '.join(INDEX_KEYS)})")
        if key == "rank":
            if not (item in ("by-tier", "build_date")
                    or (isinstance(item, int) and not isinstance(item, bool))):
                raise ConfigError(f"{where}: index.rank must be 'by-tier', 'build_date' "
                                  f"or a whole number, got {item!r}")
        else:
            _string(where, f"index.{key}", item, null=key != "type")
    return copy.deepcopy(dict(value))


def read_task(entry: Mapping[str, Any], kind_path: str) -> KindTask:
    """Read one entry taskgraph's loader produced for the kind at ``kind_path``.

    ``kind_path`` is the kind's folder from the repository root; errors name
    the file in it the entry came from (its ``task-from``) and the task.

    :raises ConfigError: for an unknown key, or a value of the wrong type.
    """
    name = entry.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{kind_path}: a docker-image task has no name")
    task_from = entry.get("task-from")
    source = posixpath.join(kind_path, task_from) if isinstance(task_from, str) else kind_path
    where = f"{source}: task {name!r}"
    for key in entry:
        if key not in TASK_KEYS:
            raise ConfigError(f"{where} has an unknown key {key!r} "
                              f"(the docker-image kind's keys: {', '.join(TASK_KEYS[1:])})")
    _string(where, "task-from", task_from, null=True)
    raw_args = entry.get("args", {})
    if not isinstance(raw_args, Mapping):
        raise ConfigError(f"{where}: args must be a mapping of NAME: value, got {_type(raw_args)}")
    args = []
    for key, value in raw_args.items():
        _string(where, "an args name", key, null=False)
        args.append((key, str(_string(where, f"args.{key}", value, null=False))))
    packages = entry.get("packages", [])
    if not isinstance(packages, list):
        raise ConfigError(f"{where}: packages must be a list of package names, "
                          f"got {_type(packages)}")
    for package in packages:
        _string(where, "each of packages", package, null=False)
    cache = entry.get("cache", True)
    if cache is not None and not isinstance(cache, bool):
        raise ConfigError(f"{where}: cache must be true or false, got {_type(cache)}")
    definition = str(_string(where, "definition", entry.get("definition", name), null=False))
    if definition.startswith("/") or any(p in ("", ".", "..") for p in definition.split("/")):
        raise ConfigError(f"{where}: definition {definition!r} must name a folder below "
                          "taskcluster/docker")
    return KindTask(
        name=name,
        source=source,
        definition=definition,
        parent=_string(where, "parent", entry.get("parent"), null=True) or None,
        symbol=_string(where, "symbol", entry.get("symbol"), null=True),
        args=tuple(args),
        packages=tuple(packages),
        has_index="index" in entry,
        index=_index(where, entry.get("index")),
        cache=bool(cache),
    )
