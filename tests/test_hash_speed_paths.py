"""The fast hashing paths give exactly the seed hash, and keep memory flat.

The reference here is written independently of the library: ``os.walk``,
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
from typing import Any, Callable, Sequence

import pytest
import trees
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import taskgraph_images._hashing
from taskgraph_images._hashing import filehash
from taskgraph_images._hashing.filehash import (
    CHUNK,
    SIMD_ENV,
    file_sha256,
    hash_paths,
    lane_kernel,
)
from taskgraph_images.context import ContextFile, hash_context, list_context
from taskgraph_images.errors import ContextError
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
