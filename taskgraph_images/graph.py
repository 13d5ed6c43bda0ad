"""The image graph of a plan: parents to children, each image with its decision (pure).

:func:`image_graph` turns a :class:`~taskgraph_images.plan.Plan` into an
:class:`ImageGraph` (one :class:`GraphNode` per image, parents first, and
the edges from each in-tree parent to its child); :func:`to_dot` and
:func:`to_mermaid` write it as Graphviz DOT and as a Mermaid flowchart,
:func:`to_json` as plain values for other tools.
Nothing here reads or writes files.

Prebuilt images are drawn as grey boxes with their registry tag, task
images as rounded boxes coloured by decision (green: reused, orange:
built), each with why. Any image name is safe to draw: characters a
picture cannot show (control characters, lone surrogates) are spelled as
``\\xNN``/``\\uNNNN`` escapes and everything else is quoted for its format.

>>> from taskgraph_images.plan import Decision
>>> d = Decision("base", "prebuilt", "ab" * 32, docker_image="r/base:1", reason="registry tag r/base:1")
>>> [node.lines for node in image_graph_of([d]).nodes]
[('base', 'prebuilt abababababab', 'r/base:1')]
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Iterable, Literal, Mapping, Optional, Sequence

import attrs

from taskgraph_images.errors import InvalidValueError

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.plan import Action, Decision, Plan

__all__ = [
    "FORMATS",
    "GraphFormat",
    "GraphNode",
    "ImageGraph",
    "image_graph",
    "image_graph_of",
    "render_graph",
    "to_dot",
    "to_json",
    "to_mermaid",
]

GraphFormat = Literal["dot", "mermaid"]
#: The output formats :func:`render_graph` knows.
FORMATS: tuple[GraphFormat, ...] = ("dot", "mermaid")

# Fill and border colours per decision, shared by both formats.
_COLOURS: Mapping[str, tuple[str, str]] = {
    "prebuilt": ("#e8e8e8", "#707070"),
    "reuse": ("#d5f0d5", "#2e7d32"),
    "build": ("#ffe0b2", "#c65100"),
}


@attrs.frozen
class GraphNode:
    """One image of the graph, with what the plan decided for it."""

    #: The image name, as the catalog spells it.
    name: str
    #: ``prebuilt`` (a registry tag) or ``task`` (built by a task, by digest).
    kind: Literal["prebuilt", "task"]
    #: ``reuse``, ``build`` or ``prebuilt``.
    action: Action
    #: The image's digest (its index key).
    digest: str
    #: Why: the registry tag, where the reused task was found, or why it is built.
    why: str
    #: The task whose artifact holds the image; ``None`` for a prebuilt image.
    task_id: Optional[str] = None

    @property
    def lines(self) -> tuple[str, ...]:
        """The label, line by line: the name, the decision and short digest, why, the task."""
        lines = [self.name, f"{self.action} {self.digest[:12]}", self.why]
        if self.task_id is not None:
            lines.append(f"task {self.task_id}")
        return tuple(lines)


@attrs.frozen
class ImageGraph:
    """The images of a plan (parents first) and the parent-to-child edges between them."""

    nodes: tuple[GraphNode, ...]
    #: ``(parent, child)`` image names, in the order of the children.
    edges: tuple[tuple[str, str], ...]
    #: A one-line caption (project, level and counts), or ``""``.
    title: str = ""


def _why(decision: Decision) -> str:
    if decision.action == "prebuilt":
        return decision.docker_image or decision.reason
    if decision.action == "reuse" and decision.level is not None:
        return f"found at level {decision.level}"
    return decision.reason


def image_graph_of(
    decisions: Iterable[Decision],
    parents: Optional[Mapping[str, Sequence[str]]] = None,
    title: str = "",
) -> ImageGraph:
    """Return the graph of ``decisions`` (parents first).

    ``parents`` maps an image to its in-tree parents (the catalog's
    ``Image.parents``); by default each decision's ``parent`` is used.
    Parents that are not among the decisions are left out.
    """
    decided = list(decisions)
    known = {d.name for d in decided}
    nodes: list[GraphNode] = []
    edges: list[tuple[str, str]] = []
    for d in decided:
        nodes.append(
            GraphNode(
                name=d.name,
                kind="prebuilt" if d.action == "prebuilt" else "task",
                action=d.action,
                digest=d.digest,
                why=_why(d),
                task_id=d.task_id,
            )
        )
        own = () if d.parent is None else (d.parent,)
        of = own if parents is None else parents.get(d.name, ())
        edges.extend((p, d.name) for p in dict.fromkeys(of) if p in known)
    return ImageGraph(tuple(nodes), tuple(edges), title)


def image_graph(plan: Plan, parents: Optional[Mapping[str, Sequence[str]]] = None) -> ImageGraph:
    """Return the image graph of ``plan``, titled with its project, level and counts."""
    counts = {a: sum(d.action == a for d in plan.decisions.values()) for a in _COLOURS}
    title = (
        f"{plan.params.project}, level {plan.params.level}: {counts['build']} to build, "
        f"{counts['reuse']} reused, {counts['prebuilt']} prebuilt"
    )
    return image_graph_of(plan.decisions.values(), parents, title)


def _visible(text: str) -> str:
    """Spell the characters a picture cannot show as ``\\xNN``, ``\\uNNNN`` or ``\\UNNNNNNNN``."""
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            out.append(ch)
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}" if code < 0x100 else
                f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
            )
    return "".join(out)


def _node_ids(graph: ImageGraph) -> dict[str, str]:
    # Synthetic identifiers: any name is then a valid node, in either format.
    return {node.name: f"n{i}" for i, node in enumerate(graph.nodes)}


# -- Graphviz DOT -------------------------------------------------------------------------


def _dot_text(text: str) -> str:
    r"""Escape ``text`` for a quoted DOT label (``\`` and ``"``)."""
    return _visible(text).replace("\\", "\\\\").replace('"', '\\"')


def _dot_label(lines: Sequence[str]) -> str:
    return '"' + "\\n".join(_dot_text(line) for line in lines) + '"'


def to_dot(graph: ImageGraph) -> str:
    """Return ``graph`` as a Graphviz ``digraph`` (``dot -Tsvg`` draws it)."""
    ids = _node_ids(graph)
    out = ["digraph images {"]
    if graph.title:
        out.append(f"  label={_dot_label([graph.title])};")
        out.append('  labelloc="t";')
    out.append('  graph [rankdir="TB", fontname="Helvetica", fontsize=12];')
    out.append('  node [shape="box", style="rounded,filled", fontname="Helvetica", fontsize=10];')
    out.append('  edge [color="#505050"];')
    for node in graph.nodes:
        fill, border = _COLOURS[node.action]
        style = '"filled"' if node.kind == "prebuilt" else '"rounded,filled"'
        out.append(
            f"  {ids[node.name]} [label={_dot_label(node.lines)}, style={style}, "
            f'fillcolor="{fill}", color="{border}", '
            f"tooltip={_dot_label([f'{node.name} digest {node.digest}'])}];"
        )
    for parent, child in graph.edges:
        out.append(f"  {ids[parent]} -> {ids[child]};")
    out.append("}")
    return "\n".join(out) + "\n"


# -- Mermaid ------------------------------------------------------------------------------

_MERMAID_PLAIN = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,:/_-+=@()"
)


