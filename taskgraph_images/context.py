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

import contextlib
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
    # relpath() costs ~10 us a file; slicing the root off is the same for a
    # normalised start below the root (then every entry path extends it).
    prefix = os.path.join(root_s, "")
    plain = os.path.normpath(start) == start and (start == root_s or start.startswith(prefix))
    cut = len(prefix) if plain else 0
    stack = [start]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as e:
            raise ContextError(f"cannot read folder {current}: {e.strerror}") from e
        for entry in entries:
            rel = (entry.path[cut:] if cut else os.path.relpath(entry.path, root_s)).replace(
                os.sep, "/"
            )
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
                    f"({_kind(st.st_mode)}); remove it"
                )
    for f in found:
        if "\n" in f.relpath:
            raise ContextError(
                f"{f.relpath!r} in the {what} has a newline in its path: the context hash's "
                "one-line-per-file format could not tell it from other files; rename it"
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
    flags = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        raise ContextError(f"cannot read {path}: {e.strerror}") from e
    try:
        return sha256_fd(fd, os.fstat(fd).st_size)
    except OSError as e:
        raise ContextError(f"cannot read {path}: {e.strerror}") from e
    finally:
        os.close(fd)


def sha256_fd(fd: int, size: int) -> str:
    """Return the sha256 hexdigest of what remains to read from ``fd``.

    ``size`` is the file's size from ``fstat``: a file smaller than
    :data:`CHUNK` is read with one ``read`` (no read buffer, no second read
    when the read returns exactly ``size`` bytes); larger files stream through
    one reused buffer, so memory stays flat for any size. Reading past
    ``size`` continues to the end of the file, so a file that grows while it
    is read is hashed to wherever its end is then.

    :raises OSError: when reading fails.
    """
    h = hashlib.sha256()
    if size < CHUNK:
        data = os.read(fd, size + 1)
        h.update(data)
        if len(data) == size:
            return h.hexdigest()  # all of it, as fstat said; nothing more to read
        if not data:
            return h.hexdigest()
    elif hasattr(os, "posix_fadvise"):
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
    if not hasattr(os, "readv"):  # pragma: no cover - Windows
        for block in iter(lambda: os.read(fd, CHUNK), b""):
            h.update(block)
        return h.hexdigest()
    buf = bytearray(CHUNK)
    with memoryview(buf) as view:
        while True:
            n = os.readv(fd, (buf,))
            if not n:
                break
            h.update(view[:n])
    return h.hexdigest()


def combine_lines(pairs: Iterable[tuple[str, str]]) -> str:
    """Fold ``(relpath, file hexdigest)`` pairs, already sorted, into the seed hash."""
    outer = hashlib.sha256()
    for relpath, digest in pairs:
        outer.update(b"%s\t/%s\n" % (digest.encode("ascii"), os.fsencode(relpath)))
    return outer.hexdigest()


def _hash_all(files: Sequence[ContextFile], jobs: Optional[int],
              hasher: FileHasher) -> Iterator[str]:
    """Hash every file with ``hasher``, in order, on up to ``jobs`` threads or processes.

    ``hashlib`` releases the GIL while it hashes more than 2 KB, so threads
    share the cores. Threads pull the next file from a shared counter (no
    per-file future or queue). Up to :data:`_SIZED` files are stat'ed first:
    under :data:`_INLINE_BYTES` in all they are hashed on the calling thread,
    else they are handed out largest first so that the threads finish
    together. Longer lists are split between forked worker processes
    (:func:`_hash_in_processes`) when :func:`_can_fork` allows and the hasher
    is :func:`file_sha256`; otherwise they are handed to threads in order (a
    stat per file would cost more than the balance gains). The first error is
    raised once the threads stop.
    """
    count = len(files)
    paths = [f.abspath for f in files]
    if jobs is None:
        jobs = _default_jobs()
    jobs = max(1, min(jobs, count))
    order: Sequence[int] = range(count)
    if jobs > 1 and count <= _SIZED:
        sizes = [_size(p) for p in paths]
        if sum(sizes) < _INLINE_BYTES:
            jobs = 1
        else:
            order = sorted(range(count), key=sizes.__getitem__, reverse=True)
    if jobs <= 1:
        return iter([hasher(p) for p in paths])
    if count > _SIZED and hasher is file_sha256 and _can_fork():
        return iter(_hash_in_processes(paths, jobs))

    import itertools
    import threading

    results: list[str] = [""] * count
    errors: list[BaseException] = []
    turns = itertools.count()  # next() on it is atomic under the GIL

    def work() -> None:
        try:
            for turn in turns:
                if turn >= count or errors:
                    return
                i = order[turn]
                results[i] = hasher(paths[i])
        except BaseException as e:  # handed to the calling thread
            errors.append(e)

    threads = [threading.Thread(target=work, daemon=True) for _ in range(jobs - 1)]
    for t in threads:
        t.start()
    work()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return iter(results)


def _can_fork() -> bool:
    """Whether hashing may fork: Linux, and no other thread whose locks a child could inherit."""
    import sys
    import threading

    return sys.platform.startswith("linux") and threading.active_count() == 1


def _hash_in_processes(paths: Sequence[str], jobs: int) -> list[str]:
    """Hash ``paths`` with :func:`file_sha256` in ``jobs`` processes (this one and forks).

    Many small files cost threads more in handing the GIL back and forth than
    they gain, so long lists are split between forked children, which share
    nothing with this process but the list: child ``k`` hashes
    ``paths[k::jobs]`` and writes the hexdigests to a pipe. A child that fails
    in any way has its share hashed again here, which raises the real error.
    """
    import signal

    children: list[tuple[int, int, int]] = []  # (pid, read end, k)
    try:
        for k in range(1, jobs):
            read_end, write_end = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child, which never returns
                code = 1
                try:
                    os.close(read_end)
                    data = "".join(file_sha256(p) for p in paths[k::jobs]).encode("ascii")
                    view = memoryview(data)
                    while view:
                        view = view[os.write(write_end, view):]
                    code = 0
                finally:
                    os._exit(code)
            os.close(write_end)
            children.append((pid, read_end, k))
        results: list[str] = [""] * len(paths)
        results[0::jobs] = [file_sha256(p) for p in paths[0::jobs]]
        while children:
            pid, read_end, k = children[0]
            parts = []
            while True:
                part = os.read(read_end, 1 << 16)
                if not part:
                    break
                parts.append(part)
            os.close(read_end)
            _, status = os.waitpid(pid, 0)
            children.pop(0)
            data = b"".join(parts)
            share = paths[k::jobs]
            if status == 0 and len(data) == 64 * len(share):
                text = data.decode("ascii")
                results[k::jobs] = [text[i : i + 64] for i in range(0, len(text), 64)]
            else:
                results[k::jobs] = [file_sha256(p) for p in share]
        return results
    finally:
        for pid, read_end, _ in children:  # left only when this process failed
            with contextlib.suppress(OSError):
                os.close(read_end)
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)


