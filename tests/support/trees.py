"""Build small repository trees and tarballs for tests, and the seed hash written independently."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from pathlib import Path
from typing import Mapping, Union

__all__ = ["docker_save_tar", "image_tar", "make_tree", "seed_context_hash", "tar_of", "zst"]


def make_tree(root: Path, files: Mapping[str, Union[str, bytes]]) -> Path:
    """Create ``files`` (path -> text or bytes) below ``root`` and return ``root``."""
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, str):
            content = content.encode("utf-8")
        path.write_bytes(content)
    return root


def tar_of(members: Mapping[str, bytes]) -> bytes:
    """A ustar archive of ``members`` (name -> content), regular files in that order."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def seed_context_hash(topsrcdir: str, image_path: str) -> str:
    """The 2016 decision task's context hash, transcribed from the seed README.

    Written without any code from the library, to check it against: walk with
    ``os.walk`` (symlinked folders are not descended), sort the full paths,
    and feed ``"{file sha256}\\t{path with topsrcdir removed}\\n"`` to the outer
    hash. Paths are handled as bytes, as Python 2 did.
    """
    top = os.fsencode(topsrcdir)
    context_hash = hashlib.sha256()
    files = []
    for dirpath, _dirnames, filenames in os.walk(os.path.join(top, os.fsencode(image_path))):
        for filename in filenames:
            files.append(os.path.join(dirpath, filename))
    for filename in sorted(files):
        relative_filename = filename.replace(top, b"", 1)
        with open(filename, "rb") as f:
            file_hash = hashlib.sha256(f.read()).hexdigest().encode("ascii")
        context_hash.update(file_hash + b"\t" + relative_filename + b"\n")
    return context_hash.hexdigest()


def docker_save_tar(layers: list[bytes], tag: str = "old/name:1") -> bytes:
    """A tarball in the ``docker save`` layout with the given layer contents."""
    ids = [f"{i:064x}" for i in range(1, len(layers) + 1)]
    repo, _, version = tag.rpartition(":")
    files: dict[str, bytes] = {}
    for layer_id, content in zip(ids, layers):
        files[f"{layer_id}/VERSION"] = b"1.0"
        files[f"{layer_id}/json"] = b"{}"
        files[f"{layer_id}/layer.tar"] = content
    files["cafe.json"] = b'{"config": {}}'
    files["manifest.json"] = json.dumps(
        [{"Config": "cafe.json", "RepoTags": [tag], "Layers": [f"{i}/layer.tar" for i in ids]}]
    ).encode()
    files["repositories"] = json.dumps({repo: {version: ids[-1]}}).encode()
    return tar_of(files)


def zst(data: bytes) -> bytes:
    """``data`` as one zstd frame with a checksum, as image artifacts are written."""
    import zstandard

    return zstandard.ZstdCompressor(level=1, write_checksum=True).compress(data)


def image_tar() -> bytes:
    """The smallest ``docker save`` tarball: one layer holding one file."""
    return docker_save_tar([tar_of({"f": b"x"})])
