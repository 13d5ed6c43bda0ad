"""taskgraph's tar-stream context hash, bit for bit against the installed taskgraph."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import threading
import tracemalloc
from pathlib import Path
from typing import Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peer_taskgraph import peer_context_hash, peer_tar_bytes, peer_tar_hash
from trees import make_tree

from taskgraph_images.errors import ContextError
from taskgraph_images.keys import tar as taskgraph_tar
from taskgraph_images.keys.tar import (
    BLOCK,
    DEFAULT_MTIME,
    RECORD,
    context_hash,
    member_header,
)

Files = dict[str, Union[str, bytes]]

#: Whether the compiled per-file loop (``_sha256mb.tar_fill``) is built here.
NATIVE_BUILT = taskgraph_tar._native_fill() is not None


@pytest.fixture(autouse=True, params=["native", "python"])
def loop(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs twice: with the compiled per-file loop, and without it."""
    if request.param == "native" and not NATIVE_BUILT:
        if os.environ.get("CI") == "true" and sys.platform.startswith("linux"):
            pytest.fail("the compiled per-file loop (_sha256mb.tar_fill) is not built")
        pytest.skip("the compiled per-file loop is not built here")
    monkeypatch.setattr(taskgraph_tar, "NATIVE", request.param == "native")
    return str(request.param)


def same_as_taskgraph(files: Files) -> str:
    ours = context_hash(files)
    assert ours == peer_tar_hash(files)
    return ours


