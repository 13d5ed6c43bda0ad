"""Benchmark: taskgraph's docker-image kind for 60 images, our transform against taskgraph's.

A taskgraph repository is generated in a temporary folder (the shape of
``tests/data/tgrepo``): ``images`` images in three generations, each child
``FROM $DOCKER_IMAGE_PARENT`` of an image of the generation before, every
third one a definition reused with other ``args``; each image folder holds
40 files (1 KiB to 64 KiB, a few of 1 MiB), and every image ``# %include``s a
shared folder of 200 scripts, as real images include their repository's
scripts. The same tree is generated twice, its docker-image kind naming
``taskgraph.transforms.docker_image:transforms`` in one and
``taskgraph_images.taskgraph:transforms`` in the other.

Each run is a fresh process that generates the full task set of the
docker-image kind with taskgraph's own generator, as ``taskgraph full -k
docker-image`` does, and times it (startup excluded):

- ``full``: the graph only (every context hashed);
- ``decision``: as a decision task, which also writes every context to
  ``docker-contexts/NAME.tar.gz``.

Both contenders' graphs are compared once (they must be equal). Runs
alternate; the medians and the median of the paired ratios count.

Run ``python bench/bench_kind.py``; import it and call :func:`run` for numbers.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Optional

__all__ = ["main", "make_repository", "run"]

REPO = Path(__file__).resolve().parent.parent
THEIRS = "taskgraph.transforms.docker_image:transforms"
OURS = "taskgraph_images.taskgraph:transforms"
_PARAMS = {"build_date": 1700000000, "pushdate": 1700000000, "head_rev": "5" * 40,
           "head_ref": "refs/heads/main", "moz_build_date": "20231114221320",
           "files_changed": [], "target-kinds": ["docker-image"]}
_CHILD = """\
import json, sys, time
start = time.perf_counter()
from taskgraph.generator import TaskGraphGenerator
from taskgraph.parameters import parameters_loader

params = parameters_loader(sys.argv[1], strict=False)
tasks = TaskGraphGenerator("taskcluster", params, write_artifacts=sys.argv[2] == "1").full_task_set
seconds = time.perf_counter() - start
if sys.argv[3] == "1":
    print(json.dumps({label: t.to_json() for label, t in tasks.tasks.items()}, sort_keys=True))
print(json.dumps({"seconds": seconds, "tasks": len(tasks.tasks)}))
"""
_CONFIG = """\
trust-domain: bench
task-priority: low
treeherder:
    group-names:
        'I': 'Docker images'
taskgraph:
    repositories:
        bench:
            name: bench
workers:
    aliases:
        images:
            provisioner: 'bench-{level}'
            implementation: docker-worker
            os: linux
            worker-type: images
"""


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_repository(root: Path, images: int = 60, transform: str = THEIRS) -> list[str]:
    """Write the repository (a git checkout) under ``root``; return the image names."""
    rng = random.Random(60)
    _write(root / ".taskcluster.yml", b"version: 1\n")
    _write(root / "taskcluster/config.yml", _CONFIG.encode())
    for i in range(200):
        _write(root / f"taskcluster/scripts/s{i:03}.sh",
               b"#!/bin/sh\n" + rng.randbytes(rng.randint(512, 8192)).hex().encode())
    names: list[str] = []
    entries: list[str] = []
    generations: list[list[str]] = [[], [], []]
    for i in range(images):
        gen = 0 if i < 4 else 1 if i < 24 else 2
        name = f"image{i:02}"
        definition = name if i % 3 or gen == 0 else f"image{i - 1:02}"
        folder = root / "taskcluster/docker" / definition
        if not (folder / "Dockerfile").exists():
            head = "FROM debian:12-slim\n" if gen == 0 else "FROM $DOCKER_IMAGE_PARENT\n"
            _write(folder / "Dockerfile", (head + "# %include taskcluster/scripts\n"
                                           "# %ARG VARIANT\nRUN build.sh $VARIANT\n").encode())
            for j in range(40):
                size = 1 << 20 if j == 0 and i % 10 == 0 else rng.randint(1024, 65536)
                _write(folder / f"files/f{j:02}.dat", rng.randbytes(size))
        entry = f"    {name}:\n        symbol: I({name})\n"
        if definition != name:
            entry += f"        definition: {definition}\n"
        if gen:
            entry += f"        parent: {rng.choice(generations[gen - 1])}\n"
        entry += f"        args:\n            VARIANT: v{i}\n"
        entries.append(entry)
        generations[gen].append(name)
        names.append(name)
    kind = ("loader: taskgraph.loader.transform:loader\ntransforms:\n"
            f"    - {transform}\n    - taskgraph.transforms.cached_tasks:transforms\n"
            "    - taskgraph.transforms.task:transforms\ntasks:\n" + "".join(entries))
    _write(root / "taskcluster/kinds/docker-image/kind.yml", kind.encode())
    git = ["git", "-c", "user.email=bench@example.com", "-c", "user.name=bench"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-qm", "bench"],
                 ["remote", "add", "origin", "https://github.com/example/bench"]):
        subprocess.run([*git, *args], cwd=root, check=True)
    return names


def _child(python: str, repo: Path, params: Path, write: bool, dump: bool = False,
           ) -> dict[str, Any]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)}
    shutil.rmtree(repo / "docker-contexts", ignore_errors=True)
    done = subprocess.run([python, "-c", _CHILD, str(params), "1" if write else "0",
                           "1" if dump else "0"], cwd=repo, env=env, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise RuntimeError(f"kind generation failed in {repo}: {done.stderr[-800:]}")
    lines = done.stdout.strip().splitlines()
    result: dict[str, Any] = json.loads(lines[-1])
    if dump:
        result["graph"] = json.loads(lines[0])
    return result


def run(images: int = 60, repeat: int = 5, peer_python: Optional[str] = None,
        ) -> dict[str, Any]:
    """Run the benchmark; return the medians (seconds) and paired ratios (theirs / ours)."""
    python = peer_python or sys.executable
    with tempfile.TemporaryDirectory(prefix="bench-kind-") as tmp:
        repos = {"theirs": Path(tmp, "theirs"), "ours": Path(tmp, "ours")}
        for who, transform in (("theirs", THEIRS), ("ours", OURS)):
            make_repository(repos[who], images, transform)
        params = Path(tmp, "params.yml")
        params.write_text(json.dumps(_PARAMS))
        graphs = [_child(python, repos[who], params, False, dump=True)["graph"]
                  for who in ("theirs", "ours")]
        if graphs[0] != graphs[1]:
            raise RuntimeError("our transform gave another graph than taskgraph's")
        numbers: dict[str, Any] = {"images": images}
        for mode, write in (("full", False), ("decision", True)):
            times: dict[str, list[float]] = {"theirs": [], "ours": []}
            for r in range(repeat):
                for who in (("theirs", "ours") if r % 2 == 0 else ("ours", "theirs")):
                    times[who].append(_child(python, repos[who], params, write)["seconds"])
            numbers[mode] = {
                "theirs_seconds": statistics.median(times["theirs"]),
                "ours_seconds": statistics.median(times["ours"]),
                "theirs_over_ours": statistics.median(
                    t / o for t, o in zip(times["theirs"], times["ours"])),
            }
    return numbers


def main() -> int:
    """Print the numbers as JSON."""
    start = time.perf_counter()
    numbers = run(repeat=int(sys.argv[1]) if len(sys.argv) > 1 else 5)
    print(json.dumps(numbers, indent=2))
    print(f"({time.perf_counter() - start:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
