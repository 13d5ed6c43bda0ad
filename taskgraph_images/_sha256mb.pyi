"""Multi-buffer SHA-256 of many files at once (AVX2 / AVX-512); see _sha256mb.c."""

from typing import Sequence, Union

def widths() -> tuple[int, ...]: ...
def hash_files(
    paths: Sequence[str], width: int = 0, limit: int = -1
) -> list[Union[str, int, None]]: ...
