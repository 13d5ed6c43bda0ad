"""A private Docker engine for tests: the ``docker_engine`` session fixture.

It starts ``dockerd`` with its own data root, exec root, pid file and unix
socket in a temporary folder (vfs storage, no iptables, no bridge), so
several test runs never collide, and stops it at the end of the session.
Without ``dockerd`` the tests that use it are skipped with the reason, except
when ``CI=true``, where a missing engine fails the run.

Also: ``busybox_repo`` (a copy of ``tests/data/images_e2e`` with the static
busybox put into the image folders that ``COPY`` it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Iterator, Optional

import attrs
import pytest

from taskgraph_images.errors import DockerUnavailableError
from taskgraph_images.images.engine import Engine

__all__ = ["DockerEngine", "busybox_repo", "docker_engine", "require_or_skip"]

DATA = Path(__file__).resolve().parents[1] / "data"
BUSYBOX = "/usr/bin/busybox"


@attrs.frozen
class DockerEngine:
    """The private engine: its ``Engine``, ``DOCKER_HOST`` and an environment with it."""

    engine: Engine
    host: str
    env: dict[str, str]

    def docker(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run the ``docker`` CLI against the private engine."""
        return subprocess.run(
            ["docker", *args], env=self.env, capture_output=True, text=True, check=check,
            timeout=120,
        )

    def run(self, image: str, *command: str) -> str:
        """``docker run --rm --network none IMAGE COMMAND`` and return its output."""
        return self.docker("run", "--rm", "--network", "none", image, *command).stdout


def require_or_skip(reason: str) -> None:
    """Skip with ``reason``, or fail when ``CI=true`` (CI must run the Docker tests)."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def _start(folder: str) -> tuple[subprocess.Popen[bytes], str]:
    sock = os.path.join(folder, "docker.sock")
    log = open(os.path.join(folder, "dockerd.log"), "wb")  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            [
                "dockerd",
                "--data-root", os.path.join(folder, "data"),
                "--exec-root", os.path.join(folder, "exec"),
                "--pidfile", os.path.join(folder, "dockerd.pid"),
                "--storage-driver", "vfs",
                "--iptables=false", "--ip6tables=false", "--bridge=none",
                "--host", f"unix://{sock}",
            ],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    finally:
        log.close()
    return proc, f"unix://{sock}"


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _log_tail(folder: str) -> str:
    try:
        with open(os.path.join(folder, "dockerd.log"), encoding="utf-8", errors="replace") as f:
            return " | ".join(f.read().splitlines()[-5:])
    except OSError:
        return ""


@pytest.fixture(scope="session")
def docker_engine() -> Iterator[DockerEngine]:
    """Start a private ``dockerd`` for the session; yield a :class:`DockerEngine`."""
    if shutil.which("dockerd") is None:
        require_or_skip("dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        require_or_skip("dockerd needs root to run")
    # Short path: unix socket paths are limited to 108 bytes.
    folder = tempfile.mkdtemp(prefix="tgi-dockerd-")
    proc, host = _start(folder)
    engine = Engine(host, timeout=300)
    error: Optional[Exception] = None
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                engine.ping()
                break
            except DockerUnavailableError as e:
                error = e
            if proc.poll() is not None or time.monotonic() > deadline:
                _stop(proc)
                require_or_skip(f"dockerd did not start ({error}): {_log_tail(folder)}")
            time.sleep(0.2)
        env = dict(os.environ, DOCKER_HOST=host)
        yield DockerEngine(engine, host, env)
    finally:
        _stop(proc)
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def busybox_repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A repository copied from ``tests/data/images_e2e`` with busybox in ``base/``."""
    if not os.path.exists(BUSYBOX):
        require_or_skip(f"{BUSYBOX} is missing (apt-get install busybox-static)")
    root = tmp_path_factory.mktemp("repo") / "repo"
    shutil.copytree(DATA / "images_e2e", root, symlinks=True)
    shutil.copy(BUSYBOX, root / "taskcluster" / "docker" / "base" / "busybox")
    (root / ".git").mkdir()
    return root
