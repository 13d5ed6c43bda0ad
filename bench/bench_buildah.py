"""Benchmark the in-task builder's save and the artifact's zstd level.

The bench image is built with buildah (``FROM scratch``, one ``COPY`` of
about ``--size`` of real files from this machine's ``/usr/lib`` and
``/usr/share``: libraries, text, compressed documents, as an image holds).

- ``save``: the in-task builder's output path, :func:`taskgraph_images.builder.buildah.push_archive`
  (``buildah push`` to ``docker-archive:/dev/stdout``, read from the pipe)
  through :func:`taskgraph_images.images.compression.compress_stream` (level 3, all
  cores) into a file written atomically, against ``buildah push
  docker-archive:FILE`` then ``zstd -3 -T0 FILE``; side by side, rounds
  alternating, the ratio the median of the per-round ratios. Peak RSS is
  our process's own (buildah's beside it is shown apart).
- ``levels``: the image tarball compressed by ``compress_stream`` at levels
  3, 10 and 19, and with long-distance matching (``--long``, a 128 MiB
  window) at 3 and 19: size, compression time, decompression time.

Needs buildah (no daemon, no root beyond what buildah needs: run as root
here). Usage: ``python bench/bench_buildah.py [--size 256M] [--repeat 3]
[--levels 3,10,19] [--json]``. :func:`run` returns the numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any, Optional, Sequence

__all__ = ["main", "run"]

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TAG = "bench/image:1"
SOURCES = ("/usr/lib/x86_64-linux-gnu", "/usr/share", "/usr/lib")


def _copy_files(dest: str, size: int) -> int:
    """Copy regular files from :data:`SOURCES` into ``dest`` until ``size`` bytes; return bytes."""
    total = 0
    for top in SOURCES:
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames.sort()
            for name in sorted(filenames):
                src = os.path.join(dirpath, name)
                try:
                    if os.path.islink(src) or not os.path.isfile(src):
                        continue
                    n = os.path.getsize(src)
                    if total + n > size:
                        continue
                    target = os.path.join(dest, src.lstrip("/"))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    shutil.copyfile(src, target)
                except OSError:
                    continue
                total += n
                if total >= size * 0.98:
                    return total
    return total


def _buildah(folder: str) -> Any:
    sys.path.insert(0, ROOT)
    from taskgraph_images.builder.buildah import Buildah

    return Buildah(os.path.join(folder, "storage"), os.path.join(folder, "run"))


def make_image(folder: str, size: int) -> int:
    """Build the bench image in ``folder``'s buildah storage; return the copied bytes."""
    from taskgraph_images.builder.buildah import run as run_buildah

    context = os.path.join(folder, "context")
    data = os.path.join(context, "data")
    os.makedirs(data, exist_ok=True)
    copied = _copy_files(data, size)
    with open(os.path.join(context, "Dockerfile"), "w") as f:
        f.write("FROM scratch\nCOPY data/ /\n")
    run_buildah(_buildah(folder).bud_command(context, TAG, pull="never"), "building the bench image")
    shutil.rmtree(context)
    return copied


# -- children (one case each, measured by the parent) -------------------------------


def _child_ours(folder: str, out: str) -> None:
    from taskgraph_images._atomic import atomic_output
    from taskgraph_images.builder.buildah import push_archive
    from taskgraph_images.images.compression import compress_stream

    with atomic_output(out) as f:
        push_archive(_buildah(folder), TAG, TAG,
                     lambda chunks: compress_stream(chunks, f, level=3, threads=0))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"own_rss_mb": own}))


def _child_level(src: str, out: str, level: int, long: bool) -> None:
    import zstandard

    from taskgraph_images._atomic import atomic_output

    workers = os.cpu_count() or 1
    params = zstandard.ZstdCompressionParameters.from_level(
        level, threads=workers, write_checksum=True,
        **({"enable_ldm": True, "window_log": 27} if long else {}))
    cctx = zstandard.ZstdCompressor(compression_params=params)
    start = time.perf_counter()
    with open(src, "rb") as f, atomic_output(out) as o:
        cctx.copy_stream(f, o, read_size=1 << 20, write_size=1 << 20)
    compress = time.perf_counter() - start
    start = time.perf_counter()
    with open(out, "rb") as f:
        reader = zstandard.ZstdDecompressor().stream_reader(f, read_size=1 << 20)
        while reader.read(1 << 20):
            pass
    decompress = time.perf_counter() - start
    print(json.dumps({"compress_s": compress, "decompress_s": decompress,
                      "size": os.path.getsize(out)}))


# -- measuring ----------------------------------------------------------------------


def _timed(argv: Sequence[str]) -> tuple[float, float, str]:
    """Run ``argv``; return (wall seconds, peak RSS MB of its largest process, stdout).

    Under GNU time (:func:`run.timed`), so that the child's own figure
    (``RUSAGE_SELF``) is its own too, not this process's inherited across exec.
    """
    from run import timed

    return timed(argv, env={"PYTHONPATH": ROOT})


