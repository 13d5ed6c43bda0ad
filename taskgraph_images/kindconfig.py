"""The optional ``docker-image`` kind config (``kind.yml``) that describes images.

Only the keys this library uses are read from each entry of ``tasks:`` (or
the older ``jobs:``): ``symbol``, ``parent``, ``args`` and ``definition``.
Other keys belong to other tools and are ignored; the ones read are checked
for type, and errors name the file, the task and the key.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Union

import attrs

from taskgraph_images.errors import ConfigError

__all__ = ["KIND_CONFIG_PATHS", "ImageConfig", "find_kind_config", "load_kind_config"]

#: Where a kind config is looked for, relative to the repository root, in order.
KIND_CONFIG_PATHS = (
    "taskcluster/kinds/docker-image/kind.yml",
    "taskcluster/ci/docker-image/kind.yml",
)


@attrs.frozen
class ImageConfig:
    """What the kind config says about one image."""

    name: str
    definition: str
    symbol: Optional[str] = None
    parent: Optional[str] = None
    args: tuple[tuple[str, str], ...] = ()


def find_kind_config(root: str) -> Optional[str]:
    """Return the first of :data:`KIND_CONFIG_PATHS` that exists below ``root``."""
    for rel in KIND_CONFIG_PATHS:
        path = os.path.join(root, *rel.split("/"))
        if os.path.isfile(path):
            return path
    return None


def _arg_value(source: str, name: str, key: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(
            f"{source}: tasks.{name}.args.{key} must be a string or number, "
            f"got {type(value).__name__}"
        )
    return str(value)


def parse_kind_config(data: Any, source: str) -> dict[str, ImageConfig]:
    """Validate parsed YAML ``data`` of a kind config; ``source`` names it in errors."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{source}: the kind config must be a mapping with a 'tasks' key")
    key = "tasks" if "tasks" in data else "jobs" if "jobs" in data else None
    if key is None:
        raise ConfigError(f"{source}: the kind config has no 'tasks' mapping")
    tasks = data[key]
    if not isinstance(tasks, Mapping):
        raise ConfigError(f"{source}: '{key}' must be a mapping of image name to settings")
    result: dict[str, ImageConfig] = {}
    for name, entry in tasks.items():
        if not isinstance(name, str):
            raise ConfigError(f"{source}: {key} has a non-string name {name!r}")
        if entry is None:
            entry = {}
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: {key}.{name} must be a mapping")
        fields: dict[str, Any] = {}
        for field in ("symbol", "parent", "definition"):
            value = entry.get(field)
            if value is not None and not isinstance(value, str):
                raise ConfigError(
                    f"{source}: {key}.{name}.{field} must be a string, "
                    f"got {type(value).__name__}"
                )
            fields[field] = value
        raw_args = entry.get("args") or {}
        if not isinstance(raw_args, Mapping):
            raise ConfigError(f"{source}: {key}.{name}.args must be a mapping of NAME: value")
        args = []
        for arg_name, value in raw_args.items():
            if not isinstance(arg_name, str):
                raise ConfigError(f"{source}: {key}.{name}.args has a non-string name {arg_name!r}")
            args.append((arg_name, _arg_value(source, name, arg_name, value)))
        result[name] = ImageConfig(
            name=name,
            definition=fields["definition"] or name,
            symbol=fields["symbol"],
            parent=fields["parent"],
            args=tuple(sorted(args)),
        )
    return result


def load_kind_config(path: Union[str, os.PathLike[str]]) -> dict[str, ImageConfig]:
    """Read and validate the kind config at ``path``.

    :raises ConfigError: when the file cannot be read, is not YAML, or a key
        this library reads has the wrong type.
    """
    from taskgraph_images._yamlfile import load_yaml_file

    data = load_yaml_file(path, "kind config", ConfigError)
    return parse_kind_config(data, os.fspath(path))
