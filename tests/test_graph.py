"""The image graph: nodes and edges of a plan, DOT that Graphviz draws, well-formed Mermaid."""

from __future__ import annotations

import doctest
import re
import xml.etree.ElementTree as ET
from typing import Optional

import pytest
from graphread import SVG, dot_svg, parse_mermaid, svg_edges, svg_nodes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_helpers import GECKO, NOW, PARAMS, seeded_task_ids

import taskgraph_images.graph
from taskgraph_images import ImageCatalog
from taskgraph_images.config import BuildConfig
from taskgraph_images.errors import InvalidValueError
from taskgraph_images.graph import (
    GraphNode,
    ImageGraph,
    image_graph,
    image_graph_of,
    label_lines,
    layout_rows,
    leaf_groups,
    render_graph,
    to_dot,
    to_mermaid,
)
from taskgraph_images.index import MemoryIndex, hash_namespace
from taskgraph_images.plan import Decision, Plan, plan_images

HEX = "0123456789abcdef" * 4


def gecko_plan(indexed: Optional[dict[str, int]] = None, level: int = 1) -> tuple[ImageCatalog, Plan]:
    """The example planned at ``level`` with ``indexed`` images reusable at their level."""
    catalog = ImageCatalog.load(GECKO)
    index = MemoryIndex(clock=lambda: NOW)
    for i, (name, at) in enumerate((indexed or {}).items()):
        task_id = seeded_task_ids(100 + i)()
        index.insert_task(hash_namespace(at, name, catalog.digest(name)), task_id)
        index.set_task_state(task_id, "completed")
        index.add_artifact(task_id)
    plan = plan_images(
        catalog, {**PARAMS, "level": level}, index, task_ids=seeded_task_ids(), now=NOW
    )
    return catalog, plan


def words(text: str) -> str:
    """Text as Graphviz lays it out: runs of spaces are one space, none at the ends."""
    return " ".join(text.replace("\xa0", " ").split())


# -- the graph of a plan ---------------------------------------------------------------------


def test_the_example_graph_has_every_image_parents_first_with_its_decision() -> None:
    catalog, plan = gecko_plan({"builder": 3})
    graph = image_graph(plan, {n: catalog[n].parents for n in catalog.names()})
    assert [n.name for n in graph.nodes] == list(plan.decisions)
    assert graph.edges == (("base", "builder"), ("builder", "tester"))
    by_name = {n.name: n for n in graph.nodes}
    assert by_name["base"] == GraphNode(
        "base", "prebuilt", "prebuilt", catalog.digest("base"), "taskcluster/base:0.1.7"
    )
    assert by_name["builder"].action == "reuse"
    assert by_name["builder"].why == "found at level 3"
    assert by_name["builder"].task_id == plan["builder"].task_id
    assert plan["tester"].reason.startswith("not indexed")
    assert by_name["tester"].lines == (
        "tester",
        f"build {catalog.digest('tester')[:12]}",
        plan["tester"].reason,
        f"task {plan['tester'].task_id}",
    )
    assert graph.title == "mozilla-central, level 1: 1 to build, 1 reused, 2 prebuilt"


def test_without_the_catalog_the_decisions_parents_give_the_edges() -> None:
    catalog, plan = gecko_plan()
    read_back = Plan.from_json(plan.to_json())
    assert image_graph(read_back).edges == (("base", "builder"), ("builder", "tester"))
    assert image_graph(read_back) == image_graph(
        plan, {n: catalog[n].parents for n in catalog.names()}
    )


def test_several_parents_each_get_an_edge_and_unknown_parents_none() -> None:
    decisions = [
        Decision("a", "build", HEX, task_id="A" * 22, reason="not indexed"),
        Decision("b", "build", HEX, task_id="B" * 22, reason="not indexed"),
        Decision("c", "build", HEX, task_id="C" * 22, reason="parent a rebuilt"),
    ]
    graph = image_graph_of(decisions, {"c": ["a", "b", "a", "elsewhere"]})
    assert graph.edges == (("a", "c"), ("b", "c"))


def test_the_module_doctest_holds() -> None:
    assert doctest.testmod(taskgraph_images.graph).failed == 0


