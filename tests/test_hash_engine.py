"""Which engine hashes the files: the fastest for the CPU's features, or the one forced.

:func:`choose_engine` is a pure rule from the CPU's flags (as ``/proc/cpuinfo``
spells them) to the kernel that hashes the files; the runs behind it are in
``docs/performance.md``. Only with both SHA-NI and AVX-512 does it need the
kernels' speeds, measured once per machine and kept in the user's cache
folder. ``TASKGRAPH_IMAGES_SIMD`` forces either engine, and ``-v`` says which
one ran and why.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Sequence, Union

import pytest
from trees import make_tree

from taskgraph_images._hashing import filehash
from taskgraph_images._hashing.filehash import (
    AVX2,
    AVX512,
    LANES_MARGIN,
    SHA_NI,
    SIMD_ENV,
    HashingEngine,
    Rates,
    calibrated_rates,
    calibration_path,
    choose_engine,
    cpu_flags,
    hash_paths,
    load_rates,
    machine_key,
    save_rates,
)
from taskgraph_images.cli import main
from taskgraph_images.errors import InvalidValueError

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
