"""Closest-match suggestions for a misspelt name: ``did you mean 'task-queue-id'?``."""

from __future__ import annotations

import difflib
from typing import Iterable

__all__ = ["did_you_mean", "unknown_image"]


def did_you_mean(word: str, choices: Iterable[str], *, most: int = 3) -> str:
    """``did you mean 'a'?`` (or ``'a' or 'b'?``) for the choices closest to ``word``, else ``""``.

    >>> did_you_mean("task-queue", ["task-queue-id", "priority", "retries"])
    "did you mean 'task-queue-id'?"
    >>> did_you_mean("buildr", ["builder", "base", "tester"])
    "did you mean 'builder'?"
    >>> did_you_mean("zzz", ["builder"])
    ''
    """
    close = difflib.get_close_matches(word, list(choices), n=most, cutoff=0.6)
    if not close:
        return ""
    return "did you mean " + " or ".join(repr(c) for c in close) + "?"


#: How many known names an "unknown image" message lists (the closest come first anyway).
SHOWN = 20


def unknown_image(name: str, known: Iterable[str]) -> str:
    """``unknown image 'buildr' (did you mean 'builder'? known images: base, builder)``.

    ``known`` in the order to list them; at most :data:`SHOWN` are listed.

    >>> unknown_image("nope", [])
    "unknown image 'nope' (known images: none)"
    """
    names = list(known)
    shown = names[:SHOWN]
    listing = ", ".join(shown) or "none"
    if len(names) > len(shown):
        listing += f" and {len(names) - len(shown)} more"
    hint = did_you_mean(name, names)
    return f"unknown image {name!r} ({hint + ' ' if hint else ''}known images: {listing})"
