"""The code blocks of the documentation, as the pages spell them.

:func:`rst_blocks` finds the ``code-block`` (and ``code``, ``sourcecode``)
directives and the ``::`` literal blocks of a reStructuredText page;
:func:`markdown_blocks` the fenced blocks of a Markdown file. Each
:class:`Block` has its language, its options (``:caption:``), its lines
without the page's indentation and the line number of its first line, so
that a test can run what a page shows and say where it is.

:func:`console_steps` splits a ``console`` block into commands (``$ ``
lines, joined over trailing backslashes) and the output shown after each.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Iterator

import attrs

__all__ = ["Block", "Step", "console_steps", "markdown_blocks", "page_blocks", "rst_blocks"]

_DIRECTIVE = re.compile(r"(?P<indent> *)\.\. (?:code-block|code|sourcecode)::\s*(?P<lang>\S*)\s*$")
_OPTION = re.compile(r" *:(?P<name>[\w-]+):(?: (?P<value>.*))?$")
_FENCE = re.compile(r"(?P<fence>```+|~~~+)\s*(?P<lang>[\w+-]*)")


@attrs.frozen
class Block:
    """One code block of a page."""

    path: Path
    #: 1-based line number of the block's first content line.
    line: int
    language: str
    options: dict[str, str]
    #: The content, dedented to the block's own indentation, trailing blanks dropped.
    lines: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.path.name}:{self.line}"


@attrs.frozen
class Step:
    """A command of a console block and the output the page shows for it."""

    command: str
    output: tuple[str, ...]
    line: int


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _content(lines: list[str], start: int, outer: int) -> tuple[int, list[str], int]:
    """The lines indented more than ``outer`` from ``start`` on (blank lines included):
    return the first content line's index, the dedented content and the index after it."""
    i = start
    while i < len(lines) and not lines[i].strip():
        i += 1
    first = i
    body: list[str] = []
    while i < len(lines) and (not lines[i].strip() or _indent(lines[i]) > outer):
        body.append(lines[i])
        i += 1
    while body and not body[-1].strip():
        body.pop()
    if not body:
        return first, [], i
    cut = min(_indent(line) for line in body if line.strip())
    return first, [line[cut:].rstrip("\n") for line in body], i


def rst_blocks(path: Path) -> Iterator[Block]:
    """The code-block directives and ``::`` literal blocks of an .rst page, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        m = _DIRECTIVE.match(line)
        if m:
            outer = len(m["indent"])
            options: dict[str, str] = {}
            i += 1
            while i < len(lines) and (o := _OPTION.match(lines[i])) and _indent(lines[i]) > outer:
                options[o["name"]] = (o["value"] or "").strip()
                i += 1
            first, body, i = _content(lines, i, outer)
            yield Block(path, first + 1, m["lang"] or "default", options, tuple(body))
            continue
        stripped = line.rstrip()
        if stripped.endswith("::") and not stripped.lstrip().startswith(".."):
            first, body, end = _content(lines, i + 1, _indent(line))
            if body:
                yield Block(path, first + 1, "literal", {}, tuple(body))
            i = end
            continue
        i += 1


def markdown_blocks(path: Path) -> Iterator[Block]:
    """The fenced code blocks of a Markdown file, in order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if m:
            end = i + 1
            while end < len(lines) and not lines[end].startswith(m["fence"]):
                end += 1
            yield Block(path, i + 2, m["lang"] or "default", {}, tuple(lines[i + 1 : end]))
            i = end + 1
            continue
        i += 1


def page_blocks(path: Path) -> Iterator[Block]:
    """The code blocks of ``path``, a .rst or .md page."""
    return markdown_blocks(path) if path.suffix == ".md" else rst_blocks(path)


def console_steps(block: Block) -> list[Step]:
    """The commands of a console block, each with the output lines shown after it."""
    found: list[tuple[str, list[str], int]] = []
    lines = list(block.lines)
    i = 0
    while i < len(lines):
        line = lines[i]
        if not line.startswith("$ "):
            if not found:
                raise ValueError(f"{block.where}: output before any command: {line!r}")
            found[-1][1].append(line)
            i += 1
            continue
        start = i
        parts = [line[2:]]
        while parts[-1].endswith("\\") and i + 1 < len(lines):
            parts[-1] = parts[-1][:-1].rstrip()
            i += 1
            parts.append(lines[i].strip())
        found.append((" ".join(parts), [], block.line + start))
        i += 1
    return [Step(command, tuple(output), line) for command, output, line in found]
