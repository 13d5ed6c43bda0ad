"""Retagging an image archive: the tag files rewritten to name one reference.

Pure functions over the bytes of ``manifest.json``, the legacy
``repositories`` file and OCI ``index.json``; :func:`retagger` gives the
callback the tar rewriter (:class:`~taskgraph_images.images.tarball.TarRewriter`)
calls for each member, so that layers pass through untouched.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from taskgraph_images._dockerfile import split_reference
from taskgraph_images.errors import ArtifactError

__all__ = ["METADATA_MEMBERS", "retag_index", "retag_manifest", "retag_repositories", "retagger"]


def _json(data: bytes, what: str) -> Any:
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as e:
        raise ArtifactError(f"the image archive's {what} is not valid JSON: {e}") from e
    except RecursionError:
        raise ArtifactError(f"the image archive's {what} is refused: nested too deeply") from None


def _dump(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


def retag_manifest(data: bytes, reference: str) -> bytes:
    """Return ``manifest.json`` with the single image's ``RepoTags`` set to ``[reference]``.

    >>> retag_manifest(b'[{"Config":"c.json","RepoTags":["a:1"],"Layers":[]}]', "b:2")
    b'[{"Config":"c.json","RepoTags":["b:2"],"Layers":[]}]'

    :raises ArtifactError: when the manifest is malformed or holds several images.
    """
    value = _json(data, "manifest.json")
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise ArtifactError("the image archive's manifest.json is not a list of images")
    if len(value) != 1:
        raise ArtifactError(
            f"cannot retag an archive holding {len(value)} images; it must hold exactly one"
        )
    value[0]["RepoTags"] = [reference]
    return _dump(value)


def retag_repositories(data: bytes, reference: str) -> bytes:
    """Return the legacy ``repositories`` file naming only ``reference``.

    >>> retag_repositories(b'{"a":{"1":"abc"}}', "reg/b")
    b'{"reg/b":{"latest":"abc"}}'
    """
    value = _json(data, "repositories")
    ids = [
        i for tags in (value.values() if isinstance(value, dict) else [])
        if isinstance(tags, dict) for i in tags.values()
    ]
    if not ids:
        raise ArtifactError("the image archive's repositories file names no image")
    if len(set(ids)) != 1:
        raise ArtifactError("cannot retag an archive holding several images")
    repo, tag = split_reference(reference)
    return _dump({repo: {tag: ids[0]}})


def retag_index(data: bytes, reference: str) -> bytes:
    """Return an OCI ``index.json`` whose image-name annotations name ``reference``."""
    value = _json(data, "index.json")
    manifests = value.get("manifests") if isinstance(value, dict) else None
    if not isinstance(manifests, list):
        raise ArtifactError("the image archive's index.json has no manifests list")
    repo, tag = split_reference(reference)
    for entry in manifests:
        notes = entry.get("annotations") if isinstance(entry, dict) else None
        if not isinstance(notes, dict):
            continue
        if "io.containerd.image.name" in notes:
            notes["io.containerd.image.name"] = _full_name(repo, tag)
        if "org.opencontainers.image.ref.name" in notes:
            notes["org.opencontainers.image.ref.name"] = tag
    return _dump(value)


def _full_name(repo: str, tag: str) -> str:
    first = repo.split("/", 1)[0]
    if "/" not in repo:
        repo = f"docker.io/library/{repo}"
    elif not ("." in first or ":" in first or first == "localhost"):
        repo = f"docker.io/{repo}"
    return f"{repo}:{tag}"


#: The members of an image archive the engine reads its tags from: always
#: regular files (a link there would escape the retag, see docs/security.rst).
METADATA_MEMBERS = ("manifest.json", "repositories", "index.json")


def retagger(reference: str) -> Callable[[str], Optional[Callable[[bytes], bytes]]]:
    """Return the :class:`~taskgraph_images.images.tarball.TarRewriter` callback that
    retags an image archive to ``reference``."""
    repo, tag = split_reference(reference)
    reference = f"{repo}:{tag}"
    table = {
        "manifest.json": retag_manifest,
        "repositories": retag_repositories,
        "index.json": retag_index,
    }

    def choose(name: str) -> Optional[Callable[[bytes], bytes]]:
        fn = table.get(name)
        if fn is None:
            return None
        return lambda data: fn(data, reference)

    return choose
