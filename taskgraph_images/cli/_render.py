"""``render``: a task template's image tags replaced with a plan file's values."""

from __future__ import annotations

import argparse
import json

from taskgraph_images.cli._common import (
    add_command,
    add_json_argument,
    add_output_argument,
    add_plan_file_argument,
    write_output,
)

__all__ = ["register", "run_render"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``render`` sub-command."""
    p = add_command(
        sub, "render", run_render,
        help="render a task template's image tags from a plan",
        description="Replace {{#task_id_for_image}}NAME{{/task_id_for_image}} and "
        "{{#docker_image}}NAME{{/docker_image}} (or {#docker_image}NAME{/docker_image}) in "
        "TEMPLATE with the values of the plan file; nothing else changes.",
    )
    p.add_argument("template", metavar="TEMPLATE", help="the template file")
    add_plan_file_argument(p, "a plan file (plan --output)", required=True)
    add_json_argument(p, "parse the result as YAML; print JSON")
    add_output_argument(p, help="write to FILE (atomically), not stdout")


def run_render(args: argparse.Namespace) -> int:
    """Render TEMPLATE with the plan file's values."""
    import pathlib

    from taskgraph_images.cli._plan import read_plan
    from taskgraph_images.errors import TemplateError
    from taskgraph_images.templates import render_template, render_yaml

    plan = read_plan(args.plan)
    if args.json:
        doc = render_yaml(pathlib.Path(args.template), plan)
        text = json.dumps(doc, indent=2, sort_keys=False, default=str) + "\n"
    else:
        try:
            with open(args.template, encoding="utf-8") as f:
                template = f.read()
        except OSError as e:
            raise TemplateError(f"cannot read template {args.template}: {e.strerror}") from e
        except UnicodeDecodeError as e:
            raise TemplateError(f"template {args.template} is not UTF-8 text") from e
        text = render_template(template, plan, source=args.template)
    write_output(args.output, text)
    return 0
