"""Read back the graphs ``taskgraph-images graph`` writes: DOT drawn by Graphviz, and
Mermaid checked line by line against the flowchart subset we write."""

from __future__ import annotations

import re
import shutil
import subprocess
import xml.etree.ElementTree as ET

from dockerd import require_or_skip

__all__ = ["SVG", "dot_svg", "parse_mermaid", "svg_edges", "svg_nodes"]

SVG = "{http://www.w3.org/2000/svg}"


def dot_svg(dot: str) -> ET.Element:
    """Draw ``dot`` with Graphviz (it must accept it) and return the SVG."""
    if shutil.which("dot") is None:
        require_or_skip("Graphviz's dot is missing (apt-get install graphviz)")
    done = subprocess.run(
        ["dot", "-Tsvg"], input=dot.encode("utf-8"), capture_output=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr.decode()
    assert done.stderr == b"", done.stderr.decode()  # not even a warning
    return ET.fromstring(done.stdout)


def svg_nodes(svg: ET.Element) -> dict[str, list[str]]:
    """Node id -> the lines of text Graphviz drew in it."""
    out = {}
    for g in svg.iter(f"{SVG}g"):
        if g.get("class") == "node":
            title = g.find(f"{SVG}title")
            assert title is not None and title.text is not None
            out[title.text] = [t.text or "" for t in g.iter(f"{SVG}text")]
    return out


def svg_edges(svg: ET.Element) -> set[str]:
    return {
        g.find(f"{SVG}title").text or ""  # type: ignore[union-attr]
        for g in svg.iter(f"{SVG}g")
        if g.get("class") == "edge"
    }


_MERMAID_LINE = re.compile(
    r"""(?x)
    (?P<node>\ \ (?P<id>n\d+)\["(?P<label>(?:[A-Za-z0-9 .,:/_\-+=@()]|\#\d+;|<br>)*)"\])
    | (?P<edge>\ \ (?P<tail>n\d+)\ -->\ (?P<head>n\d+))
    | (?P<classdef>\ \ classDef\ (?:prebuilt|reuse|build)
        \ fill:\#[0-9a-f]{6},stroke:\#[0-9a-f]{6},color:\#000000)
    | (?P<cls>\ \ class\ (?P<cid>n\d+)\ (?:prebuilt|reuse|build))
    """
)


def parse_mermaid(text: str) -> tuple[str, dict[str, list[str]], list[tuple[str, str]]]:
    """Check ``text`` line by line against the flowchart subset we write; return
    the title, node id -> label lines (entities decoded) and the edges."""
    lines = text.splitlines()
    title = ""
    if lines[0] == "---":
        import json

        assert lines[2] == "---"
        key, _, value = lines[1].partition(": ")
        assert key == "title"
        title = json.loads(value)
        lines = lines[3:]
    assert lines[0] == "flowchart TD"
    nodes: dict[str, list[str]] = {}
    edges = []
    classed = set()
    for line in lines[1:]:
        m = _MERMAID_LINE.fullmatch(line)
        assert m is not None, f"not well-formed: {line!r}"
        if m["node"]:
            assert m["id"] not in nodes
            label = re.sub(r"#(\d+);", lambda e: chr(int(e[1])), m["label"])
            nodes[m["id"]] = label.split("<br>")
        elif m["edge"]:
            assert m["tail"] in nodes and m["head"] in nodes
            edges.append((m["tail"], m["head"]))
        elif m["cls"]:
            assert m["cid"] in nodes
            classed.add(m["cid"])
    assert classed == set(nodes)
    return title, nodes, edges
