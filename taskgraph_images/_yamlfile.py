"""Read a YAML file, turning every failure into one line naming the file (and line)."""

from __future__ import annotations

import os
from typing import Any, Union

from taskgraph_images.errors import TaskgraphImagesError

__all__ = ["load_yaml_file", "yaml_error_where"]

PathLike = Union[str, "os.PathLike[str]"]


def yaml_error_where(error: Exception) -> tuple[str, str]:
    """Return ``(":LINE:COLUMN" or "", problem)`` of a ``yaml.YAMLError``."""
    mark = getattr(error, "problem_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    return where, getattr(error, "problem", None) or "invalid YAML"


def load_yaml_file(path: PathLike, what: str, error: type[TaskgraphImagesError]) -> Any:
    """Parse the YAML file at ``path`` (``what`` names it in messages).

    :raises error: when the file cannot be read, is not UTF-8 text, or is not
        YAML (with the line and column of the problem).
    """
    import yaml

    source = os.fspath(path)
    try:
        with open(source, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as e:
        raise error(f"cannot read {what} {source}: {e.strerror}") from e
    except UnicodeDecodeError as e:
        raise error(f"{what} {source} is not UTF-8 text") from e
    except yaml.YAMLError as e:
        where, problem = yaml_error_where(e)
        raise error(f"{source}{where}: {problem}") from e
