"""Whether this test run is the floors run: every runtime dependency at the floor
``tests/floors.txt`` pins (``tox -e floors`` and ``.ci/run`` set
``PIP_CONSTRAINT`` to that file, and install the ``test-tools`` extra, without
the taskcluster-taskgraph peer, which itself needs newer dependencies)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["FLOORS_FILE", "is_floors_run"]

FLOORS_FILE = Path(__file__).resolve().parents[1] / "floors.txt"


def is_floors_run() -> bool:
    """Return True when ``PIP_CONSTRAINT`` names ``tests/floors.txt``."""
    return any(Path(item).resolve() == FLOORS_FILE
               for item in (os.environ.get("PIP_CONSTRAINT") or "").split())
