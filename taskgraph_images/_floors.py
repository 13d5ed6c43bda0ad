"""The oldest version of each runtime dependency that taskgraph-images works
with, and the check made where an old one would otherwise fail obscurely.

:data:`FLOORS` is what ``setup.cfg`` declares (``install_requires``) and what
``tests/floors.txt`` pins for the tox env and CI step that run the tests at
the floors; a test holds the three together. How each floor was found is in
``docs/dependencies.rst``.
"""

from __future__ import annotations

import re
from typing import Mapping, Optional

from taskgraph_images.errors import DependencyError

__all__ = ["FLOORS", "require"]

#: Distribution name -> the oldest version that passes the tests.
FLOORS: Mapping[str, str] = {
    "attrs": "22.2.0",
    "pyyaml": "5.1",
    "requests": "2.25.0",
    "slugid": "2.0.0",
    "taskcluster": "64.1.1",
    "taskcluster-urls": "12.1.0",
    "zstandard": "0.15.0",
}

_RELEASE = re.compile(r"\d+(?:\.\d+)*")


def _release(version: str) -> tuple[int, ...]:
    """The release numbers a version starts with (``64.1.1rc1`` -> ``(64, 1, 1)``), zero-padded."""
    match = _RELEASE.match(version.strip())
    numbers = [int(n) for n in match.group(0).split(".")] if match else [0]
    return tuple(numbers + [0] * (4 - len(numbers)))


#: Distribution name -> module name, where they differ.
_MODULES: Mapping[str, str] = {"pyyaml": "yaml", "taskcluster-urls": "taskcluster_urls"}


def _installed_version(distribution: str, fix: str) -> Optional[str]:
    """The installed version: from the distribution's metadata, else (a copy of
    the module without metadata, as in a vendored tree) from the module's
    ``__version__``; ``None`` when the module imports but says no version."""
    import importlib
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        pass
    try:
        module = importlib.import_module(_MODULES.get(distribution, distribution))
    except ImportError:
        raise DependencyError(
            f"{distribution} is not installed: taskgraph-images needs "
            f"{distribution}>={FLOORS[distribution]} ({fix})"
        ) from None
    version = getattr(module, "__version__", None)
    return version if isinstance(version, str) else None


def require(distribution: str) -> None:
    """Check that the installed ``distribution`` is at least its floor.

    Reads the installed version from the distribution's metadata, without
    importing it; a module without metadata is judged by its ``__version__``,
    and passes when it has none (there is nothing to compare).

    :raises DependencyError: naming the package, the version found and the
        version needed, when it is missing or older than :data:`FLOORS` says.
    """
    floor = FLOORS[distribution]
    fix = f"pip install '{distribution}>={floor}'"
    installed = _installed_version(distribution, fix)
    if installed is not None and _release(installed) < _release(floor):
        raise DependencyError(
            f"{distribution} {installed} is too old: taskgraph-images needs "
            f"{distribution}>={floor} ({fix})"
        )
