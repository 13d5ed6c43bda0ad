"""The installed distribution's version, read without importing much."""

from __future__ import annotations

__all__ = ["version"]


def version() -> str:
    """Return the installed version of taskgraph-images, or ``"0+unknown"``."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("taskgraph-images")
    except PackageNotFoundError:
        return "0+unknown"
