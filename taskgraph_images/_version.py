"""The version of taskgraph-images, kept here (setup.cfg reads it from this file).

Reading it needs no ``importlib.metadata`` (whose import alone costs tens of
milliseconds), which keeps ``taskgraph-images --version`` fast.
"""

from __future__ import annotations

__all__ = ["__version__", "version"]

__version__ = "0.1.0"


def version() -> str:
    """Return the version of taskgraph-images."""
    return __version__
