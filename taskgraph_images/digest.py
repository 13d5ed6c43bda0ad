"""The one recipe for an image's digest, the key it is indexed under.

An image with no in-tree parent to fold, no ``# %include`` files and no
``# %ARG`` values is keyed by its seed context hash unchanged, so images
indexed by the 2016 decision task are found again. Anything else is keyed by::

    sha256(
        "taskgraph-images-digest-v1\\n"
        "context\\t{context hash}\\n"
        "parent\\t{name}\\t{parent digest or prebuilt reference}\\n"   per parent, by name
        "include\\t{file sha256}\\t/{path from repository root}\\n"   per file, by path bytes
        "arg\\t{NAME}\\t{JSON string of the value}\\n"                  per arg, by NAME
    ).hexdigest()

so a change to any ancestor, included file or argument changes the digest of
the image and of every image below it, and nothing else's.
"""

from __future__ import annotations

import hashlib
import json
import os
from typing import Sequence

__all__ = ["DIGEST_VERSION_LINE", "image_digest"]

DIGEST_VERSION_LINE = b"taskgraph-images-digest-v1\n"


def image_digest(
    context_hash: str,
    *,
    parents: Sequence[tuple[str, str]] = (),
    includes: Sequence[tuple[str, str]] = (),
    args: Sequence[tuple[str, str]] = (),
) -> str:
    """Return the digest of an image from its parts.

    ``parents`` are ``(name, digest-or-reference)`` pairs, ``includes`` are
    ``(path relative to the repository root, file sha256)`` pairs and ``args``
    ``(NAME, value)`` pairs; each is sorted here, so callers need not.

    >>> image_digest("a" * 64) == "a" * 64
    True
    """
    if not parents and not includes and not args:
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
    return h.hexdigest()