def _mermaid_text(text: str) -> str:
    """Escape ``text`` for a quoted Mermaid label: anything unusual as ``#NNN;``."""
    return "".join(ch if ch in _MERMAID_PLAIN else f"#{ord(ch)};" for ch in _visible(text))


def to_mermaid(graph: ImageGraph) -> str:
    """Return ``graph`` as a Mermaid ``flowchart`` (what GitHub and mermaid.js draw)."""
    ids = _node_ids(graph)
    out = []
    if graph.title:
        # JSON is YAML: the front matter's title is quoted whatever it holds.
        out += ["---", f"title: {json.dumps(_visible(graph.title))}", "---"]
    out.append("flowchart TD")
    for node in graph.nodes:
        label = "<br>".join(_mermaid_text(line) for line in node.lines)
        out.append(f'  {ids[node.name]}["{label}"]')
    for parent, child in graph.edges:
        out.append(f"  {ids[parent]} --> {ids[child]}")
    for action, (fill, border) in _COLOURS.items():
        out.append(f"  classDef {action} fill:{fill},stroke:{border},color:#000000")
    for node in graph.nodes:
        out.append(f"  class {ids[node.name]} {node.action}")
    return "\n".join(out) + "\n"


def to_json(graph: ImageGraph) -> dict[str, Any]:
    """Return ``graph`` as JSON values: the title, the nodes (every field) and the edges.

    >>> to_json(ImageGraph((), (("a", "b"),), "t"))
    {'title': 't', 'nodes': [], 'edges': [{'parent': 'a', 'child': 'b'}]}
    """
    return {
        "title": graph.title,
        "nodes": [attrs.asdict(node) for node in graph.nodes],
        "edges": [{"parent": p, "child": c} for p, c in graph.edges],
    }


def render_graph(graph: ImageGraph, format: str) -> str:
    """Return ``graph`` in ``format`` (one of :data:`FORMATS`).

    :raises InvalidValueError: for an unknown format.
    """
    if format == "dot":
        return to_dot(graph)
    if format == "mermaid":
        return to_mermaid(graph)
    raise InvalidValueError(
        f"unknown graph format {format!r} (known formats: {', '.join(FORMATS)})"
    )