# -- DOT -------------------------------------------------------------------------------------


def test_the_example_dot_is_drawn_by_graphviz_with_every_label() -> None:
    _, plan = gecko_plan({"builder": 3})
    graph = image_graph(plan)
    svg = dot_svg(to_dot(graph))
    nodes = svg_nodes(svg)
    assert sorted(nodes) == ["n0", "n1", "n2", "n3"]
    for i, node in enumerate(graph.nodes):
        assert nodes[f"n{i}"] == list(label_lines(node))
    # Graphviz writes an edge's title as tail->head (with the arrow escaped).
    assert svg_edges(svg) == {"n0&#45;&gt;n1", "n1&#45;&gt;n3"} or svg_edges(svg) == {
        "n0->n1",
        "n1->n3",
    }


def test_dot_colours_each_decision_and_squares_prebuilt_images() -> None:
    _, plan = gecko_plan({"builder": 3})
    dot = to_dot(image_graph(plan))
    lines = {line.split()[0]: line for line in dot.splitlines() if "label=" in line}
    assert 'style="filled", fillcolor="#e8e8e8"' in lines["n0"]  # base: prebuilt
    assert 'style="rounded,filled", fillcolor="#d5f0d5"' in lines["n1"]  # builder: reused
    assert 'style="rounded,filled", fillcolor="#ffe0b2"' in lines["n3"]  # tester: built
    assert f'tooltip="builder digest {plan["builder"].digest}"' in lines["n1"]


def test_a_graph_without_a_title_has_no_label() -> None:
    graph = ImageGraph((GraphNode("x", "task", "build", HEX, "not indexed"),), ())
    assert "label=" not in to_dot(graph).splitlines()[1]
    assert not to_mermaid(graph).startswith("---")


# -- Mermaid ---------------------------------------------------------------------------------

def test_the_example_mermaid_is_well_formed_with_every_label() -> None:
    _, plan = gecko_plan({"builder": 3})
    graph = image_graph(plan)
    title, nodes, edges = parse_mermaid(to_mermaid(graph))
    assert title == graph.title
    assert nodes == {f"n{i}": list(n.lines) for i, n in enumerate(graph.nodes)}
    assert edges == [("n0", "n1"), ("n1", "n3")]


def test_render_graph_picks_the_format_and_refuses_others() -> None:
    graph = image_graph(gecko_plan()[1])
    assert render_graph(graph, "dot") == to_dot(graph)
    assert render_graph(graph, "mermaid") == to_mermaid(graph)
    known = r"\(known formats: dot, mermaid\)"
    with pytest.raises(InvalidValueError, match=rf"unknown graph format 'png' {known}"):
        render_graph(graph, "png")


# -- odd names -------------------------------------------------------------------------------

names = st.text(min_size=1, max_size=12).filter(lambda s: s.strip() != "")


def visible(text: str) -> str:
    """What a picture shows for ``text``: unprintable characters spelled as escapes."""
    return taskgraph_images.graph._visible(text)


@st.composite
def catalogs(draw: st.DrawFn) -> list[Decision]:
    """Decisions of a catalog with odd names and reasons, each parent before its child."""
    chosen = draw(st.lists(names, min_size=1, max_size=5, unique=True))
    decisions = []
    for i, name in enumerate(chosen):
        parent = draw(st.sampled_from([None, *chosen[:i]]))
        action = draw(st.sampled_from(["build", "reuse", "prebuilt"]))
        reason = draw(names)
        if action == "prebuilt":
            decisions.append(
                Decision(name, "prebuilt", HEX, docker_image=f"r/{reason}:1", parent=parent)
            )
        else:
            decisions.append(
                Decision(name, action, HEX, task_id=f"{i:022d}", reason=reason, parent=parent, level=3)
            )
    return decisions


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalogs(), names)
def test_any_names_give_dot_that_graphviz_draws_as_they_are(
    decisions: list[Decision], project: str
) -> None:
    graph = image_graph_of(decisions, title=project)
    svg = dot_svg(to_dot(graph))
    drawn = svg_nodes(svg)
    for i, node in enumerate(graph.nodes):
        expected = [words(visible(line)) for line in label_lines(node)]
        assert [words(t) for t in drawn[f"n{i}"]] == [e for e in expected if e]
        assert " ".join(label_lines(node)[2:]).split() == " ".join(node.lines[2:]).split()
    assert len(list(g for g in svg.iter(f"{SVG}g") if g.get("class") == "edge")) == len(graph.edges)


