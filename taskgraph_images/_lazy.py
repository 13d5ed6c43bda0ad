"""Names a package exports but imports only on first use (a module's ``__getattr__``)."""

from __future__ import annotations

import importlib

# typing.TYPE_CHECKING's value, without importing typing: the package's
# ``__init__`` uses this module and stays cheap to import.
TYPE_CHECKING = False
if TYPE_CHECKING:  # pragma: no cover - for type checkers only
    from typing import Any, Mapping, MutableMapping


def import_lazily(namespace: MutableMapping[str, Any], homes: Mapping[str, str], name: str) -> Any:
    """Import ``name`` from its module ``homes[name]`` and keep it in ``namespace``.

    What a package's module-level ``__getattr__`` returns: ``namespace`` is its
    ``globals()``, so the import happens once.

    :raises AttributeError: for a name ``homes`` does not list.
    """
    home = homes.get(name)
    if home is None:
        raise AttributeError(f"module {namespace['__name__']!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    namespace[name] = value
    return value
