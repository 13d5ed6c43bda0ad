"""The seed's substitutions in in-tree task templates (pure, apart from reading a path).

Recognised tags, and nothing else::

    {{#task_id_for_image}}NAME{{/task_id_for_image}}   -> the image's task id
    {{#docker_image}}NAME{{/docker_image}}             -> registry/name:version
    {#docker_image}NAME{/docker_image}                 -> the same (the seed README's spelling)

Whitespace around ``NAME`` is allowed. Every other character of the text is
kept as it is: no HTML escaping, no other mustache processing. Errors are
:class:`~taskgraph_images.errors.TemplateError` with the line and column.
"""

from __future__ import annotations

import os
import re
from typing import Any, Optional, Protocol, Sequence, Union

from taskgraph_images.errors import TaskgraphImagesError, TemplateError
from taskgraph_images.names import is_image_name

__all__ = ["ImageLookups", "render_template", "render_yaml"]

PathLike = Union[str, "os.PathLike[str]"]

_FUNCTIONS = ("task_id_for_image", "docker_image")
# Double-brace tags first, so that ``{{#docker_image}}`` is never read as
# ``{`` followed by the single-brace tag.
_TAG = re.compile(
    r"\{\{(?P<dsign>[#/])(?P<dfunc>task_id_for_image|docker_image)\}\}"
    r"|\{(?P<ssign>[#/])(?P<sfunc>docker_image)\}"
)


class ImageLookups(Protocol):
    """What rendering needs; :class:`~taskgraph_images.plan.Plan` provides it."""

    def names(self) -> list[str]:
        """Every image name."""
        ...

    def task_id_for_image(self, name: str) -> str:
        """The task id of task image ``name``."""
        ...

    def docker_image(self, name: str) -> str:
        """The registry tag of prebuilt image ``name``."""
        ...


def _position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    column = offset - (text.rfind("\n", 0, offset) + 1) + 1
    return line, column


def _spell(sign: str, func: str, double: bool) -> str:
    return "{{" + sign + func + "}}" if double else "{" + sign + func + "}"


def render_template(text: str, plan: ImageLookups, *, source: str = "template") -> str:
    """Return ``text`` with every recognised tag replaced (see the module docs).

    ``source`` names the template in error messages.

    >>> class Fake:
    ...     def names(self): return ["base"]
    ...     def docker_image(self, name): return "taskcluster/base:0.1.7"
    ...     def task_id_for_image(self, name): raise ValueError(name)
    >>> render_template("image: {#docker_image} base {/docker_image}", Fake())
    'image: taskcluster/base:0.1.7'

    :raises TemplateError: for an unknown image (listing the known ones), a
        ``docker_image`` of a task image, a ``task_id_for_image`` of a
        prebuilt image, or unbalanced or mismatched tags; with line and column.
    """
    if not isinstance(text, str):
        raise TemplateError(f"{source}: expected text, got {type(text).__name__}")
    known: Optional[Sequence[str]] = None
    out: list[str] = []
    pos = 0
    opened: Optional[re.Match[str]] = None
    for tag in _TAG.finditer(text):
        double = tag.group("dsign") is not None
        sign = tag.group("dsign") or tag.group("ssign")
        func = tag.group("dfunc") or tag.group("sfunc")
        spelled = _spell(sign, func, double)
        line, column = _position(text, tag.start())
        where = f"{source}:{line}:{column}"
        if opened is None:
            if sign == "/":
                raise TemplateError(f"{where}: closing tag {spelled} without an opening tag")
            out.append(text[pos : tag.start()])
            opened = tag
            continue
        o_double = opened.group("dsign") is not None
        o_func = opened.group("dfunc") or opened.group("sfunc")
        o_line, o_column = _position(text, opened.start())
        o_spelled = _spell("#", o_func, o_double)
        if sign == "#":
            raise TemplateError(
                f"{where}: {spelled} inside {o_spelled} opened at line {o_line}, "
                f"column {o_column}: close it first"
            )
        if func != o_func or double != o_double:
            raise TemplateError(
                f"{where}: {spelled} does not close {o_spelled} opened at line {o_line}, "
                f"column {o_column}: expected {_spell('/', o_func, o_double)}"
            )
        raw = text[opened.end() : tag.start()]
        name = raw.strip()
        n_offset = opened.end() + (len(raw) - len(raw.lstrip()))
        n_line, n_column = _position(text, n_offset)
        n_where = f"{source}:{n_line}:{n_column}"
        if known is None:
            known = list(plan.names())
        if not name:
            raise TemplateError(f"{n_where}: {o_spelled} names no image")
        if not is_image_name(name) or name not in known:
            from taskgraph_images._suggest import unknown_image

            raise TemplateError(f"{n_where}: {unknown_image(name, sorted(known))}")
        try:
            value = plan.task_id_for_image(name) if func == "task_id_for_image" else (
                plan.docker_image(name)
            )
        except TaskgraphImagesError as e:
            raise TemplateError(f"{n_where}: {e}") from None
        out.append(value)
        pos = tag.end()
        opened = None
    if opened is not None:
        line, column = _position(text, opened.start())
        o_double = opened.group("dsign") is not None
        o_func = opened.group("dfunc") or opened.group("sfunc")
        raise TemplateError(
            f"{source}:{line}:{column}: {_spell('#', o_func, o_double)} is never closed "
            f"(expected {_spell('/', o_func, o_double)})"
        )
    out.append(text[pos:])
    return "".join(out)


def render_yaml(text_or_path: Union[str, os.PathLike[str]], plan: ImageLookups) -> Any:
    """Render a YAML template and return the parsed document.

    A :class:`str` is the template's text; an :class:`os.PathLike` (such as
    :class:`pathlib.Path`) is a file to read.

    :raises TemplateError: for a tag error (see :func:`render_template`), an
        unreadable file, or YAML that does not parse after rendering (with
        line and column).
    """
    from taskgraph_images._safefile import MAX_CONFIG_BYTES, read_repo_text
    from taskgraph_images._yamlfile import parse_yaml

    if isinstance(text_or_path, str):
        text, source = text_or_path, "template"
    else:
        source = os.fspath(text_or_path)
        text = read_repo_text(None, source, "template", TemplateError, limit=MAX_CONFIG_BYTES)
    rendered = render_template(text, plan, source=source)
    # Aliases are bounded (a "billion laughs" template is refused, not expanded).
    return parse_yaml(rendered, source, TemplateError, context="after rendering: ")
