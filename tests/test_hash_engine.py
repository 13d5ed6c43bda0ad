"""Which engine hashes the files: the fastest for the CPU's features, or the one forced.

:func:`choose_engine` is a pure rule from the CPU's flags (as ``/proc/cpuinfo``
spells them) to the code that hashes small and large files; the runs behind
it are in ``docs/performance.md``. ``TASKGRAPH_IMAGES_SIMD`` forces either
engine, and ``-v`` says which one ran and why.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from trees import make_tree

from taskgraph_images import filehash
from taskgraph_images.cli import main
from taskgraph_images.errors import InvalidValueError
from taskgraph_images.filehash import (
    AVX2,
    AVX512,
    SHA_NI,
    SIMD_ENV,
    Engine,
    choose_engine,
    cpu_flags,
    hash_paths,
)

HASHLIB, SHANI_LOOP = 0, 1

#: CPU flags -> (small files, large files) with no setting.
RULE = [
    # no SHA-NI: one chain is slow, lanes win everywhere
    ({AVX512, AVX2}, (16, 16)),
    ({AVX2}, (8, 8)),
    ({AVX512}, (16, 16)),
    # SHA-NI: one chain per large file; small files in the compiled loop
    ({SHA_NI, AVX512, AVX2}, (16, HASHLIB)),
    ({SHA_NI, AVX2}, (SHANI_LOOP, HASHLIB)),
    ({SHA_NI}, (SHANI_LOOP, HASHLIB)),
    # nothing the compiled module can use
    (set(), (HASHLIB, HASHLIB)),
]


@pytest.mark.parametrize(("flags", "expected"), RULE)
def test_the_rule_by_cpu_flags(flags: set[str], expected: tuple[int, int]) -> None:
    chosen = choose_engine(frozenset(flags))
    assert (chosen.small, chosen.large) == expected


#: CPU flags -> what TASKGRAPH_IMAGES_SIMD=1 forces: the widest kernel, for every file.
FORCED_ON = [
    ({SHA_NI, AVX512, AVX2}, (16, 16)),
    ({SHA_NI, AVX2}, (8, 8)),
    ({AVX2}, (8, 8)),
    ({SHA_NI}, (SHANI_LOOP, SHANI_LOOP)),
    (set(), (HASHLIB, HASHLIB)),
]


@pytest.mark.parametrize(("flags", "expected"), FORCED_ON)
def test_simd_1_forces_the_kernel(flags: set[str], expected: tuple[int, int]) -> None:
    chosen = choose_engine(frozenset(flags), "1")
    assert (chosen.small, chosen.large) == expected


@pytest.mark.parametrize("flags", [flags for flags, _ in RULE])
def test_simd_0_forces_hashlib_whatever_the_cpu(flags: set[str]) -> None:
    assert choose_engine(frozenset(flags), "0") == Engine(0, 0, "TASKGRAPH_IMAGES_SIMD=0")


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
    assert (chosen.small, chosen.large) == (HASHLIB, HASHLIB)
    assert chosen.reason == "the compiled module taskgraph_images._sha256mb is not built"


#: Flags and setting -> the reason given.
REASONS = [
    ({AVX512, AVX2}, None, "avx512f without sha_ni: lanes beat one sha256 chain"),
    ({AVX2}, None, "avx2 without sha_ni: lanes beat one sha256 chain"),
    ({SHA_NI, AVX512, AVX2}, None,
     "sha_ni and avx512f: lanes win on small files, one SHA-NI chain on large ones"),
    ({SHA_NI, AVX2}, None, "sha_ni without avx512f: one SHA-NI chain beats 8 AVX2 lanes"),
    (set(), None, "this CPU has no avx512f, avx2 or sha_ni"),
    ({SHA_NI, AVX2}, "1", "TASKGRAPH_IMAGES_SIMD=1"),
    (set(), "1", "TASKGRAPH_IMAGES_SIMD=1, but this CPU has no avx512f, avx2 or sha_ni"),
    ({AVX2}, "0", "TASKGRAPH_IMAGES_SIMD=0"),
]


@pytest.mark.parametrize(("flags", "setting", "reason"), REASONS)
def test_the_reason_names_the_flags_or_the_setting(flags: set[str], setting: str | None,
                                                    reason: str) -> None:
    assert choose_engine(frozenset(flags), setting).reason == reason


#: Engine -> its one-line description.
DESCRIPTIONS = [
    (Engine(16, 0, "why"), "the multi-buffer kernel (16 lanes, AVX-512) for files up to "
     "1 MiB, hashlib for larger ones (why)"),
    (Engine(8, 8, "why"), "the multi-buffer kernel (8 lanes, AVX2) for every file (why)"),
    (Engine(1, 0, "why"), "the compiled loop with SHA-NI for files up to 1 MiB, hashlib "
     "for larger ones (why)"),
    (Engine(0, 0, "why"), "hashlib for every file (why)"),
]


@pytest.mark.parametrize(("chosen", "text"), DESCRIPTIONS)
def test_the_description_says_what_hashes_which_files_and_why(chosen: Engine,
                                                                text: str) -> None:
    assert chosen.describe() == text


@pytest.mark.parametrize(("widths", "flags"), [
    ((16, 8, 1), {AVX512, AVX2, SHA_NI}),
    ((8,), {AVX2}),
    ((1,), {SHA_NI}),
    ((), set()),
])
def test_the_flags_come_from_what_the_compiled_module_runs(widths: tuple[int, ...],
                                                           flags: set[str]) -> None:
    assert cpu_flags(widths) == flags


# -- the environment, on this machine ------------------------------------------------
def test_the_environment_forces_either_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(SIMD_ENV, "0")
    assert filehash.engine() == Engine(0, 0, "TASKGRAPH_IMAGES_SIMD=0")
    assert filehash.lane_kernel() is None
    monkeypatch.setenv(SIMD_ENV, "1")
    assert filehash.engine().reason.startswith("TASKGRAPH_IMAGES_SIMD=1")
    monkeypatch.delenv(SIMD_ENV)
    assert filehash.engine() == choose_engine(
        filehash.cpu_flags(_widths()), built=_widths() is not None)


def _widths() -> tuple[int, ...]:
    kernel = filehash._compiled()
    return kernel.widths() if kernel is not None else ()


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
    contents["big"] = b"z" * ((1 << 20) + 3)
    make_tree(tmp_path, contents)
    monkeypatch.setenv(SIMD_ENV, setting)
    paths = [str(tmp_path / rel) for rel in contents]
    assert hash_paths(paths, jobs=2) == [hashlib.sha256(c).hexdigest()
                                         for c in contents.values()]


# -- what -v says --------------------------------------------------------------------
@pytest.mark.parametrize("setting", ["0", "1"])
def test_verbose_says_which_engine_hashed_and_why(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        setting: str) -> None:
    monkeypatch.setenv(SIMD_ENV, setting)
    root = Path(__file__).parent / "data" / "images_e2e"
    assert main(["hash", "--root", str(root), "--hash-cache", "none", "-v"]) == 0
    expected = filehash.engine().describe()
    assert f"taskgraph-images: file hashing: {expected}\n" in capsys.readouterr().err


def test_without_verbose_the_engine_is_not_mentioned(
        capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).parent / "data" / "images_e2e"
    assert main(["hash", "--root", str(root), "--hash-cache", "none"]) == 0
    assert "file hashing" not in capsys.readouterr().err
