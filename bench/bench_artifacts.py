"""Benchmark the artifact paths: zstd save and streaming load with retag.

Cases, each run in its own child process under GNU time, so that its peak
RSS is its own (a child forked from this process directly would inherit
this process's high-water mark across exec):

- ``save``: our compression path (:func:`taskgraph_images.images.compression.compress_stream`,
  level 3, all cores) on a docker-save-style tarball, vs ``zstd -3 -T0``;
- ``load``: our load with retag (:func:`taskgraph_images.images.artifacts.stream_image`
  into a null sink) on the ``.tar.zst``, vs ``zstd -dc FILE | cat >/dev/null``;
- ``peer``: ``taskgraph.docker.load_image`` of ``taskcluster-taskgraph`` (in
  the interpreter ``peer_python``, ``$TGI_PEER_PYTHON``, or this one when it
  can import ``taskgraph``) fetching the ``.tar.zst`` from a loopback HTTP
  server, with a stand-in ``docker`` that discards its input; beside it, our
  load with retag from the same kind of URL.

Each comparison runs its two cases side by side, alternating which goes first
in each round; its ratio is the median of the per-round ratios, so the
machine's drift over the run cancels.

Usage: ``python bench/bench_artifacts.py [--size 1G] [--repeat 5] [--dir DIR]``.
:func:`run` returns the numbers for other scripts.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import shutil
import statistics
import sys
import tarfile
import tempfile
from typing import Any, Callable, Optional, Sequence

__all__ = ["Measure", "main", "make_tarball", "run"]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class Measure(dict):  # type: ignore[type-arg]
    """One case's numbers: ``seconds`` (median), ``mb_per_s`` and ``peak_rss_mb`` (max)."""


class _Stream(io.RawIOBase):
    """Deterministic layer content: seeded random bytes or repeated text lines."""

    def __init__(self, size: int, seed: int, text: bool) -> None:
        self._left = size
        self._rng = random.Random(seed)
        self._text = text
        self._line = 0

    def readable(self) -> bool:
        return True

    def _block(self, n: int) -> bytes:
        if not self._text:
            return self._rng.randbytes(n)
        out = bytearray()
        while len(out) < n:
            self._line += 1
            out += b"line %08d: the quick brown fox jumps over the lazy dog\n" % (self._line % 5000)
        return bytes(out[:n])

    def read(self, n: int = -1) -> bytes:
        n = self._left if n < 0 else min(n, self._left)
        data = self._block(n)
        self._left -= n
        return data


def make_tarball(path: str, size: int, layers: int = 4) -> None:
    """Write a ``docker save`` style tarball of about ``size`` bytes: half random, half text."""
    per = size // layers
    ids = [f"{i:064x}" for i in range(1, layers + 1)]
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for i, layer_id in enumerate(ids):
            info = tarfile.TarInfo(f"{layer_id}/layer.tar")
            info.size = per
            tar.addfile(info, _Stream(per, i, text=i % 2 == 1))  # type: ignore[arg-type]
            for name, data in ((f"{layer_id}/VERSION", b"1.0"), (f"{layer_id}/json", b"{}")):
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        manifest = json.dumps([{"Config": "c.json", "RepoTags": ["bench:orig"],
                                "Layers": [f"{i}/layer.tar" for i in ids]}]).encode()
        for name, data in (("c.json", b"{}"), ("manifest.json", manifest),
                           ("repositories", json.dumps({"bench": {"orig": ids[-1]}}).encode())):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _timed(argv: Sequence[str], *, shell: bool = False) -> tuple[float, float]:
    """Run ``argv`` (a shell command when ``shell``); return (wall seconds, peak RSS MB)."""
    from run import timed

    seconds, rss, _ = timed(["sh", "-c", argv[0]] if shell else argv, env={"PYTHONPATH": ROOT})
    return seconds, rss


def _pair(a: tuple[str, Sequence[str], bool, Optional[str]],
          b: tuple[str, Sequence[str], bool, Optional[str]],
          size: int, repeat: int) -> tuple[Measure, Measure, float]:
    """Run cases ``a`` and ``b`` (name, argv, shell, output file) side by side, ``repeat``
    rounds, alternating which goes first; return both measures and the median of the
    per-round ratios time(b) / time(a), so the machine's drift cancels."""
    from run import rounds

    def once(case: tuple[str, Sequence[str], bool, Optional[str]]) -> Callable[[], dict[str, Any]]:
        def measure() -> dict[str, Any]:
            _name, argv, shell, output = case
            if output is not None and os.path.exists(output):
                os.unlink(output)  # both writers start from no file: same file system work
            seconds, rss = _timed(argv, shell=shell)
            return {"seconds": seconds, "rss": rss}
        return measure

    results = rounds(repeat, {"a": once(a), "b": once(b)})
    measures = []
    for case, rs in ((a, results["a"]), (b, results["b"])):
        median = statistics.median(r["seconds"] for r in rs)
        measures.append(Measure(case=case[0], seconds=round(median, 3),
                                mb_per_s=round(size / median / 1e6, 1),
                                peak_rss_mb=round(max(r["rss"] for r in rs), 1)))
    ratio = statistics.median(rb["seconds"] / ra["seconds"]
                              for ra, rb in zip(results["a"], results["b"]))
    return measures[0], measures[1], round(ratio, 2)


