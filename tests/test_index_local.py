"""LocalIndex: Index semantics, artifact store, concurrency, crashes, bad files."""

from __future__ import annotations

import datetime
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from index_helpers import PAST, digest_of

from taskgraph_images.errors import IndexStoreError
from taskgraph_images.index import LocalIndex, default_index_path, find_image, index_namespaces

T1 = "KD5yPlwqQtS7t4ieeFU-mA"
T2 = "Lc4c8BZ-RUqC0eL4TVTiRw"
UTC = datetime.timezone.utc


@pytest.fixture
def index(tmp_path: Path) -> LocalIndex:
    return LocalIndex(tmp_path / "index.sqlite")


def _artifact(tmp_path: Path, text: str = "image") -> Path:
    path = tmp_path / f"{text}.tar.zst"
    path.write_bytes(text.encode())
    return path


def test_default_path_honours_xdg_cache_home() -> None:
    assert default_index_path({"XDG_CACHE_HOME": "/c"}) == Path("/c/taskgraph-images/index.sqlite")


def test_reading_a_missing_index_finds_nothing_and_creates_nothing(index: LocalIndex) -> None:
    assert index.find_tasks(["a.b"]) == {}
    assert not index.path.exists()


def test_equal_or_higher_rank_replaces_the_entry(index: LocalIndex) -> None:
    index.insert_task("a.b", T1, rank=1)
    assert index.insert_task("a.b", T2, rank=1).task_id == T2


def test_lower_rank_keeps_the_entry(index: LocalIndex) -> None:
    index.insert_task("a.b", T1, rank=2)
    assert index.insert_task("a.b", T2, rank=1).task_id == T1


def test_expired_entry_is_not_found(index: LocalIndex) -> None:
    index.insert_task("a.b", T1, expires=PAST)
    assert index.find_task("a.b") is None


def test_expired_entry_is_replaced_whatever_the_rank(index: LocalIndex) -> None:
    index.insert_task("a.b", T1, rank=9, expires=PAST)
    assert index.insert_task("a.b", T2, rank=0).task_id == T2


def test_list_tasks_lists_direct_children_or_everything_under(index: LocalIndex) -> None:
    for ns in ("a.b.one", "a.b.two", "a.b.c.deep", "a.bc"):
        index.insert_task(ns, T1)
    assert [e.namespace for e in index.list_tasks("a.b")] == ["a.b.one", "a.b.two"]
    assert [e.namespace for e in index.list_tasks("a.b", recursive=True)] == [
        "a.b.c.deep", "a.b.one", "a.b.two"]


def test_record_build_indexes_three_namespaces_and_stores_the_artifact(
    index: LocalIndex, tmp_path: Path
) -> None:
    d = digest_of("x")
    task_id = index.record_build(3, "x", d, 0, _artifact(tmp_path))
    found = index.find_tasks(list(index_namespaces(3, "x", d, 0)))
    assert {e.task_id for e in found.values()} == {task_id} and len(found) == 3
    path = index.artifact_path(task_id)
    assert path is not None and path.read_bytes() == b"image"
    assert find_image(index, "x", d, 1).found is not None


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_record_build_indexes_under_the_namespaces_given(
    index: LocalIndex, tmp_path: Path, kind: str
) -> None:
    """taskgraph's namespaces, say, in place of the three: the build and its manifest alike."""
    from taskgraph_images.errors import InvalidValueError
    from taskgraph_images.index import MemoryIndex

    backend = index if kind == "local" else MemoryIndex()
    files = (_artifact(tmp_path),) if kind == "local" else ()
    d = digest_of("x")
    wanted = [f"proj.cache.level-2.docker-images.v2.x.hash.{d}",
              "proj.cache.level-2.docker-images.v2.x.latest"]
    task_id = backend.record_build(2, "x", d, 0, *files, namespaces=wanted)
    assert {e.namespace: e.task_id for e in backend.list_tasks("proj", recursive=True)} == \
        dict.fromkeys(wanted, task_id)
    assert backend.find_task(index_namespaces(2, "x", d, 0)[0]) is None
    with pytest.raises(InvalidValueError, match="needs at least one namespace"):
        backend.record_build(2, "x", d, 0, *files, namespaces=[])
    with pytest.raises(InvalidValueError, match="invalid index namespace"):
        backend.record_build(2, "x", d, 0, *files, namespaces=["a..b"])


def test_record_build_with_move_removes_the_source(index: LocalIndex, tmp_path: Path) -> None:
    src = _artifact(tmp_path)
    index.record_build(3, "x", digest_of("x"), 0, src, move=True)
    assert not src.exists()


def test_artifact_path_is_none_for_a_truncated_file(index: LocalIndex, tmp_path: Path) -> None:
    task_id = index.record_build(3, "x", digest_of("x"), 0, _artifact(tmp_path))
    path = index.artifact_path(task_id)
    assert path is not None
    path.write_bytes(b"im")
    assert index.artifact_path(task_id) is None
    assert find_image(index, "x", digest_of("x"), 3).reason == "artifact missing at level 3"


