"""Hashing files fast: sha256 of many files on every core, knowing nothing of images.

:func:`hash_paths` returns the sha256 hexdigest of each file of a list, in
order. Depending on the list it hashes on the calling thread, on threads,
in forked processes, or through the compiled module
(``taskgraph_images._hashing._sha256mb``: 8 or 16 files at once per core in vector
lanes, or 2 with SHA-NI); :func:`engine` picks the fastest for this CPU
(:func:`choose_engine`). The digests never depend on the route.
:func:`file_sha256` is the one-file form and the default :data:`FileHasher`.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from typing import (
    AbstractSet,
    Callable,
    Iterable,
    Mapping,
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
    "CALIBRATION_FILE",
    "CHUNK",
    "LANES_MARGIN",
    "SHA_NI",
    "SIMD_ENV",
    "FileHasher",
    "HashingEngine",
    "LaneKernel",
    "Rates",
    "calibrated_rates",
    "calibration_path",
    "choose_engine",
    "cpu_flags",
    "engine",
    "file_sha256",
    "hash_paths",
    "lane_kernel",
    "load_rates",
    "machine_key",
    "measure_rates",
    "save_rates",
    "sha256_fd",
    "user_cache_folder",
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
        width = engine().width
        kernel = _compiled() if width else None
        if kernel is not None:
            return _hash_in_lanes(kernel, paths, jobs, width)
    return _hash_one_by_one(paths, jobs, hasher)


#: The environment variable that forces an engine: ``0`` hashlib, ``1`` the
#: multi-buffer kernel; unset, empty or ``auto``: :func:`choose_engine` decides.
SIMD_ENV = "TASKGRAPH_IMAGES_SIMD"

#: The CPU features the choice depends on, spelled as ``/proc/cpuinfo`` spells them.
SHA_NI, AVX2, AVX512 = "sha_ni", "avx2", "avx512f"


@attrs.frozen
class HashingEngine:
    """The code that hashes files on this machine, and why.

    ``width`` is a kernel of the compiled module, by its lane count (16:
    AVX-512 lanes, 8: AVX2 lanes, 2: two SHA-NI chains), or 0: :mod:`hashlib`,
    one file per call.
    """

    width: int
    reason: str

    def describe(self) -> str:
        """One line for ``-v`` and the benchmark: what hashes the files, and why."""
        return f"{_ENGINE_NAMES[self.width]} ({self.reason})"


_ENGINE_NAMES = {
    0: "hashlib, one file per call",
    2: "the SHA-NI kernel, 2 files at once per core",
    8: "the multi-buffer kernel, 8 files at once per core (AVX2)",
    16: "the multi-buffer kernel, 16 files at once per core (AVX-512)",
}


@attrs.frozen
class Rates:
    """What this machine's kernels hash per second on one core, from memory (bytes)."""

    #: 16 AVX-512 lanes.
    lanes: float
    #: 2 SHA-NI chains.
    sha_ni: float


#: With both SHA-NI and AVX-512, the 16 lanes are chosen only when measured at
#: least this much faster: files end at different times and large ones leave
#: lanes idle, which costs 16 lanes more than 2 chains.
LANES_MARGIN = 1.2