@settings(max_examples=200, deadline=None)
@given(catalogs(), names)
def test_any_names_give_well_formed_mermaid_that_reads_back(
    decisions: list[Decision], project: str
) -> None:
    graph = image_graph_of(decisions, title=project)
    title, nodes, edges = parse_mermaid(to_mermaid(graph))
    assert title == visible(project)
    assert nodes == {
        f"n{i}": [visible(line) for line in n.lines] for i, n in enumerate(graph.nodes)
    }
    ids = {n.name: f"n{i}" for i, n in enumerate(graph.nodes)}
    assert edges == [(ids[p], ids[c]) for p, c in graph.edges]


@st.composite
def catalog_trees(draw: st.DrawFn) -> dict[str, str]:
    """The files of an images folder: valid names, some prebuilt, parents before children."""
    chosen = draw(st.lists(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,8}", fullmatch=True),
                           min_size=1, max_size=5, unique=True))
    files = {"taskcluster/docker/REGISTRY": "example\n"}
    for i, name in enumerate(chosen):
        folder = f"taskcluster/docker/{name}"
        parent = draw(st.sampled_from([None, *chosen[:i]]))
        if parent is None:
            base = "scratch"
        elif f"taskcluster/docker/{parent}/VERSION" in files:
            base = f"example/{parent}:1.0"
        else:
            base = f"{parent}:latest"
        files[f"{folder}/Dockerfile"] = f"FROM {base}\n"
        if draw(st.booleans()):
            files[f"{folder}/VERSION"] = "1.0\n"
    return files


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(catalog_trees())
def test_any_catalog_draws_every_image_and_each_parent_edge(files: dict[str, str]) -> None:
    import tempfile
    from pathlib import Path

    from trees import make_tree

    with tempfile.TemporaryDirectory() as tmp:
        catalog = ImageCatalog.load(make_tree(Path(tmp), files))
        index = MemoryIndex(clock=lambda: NOW)
        config = BuildConfig(image_builder="example/image_builder:1.0")
        plan = plan_images(catalog, PARAMS, index, config, task_ids=seeded_task_ids(), now=NOW)
        parents = {n: catalog[n].parents for n in catalog.names()}
    graph = image_graph(plan, parents)
    assert {n.name for n in graph.nodes} == set(catalog.names())
    assert set(graph.edges) == {(p, c) for c, ps in parents.items() for p in ps}
    order = [n.name for n in graph.nodes]
    assert all(order.index(p) < order.index(c) for p, c in graph.edges)  # parents first
    svg = dot_svg(to_dot(graph))
    assert [lines[0] for _, lines in sorted(svg_nodes(svg).items(), key=lambda kv: int(kv[0][1:]))] == order
    _, nodes, edges = parse_mermaid(to_mermaid(graph))
    assert len(nodes) == len(order) and len(edges) == len(graph.edges)


# -- layout: 20 to 300 images stay readable ---------------------------------------------------

#: The shape of scriptworker-scripts' images: ``base`` under 13 script images, and six
#: images with neither an in-tree parent nor a child.
SCRIPTS = ("addon", "balrog", "beetmover", "bitrise", "bouncer", "github", "lando", "pushapk",
           "pushflatpak", "pushmsix", "shipit", "signing", "tree")
ALONE = ("signing-test", "python314", "pushapk-test", "pushflatpak-test", "python311", "skopeo")


def _node(name: str, why: str = "parent base rebuilt; first build of this image") -> GraphNode:
    return GraphNode(name, "task", "build", HEX, why, task_id="bZ-ajB-JQtuGAs7sODvl4w")


def scripts_graph() -> ImageGraph:
    nodes = (_node("base", "not indexed; first build of this image"),
             *(_node(f"{n}script") for n in SCRIPTS), *(_node(n, "not indexed") for n in ALONE))
    return ImageGraph(nodes, tuple(("base", f"{n}script") for n in SCRIPTS), "scripts")


