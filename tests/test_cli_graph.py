"""``taskgraph-images graph``: a fresh plan or a plan file, as DOT or Mermaid, to stdout or a file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import run_cli
from graphread import dot_svg, parse_mermaid, svg_nodes
from importcheck import modules_added_by
from plan_helpers import GECKO
from test_cli_plan import _clean_env  # noqa: F401 (the autouse fixture)

import taskgraph_images.graph
from taskgraph_images.cli import _graph, main
from taskgraph_images.plan import Plan


def test_graph_makes_a_plan_and_prints_dot(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "graph", "--root", str(GECKO))
    assert code == 0
    assert out.startswith("digraph images {\n")
    nodes = svg_nodes(dot_svg(out))
    assert [lines[0] for _, lines in sorted(nodes.items())] == [
        "base", "builder", "image_builder", "tester",
    ]
    assert nodes["n1"][2].startswith("not indexed")
    assert nodes["n3"][2].startswith("parent builder rebuilt")
    # The plan's notes (defaults, the index used) go to stderr, as for `plan`.
    assert "using the local index" in err


def test_graph_of_a_plan_file_as_mermaid_to_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    plan_file = tmp_path / "plan.json"
    assert run_cli(capsys, "plan", "--root", str(GECKO), "--level", "2", "--output", str(plan_file))[0] == 0
    plan = Plan.from_json(plan_file.read_bytes())
    out_file = tmp_path / "images.mmd"
    code, out, err = run_cli(
        capsys, "graph", "--plan", str(plan_file), "--format", "mermaid", "-o", str(out_file)
    )
    assert (code, out, err) == (0, "", "")
    title, nodes, edges = parse_mermaid(out_file.read_text())
    assert title.startswith("gecko, level 2: 2 to build")
    assert nodes["n1"][-1] == f"task {plan['builder'].task_id}"
    assert edges == [("n0", "n1"), ("n1", "n3")]


def test_dash_is_stdout(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, _ = run_cli(capsys, "graph", "--root", str(GECKO), "--format", "mermaid", "-o", "-")
    assert code == 0
    assert "flowchart TD" in out
    assert not Path("-").exists()


@pytest.mark.parametrize(
    ("extra", "named"),
    [
        (["--level", "3"], "--level"),
        (["--root", "x", "--config", "c.yml"], "--root, --config"),
        (["--on-index-error", "build"], "--on-index-error"),
    ],
)
def test_plan_options_beside_a_plan_file_are_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, extra: list[str], named: str
) -> None:
    code, out, err = run_cli(capsys, "graph", "--plan", str(tmp_path / "plan.json"), *extra)
    assert code == 1
    assert out == ""
    assert err.startswith(f"taskgraph-images: error: graph --plan {tmp_path / 'plan.json'} draws")
    assert f": {named} would be ignored;" in err
    assert len(err.splitlines()) == 1


def test_a_bad_plan_file_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    bad = tmp_path / "plan.json"
    bad.write_text("{}")
    out_file = tmp_path / "g.dot"
    code, out, err = run_cli(capsys, "graph", "--plan", str(bad), "-o", str(out_file))
    assert (code, out) == (1, "")
    marker = "'format': 'taskgraph-images-plan/1'"
    assert err == f"taskgraph-images: error: {bad}: not a plan: no {marker} marker\n"
    assert not out_file.exists()


def test_an_unknown_format_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["graph", "--format", "png"])
    assert e.value.code == 2
    assert "invalid choice: 'png'" in capsys.readouterr().err


def test_registering_graph_keeps_the_parser_light() -> None:
    assert _graph.FORMATS == taskgraph_images.graph.FORMATS
    added = modules_added_by("from taskgraph_images.cli import build_parser; build_parser()")
    assert {"attrs", "taskgraph_images.graph"} & added == set()


def test_json_gives_every_field_of_the_nodes_and_the_edges(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(capsys, "graph", "--root", str(GECKO), "--json")
    assert code == 0
    doc = json.loads(out)
    assert doc["title"].startswith("gecko, level 1: 2 to build")
    assert [n["name"] for n in doc["nodes"]] == ["base", "builder", "image_builder", "tester"]
    assert doc["nodes"][0] == {
        "name": "base", "kind": "prebuilt", "action": "prebuilt",
        "digest": doc["nodes"][0]["digest"], "why": "taskcluster/base:0.1.7", "task_id": None,
    }
    assert doc["edges"] == [
        {"parent": "base", "child": "builder"}, {"parent": "builder", "child": "tester"},
    ]
    with pytest.raises(SystemExit):
        main(["graph", "--json", "--format", "dot"])