#: Lists up to this many files are stat'ed to balance the threads.
_SIZED = 2048
#: Contexts smaller than this (in bytes) are hashed without threads.
_INLINE_BYTES = 1 << 20


def _size(path: str) -> int:
    try:
        return os.stat(path).st_size
    except OSError:
        return 0  # the hasher reports the error


def _default_jobs() -> int:
    """The cores this process may run on (at most 8: hashing is memory-bound past that)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


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
    (default: one per core, up to eight; none for contexts under 1 MB); ``hasher`` may be a
    cache of file hashes from earlier runs.

    :raises ContextError: see :func:`list_tree`.
    """
    image_path = image_path.strip("/")
    return hash_files(list_context(root, image_path), jobs=jobs, hasher=hasher)


# -- writing a context tarball (write_context) -----------------------------------

from typing import IO, TYPE_CHECKING  # noqa: E402

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images._tarball import Member
    from taskgraph_images.catalog import ImageCatalog

__all__ += ["context_members", "write_context"]

#: Compression of a context tarball, by file suffix.
_COMPRESSIONS = {".tar": "none", ".tar.gz": "gzip", ".tgz": "gzip", ".tar.zst": "zstd"}


def _compression_for(out: object, compression: Optional[str]) -> str:
    if compression is not None:
        value = {"gz": "gzip", "zst": "zstd", "": "none"}.get(compression, compression)
        if value not in ("none", "gzip", "zstd"):
            raise ContextError(
                f"unknown compression {compression!r}: use 'none', 'gzip' or 'zstd'"
            )
        return value
    if isinstance(out, (str, os.PathLike)):
        name = os.fspath(out)
        for suffix, value in _COMPRESSIONS.items():
            if name.endswith(suffix):
                return value
        raise ContextError(
            f"cannot tell the compression of {name!r} from its name: "
            "use .tar, .tar.gz or .tar.zst, or pass compression="
        )
    return "none"


