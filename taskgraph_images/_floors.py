"""The oldest version of each runtime dependency that taskgraph-images works
with, and the check made where an old one would otherwise fail obscurely.

:data:`FLOORS` is what ``setup.cfg`` declares (``install_requires``) and what
``tests/floors.txt`` pins for the tox env and CI step that run the tests at
the floors; a test holds the three together. How each floor was found is in
``docs/dependencies.rst``.
"""

from __future__ import annotations

import re
from typing import Mapping

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


def require(distribution: str) -> None:
    """Check that the installed ``distribution`` is at least its floor.

    Reads the installed version from the distribution's metadata (no import).

    :raises DependencyError: naming the package, the version found and the
        version needed, when it is missing or older than :data:`FLOORS` says.
    """
    from importlib import metadata

    floor = FLOORS[distribution]
    fix = f"pip install '{distribution}>={floor}'"
    try:
        installed = metadata.version(distribution)
    except metadata.PackageNotFoundError:
        raise DependencyError(
            f"{distribution} is not installed: taskgraph-images needs {distribution}>={floor} "
            f"({fix})"
        ) from None
    if _release(installed) < _release(floor):
        raise DependencyError(
            f"{distribution} {installed} is too old: taskgraph-images needs "
            f"{distribution}>={floor} ({fix})"
        )
