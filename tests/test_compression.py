"""taskgraph_images.images.compression: light to import (the frame checker and
compress_stream themselves are tested in test_artifacts.py; artifacts
re-exports both)."""

from __future__ import annotations

from typing import Optional

import pytest
from hypothesis import given
from hypothesis import strategies as st
from importcheck import modules_loaded_by

from taskgraph_images.errors import ArtifactError, ContextError
from taskgraph_images.images import artifacts, compression
from taskgraph_images.images.tarball import compression_for


def test_compressing_needs_neither_attrs_nor_the_docker_client_nor_tarfile() -> None:
    heavy = {"attrs", "attr", "tarfile", "http.client", "taskgraph_images.images.engine",
             "taskgraph_images.images.artifacts", "zstandard"}
    loaded = modules_loaded_by("from taskgraph_images.images.compression import compress_stream")
    assert heavy & loaded == set()


def test_artifacts_re_exports_the_same_objects() -> None:
    assert artifacts.compress_stream is compression.compress_stream
    assert artifacts.ZstdFrameChecker is compression.ZstdFrameChecker


# -- one suffix rule for image tarballs and context tarballs ---------------------------------

SUFFIX_CASES = [*compression.SUFFIXES, (".tar.bz2", None), (".img", None), ("", None)]


@pytest.mark.parametrize("suffix, kind", SUFFIX_CASES)
def test_images_and_contexts_read_a_name_by_the_same_rule(
    suffix: str, kind: Optional[str]
) -> None:
    name = f"out/image{suffix}"
    assert compression.compression_by_suffix(name) == kind
    if kind is None:
        with pytest.raises(ContextError, match="cannot tell the compression"):
            compression_for(name, None)
    else:
        assert compression_for(name, None) == kind
    if kind in ("zstd", "none"):
        assert compression.compression_for_name(name) == kind
    else:  # a gzip image tarball is not one the builder writes or load reads
        with pytest.raises(ArtifactError, match=f"cannot tell the format of {name!r}"):
            compression.compression_for_name(name)


@given(st.text(max_size=12), st.sampled_from(SUFFIX_CASES))
def test_the_rule_is_the_name_ending_alone(stem: str, case: tuple[str, Optional[str]]) -> None:
    suffix, kind = case
    name = stem + suffix
    found = compression.compression_by_suffix(name)
    if kind is not None:
        assert found == kind  # the ending decides, whatever comes before it
    if found is None:
        with pytest.raises(ContextError):
            compression_for(name, None)
    else:
        assert compression_for(name, None) == found