def _link_in_context(arcname: str, link: str, top: str) -> bool:
    import posixpath

    if link.startswith("/"):
        return False
    target = posixpath.normpath(posixpath.join(posixpath.dirname(arcname), link))
    if target == ".." or target.startswith("../"):
        return False
    return not top or target == top or target.startswith(top + "/")


def context_members(catalog: ImageCatalog, name: str) -> list[Member]:
    """Return the tar members of image ``name``'s build context (see :func:`write_context`)."""
    from taskgraph_images import _dockerfile
    from taskgraph_images._tarball import Member
    image = catalog[name]
    members: list[Member] = []
    real_folder = os.path.realpath(os.path.join(catalog.root, *image.path.split("/")))
    real_root = os.path.realpath(catalog.root)
    sources = [(f, f.relpath[len(image.path) + 1 :], "", real_folder)
               for f in catalog.context_files(name)]
    included = catalog.include_files(name)
    included_paths = {f.relpath for f in included}
    sources += [(f, f"topsrcdir/{f.relpath}", "topsrcdir", real_root) for f in included]
    for f, arcname, top, real_top in sources:
        if f.link is not None and top:
            # An included symlink stays a link only when what it points at is
            # included too; otherwise the file goes in with the content the
            # digest hashed, instead of a link left dangling in the context.
            real = os.path.realpath(f.abspath)
            target = os.path.relpath(real, real_root).replace(os.sep, "/")
            if _link_in_context(arcname, f.link, top) and target in included_paths:
                members.append(Member(arcname, "symlink", link=f.link))
            else:
                members.append(Member(arcname, "file", source=f.abspath, executable=f.executable))
        elif f.link is not None:
            real = os.path.realpath(f.abspath)
            if not _link_in_context(arcname, f.link, top) or not _within(real, real_top):
                raise ContextError(
                    f"{f.relpath} is a symlink to {f.link!r}, which leaves the build context "
                    f"of image {name!r}; copy the file into the image folder or use # %include"
                )
            members.append(Member(arcname, "symlink", link=f.link))
        elif arcname == "Dockerfile":
            with open(f.abspath, encoding="utf-8") as fh:
                text = fh.read()
            processed = _dockerfile.parse(
                text, source=image.dockerfile, args=dict(image.args)
            ).text
            members.append(Member(arcname, "file", data=processed.encode("utf-8"),
                                  executable=f.executable))
        else:
            members.append(Member(arcname, "file", source=f.abspath, executable=f.executable))
    return members


def write_context(
    catalog: ImageCatalog,
    name: str,
    out: Union[PathLike, IO[bytes]],
    *,
    compression: Optional[str] = None,
) -> None:
    """Write image ``name``'s build context as a tar to ``out``, deterministic to the byte.

    The tar holds the image folder's files at its top level (the
    ``Dockerfile`` with ``# %ARG`` lines applied) and each ``# %include``d
    file under ``topsrcdir/<path from the repository root>``. Members are
    sorted, directories listed, mtimes fixed, owners 0, modes 0644/0755;
    symlinks inside the context are kept as links.

    ``out`` is a path (written atomically; compression from its suffix
    ``.tar``, ``.tar.gz`` or ``.tar.zst`` unless ``compression`` is given) or
    a binary file object (plain tar unless ``compression`` is given).
    ``compression`` is ``"none"``, ``"gzip"`` or ``"zstd"``.

    :raises ContextError: for a symlink leaving the context, a file that is
        not a regular file, or a file that cannot be read.
    :raises CatalogError: for an unknown image.
    """
    from taskgraph_images._atomic import atomic_output
    from taskgraph_images._tarball import write_tar

    kind = _compression_for(out, compression)
    members = context_members(catalog, name)

    def emit(raw: IO[bytes]) -> None:
        if kind == "gzip":
            import gzip

            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
                write_tar(members, gz)  # type: ignore[arg-type]
        elif kind == "zstd":
            import zstandard

            cctx = zstandard.ZstdCompressor(level=3, write_checksum=True)
            with cctx.stream_writer(raw, closefd=False) as zw:
                write_tar(members, zw)
        else:
            write_tar(members, raw)

    try:
        if isinstance(out, (str, os.PathLike)):
            with atomic_output(out) as f:
                emit(f)
        else:
            emit(out)
    except OSError as e:
        target = os.fspath(out) if isinstance(out, (str, os.PathLike)) else "the output"
        raise ContextError(f"cannot write the context of image {name!r} to {target}: {e}") from e
