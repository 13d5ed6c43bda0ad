"""Shared fixtures. Fixture modules live beside this file (``tests/`` is on
``sys.path``, see ``pythonpath`` in setup.cfg) and are pulled in here."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from dockerd import busybox_repo, docker_engine  # noqa: F401
from tcserver import tc_index, tc_server, tc_server_session  # noqa: F401

SHARED = Path(__file__).resolve().parent.parent.parent / "shared"


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The read-only ``shared/`` folder beside the checkout (Taskcluster schemas)."""
    env = os.environ.get("TASKGRAPH_IMAGES_SHARED")
    path = Path(env) if env else SHARED
    if not (path / "taskcluster").is_dir():
        pytest.fail(f"shared/ with the Taskcluster schemas not found at {path}")
    return path