def choose_engine(flags: AbstractSet[str], setting: Optional[str] = None, *,
                  built: bool = True, rates: Optional[Rates] = None) -> HashingEngine:
    """The engine for a CPU with ``flags`` (:data:`SHA_NI`, :data:`AVX2`, :data:`AVX512`).

    ``setting`` is :data:`SIMD_ENV`'s value, ``built`` whether the compiled
    module imports, and ``rates`` its kernels' measured speeds here (used with
    both SHA-NI and AVX-512). The rule, from the runs in ``docs/performance.md``:

    - without SHA-NI, one sha256 chain runs at a few hundred MB/s: the widest
      vector kernel (16 or 8 lanes, 2.3x - 2.8x faster than hashlib);
    - with SHA-NI, one chain runs at ~1.8 GB/s per core and two interleaved
      ones at ~3.4 GB/s (Zen 4), against 1.6 GB/s for 8 AVX2 lanes: the
      SHA-NI kernel. 16 AVX-512 lanes (2.9 GB/s on Zen 4) may do better on
      another CPU: they are taken when ``rates`` says they are
      :data:`LANES_MARGIN` times faster.

    :raises InvalidValueError: when ``setting`` is not ``0``, ``1``, ``auto`` or empty.
    """
    value = (setting or "").strip().lower()
    if value not in ("", "auto", "0", "1"):
        raise InvalidValueError(
            f"{SIMD_ENV}={setting!r}: use 0 (hashlib), 1 (the multi-buffer kernel) or auto")
    vector = 16 if AVX512 in flags else 8 if AVX2 in flags else 0
    if value == "0":
        return HashingEngine(0, f"{SIMD_ENV}=0")
    if not built:
        return HashingEngine(
            0, "the compiled module taskgraph_images._hashing._sha256mb is not built")
    if value == "1":
        forced = vector or (2 if SHA_NI in flags else 0)
        if not forced:
            return HashingEngine(
                0, f"{SIMD_ENV}=1, but this CPU has no {AVX512}, {AVX2} or {SHA_NI}")
        return HashingEngine(forced, f"{SIMD_ENV}=1")
    if SHA_NI not in flags:
        if not vector:
            return HashingEngine(0, f"this CPU has no {AVX512}, {AVX2} or {SHA_NI}")
        return HashingEngine(vector, f"{AVX512 if vector == 16 else AVX2} without {SHA_NI}: "
                             "lanes beat one sha256 chain")
    if vector != 16:
        return HashingEngine(2, f"{SHA_NI}: 2 SHA-NI chains beat "
                             + ("8 AVX2 lanes" if vector else "hashlib's one"))
    if rates is None:
        return HashingEngine(2, f"{SHA_NI} and {AVX512}, not measured here: 2 SHA-NI chains")
    measured = (f"{SHA_NI} and {AVX512}, measured here: 16 lanes {rates.lanes / 1e9:.2f} GB/s, "
                f"2 SHA-NI chains {rates.sha_ni / 1e9:.2f} GB/s")
    return HashingEngine(16 if rates.lanes >= LANES_MARGIN * rates.sha_ni else 2, measured)


def cpu_flags(widths: Iterable[int]) -> frozenset[str]:
    """The flags of :func:`choose_engine` that the compiled module found (its ``widths()``).

    It asks the CPU itself (``cpuid``), as the kernel does for ``/proc/cpuinfo``,
    so the rule sees what the module can run: 16 lanes need ``avx512f`` and
    ``avx512bw``, 8 need ``avx2``, 2 need ``sha_ni``.
    """
    names = {16: AVX512, 8: AVX2, 2: SHA_NI}
    return frozenset(names[w] for w in widths if w in names)


def _compiled() -> Optional[LaneKernel]:
    try:
        from taskgraph_images._hashing import _sha256mb
    except ImportError:
        return None
    kernel: LaneKernel = _sha256mb
    return kernel


def engine() -> HashingEngine:
    """The engine :func:`hash_paths` uses now (this CPU, :data:`SIMD_ENV`).

    With both SHA-NI and AVX-512, the kernels' speeds come from
    :func:`calibrated_rates` (measured once per machine).

    :raises InvalidValueError: when :data:`SIMD_ENV` has a value it does not know.
    """
    setting = os.environ.get(SIMD_ENV)
    kernel = _compiled()
    flags = cpu_flags(kernel.widths()) if kernel is not None else frozenset()
    rates = None
    if kernel is not None and {SHA_NI, AVX512} <= flags and (setting or "").strip().lower() in (
            "", "auto"):
        rates = calibrated_rates(kernel, calibration_path())
    return choose_engine(flags, setting, built=kernel is not None, rates=rates)


