"""The one rule for reading a file or folder a repository names.

Everything in a repository is hostile (see ``docs/security.rst``): a
``VERSION`` may be a symlink to ``/proc/self/environ``, a kind file's
``tasks-from`` may name ``/dev/stdin``, an image folder may be a symlink to
``/etc``. Every file taskgraph-images reads from a repository goes through
:func:`read_repo_file` (and every folder it lists or ships through
:func:`repo_dir`), which hold it to one rule:

* its path, with every symlink resolved, is inside the repository root
  (a symlink that stays inside is followed, one that leaves is refused);
* it is a regular file (a folder for :func:`repo_dir`): never a FIFO,
  socket or device file, which could block a read forever or never end;
* it is at most ``limit`` bytes, checked before and while reading.

Errors name the file by its path under the root and never quote what it holds.
"""

from __future__ import annotations

import os
import stat
from typing import Callable, Optional, Union

from taskgraph_images._redact import escape
from taskgraph_images.errors import TaskgraphImagesError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_DOCKERFILE_BYTES",
    "MAX_SMALL_BYTES",
    "file_kind",
    "inside",
    "read_repo_file",
    "read_repo_text",
    "repo_dir",
    "repo_file",
]

PathLike = Union[str, "os.PathLike[str]"]

#: A one-line value file (``VERSION``, ``REGISTRY``).
MAX_SMALL_BYTES = 4096
#: A YAML file: the build-task config, a kind file, a ``tasks-from`` file.
MAX_CONFIG_BYTES = 4 * 1024 * 1024
#: A Dockerfile (a generated one may be megabytes long).
MAX_DOCKERFILE_BYTES = 32 * 1024 * 1024

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(
    os, "O_NOFOLLOW", 0)


def file_kind(mode: int) -> str:
    """``a folder``, ``a FIFO``, ``a socket``, ``a device file`` or ``a regular file``."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    if stat.S_ISLNK(mode):
        return "a symlink"
    return "a regular file"


def inside(root: str, path: str) -> bool:
    """True when ``path``, symlinks resolved, is ``root`` or below it (``root`` resolved too)."""
    real_root = os.path.realpath(root)
    real = os.path.realpath(path)
    return real == real_root or real.startswith(real_root.rstrip(os.sep) + os.sep)


def _shown(root: str, path: str) -> str:
    rel = os.path.relpath(os.path.abspath(path), os.path.abspath(root))
    shown = (os.path.normpath(path) if rel == ".." or rel.startswith(".." + os.sep)
             else rel.replace(os.sep, "/"))
    return escape(shown)


def _resolve(root: str, path: PathLike, what: str, error: type[TaskgraphImagesError]) -> str:
    """Return ``path`` (relative paths from ``root``) resolved, refused unless inside ``root``."""
    full = os.path.join(root, os.fspath(path))
    if not os.path.lexists(full):
        raise error(f"{what} {_shown(root, full)} does not exist")
    real = os.path.realpath(full)
    if not inside(root, real):
        raise error(f"{what} {_shown(root, full)} leaves the repository "
                    f"(through a symlink or '..'); only what is under the root is read")
    return real


def _resolved(root: PathLike, path: PathLike, what: str, error: type[TaskgraphImagesError],
              is_kind: Callable[[int], bool], noun: str) -> str:
    """The resolved ``path`` under ``root`` when its mode passes ``is_kind``, else ``error``."""
    root_s = os.fspath(root)
    real = _resolve(root_s, path, what, error)
    try:
        mode = os.stat(real).st_mode
    except OSError as e:
        raise error(f"cannot read {what} {_shown(root_s, real)}: {e.strerror}") from e
    if not is_kind(mode):
        raise error(f"{what} {_shown(root_s, os.path.join(root_s, os.fspath(path)))} is "
                    f"{file_kind(mode)}, not {noun}")
    return real


def repo_file(root: PathLike, path: PathLike, what: str,
              error: type[TaskgraphImagesError]) -> str:
    """Return the resolved path of the regular file ``path`` under ``root``, without reading it.

    :raises error: naming ``what`` and the path when the rule does not hold.
    """
    return _resolved(root, path, what, error, stat.S_ISREG, "a regular file")


def repo_dir(root: PathLike, path: PathLike, what: str,
             error: type[TaskgraphImagesError]) -> str:
    """Return the resolved path of the folder ``path`` under ``root``.

    :raises error: when it does not exist, leaves ``root`` or is not a folder.
    """
    return _resolved(root, path, what, error, stat.S_ISDIR, "a folder")


def read_repo_file(root: Optional[PathLike], path: PathLike, what: str,
                   error: type[TaskgraphImagesError], *, limit: int) -> bytes:
    """Read the regular file ``path`` (relative paths from ``root``), at most ``limit`` bytes.

    With ``root`` ``None`` (a file the caller named on the command line, not
    one the repository names) only the size is bounded: a FIFO such as a
    shell's ``<(...)`` stays usable.

    :raises error: naming ``what`` and the path, never the content.
    """
    if root is None:
        root_s = os.path.dirname(os.path.abspath(os.fspath(path))) or "/"
        real = os.path.realpath(os.fspath(path))
        shown = escape(os.fspath(path))
    else:
        root_s = os.fspath(root)
        real = _resolve(root_s, path, what, error)
        shown = _shown(root_s, os.path.join(root_s, os.fspath(path)))
    try:
        fd = os.open(real, _OPEN_FLAGS if root is not None else os.O_RDONLY | os.O_CLOEXEC)
    except OSError as e:
        raise error(f"cannot read {what} {shown}: {e.strerror}") from e
    try:
        st = os.fstat(fd)
        if (root is not None and not stat.S_ISREG(st.st_mode)) or stat.S_ISDIR(st.st_mode):
            raise error(f"{what} {shown} is {file_kind(st.st_mode)}, not a regular file")
        if stat.S_ISREG(st.st_mode) and st.st_size > limit:
            raise error(f"{what} {shown} is {st.st_size} bytes, more than the {limit} allowed")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        size = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise error(f"{what} {shown} is more than the {limit} bytes allowed")
        return b"".join(chunks)
    except OSError as e:
        raise error(f"cannot read {what} {shown}: {e.strerror}") from e
    finally:
        os.close(fd)


def read_repo_text(root: Optional[PathLike], path: PathLike, what: str,
                   error: type[TaskgraphImagesError], *, limit: int) -> str:
    """:func:`read_repo_file`, decoded as UTF-8 (an error naming the file otherwise)."""
    data = read_repo_file(root, path, what, error, limit=limit)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        shown = escape(os.fspath(path))
        raise error(f"{what} {shown} is not UTF-8 text") from None
