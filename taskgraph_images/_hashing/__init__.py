"""Hashing files: the hashers and the hashing engine (:mod:`.filehash`), the
file-hash cache (:mod:`.cache`) and the compiled multi-buffer kernel
(``_sha256mb``, built from ``_sha256mb.c`` where a C compiler is found).

Outside this package, the compiled module is reached only through
:data:`tar_fill` (the tar-stream hash's per-file loop), loaded on first use.
"""

from __future__ import annotations

from typing import Callable


def __getattr__(name: str) -> Callable[..., tuple[int, int]]:
    """``tar_fill``: the compiled per-file loop; ImportError where it is not built."""
    if name == "tar_fill":
        from taskgraph_images._hashing._sha256mb import tar_fill

        return tar_fill
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