def svg_size(svg: ET.Element) -> tuple[float, float]:
    """The drawing's width and height in points."""
    return float(svg.get("width", "0pt")[:-2]), float(svg.get("height", "0pt")[:-2])


def test_a_parent_of_many_images_has_them_in_rows_and_lone_images_come_last() -> None:
    rows = layout_rows(scripts_graph())
    scripts = [f"{n}script" for n in SCRIPTS]
    assert rows == [["base"], scripts[:4], scripts[4:8], scripts[8:12], scripts[12:],
                    list(ALONE[:4]), list(ALONE[4:])]


def test_families_have_rows_of_their_own_and_small_ones_share_theirs() -> None:
    nodes = tuple(_node(n) for n in ("p", *"abcdefg", "x", "y", "z", "w", "alone"))
    edges = (*(("p", c) for c in "abcdefg"), ("x", "y"), ("z", "w"))
    rows = layout_rows(ImageGraph(nodes, edges), 3)
    assert rows == [["p"], ["a", "b", "c"], ["d", "e", "f"], ["g"], ["x", "z"], ["y", "w"],
                    ["alone"]]
    with pytest.raises(InvalidValueError, match="invalid row width 0"):
        layout_rows(ImageGraph(nodes, edges), 0)


def test_twenty_images_are_drawn_page_wide_not_in_one_row() -> None:
    """Before, dot drew these 20 images in one row 4,251 px wide (3,188 pt); now they fit
    a 1,265-pixel browser window (949 pt)."""
    graph = scripts_graph()
    svg = dot_svg(to_dot(graph))
    width, height = svg_size(svg)
    assert width <= 949 and height <= 900, (width, height)
    drawn = svg_nodes(svg)
    assert {lines[0] for node_id, lines in drawn.items() if node_id.startswith("n")} == {
        n.name for n in graph.nodes}
    # The lone images come under a heading that says why they stand alone.
    assert drawn["independent"] == ["no in-tree parent or child:"]


def test_a_parent_reaches_children_rows_below_through_one_bus_line() -> None:
    # Four children with a child each (no group of leaves), two images to a row:
    # rows [p], [a, b], [c, d], [a1, b1], [c1, d1].
    names = ("p", "a", "b", "c", "d", "a1", "b1", "c1", "d1")
    edges = (*(("p", c) for c in "abcd"), *((c, f"{c}1") for c in "abcd"))
    graph = ImageGraph(tuple(_node(n) for n in names), edges)
    assert layout_rows(graph, 2) == [["p"], ["a", "b"], ["c", "d"], ["a1", "b1"], ["c1", "d1"]]
    dot = to_dot(graph, row_width=2)
    ids = {n: f"n{i}" for i, n in enumerate(names)}
    # Row 1 from p itself, row 2 from its point in row 1; c1 from c's point in row 3.
    assert f"  {ids['p']} -> {ids['a']};" in dot
    assert f'  {ids["p"]} -> b0_1 [arrowhead="none"];' in dot
    assert f"  b0_1 -> {ids['c']};" in dot and f"  b0_1 -> {ids['d']};" in dot
    assert f"  {ids['p']} -> {ids['d']};" not in dot
    assert f'  {ids["c"]} -> b3_3 [arrowhead="none"];' in dot
    assert f"  b3_3 -> {ids['c1']};" in dot


def test_a_parent_of_many_leaves_reaches_them_in_one_box_through_one_line() -> None:
    """base's 13 script images, none with children: one box headed "13 images FROM base",
    in rows of four in the plan's order, and one line into it, not 13."""
    graph = scripts_graph()
    assert leaf_groups(graph) == {"base": tuple(f"{n}script" for n in SCRIPTS)}
    dot = to_dot(graph)
    assert dot.count("subgraph cluster_") == 1 and "subgraph cluster_g0 {" in dot
    drawn = [line for line in dot.splitlines() if line.startswith("  n0 -> ") and "invis" not in line]
    assert drawn == ['  n0 -> n1 [lhead="cluster_g0"];']
    svg = dot_svg(dot)
    box = next(g for g in svg.iter(f"{SVG}g") if g.get("class") == "cluster")
    assert [words(t.text or "") for t in box.iter(f"{SVG}text")] == ["13 images FROM base"]
    assert svg_edges(svg) == {"n0->n1"}
    # Each row left to right in the plan's order (dot would otherwise shuffle them).
    xs = {}
    for g in svg.iter(f"{SVG}g"):
        title, text = g.find(f"{SVG}title"), next(g.iter(f"{SVG}text"), None)
        if g.get("class") == "node" and title is not None and text is not None:
            xs[title.text] = float(text.get("x", "nan"))
    ids = {n.name: f"n{i}" for i, n in enumerate(graph.nodes)}
    for row in layout_rows(graph)[1:5]:
        assert [xs[ids[n]] for n in row] == sorted(xs[ids[n]] for n in row), row