# -- calibration: measured once per machine, kept in the user's cache folder -------
#: The calibration file's name, beside the file-hash cache.
CALIBRATION_FILE = "hash-engine.txt"
#: Bumped when the kernels change, so that older measurements are taken again.
_CALIBRATION_VERSION = 1
#: Each trial hashes this many bytes per kernel; the best of the trials counts.
_TRIAL_BYTES = 2 << 20
_TRIALS = 7
#: A calibration file is never read past this size.
_CALIBRATION_MAX = 4096

_measured: dict[tuple[str, str], Rates] = {}


def user_cache_folder(environ: Optional[Mapping[str, str]] = None) -> str:
    """The user's cache folder: ``$XDG_CACHE_HOME`` or ``~/.cache``, then ``taskgraph-images``.

    ``environ`` defaults to :data:`os.environ`; a relative ``XDG_CACHE_HOME``
    is ignored, as the XDG specification says.
    """
    env = os.environ if environ is None else environ
    base = env.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        home = env.get("HOME") or os.path.expanduser("~")
        base = os.path.join(home, ".cache")
    return os.path.join(base, "taskgraph-images")


def calibration_path(environ: Optional[Mapping[str, str]] = None) -> str:
    """The calibration file, in :func:`user_cache_folder`."""
    return os.path.join(user_cache_folder(environ), CALIBRATION_FILE)


def machine_key(widths: Sequence[int], cpuinfo: str = "/proc/cpuinfo") -> str:
    """What a calibration is valid for: the CPU model, the kernels, their version."""
    return f"{_cpu_model(cpuinfo)}; kernels {','.join(map(str, widths))}; v{_CALIBRATION_VERSION}"


@functools.lru_cache(maxsize=4)
def _cpu_model(cpuinfo: str) -> str:
    """The first ``model name`` of ``cpuinfo`` (read once per process)."""
    try:
        with open(cpuinfo, "rb") as f:
            head = f.read(1024).decode("utf-8", "replace")  # the first CPU's first lines
    except OSError:
        return "unknown CPU"
    for line in head.splitlines():
        if line.startswith("model name") and ":" in line:
            return " ".join(line.split(":", 1)[1].split())  # no tab or newline in a key
    return "unknown CPU"


