"""Shared fixtures. Fixture modules live beside this file (``tests/`` is on
``sys.path``, see ``pythonpath`` in setup.cfg) and are pulled in here."""

from __future__ import annotations

from dockerd import busybox_repo, docker_engine  # noqa: F401
from tcserver import tc_index, tc_server, tc_server_session  # noqa: F401