def test_a_group_of_leaves_comes_after_its_parents_other_descendants() -> None:
    # p: six leaves and one child with a chain of two; q: a pair beside nothing else.
    names = ("p", *"abcdef", "g", "g1", "g2", "q", "q1")
    edges = (*(("p", c) for c in "abcdefg"), ("g", "g1"), ("g1", "g2"), ("q", "q1"))
    graph = ImageGraph(tuple(_node(n) for n in names), edges)
    assert leaf_groups(graph) == {"p": tuple("abcdef")}
    assert layout_rows(graph) == [["p"], ["g"], ["g1"], ["g2"], list("abcd"), ["e", "f"],
                                  ["q"], ["q1"]]
    # Four leaves fit one row: no group, an edge each.
    few = ImageGraph(tuple(_node(n) for n in "pabcd"), tuple(("p", c) for c in "abcd"))
    assert leaf_groups(few) == {} and "cluster" not in to_dot(few)


def test_small_families_go_side_by_side_each_image_under_its_parent() -> None:
    names = tuple(n for i in range(6) for n in (f"r{i}", f"c{i}"))
    graph = ImageGraph(tuple(_node(n) for n in names), tuple((f"r{i}", f"c{i}") for i in range(6)))
    assert layout_rows(graph) == [["r0", "r1", "r2", "r3"], ["c0", "c1", "c2", "c3"],
                                  ["r4", "r5"], ["c4", "c5"]]


def three_hundred_images() -> ImageGraph:
    """300 images in families of every size: a few hubs with many children, chains, pairs,
    and lone images (a fixed pseudo-random tree)."""
    import random

    rng = random.Random(7)
    names: list[str] = []
    edges: list[tuple[str, str]] = []
    for i in range(300):
        name = f"img{i:03d}"
        roll = rng.random()
        if names and roll >= 0.15:
            pool = names[: max(1, len(names) // 4)] if roll < 0.7 else names
            edges.append((rng.choice(pool), name))
        names.append(name)
    return ImageGraph(tuple(_node(n) for n in names), tuple(edges), "300 images")


def test_three_hundred_images_are_drawn_at_most_a_few_pages_wide() -> None:
    graph = three_hundred_images()
    rows = layout_rows(graph)
    row_of = {name: i for i, row in enumerate(rows) for name in row}
    assert sorted(row_of) == sorted(n.name for n in graph.nodes)
    assert all(len(row) <= 4 for row in rows)
    assert all(row_of[parent] < row_of[child] for parent, child in graph.edges)
    svg = dot_svg(to_dot(graph))
    width, _ = svg_size(svg)
    assert width <= 2000, width  # without the buses, 4,600 pt; without rows, 32,000 pt
    heads = [title.split("->")[-1] for title in svg_edges(svg)]
    real = [h for h in heads if re.fullmatch(r"n\d+", h)]
    # Every parent-child edge drawn once, but those into a group: one line per group.
    groups = leaf_groups(graph)
    grouped = sum(len(kids) for kids in groups.values())
    assert groups and len(real) == len(graph.edges) - grouped + len(groups)


def test_a_small_graph_keeps_its_lone_images_beside_the_others() -> None:
    catalog, plan = gecko_plan({"builder": 3})
    graph = image_graph(plan, {n: catalog[n].parents for n in catalog.names()})
    assert layout_rows(graph) == [["base", "image_builder"], ["builder"], ["tester"]]
    assert "independent" not in to_dot(graph)  # no heading for one lone image
