"""The seed context hash and the listing rules behind it."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trees import make_tree, seed_context_hash

from taskgraph_images.context import file_sha256, hash_context, list_context
from taskgraph_images.errors import ContextError

BASE = "taskcluster/docker/base"


def test_hash_matches_a_vector_computed_with_sha256sum(tmp_path: Path) -> None:
    # printf '%s\t/taskcluster/docker/base/Dockerfile\n%s\t/...files/a.txt\n' | sha256sum
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n", f"{BASE}/files/a.txt": "hello\n"})
    assert hash_context(tmp_path, BASE) == (
        "cdf1772c86b6a4527516df73456f1dcef13d64d0bbebfcccdf6c5dc6881f043d"
    )


def test_hash_equals_the_independent_seed_implementation(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            f"{BASE}/Dockerfile": "FROM ubuntu\n",
            f"{BASE}/a-b/x": "1",
            f"{BASE}/a/x": "2",
            f"{BASE}/a b/ü.txt": "3",
            f"{BASE}/empty": "",
            f"{BASE}/d/e/f/g/h": "deep",
        },
    )
    assert hash_context(tmp_path, BASE) == seed_context_hash(str(tmp_path), BASE)


def test_lines_carry_a_leading_slash_and_the_path_from_the_root(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    import hashlib

    inner = hashlib.sha256(b"FROM scratch\n").hexdigest()
    line = f"{inner}\t/{BASE}/Dockerfile\n".encode()
    assert hash_context(tmp_path, BASE) == hashlib.sha256(line).hexdigest()


def test_hash_accepts_a_trailing_slash_on_the_image_path(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    assert hash_context(tmp_path, BASE + "/") == hash_context(tmp_path, BASE)


def test_dash_sorts_before_slash_as_in_the_seed(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/a/x": "1", f"{BASE}/a-b/x": "2", f"{BASE}/a.c": "3"})
    assert [f.relpath.rsplit("base/", 1)[1] for f in list_context(tmp_path, BASE)] == [
        "a-b/x",
        "a.c",
        "a/x",
    ]


def test_hash_ignores_mtimes(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    before = hash_context(tmp_path, BASE)
    os.utime(tmp_path / BASE / "Dockerfile", (1, 1))
    assert hash_context(tmp_path, BASE) == before


def test_renaming_a_file_changes_the_hash(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/a": "x"})
    before = hash_context(tmp_path, BASE)
    (tmp_path / BASE / "a").rename(tmp_path / BASE / "b")
    assert hash_context(tmp_path, BASE) != before


def test_symlinked_folders_are_not_descended(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n", "elsewhere/f": "x"})
    (tmp_path / BASE / "linked").symlink_to(tmp_path / "elsewhere")
    assert hash_context(tmp_path, BASE) == seed_context_hash(str(tmp_path), BASE)
    assert [f.relpath for f in list_context(tmp_path, BASE)] == [f"{BASE}/Dockerfile"]


def test_symlinked_file_inside_the_root_is_hashed_by_its_content(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n", "shared/script.sh": "echo\n"})
    (tmp_path / BASE / "script.sh").symlink_to("../../../shared/script.sh")
    assert hash_context(tmp_path, BASE) == seed_context_hash(str(tmp_path), BASE)


def test_symlink_leaving_the_root_is_refused(tmp_path: Path) -> None:
    repo = make_tree(tmp_path / "repo", {f"{BASE}/Dockerfile": "FROM scratch\n"})
    (tmp_path / "secret").write_text("host file")
    (repo / BASE / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(ContextError, match=r"base/leak is a symlink .*outside the repository"):
        hash_context(repo, BASE)


def test_broken_symlink_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    (tmp_path / BASE / "dangling").symlink_to("missing")
    with pytest.raises(ContextError, match="base/dangling is a broken symlink"):
        hash_context(tmp_path, BASE)


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    (tmp_path / BASE / "a").symlink_to("b")
    (tmp_path / BASE / "b").symlink_to("a")
    with pytest.raises(ContextError, match="broken symlink"):
        hash_context(tmp_path, BASE)


def test_fifo_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    os.mkfifo(tmp_path / BASE / "pipe")
    with pytest.raises(ContextError, match="base/pipe in the context is not a regular file .a FIFO"):
        hash_context(tmp_path, BASE)


def test_socket_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    # AF_UNIX paths are short: bind relative to the folder.
    cwd = os.getcwd()
    os.chdir(tmp_path / BASE)
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.bind("sock")
            with pytest.raises(ContextError, match="a socket"):
                hash_context(tmp_path, BASE)
    finally:
        os.chdir(cwd)


def test_a_file_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match=r"cannot read .*gone: No such file"):
        file_sha256(str(tmp_path / "gone"))


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    # Opening a folder works on Linux; reading it fails, like an I/O error would.
    with pytest.raises(ContextError, match="cannot read .*: Is a directory"):
        file_sha256(str(tmp_path))


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="context folder 'taskcluster/docker/nope' does not"):
        hash_context(tmp_path, "taskcluster/docker/nope")


def test_non_utf8_file_names_hash_by_their_bytes(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    raw = os.path.join(os.fsencode(tmp_path / BASE), b"caf\xe9")
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    assert hash_context(tmp_path, BASE) == seed_context_hash(str(tmp_path), BASE)


def test_names_with_a_tab_are_hashed_verbatim(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/tab\there": "1", f"{BASE}/sub\tdir/x": "2"})
    assert hash_context(tmp_path, BASE) == seed_context_hash(str(tmp_path), BASE)


@pytest.mark.parametrize("name", ["new\nline", "folder\n/x"])
def test_names_with_a_newline_are_refused(tmp_path: Path, name: str) -> None:
    # A newline could make one file's line imitate two (see docs/hash.rst).
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n", f"{BASE}/{name}": "1"})
    with pytest.raises(ContextError, match=r"has a newline in its path.*rename it"):
        hash_context(tmp_path, BASE)


def test_single_threaded_and_threaded_hashes_agree(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/f{i:03d}": os.urandom(i * 37) for i in range(40)})
    assert hash_context(tmp_path, BASE, jobs=1) == hash_context(tmp_path, BASE, jobs=4)


_names = st.text(
    alphabet=st.sampled_from("ab-_. üZ9"), min_size=1, max_size=6
).filter(lambda s: s not in (".", "..") and not s.startswith(" "))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tree=st.dictionaries(
        st.lists(_names, min_size=1, max_size=4).map("/".join), st.binary(max_size=64),
        min_size=1, max_size=8,
    )
)
def test_hash_equals_the_seed_on_generated_trees(tmp_path_factory: pytest.TempPathFactory,
                                                  tree: dict[str, bytes]) -> None:
    root = tmp_path_factory.mktemp("gen")
    written: dict[str, bytes] = {}
    for rel, content in tree.items():
        # A path can't be both a file and a folder: skip the clashing ones.
        parts = rel.split("/")
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if prefixes & written.keys() or any(k.startswith(rel + "/") for k in written):
            continue
        written[rel] = content
    make_tree(root, {f"img/{k}": v for k, v in written.items()})
    assert hash_context(root, "img") == seed_context_hash(str(root), "img")


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_device_file_is_refused(tmp_path: Path) -> None:
    import stat

    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    os.mknod(tmp_path / BASE / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(ContextError, match="base/null in the context is not a regular file .a device"):
        hash_context(tmp_path, BASE)
