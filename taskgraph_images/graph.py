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
    "label_lines",
    "layout_rows",
    "leaf_groups",
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


#: Images side by side in a row of a drawing, at most: more go on to the next rows,
#: so that a graph of 20 or 300 images stays as wide as a page (about 1,300 px).
ROW_WIDTH = 4

#: The heading of the images with neither an in-tree parent nor a child, under the others.
INDEPENDENT = "no in-tree parent or child:"

#: A label's ``why`` line longer than this goes on over several lines (at spaces).
LABEL_WIDTH = 32


def label_lines(node: GraphNode) -> tuple[str, ...]:
    """The lines a drawing shows for ``node``: :attr:`GraphNode.lines`, ``why`` wrapped.

    Only a reason longer than :data:`LABEL_WIDTH` columns is wrapped (names,
    digests, tags and task ids have no spaces), so that boxes stay narrow: each
    of its clauses (split at semicolons) begins a line, and a clause too long
    for one goes on at spaces.

    >>> label_lines(GraphNode("t", "task", "build", "ab" * 32,
    ...                       "not indexed; first build of this image"))
    ('t', 'build abababababab', 'not indexed;', 'first build of this image')
    """
    lines = list(node.lines)
    why = lines[2]
    if len(why) <= LABEL_WIDTH:
        return tuple(lines)
    # Each clause of the reason on lines of its own ("not indexed;" then the rest).
    clauses = why.split("; ")
    wrapped = [line for i, clause in enumerate(clauses)
               for line in _wrap(clause + (";" if i < len(clauses) - 1 else ""), LABEL_WIDTH)]
    return (*lines[:2], *wrapped, *lines[3:])


