"""Hashing files fast: sha256 of many files on every core, knowing nothing of images.

:func:`hash_paths` returns the sha256 hexdigest of each file of a list, in
order. Depending on the list it hashes on the calling thread, on threads,
in forked processes, or through the compiled module
(``taskgraph_images._sha256mb``: 8 or 16 files at once per core, or one at a
time with SHA-NI); :func:`engine` picks the fastest for this CPU
(:func:`choose_engine`). The digests never depend on the route.
:func:`file_sha256` is the one-file form and the default :data:`FileHasher`.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from typing import (
    AbstractSet,
    Callable,
    Iterable,
    Optional,
    Protocol,
    Sequence,
    TypeVar,
    Union,
)

import attrs

from taskgraph_images.errors import ContextError, InvalidValueError

__all__ = [
    "AVX2",
    "AVX512",
    "CHUNK",
    "SHA_NI",
    "SIMD_ENV",
    "Engine",
    "FileHasher",
    "LaneKernel",
    "choose_engine",
    "cpu_flags",
    "engine",
    "file_sha256",
    "hash_paths",
    "lane_kernel",
    "sha256_fd",
]

#: Maps a file's path to its sha256 hexdigest (:func:`file_sha256`, or a cache).
FileHasher = Callable[[str], str]

#: Read size for streaming a file through sha256.
CHUNK = 1 << 20


def file_sha256(path: str) -> str:
    """Return the sha256 hexdigest of the file at ``path``, read in chunks.

    :raises ContextError: when the file cannot be read.
    """
    return _sha256_files((path,))[0]


#: How every context file is opened for reading.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _sha256_files(paths: Iterable[str]) -> list[str]:
    """Return :func:`file_sha256` of each path, in one loop (no call per file to it).

    :raises ContextError: naming the first file that cannot be read.
    """
    digests = []
    for path in paths:
        try:
            fd = os.open(path, _OPEN_FLAGS)
        except OSError as e:
            raise ContextError(f"cannot read {path}: {e.strerror}") from e
        try:
            digests.append(sha256_fd(fd, os.fstat(fd).st_size))
        except OSError as e:
            raise ContextError(f"cannot read {path}: {e.strerror}") from e
        finally:
            os.close(fd)
    return digests


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



def hash_paths(paths: Sequence[str], *, jobs: Optional[int] = None,
               hasher: FileHasher = file_sha256) -> list[str]:
    """Return ``hasher(path)`` for every path, in order, on up to ``jobs`` cores.

    ``jobs`` defaults to one per core (at most eight). With the default
    hasher, the files go where this machine's :func:`engine` says: the
    compiled module (:func:`_hash_in_lanes`) or hashlib one file per call
    (:func:`_hash_one_by_one`, also the route of any other hasher).

    :raises ContextError: when a file cannot be read.
    """
    if jobs is None:
        jobs = _default_jobs()
    jobs = max(1, min(jobs, len(paths)))
    if hasher is file_sha256 and paths:
        chosen = engine()
        kernel = _compiled() if chosen.small else None
        if kernel is not None:
            return _hash_in_lanes(kernel, paths, jobs, chosen.small, chosen.large)
    return _hash_one_by_one(paths, jobs, hasher)


#: The environment variable that forces an engine: ``0`` hashlib, ``1`` the
#: multi-buffer kernel; unset, empty or ``auto``: :func:`choose_engine` decides.
SIMD_ENV = "TASKGRAPH_IMAGES_SIMD"

#: The CPU features the choice depends on, spelled as ``/proc/cpuinfo`` spells them.
SHA_NI, AVX2, AVX512 = "sha_ni", "avx2", "avx512f"


@attrs.frozen
class Engine:
    """Which code hashes which files on this machine, and why.

    ``small`` hashes the files up to :data:`_LANE_SMALL`, ``large`` the larger
    ones: a lane count of the compiled module (16: AVX-512, 8: AVX2, 1: its
    per-file loop with the SHA extensions, one file at a time) or 0 for
    :mod:`hashlib`, one file per call. ``large`` lanes take only large files
    that are enough alike (see :func:`_hash_in_lanes`); the rest go to hashlib.
    """

    small: int
    large: int
    reason: str

    def describe(self) -> str:
        """One line for ``-v`` and the benchmark: what hashes which files, and why."""
        small, large = _ENGINE_NAMES[self.small], _ENGINE_NAMES[self.large]
        what = (f"{small} for every file" if small == large else
                f"{small} for files up to 1 MiB, {large} for larger ones")
        return f"{what} ({self.reason})"


_ENGINE_NAMES = {
    0: "hashlib",
    1: "the compiled loop with SHA-NI",
    8: "the multi-buffer kernel (8 lanes, AVX2)",
    16: "the multi-buffer kernel (16 lanes, AVX-512)",
}


def choose_engine(flags: AbstractSet[str], setting: Optional[str] = None, *,
                  built: bool = True) -> Engine:
    """The engine for a CPU with ``flags`` (:data:`SHA_NI`, :data:`AVX2`, :data:`AVX512`).

    ``setting`` is :data:`SIMD_ENV`'s value; ``built`` whether the compiled
    module imports. The rule, from the runs in ``docs/performance.md``:

    - without SHA-NI, one sha256 chain runs at a few hundred MB/s, and 8 or 16
      lanes are 2.3x - 2.8x faster: the kernel hashes every file;
    - with SHA-NI, one chain runs at ~1.5 GB/s per core, as fast as 16
      AVX-512 lanes (Zen 4) and 1.8x faster than 8 AVX2 lanes (Zen 3), so
      large files go to hashlib (lanes would also need 16 alike files per
      core to be full); small files stay in the compiled per-file loop, which
      saves Python's work per file: 16 lanes with AVX-512, else that loop
      with SHA-NI.

    :raises InvalidValueError: when ``setting`` is not ``0``, ``1``, ``auto`` or empty.
    """
    value = (setting or "").strip().lower()
    if value not in ("", "auto", "0", "1"):
        raise InvalidValueError(
            f"{SIMD_ENV}={setting!r}: use 0 (hashlib), 1 (the multi-buffer kernel) or auto")
    widest = 16 if AVX512 in flags else 8 if AVX2 in flags else 1 if SHA_NI in flags else 0
    if value == "0":
        return Engine(0, 0, f"{SIMD_ENV}=0")
    if not built:
        return Engine(0, 0, "the compiled module taskgraph_images._sha256mb is not built")
    if value == "1":
        if not widest:
            return Engine(0, 0, f"{SIMD_ENV}=1, but this CPU has no {AVX512}, {AVX2} or "
                          f"{SHA_NI}")
        return Engine(widest, widest, f"{SIMD_ENV}=1")
    if SHA_NI not in flags:
        if not widest:
            return Engine(0, 0, f"this CPU has no {AVX512}, {AVX2} or {SHA_NI}")
        return Engine(widest, widest, f"{AVX512 if widest == 16 else AVX2} without {SHA_NI}: "
                      "lanes beat one sha256 chain")
    if widest == 16:
        return Engine(16, 0, f"{SHA_NI} and {AVX512}: lanes win on small files, "
                      "one SHA-NI chain on large ones")
    return Engine(1, 0, f"{SHA_NI} without {AVX512}: one SHA-NI chain beats 8 AVX2 lanes")


def cpu_flags(widths: Iterable[int]) -> frozenset[str]:
    """The flags of :func:`choose_engine` that the compiled module found (its ``widths()``).

    It asks the CPU itself (``cpuid``), as the kernel does for ``/proc/cpuinfo``,
    so the rule sees what the module can run: 16 lanes need ``avx512f`` and
    ``avx512bw``, 8 need ``avx2``, 1 needs ``sha_ni``.
    """
    names = {16: AVX512, 8: AVX2, 1: SHA_NI}
    return frozenset(names[w] for w in widths if w in names)


def _compiled() -> Optional[LaneKernel]:
    try:
        from taskgraph_images import _sha256mb
    except ImportError:
        return None
    kernel: LaneKernel = _sha256mb
    return kernel


def engine() -> Engine:
    """The engine :func:`hash_paths` uses now (this CPU, :data:`SIMD_ENV`).

    :raises InvalidValueError: when :data:`SIMD_ENV` has a value it does not know.
    """
    kernel = _compiled()
    flags = cpu_flags(kernel.widths()) if kernel is not None else frozenset()
    return choose_engine(flags, os.environ.get(SIMD_ENV), built=kernel is not None)


class LaneKernel(Protocol):
    """The interface of the compiled module ``taskgraph_images._sha256mb``."""

    def widths(self) -> tuple[int, ...]: ...

    def hash_files(self, paths: Sequence[str], width: int = 0,
                   limit: int = -1) -> list[Union[str, int, None]]: ...


def lane_kernel() -> Optional[LaneKernel]:
    """The compiled SHA-256 module when :func:`engine` uses it for any file, else ``None``.

    ``None`` when the extension was not built (no compiler at install time,
    or not x86), when the CPU has none of AVX2, AVX-512 and SHA-NI, or when
    the environment sets :data:`SIMD_ENV` to ``0``. The digests are the same
    either way; only the speed differs.
    """
    if engine().small == 0:
        return None
    return _compiled()


#: Files up to this size go through the lanes in the first pass; larger ones
#: wait for the second, which knows their sizes.
_LANE_SMALL = 1 << 20


def _hash_in_lanes(kernel: LaneKernel, paths: Sequence[str], jobs: int, width: int,
                   large: int) -> list[str]:
    """Hash ``paths`` with the compiled module, on ``jobs`` threads.

    ``width`` and ``large`` are an :class:`Engine`'s lane counts for small
    and large files. The compiled module hashes ``width`` files at once on
    one core (one file per vector lane; 1: one file at a time with SHA-NI),
    reading and hashing with the GIL released, so threads share the cores
    with no per-file Python work. A lane hashes one file at 1/16 of the
    kernel's speed, so one large file would keep a whole run waiting:

    1. Files up to :data:`_LANE_SMALL` are hashed in runs of neighbouring
       files; each thread takes the next run until none is left. The module
       skips larger files without reading them.
    2. The skipped files are stat'ed. With ``large`` lanes, they go through
       the lanes (largest first, dealt round-robin to the threads) when
       enough of them are alike: a file does when at least
       ``jobs * large / 2`` files are at least half its size. Every other one
       (all of them when ``large`` is 0) is hashed with :mod:`hashlib`, which
       is faster for a few large files.
    """
    count = len(paths)
    out: list[Union[str, int, None]] = [None] * count
    size = max(4 * width, -(-count // (8 * jobs)))  # files per run
    runs = [(lo, min(count, lo + size)) for lo in range(0, count, size)]

    def first(run: tuple[int, int]) -> None:
        lo, hi = run
        out[lo:hi] = kernel.hash_files(paths[lo:hi], width=width, limit=_LANE_SMALL)

    _on_threads(first, runs, jobs)
    left = [i for i in range(count) if out[i] is None]
    if left:
        sizes = {i: _size(paths[i]) for i in left}
        left.sort(key=sizes.__getitem__, reverse=True)
        enough = jobs * large // 2
        bound = 2 * sizes[left[enough - 1]] if large and len(left) >= enough else -1
        cut = next((k for k, i in enumerate(left) if sizes[i] <= bound), len(left))
        alone, wide = left[:cut], left[cut:]  # largest first: the alike ones are a tail
        shares = [wide[k::jobs] for k in range(jobs) if wide[k::jobs]]

        def second(share: list[int]) -> None:
            hashed = kernel.hash_files([paths[i] for i in share], width=large)
            for i, digest in zip(share, hashed):
                out[i] = digest

        _on_threads(second, shares, jobs)
        hashed = _hash_one_by_one([paths[i] for i in alone], jobs, file_sha256,
                                  sizes=[sizes[i] for i in alone])
        for i, text in zip(alone, hashed):
            out[i] = text
    digests: list[str] = []
    for path, digest in zip(paths, out):
        if not isinstance(digest, str):  # an errno (None cannot be left here)
            raise ContextError(f"cannot read {path}: {os.strerror(digest or 0)}")
        digests.append(digest)
    return digests


_Item = TypeVar("_Item")


def _on_threads(work: Callable[[_Item], None], items: Sequence[_Item], jobs: int) -> None:
    """Call ``work`` on every item, on up to ``jobs`` threads (this one among
    them), each taking the next item until none is left; re-raise the first
    error once they stop."""
    if jobs <= 1 or len(items) <= 1:
        for item in items:
            work(item)
        return
    import itertools
    import threading

    errors: list[BaseException] = []
    turns = itertools.count()  # next() on it is atomic under the GIL

    def loop() -> None:
        try:
            for turn in turns:
                if turn >= len(items) or errors:
                    return
                work(items[turn])
        except BaseException as e:  # handed to the calling thread
            errors.append(e)

    threads = [threading.Thread(target=loop, daemon=True)
               for _ in range(min(jobs, len(items)) - 1)]
    for t in threads:
        t.start()
    loop()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _hash_one_by_one(paths: Sequence[str], jobs: int, hasher: FileHasher,
                     sizes: Optional[Sequence[int]] = None) -> list[str]:
    """Return ``hasher(path)`` for every path, one file per call, on ``jobs`` threads or processes.

    ``hashlib`` releases the GIL while it hashes more than 2 KB, so threads
    share the cores. Up to :data:`_SIZED` files are stat'ed first: under
    :data:`_INLINE_BYTES` in all they are hashed on the calling thread, else
    they are handed out largest first so that the threads finish together.
    Longer lists are split between forked worker processes
    (:func:`_hash_in_processes`) when :func:`_can_fork` allows and the hasher
    is :func:`file_sha256`; otherwise they are handed to threads in order (a
    stat per file would cost more than the balance gains). ``sizes``, when
    the caller has them, saves those stats. The first error is raised once
    the threads stop.
    """
    count = len(paths)
    jobs = max(1, min(jobs, count))
    order: Sequence[int] = range(count)
    if jobs > 1 and count <= _SIZED:
        if sizes is None:
            sizes = [_size(p) for p in paths]
        if sum(sizes) < _INLINE_BYTES:
            jobs = 1
        else:
            order = sorted(range(count), key=sizes.__getitem__, reverse=True)
    if jobs <= 1:
        return _sha256_files(paths) if hasher is file_sha256 else [hasher(p) for p in paths]
    if count > _SIZED and hasher is file_sha256 and _can_fork():
        return _hash_in_processes(paths, jobs)
    results: list[str] = [""] * count

    def one(i: int) -> None:
        results[i] = hasher(paths[i])

    _on_threads(one, order, jobs)
    return results


def _can_fork() -> bool:
    """Whether hashing may fork: Linux, and no other thread whose locks a child could inherit."""
    import sys
    import threading

    return sys.platform.startswith("linux") and threading.active_count() == 1


def _hash_in_processes(paths: Sequence[str], jobs: int) -> list[str]:
    """Hash ``paths`` with :func:`file_sha256` in ``jobs`` processes (this one and forks).

    Many small files cost threads more in handing the GIL back and forth than
    they gain, so long lists are split between forked children, which share
    nothing with this process but the list. The list is cut into runs of
    neighbouring files (one folder's files are usually read together); each
    run's number waits in a pipe, and every process takes the next number
    from it until it is empty, so a process slowed down by the machine simply
    takes fewer runs. Children write hexdigests into shared memory and mark
    each run done there. A run no child finished (a child failed in any way)
    is hashed again here, which raises the real error.
    """
    import mmap
    import signal

    count = len(paths)
    size = -(-count // _RUNS)  # files per run; at most _RUNS runs
    runs = -(-count // size)
    shared = mmap.mmap(-1, 64 * count + runs)
    read_end, write_end = os.pipe()
    try:
        os.write(write_end, bytes(range(runs)))  # runs <= 255 < PIPE_BUF: one write
    finally:
        os.close(write_end)  # so the pipe reads empty once every run is taken
    children: list[int] = []
    results: list[str] = [""] * count
    try:
        for _ in range(1, jobs):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child, which never returns
                code = 1
                try:
                    for run in iter(lambda: os.read(read_end, 1), b""):
                        r = run[0]
                        share = paths[r * size : (r + 1) * size]
                        data = "".join(_sha256_files(share)).encode("ascii")
                        shared[64 * r * size : 64 * r * size + len(data)] = data
                        shared[64 * count + r] = 1
                    code = 0
                finally:
                    os._exit(code)
            children.append(pid)
        for run in iter(lambda: os.read(read_end, 1), b""):
            r = run[0]
            results[r * size : (r + 1) * size] = _sha256_files(paths[r * size : (r + 1) * size])
        while children:
            os.waitpid(children[0], 0)
            children.pop(0)
        for r in range(runs):
            if results[r * size]:
                continue  # hashed here
            lo, hi = r * size, min(count, (r + 1) * size)
            if shared[64 * count + r] == 1:
                text = shared[64 * lo : 64 * hi].decode("ascii")
                results[lo:hi] = [text[i : i + 64] for i in range(0, len(text), 64)]
            else:
                results[lo:hi] = _sha256_files(paths[lo:hi])
        return results
    finally:
        os.close(read_end)
        for pid in children:  # left only when this process failed
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
        shared.close()


#: Long lists are hashed in up to this many runs (each run's number is one byte).
_RUNS = 255


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

