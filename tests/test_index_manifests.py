"""Manifests in the indexes: the local index's schema upgrade, storing and reading them."""

from __future__ import annotations

import datetime
import sqlite3
from pathlib import Path

import pytest

from taskgraph_images.errors import IndexStoreError
from taskgraph_images.index import LocalIndex, MemoryIndex, latest_namespace
from taskgraph_images.index._common import new_task_id
from taskgraph_images.index.local import SCHEMA_VERSION
from taskgraph_images.manifest import DEFAULT_MANIFEST_ARTIFACT, ContextManifest, parse_manifest

DIGEST = "a" * 64
PUSHDATE = 1478546787
PAST = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
MANIFEST = ContextManifest("builder", DIGEST, "seed", {"taskcluster/docker/builder/Dockerfile":
                                                       "b" * 64})

# The schema as version 1 of taskgraph-images wrote it.
SCHEMA_V1 = """
CREATE TABLE entries (namespace TEXT PRIMARY KEY, task_id TEXT NOT NULL, rank REAL NOT NULL,
    expires REAL NOT NULL, data TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE tasks (task_id TEXT PRIMARY KEY, state TEXT NOT NULL, updated REAL NOT NULL)
    WITHOUT ROWID;
CREATE TABLE artifacts (task_id TEXT NOT NULL, name TEXT NOT NULL, size INTEGER NOT NULL,
    expires REAL NOT NULL, PRIMARY KEY (task_id, name)) WITHOUT ROWID;
PRAGMA user_version=1;
"""


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "image.tar.zst"
    path.write_bytes(b"image")
    return path


def version_1_index(tmp_path: Path, image: Path) -> tuple[LocalIndex, str]:
    """An index written by version 1, holding one recorded build."""
    path = tmp_path / "index.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_V1)
    conn.close()
    index = LocalIndex(path)
    # Record through the old tables only, as version 1 did.
    task_id = new_task_id()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO tasks VALUES (?, 'completed', 0)", (task_id,))
        conn.execute("INSERT INTO entries VALUES (?, ?, 0, 4e9, '{}')",
                     (latest_namespace(3, "builder"), task_id))
    conn.close()
    return index, task_id


def test_a_version_1_index_is_read_as_it_is_and_upgraded_by_the_first_write(
    tmp_path: Path, image: Path
) -> None:
    index, old_task = version_1_index(tmp_path, image)
    namespace = latest_namespace(3, "builder")
    assert index.find_task(namespace).task_id == old_task  # type: ignore[union-attr]
    read = index.read_artifacts([old_task], DEFAULT_MANIFEST_ARTIFACT, limit=1000)
    assert read[old_task].data is None
    assert read[old_task].problem == f"task {old_task} has no {DEFAULT_MANIFEST_ARTIFACT}"
    assert _version(index) == 1  # reading changed nothing

    task_id = index.record_build(3, "builder", DIGEST, PUSHDATE, image, manifest=MANIFEST)
    assert _version(index) == SCHEMA_VERSION == 2
    assert index.find_task(namespace).task_id == task_id  # type: ignore[union-attr]
    data = index.read_artifacts([task_id], DEFAULT_MANIFEST_ARTIFACT, limit=10**6)[task_id].data
    assert data is not None and parse_manifest(data) == MANIFEST
    index.verify()


def test_an_upgrade_is_one_transaction_that_keeps_a_newer_index_refused(tmp_path: Path) -> None:
    path = tmp_path / "index.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(SCHEMA_V1.replace("user_version=1", "user_version=3"))
    conn.close()
    with pytest.raises(IndexStoreError, match="schema version 3, newer than"):
        LocalIndex(path).store_manifest(new_task_id(), MANIFEST)


def _version(index: LocalIndex) -> int:
    conn = sqlite3.connect(index.path)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def test_the_latest_namespace_leads_to_the_manifest(tmp_path: Path, image: Path) -> None:
    index = LocalIndex(tmp_path / "index.sqlite")
    task_id = index.record_build(2, "builder", DIGEST, PUSHDATE, image, manifest=MANIFEST,
                                 manifest_artifact="public/m.json")
    entry = index.find_task(latest_namespace(2, "builder"))
    assert entry is not None and entry.task_id == task_id
    assert index.read_artifacts([task_id], "public/m.json", limit=10**6)[task_id].data == \
        MANIFEST.dumps()
    assert index.read_artifacts([task_id], DEFAULT_MANIFEST_ARTIFACT, limit=10**6)[task_id].problem


def test_stored_manifests_and_artifact_files_are_bounded_and_expire(
    tmp_path: Path, image: Path
) -> None:
    index = LocalIndex(tmp_path / "index.sqlite")
    small, big, gone, filed = (new_task_id() for _ in range(4))
    index.store_manifest(small, MANIFEST)
    index.store_manifest(big, ContextManifest("builder", DIGEST, "seed",
                                              {f"f{i}": "c" * 64 for i in range(100)}))
    index.store_manifest(gone, MANIFEST, expires=PAST)
    raw = tmp_path / "raw"
    raw.write_bytes(b"from a file")
    index.store_artifact(filed, DEFAULT_MANIFEST_ARTIFACT, raw)
    limit = len(MANIFEST.dumps())
    read = index.read_artifacts([small, big, gone, filed], DEFAULT_MANIFEST_ARTIFACT, limit=limit)
    assert read[small].data == MANIFEST.dumps()
    assert read[big].problem.endswith(f"bytes, more than {limit}")
    assert read[gone].problem == f"task {gone} has no {DEFAULT_MANIFEST_ARTIFACT}"
    assert read[filed].data == b"from a file"
    assert index.read_artifacts([filed], DEFAULT_MANIFEST_ARTIFACT, limit=3)[filed].problem
    (index.store / filed / DEFAULT_MANIFEST_ARTIFACT).unlink()
    problem = index.read_artifacts([filed], DEFAULT_MANIFEST_ARTIFACT, limit=limit)[filed].problem
    assert "cannot be read" in problem
    assert LocalIndex(tmp_path / "none.sqlite").read_artifacts(
        [small], DEFAULT_MANIFEST_ARTIFACT, limit=9)[small].problem


def test_the_memory_index_holds_manifests_too() -> None:
    index = MemoryIndex()
    task_id = index.record_build(3, "builder", DIGEST, PUSHDATE, manifest=MANIFEST)
    late = new_task_id()
    index.add_manifest(late, b"x" * 10, expires=PAST)
    read = index.read_artifacts([task_id, late], DEFAULT_MANIFEST_ARTIFACT, limit=10**6)
    assert read[task_id].data == MANIFEST.dumps()
    assert read[late].problem == f"task {late} has no {DEFAULT_MANIFEST_ARTIFACT}"
    assert "more than 5" in index.read_artifacts([task_id], DEFAULT_MANIFEST_ARTIFACT,
                                                 limit=5)[task_id].problem