def _wrap(text: str, width: int) -> list[str]:
    """``text`` in lines of at most ``width`` columns, broken at spaces only (a longer word
    keeps its own line), as few lines as that takes and as even as they can be (no lone
    last word); no other character is touched."""
    fewest = _greedy(text, width)
    for even in range(-(-len(text) // len(fewest)), width):
        lines = _greedy(text, even)
        if len(lines) == len(fewest):
            return lines
    return fewest


def _greedy(text: str, width: int) -> list[str]:
    out: list[str] = []
    for word in text.split(" "):
        if out and len(out[-1]) + 1 + len(word) <= width:
            out[-1] += " " + word
        else:
            out.append(word)
    return out


def layout_rows(graph: ImageGraph, width: int = ROW_WIDTH) -> list[list[str]]:
    """The rows of a drawing of ``graph``, top to bottom, at most ``width`` images each.

    Every image sits below its parents. Each family (the images linked by
    parent edges, in the order of their first image) of more than ``width``
    images gets rows of its own, one family under the other, so that no edge
    crosses another family's rows; the smaller families follow, side by side
    (each image under its parent, as many families to a band of rows as
    fit). In a family, images are placed parents first, each in the first
    row below its parents that has room, those under the same parent side by
    side: a parent with 13 children gets rows of 5, 5 and 3 under it rather
    than one row of 13. The images with neither an in-tree parent nor a child
    (*independent* images) come last, in rows of their own; in a graph of at
    most two rows' worth of images, they take the free places of the rows
    first (``image_builder`` beside ``base``).

    A parent's :func:`leaf_groups` (its many children without children of
    their own) come after the rest of its family, each group in rows of its
    own, so that the parent's other children, and their children, sit right
    under it rather than under a long run of leaves.

    >>> nodes = tuple(GraphNode(n, "task", "build", "0" * 64, "") for n in "pabcdefgxyzw")
    >>> edges = (*(("p", c) for c in "abcdef"), ("x", "y"), ("z", "w"))
    >>> layout_rows(ImageGraph(nodes, edges), 4)
    [['p'], ['a', 'b', 'c', 'd'], ['e', 'f'], ['x', 'z'], ['y', 'w'], ['g']]
    >>> layout_rows(ImageGraph(nodes, (*edges, ("a", "g"))), 4)
    [['p'], ['a'], ['g'], ['b', 'c', 'd', 'e'], ['f'], ['x', 'z'], ['y', 'w']]
    """
    if width < 1:
        raise InvalidValueError(f"invalid row width {width}: expected at least 1")
    order = {node.name: i for i, node in enumerate(graph.nodes)}
    parents: dict[str, list[str]] = {name: [] for name in order}
    children: dict[str, list[str]] = {name: [] for name in order}
    for parent, child in graph.edges:
        parents[child].append(parent)
        children[parent].append(child)
    groups = leaf_groups(graph, width)
    grouped = {child for kids in groups.values() for child in kids}
    rows: list[list[str]] = []
    band: list[list[list[str]]] = []  # families of a few images, side by side in rows
    for family in _families(order, parents, children):
        if len(family) <= width:
            own = _family_rows(family, order, parents, children, width)
            if sum(max(map(len, f)) for f in band) + max(map(len, own)) > width:
                rows += _side_by_side(band)
                band = []
            band.append(own)
            continue
        placed = _family_rows([n for n in family if n not in grouped], order, parents,
                              children, width)
        rows += placed
        # Each group after the rest of its family, the last placed parent's first: the
        # line from a parent higher up then passes its descendants' groups, not the
        # other way round.
        for parent in reversed([n for row in placed for n in row if n in groups]):
            kids = groups[parent]
            rows += [list(kids[i:i + width]) for i in range(0, len(kids), width)]
    rows += _side_by_side(band)
    independent = [n for n in order if not parents[n] and not children[n]]
    if len(order) <= 2 * width:  # a small graph: they fill the rows' free places
        for row in rows:
            while independent and len(row) < width and not set(row) & grouped:
                row.append(independent.pop(0))
    rows += [independent[i:i + width] for i in range(0, len(independent), width)]
    return rows


def leaf_groups(graph: ImageGraph, width: int = ROW_WIDTH) -> dict[str, tuple[str, ...]]:
    """The parents of more than ``width`` *leaves*, each with those leaves, in graph order.

    A leaf is a child with no child of its own and no other parent. A drawing
    puts a parent's leaves in a box of their own (*a group*) reached by one
    line from the parent, instead of one line per child: a base image of 150
    children is then one line into one box, not a fan of 150 lines.

    >>> nodes = tuple(GraphNode(n, "task", "build", "0" * 64, "") for n in "pabcdeq")
    >>> leaf_groups(ImageGraph(nodes, (*(("p", c) for c in "abcde"), ("e", "q"))), 3)
    {'p': ('a', 'b', 'c', 'd')}
    """
    parents: dict[str, list[str]] = {node.name: [] for node in graph.nodes}
    children: dict[str, list[str]] = {node.name: [] for node in graph.nodes}
    for parent, child in graph.edges:
        parents[child].append(parent)
        children[parent].append(child)
    groups = {}
    for name, kids in children.items():
        leaves = tuple(k for k in dict.fromkeys(kids)
                       if not children[k] and len(set(parents[k])) == 1)
        if len(leaves) > width:
            groups[name] = leaves
    return groups


def _side_by_side(families: list[list[list[str]]]) -> list[list[str]]:
    """The rows of ``families`` laid out next to each other: row ``i`` of each, in turn."""
    height = max((len(f) for f in families), default=0)
    return [[n for f in families if i < len(f) for n in f[i]] for i in range(height)]


def _families(order: Mapping[str, int], parents: Mapping[str, list[str]],
              children: Mapping[str, list[str]]) -> list[list[str]]:
    """The sets of images linked by edges (two or more images each), in graph order."""
    seen: set[str] = set()
    families = []
    for start in order:
        if start in seen or not (parents[start] or children[start]):
            continue
        family, todo = [], [start]
        seen.add(start)
        while todo:
            name = todo.pop()
            family.append(name)
            for other in (*parents[name], *children[name]):
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        families.append(sorted(family, key=order.__getitem__))
    return families


def _family_rows(family: list[str], order: Mapping[str, int],
                 parents: Mapping[str, list[str]], children: Mapping[str, list[str]],
                 width: int) -> list[list[str]]:
    import heapq

    rows: list[list[str]] = []
    row_of: dict[str, int] = {}
    waiting = {n: len(set(parents[n])) for n in family}
    # (lowest row, the first parent's column, the image's place in the graph, name)
    ready = [(0, 0, order[n], n) for n in family if not waiting[n]]
    heapq.heapify(ready)
    while ready:
        lowest, _, _, name = heapq.heappop(ready)
        row = lowest
        while row < len(rows) and len(rows[row]) >= width:
            row += 1
        if row == len(rows):
            rows.append([])
        rows[row].append(name)
        row_of[name] = row
        for child in dict.fromkeys(children[name]):
            if child not in waiting:  # in a group, placed after the family
                continue
            waiting[child] -= 1
            if not waiting[child]:
                first = parents[child][0]
                below = max(row_of[p] for p in parents[child]) + 1
                heapq.heappush(ready, (below, rows[row_of[first]].index(first), order[child],
                                       child))
    if len(row_of) < len(family):  # a cycle: no image of a plan has one
        raise InvalidValueError("the image graph has a cycle: "
                                + ", ".join(n for n in family if n not in row_of))
    return rows


def to_dot(graph: ImageGraph, *, row_width: int = ROW_WIDTH) -> str:
    """Return ``graph`` as a Graphviz ``digraph`` (``dot -Tsvg`` draws it).

    Laid out in the rows of :func:`layout_rows` (at most ``row_width`` images
    side by side, each row under the one before, in columns), the independent
    images under a heading of their own (:data:`INDEPENDENT`) when there are
    others. A parent
    whose children are spread over several rows reaches them through one
    line down its rows (a *bus*: a small point per row, ``b<parent>_<row>``),
    not one line per child, so that a parent of many images adds one line to
    the width of the rows in between, not many. A parent's
    :func:`leaf_groups` are drawn in a box of their own (a cluster,
    ``cluster_g<parent>``, headed "N images FROM parent"), reached by one line
    from the parent.
    """
    ids = _node_ids(graph)
    by_name = {node.name: node for node in graph.nodes}
    rows = layout_rows(graph, row_width)
    row_of = {name: i for i, row in enumerate(rows) for name in row}
    linked = {name for edge in graph.edges for name in edge}
    groups = leaf_groups(graph, row_width)
    group_of = {child: parent for parent, kids in groups.items() for child in kids}
    edges, buses = _bus_edges(graph, ids, row_of, groups)
    out = ["digraph images {"]
    if graph.title:
        out.append(f"  label={_dot_label([graph.title])};")
        out.append('  labelloc="t";')
    out.append('  graph [rankdir="TB", fontname="Helvetica", fontsize=12, newrank=true, '
               'compound=true];')
    out.append('  node [shape="box", style="rounded,filled", fontname="Helvetica", fontsize=10];')
    out.append('  edge [color="#505050"];')
    # Under the families, a heading for the rows of images with neither parent nor child.
    headed = bool(rows) and any(set(row) & linked for row in rows) \
        and not set(rows[-1]) & linked
    for i, row in enumerate(rows):
        if headed and not set(row) & linked and set(rows[i - 1]) & linked:
            out.append(f'  independent [shape="plaintext", style="", fontsize=11, '
                       f'label="{INDEPENDENT}"];')
            edges += [(ids[rows[i - 1][0]], "independent", ' [style="invis", weight=0]'),
                      ("independent", ids[row[0]], ' [style="invis", weight=0]')]
        group = group_of.get(row[0])
        if group is not None and row[0] == groups[group][0]:  # a group's first row opens its box
            out.append(f"  subgraph cluster_g{ids[group][1:]} {{")
            out.append(f'    label={_dot_label([f"{len(groups[group])} images FROM {group}"])}; '
                       'labeljust="l"; style="rounded,dashed"; color="#909090"; fontsize=11;')
        indent = "    " if group is not None else "  "
        out += [_dot_node(ids[name], by_name[name], indent) for name in row]
        if group is not None and row[-1] == groups[group][-1]:
            out.append("  }")
        out += [f'  {point} [shape="point", width=0.02, height=0.02, color="#505050", '
                f'label=""];' for point in buses.get(i, [])]
        together = [ids[name] for name in row] + buses.get(i, [])
        out.append(f"  {{rank=same; {'; '.join(together)};}}")
        if group is not None:  # no edges of their own: in the plan's order, left to right
            out += [f'  {ids[left]} -> {ids[right]} [style="invis"];'
                    for left, right in zip(row, row[1:])]
    out += [f"  {tail} -> {head}{attributes};" for tail, head, attributes in edges]
    # Each row below the one before, in columns: invisible edges from each image to
    # the one under it. The first row of independent images lines up with the widest
    # row of the families (the last of them), not with a short last one.
    # Into a group's rows, one such edge (from the first image): its invisible edges
    # keep each row in order, which more column edges would fight (dot then shuffles).
    for i, (above, below) in enumerate(zip(rows, rows[1:])):
        if headed and set(above) & linked and not set(below) & linked:
            above = max(reversed(rows[: i + 1]), key=len)
        if below[0] in group_of:
            above, below = above[:1], below[:1]
        for top, bottom in zip(above, below):
            out.append(f'  {ids[top]} -> {ids[bottom]} [style="invis", weight=2];')
    out.append("}")
    return "\n".join(out) + "\n"


def _bus_edges(
    graph: ImageGraph, ids: Mapping[str, str], row_of: Mapping[str, int],
    groups: Mapping[str, Sequence[str]],
) -> tuple[list[tuple[str, str, str]], dict[int, list[str]]]:
    """The drawn edges ``(tail, head, attributes)`` and the bus points of each row.

    A child in the row right under its parent gets an edge from the parent; one
    further down, an edge from the parent's bus point in the row above it. A
    group gets one edge, to its first image, ending at the group's box.
    """
    grouped = {child for kids in groups.values() for child in kids}
    children: dict[str, list[str]] = {}
    for parent, child in graph.edges:
        if child not in grouped:
            children.setdefault(parent, []).append(child)
    for parent, kids in groups.items():
        children.setdefault(parent, []).append(kids[0])
    edges: list[tuple[str, str, str]] = []
    buses: dict[int, list[str]] = {}
    for parent, kids in children.items():
        top = row_of[parent]
        points: dict[int, str] = {}
        previous = ids[parent]
        for row in range(top + 1, max(row_of[c] for c in kids)):
            points[row] = f"b{ids[parent][1:]}_{row}"
            buses.setdefault(row, []).append(points[row])
            edges.append((previous, points[row], ' [arrowhead="none"]'))
            previous = points[row]
        for child in kids:
            below = row_of[child] - 1
            into = f' [lhead="cluster_g{ids[parent][1:]}"]' if child in grouped else ""
            edges.append((ids[parent] if below == top else points[below], ids[child], into))
    return edges, buses


def _dot_node(node_id: str, node: GraphNode, indent: str) -> str:
    fill, border = _COLOURS[node.action]
    style = '"filled"' if node.kind == "prebuilt" else '"rounded,filled"'
    return (
        f"{indent}{node_id} [label={_dot_label(label_lines(node))}, style={style}, "
        f'fillcolor="{fill}", color="{border}", '
        f"tooltip={_dot_label([f'{node.name} digest {node.digest}'])}];"
    )


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
