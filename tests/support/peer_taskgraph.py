"""The installed ``taskcluster-taskgraph``, for tests that compare against it.

Tests that prove our taskgraph recipes bit for bit need the real package (the
``test`` extra installs it). Without it they skip, except under ``CI=true``,
where a missing peer fails the run: CI must compare. The floors run has no
peer (taskgraph needs newer dependencies than our floors), so there they skip.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import io
import os
import warnings
from types import ModuleType
from typing import Mapping, Optional, Union

import pytest
from floorsrun import is_floors_run

__all__ = ["HashingWriter", "peer", "peer_context_hash", "peer_tar_bytes", "peer_tar_hash"]


def peer(module: str = "taskgraph") -> ModuleType:
    """Import ``module`` from the installed taskgraph; skip (fail under ``CI=true``) if absent."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        if is_floors_run():
            pytest.skip("the floors run has no taskcluster-taskgraph: it needs newer "
                        "dependencies than our floors")
        reason = f"taskcluster-taskgraph is not installed ({e}); pip install -e '.[test]'"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)


class HashingWriter:
    """A write-only file object that hashes what it is given (and can keep it)."""

    def __init__(self, keep: bool = False) -> None:
        self.hash = hashlib.sha256()
        self.written = 0
        self.kept = io.BytesIO() if keep else None

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.written += len(data)
        if self.kept is not None:
            self.kept.write(data)
        return len(data)

    def tell(self) -> int:
        return self.written


def _their_files(files: Mapping[str, Union[str, bytes]]) -> dict[str, object]:
    # taskgraph takes content as file objects, paths as str
    return {k: io.BytesIO(v) if isinstance(v, bytes) else v for k, v in files.items()}


def _write(files: Mapping[str, Union[str, bytes]], out: HashingWriter) -> None:
    archive = peer("taskgraph.util.archive")
    with warnings.catch_warnings():
        # taskgraph opens each source and leaves closing it to the garbage collector
        warnings.simplefilter("ignore", ResourceWarning)
        refused = None
        try:
            archive.create_tar_from_files(out, _their_files(files))
        except ValueError as e:
            refused = str(e)
    if refused is not None:  # raised again without the frames that hold the files
        raise ValueError(refused)


def peer_context_hash(topsrcdir: str, context_path: str,
                      args: Optional[Mapping[str, str]] = None) -> str:
    """taskgraph's ``generate_context_hash`` for the image folder ``context_path``."""
    docker = peer("taskgraph.util.docker")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # as in _write
        return str(docker.generate_context_hash(topsrcdir, context_path, args))


def peer_tar_hash(files: Mapping[str, Union[str, bytes]]) -> str:
    """The sha256 of what taskgraph's ``create_tar_from_files`` writes for ``files``."""
    out = HashingWriter()
    _write(files, out)
    return out.hash.hexdigest()


def peer_tar_bytes(files: Mapping[str, Union[str, bytes]]) -> bytes:
    """The tar stream taskgraph's ``create_tar_from_files`` writes for ``files``."""
    out = HashingWriter(keep=True)
    _write(files, out)
    assert out.kept is not None
    return out.kept.getvalue()


def peer_image_tasks(root: str, images: Mapping[str, Mapping[str, object]], *,
                     level: str = "3", tasks_for: str = "github-push",
                     head_ref: str = "refs/heads/main", build_date: int = 1_700_000_000,
                     trust_domain: str = "myproject",
                     taskgraph_config: Optional[Mapping[str, object]] = None,
                     ) -> dict[str, dict[str, object]]:
    """Run taskgraph's own docker-image and cached-task transforms over ``images``.

    ``images`` maps each image name to its entry in the kind file (``parent``,
    ``args``, ``definition``, ``cache``, ...); ``root`` holds
    ``taskcluster/docker/NAME``. Returns each task description by label, with
    the ``cached_task`` attribute (digest), ``optimization`` and ``routes``
    taskgraph gives it, as a decision task of that push would.
    """
    peer("taskgraph")
    from taskgraph.config import GraphConfig
    from taskgraph.transforms import cached_tasks, docker_image
    from taskgraph.transforms.base import TransformConfig

    graph = {"trust-domain": trust_domain, "taskgraph": dict(taskgraph_config or {})}
    params = {"level": level, "project": "myproject", "tasks_for": tasks_for,
              "head_ref": head_ref, "build_date": build_date,
              "base_repository": "https://example.com/repo", "head_repository":
              "https://example.com/repo", "head_rev": "0" * 40, "repository_type": "git"}
    config = TransformConfig(
        kind="docker-image", path=os.path.join(root, "taskcluster/kinds/docker-image"),
        config={}, params=params, kind_dependencies_tasks={},
        graph_config=GraphConfig(graph, os.path.join(root, "taskcluster")),
        write_artifacts=False)
    # deep copies: taskgraph edits the entries (and their args) in place
    tasks = [{"name": name, **copy.deepcopy(dict(entry))} for name, entry in images.items()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)  # as in _write
        done = list(cached_tasks.transforms(config, docker_image.transforms(config, tasks)))
    return {str(t["label"]): t for t in done}
