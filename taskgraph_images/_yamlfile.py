"""Read YAML safely, turning every failure into one line naming the file (and line).

A repository's YAML is hostile: :func:`parse_yaml` refuses a document whose
aliases would expand to more than :data:`MAX_YAML_NODES` nodes (a
"billion laughs" bomb is a few hundred bytes), a recursive alias, and nesting
deeper than :data:`MAX_YAML_DEPTH`; a ``RecursionError`` or ``MemoryError``
while parsing becomes the caller's error, never a traceback.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional, Union

from taskgraph_images._safefile import MAX_CONFIG_BYTES, read_repo_text
from taskgraph_images.errors import TaskgraphImagesError

if TYPE_CHECKING:  # pragma: no cover
    import yaml

__all__ = ["MAX_YAML_DEPTH", "MAX_YAML_NODES", "load_yaml_file", "parse_yaml",
           "yaml_error_where"]

PathLike = Union[str, "os.PathLike[str]"]

#: The most nodes a document may hold with every alias expanded.
MAX_YAML_NODES = 1_000_000
#: The deepest nesting of mappings and sequences a document may have.
MAX_YAML_DEPTH = 200


def yaml_error_where(error: Exception) -> tuple[str, str]:
    """Return ``(":LINE:COLUMN" or "", problem)`` of a ``yaml.YAMLError``."""
    mark = getattr(error, "problem_mark", None)
    where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    return where, getattr(error, "problem", None) or "invalid YAML"


class _Refused(Exception):
    """The document is too large once expanded, too deep or recursive."""


def _check_tree(root: yaml.Node) -> None:
    """Refuse a composed document too deep, recursive, or too large with aliases expanded."""
    import yaml

    sizes: dict[int, int] = {}
    # Iterative post-order walk: (node, depth, children done?).
    stack: list[tuple[yaml.Node, int, bool]] = [(root, 1, False)]
    open_nodes: set[int] = set()
    while stack:
        node, depth, done = stack.pop()
        key = id(node)
        if depth > MAX_YAML_DEPTH:
            raise _Refused(f"nested more than {MAX_YAML_DEPTH} deep")
        if isinstance(node, yaml.ScalarNode):
            sizes[key] = 1
            continue
        children: list[yaml.Node] = (
            [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode)
            else list(node.value)
        )
        if done:
            open_nodes.discard(key)
            total = 1 + sum(sizes[id(c)] for c in children)
            if total > MAX_YAML_NODES:
                raise _Refused(f"more than {MAX_YAML_NODES} nodes once its aliases are expanded")
            sizes[key] = total
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            raise _Refused("an alias refers to a node that contains it")
        open_nodes.add(key)
        stack.append((node, depth, True))
        for child in children:
            if id(child) in open_nodes:
                raise _Refused("an alias refers to a node that contains it")
            if id(child) not in sizes:
                stack.append((child, depth + 1, False))


def parse_yaml(text: str, source: str, error: type[TaskgraphImagesError],
               *, context: str = "") -> Any:
    """Parse the YAML ``text`` (``source`` names it in messages) with yaml's safe loader.

    ``context`` is put after the location (``"after rendering: "``).

    :raises error: naming ``source`` (and the line and column) for YAML that
        does not parse, and for a document too deep, recursive or too large
        once its aliases are expanded.
    """
    import yaml

    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            if node is None:
                return None
            _check_tree(node)
            return loader.construct_document(node)
        finally:
            loader.dispose()
    except yaml.YAMLError as e:
        where, problem = yaml_error_where(e)
        raise error(f"{source}{where}: {context}{problem}") from None
    except _Refused as e:
        raise error(f"{source}: {context}refused: the YAML document is {e}") from None
    except RecursionError:
        raise error(f"{source}: {context}refused: the YAML document is nested too deeply") from None
    except MemoryError:
        raise error(f"{source}: {context}refused: the YAML document is too large") from None
    except (ValueError, TypeError) as e:  # e.g. a timestamp out of range
        raise error(f"{source}: {context}{type(e).__name__}: {e}") from None


def load_yaml_file(path: PathLike, what: str, error: type[TaskgraphImagesError],
                   *, root: Optional[PathLike] = None) -> Any:
    """Parse the YAML file at ``path`` (``what`` names it in messages).

    With ``root``, the file is a repository's and must follow its rule
    (:func:`~taskgraph_images._safefile.read_repo_file`): a regular file inside
    ``root``. Either way it is read only up to
    :data:`~taskgraph_images._safefile.MAX_CONFIG_BYTES`.

    :raises error: when the file cannot be read, breaks the rule, is not
        UTF-8 text, or is not YAML (with the line and column of the problem).
    """
    text = read_repo_text(root, path, what, error, limit=MAX_CONFIG_BYTES)
    from taskgraph_images._redact import escape

    return parse_yaml(text, escape(os.fspath(path)), error)
