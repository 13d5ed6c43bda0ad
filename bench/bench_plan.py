"""Benchmark: plan 300 generated images (5 levels of parents) against a slow index.

A repository of ``images`` task images is generated in a temporary folder:
five generations, each image ``FROM`` one of the previous generation. The
loopback Taskcluster server of ``tests/support/tcserver.py`` (in a child process, as
a real index is remote) adds ``latency`` seconds (20 ms) to every request;
two thirds of the images are indexed (some at each level). Timed:

- ``plan``: end to end -- load the catalog, hash every context, compute the
  digests, :func:`~taskgraph_images.plan.plan_images` on a
  :class:`~taskgraph_images.index.TaskclusterIndex` (one batched lookup),
  and generate every build task;
- ``explained``: the same plan with its explanations (``explain=True``):
  every image also has an earlier build in its level's ``latest`` namespace
  whose context manifest differs by one file, so each build's explanation
  fetches and compares a manifest. ``cost`` is its time over ``plan``'s
  (the issue's bound: :data:`EXPLAIN_TARGET`);
- ``sequential``: the same catalog work, then one request after another per
  image and namespace (``findTask`` per level, then ``status`` and
  ``latestArtifactInfo``), as the 2016 decision task did.

``plan`` and ``explained`` each run five times, alternately; the fastest run counts
(this 2-core host is shared, and one run can take twice as long as the next).

Run ``python bench/bench_plan.py``; import it and call :func:`run` for numbers.
"""

from __future__ import annotations

import datetime
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from loopback import obey, serving

__all__ = ["EXPLAIN_TARGET", "GENERATIONS", "TARGET", "main", "make_repository", "run"]

GENERATIONS = 5
#: The issue's bound on the end-to-end plan, in seconds.
TARGET = 2.0
#: The issue's bound on a plan with explanations, relative to one without.
EXPLAIN_TARGET = 2.0
_PARAMS = {
    "level": 1,
    "project": "bench",
    "pushdate": 1478546787,
    "head_repository": "https://example.com/bench",
    "head_rev": "0" * 40,
    "base_repository": "https://example.com/bench",
    "owner": "bench@example.com",
    "source": "https://example.com/bench",
}


