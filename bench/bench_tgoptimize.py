"""Benchmark: taskgraph's optimization phase for 60 docker images, ours against taskgraph's.

The loopback Taskcluster server of ``tests/support/tcserver.py`` (in its own process)
adds ``latency`` seconds (50 ms) to every request. A graph of 60
docker-image tasks of a level 3 push, each used by one task whose deadline
is 3 days away, goes through taskgraph's own ``optimize_task_graph`` (ours
after the ``target_task_graph`` verification that ``register`` adds, which
opens connections ahead; its time is counted) (the
installed taskgraph), once with ``index-search`` being taskgraph's
:class:`~taskgraph.optimize.strategies.IndexSearch` and once being ours
(:class:`~taskgraph_images.taskgraph._optimize.SoundIndexSearch`). Every
image is indexed at level 3 by a completed task; every tenth one's artifact
has expired, which taskgraph reuses and ours rebuilds.

Each contender runs in a child process, round after round; the numbers are
medians: the phase's wall time, the requests made, and the round trips in
sequence (:meth:`TCServer.in_sequence`).

Run ``python bench/bench_tgoptimize.py``; import it and call :func:`run` for numbers.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests" / "support"))

from loopback import obey, serving  # noqa: E402
from tcserver import TCServer  # noqa: E402

from taskgraph_images.keys.taskgraph import cache_namespace  # noqa: E402

__all__ = ["main", "run"]

PREFIX = "bench"
DAY = datetime.timedelta(days=1)


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def _names(images: int) -> list[str]:
    return [f"image-{i:02d}" for i in range(images)]


def _serve(conn: Any, images: int, latency: float) -> None:
    """Run the loopback server with the images planted; obey ``conn``'s commands."""
    now = datetime.datetime.now(datetime.timezone.utc)
    with TCServer() as server:
        for i, name in enumerate(_names(images)):
            expires = now - DAY if i % 10 == 9 else now + 300 * DAY
            task_id = server.add_task(artifact_expires=expires)
            server.index_task(cache_namespace(PREFIX, name, _digest(name), level=3), task_id)
        server.latency = latency
        server.validate_responses = False  # the tests do that; here it is only CPU
        conn.send(server.root_url)
        obey(conn, server)


def _child(contender: str, images: int) -> dict[str, Any]:
    """Build the graph and run the optimization phase once (in a child process)."""
    from taskgraph.graph import Graph
    from taskgraph.optimize.base import optimize_task_graph
    from taskgraph.optimize.strategies import IndexSearch
    from taskgraph.task import Task
    from taskgraph.taskgraph import TaskGraph

    tasks: dict[str, Any] = {}
    edges = set()
    for name in _names(images):
        digest = _digest(name)
        label = f"docker-image-{name}"
        tasks[label] = Task(
            kind="docker-image", label=label,
            attributes={"image_name": name,
                        "cached_task": {"type": "docker-images.v2", "name": name,
                                        "digest": digest}},
            task={"deadline": {"relative-datestamp": "1 day"}},
            optimization={"index-search": [cache_namespace(PREFIX, name, digest, level=3)]})
        user = f"check-{name}"
        tasks[user] = Task(kind="check", label=user, attributes={},
                           task={"deadline": {"relative-datestamp": "3 days"}},
                           dependencies={"docker-image": label})
        edges.add((user, label, "docker-image"))
    graph = TaskGraph(tasks, Graph(frozenset(tasks), frozenset(edges)))
    params = {"level": "3"}
    strategy: Any = IndexSearch()
    if contender == "ours":  # what register() imports and installs, before the decision
        from taskgraph.optimize import base
        from taskgraph.util.verify import GraphVerification

        from taskgraph_images.taskgraph._optimize import Settings, SoundIndexSearch, get_ready

        strategy = SoundIndexSearch(Settings(PREFIX), strategy)
        base.registry["index-search"] = strategy
    start = time.perf_counter()
    if contender == "ours":
        # taskgraph's last step before the optimization: the target graph's
        # verifications, ours among them (register() adds it)
        GraphVerification(get_ready).verify(graph, None, params)
    optimized, _ = optimize_task_graph(graph, set(tasks), params, set(), "DECISION",
                                       strategy_override={"index-search": strategy})
    seconds = time.perf_counter() - start
    kept = {t.label for t in optimized.tasks.values()}
    reused = sum(1 for label in tasks if label.startswith("docker-image-") and label not in kept)
    return {"seconds": seconds, "reused": reused}


def run(images: int = 60, latency: float = 0.050, rounds: int = 3) -> dict[str, Any]:
    """Return ``{contender: {"wall", "requests", "in_sequence", "reused"}}`` and the ratio."""
    results: dict[str, list[dict[str, Any]]] = {"taskgraph": [], "ours": []}
    with serving(_serve, images, latency) as conn:
        root_url = conn.recv()
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("TASKCLUSTER_")},
               "TASKCLUSTER_ROOT_URL": root_url,
               "PYTHONPATH": os.pathsep.join([str(HERE.parent), os.environ.get("PYTHONPATH", "")])}
        for r in range(rounds):
            order = ("taskgraph", "ours") if r % 2 == 0 else ("ours", "taskgraph")
            for contender in order:
                conn.send("clear")
                conn.recv()
                done = subprocess.run(
                    [sys.executable, str(Path(__file__).resolve()), "--child", contender,
                     str(images)], env=env, capture_output=True, text=True, check=False)
                if done.returncode != 0:
                    raise RuntimeError(f"{contender} failed: {done.stderr[-1000:]}")
                result = json.loads(done.stdout.strip().splitlines()[-1])
                conn.send("count")
                result["requests"] = conn.recv()
                conn.send("sequence")
                result["in_sequence"] = conn.recv()
                results[contender].append(result)
        conn.send("stop")
    out: dict[str, Any] = {}
    for contender, rs in results.items():
        out[contender] = {
            "wall": statistics.median(x["seconds"] for x in rs),
            "requests": int(statistics.median(x["requests"] for x in rs)),
            "in_sequence": int(statistics.median(x["in_sequence"] for x in rs)),
            "reused": rs[-1]["reused"],
        }
    out["ours_over_taskgraph"] = out["ours"]["wall"] / out["taskgraph"]["wall"]
    # The physical limit of a sound rule: taskgraph's round trips and the artifact
    # checks' one, each as long as the latency, and no CPU at all.
    out["limit"] = {"wall": (out["taskgraph"]["in_sequence"] + 1) * latency}
    out["ours_over_limit"] = out["ours"]["wall"] / out["limit"]["wall"]
    return out


def main() -> int:
    """Print the numbers."""
    numbers = run()
    print("taskgraph's optimization phase, 60 docker images, 50 ms per request")
    for contender in ("taskgraph", "ours"):
        n = numbers[contender]
        print(f"{contender:>10}: {n['wall']:6.3f} s  {n['requests']:3d} requests  "
              f"{n['in_sequence']} in sequence  {n['reused']} reused")
    print(f"{'limit':>10}: {numbers['limit']['wall']:6.3f} s  (taskgraph's round trips and one "
          f"more, no CPU); ours / limit {numbers['ours_over_limit']:.2f}x, "
          f"ours / taskgraph {numbers['ours_over_taskgraph']:.2f}x")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        print(json.dumps(_child(sys.argv[2], int(sys.argv[3]))))
        sys.exit(0)
    sys.exit(main())
