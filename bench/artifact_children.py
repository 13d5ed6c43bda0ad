"""The child processes of ``bench_artifacts.py``: one case each, then exit.

Kept apart from ``bench_artifacts.py`` so that a child imports only what its
case needs (the benchmark's own modules would count against our start-up).
Usage: ``artifact_children.py --child-compress SRC DEST | --child-load SRC |
--child-load-http SRC | --child-peer SRC``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Iterator

CHUNK = 1 << 20


def _chunks(path: str) -> Iterator[bytes]:
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                return
            yield block


def _child_compress(src: str, dest: str) -> None:
    from taskgraph_images._atomic import atomic_output
    from taskgraph_images.images.compression import compress_stream

    with atomic_output(dest) as out:
        compress_stream(_chunks(src), out, level=3, threads=0)


def _child_load(src: str) -> None:
    from taskgraph_images.images.artifacts import stream_image
    from taskgraph_images.images.sinks import NullSink

    with open(src, "rb") as f:
        stream_image(f, NullSink(), tag="bench:retagged")


class _Serve:
    """Serve one file's folder over HTTP on 127.0.0.1 (a thread) while in use."""

    def __init__(self, path: str) -> None:
        import functools
        import http.server
        import threading

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

        handler = functools.partial(Quiet, directory=os.path.dirname(path))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/{os.path.basename(path)}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        return self.url

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


def _child_load_http(src: str) -> None:
    from taskgraph_images.images.artifacts import stream_image
    from taskgraph_images.images.sinks import NullSink
    from taskgraph_images.images.source import open_source

    with _Serve(src) as url, open_source(url) as raw:
        stream_image(raw, NullSink(), tag="bench:retagged")


def _child_peer(src: str) -> None:  # pragma: no cover - runs in the peer's interpreter
    import tempfile

    from taskgraph import docker as peer  # type: ignore[import-not-found]

    with tempfile.TemporaryDirectory() as d:
        fake = os.path.join(d, "docker")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\ncat >/dev/null\n")
        os.chmod(fake, 0o755)
        os.environ["PATH"] = d + os.pathsep + os.environ["PATH"]
        with _Serve(src) as url:
            peer.load_image(url, "bench:retagged")


CHILDREN = {
    "--child-compress": _child_compress,
    "--child-load": _child_load,
    "--child-load-http": _child_load_http,
    "--child-peer": _child_peer,
}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in CHILDREN:
        sys.exit(__doc__.split("Usage: ")[-1])
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    CHILDREN[sys.argv[1]](*sys.argv[2:])