def measure_rates(kernel: LaneKernel) -> Rates:
    """Time 16 AVX-512 lanes against 2 SHA-NI chains, from memory (~10 ms).

    The trials alternate between the kernels and the fastest of each counts,
    so that another process taking the core for a moment does not decide.
    """
    import time

    best = {16: 0.0, 2: 0.0}
    for _ in range(_TRIALS):
        for width in best:
            rounds = max(1, _TRIAL_BYTES // (width * 65536))
            start = time.perf_counter()
            kernel.spin(width, rounds)
            took = max(time.perf_counter() - start, 1e-9)
            best[width] = max(best[width], width * rounds * 65536 / took)
    return Rates(lanes=best[16], sha_ni=best[2])


def load_rates(path: str, key: str) -> Optional[Rates]:
    """The rates kept at ``path`` for ``key``; ``None`` when absent, another
    machine's, or not exactly what :func:`save_rates` writes (one line: the
    key, then the two rates as Python writes floats, separated by tabs)."""
    try:
        fd = os.open(path, _OPEN_FLAGS | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return None
    try:
        data = os.read(fd, _CALIBRATION_MAX + 1)
    except OSError:
        return None
    finally:
        os.close(fd)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields = text[:-1].split("\t")
    if len(data) > _CALIBRATION_MAX or not text.endswith("\n") or len(fields) != 3:
        return None
    machine, lanes, sha_ni = fields
    if machine != key or not all(map(_is_rate, (lanes, sha_ni))):
        return None
    return Rates(lanes=float(lanes), sha_ni=float(sha_ni))


def _is_rate(text: str) -> bool:
    """Whether ``text`` is a positive finite float as :func:`repr` writes it."""
    try:
        value = float(text)
    except ValueError:
        return False
    return repr(value) == text and 0 < value < float("inf")


def save_rates(path: str, key: str, rates: Rates) -> None:
    """Keep ``rates`` for ``key`` at ``path``, written atomically; nothing when it cannot be."""
    from taskgraph_images._atomic import atomic_output

    text = f"{key}\t{rates.lanes!r}\t{rates.sha_ni!r}\n"
    with contextlib.suppress(OSError):
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        with atomic_output(path) as f:
            f.write(text.encode("utf-8"))


def calibrated_rates(kernel: LaneKernel, path: str) -> Rates:
    """This machine's rates: kept at ``path`` when they are this machine's,
    else measured (:func:`measure_rates`) and kept there; once per process."""
    key = machine_key(kernel.widths())
    known = _measured.get((path, key))
    if known is not None:
        return known
    rates = load_rates(path, key)
    if rates is None:
        rates = measure_rates(kernel)
        save_rates(path, key, rates)
    _measured[(path, key)] = rates
    return rates


class LaneKernel(Protocol):
    """The interface of the compiled module ``taskgraph_images._hashing._sha256mb``."""

    def widths(self) -> tuple[int, ...]: ...

    def hash_files(self, paths: Sequence[str], width: int = 0,
                   limit: int = -1) -> list[Union[str, int, None]]: ...

    def spin(self, width: int, rounds: int) -> None: ...


def lane_kernel() -> Optional[LaneKernel]:
    """The compiled SHA-256 module when :func:`engine` uses it, else ``None``.

    ``None`` when the extension was not built (no compiler at install time,
    or not x86), when the CPU has none of AVX2, AVX-512 and SHA-NI, or when
    the environment sets :data:`SIMD_ENV` to ``0``. The digests are the same
    either way; only the speed differs.
    """
    if engine().width == 0:
        return None
    return _compiled()


#: Files up to this size go through the lanes in the first pass; larger ones
#: wait for the second, which knows their sizes.
_LANE_SMALL = 1 << 20
#: The first pass hands out runs of at least this many files: a smaller
#: context is hashed on the calling thread, where starting a thread would
#: cost more than it saves.
_RUN_MIN = 64


def _hash_in_lanes(kernel: LaneKernel, paths: Sequence[str], jobs: int,
                   width: int) -> list[str]:
    """Hash ``paths`` with the compiled module's ``width``-lane kernel, on ``jobs`` threads.

    The kernel hashes ``width`` files at once on one core (one file per lane),
    reading and hashing with the GIL released, so threads share the cores with
    no per-file Python work. A lane hashes one file at 1/``width`` of the
    kernel's speed, so one large file would keep a whole run waiting:

    1. Files up to :data:`_LANE_SMALL` are hashed in runs of neighbouring
       files; each thread takes the next run until none is left. The kernel
       skips larger files without reading them.
    2. The skipped files are stat'ed. They go through the lanes (largest
       first, dealt round-robin to the threads) when enough of them are alike:
       a file does when at least ``jobs * width / 2`` files are at least half
       its size. Every other one is hashed with :mod:`hashlib`, which is
       faster for a few large files.
    """
    count = len(paths)
    out: list[Union[str, int, None]] = [None] * count
    size = max(_RUN_MIN, -(-count // (8 * jobs)))  # files per run
    runs = [(lo, min(count, lo + size)) for lo in range(0, count, size)]

    def first(run: tuple[int, int]) -> None:
        lo, hi = run
        out[lo:hi] = kernel.hash_files(paths[lo:hi], width=width, limit=_LANE_SMALL)

    _on_threads(first, runs, jobs)
    left = [i for i in range(count) if out[i] is None]
    if left:
        sizes = {i: _size(paths[i]) for i in left}
        left.sort(key=sizes.__getitem__, reverse=True)
        enough = max(1, jobs * width // 2)
        bound = 2 * sizes[left[enough - 1]] if len(left) >= enough else -1
        cut = next((k for k, i in enumerate(left) if sizes[i] <= bound), len(left))
        alone, wide = left[:cut], left[cut:]  # largest first: the alike ones are a tail
        shares = [wide[k::jobs] for k in range(jobs) if wide[k::jobs]]

        def second(share: list[int]) -> None:
            hashed = kernel.hash_files([paths[i] for i in share], width=width)
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