def _me(*args: str) -> list[str]:
    return [sys.executable, os.path.abspath(__file__), *args]


def run(size: int = 256 << 20, repeat: int = 3, levels: Sequence[int] = (3, 10, 19),
        workdir: Optional[str] = None) -> dict[str, Any]:
    """Build the bench image, run both cases; return the measures and the ratio."""
    sys.path.insert(0, HERE)
    from run import rounds

    folder = tempfile.mkdtemp(prefix="tgi-bench-buildah-", dir=workdir)
    try:
        results: dict[str, Any] = {"copied": make_image(folder, size)}
        ours = os.path.join(folder, "ours.tar.zst")
        plain = os.path.join(folder, "cli.tar")
        theirs = plain + ".zst"
        buildah = " ".join(_buildah(folder).push_command(TAG, TAG)[:-1])

        def case_ours() -> dict[str, Any]:
            seconds, tree_rss, out = _timed(_me("--child-ours", folder, ours))
            return {"seconds": seconds, "tree_rss": tree_rss, **json.loads(out)}

        def case_cli() -> dict[str, Any]:
            for path in (plain, theirs):
                if os.path.exists(path):
                    os.unlink(path)
            seconds, tree_rss, _ = _timed(
                ["sh", "-c", f"{buildah} docker-archive:{plain}:{TAG} && zstd -q -3 -T0 {plain} "
                 f"-o {theirs} && sync -d {theirs}"])
            return {"seconds": seconds, "tree_rss": tree_rss}

        got = rounds(repeat, {"ours": case_ours, "cli": case_cli})
        results["save_ours_s"] = round(statistics.median(r["seconds"] for r in got["ours"]), 3)
        results["save_cli_s"] = round(statistics.median(r["seconds"] for r in got["cli"]), 3)
        results["save_ratio"] = round(statistics.median(
            o["seconds"] / c["seconds"] for o, c in zip(got["ours"], got["cli"])), 3)
        results["save_own_rss_mb"] = round(max(r["own_rss_mb"] for r in got["ours"]), 1)
        results["save_tree_rss_mb"] = round(max(r["tree_rss"] for r in got["ours"]), 1)
        results["image_tar_bytes"] = os.path.getsize(plain)
        results["levels"] = {}
        for level in levels:
            for long in ((False, True) if level in (3, 19) else (False,)):
                name = f"{level}{' --long' if long else ''}"
                out = os.path.join(folder, f"level-{level}{'-long' if long else ''}.tar.zst")
                _, rss, text = _timed(_me("--child-level", plain, out, str(level),
                                          "long" if long else "short"))
                numbers = json.loads(text)
                results["levels"][name] = {
                    "bytes": numbers["size"],
                    "ratio": round(results["image_tar_bytes"] / numbers["size"], 2),
                    "compress_s": round(numbers["compress_s"], 2),
                    "decompress_s": round(numbers["decompress_s"], 2),
                    "rss_mb": round(rss, 1),
                }
                os.unlink(out)
        return results
    finally:
        subprocess.run(["buildah", "--root", os.path.join(folder, "storage"), "--runroot",
                        os.path.join(folder, "run"), "--storage-driver", "vfs", "rmi", "-a",
                        "-f"], capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Parse the command line; run a child case, or everything and print a table."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list[:1] == ["--child-ours"]:
        _child_ours(args_list[1], args_list[2])
        return 0
    if args_list[:1] == ["--child-level"]:
        _child_level(args_list[1], args_list[2], int(args_list[3]), args_list[4] == "long")
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="256M", help="bench image content (default 256M)")
    parser.add_argument("--repeat", type=int, default=3, help="rounds of the save pair")
    parser.add_argument("--levels", default="3,10,19", help="zstd levels (default 3,10,19)")
    parser.add_argument("--dir", default=None, help="work in DIR (default: the temp folder)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(args_list)
    sys.path.insert(0, ROOT)
    from taskgraph_images.images.artifacts import parse_size

    results = run(parse_size(args.size), args.repeat,
                  [int(x) for x in args.levels.split(",")], args.dir)
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    mb = results["image_tar_bytes"] / 1e6
    print(f"bench image: {mb:.0f} MB tarball, {os.cpu_count()} cores, median of {args.repeat}")
    print(f"save, ours (buildah pipe -> our zstd -3): {results['save_ours_s']:.2f} s, "
          f"peak RSS {results['save_own_rss_mb']} MB (with buildah: "
          f"{results['save_tree_rss_mb']} MB)")
    print(f"save, buildah push to a file, then zstd -3 -T0: {results['save_cli_s']:.2f} s")
    print(f"save: our time / theirs = {results['save_ratio']} (target <= 1.1)")
    print(f"{'level':10} {'MB':>8} {'ratio':>6} {'compress s':>11} {'decompress s':>13}")
    for name, row in results["levels"].items():
        print(f"{name:10} {row['bytes'] / 1e6:8.1f} {row['ratio']:6.2f} {row['compress_s']:11.2f} "
              f"{row['decompress_s']:13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
