"""The seed recipe: the context hash of the 2016 decision task, over a context's files.

One line per file, in the order the files are given (sorted by path bytes),
fed to an outer sha256::

    {sha256 hexdigest of the file}\\t/{path relative to the repository root}\\n

The files come from :mod:`taskgraph_images.context`; hashing them is
:mod:`taskgraph_images._hashing.filehash`'s business. See ``docs/hash.rst``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from typing import Iterable, Optional, Protocol, Sequence

from taskgraph_images._hashing.filehash import FileHasher, file_sha256, hash_paths

__all__ = ["SeedFile", "combine_lines", "hash_files", "hash_many"]


class SeedFile(Protocol):
    """What the recipe needs of a file: its path from the root and where to read it."""

    @property
    def relpath(self) -> str: ...

    @property
    def abspath(self) -> str: ...


def combine_lines(pairs: Iterable[tuple[str, str]]) -> str:
    """Fold ``(relpath, file hexdigest)`` pairs, already sorted, into the seed hash."""
    outer = hashlib.sha256()
    pairs = iter(pairs)
    while True:  # a few thousand lines at a time: one encode each, memory stays flat
        lines = [f"{digest}\t/{relpath}\n" for relpath, digest in itertools.islice(pairs, 4096)]
        if not lines:
            return outer.hexdigest()
        outer.update(os.fsencode("".join(lines)))


def hash_many(paths: Sequence[str], jobs: Optional[int], hasher: FileHasher) -> list[str]:
    """Return the sha256 of every path, in order: in one batch when ``hasher`` has a
    ``sha256_many`` method (a cache does), else with
    :func:`~taskgraph_images._hashing.filehash.hash_paths`."""
    batch = getattr(hasher, "sha256_many", None)
    if batch is not None:
        return list(batch(paths, jobs=jobs))
    return hash_paths(paths, jobs=jobs, hasher=hasher)


def hash_files(files: Sequence[SeedFile], *, jobs: Optional[int] = None,
               hasher: FileHasher = file_sha256) -> str:
    """Return the seed hash of ``files`` (sorted by path bytes, as listing sorts them)."""
    digests = hash_many([f.abspath for f in files], jobs, hasher)
    return combine_lines(zip((f.relpath for f in files), digests))
