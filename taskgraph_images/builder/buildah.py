"""Build images with ``buildah``: no daemon and no privileges, inside a build task.

The commands are made by pure methods of :class:`Buildah` (its own storage
root, the ``vfs`` driver and ``chroot`` isolation, so that it runs in an
unprivileged container whose seccomp profile allows ``unshare``); running
them is apart (:func:`run`, :func:`push_archive`). Images leave buildah
through the ``docker-archive:`` transport (a ``docker save`` tarball), written
to ``/dev/stdout`` and read from the pipe, so memory stays flat whatever the
image's size.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from typing import IO, Callable, Iterator, Mapping, Optional, Sequence

import attrs

from taskgraph_images.errors import ImageBuildError
from taskgraph_images.images.compression import BUFFER

__all__ = ["DIGEST_LABEL", "Buildah", "push_archive", "run"]

#: The label the in-task builder puts on every image it builds: its digest.
DIGEST_LABEL = "org.taskgraph-images.digest"

#: Receives buildah's output, a line at a time.
LineCallback = Callable[[str], None]


@attrs.frozen
class Buildah:
    """How to call buildah: the executable, its storage and its isolation."""

    root: str  # image storage (``--root``)
    runroot: str  # run state (``--runroot``)
    executable: str = "buildah"
    storage_driver: str = "vfs"
    isolation: str = "chroot"

    def _base(self) -> list[str]:
        return [self.executable, "--root", self.root, "--runroot", self.runroot,
                "--storage-driver", self.storage_driver]

    def bud_command(
        self,
        context: str,
        tag: str,
        *,
        build_args: Mapping[str, str] = {},
        labels: Mapping[str, str] = {},
        pull: str = "missing",
    ) -> list[str]:
        """Return the ``buildah bud`` command building ``context`` (a folder) as ``tag``.

        ``pull`` is buildah's ``--pull`` policy: ``missing`` fetches a
        registry ``FROM`` that storage lacks, ``never`` only uses storage.

        >>> Buildah("/s", "/r").bud_command("/c", "x:latest", build_args={"A": "1"})[-8:]
        ['--pull=missing', '--build-arg', 'A=1', '-t', 'x:latest', '-f', '/c/Dockerfile', '/c']
        """
        cmd = [*self._base(), "bud", "--isolation", self.isolation, "--format", "docker",
               "--layers=false", f"--pull={pull}"]
        for key in sorted(build_args):
            cmd += ["--build-arg", f"{key}={build_args[key]}"]
        for key in sorted(labels):
            cmd += ["--label", f"{key}={labels[key]}"]
        return [*cmd, "-t", tag, "-f", os.path.join(context, "Dockerfile"), context]

    def pull_command(self, archive: str) -> list[str]:
        """Return the command importing the ``docker save`` tarball at ``archive``."""
        return [*self._base(), "pull", "--quiet", f"docker-archive:{archive}"]

    def push_command(self, image: str, reference: str) -> list[str]:
        """Return the command writing ``image`` to stdout as a ``docker save`` tarball.

        The tarball names the image ``reference`` (``name:tag``).
        """
        return [*self._base(), "push", "--quiet", "--format", "docker", image,
                f"docker-archive:/dev/stdout:{reference}"]


def _tail(text: str, lines: int = 5) -> str:
    kept = [line.strip() for line in text.splitlines() if line.strip()]
    return " | ".join(kept[-lines:])


def run(cmd: Sequence[str], what: str, *, on_line: Optional[LineCallback] = None) -> str:
    """Run buildah ``cmd`` and return its standard output.

    Its output lines go to ``on_line`` as they come (stderr merged in),
    when given.

    :raises ImageBuildError: naming ``what`` with buildah's last lines, when
        it cannot start or fails.
    """
    try:
        proc = subprocess.Popen(
            list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
    except OSError as e:
        raise ImageBuildError(f"{what}: cannot run {cmd[0]}: {e.strerror or e}") from e
    assert proc.stdout is not None
    kept: list[str] = []
    try:
        for raw in proc.stdout:
            line = raw.decode("utf-8", "replace")
            kept.append(line)
            del kept[:-200]
            if on_line is not None:
                on_line(line)
    except BaseException:
        _finish(proc)
        raise
    proc.stdout.close()
    if proc.wait() != 0:
        raise ImageBuildError(f"{what} failed (exit {proc.returncode}): {_tail(''.join(kept))}")
    return "".join(kept)


def push_archive(
    buildah: Buildah, image: str, reference: str, consume: Callable[[Iterator[bytes]], int]
) -> int:
    """Stream ``image`` out of buildah as a ``docker save`` tarball into ``consume``.

    ``consume`` gets an iterator of chunks read from buildah's stdout pipe and
    returns what it returns (for example :func:`compress_stream`'s size).
    When buildah fails, the iterator raises :class:`ImageBuildError` at the
    end instead of ending, so what ``consume`` wrote is thrown away.
    """
    cmd = buildah.push_command(image, reference)
    with tempfile.TemporaryFile() as errors:
        try:
            proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errors,
                                    stdin=subprocess.DEVNULL)
        except OSError as e:
            raise ImageBuildError(f"saving {image}: cannot run {cmd[0]}: {e.strerror or e}") from e
        assert proc.stdout is not None
        out: IO[bytes] = proc.stdout

        def chunks() -> Iterator[bytes]:
            while True:
                data = out.read(BUFFER)
                if not data:
                    break
                yield data
            if proc.wait() != 0:
                errors.seek(0)
                text = errors.read().decode("utf-8", "replace")
                raise ImageBuildError(
                    f"saving {image} failed (exit {proc.returncode}): {_tail(text)}"
                )

        try:
            return consume(chunks())
        finally:
            _finish(proc)


def _finish(proc: subprocess.Popen[bytes]) -> None:
    """Close the pipe and reap ``proc``, killed if it still runs (its reader stopped)."""
    assert proc.stdout is not None
    proc.stdout.close()
    if proc.poll() is None:
        proc.kill()
    proc.wait()
