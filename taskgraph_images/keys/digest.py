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
once, and from them its digest inputs (:class:`KeyInputs`: context hash,
args, parents' digests, builder reference, recipe), by this recipe
(``"seed"``) or by taskcluster-taskgraph's (``"taskgraph"``: the sha256 of
its context tar stream, :mod:`taskgraph_images.keys.tar`, folded by
:mod:`taskgraph_images.keys.taskgraph`). The digest and the context
manifest (:func:`taskgraph_images.manifest.build_manifest`) are both made
from that one value, so the parent rule is written once.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Optional, Protocol, Sequence

import attrs

from taskgraph_images._hashing.filehash import FileHasher, file_sha256
from taskgraph_images.context import ContextFacts, ImageContext, ImageFacts, image_context
from taskgraph_images.errors import CatalogError
from taskgraph_images.keys.seed import combine_lines, hash_many

__all__ = ["DIGEST_VERSION_LINE", "CatalogKeys", "KeyFacts", "KeyImage", "KeyInputs", "image_digest"]

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


def _pairs(value: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple((str(a), str(b)) for a, b in value)


@attrs.frozen
class KeyInputs:
    """What image ``name``'s digest is made of, by one recipe: one value, computed once.

    The digest (:meth:`digest`) and the context manifest
    (:func:`~taskgraph_images.manifest.build_manifest`) are both made from it.
    """

    #: The image name.
    name: str
    #: ``seed`` or ``taskgraph``: whose recipe folds the inputs.
    recipe: str
    #: The context hash: the seed hash of the folder's files, or taskgraph's tar-stream hash.
    context_hash: str
    #: ``(NAME, value)`` of every ``# %ARG`` (taskgraph: the kind's ``args``).
    args: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    #: ``(name, digest or registry tag)`` of every parent the recipe folds, in ``FROM`` order.
    parents: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    #: Seed: ``(path from the root, sha256)`` of the folder's own files (the context hash's lines).
    own: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    #: Seed: ``(path from the root, sha256)`` of every ``# %include`` file.
    includes: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    #: Seed: ``(name in the context, sha256)`` of every run-task file.
    run_task: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    #: taskgraph: the image builder reference its digest names.
    image_builder: Optional[str] = None
    #: taskgraph: whether its args JSON is orjson's (see :func:`~taskgraph_images.keys.taskgraph.args_json`).
    orjson: bool = False

    def digest(self) -> str:
        """The image's digest by its recipe: :func:`image_digest`, or taskgraph's
        (:class:`~taskgraph_images.keys.taskgraph.DigestInputs`)."""
        if self.recipe == "taskgraph":
            from taskgraph_images.keys.taskgraph import IMAGE_BUILDER_IMAGE, DigestInputs

            return DigestInputs(self.context_hash, args=dict(self.args), parents=dict(self.parents),
                                orjson=self.orjson,
                                image_builder=self.image_builder or IMAGE_BUILDER_IMAGE).digest()
        return image_digest(self.context_hash, parents=self.parents, includes=self.includes,
                            args=self.args, run_task=self.run_task)


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
        self._inputs: dict[str, KeyInputs] = {}
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
            from taskgraph_images.keys.tar import context_hash

            found = self._context_hashes[name] = context_hash(self.context(name).taskgraph_files())
        if found is None:
            from taskgraph_images.keys.seed import hash_files

            found = hash_files(self.context(name).own, hasher=self._hasher)
            self._context_hashes[name] = found
        return found

    def inputs(self, name: str) -> KeyInputs:
        """Return image ``name``'s digest inputs, computed once (parents' first).

        By the seed recipe this hashes every file of the context (its own,
        the ``# %include`` and the run-task files) in one batch; by
        taskgraph's, it streams taskgraph's context tar.
        """
        found = self._inputs.get(name)
        if found is not None:
            return found
        facts = self._facts
        image = facts[name]
        if self.mode == "taskgraph":
            found = self._taskgraph_inputs(image)
        else:
            parents = []
            for parent in image.parents:
                if not facts[parent].prebuilt:
                    parents.append((parent, self.digest(parent)))
                elif parent == image.config_parent:
                    # FROM $DOCKER_IMAGE_PARENT: the reference is not in the Dockerfile.
                    parents.append((parent, facts.docker_image(parent)))
            context = self.context(name)
            included = context.included
            run_task = context.run_task
            own = context.own
            # The included and run-task files first, then the folder's own: the
            # order in which an unreadable file is reported.
            hashes = self.sha256_files([f.abspath for f in included]
                                       + [path for _, path in run_task]
                                       + [f.abspath for f in own])
            n_inc, n_run = len(included), len(run_task)
            own_hashes = hashes[n_inc + n_run:]
            context_hash = self._context_hashes.get(name)
            if context_hash is None:
                context_hash = combine_lines(zip((f.relpath for f in own), own_hashes))
                self._context_hashes[name] = context_hash
            found = KeyInputs(
                name, "seed", context_hash, args=image.args, parents=parents,
                own=[(f.relpath, h) for f, h in zip(own, own_hashes)],
                includes=[(f.relpath, h) for f, h in zip(included, hashes)],
                run_task=[(n, h) for (n, _), h in zip(run_task, hashes[n_inc:n_inc + n_run])],
            )
        self._inputs[name] = found
        return found

    def digest(self, name: str) -> str:
        """Return the key the index uses for image ``name`` (:meth:`KeyInputs.digest`)."""
        found = self._digests.get(name)
        if found is None:
            found = self._digests[name] = self.inputs(name).digest()
        return found

    def members(self, name: str) -> dict[str, str]:
        """Return ``{member: sha256}`` of image ``name``'s context, as its manifest lists them.

        Seed: the folder's files and the ``# %include`` files by path from
        the repository root, the run-task files by their name in the context
        (``run-task/run-task``), all hashed for the digest already. taskgraph:
        the members of its context tar by their name in it (``Dockerfile``
        being the one taskgraph writes, ``topsrcdir/...`` the included files).
        """
        inputs = self.inputs(name)
        if inputs.recipe == "seed":
            return dict((*inputs.own, *inputs.includes, *inputs.run_task))
        named = self.context(name).taskgraph_files()
        paths = [v for v in named.values() if isinstance(v, str)]
        hashes = iter(self.sha256_files(paths))
        return {n: hashlib.sha256(v).hexdigest() if isinstance(v, bytes) else next(hashes)
                for n, v in named.items()}

    def _taskgraph_inputs(self, image: KeyImage) -> KeyInputs:
        """taskgraph's inputs: its context hash, args, image builder, parent and chain of trust."""
        from taskgraph_images.keys.taskgraph import IMAGE_BUILDER_IMAGE

        parents = []
        parent = image.config_parent
        if parent is not None:
            if image.cache and not self._facts[parent].cache:
                raise CatalogError(
                    f"image {image.name!r} is cached but its parent {parent!r} has cache: false, "
                    "which taskgraph refuses (a cached task with an uncached parent)"
                )
            parents.append((parent, self.digest(parent)))
        if self._orjson is None:
            import importlib.util

            # taskgraph writes args with orjson when it can import it (they differ
            # on non-ASCII text), so the same environment gives the same digest.
            self._orjson = importlib.util.find_spec("orjson") is not None
        return KeyInputs(image.name, "taskgraph", self.context_hash(image.name),
                         args=image.args, parents=parents, orjson=self._orjson,
                         image_builder=self._image_builder or IMAGE_BUILDER_IMAGE)
