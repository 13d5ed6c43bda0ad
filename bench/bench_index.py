"""Benchmark: look up 300 images across 3 levels against a slow loopback index.

The loopback Taskcluster server of ``tests/support/tcserver.py`` adds ``latency``
seconds (20 ms) to every request. Three ways are timed:

- ``batch``: :func:`find_images` on a :class:`TaskclusterIndex` (one
  ``findTasksAtIndex`` request per 1000 namespaces, one ``statuses``, then
  ``latestArtifactInfo`` on a bounded pool);
- ``fallback``: the same with ``findTasksAtIndex`` answering 404 (bounded
  concurrent ``findTask``);
- ``sequential``: one request after another, the way the 2016 decision task
  did it (``findTask`` per level, then ``status`` and ``latestArtifactInfo``).

Run ``python bench/bench_index.py``; import it and call :func:`run` for numbers.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "support"))

from loopback import serving
from tcserver import TCServer

from taskgraph_images.index import (
    TaskclusterIndex,
    find_images,
    hash_namespace,
    search_order,
)
from taskgraph_images.tc.env import TaskclusterEnv

__all__ = ["main", "run", "sequential_lookup"]


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _plant(server: TCServer, images: int) -> list[tuple[str, str]]:
    """Image i is indexed at level i % 3 + 1; one in ten is not indexed at all."""
    requests = []
    for i in range(images):
        name = f"image-{i:04d}"
        requests.append((name, _digest(name)))
        if i % 10 == 9:
            continue
        task_id = server.add_task()
        server.index_task(hash_namespace(i % 3 + 1, name, _digest(name)), task_id)
    return requests


def sequential_lookup(index: TaskclusterIndex, requests: list[tuple[str, str]]) -> dict[str, Any]:
    """Look images up one namespace at a time, as the 2016 decision task did."""
    found: dict[str, Any] = {}
    for name, digest in requests:
        found[name] = None
        for candidate in search_order(name, digest, 1):
            entry = index.find_task(candidate.namespace)
            if entry is None:
                continue
            verdict = index.usable_artifacts([entry.task_id], "public/image.tar.zst")
            if verdict[entry.task_id].usable:
                found[name] = entry.task_id
                break
    return found


def _serve(conn: Any, images: int, latency: float) -> None:
    """Run the loopback server in its own process and obey ``conn``'s commands."""
    with TCServer() as server:
        requests = _plant(server, images)
        server.latency = latency
        server.validate_responses = False  # the tests do that; here it is only CPU
        conn.send((server.root_url, requests))
        while True:
            command, arg = conn.recv()
            if command == "stop":
                break
            if command == "clear":
                server.requests.clear()
            elif command == "disable":
                server.disable(arg, 404)
            conn.send(server.count())


def run(images: int = 300, latency: float = 0.020, *,
        sequential: bool = True) -> dict[str, dict[str, float]]:
    """Run the benchmark; return ``{label: {"wall": s, "requests": n, "ratio": x}}``.

    The server runs in a child process, as a real index would be remote, so
    that its CPU time does not compete with the client's for one interpreter.
    """
    with serving(_serve, images, latency) as parent:
        root_url, requests = parent.recv()

        def ask(command: str, arg: Any = None) -> int:
            parent.send((command, arg))
            return int(parent.recv())

        def measure(label: str, func: Any) -> dict[str, Any]:
            ask("clear")
            start = time.perf_counter()
            result = func()
            wall = time.perf_counter() - start
            return {"label": label, "wall": wall, "requests": ask("count"), "result": result}

        TaskclusterIndex(root_url, env=TaskclusterEnv())  # import the client outside the timings

        def batch() -> Any:
            index = TaskclusterIndex(root_url, max_retries=2, env=TaskclusterEnv())
            r = find_images(index, requests, 1)
            return {n: lk.found.task_id if lk.found else None for n, lk in r.items()}

        runs = [measure("batch", batch)]
        ask("disable", "findTasksAtIndex")
        runs.append(measure("fallback", batch))
        if sequential:
            index = TaskclusterIndex(root_url, max_retries=2, env=TaskclusterEnv())
            runs.append(measure("sequential", lambda: sequential_lookup(index, requests)))
        parent.send(("stop", None))
    reference = runs[0]["result"]
    for r in runs[1:]:
        assert r["result"] == reference, f"{r['label']} found different images"
    slowest = runs[-1]["wall"]
    return {
        r["label"]: {"wall": r["wall"], "requests": r["requests"], "ratio": slowest / r["wall"]}
        for r in runs
    }


def main() -> int:
    """Print the numbers and whether the targets (batch < 1.5 s, fallback < 3 s) hold."""
    numbers = run()
    targets = {"batch": 1.5, "fallback": 3.0}
    print("300 images, 3 levels, 20 ms per request")
    for label, n in numbers.items():
        target = targets.get(label)
        verdict = "" if target is None else (" ok" if n["wall"] < target else " SLOW")
        print(f"{label:>10}: {n['wall']:6.2f} s  {n['requests']:5d} requests  "
              f"{n['ratio']:5.1f}x faster than sequential{verdict}")
    return 0 if all(numbers[k]["wall"] < v for k, v in targets.items()) else 1


if __name__ == "__main__":
    sys.exit(main())
