"""Multi-buffer SHA-256 of many files at once (AVX2 / AVX-512, or SHA-NI); see _sha256mb.c."""

from typing import Optional, Sequence, Union

def widths() -> tuple[int, ...]: ...
def hash_files(
    paths: Sequence[str], width: int = 0, limit: int = -1
) -> list[Union[str, int, None]]: ...
def tar_fill(
    buffer: bytearray, pos: int, names: list[bytes], paths: list[Optional[bytes]],
    start: int, mtime: int,
) -> tuple[int, int]: ...
