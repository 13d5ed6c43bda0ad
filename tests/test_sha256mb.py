"""The multi-buffer SHA-256 kernel gives hashlib's digests, for every kernel the CPU has.

Each case hashes real files through ``_sha256mb.hash_files`` with one kernel
and compares every digest with :mod:`hashlib` of the same bytes.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trees import make_tree

try:
    from taskgraph_images._hashing import _sha256mb
except ImportError:  # pragma: no cover - only where the extension did not build
    if os.environ.get("CI") == "true":
        raise  # CI builds it: a missing module is a failure there
    pytest.skip("the _sha256mb extension is not built", allow_module_level=True)

WIDTHS = _sha256mb.widths()
#: The kernel's read size per lane, and the sizes around every edge of it.
LANE_BUF = 64 * 1024
EDGES = sorted({n for base in (0, 64, 128, LANE_BUF, 2 * LANE_BUF)
                for n in range(max(0, base - 9), base + 10)})

pytestmark = pytest.mark.skipif(not WIDTHS, reason="this CPU has none of AVX2, AVX-512 and SHA-NI")


@pytest.fixture(params=WIDTHS or [0])
def width(request: pytest.FixtureRequest) -> int:
    return int(request.param)


def _content(size: int, seed: int) -> bytes:
    return (bytes((seed + i * 7) % 256 for i in range(256)) * (size // 256 + 1))[:size]


def _write(folder: Path, contents: list[bytes]) -> list[str]:
    make_tree(folder, {f"f{i}": data for i, data in enumerate(contents)})
    return [str(folder / f"f{i}") for i in range(len(contents))]


def test_every_length_up_to_three_blocks(tmp_path: Path, width: int) -> None:
    contents = [_content(n, n) for n in range(200)]
    got = _sha256mb.hash_files(_write(tmp_path, contents), width=width)
    assert got == [hashlib.sha256(c).hexdigest() for c in contents]


def test_lengths_at_the_edges_of_the_read_buffer(tmp_path: Path, width: int) -> None:
    contents = [_content(n, n) for n in EDGES]
    got = _sha256mb.hash_files(_write(tmp_path, contents), width=width)
    assert got == [hashlib.sha256(c).hexdigest() for c in contents]


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sizes=st.lists(st.one_of(st.integers(0, 300), st.integers(0, 3 * LANE_BUF)),
                      min_size=1, max_size=40),
       seed=st.integers(0, 255))
def test_any_mix_of_files(tmp_path_factory: pytest.TempPathFactory, width: int,
                          sizes: list[int], seed: int) -> None:
    folder = tmp_path_factory.mktemp("mix")
    contents = [_content(n, seed + i) for i, n in enumerate(sizes)]
    got = _sha256mb.hash_files(_write(folder, contents), width=width)
    assert got == [hashlib.sha256(c).hexdigest() for c in contents]


def test_a_file_that_cannot_be_opened_or_read_gives_its_errno(tmp_path: Path,
                                                               width: int) -> None:
    ok = _write(tmp_path, [b"abc"])[0]
    got = _sha256mb.hash_files([str(tmp_path / "gone"), ok, str(tmp_path)], width=width)
    assert got == [errno.ENOENT, hashlib.sha256(b"abc").hexdigest(), errno.EISDIR]


def test_files_over_the_limit_are_left_for_the_caller(tmp_path: Path, width: int) -> None:
    contents = [b"a" * 100, b"b" * 101, b"", b"c" * 5000]
    got = _sha256mb.hash_files(_write(tmp_path, contents), width=width, limit=100)
    assert got == [hashlib.sha256(b"a" * 100).hexdigest(), None,
                   hashlib.sha256(b"").hexdigest(), None]


def test_undecodable_and_spaced_names(tmp_path: Path, width: int) -> None:
    names = [os.fsdecode(b"caf\xe9"), "a b", "日本", "-x"]
    for name in names:
        (tmp_path / name).write_bytes(name.encode("utf-8", "surrogateescape"))
    got = _sha256mb.hash_files([str(tmp_path / n) for n in names], width=width)
    assert got == [hashlib.sha256(n.encode("utf-8", "surrogateescape")).hexdigest()
                   for n in names]


def test_an_empty_list_hashes_nothing(width: int) -> None:
    assert _sha256mb.hash_files([], width=width) == []


def test_a_path_with_a_nul_byte_is_refused(width: int) -> None:
    with pytest.raises(ValueError):
        _sha256mb.hash_files(["a\0b"], width=width)


def _cpuinfo_flags() -> set[str]:
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


@pytest.mark.skipif(not os.path.exists("/proc/cpuinfo"), reason="needs /proc/cpuinfo")
def test_the_widths_are_the_kernels_the_cpu_flags_name() -> None:
    flags = _cpuinfo_flags()
    expected = [w for w, needs in ((16, {"avx512f", "avx512bw"}), (8, {"avx2"}), (2, {"sha_ni"}))
                if needs <= flags]
    assert list(WIDTHS) == expected


def test_spin_times_a_kernel_without_reading_anything(width: int) -> None:
    assert _sha256mb.spin(width, 2) is None


def test_spin_refuses_a_width_this_cpu_lacks() -> None:
    with pytest.raises(ValueError, match="no 4-lane kernel"):
        _sha256mb.spin(4, 1)


def test_a_width_this_cpu_lacks_is_refused() -> None:
    with pytest.raises(ValueError, match="no 4-lane kernel"):
        _sha256mb.hash_files([], width=4)


def test_other_threads_run_while_it_hashes(tmp_path: Path) -> None:
    paths = _write(tmp_path, [_content(1 << 20, i) for i in range(16)]) * 8
    ticks = 0
    stop = threading.Event()

    def count() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            time.sleep(0)

    ticker = threading.Thread(target=count)
    ticker.start()
    try:
        before = ticks
        _sha256mb.hash_files(paths)
        during = ticks - before
    finally:
        stop.set()
        ticker.join()
    assert during > 100  # the GIL was free: the other thread kept counting