def make_repository(root: Path, images: int) -> list[str]:
    """Write ``images`` image folders under ``root/taskcluster/docker``; return their names."""
    per = max(1, images // GENERATIONS)
    names = []
    for i in range(images):
        generation = min(i // per, GENERATIONS - 1)
        name = f"g{generation}-img{i:04d}"
        folder = root / "taskcluster" / "docker" / name
        folder.mkdir(parents=True)
        if generation == 0:
            base = "debian:12"
        else:
            parent_index = (i - per) if i - per >= 0 else 0
            pg = min(parent_index // per, GENERATIONS - 1)
            base = f"g{pg}-img{parent_index:04d}:latest"
        (folder / "Dockerfile").write_text(f"FROM {base}\nRUN echo {name}\n")
        (folder / "setup.sh").write_text(f"#!/bin/sh\necho {i}\n" * 20)
        names.append(name)
    builder = root / "taskcluster" / "docker" / "image_builder"
    builder.mkdir()
    (builder / "Dockerfile").write_text("FROM debian:12\n")
    (builder / "VERSION").write_text("1.0\n")
    return names


def _serve(conn: Any, plants: list[tuple[int, str, str]], latency: float,
           earlier: list[tuple[int, str, bytes]]) -> None:
    from tcserver import TCServer

    from taskgraph_images.index import hash_namespace, latest_namespace
    from taskgraph_images.manifest import DEFAULT_MANIFEST_ARTIFACT

    with TCServer() as server:
        for level, name, digest in plants:
            server.index_task(hash_namespace(level, name, digest), server.add_task())
        for level, name, manifest in earlier:
            task_id = server.add_task(artifacts={DEFAULT_MANIFEST_ARTIFACT: manifest})
            server.index_task(latest_namespace(level, name), task_id)
        server.latency = latency
        if hasattr(server, "validate_responses"):
            server.validate_responses = False  # CPU only; the tests check the responses
        conn.send(server.root_url)
        obey(conn, server)


def _sequential(index: Any, catalog: Any) -> dict[str, Optional[str]]:
    from bench_index import sequential_lookup

    requests = [(n, catalog.digest(n)) for n in catalog.order() if not catalog[n].prebuilt]
    found: dict[str, Optional[str]] = sequential_lookup(index, requests)
    return found


def _earlier(catalog: Any, names: list[str]) -> list[tuple[int, str, bytes]]:
    """An earlier build of every image: its manifest with setup.sh's old content."""
    import attrs

    from taskgraph_images.manifest import build_manifest

    out = []
    for i, name in enumerate(names):
        m = build_manifest(catalog, name)
        members = [(p, "0" * 64 if p.endswith("/setup.sh") else h) for p, h in m.members]
        old = attrs.evolve(m, members=members, digest=f"{i:064x}")
        out.append((i % 3 + 1, name, old.dumps()))
    return out


def run(images: int = 300, latency: float = 0.020) -> dict[str, dict[str, float]]:
    """Run the benchmark; return ``{label: {"wall": s, "requests": n, "ratio": x}}``.

    ``ratio`` is how many times faster than the sequential approach.
    """
    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.index import TaskclusterIndex
    from taskgraph_images.plan import plan_images
    from taskgraph_images.tc.env import TaskclusterEnv

    with tempfile.TemporaryDirectory(prefix="bench-plan-") as tmp:
        root = Path(tmp)
        names = make_repository(root, images)
        probe = ImageCatalog.load(root)
        # Every third root image (and so its whole line) is missing; the rest
        # are indexed at level 1, 2 or 3.
        plants = [(i % 3 + 1, n, probe.digest(n)) for i, n in enumerate(names) if i % 3 != 2]
        with serving(_serve, plants, latency, _earlier(probe, names)) as parent:
            root_url = parent.recv()
            TaskclusterIndex(root_url, env=TaskclusterEnv())  # import the client outside the timings
            now = datetime.datetime.now(datetime.timezone.utc)

            def ask(command: str) -> int:
                parent.send(command)
                return int(parent.recv())

            best: dict[bool, tuple[float, int, Any]] = {}
            for explain in (False, True) * 5:
                ask("clear")
                start = time.perf_counter()
                catalog = ImageCatalog.load(root)
                index = TaskclusterIndex(root_url, max_retries=2, env=TaskclusterEnv())
                plan = plan_images(catalog, _PARAMS, index, now=now, explain=explain)
                wall = time.perf_counter() - start
                if explain not in best or wall < best[explain][0]:
                    best[explain] = (wall, ask("count"), plan)
            plan_wall, plan_requests, plan = best[False]
            explained_wall, explained_requests, explained = best[True]
            ask("clear")

            start = time.perf_counter()
            catalog = ImageCatalog.load(root)
            index = TaskclusterIndex(root_url, max_retries=2, env=TaskclusterEnv())
            found = _sequential(index, catalog)
            seq_wall = time.perf_counter() - start
            seq_requests = ask("count")
            parent.send("stop")
    reused = {n: d.task_id for n, d in plan.decisions.items() if d.action == "reuse"}
    # Both ways find the same builds (the plan also rebuilds children of built parents).
    assert all(found[n] == t for n, t in reused.items()), "the two approaches disagree"
    builds = [d for d in explained.decisions.values() if d.action == "build"]
    assert builds and all(d.changes is not None for d in builds), "a build went unexplained"
    assert {n: d.task_id for n, d in explained.decisions.items() if d.action == "reuse"} == reused
    return {
        "plan": {
            "wall": plan_wall,
            "requests": plan_requests,
            "ratio": seq_wall / plan_wall,
            "tasks": len(plan.tasks),
        },
        "explained": {
            "wall": explained_wall,
            "requests": explained_requests,
            "ratio": seq_wall / explained_wall,
            "cost": explained_wall / plan_wall,
            "builds": len(builds),
        },
        "sequential": {"wall": seq_wall, "requests": seq_requests, "ratio": 1.0},
    }


def main() -> int:
    """Print the numbers and whether the end-to-end plan stays under :data:`TARGET`."""
    images = int(os.environ.get("BENCH_PLAN_IMAGES", "300"))
    numbers = run(images)
    print(f"{images} images, {GENERATIONS} generations, 20 ms per request")
    for label, n in numbers.items():
        print(
            f"{label:>10}: {n['wall']:6.2f} s  {int(n['requests']):5d} requests  "
            f"{n['ratio']:5.1f}x faster than sequential"
        )
    ok = numbers["plan"]["wall"] < TARGET
    print(f"target: plan < {TARGET:.0f} s: {'ok' if ok else 'SLOW'}")
    cost = numbers["explained"]["cost"]
    cheap = cost <= EXPLAIN_TARGET
    print(f"target: explained plan <= {EXPLAIN_TARGET:.0f}x the plan "
          f"({int(numbers['explained']['builds'])} builds explained): {cost:.2f}x, "
          f"{'ok' if cheap else 'SLOW'}")
    return 0 if ok and cheap else 1


if __name__ == "__main__":
    sys.exit(main())
