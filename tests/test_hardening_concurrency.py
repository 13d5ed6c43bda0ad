"""Concurrency and crashes: planning and recording into one ``LocalIndex`` at once,
and a ``save`` killed half way.

``tests/test_index_local.py`` already has eight processes calling
``record_build`` at once and a writer killed with SIGKILL in the middle of
recording (every build is then recorded whole or not at all). This file adds
the plan-level loop a decision task runs (plan, record what the plan builds,
plan again) in eight processes against one database, compared with the same
work done one process after the other; and a ``save`` interrupted by Ctrl-C
or by SIGKILL, after which nothing a later ``load`` would accept is left.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from plan_helpers import NOW, params, seeded_task_ids
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.errors import ArtifactError
from taskgraph_images.images.artifacts import load_image, save_image
from taskgraph_images.index import LocalIndex
from taskgraph_images.plan import plan_images

WORKERS = 8
ROUNDS = 3
SHARED = "hardening.shared.latest"


def make_repo(root: Path, worker: int) -> Path:
    """A repository of three chained task images named after ``worker``, and a prebuilt builder."""
    d = "taskcluster/docker"
    return make_tree(root, {
        f"{d}/REGISTRY": "taskcluster\n",
        f"{d}/image_builder/Dockerfile": "FROM debian:12\n",
        f"{d}/image_builder/VERSION": "1.0\n",
        f"{d}/a{worker}/Dockerfile": "FROM debian:12\nCOPY round /\n",
        f"{d}/b{worker}/Dockerfile": f"FROM a{worker}\nRUN echo b\n",
        f"{d}/c{worker}/Dockerfile": f"FROM b{worker}\nRUN echo c\n",
    })


def decision_task_loop(db: str, root: str, worker: int, start_at: float) -> list[dict[str, Any]]:
    """What one decision task does, ``ROUNDS`` times: change ``a``, plan, record the builds,
    plan again. Returns each round's two plans as ``{name: (action, task id, level)}``."""
    while time.time() < start_at:  # start all workers together, after their imports
        time.sleep(0.005)
    index = LocalIndex(db)
    level = 1 + worker % 3
    task_ids = seeded_task_ids(worker)
    rounds = []
    for r in range(ROUNDS):
        (Path(root) / f"taskcluster/docker/a{worker}/round").write_text(f"round {r}\n")
        catalog = ImageCatalog.load(root)
        push = params(level=level, pushdate=1478546787 + 1000 * worker + r)
        first = plan_images(catalog, push, index, task_ids=task_ids, now=NOW)
        for decision in first.decisions.values():
            if decision.action == "build":
                src = Path(root) / f"{decision.name}.tar.zst"
                src.write_bytes(f"{decision.name} {decision.digest}".encode())
                index.record_build(level, decision.name, decision.digest, push.pushdate, src,
                                   task_id=decision.task_id, move=True)
        index.insert_task(SHARED, first[f"a{worker}"].task_id or "", rank=worker * ROUNDS + r)
        second = plan_images(catalog, push, index, task_ids=task_ids, now=NOW)
        rounds.append({
            "first": {n: (d.action, d.task_id, d.level) for n, d in first.decisions.items()},
            "second": {n: (d.action, d.task_id, d.level) for n, d in second.decisions.items()},
        })
    return rounds


def state(index: LocalIndex) -> dict[str, Any]:
    """Everything a later plan could see: entries (less their expiry) and artifacts."""
    entries = index.list_tasks("", recursive=True)
    tasks = sorted({e.task_id for e in entries})
    usable = index.usable_artifacts(tasks, "public/image.tar.zst")
    artifacts = {}
    for t in tasks:
        path = index.artifact_path(t)
        artifacts[t] = None if path is None else path.read_bytes()
    return {
        "entries": sorted((e.namespace, e.task_id, e.rank, dict(e.data).items().__repr__())
                          for e in entries),
        "usable": usable,
        "artifacts": artifacts,
    }


def test_eight_decision_tasks_at_once_end_in_the_sequential_state(tmp_path: Path) -> None:
    together, one_by_one = tmp_path / "together", tmp_path / "one-by-one"
    for base in (together, one_by_one):
        for w in range(WORKERS):
            make_repo(base / f"repo{w}", w)

    expected = [
        decision_task_loop(str(one_by_one / "index.sqlite"), str(one_by_one / f"repo{w}"), w, 0)
        for w in range(WORKERS)
    ]

    ctx = multiprocessing.get_context("spawn")
    start_at = time.time() + 1.5
    jobs = [(str(together / "index.sqlite"), str(together / f"repo{w}"), w, start_at)
            for w in range(WORKERS)]
    with ctx.Pool(WORKERS) as pool:
        results = pool.starmap(decision_task_loop, jobs, chunksize=1)

    assert results == expected  # each worker saw what it would have seen alone
    for rounds in results:
        for r in rounds:
            built = {n: t for n, (action, t, _) in r["first"].items() if action == "build"}
            assert len(built) == 3  # a changed, so a, b and c are built
            assert {n: r["second"][n][:2] for n in built} == {n: ("reuse", t) for n, t in built.items()}
    index = LocalIndex(together / "index.sqlite")
    index.verify()
    got, want = state(index), state(LocalIndex(one_by_one / "index.sqlite"))
    assert got == want
    # No lost insert: per worker and image, a hash and a pushdate namespace per round and
    # one ``latest`` (the last round's); plus the shared entry.
    assert len(got["entries"]) == WORKERS * 3 * (2 * ROUNDS + 1) + 1
    shared = index.find_task(SHARED)
    assert shared is not None and shared.rank == WORKERS * ROUNDS - 1  # the highest rank won


# -- an interrupted save ------------------------------------------------------------------------

SAVER = textwrap.dedent(
    """
    import os, sys, tarfile
    from taskgraph_images.images.artifacts import save_image

    class Endless:
        def save(self, tag):
            # A docker-save tarball whose one layer never ends.
            info = tarfile.TarInfo("layer.tar")
            info.size = 1 << 32
            yield info.tobuf(format=tarfile.USTAR_FORMAT)
            while True:
                yield os.urandom(1 << 20)

    save_image(Endless(), "x", sys.argv[1], threads=1)
    """
)


def test_save_killed_with_sigkill_leaves_nothing_a_load_accepts(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    target = out / "image.tar.zst"
    with open(tmp_path / "stderr", "w+b") as stderr:
        proc = subprocess.Popen([sys.executable, "-c", SAVER, str(target)],
                                stdout=subprocess.DEVNULL, stderr=stderr)
        deadline = time.monotonic() + 30
        while not any(p.stat().st_size > (1 << 20) for p in out.iterdir()):
            if proc.poll() is not None or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        running = proc.poll() is None
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stderr.seek(0)
        assert running, f"the save never got going: {stderr.read().decode()}"
    assert not target.exists()
    leftovers = list(out.iterdir())
    assert [p.name.endswith(".partial") and p.name.startswith(".image.tar.zst.")
            for p in leftovers] == [True]
    with pytest.raises(ArtifactError, match="truncated"):
        load_image(str(leftovers[0]), output=tmp_path / "out.tar")
    assert not (tmp_path / "out.tar").exists()


class Interrupted:
    """An engine whose stream is cut by Ctrl-C half way."""

    def save(self, tag: str) -> Any:
        yield os.urandom(1 << 20)
        raise KeyboardInterrupt


def test_save_interrupted_by_ctrl_c_leaves_no_file(tmp_path: Path) -> None:
    with pytest.raises(KeyboardInterrupt):
        save_image(Interrupted(), "x", tmp_path / "image.tar.zst", threads=1)  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []
