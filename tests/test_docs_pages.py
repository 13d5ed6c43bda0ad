"""The documentation's front door: what a newcomer sees first, and a contents list
that names every page once.

The front page starts with a quick start (``list`` and ``plan`` with their
output; ``tests/test_tutorial.py`` runs it) and the picture of the example's
plan; its contents list names each page of ``docs/`` once, under a title no
other listed page uses for a section (a page and another page's section of
the same name read as one page listed twice); the sidebar's title stays on
one line and nothing is wider than the page (``docs/_static/custom.css``).
"""

from __future__ import annotations

import re
from pathlib import Path

from docblocks import console_steps, rst_blocks

REPO = Path(__file__).resolve().parent.parent
DOCS = REPO / "docs"
INDEX = DOCS / "index.rst"
_UNDERLINE = re.compile(r"^(=+|-+|~+)$")


def _toctree_entries() -> list[str]:
    entries: list[str] = []
    inside = False
    for line in INDEX.read_text().splitlines():
        if line.startswith(".. toctree::"):
            inside = True
        elif inside and line.startswith("   ") and not line.strip().startswith(":"):
            entries.append(line.strip())
        elif inside and line and not line.startswith(" "):
            inside = False
    return [e for e in entries if e]


def _headings(page: Path) -> list[str]:
    """The page's headings (reStructuredText: a line underlined as long as itself)."""
    lines = page.read_text().splitlines()
    return [lines[i - 1].strip() for i, line in enumerate(lines)
            if i and _UNDERLINE.match(line) and len(line) >= len(lines[i - 1].strip()) > 0]


def test_the_front_page_starts_with_a_quick_start_and_the_picture() -> None:
    text = INDEX.read_text()
    assert _headings(INDEX)[:2] == ["taskgraph-images", "Quick start"]
    first = next(rst_blocks(INDEX))
    assert first.language == "console"
    commands = [step.command for step in console_steps(first)]
    assert commands == ["taskgraph-images list --root examples/gecko",
                        "taskgraph-images plan --root examples/gecko --output plan.json"]
    assert all(step.output for step in console_steps(first))  # each with its output
    assert text.index(".. image-graph:: ../examples/gecko") < text.index(".. toctree::")


def test_every_page_is_listed_once() -> None:
    entries = _toctree_entries()
    pages = sorted(p.stem for p in [*DOCS.glob("*.rst"), *DOCS.glob("*.md")] if p.stem != "index")
    assert sorted(entries) == pages
    assert len(set(entries)) == len(entries)
    assert "   :maxdepth: 1" in INDEX.read_text() and ":maxdepth: 2" not in INDEX.read_text()


def test_no_page_title_is_another_listed_pages_section() -> None:
    titles = {}
    for entry in _toctree_entries():
        page = DOCS / f"{entry}.rst"
        if page.exists():
            titles[entry] = _headings(page)
    for entry, headings in titles.items():
        for other, theirs in titles.items():
            if other != entry:
                assert headings[0] not in theirs[1:], f"{entry}'s title is a section of {other}"


def test_the_sidebar_title_stays_on_one_line_and_nothing_is_wider_than_the_page() -> None:
    conf = (DOCS / "conf.py").read_text()
    assert 'html_css_files = ["custom.css"]' in conf and 'html_static_path = ["_static"]' in conf
    css = (DOCS / "_static" / "custom.css").read_text()
    logo = css[css.index("div.sphinxsidebar h1.logo"):]
    assert "white-space: nowrap;" in logo[: logo.index("}")]
    for selector in ("code.literal span.pre", "dl.py > dt span.pre", "div.highlight pre"):
        rule = css[css.index(selector):]
        assert "overflow-wrap: anywhere;" in rule[: rule.index("}")], selector


def test_the_decision_task_api_part_documents_exactly_the_top_level_names() -> None:
    import taskgraph_images

    text = (DOCS / "api.rst").read_text()
    part = text[text.index("\nDecision-task API\n"):text.index("\nBuilding blocks\n")]
    documented = set(re.findall(r"^\.\. auto(?:class|function|module):: (\S+)$", part, re.M))
    names = {path.rsplit(".", 1)[-1] for path in documented}
    for path in documented:  # each path names the object the top level gives
        module, _, name = path.rpartition(".")
        if name != "errors":
            assert getattr(taskgraph_images, name) is getattr(
                __import__(module, fromlist=[name]), name)
    assert names == set(taskgraph_images.__all__) - {"__version__"}