def test_store_leaves_no_partial_file_when_the_copy_fails(
    index: LocalIndex, tmp_path: Path
) -> None:
    with pytest.raises(IndexStoreError, match="cannot store artifact"):
        index.store_artifact(T1, "public/image.tar.zst", tmp_path / "missing")
    assert not any(p.is_file() for p in index.store.rglob("*"))


def test_corrupt_file_gives_a_clear_error_and_is_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    garbage = os.urandom(4096)
    path.write_bytes(garbage)
    index = LocalIndex(path)
    with pytest.raises(IndexStoreError, match=f"local index {path} is corrupt"):
        index.find_tasks(["a.b"])
    with pytest.raises(IndexStoreError, match="corrupt"):
        index.insert_task("a.b", T1)
    assert path.read_bytes() == garbage
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.sqlite"]


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(IndexStoreError, match="not a taskgraph-images index"):
        LocalIndex(path).insert_task("a.b", T1)


def test_index_from_a_newer_version_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA user_version=99")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(IndexStoreError, match="schema version 99, newer than"):
        LocalIndex(path).find_task("a.b")
    assert path.read_bytes() == before


def test_locked_database_gives_a_clear_error_and_keeps_its_data(index: LocalIndex) -> None:
    index.insert_task("a.b", T1)
    holder = sqlite3.connect(index.path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        quick = LocalIndex(index.path, busy_timeout=0.2)
        with pytest.raises(IndexStoreError, match=f"local index {index.path} is locked"):
            quick.insert_task("a.c", T2)
        holder.execute("ROLLBACK")
    finally:
        holder.close()
    assert index.find_task("a.b") is not None and index.find_task("a.c") is None


WRITER = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from taskgraph_images.index import LocalIndex
    db, worker, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    index = LocalIndex(db)
    src = Path(db).parent / f"src-{worker}"
    for i in range(count):
        src.write_bytes(b"x" * (i + 1))
        name = f"w{worker}-{i}"
        index.record_build(1 + i % 3, name, "%064x" % (worker * 100000 + i), i, src)
        print(i, flush=True)
    """
)


def test_eight_processes_recording_at_once_lose_nothing(index: LocalIndex) -> None:
    count = 25
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(index.path), str(w), str(count)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for w in range(8)
    ]
    errors = [p.communicate(timeout=120)[1] for p in procs]
    assert [p.returncode for p in procs] == [0] * 8, errors
    everything = index.list_tasks("docker.images.v2", recursive=True)
    assert len(everything) == 8 * count * 3
    index.verify()
    for w in range(8):
        for i in range(count):
            d = "%064x" % (w * 100000 + i)
            found = find_image(index, f"w{w}-{i}", d, 1).found
            assert found is not None and found.level == 1 + i % 3


OPENER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from taskgraph_images.index import LocalIndex
    folder, worker, count, start_at = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
    while time.time() < start_at:
        time.sleep(0.002)
    for i in range(count):
        index = LocalIndex(folder / f"{i}.sqlite")
        index.find_task("a.b")
        index.insert_task(f"w{worker}.latest", "KD5yPlwqQtS7t4ieeFU-mA")
        index.find_task(f"w{worker}.latest")
    """
)


def test_processes_creating_the_same_new_index_at_once_all_succeed(tmp_path: Path) -> None:
    # Regression: a reader that saw the schema half way (tables but no version yet)
    # took the new index for a foreign database.
    count, workers = 40, 8
    start_at = time.time() + 2.0
    procs = [
        subprocess.Popen([sys.executable, "-c", OPENER, str(tmp_path), str(w), str(count), str(start_at)],
                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        for w in range(workers)
    ]
    errors = [p.communicate(timeout=120)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0] * workers, errors
    for i in range(count):
        entries = LocalIndex(tmp_path / f"{i}.sqlite").list_tasks("", recursive=True)
        assert sorted(e.namespace for e in entries) == [f"w{w}.latest" for w in range(workers)]


def test_sigkill_during_writes_leaves_a_consistent_database(index: LocalIndex) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(index.path), "0", "100000"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    assert proc.stdout is not None
    for _ in range(40):
        proc.stdout.readline()
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    index.verify()
    entries = index.list_tasks("docker.images.v2", recursive=True)
    by_task: dict[str, list[str]] = {}
    for e in entries:
        by_task.setdefault(e.task_id, []).append(e.namespace)
    assert len(by_task) >= 40
    assert all(len(v) == 3 for v in by_task.values())  # never a half-recorded build
    for task_id in by_task:
        assert index.artifact_path(task_id) is not None
    # A file placed just before the kill has no row: it is never handed out.
    assert not any(index.artifact_path(p.parent.parent.name) == p
                   for p in index.store.rglob("*.partial"))