# -- fixed cases --------------------------------------------------------------------
@pytest.mark.parametrize("size", [0, 1, 511, 512, 513, 1023, 1024, 10240, 10241, 70000])
def test_content_of_every_size_around_the_block_and_record(size: int) -> None:
    same_as_taskgraph({"f": bytes(range(256)) * (size // 256) + b"x" * (size % 256)})


def test_no_members_is_just_the_end_blocks_padded_to_a_record() -> None:
    assert peer_tar_bytes({}) == bytes(RECORD)
    same_as_taskgraph({})


@pytest.mark.parametrize("name", [
    "a" * 99, "a" * 100, "a" * 101, "d/" * 60 + "f", "x" * 255, "x" * 256, "y" * 600,
    "é" * 50,  # 100 bytes
    "é" * 51,  # 102 bytes: a long name
    "a" + "é" * 50,  # the 100-byte cut falls inside a character
    "ünïcödé/名前/файл.txt", "sp ace\ttab\nnewline", "back\\slash", "/leading/slash",
    "trailing/", "dot/./dot/../x", "\udcff\udc80 undecodable bytes", "",
])
def test_odd_and_long_names(name: str) -> None:
    same_as_taskgraph({name: b"content\n", "z-after": b"more"})


def test_members_are_sorted_by_python_string_order() -> None:
    same_as_taskgraph({"b": b"1", "B": b"2", "a/b": b"3", "a-b": b"4", "é": b"5", "z": b"6"})


@pytest.mark.parametrize("mode", [0o644, 0o755, 0o600, 0o444, 0o700, 0o777, 0o1755, 0o000])
def test_a_file_keeps_its_permission_bits(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"#!/bin/sh\necho hi\n")
    path.chmod(mode)
    same_as_taskgraph({"run": str(path), "data": b"not executable"})


def test_a_symlinked_source_is_read_through_with_its_targets_mode(tmp_path: Path) -> None:
    target = tmp_path / "target.sh"
    target.write_bytes(b"echo target\n" * 100)
    target.chmod(0o755)
    link = tmp_path / "link"
    link.symlink_to(target)
    ours = same_as_taskgraph({"via-link": str(link)})
    assert ours == context_hash({"via-link": str(target)})


def test_content_given_as_bytes_is_mode_0644(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"same bytes")
    path.chmod(0o644)
    assert context_hash({"f": b"same bytes"}) == context_hash({"f": str(path)})
    path.chmod(0o755)
    assert context_hash({"f": b"same bytes"}) != context_hash({"f": str(path)})


def test_many_files_and_big_ones_across_buffer_boundaries(tmp_path: Path) -> None:
    files: Files = {}
    for i in range(400):
        size = (i * 7919) % 9000
        path = tmp_path / f"d{i % 7}" / f"file-{i}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(os.urandom(size))
        files[f"many/d{i % 7}/file-{i}"] = str(path)
    for i, size in enumerate([(1 << 20) - 700, 1 << 20, (3 << 20) + 17]):
        path = tmp_path / f"big{i}"
        path.write_bytes(os.urandom(size))
        files[f"big/{i}"] = str(path)
    same_as_taskgraph(files)


@pytest.mark.parametrize("shift", [-1, 0, 1, BLOCK])
def test_members_that_end_right_at_a_buffer_boundary(tmp_path: Path, shift: int) -> None:
    # each member is a header and 1,535 bytes padded to 1,536: 2,048 bytes, so
    # 512 members fill the 1 MiB buffer exactly; the last one moves by `shift`
    files: Files = {}
    for i in range(1100):
        path = tmp_path / f"f{i:04}"
        size = 1535 + (shift if i == 511 else 0)
        path.write_bytes(os.urandom(size))
        files[f"f{i:04}"] = str(path)
    same_as_taskgraph(files)


def test_paths_bytes_long_names_and_empty_files_interleaved(tmp_path: Path) -> None:
    # each kind the compiled loop leaves to Python, between ones it takes
    files: Files = {}
    for i in range(60):
        path = tmp_path / f"p{i}"
        path.write_bytes(b"x" * (i * 37) if i % 5 else b"")
        kind = i % 4
        if kind == 0:
            files[f"a/{i:03}"] = str(path)
        elif kind == 1:
            files[f"a/{i:03}"] = b"given %d" % i
        elif kind == 2:
            files[f"a/{i:03}/" + "n" * 120] = str(path)
        else:
            files[f"a/{i:03}/big"] = str(tmp_path / "big")
    (tmp_path / "big").write_bytes(os.urandom((1 << 20) + 3))
    same_as_taskgraph(files)


def test_an_error_after_plain_members_names_the_member(tmp_path: Path) -> None:
    files: Files = {}
    for i in range(50):
        path = tmp_path / f"ok{i:02}"
        path.write_bytes(b"ok")
        files[f"a/{i:02}"] = str(path)
    files["b/missing"] = str(tmp_path / "missing")
    with pytest.raises(ContextError, match="context member b/missing"):
        context_hash(files)


def test_the_compiled_loop_is_used_where_it_is_built(loop: str) -> None:
    assert (taskgraph_tar._native_fill() is not None) == (loop == "native")


def test_the_header_fields_taskgraph_fixes() -> None:
    block = member_header("name", 0o100755, 1234)
    assert len(block) == BLOCK
    assert block[:4] == b"name" and block[100:108] == b"0000755\0"
    assert block[108:124] == b"0000000\0" * 2  # uid, gid
    assert block[124:136] == b"00000002322\0"
    assert int(block[136:147], 8) == DEFAULT_MTIME
    assert block[156:157] == b"0" and block[257:265] == b"ustar  \0"
    assert block[265:329] == bytes(64)  # no owner names
    assert block[329:345] == b"0000000\0" * 2  # device numbers written as 0
    checked = block[:148] + b" " * 8 + block[156:]
    assert int(block[148:154], 8) == sum(checked)


def test_a_long_name_has_a_gnu_longlink_header_before_it() -> None:
    name = "n" * 150
    blocks = member_header(name, 0o644, 0)
    assert len(blocks) == 3 * BLOCK
    assert blocks[:13] == b"././@LongLink" and blocks[156:157] == b"L"
    assert blocks[BLOCK:2 * BLOCK] == name.encode() + bytes(BLOCK - 150)
    assert blocks[2 * BLOCK:2 * BLOCK + 100] == name.encode()[:100]


def test_a_file_of_eight_gibibytes_or_more_gets_a_base_256_size() -> None:
    tarfile = pytest.importorskip("tarfile")
    size = 8 << 30
    ours = member_header("huge", 0o644, size)
    info = tarfile.TarInfo("huge")
    info.size = size
    info.mode = 0o644
    info.mtime = DEFAULT_MTIME
    assert ours[124] == 0x80 and int.from_bytes(ours[125:136], "big") == size
    assert ours[:148] == info.tobuf(tarfile.GNU_FORMAT)[:148]


def test_a_whole_context_as_taskgraph_collects_it(tmp_path: Path) -> None:
    """Members as ``stream_context_tar`` gathers them (no directives): its hash."""
    make_tree(tmp_path, {
        "taskcluster/docker/img/Dockerfile": "FROM debian:12\nCOPY . /x\n",
        "taskcluster/docker/img/scripts/setup.sh": "#!/bin/sh\nexit 0\n",
        "taskcluster/docker/img/data/" + "long" * 40: b"\0" * 5000,
        "taskcluster/docker/img/é.txt": "accent\n",
    })
    (tmp_path / "taskcluster/docker/img/scripts/setup.sh").chmod(0o755)
    files = taskgraphs_members(tmp_path / "taskcluster/docker/img")
    assert len(files) == 4
    assert context_hash(files) == peer_context_hash(str(tmp_path), "taskcluster/docker/img")


# -- errors ----------------------------------------------------------------------------
def test_a_missing_file_is_named(tmp_path: Path) -> None:
    missing = str(tmp_path / "gone")
    with pytest.raises(ContextError, match=rf"cannot read {missing} \(context member m\)"):
        context_hash({"m": missing})


def test_a_path_with_a_nul_byte_is_named(tmp_path: Path) -> None:
    ok = tmp_path / "ok"
    ok.write_bytes(b"ok")
    with pytest.raises(ContextError, match=r"\(context member b\): the path has a NUL byte"):
        context_hash({"a": str(ok), "b": str(tmp_path / "x\0y")})


def test_a_folder_is_not_a_regular_file(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="is not a regular file"):
        context_hash({"m": str(tmp_path)})


def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ContextError, match=rf"{fifo} \(context member m\) is not a regular"):
        context_hash({"m": str(fifo)})


def test_a_device_is_refused() -> None:
    with pytest.raises(ContextError, match="/dev/null .* is not a regular file"):
        context_hash({"m": "/dev/null"})


@pytest.mark.parametrize("bit", [stat.S_ISUID, stat.S_ISGID])
def test_setuid_and_setgid_are_refused_as_taskgraph_refuses_them(tmp_path: Path,
                                                                  bit: int) -> None:
    path = tmp_path / "f"
    path.write_bytes(b"x")
    path.chmod(0o755 | bit)
    if not path.stat().st_mode & bit:
        pytest.skip("this file system drops the bit")
    with pytest.raises(ContextError, match="setuid or setgid"):
        context_hash({"f": str(path)})
    with pytest.raises(ValueError, match="setuid or setgid"):
        peer_tar_hash({"f": str(path)})


def test_an_unreadable_file_is_named(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    path = tmp_path / "secret"
    path.write_bytes(b"x")
    path.chmod(0)
    with pytest.raises(ContextError, match="secret"):
        context_hash({"s": str(path)})


def test_a_file_shorter_than_its_size_is_refused() -> None:
    # sysfs attributes say 4096 bytes and hold a few: a file that shrank after its stat
    path = "/sys/kernel/uevent_seqnum"
    if not os.path.isfile(path) or os.stat(path).st_size <= len(Path(path).read_bytes()):
        pytest.skip(f"no {path} that is shorter than its size here")
    with pytest.raises(ContextError, match=f"{path} .* shrank while it was being hashed"):
        context_hash({"seq": path})
    files: Files = {"a": b"x" * ((1 << 20) - 600), "seq": path}  # the slow path
    with pytest.raises(ContextError, match="shrank"):
        context_hash(files)


def test_a_size_no_tar_field_holds_is_refused() -> None:
    with pytest.raises(ContextError, match="cannot hold"):
        member_header("x", 0o644, 256 ** 11)


def test_a_name_that_cannot_be_encoded_is_named() -> None:
    with pytest.raises(ContextError, match="name 'bad.*' cannot be encoded"):
        context_hash({"bad\ud800": b"x"})


def test_a_value_of_another_type_is_refused() -> None:
    with pytest.raises(ContextError, match="expected a path .* got int"):
        context_hash({"x": 3})  # type: ignore[dict-item]


def test_an_error_once_the_hashing_thread_runs_leaves_no_thread_behind(tmp_path: Path) -> None:
    files: Files = {f"small/{i:04}": b"%d" % i * 700 for i in range(3000)}  # many buffers
    files["zz-missing"] = str(tmp_path / "missing")
    before = threading.active_count()
    with pytest.raises(ContextError, match="zz-missing"):
        context_hash(files)
    assert threading.active_count() == before
    del files["zz-missing"]
    same_as_taskgraph(files)


def test_on_one_core_the_same_hash_without_the_thread(tmp_path: Path) -> None:
    many = '{f"small/{i:04}": b"%d" % i * 900 for i in range(2500)}'
    files: Files = eval(many)
    code = (
        "import os, sys, threading\n"
        "os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})\n"
        "import taskgraph_images.keys.tar as t\n"
        "started = []\n"
        "threading.Thread.start = lambda self: started.append(self)\n"
        f"print(t.context_hash({many}), len(started))\n")
    if not hasattr(os, "sched_setaffinity"):
        pytest.skip("no CPU affinity here")
    # a started thread would never hash here, so the child would hang: a timeout fails it
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=120).stdout.split()
    assert out == [same_as_taskgraph(files), "0"]


# -- memory ---------------------------------------------------------------------------
def test_memory_stays_flat_however_big_the_files(tmp_path: Path) -> None:
    path = tmp_path / "big"
    with open(path, "wb") as f:
        for _ in range(24):
            f.write(os.urandom(1 << 20))
    tracemalloc.start()
    try:
        context_hash({"big": str(path), "again": str(path)})
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 5 << 20, f"peak {peak / 2**20:.1f} MiB for 48 MiB of content"


# -- generated mappings ------------------------------------------------------------------
names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"),
    min_size=1, max_size=130) | st.sampled_from(["a" * 100, "b" * 101, "é" * 60])
contents = st.binary(max_size=3000) | st.integers(0, 5000).map(lambda n: b"z" * n)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(members=st.dictionaries(names, st.tuples(contents, st.sampled_from(
    [None, 0o644, 0o755, 0o600, 0o1777])), max_size=12))
def test_generated_mappings_hash_as_taskgraph_writes_them(
        tmp_path: Path, members: dict[str, tuple[bytes, int | None]]) -> None:
    files: Files = {}
    for i, (name, (data, mode)) in enumerate(members.items()):
        if mode is None:
            files[name] = data
            continue
        path = tmp_path / f"src-{i}"
        if path.exists():
            path.chmod(0o644)
        path.write_bytes(data)
        path.chmod(mode)
        files[name] = str(path)
    same_as_taskgraph(files)


def taskgraphs_members(folder: Path) -> Files:
    """The members ``stream_context_tar`` collects from an image folder without directives."""
    files: Files = {}
    for dirpath, dirs, names in os.walk(folder):
        if "__pycache__" in dirs:
            dirs.remove("__pycache__")
        for n in names:
            path = os.path.join(dirpath, n)
            files[path[len(str(folder)) + 1:]] = path
    files["Dockerfile"] = (folder / "Dockerfile").read_bytes()
    return files


path_part = st.text(st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/"),
                    min_size=1, max_size=40).filter(lambda p: p not in (".", ".."))


@settings(max_examples=30, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tree=st.dictionaries(st.lists(path_part, min_size=1, max_size=4).map(tuple),
                            st.tuples(st.binary(max_size=2000), st.booleans(), st.booleans()),
                            max_size=10))
def test_generated_image_folders_hash_as_generate_context_hash(
        tmp_path_factory: pytest.TempPathFactory,
        tree: dict[tuple[str, ...], tuple[bytes, bool, bool]]) -> None:
    root = tmp_path_factory.mktemp("repo")
    folder = root / "taskcluster/docker/img"
    folder.mkdir(parents=True)
    (folder / "Dockerfile").write_bytes(b"FROM scratch\n")
    for parts, (data, executable, linked) in tree.items():
        path = folder.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists() or len(os.fsencode(path.name)) > 255:
                continue
        except OSError:  # a file where a folder is wanted, or a name too long
            continue
        if linked:  # a symlink to a file outside the folder: taskgraph reads through it
            target = root / f"target-{len(list(root.iterdir()))}"
            target.write_bytes(data)
            target.chmod(0o755 if executable else 0o644)
            path.symlink_to(target)
        else:
            path.write_bytes(data)
            path.chmod(0o755 if executable else 0o644)
    pycache = folder / "__pycache__"
    pycache.mkdir(exist_ok=True)
    (pycache / "x.cpython-311.pyc").write_bytes(b"skipped by taskgraph since 20.0")
    ours = context_hash(taskgraphs_members(folder))
    assert ours == peer_context_hash(str(root), "taskcluster/docker/img")


def test_the_encoding_is_the_file_system_ones() -> None:
    assert sys.getfilesystemencoding() == "utf-8"  # as on every Linux CI
    assert member_header("é", 0o644, 0)[:2] == "é".encode()
