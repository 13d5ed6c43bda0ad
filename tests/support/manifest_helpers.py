"""A small repository with a parent, an arg and an image builder, and an index of any
kind to record its earlier builds in (for the manifest and explanation tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Sequence, Union

from tcserver import TCServer, make_index

from taskgraph_images.index import LocalIndex, MemoryIndex, index_namespaces
from taskgraph_images.manifest import DEFAULT_MANIFEST_ARTIFACT, ContextManifest

__all__ = ["BUILDER", "KIND", "PUSHDATE", "TREE", "Backend"]

PUSHDATE = 1478546787
BUILDER = "taskcluster/docker/builder"
KIND = """\
tasks:
    image_builder: {{}}
    base: {{}}
    builder:
        parent: base
        args:
            PYTHON_VERSIONS: "{versions}"
"""
TREE = {
    "taskcluster/kinds/docker-image/kind.yml": KIND.format(versions="3.11 3.12"),
    "taskcluster/docker/image_builder/Dockerfile": "FROM debian:12\n",
    "taskcluster/docker/image_builder/VERSION": "1.0\n",
    "taskcluster/docker/base/Dockerfile": "FROM debian:12\n",
    "taskcluster/docker/base/setup.sh": "echo setup\n",
    f"{BUILDER}/Dockerfile":
        "ARG DOCKER_IMAGE_PARENT\nFROM $DOCKER_IMAGE_PARENT\n# %ARG PYTHON_VERSIONS\n",
    f"{BUILDER}/build.sh": "echo build\n",
    f"{BUILDER}/lib.sh": "echo lib\n",
}

class Backend:
    """An index of one kind and a way to record earlier builds in it."""

    def __init__(self, kind: str, tmp_path: Path, server: Optional[TCServer]) -> None:
        self.kind = kind
        self.tmp_path = tmp_path
        self.server = server
        if kind == "memory":
            self.index: Any = MemoryIndex()
        elif kind == "local":
            self.index = LocalIndex(tmp_path / "index" / "index.sqlite")
        else:
            assert server is not None
            self.index = make_index(server)

    def record(self, level: int, manifest: ContextManifest, data: Union[bytes, str, None] = "",
               *, rank: float = 0, state: str = "completed",
               namespaces: Optional[Sequence[str]] = None) -> str:
        """Record a build of ``manifest``'s image; ``data`` is its manifest artifact
        (``""``: the manifest itself; ``None``: no manifest artifact), indexed under
        ``namespaces`` (default: the seed's three for ``level``)."""
        body = manifest.dumps() if data == "" else data
        assert body is None or isinstance(body, bytes)
        name, digest = manifest.image, manifest.digest
        if self.kind == "memory":
            task_id: str = self.index.record_build(level, name, digest, PUSHDATE, rank=rank,
                                                   state=state, namespaces=namespaces)
            if body is not None:
                self.index.add_manifest(task_id, body)
        elif self.kind == "local":
            image = self.tmp_path / "image.tar.zst"
            image.write_bytes(b"image")
            real = data == ""
            task_id = self.index.record_build(level, name, digest, PUSHDATE, image, rank=rank,
                                              manifest=manifest if real else None,
                                              namespaces=namespaces)
            if body is not None and not real:  # as an artifact file, as a builder would
                raw = self.tmp_path / "raw.json"
                raw.write_bytes(body)
                self.index.store_artifact(task_id, DEFAULT_MANIFEST_ARTIFACT, raw)
            self.index.set_task_state(task_id, state)
        else:
            assert self.server is not None
            artifacts = {"public/image.tar.zst": b"image"}
            if body is not None:
                artifacts[DEFAULT_MANIFEST_ARTIFACT] = body
            task_id = self.server.add_task(artifacts=artifacts, state=state)
            if namespaces is None:
                namespaces = index_namespaces(level, name, digest, PUSHDATE)
            for namespace in namespaces:
                self.server.index_task(namespace, task_id, rank=rank)
        return task_id
