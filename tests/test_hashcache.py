"""The persistent file-hash cache: never stale, shared safely, corruption-proof."""

from __future__ import annotations

import contextlib
import hashlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from trees import make_tree

from taskgraph_images._hashing.cache import (
    SMALL_FILE,
    HashCache,
    default_cache_path,
    hasher_for_option,
)
from taskgraph_images.cli import main
from taskgraph_images.context import file_sha256, hash_context
from taskgraph_images.errors import ContextError, InvalidValueError


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _settled_file(path: Path, data: bytes) -> Path:
    """Write ``data`` and wait until it is older than a 50 ms racy window."""
    path.write_bytes(data)
    time.sleep(0.1)
    return path


def test_second_lookup_is_a_hit(tmp_path: Path) -> None:
    f = _settled_file(tmp_path / "f", b"hello")
    with HashCache(tmp_path / "c.db", racy_seconds=0.05, min_size=0) as cache:
        assert cache(str(f)) == _sha(b"hello")
        assert (cache.hits, cache.misses) == (0, 1)
    with HashCache(tmp_path / "c.db", racy_seconds=0.05, min_size=0) as cache:
        assert cache.sha256(str(f)) == _sha(b"hello")
        assert (cache.hits, cache.misses) == (1, 0)


def test_same_size_rewrite_with_mtime_restored_is_seen(tmp_path: Path) -> None:
    f = _settled_file(tmp_path / "f", b"AAAA")
    before = os.stat(f)
    db = tmp_path / "c.db"
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        assert cache(str(f)) == _sha(b"AAAA")
    f.write_bytes(b"BBBB")  # same size
    os.utime(f, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back
    after = os.stat(f)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (
        before.st_size, before.st_mtime_ns, before.st_ino)
    assert after.st_ctime_ns != before.st_ctime_ns  # what catches it
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        assert cache(str(f)) == _sha(b"BBBB")
        assert cache.misses == 1


def test_replaced_file_same_stamps_other_inode_is_seen(tmp_path: Path) -> None:
    f = _settled_file(tmp_path / "f", b"one")
    st = os.stat(f)
    db = tmp_path / "c.db"
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        cache(str(f))
    other = tmp_path / "g"
    other.write_bytes(b"two")
    os.utime(other, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(other, f)
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        assert cache(str(f)) == _sha(b"two")


def test_recent_files_are_not_recorded(tmp_path: Path) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"fresh")  # modified just now: inside the default 2 s window
    db = tmp_path / "c.db"
    with HashCache(db, min_size=0) as cache:
        assert cache(str(f)) == _sha(b"fresh")
    with HashCache(db, min_size=0) as cache:
        assert cache(str(f)) == _sha(b"fresh")
        assert cache.misses == 1
    with contextlib.closing(sqlite3.connect(db)) as conn:
        rows = conn.execute("SELECT count(*) FROM files").fetchone()[0]
    assert rows == 0


def test_symlink_is_followed_and_keyed_by_its_path(tmp_path: Path) -> None:
    target = _settled_file(tmp_path / "t", b"target")
    link = tmp_path / "l"
    link.symlink_to("t")
    with HashCache(tmp_path / "c.db", racy_seconds=0.05, min_size=0) as cache:
        assert cache(str(link)) == _sha(b"target") == cache(str(target))


def test_context_hash_with_cache_equals_without(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    for i in range(300):
        d = ctx / f"d{i % 4}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i}").write_bytes(os.urandom(i * 13))
    time.sleep(0.1)
    expected = hash_context(tmp_path, "ctx", jobs=1)
    for _ in range(2):
        with HashCache(tmp_path / "c.db", racy_seconds=0.05, min_size=0) as cache:
            assert hash_context(tmp_path, "ctx", jobs=4, hasher=cache) == expected
    assert cache.hits == 300
    (ctx / "d1" / "f1").write_bytes(b"changed")
    with HashCache(tmp_path / "c.db", racy_seconds=0.05, min_size=0) as cache:
        changed = hash_context(tmp_path, "ctx", hasher=cache)
    assert changed == hash_context(tmp_path, "ctx") != expected


def test_missing_file_is_a_context_error(tmp_path: Path) -> None:
    with HashCache(tmp_path / "c.db", min_size=0) as cache, pytest.raises(ContextError, match="cannot read"):
        cache(str(tmp_path / "nope"))


_WORKER = """
import sys
from taskgraph_images._hashing.cache import HashCache
from taskgraph_images.context import hash_context
for _ in range(3):
    with HashCache(sys.argv[2], racy_seconds=0.05, min_size=0) as cache:
        print(hash_context(sys.argv[1], "ctx", hasher=cache))
"""


def test_concurrent_processes_share_one_cache(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for i in range(1200):  # more than one write batch
        (ctx / f"f{i:04d}").write_bytes(b"%d" % i * 50)
    time.sleep(0.1)
    expected = hash_context(tmp_path, "ctx")
    db = tmp_path / "shared.db"
    procs = [
        subprocess.Popen([sys.executable, "-c", _WORKER, str(tmp_path), str(db)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert out.split() == [expected] * 3
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        assert hash_context(tmp_path, "ctx", hasher=cache) == expected
        assert cache.hits == 1200


@pytest.mark.parametrize("garbage", [b"not a database at all" * 100, b"", b"SQLite format 3\0"])
def test_garbage_cache_file_is_rebuilt(tmp_path: Path, garbage: bytes) -> None:
    f = _settled_file(tmp_path / "f", b"data")
    db = tmp_path / "c.db"
    db.write_bytes(garbage)
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        assert cache(str(f)) == _sha(b"data")
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        assert cache(str(f)) == _sha(b"data")
        assert cache.hits == 1


def test_truncated_cache_never_gives_a_wrong_hash(tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    for i in range(2000):
        (ctx / f"f{i:04d}").write_bytes(b"%d" % i)
    time.sleep(0.1)
    expected = hash_context(tmp_path, "ctx")
    db = tmp_path / "c.db"
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        hash_context(tmp_path, "ctx", hasher=cache)
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    data = db.read_bytes()
    db.write_bytes(data[: len(data) // 2] + b"\xff" * 4096)
    try:
        with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
            assert hash_context(tmp_path, "ctx", hasher=cache) == expected
    except ContextError as e:  # acceptable: a clear error, never a wrong hash
        assert "hash cache" in str(e)


def test_tampered_row_is_a_miss(tmp_path: Path) -> None:
    f = _settled_file(tmp_path / "f", b"real")
    db = tmp_path / "c.db"
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        cache(str(f))
    conn = sqlite3.connect(db)
    conn.execute("UPDATE files SET sha256 = ?", (hashlib.sha256(b"forged").digest(),))
    conn.commit()
    conn.close()
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        assert cache(str(f)) == _sha(b"real")
        assert cache.misses == 1


def test_old_schema_is_replaced(tmp_path: Path) -> None:
    f = _settled_file(tmp_path / "f", b"v")
    db = tmp_path / "c.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE files (x)")
    conn.execute("PRAGMA user_version=99")
    conn.commit()
    conn.close()
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        assert cache(str(f)) == _sha(b"v")


def test_uncreatable_cache_is_a_one_line_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    f = _settled_file(tmp_path / "f", b"x")
    cache = HashCache(blocker / "sub" / "c.db", min_size=0)
    with pytest.raises(ContextError, match="cannot create the file hash cache") as info:
        cache(str(f))
    assert "\n" not in str(info.value)


def test_unclosed_cache_is_written_when_collected(tmp_path: Path) -> None:
    f = _settled_file(tmp_path / "f", b"later")
    db = tmp_path / "c.db"
    cache = HashCache(db, racy_seconds=0.05, min_size=0)
    cache(str(f))
    del cache
    with HashCache(db, racy_seconds=0.05, min_size=0) as again:
        again(str(f))
        assert again.hits == 1


def test_bad_racy_window_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError):
        HashCache(tmp_path / "c.db", racy_seconds=-1, min_size=0)


def test_a_negative_min_size_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidValueError, match="min_size"):
        HashCache(tmp_path / "c.db", min_size=-1)


def test_files_under_min_size_are_hashed_every_time_and_never_recorded(tmp_path: Path) -> None:
    small = _settled_file(tmp_path / "small", b"s" * 99)
    large = _settled_file(tmp_path / "large", b"L" * 100)
    db = tmp_path / "c.db"
    for _ in range(2):
        with HashCache(db, racy_seconds=0.05, min_size=100) as cache:
            assert cache.sha256_many([str(small), str(large)]) == [
                hashlib.sha256(b"s" * 99).hexdigest(), hashlib.sha256(b"L" * 100).hexdigest()]
    assert (cache.hits, cache.misses) == (1, 0)  # the large one, recorded the first time
    with sqlite3.connect(db) as conn:
        assert conn.execute("select count(*) from files").fetchone() == (1,)


def test_the_default_leaves_files_under_64_kib_to_hashing() -> None:
    assert SMALL_FILE == 64 * 1024
    assert HashCache("/nonexistent/never-opened.db").min_size == SMALL_FILE


def test_a_cache_of_only_small_files_creates_no_file(tmp_path: Path) -> None:
    f = _settled_file(tmp_path / "f", b"tiny")
    with HashCache(tmp_path / "c.db") as cache:
        assert cache(str(f)) == hashlib.sha256(b"tiny").hexdigest()
    assert not (tmp_path / "c.db").exists()


def test_default_path_honours_xdg(tmp_path: Path) -> None:
    assert default_cache_path({"XDG_CACHE_HOME": str(tmp_path), "HOME": "/h"}) == str(
        tmp_path / "taskgraph-images" / "file-hashes.sqlite3")
    assert default_cache_path({"XDG_CACHE_HOME": "relative", "HOME": "/h"}) == (
        "/h/.cache/taskgraph-images/file-hashes.sqlite3")
    assert default_cache_path({"HOME": "/h"}) == "/h/.cache/taskgraph-images/file-hashes.sqlite3"


def test_hasher_for_option(tmp_path: Path) -> None:
    assert hasher_for_option("none") is file_sha256
    assert hasher_for_option("NONE") is file_sha256
    given = hasher_for_option(str(tmp_path / "x.db"))
    assert isinstance(given, HashCache) and given.path == str(tmp_path / "x.db")
    default = hasher_for_option(None, {"XDG_CACHE_HOME": str(tmp_path / "xdg")})
    assert isinstance(default, HashCache)
    assert default.path.startswith(str(tmp_path / "xdg"))
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"")
    assert hasher_for_option(None, {"XDG_CACHE_HOME": str(blocker)}) is file_sha256


def test_cli_hash_cache_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = tmp_path / "repo"
    base = root / "taskcluster" / "docker" / "base"
    base.mkdir(parents=True)
    (base / "Dockerfile").write_bytes(b"FROM debian:12\n")
    (base / "VERSION").write_bytes(b"1.0\n")
    (base / "blob.bin").write_bytes(bytes(SMALL_FILE))  # large enough to be cached
    db = tmp_path / "cli.db"
    assert main(["hash", "--root", str(root), "--hash-cache", str(db)]) == 0
    with_cache = capsys.readouterr().out
    assert db.exists()
    assert main(["hash", "--root", str(root), "--hash-cache", "none"]) == 0
    assert capsys.readouterr().out == with_cache


# -- many files at once (sha256_many) -------------------------------------------------------


def _tree(root: Path, count: int) -> list[str]:
    """``count`` files spread over folders and their sub-folders; their sorted paths."""
    files = {f"d{i % 3}/{'sub/' if i % 2 else ''}f{i}": b"%d" % i * (i % 50) for i in range(count)}
    make_tree(root, files)
    time.sleep(0.1)  # older than the 50 ms racy window below
    return sorted(str(root / rel) for rel in files)


def test_many_files_at_once_equal_one_by_one_then_all_hit(tmp_path: Path) -> None:
    paths = _tree(tmp_path / "t", 40)
    with HashCache(tmp_path / "c.db", racy_seconds=0.05, min_size=0) as cache:
        assert cache.sha256_many(paths) == [file_sha256(p) for p in paths]
        assert (cache.hits, cache.misses) == (0, 40)
    with HashCache(tmp_path / "c.db", racy_seconds=0.05, min_size=0) as cache:
        # A folder and its sub-folder are looked up apart: neither hides the other's rows.
        assert cache.sha256_many(paths) == [file_sha256(p) for p in paths]
        assert (cache.hits, cache.misses) == (40, 0)


def test_a_file_written_while_many_are_hashed_is_not_recorded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import taskgraph_images._hashing.cache as hashcache

    paths = _tree(tmp_path / "t", 10)
    real = hashcache.hash_paths

    def hash_then_write(todo: list[str], *, jobs: object = None) -> list[str]:
        digests = real(todo, jobs=1)
        with open(paths[3], "ab") as f:  # after it was read, before the second stat
            f.write(b"later")
        return digests

    monkeypatch.setattr(hashcache, "hash_paths", hash_then_write)
    # No racy window: the second stat alone must see the write.
    with HashCache(tmp_path / "c.db", racy_seconds=0, min_size=0) as cache:
        cache.sha256_many(paths)
    monkeypatch.setattr(hashcache, "hash_paths", real)
    with contextlib.closing(sqlite3.connect(tmp_path / "c.db")) as db:
        recorded = {bytes(r[0]) for r in db.execute("SELECT path FROM files")}
    assert recorded == {os.fsencode(p) for p in paths} - {os.fsencode(paths[3])}
    time.sleep(0.1)
    with HashCache(tmp_path / "c.db", racy_seconds=0.05, min_size=0) as cache:
        assert cache.sha256_many(paths)[3] == file_sha256(paths[3])
        assert (cache.hits, cache.misses) == (9, 1)


def test_a_missing_file_among_many_is_a_context_error_naming_it(tmp_path: Path) -> None:
    paths = _tree(tmp_path / "t", 5)
    os.unlink(paths[2])
    with HashCache(tmp_path / "c.db", min_size=0) as cache, pytest.raises(
            ContextError, match="cannot read .*f"):
        cache.sha256_many(paths)


_LONG_CACHED = r"""
import os, sys, time
from taskgraph_images import context
from taskgraph_images._hashing.cache import HashCache
root, db = sys.argv[1], sys.argv[2]
for i in range(2500):
    d = os.path.join(root, "img", f"d{i % 7}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, f"f{i}"), "wb") as f:
        f.write(bytes([i % 251]) * (i % 3000))
time.sleep(0.1)
plain = context.hash_context(root, "img", jobs=1)
for _ in range(2):
    with HashCache(db, racy_seconds=0.05, min_size=0) as cache:
        print(context.hash_context(root, "img", jobs=2, hasher=cache) == plain, cache.hits)
"""


def test_a_long_list_through_the_cache_is_hashed_on_forked_workers_and_recorded(
        tmp_path: Path) -> None:
    out = subprocess.run([sys.executable, "-c", _LONG_CACHED, str(tmp_path), str(tmp_path / "c.db")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.split("\n")[:2] == ["True 0", "True 2500"]
