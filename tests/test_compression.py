"""taskgraph_images.compression: light to import (the frame checker and
compress_stream themselves are tested in test_artifacts.py, through the
names artifacts re-exports)."""

from __future__ import annotations

from importcheck import modules_loaded_by

from taskgraph_images import artifacts, compression


def test_compressing_needs_neither_attrs_nor_the_docker_client_nor_tarfile() -> None:
    heavy = {"attrs", "attr", "tarfile", "http.client", "taskgraph_images.docker",
             "taskgraph_images.artifacts", "zstandard"}
    loaded = modules_loaded_by("from taskgraph_images.compression import compress_stream")
    assert heavy & loaded == set()


def test_artifacts_re_exports_the_same_objects() -> None:
    assert artifacts.compress_stream is compression.compress_stream
    assert artifacts.ZstdFrameChecker is compression.ZstdFrameChecker
