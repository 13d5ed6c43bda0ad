"""taskgraph_images.compression: light to import (the frame checker and
compress_stream themselves are tested in test_artifacts.py, through the
names artifacts re-exports)."""

from __future__ import annotations

import subprocess
import sys

from taskgraph_images import artifacts, compression


def test_compressing_needs_neither_attrs_nor_the_docker_client_nor_tarfile() -> None:
    code = (
        "import sys\n"
        "from taskgraph_images.compression import compress_stream\n"
        "heavy = {'attrs', 'attr', 'tarfile', 'http.client', 'taskgraph_images.docker',\n"
        "         'taskgraph_images.artifacts', 'zstandard'}\n"
        "print(sorted(heavy & set(sys.modules)))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_artifacts_re_exports_the_same_objects() -> None:
    assert artifacts.compress_stream is compression.compress_stream
    assert artifacts.ZstdFrameChecker is compression.ZstdFrameChecker
