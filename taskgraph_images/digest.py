"""The one recipe for an image's digest, the key it is indexed under.

An image with no in-tree parent to fold, no ``# %include`` files, no
run-task files and no ``# %ARG`` values is keyed by its seed context hash
unchanged, so images indexed by the 2016 decision task are found again.
Anything else is keyed by::

    sha256(
        "taskgraph-images-digest-v1\\n"
        "context\\t{context hash}\\n"
        "parent\\t{name}\\t{parent digest or prebuilt reference}\\n"   per parent, by name
        "include\\t{file sha256}\\t/{path from repository root}\\n"   per file, by path bytes
        "arg\\t{NAME}\\t{JSON string of the value}\\n"                  per arg, by NAME
    ).hexdigest()

so a change to any ancestor, included file or argument changes the digest of
the image and of every image below it, and nothing else's.

:class:`CatalogKeys` applies a recipe to a catalog: it computes each
image's context members (:func:`~taskgraph_images.context.image_context`)
once, and its context hash and digest from them, by this recipe (``"seed"``)
or by taskcluster-taskgraph's (``"taskgraph"``: the sha256 of its context
tar stream, :mod:`taskgraph_images.taskgraph_tar`, folded by
:mod:`taskgraph_images.taskgraph_keys`).
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional, Protocol, Sequence

from taskgraph_images._hashing.filehash import FileHasher, file_sha256
from taskgraph_images.context import ContextFacts, ImageContext, ImageFacts, image_context
from taskgraph_images.errors import CatalogError
from taskgraph_images.seedhash import hash_many

__all__ = ["DIGEST_VERSION_LINE", "CatalogKeys", "KeyFacts", "KeyImage", "image_digest"]

DIGEST_VERSION_LINE = b"taskgraph-images-digest-v1\n"


def image_digest(
    context_hash: str,
    *,
    parents: Sequence[tuple[str, str]] = (),
    includes: Sequence[tuple[str, str]] = (),
    args: Sequence[tuple[str, str]] = (),
    run_task: Sequence[tuple[str, str]] = (),
) -> str:
    """Return the digest of an image from its parts.

    ``parents`` are ``(name, digest-or-reference)`` pairs, ``includes`` are
    ``(path relative to the repository root, file sha256)`` pairs, ``args``
    ``(NAME, value)`` pairs and ``run_task`` ``(name in the context, file
    sha256)`` pairs; each is sorted here, so callers need not.

    >>> image_digest("a" * 64) == "a" * 64
    True
    """
    if not parents and not includes and not args and not run_task:
        return context_hash
    h = hashlib.sha256(DIGEST_VERSION_LINE)
    h.update(b"context\t%s\n" % context_hash.encode("ascii"))
    for name, value in sorted(parents):
        h.update(b"parent\t%s\t%s\n" % (name.encode("utf-8"), value.encode("utf-8")))
    for path, file_hash in sorted(includes, key=lambda item: os.fsencode(item[0])):
        h.update(b"include\t%s\t/%s\n" % (file_hash.encode("ascii"), os.fsencode(path)))
    for name, value in sorted(args):
        encoded = json.dumps(value, ensure_ascii=False).encode("utf-8")
        h.update(b"arg\t%s\t%s\n" % (name.encode("utf-8"), encoded))
    for name, file_hash in sorted(run_task):
        h.update(b"run-task\t%s\t%s\n" % (file_hash.encode("ascii"), name.encode("utf-8")))
    return h.hexdigest()


class KeyImage(ImageFacts, Protocol):
    """What the keys need of an image (a :class:`~taskgraph_images.catalog.Image`)."""

    @property
    def name(self) -> str: ...
    @property
    def parents(self) -> tuple[str, ...]: ...
    @property
    def prebuilt(self) -> bool: ...
    @property
    def cache(self) -> bool: ...


class KeyFacts(ContextFacts, Protocol):
    """What the keys need of a catalog (an :class:`~taskgraph_images.catalog.ImageCatalog`)."""

    def __getitem__(self, name: str) -> KeyImage: ...

    def docker_image(self, name: str) -> str: ...


class CatalogKeys:
    """The context members, context hashes and digests of a catalog's images.

    Each is computed on first use and kept: a catalog is a snapshot of the
    tree. ``hasher`` hashes one file (default
    :func:`~taskgraph_images._hashing.filehash.file_sha256`; a cache of file hashes
    fits). ``mode`` is ``"seed"`` or ``"taskgraph"``: whose recipe keys the images;
    ``image_builder`` the builder taskgraph's digests name, when not its own.
    """

    def __init__(self, facts: KeyFacts, *, hasher: Optional[FileHasher] = None,
                 mode: str = "seed", image_builder: Optional[str] = None) -> None:
        if mode not in ("seed", "taskgraph"):
            raise CatalogError(f"unknown cache keys {mode!r}: use 'seed' or 'taskgraph'")
        self.mode = mode
        self._image_builder = image_builder
        self._facts = facts
        self._hasher: FileHasher = hasher if hasher is not None else file_sha256
        self._contexts: dict[str, ImageContext] = {}
        self._context_hashes: dict[str, str] = {}
        self._digests: dict[str, str] = {}
        self._orjson: Optional[bool] = None

    def context(self, name: str) -> ImageContext:
        """Return the members of image ``name``'s context."""
        found = self._contexts.get(name)
        if found is None:
            found = self._contexts[name] = image_context(self._facts, name)
        return found

    def sha256_files(self, paths: Sequence[str]) -> list[str]:
        """Return the sha256 of every file in ``paths``, in order, with the catalog's
        hasher (its file-hash cache, when it has one)."""
        return hash_many(paths, None, self._hasher)

    def context_hash(self, name: str) -> str:
        """Return image ``name``'s context hash: the seed hash of its folder, or taskgraph's."""
        found = self._context_hashes.get(name)
        if found is None and self.mode == "taskgraph":
            from taskgraph_images.taskgraph_tar import context_hash

            found = self._context_hashes[name] = context_hash(self.context(name).taskgraph_files())
        if found is None:
            from taskgraph_images.seedhash import hash_files

            found = hash_files(self.context(name).own, hasher=self._hasher)
            self._context_hashes[name] = found
        return found

    def digest(self, name: str) -> str:
        """Return the key the index uses for image ``name`` (see :func:`image_digest`)."""
        found = self._digests.get(name)
        if found is not None:
            return found
        facts = self._facts
        image = facts[name]
        if self.mode == "taskgraph":
            found = self._digests[name] = self._taskgraph_digest(image)
            return found
        parents = []
        for parent in image.parents:
            if not facts[parent].prebuilt:
                parents.append((parent, self.digest(parent)))
            elif parent == image.config_parent:
                # FROM $DOCKER_IMAGE_PARENT: the reference is not in the Dockerfile.
                parents.append((parent, facts.docker_image(parent)))
        context = self.context(name)
        included = context.included
        extra = [f.abspath for f in included] + [path for _, path in context.run_task]
        hashes = self.sha256_files(extra)
        includes = [(f.relpath, h) for f, h in zip(included, hashes)]
        run_task = [(n, h) for (n, _), h in zip(context.run_task, hashes[len(included):])]
        found = image_digest(self.context_hash(name), parents=parents, includes=includes,
                             args=image.args, run_task=run_task)
        self._digests[name] = found
        return found


    def _taskgraph_digest(self, image: KeyImage) -> str:
        """taskgraph's digest: its context hash, args, image builder, parent and chain of trust."""
        from taskgraph_images.taskgraph_keys import IMAGE_BUILDER_IMAGE, DigestInputs

        parents = {}
        parent = image.config_parent
        if parent is not None:
            if image.cache and not self._facts[parent].cache:
                raise CatalogError(
                    f"image {image.name!r} is cached but its parent {parent!r} has cache: false, "
                    "which taskgraph refuses (a cached task with an uncached parent)"
                )
            parents[parent] = self.digest(parent)
        if self._orjson is None:
            import importlib.util

            # taskgraph writes args with orjson when it can import it (they differ
            # on non-ASCII text), so the same environment gives the same digest.
            self._orjson = importlib.util.find_spec("orjson") is not None
        return DigestInputs(self.context_hash(image.name), args=dict(image.args),
                            parents=parents, orjson=self._orjson,
                            image_builder=self._image_builder or IMAGE_BUILDER_IMAGE).digest()
