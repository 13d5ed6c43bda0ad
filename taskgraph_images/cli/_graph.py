"""``graph``: the image graph with each image's decision, as Graphviz DOT or Mermaid."""

from __future__ import annotations

import argparse
import json
from typing import Any

from taskgraph_images.cli._common import add_command, add_json_argument, add_plan_file_argument, write_output
from taskgraph_images.errors import InvalidValueError

__all__ = ["FORMATS", "register", "run_graph"]

#: ``taskgraph_images.graph.FORMATS``, spelled here so that building the parser
#: does not import the graph module (and attrs) for every command.
FORMATS = ("dot", "mermaid")


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``graph`` sub-command."""
    from taskgraph_images.cli._plan import add_plan_arguments

    p = add_command(
        sub, "graph", run_graph,
        help="draw the image graph with each image's decision (Graphviz DOT or Mermaid)",
        description="Make a plan (as `plan` does, with the same options) or read one with "
        "--plan FILE, and write the image graph: parents to children, prebuilt and task "
        "images, and what the plan does with each (reuse, build, prebuilt) and why. "
        "Draw it with `dot -Tsvg`, or paste the Mermaid into a Markdown file.",
    )
    before = list(p._actions)
    add_plan_arguments(p)
    plan_options = {
        a.dest: (a.default, a.option_strings[0]) for a in p._actions if a not in before
    }
    add_plan_file_argument(p, "draw this plan file (plan --output) instead of making a plan")
    out = p.add_mutually_exclusive_group()
    out.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="dot (Graphviz, the default) or mermaid",
    )
    add_json_argument(out, "the nodes (every field) and edges as JSON, not a picture")
    p.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        default="-",
        help="write the graph to FILE (atomically); '-' (the default) is stdout",
    )
    p.set_defaults(plan_options=plan_options)


def run_graph(args: argparse.Namespace) -> int:
    """Write the graph of a fresh plan or of ``--plan FILE``."""
    from taskgraph_images.graph import image_graph, render_graph, to_json

    parents: Any = None
    if args.plan is not None:
        given = [
            option
            for dest, (default, option) in args.plan_options.items()
            if getattr(args, dest) != default
        ]
        if given:
            raise InvalidValueError(
                f"graph --plan {args.plan} draws the plan as it was made: "
                f"{', '.join(given)} would be ignored; leave {'them' if len(given) > 1 else 'it'} "
                "out, or drop --plan to make a new plan"
            )
        from taskgraph_images.cli._plan import read_plan

        plan = read_plan(args.plan)
    else:
        from taskgraph_images.cli._plan import make_plan

        catalog, _, plan, _ = make_plan(args)
        parents = {name: catalog[name].parents for name in catalog.names()}
    graph = image_graph(plan, parents)
    if args.json:
        text = json.dumps(to_json(graph), indent=2, sort_keys=True) + "\n"
    else:
        text = render_graph(graph, args.format or "dot")
    write_output(args.output, text)
    return 0
