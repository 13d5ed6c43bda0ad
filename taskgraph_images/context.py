"""An image's build context: list its files and compute the seed context hash.

The context hash is the one the seed README describes and the 2016 decision
task computed, bit for bit::

    outer = sha256()
    for path in sorted(every file below root/image_path):   # by path bytes
        outer.update(f"{sha256(file bytes).hexdigest()}\\t/{path relative to root}\\n")
    context_hash = outer.hexdigest()

Listing (which files, and which are refused) is kept apart from hashing, and
both apart from writing a tarball, so each can be tested on its own.
"""

from __future__ import annotations

import hashlib
import os
import stat
from typing import Callable, Iterable, Iterator, NamedTuple, Optional, Sequence, Union

from taskgraph_images.errors import ContextError

__all__ = [
    "ContextFile",
    "FileHasher",
    "combine_lines",
    "file_sha256",
    "hash_context",
    "hash_files",
    "list_context",
    "list_tree",
]

PathLike = Union[str, "os.PathLike[str]"]

#: Maps a file's path to its sha256 hexdigest (:func:`file_sha256`, or a cache).
FileHasher = Callable[[str], str]

#: Read size for streaming a file through sha256.
CHUNK = 1 << 20


class ContextFile(NamedTuple):
    """One file of a context, as the hash and the tarball see it."""

    relpath: str  # relative to the repository root, '/'-separated
    abspath: str  # where to read it (a symlink's own path; reading follows it)
    link: Optional[str]  # the symlink's target as written, when it is a symlink
    executable: bool


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def list_tree(root: PathLike, rel_dir: str, *, what: str = "context") -> list[ContextFile]:
    """List every file below ``root/rel_dir`` the way the seed's walk found them.

    Directories are walked recursively; directories reached through a symlink
    are not descended (they are skipped, as the seed's ``os.walk`` did).
    Symlinks to files are kept (reading follows them) when their target is
    inside ``root``. The result is sorted by path bytes.

    :raises ContextError: for a missing folder, a broken or looping symlink, a
        symlink to a place outside ``root``, a FIFO, socket or device file, or
        an unreadable folder.
    """
    root_s = os.path.abspath(os.fspath(root))
    real_root = os.path.realpath(root_s)
    start = os.path.join(root_s, *rel_dir.split("/")) if rel_dir else root_s
    if not os.path.isdir(start):
        raise ContextError(f"{what} folder {rel_dir!r} does not exist under {root_s}")
    found: list[ContextFile] = []
    stack = [start]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as e:
            raise ContextError(f"cannot read folder {current}: {e.strerror}") from e
        for entry in entries:
            rel = os.path.relpath(entry.path, root_s).replace(os.sep, "/")
            try:
                st = entry.stat(follow_symlinks=False)
                if stat.S_ISLNK(st.st_mode):
                    found.extend(_symlink(entry.path, rel, real_root, stack))
                    continue
            except OSError as e:
                raise ContextError(f"cannot stat {rel} in the {what}: {e.strerror}") from e
            if stat.S_ISDIR(st.st_mode):
                stack.append(entry.path)
            elif stat.S_ISREG(st.st_mode):
                found.append(ContextFile(rel, entry.path, None, bool(st.st_mode & 0o111)))
            else:
                raise ContextError(
                    f"{rel} in the {what} is not a regular file "
                    f"({_kind(st.st_mode)}); remove it from the image folder"
                )
    found.sort(key=lambda f: os.fsencode(f.relpath))
    return found


def _symlink(path: str, rel: str, real_root: str, stack: list[str]) -> list[ContextFile]:
    target = os.readlink(path)
    real = os.path.realpath(path)
    if not _within(real, real_root):
        raise ContextError(
            f"{rel} is a symlink to {target!r}, outside the repository; "
            "refusing to hash or ship a file from outside it"
        )
    try:
        st = os.stat(path)
    except OSError as e:
        raise ContextError(f"{rel} is a broken symlink (to {target!r}): {e.strerror}") from e
    if stat.S_ISDIR(st.st_mode):
        return []  # the seed's walk does not descend symlinked directories
    if not stat.S_ISREG(st.st_mode):
        raise ContextError(f"{rel} is a symlink to a {_kind(st.st_mode)}, not a regular file")
    return [ContextFile(rel, path, target, bool(st.st_mode & 0o111))]


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "not a regular file"


def list_context(root: PathLike, image_path: str) -> list[ContextFile]:
    """List the files of the image folder ``image_path`` (relative to ``root``)."""
    return list_tree(root, image_path, what="context")


def file_sha256(path: str) -> str:
    """Return the sha256 hexdigest of the file at ``path``, read in chunks.

    :raises ContextError: when the file cannot be read.
    """
    h = hashlib.sha256()
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise ContextError(f"cannot read {path}: {e.strerror}") from e
    try:
        while True:
            block = os.read(fd, CHUNK)
            if not block:
                break
            h.update(block)
    except OSError as e:
        raise ContextError(f"cannot read {path}: {e.strerror}") from e
    finally:
        os.close(fd)
    return h.hexdigest()


def combine_lines(pairs: Iterable[tuple[str, str]]) -> str:
    """Fold ``(relpath, file hexdigest)`` pairs, already sorted, into the seed hash."""
    outer = hashlib.sha256()
    for relpath, digest in pairs:
        outer.update(b"%s\t/%s\n" % (digest.encode("ascii"), os.fsencode(relpath)))
    return outer.hexdigest()


def _hash_all(files: Sequence[ContextFile], jobs: Optional[int],
              hasher: FileHasher) -> Iterator[str]:
    if jobs is None:
        jobs = min(4, os.cpu_count() or 1)
        # Threads pay off once there is real hashing to share between cores.
        if len(files) < 8:
            jobs = 1
    if jobs <= 1:
        for f in files:
            yield hasher(f.abspath)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        yield from pool.map(hasher, (f.abspath for f in files))


def hash_files(files: Sequence[ContextFile], *, jobs: Optional[int] = None,
               hasher: FileHasher = file_sha256) -> str:
    """Return the seed hash of ``files`` (sorted as :func:`list_tree` sorts them)."""
    return combine_lines(zip((f.relpath for f in files), _hash_all(files, jobs, hasher)))


def hash_context(
    root: PathLike,
    image_path: str,
    *,
    jobs: Optional[int] = None,
    hasher: FileHasher = file_sha256,
) -> str:
    """Return the seed context hash of the folder ``image_path`` below ``root``.

    ``image_path`` is relative to ``root`` and ``/``-separated (for example
    ``taskcluster/docker/base``). Files are hashed on ``jobs`` threads
    (default: up to four, fewer for tiny contexts); ``hasher`` may be a
    cache of file hashes from earlier runs.

    :raises ContextError: see :func:`list_tree`.
    """
    image_path = image_path.strip("/")
    return hash_files(list_context(root, image_path), jobs=jobs, hasher=hasher)
