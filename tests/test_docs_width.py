"""Every code block of docs/*.rst, docs/*.md and README.md fits 80 columns.

Console blocks wider than that are cut (or scroll) in the rendered pages at
a 1280-pixel window and wrap in an 80-column terminal, so examples stay
within 80 columns: long commands are split over lines with ``\\``, and
output too wide to show is shortened with ``...``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from docblocks import Block, page_blocks

REPO = Path(__file__).resolve().parent.parent
PAGES = [*sorted((REPO / "docs").glob("*.rst")), *sorted((REPO / "docs").glob("*.md")), REPO / "README.md"]
WIDTH = 80


def too_wide(block: Block) -> list[str]:
    return [
        f"{block.path.relative_to(REPO)}:{block.line + i}: {len(line)} columns: {line}"
        for i, line in enumerate(block.lines)
        if len(line) > WIDTH
    ]


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(REPO)))
def test_every_code_block_fits_80_columns(page: Path) -> None:
    blocks = list(page_blocks(page))
    wide = [line for block in blocks for line in too_wide(block)]
    assert not wide, "\n".join(wide)


def test_the_blocks_found_are_the_pages_blocks() -> None:
    tutorial = list(page_blocks(REPO / "docs" / "tutorial.rst"))
    assert [b.language for b in tutorial][:3] == ["text", "console", "console"]
    assert tutorial[1].lines[0] == "$ taskgraph-images list --root examples/gecko"
    captioned = [b for b in tutorial if "caption" in b.options]
    assert [b.options["caption"] for b in captioned] == ["myrepo/taskcluster/taskgraph-images.yml"]
    readme = list(page_blocks(REPO / "README.md"))
    assert readme and all(b.language == "console" for b in readme[:2])
    hash_page = list(page_blocks(REPO / "docs" / "hash.rst"))
    assert any(b.language == "literal" for b in hash_page)
