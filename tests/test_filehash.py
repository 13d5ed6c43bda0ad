"""File hashing (``taskgraph_images._hashing.filehash``): exact, flat in memory, on the right engine.

The fast hashing paths give exactly the seed hash, and keep memory flat. The
reference here is written independently of the library: ``os.walk``,
sorted full paths (bytes), and one ``"{sha256}\\t/{relpath}\\n"`` line per
file into the outer sha256, as the 2016 decision task did it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Sequence, Union

import pytest
import trees
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trees import make_tree

import taskgraph_images._hashing
from taskgraph_images._hashing import filehash
from taskgraph_images._hashing.filehash import (
    AVX2,
    AVX512,
    CHUNK,
    LANES_MARGIN,
    SHA_NI,
    SIMD_ENV,
    HashingEngine,
    Rates,
    calibrated_rates,
    calibration_path,
    choose_engine,
    cpu_flags,
    file_sha256,
    hash_paths,
    lane_kernel,
    load_rates,
    machine_key,
    save_rates,
)
from taskgraph_images.cli import main
from taskgraph_images.context import ContextFile, hash_context, list_context
from taskgraph_images.errors import ContextError, InvalidValueError
from taskgraph_images.keys.seed import hash_files


def independent_seed_hash(root: str, image_path: str) -> str:
    top = os.fsencode(root)
    paths = []
    for dirpath, _dirs, names in os.walk(os.path.join(top, os.fsencode(image_path))):
        paths.extend(os.path.join(dirpath, n) for n in names)
    outer = hashlib.sha256()
    for path in sorted(paths):
        with open(path, "rb") as f:
            digest = hashlib.sha256(f.read()).hexdigest().encode()
        outer.update(digest + b"\t" + path[len(top):] + b"\n")
    return outer.hexdigest()


@pytest.fixture(params=[16, 8, 2, "one by one"])
def hashing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test with each kernel this CPU has, then with hashlib one file at a time."""
    if request.param == "one by one":
        monkeypatch.setenv(SIMD_ENV, "0")
        return "one by one"
    width = int(request.param)
    kernel = lane_kernel()
    if kernel is None or width not in kernel.widths():
        pytest.skip(f"no {width}-lane kernel on this machine")
    monkeypatch.setattr(filehash, "engine", lambda: filehash.HashingEngine(width, "a test"))
    return f"{width} lanes"