#: The children live in their own script, which imports only what each case needs:
#: this one's imports (argparse, statistics, tarfile, ...) would count against ours.
CHILDREN = os.path.join(HERE, "artifact_children.py")


def _self(*args: str) -> list[str]:
    return [sys.executable, CHILDREN, *args]


def run(size: int = 1 << 30, repeat: int = 5, workdir: Optional[str] = None,
        peer_python: Optional[str] = None) -> dict[str, Any]:
    """Run every case on a ``size``-byte tarball; return the measures and ratios."""
    from run import find_peer_python

    peer = find_peer_python(peer_python)
    own = workdir is None
    folder = tempfile.mkdtemp(prefix="tgi-bench-") if workdir is None else workdir
    os.makedirs(folder, exist_ok=True)  # --dir may name a folder not made yet
    try:
        tar = os.path.join(folder, "image.tar")
        ours = os.path.join(folder, "ours.tar.zst")
        theirs = os.path.join(folder, "cli.tar.zst")
        if not os.path.exists(tar) or os.path.getsize(tar) < size:
            make_tarball(tar, size)
        real = os.path.getsize(tar)
        results: dict[str, Any] = {"size": real}
        # Ours writes through atomic_output, which fsyncs before the rename; the
        # CLI's file is synced too (``sync -d``), so both measure a durable file.
        results["save_ours"], results["save_zstd"], results["save_ratio"] = _pair(
            ("save: ours (level 3, all cores, fsync)", _self("--child-compress", tar, ours),
             False, ours),
            ("save: zstd -3 -T0 + sync -d",
             [f"zstd -q -f -3 -T0 {tar} -o {theirs} && sync -d {theirs}"], True, theirs),
            real, repeat)
        # The control: zstd against itself, measured the same way. Its spread around
        # 1.00 is how far this machine's drift moves a paired ratio of two equals.
        other = os.path.join(folder, "cli-again.tar.zst")
        _, _, results["save_zstd_self_ratio"] = _pair(
            ("save: zstd -3 -T0 + sync -d", [f"zstd -q -f -3 -T0 {tar} -o {theirs} && "
                                             f"sync -d {theirs}"], True, theirs),
            ("save: zstd -3 -T0 + sync -d, again", [f"zstd -q -f -3 -T0 {tar} -o {other} && "
                                                    f"sync -d {other}"], True, other),
            real, repeat)
        os.unlink(other)
        results["load_zstd"], results["load_ours"], inverse = _pair(
            ("load: zstd -dc | cat >/dev/null", [f"zstd -dc {ours} | cat >/dev/null"], True, None),
            ("load+retag: ours to a null sink", _self("--child-load", ours), False, None),
            real, repeat)
        results["load_ratio"] = inverse  # our time / zstd's, per round
        if peer is not None:
            results["load_ours_http"], results["load_peer_http"], results["peer_load_ratio"] = _pair(
                ("load+retag: ours from loopback HTTP", _self("--child-load-http", ours), False, None),
                ("load: peer load_image from loopback HTTP (stand-in docker)",
                 [peer, CHILDREN, "--child-peer", ours], False, None),
                real, repeat)
        results["compressed_ours"] = os.path.getsize(ours)
        results["compressed_zstd"] = os.path.getsize(theirs)
        return results
    finally:
        if own:
            shutil.rmtree(folder, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line and print a table (or run a child case)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="1G", help="tarball size (default 1G)")
    parser.add_argument("--repeat", type=int, default=5, help="runs per case (median)")
    parser.add_argument("--dir", default=None, help="keep data in DIR (reused across runs)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--peer-python", default=None,
                        help="interpreter with taskcluster-taskgraph (default: $TGI_PEER_PYTHON, "
                        "this one if it has it, else /tmp/peer-venv/bin/python)")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    from taskgraph_images.images.artifacts import parse_size

    results = run(parse_size(args.size), args.repeat, args.dir, args.peer_python)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"tarball: {results['size'] / 1e6:.0f} MB, {os.cpu_count()} cores, "
          f"median of {args.repeat}")
    print(f"{'case':45} {'s':>8} {'MB/s':>8} {'peak RSS MB':>12}")
    for value in results.values():
        if isinstance(value, Measure):
            print(f"{value['case']:45} {value['seconds']:8.3f} {value['mb_per_s']:8.1f} "
                  f"{value['peak_rss_mb']:12.1f}")
    print(f"save: zstd time / our time = {results['save_ratio']} (target >= 1.0; zstd "
          f"against itself: {results['save_zstd_self_ratio']})")
    print(f"load: our time / zstd -dc|cat time = {results['load_ratio']} (target <= 1.5)")
    if "peer_load_ratio" in results:
        print(f"load over HTTP: peer time / our time = {results['peer_load_ratio']} "
              "(target >= 3)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
