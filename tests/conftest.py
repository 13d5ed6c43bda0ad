"""Shared fixtures. The fixture and helper modules live in ``tests/support/``
(on ``sys.path``, see ``pythonpath`` in setup.cfg, so a test imports them by
name: ``from tcserver import TCServer``); the fixtures are pulled in here,
and :mod:`threadfaults` is a plugin (its fixture and hook fail a test whose
server or helper threads raised)."""

from __future__ import annotations

import pytest
from dockerd import busybox_repo, docker_engine  # noqa: F401
from tcserver import tc_index, tc_server, tc_server_session  # noqa: F401

# Before a test imports them: the checks these helpers assert explain themselves.
pytest.register_assert_rewrite("clirun", "graphread")

pytest_plugins = ["threadfaults"]


@pytest.fixture(autouse=True, scope="session")
def _own_user_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The user's cache folder (the local index, the file-hash cache, the hash
    engine's calibration) is a folder of the test session's own: the tests
    write nothing into the cache of whoever runs them."""
    import os

    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("user-cache"))