_names = st.text(
    alphabet=st.sampled_from([*"ab-_. z", "é", "ß", "日", "\u00a0", "0"]),
    min_size=1,
    max_size=6,
).filter(lambda n: n not in (".", ".."))
_contents = st.one_of(
    st.just(b""),
    st.binary(max_size=300),
    st.integers(min_value=0, max_value=3 * 4096).map(lambda n: bytes(range(256)) * (n // 256)),
)
_trees = st.dictionaries(
    st.lists(_names, min_size=1, max_size=5).map(tuple), _contents, min_size=1, max_size=25
)


def _materialise(base: Path, tree: dict[tuple[str, ...], bytes]) -> int:
    """Write ``tree``; a path that collides with a folder (or the reverse) is skipped."""
    written = 0
    for parts, content in tree.items():
        path = base.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                continue
            path.write_bytes(content)
            written += 1
        except (FileExistsError, NotADirectoryError):
            continue
    return written


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=_trees, jobs=st.sampled_from([None, 1, 2, 5]))
def test_parallel_hash_is_the_seed_hash(hashing: str, tmp_path_factory: pytest.TempPathFactory,
                                        tree: dict[tuple[str, ...], bytes],
                                        jobs: int | None) -> None:
    root = tmp_path_factory.mktemp("repo")
    ctx = root / "taskcluster" / "docker" / "img"
    ctx.mkdir(parents=True)
    (ctx / "Dockerfile").write_bytes(b"FROM x\n")
    _materialise(ctx, tree)
    expected = independent_seed_hash(str(root), "taskcluster/docker/img")
    assert hash_context(root, "taskcluster/docker/img", jobs=jobs) == expected


def test_dash_sorts_before_slash_and_deep_nesting(hashing: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    deep = ctx.joinpath(*[f"d{i}" for i in range(40)])
    deep.mkdir(parents=True)
    (deep / "leaf").write_bytes(b"leaf")
    for rel in ("a-b", "a/b", "a b", "a.b", "a0", "a/b-c/d", "é/x", "日本/y"):
        (ctx / rel).parent.mkdir(parents=True, exist_ok=True)
        (ctx / rel).write_bytes(rel.encode())
    expected = independent_seed_hash(str(tmp_path), "ctx")
    for jobs in (None, 1, 2, 3):
        assert hash_context(tmp_path, "ctx", jobs=jobs) == expected


@pytest.mark.parametrize(
    "size", [0, 1, 2047, 2048, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK + 7]
)
def test_file_sha256_at_buffer_edges(tmp_path: Path, size: int) -> None:
    data = (bytes(range(251)) * (size // 251 + 1))[:size]
    path = tmp_path / "f"
    path.write_bytes(data)
    assert file_sha256(str(path)) == hashlib.sha256(data).hexdigest()


def test_more_files_than_are_sized_keep_their_order(hashing: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    for i in range(2600):  # above the sizing threshold: handed out in order
        d = ctx / f"d{i % 7}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(b"%d" % i * (i % 5))
    expected = independent_seed_hash(str(tmp_path), "ctx")
    assert hash_context(tmp_path, "ctx", jobs=2) == expected
    assert hash_context(tmp_path, "ctx", jobs=1) == expected


def test_large_files_spread_over_threads(hashing: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for i, size in enumerate([3 << 20, 1 << 20, 2 << 20, 100, 0, 5 << 20]):
        (ctx / f"f{i}").write_bytes(bytes([i]) * size)
    expected = independent_seed_hash(str(tmp_path), "ctx")
    assert hash_context(tmp_path, "ctx", jobs=3) == expected


def test_a_worker_error_is_raised_once_and_stops(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for i in range(50):
        (ctx / f"f{i:02d}").write_bytes(b"x" * 40000)
    files = list_context(tmp_path, "ctx")
    seen: list[str] = []

    def flaky(path: str) -> str:
        seen.append(path)
        if path.endswith("f10"):
            raise ContextError(f"cannot read {path}: boom")
        time.sleep(0.001)
        return file_sha256(path)

    with pytest.raises(ContextError, match="boom"):
        hash_files(files, jobs=4, hasher=flaky)
    assert len(seen) < len(files)


def test_a_missing_file_is_a_context_error(hashing: str, tmp_path: Path) -> None:
    files = [ContextFile("gone", str(tmp_path / "gone"), None)] * 3
    with pytest.raises(ContextError, match="cannot read"):
        hash_files(files, jobs=2)


# -- the multi-buffer kernel's share of the work -----------------------------------
def _widths() -> tuple[int, ...]:
    kernel = filehash._compiled()
    return kernel.widths() if kernel is not None else ()


needs_lanes = pytest.mark.skipif(not _widths(), reason="no compiled kernel on this machine")


@pytest.fixture(params=[16, 8, 2])
def lanes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Hash with each kernel this CPU has (the engine's choice set aside)."""
    width = int(request.param)
    if width not in _widths():
        pytest.skip(f"no {width}-lane kernel on this machine")
    monkeypatch.setattr(filehash, "engine", lambda: filehash.HashingEngine(width, "a test"))
    return width


def _hole(path: Path, size: int) -> str:
    with open(path, "wb") as f:
        f.truncate(size)
    return str(path)


def _one_by_one_calls(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Record the path lists handed to hashlib one file at a time."""
    calls: list[list[str]] = []
    real = filehash._hash_one_by_one

    def spy(paths: list[str], jobs: int, hasher: filehash.FileHasher,
            sizes: list[int] | None = None) -> list[str]:
        calls.append(list(paths))
        return real(paths, jobs, hasher, sizes)

    monkeypatch.setattr(filehash, "_hash_one_by_one", spy)
    return calls


def test_a_lone_large_file_is_hashed_with_hashlib(tmp_path: Path, lanes: int,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    small = [str(trees.make_tree(tmp_path, {f"s{i}": b"%d" % i}) / f"s{i}") for i in range(40)]
    large = _hole(tmp_path / "large", 3 << 20)
    calls = _one_by_one_calls(monkeypatch)
    digests = hash_paths([*small, large], jobs=2)
    assert calls == [[large]]
    assert digests[-1] == hashlib.sha256(bytes(3 << 20)).hexdigest()
    assert digests[0] == hashlib.sha256(b"0").hexdigest()


def test_large_files_alike_share_the_lanes(tmp_path: Path, lanes: int,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    sizes = [(2 << 20) + i for i in range(lanes // 2)]  # enough for one thread
    paths = [_hole(tmp_path / f"l{i}", size) for i, size in enumerate(sizes)]
    calls = _one_by_one_calls(monkeypatch)
    assert hash_paths(paths, jobs=1) == [hashlib.sha256(bytes(n)).hexdigest() for n in sizes]
    assert calls == [[]]


@pytest.mark.parametrize("lanes", [16, 8], indirect=True)
def test_a_file_over_twice_the_size_of_its_peers_leaves_the_lanes(
        tmp_path: Path, lanes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [_hole(tmp_path / f"l{i}", 2 << 20) for i in range(lanes // 2)]
    huge = _hole(tmp_path / "huge", (4 << 20) + 1)
    calls = _one_by_one_calls(monkeypatch)
    digests = hash_paths([huge, *paths], jobs=1)
    assert calls == [[huge]]
    assert digests[0] == hashlib.sha256(bytes((4 << 20) + 1)).hexdigest()


def test_a_small_context_is_one_run_on_the_calling_thread(
        tmp_path: Path, lanes: int, monkeypatch: pytest.MonkeyPatch) -> None:
    contents = {f"f{i}": b"%d" % i for i in range(filehash._RUN_MIN + 1)}
    trees.make_tree(tmp_path, contents)
    handed: list[int] = []
    real = filehash._on_threads

    def spy(work: Callable[[Any], None], items: Sequence[Any], jobs: int) -> None:
        handed.append(len(items))
        real(work, items, jobs)

    monkeypatch.setattr(filehash, "_on_threads", spy)
    paths = [str(tmp_path / name) for name in contents]
    assert hash_paths(paths[:-1], jobs=2) == [hashlib.sha256(c).hexdigest()
                                              for c in list(contents.values())[:-1]]
    assert handed == [1]  # one run: no thread is started for it
    handed.clear()
    hash_paths(paths, jobs=2)
    assert handed == [2]


def test_a_file_the_lanes_cannot_open_is_a_context_error_naming_it(tmp_path: Path,
                                                                   lanes: int) -> None:
    paths = [str(trees.make_tree(tmp_path, {f"f{i}": b"x"}) / f"f{i}") for i in range(20)]
    gone = str(tmp_path / "gone")
    with pytest.raises(ContextError, match=f"cannot read {gone}: No such file or directory"):
        hash_paths([*paths[:10], gone, *paths[10:]], jobs=2)


def test_without_the_extension_the_same_hash_comes_from_hashlib(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trees.make_tree(tmp_path, {f"ctx/d{i % 3}/f{i}": b"%d" % i * 500 for i in range(40)})
    expected = independent_seed_hash(str(tmp_path), "ctx")
    monkeypatch.delenv(SIMD_ENV, raising=False)
    monkeypatch.setitem(sys.modules, "taskgraph_images._hashing._sha256mb", None)  # import fails
    monkeypatch.delattr(taskgraph_images._hashing, "_sha256mb", raising=False)
    assert lane_kernel() is None
    assert hash_context(tmp_path, "ctx", jobs=2) == expected


def test_simd_zero_turns_the_kernel_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIMD_ENV, "0")
    assert lane_kernel() is None


@needs_lanes
def test_the_kernel_is_on_unless_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(SIMD_ENV, raising=False)
    assert lane_kernel() is not None
    monkeypatch.setenv(SIMD_ENV, "1")
    assert lane_kernel() is not None


# -- memory: measured in a child (VmHWM starts afresh at exec) --------------------
_CHILD = """
import sys
from taskgraph_images.context import hash_context
print(hash_context(sys.argv[1], sys.argv[2]))
with open("/proc/self/status") as f:
    print([l.split()[1] for l in f if l.startswith("VmHWM:")][0])
"""


def _peak_kb(root: Path, rel: str) -> tuple[str, int, float]:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", _CHILD, str(root), rel],
                          capture_output=True, text=True, check=True)
    digest, peak = done.stdout.split()
    return digest, int(peak), time.perf_counter() - start


needs_proc = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs /proc")


#: sha256 of 4 GiB of zero bytes (computed once with hashlib, to save 12 s a run).
_ZEROS_4G = "8479e43911dc45e89f934fe48d01297e16f51d17aa561d4d1c216b1ae0fcddca"


def _sparse(tmp_path: Path, size: int) -> tuple[Path, str]:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    _hole(ctx / "sparse.img", size)
    (ctx / "small").write_bytes(b"x")
    if size == 4 << 30:
        return ctx, _ZEROS_4G
    digest = hashlib.sha256()
    zeros = bytes(CHUNK)
    for _ in range(size // CHUNK):
        digest.update(zeros)
    return ctx, digest.hexdigest()


@needs_proc
def test_sparse_256mb_file_flat_memory(tmp_path: Path) -> None:
    ctx, sparse_digest = _sparse(tmp_path, 256 << 20)
    digest, peak_kb, _ = _peak_kb(tmp_path, "ctx")
    assert digest == _expected(sparse_digest)
    assert peak_kb < 64 * 1024, f"peak RSS {peak_kb} KB"
    assert file_sha256(str(ctx / "sparse.img")) == sparse_digest


def _expected(sparse_digest: str) -> str:
    """The seed hash of ``ctx`` = {small: b"x", sparse.img: zeros} ("small" sorts first)."""
    outer = hashlib.sha256()
    outer.update(f"{hashlib.sha256(b'x').hexdigest()}\t/ctx/small\n".encode())
    outer.update(f"{sparse_digest}\t/ctx/sparse.img\n".encode())
    return outer.hexdigest()


@needs_proc
@pytest.mark.slow
def test_sparse_4gb_file_flat_memory(tmp_path: Path) -> None:
    # Reads 4 GB of zeros: ~12 s here (sha256 at ~350 MB/s, no SHA-NI).
    _, sparse_digest = _sparse(tmp_path, 4 << 30)
    digest, peak_kb, _ = _peak_kb(tmp_path, "ctx")
    assert digest == _expected(sparse_digest)
    assert peak_kb < 64 * 1024, f"peak RSS {peak_kb} KB"


@needs_proc
@pytest.mark.slow
def test_100000_small_files_finish_with_bounded_memory(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    for a in range(100):
        d = ctx / f"d{a:02d}"
        d.mkdir(parents=True)
        for b in range(1000):
            (d / f"f{b:03d}").write_bytes(b"%d/%d\n" % (a, b))
    digest, peak_kb, seconds = _peak_kb(tmp_path, "ctx")
    assert digest == independent_seed_hash(str(tmp_path), "ctx")
    # The listing holds one small record per file (~0.3 KB); file data never accumulates.
    assert peak_kb < 128 * 1024, f"peak RSS {peak_kb} KB"
    assert seconds < 60


# -- long lists: forked worker processes --------------------------------------------------

_FORKED = r"""
import os, sys
import taskgraph_images
from taskgraph_images import context
from taskgraph_images._hashing import filehash
root, count = sys.argv[1], int(sys.argv[2])
assert filehash._can_fork(), "a fresh interpreter has one thread"
for i in range(count):
    d = os.path.join(root, "img", f"d{i % 7}", f"e{i % 3}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}"), "wb") as f:
        f.write(bytes([i % 251]) * (i % 3000))
print(context.hash_context(root, "img", jobs=3))
"""


def test_a_long_file_list_hashed_in_forked_processes_equals_the_seed(tmp_path: Path) -> None:
    count = 2500  # above the list length where forked workers take over
    out = subprocess.run([sys.executable, "-c", _FORKED, str(tmp_path), str(count)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == independent_seed_hash(str(tmp_path), "img")


_CHILD_FAILS = r"""
import sys
import taskgraph_images
from taskgraph_images._hashing import filehash
from taskgraph_images.errors import ContextError
good = sys.argv[1]
paths = [good] * 9
paths[4] = good + ".missing"   # in the share of child 1 of 3
try:
    filehash._hash_in_processes(paths, 3)
except ContextError as e:
    print("ContextError:", e)
"""


def test_a_failing_child_share_is_hashed_again_here_to_raise_the_real_error(tmp_path: Path) -> None:
    good = tmp_path / "good"
    good.write_bytes(b"x")
    out = subprocess.run([sys.executable, "-c", _CHILD_FAILS, str(good)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.startswith("ContextError: cannot read ") and "good.missing" in out.stdout


_CHILDREN_DIE = r"""
import os, sys
import taskgraph_images
from taskgraph_images._hashing import filehash
parent, real = os.getpid(), filehash._sha256_files
def dies_in_children(paths):
    if os.getpid() != parent:
        os._exit(3)  # a child that vanishes without a word, like one the OOM killer took
    return real(paths)
paths = [os.path.join(sys.argv[1], f"f{i}") for i in range(600)]
for i, p in enumerate(paths):
    with open(p, "wb") as f:
        f.write(b"%d" % i)
filehash._sha256_files = dies_in_children
together = filehash._hash_in_processes(paths, 3)
print(together == [filehash.file_sha256(p) for p in paths])
"""


def test_runs_a_dead_child_left_unfinished_are_hashed_here(tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _CHILDREN_DIE, str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "True"


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="needs Linux /proc")
def test_a_file_whose_size_is_not_reported_is_hashed_whole() -> None:
    from taskgraph_images._hashing.filehash import _sha256_files

    # /proc files report size 0 but have content: the one-read shortcut must not stop there.
    path = "/proc/self/environ"
    with open(path, "rb") as f:
        content = f.read()
    assert content and os.stat(path).st_size == 0
    assert _sha256_files([path]) == [hashlib.sha256(content).hexdigest()]


def test_hashing_does_not_fork_while_other_threads_run() -> None:
    import threading

    from taskgraph_images._hashing.filehash import _can_fork

    stop = threading.Event()
    worker = threading.Thread(target=stop.wait)
    worker.start()
    try:
        assert not _can_fork()
    finally:
        stop.set()
        worker.join()


# -- which engine hashes the files: the fastest for the CPU's features, or the one forced -
# :func:`choose_engine` is a pure rule from the CPU's flags (as ``/proc/cpuinfo``
# spells them) to the kernel that hashes the files; the runs behind it are in
# ``docs/performance.md``. Only with both SHA-NI and AVX-512 does it need the
# kernels' speeds, measured once per machine and kept in the user's cache
# folder. ``TASKGRAPH_IMAGES_SIMD`` forces either engine, and ``-v`` says which
# one ran and why.


HASHLIB, SHA_NI_KERNEL = 0, 2

#: CPU flags -> the kernel, with no setting and nothing measured.
RULE = [
    # no SHA-NI: one chain is slow, the widest vector lanes win
    ({AVX512, AVX2}, 16),
    ({AVX2}, 8),
    ({AVX512}, 16),
    # SHA-NI: two interleaved chains beat AVX2 lanes and hashlib's one chain
    ({SHA_NI, AVX2}, SHA_NI_KERNEL),
    ({SHA_NI}, SHA_NI_KERNEL),
    ({SHA_NI, AVX512, AVX2}, SHA_NI_KERNEL),  # until measured: see below
    # nothing the compiled module can use
    (set(), HASHLIB),
]


@pytest.mark.parametrize(("flags", "width"), RULE)
def test_the_rule_by_cpu_flags(flags: set[str], width: int) -> None:
    assert choose_engine(frozenset(flags)).width == width


GB = 1e9
#: Measured speeds with both SHA-NI and AVX-512 -> the kernel.
MEASURED = [
    (Rates(lanes=2.87 * GB, sha_ni=3.42 * GB), SHA_NI_KERNEL),  # Zen 4
    (Rates(lanes=LANES_MARGIN * 2.5e9, sha_ni=2.5e9), 16),  # exactly the margin
    (Rates(lanes=3.5 * GB, sha_ni=3 * GB), SHA_NI_KERNEL),  # faster, not by the margin
    (Rates(lanes=5 * GB, sha_ni=2 * GB), 16),
]


@pytest.mark.parametrize(("rates", "width"), MEASURED)
def test_with_sha_ni_and_avx512_the_measured_speeds_decide(rates: Rates, width: int) -> None:
    assert choose_engine(frozenset({SHA_NI, AVX512, AVX2}), rates=rates).width == width


@pytest.mark.parametrize("flags", [{SHA_NI, AVX2}, {AVX512}, {AVX2}, set()])
def test_measured_speeds_matter_only_with_sha_ni_and_avx512(flags: set[str]) -> None:
    rates = Rates(lanes=9 * GB, sha_ni=1 * GB)
    assert choose_engine(frozenset(flags), rates=rates) == choose_engine(frozenset(flags))


#: CPU flags -> what TASKGRAPH_IMAGES_SIMD=1 forces: the widest vector kernel.
FORCED_ON = [
    ({SHA_NI, AVX512, AVX2}, 16),
    ({SHA_NI, AVX2}, 8),
    ({AVX2}, 8),
    ({SHA_NI}, SHA_NI_KERNEL),  # no vector lanes: the compiled module's one kernel
    (set(), HASHLIB),
]


@pytest.mark.parametrize(("flags", "width"), FORCED_ON)
def test_simd_1_forces_the_kernel(flags: set[str], width: int) -> None:
    rates = Rates(lanes=1 * GB, sha_ni=9 * GB)  # not asked
    assert choose_engine(frozenset(flags), "1", rates=rates).width == width


@pytest.mark.parametrize("flags", [flags for flags, _ in RULE])
def test_simd_0_forces_hashlib_whatever_the_cpu(flags: set[str]) -> None:
    assert choose_engine(frozenset(flags), "0") == HashingEngine(0, "TASKGRAPH_IMAGES_SIMD=0")


@pytest.mark.parametrize("setting", [None, "", "auto", " AUTO "])
def test_unset_empty_or_auto_is_the_rule(setting: str | None) -> None:
    flags = frozenset({SHA_NI, AVX2})
    assert choose_engine(flags, setting) == choose_engine(flags)


@pytest.mark.parametrize("setting", ["yes", "2", "off", "hashlib"])
def test_an_unknown_setting_is_refused_naming_it(setting: str) -> None:
    with pytest.raises(InvalidValueError, match=f"TASKGRAPH_IMAGES_SIMD='{setting}': use 0"):
        choose_engine(frozenset({AVX2}), setting)


@pytest.mark.parametrize("setting", [None, "1"])
def test_without_the_compiled_module_it_is_hashlib(setting: str | None) -> None:
    chosen = choose_engine(frozenset({SHA_NI, AVX512, AVX2}), setting, built=False)
    assert chosen == HashingEngine(
        HASHLIB, "the compiled module taskgraph_images._hashing._sha256mb is not built")


#: Flags, setting and rates -> the reason given.
REASONS = [
    ({AVX512, AVX2}, None, None, "avx512f without sha_ni: lanes beat one sha256 chain"),
    ({AVX2}, None, None, "avx2 without sha_ni: lanes beat one sha256 chain"),
    ({SHA_NI, AVX2}, None, None, "sha_ni: 2 SHA-NI chains beat 8 AVX2 lanes"),
    ({SHA_NI}, None, None, "sha_ni: 2 SHA-NI chains beat hashlib's one"),
    ({SHA_NI, AVX512}, None, None, "sha_ni and avx512f, not measured here: 2 SHA-NI chains"),
    ({SHA_NI, AVX512}, None, Rates(lanes=2.874e9, sha_ni=3.416e9),
     "sha_ni and avx512f, measured here: 16 lanes 2.87 GB/s, 2 SHA-NI chains 3.42 GB/s"),
    (set(), None, None, "this CPU has no avx512f, avx2 or sha_ni"),
    ({SHA_NI, AVX2}, "1", None, "TASKGRAPH_IMAGES_SIMD=1"),
    (set(), "1", None, "TASKGRAPH_IMAGES_SIMD=1, but this CPU has no avx512f, avx2 or sha_ni"),
    ({AVX2}, "0", None, "TASKGRAPH_IMAGES_SIMD=0"),
]


@pytest.mark.parametrize(("flags", "setting", "rates", "reason"), REASONS)
def test_the_reason_names_the_flags_the_speeds_or_the_setting(
        flags: set[str], setting: str | None, rates: Rates | None, reason: str) -> None:
    assert choose_engine(frozenset(flags), setting, rates=rates).reason == reason


#: HashingEngine -> its one-line description.
DESCRIPTIONS = [
    (HashingEngine(16, "why"),
     "the multi-buffer kernel, 16 files at once per core (AVX-512) (why)"),
    (HashingEngine(8, "why"), "the multi-buffer kernel, 8 files at once per core (AVX2) (why)"),
    (HashingEngine(2, "why"), "the SHA-NI kernel, 2 files at once per core (why)"),
    (HashingEngine(0, "why"), "hashlib, one file per call (why)"),
]


@pytest.mark.parametrize(("chosen", "text"), DESCRIPTIONS)
def test_the_description_says_what_hashes_and_why(chosen: HashingEngine, text: str) -> None:
    assert chosen.describe() == text


@pytest.mark.parametrize(("widths", "flags"), [
    ((16, 8, 2), {AVX512, AVX2, SHA_NI}),
    ((8,), {AVX2}),
    ((2,), {SHA_NI}),
    ((), set()),
])
def test_the_flags_come_from_what_the_compiled_module_runs(widths: tuple[int, ...],
                                                           flags: set[str]) -> None:
    assert cpu_flags(widths) == flags


# -- the calibration file ------------------------------------------------------------
class FakeKernel:
    """Kernels of a machine with SHA-NI and AVX-512 that count their timing runs."""

    def __init__(self) -> None:
        self.spins: list[int] = []

    def widths(self) -> tuple[int, ...]:
        return (16, 8, 2)

    def hash_files(self, paths: Sequence[str], width: int = 0,
                   limit: int = -1) -> list[Union[str, int, None]]:
        raise AssertionError("calibration reads no file")

    def spin(self, width: int, rounds: int) -> None:
        self.spins.append(width)


KEY = machine_key((16, 8, 2))
ZEN4 = Rates(lanes=2.87e9, sha_ni=3.42e9)


@pytest.fixture(autouse=True)
def _fresh_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test starts with nothing measured in this process."""
    monkeypatch.setattr(filehash, "_measured", {})


def test_the_rates_are_kept_and_read_back(tmp_path: Path) -> None:
    path = str(tmp_path / "taskgraph-images" / "hash-engine.txt")
    save_rates(path, KEY, ZEN4)
    assert Path(path).read_text() == f"{KEY}\t2870000000.0\t3420000000.0\n"
    assert load_rates(path, KEY) == ZEN4
    assert [p.name for p in (tmp_path / "taskgraph-images").iterdir()] == ["hash-engine.txt"]


def test_absent_rates_are_measured_once_and_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "hash-engine.txt")
    kernel = FakeKernel()
    first = calibrated_rates(kernel, path)
    assert sorted(set(kernel.spins)) == [2, 16]  # both kernels timed
    assert load_rates(path, KEY) == first
    timed = len(kernel.spins)
    assert calibrated_rates(kernel, path) == first
    filehash._measured.clear()  # another process: reads the file, times nothing
    assert calibrated_rates(kernel, path) == first
    assert len(kernel.spins) == timed


CORRUPT = [
    b"",
    b"\n",
    b"%s\t1000000000.0\n",  # a rate missing
    b"%s\t1000000000.0\t2000000000.0\t3.0\n",  # a field too many
    b"%s\t1000000000.0\t2000000000.0",  # no end of line
    b"%s\t1000000000.0\t2000000000.0\n\n",  # a second line
    b"%s\t1e9\t2000000000.0\n",  # not as Python writes a float
    b"%s\t1000000000\t2000000000.0\n",
    b"%s\t1_000_000_000.0\t2000000000.0\n",
    b"%s\t-1.0\t2000000000.0\n",
    b"%s\t0.0\t2000000000.0\n",
    b"%s\tnan\t2000000000.0\n",
    b"%s\tinf\t2000000000.0\n",
    b"%s\t fast\t2000000000.0\n",
    b"%s\t1000000000.0\t2000000000.0\n" + b" " * 5000,  # too long to read
    b"\xff\xfe not text\n",
    b'{"machine": "%s", "lanes": 1e9, "sha_ni": 2e9}\n',
]


@pytest.mark.parametrize("content", CORRUPT)
def test_a_corrupt_file_is_measured_again_and_replaced(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "hash-engine.txt"
    path.write_bytes(content.replace(b"%s", KEY.encode()) if b"%s" in content else content)
    assert load_rates(str(path), KEY) is None
    kernel = FakeKernel()
    rates = calibrated_rates(kernel, str(path))
    assert kernel.spins
    assert load_rates(str(path), KEY) == rates


def test_another_machines_rates_are_not_used(tmp_path: Path) -> None:
    path = str(tmp_path / "hash-engine.txt")
    other = machine_key((16, 8, 2), cpuinfo=str(_cpuinfo(tmp_path, "Another CPU")))
    assert other != KEY
    save_rates(path, other, Rates(lanes=9e9, sha_ni=1e9))
    assert load_rates(path, KEY) is None
    kernel = FakeKernel()
    calibrated_rates(kernel, path)
    assert kernel.spins
    assert Path(path).read_text().split("\t")[0] == KEY


def _cpuinfo(tmp_path: Path, model: str) -> Path:
    path = tmp_path / "cpuinfo"
    path.write_text(f"processor\t: 0\nmodel name\t: {model}\nflags\t\t: sha_ni avx2\n")
    return path


def test_the_machine_is_the_cpu_model_the_kernels_and_their_version(tmp_path: Path) -> None:
    info = _cpuinfo(tmp_path, "AMD EPYC")
    assert machine_key((16, 8, 2), cpuinfo=str(info)) == "AMD EPYC; kernels 16,8,2; v1"
    assert machine_key((8, 2), cpuinfo=str(info)) == "AMD EPYC; kernels 8,2; v1"
    assert machine_key((2,), cpuinfo=str(tmp_path / "none")) == "unknown CPU; kernels 2; v1"


def test_an_unwritable_cache_folder_still_gives_rates(tmp_path: Path) -> None:
    blocked = tmp_path / "file"
    blocked.write_bytes(b"")
    path = str(blocked / "taskgraph-images" / "hash-engine.txt")  # under a file
    rates = calibrated_rates(FakeKernel(), path)
    assert rates.lanes > 0 and rates.sha_ni > 0
    assert not os.path.exists(path)


def test_the_file_is_in_the_users_cache_folder(tmp_path: Path) -> None:
    environ = {"XDG_CACHE_HOME": str(tmp_path), "HOME": "/nowhere"}
    assert calibration_path(environ) == str(tmp_path / "taskgraph-images" / "hash-engine.txt")
    environ = {"XDG_CACHE_HOME": "relative", "HOME": str(tmp_path)}
    assert calibration_path(environ) == str(
        tmp_path / ".cache" / "taskgraph-images" / "hash-engine.txt")


# -- on this machine -----------------------------------------------------------------
def _widths() -> tuple[int, ...]:
    kernel = filehash._compiled()
    return kernel.widths() if kernel is not None else ()


def test_the_environment_forces_either_engine(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(SIMD_ENV, "0")
    assert filehash.engine() == HashingEngine(0, "TASKGRAPH_IMAGES_SIMD=0")
    assert filehash.lane_kernel() is None
    monkeypatch.setenv(SIMD_ENV, "1")
    assert filehash.engine().reason.startswith("TASKGRAPH_IMAGES_SIMD=1")
    assert not (tmp_path / "taskgraph-images").exists()  # forced: nothing measured
    monkeypatch.delenv(SIMD_ENV)
    chosen = filehash.engine()
    flags = cpu_flags(_widths())
    if {SHA_NI, AVX512} <= flags:
        kept = load_rates(str(tmp_path / "taskgraph-images" / "hash-engine.txt"),
                          machine_key(_widths()))
        assert kept is not None
        assert chosen == choose_engine(flags, rates=kept)
    else:
        assert chosen == choose_engine(flags, built=bool(_widths()))


def test_an_unknown_setting_stops_hashing_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    make_tree(tmp_path, {"f": b"x"})
    monkeypatch.setenv(SIMD_ENV, "fast")
    with pytest.raises(InvalidValueError, match="TASKGRAPH_IMAGES_SIMD='fast'"):
        hash_paths([str(tmp_path / "f")])


@pytest.mark.parametrize("setting", ["0", "1", "auto"])
def test_every_setting_gives_the_same_digests(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    contents = {f"d{i % 4}/f{i}": bytes([i]) * (i * 997) for i in range(60)}
    contents.update({f"big{i}": b"z" * ((1 << 20) + i) for i in range(3)})
    make_tree(tmp_path / "tree", contents)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setenv(SIMD_ENV, setting)
    paths = [str(tmp_path / "tree" / rel) for rel in contents]
    assert hash_paths(paths, jobs=2) == [hashlib.sha256(c).hexdigest()
                                         for c in contents.values()]


# -- what -v says --------------------------------------------------------------------
@pytest.mark.parametrize("setting", ["0", "1", "auto"])
def test_verbose_says_which_engine_hashed_and_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        setting: str) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.setenv(SIMD_ENV, setting)
    root = Path(__file__).parent / "data" / "images_e2e"
    assert main(["hash", "--root", str(root), "--hash-cache", "none", "-v"]) == 0
    expected = filehash.engine().describe()
    assert f"taskgraph-images: file hashing: {expected}\n" in capsys.readouterr().err


def test_without_verbose_the_engine_is_not_mentioned(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    root = Path(__file__).parent / "data" / "images_e2e"
    assert main(["hash", "--root", str(root), "--hash-cache", "none"]) == 0
    assert "file hashing" not in capsys.readouterr().err


def test_an_unknown_setting_is_one_line_from_the_command_line(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv(SIMD_ENV, "fast")
    root = Path(__file__).parent / "data" / "images_e2e"
    assert main(["hash", "--root", str(root), "--hash-cache", "none"]) != 0
    err = capsys.readouterr().err
    assert err == ("taskgraph-images: error: TASKGRAPH_IMAGES_SIMD='fast': use 0 (hashlib), "
                   "1 (the multi-buffer kernel) or auto\n")
