"""``plan``: reuse or build every image, print the plan, optionally submit the builds.

The decision parameters come from :mod:`._params`; submitting the build
tasks is :mod:`._submit`'s, rendering a template from a plan file
:mod:`._render`'s.
"""

from __future__ import annotations

import argparse
import datetime
from typing import TYPE_CHECKING, Any, Optional

from taskgraph_images.cli._common import (
    add_catalog_arguments,
    add_command,
    add_config_argument,
    add_json_argument,
    add_output_argument,
    catalog_root,
    is_stdout,
    load_catalog_and_config,
    note,
    note_config,
    refuse_options,
    short_digest,
    warning,
    write_output,
)
from taskgraph_images.cli._params import add_param_arguments, params_from_args
from taskgraph_images.cli._submit import add_queue_arguments, open_queue, submit
from taskgraph_images.errors import PlanError

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.plan import Plan

__all__ = [
    "add_plan_arguments",
    "make_plan",
    "read_plan",
    "register",
    "run_plan",
]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``plan`` sub-command."""
    p = add_command(
        sub, "plan", run_plan,
        help="decide which images to reuse or build, and make their build tasks",
        description="Look every task image up in the index and print, per image, whether it "
        "is reused (and from where) or built (and why). --json/--output give the plan with "
        "every build-task definition; --submit creates the build tasks.",
    )
    add_plan_arguments(p)
    out = p.add_mutually_exclusive_group()
    add_json_argument(out, "print the plan as JSON (with every task definition), not a table")
    add_output_argument(out, help="also write the plan JSON to FILE (the table still prints)")
    p.add_argument(
        "--wide", action="store_true", default=None,
        help="print the table with full digests, namespaces and reasons (wider than 80 columns)",
    )
    p.add_argument(
        "--submit",
        action="store_true",
        help="create the build tasks with the Queue (each after its dependencies)",
    )
    add_queue_arguments(p)


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """Add what a plan is made from: the catalog, index, parameter and config arguments."""
    from taskgraph_images.cli._index import add_index_arguments

    add_catalog_arguments(p)
    add_index_arguments(p)
    add_param_arguments(p)
    add_config_argument(p, "its cache-keys and run-task decide the digests, the rest "
                        "the build tasks")


# -- plan ------------------------------------------------------------------------------------


#: The width the table fits unless --wide: a terminal's, a task log's.
TABLE_WIDTH = 80


def _table(plan: Plan, *, wide: bool = False) -> str:
    """The plan as a table of 80 columns at most, or wider with ``wide``.

    One row per image: its name, digest (the first 8 hex digits; all with
    ``wide``), the task that holds or builds it (``-`` for a prebuilt image)
    and the decision with its reason (for a prebuilt image its version, with
    ``wide`` its registry tag; for a reused build the level it was found at,
    with ``wide`` its namespace; for a build its explanation, with ``wide``
    after the lookup's ``not indexed``). The reason of a decision too long
    for its row goes on below it, on indented lines of its own.
    """
    from taskgraph_images.index import NOT_INDEXED

    not_indexed = NOT_INDEXED + "; "
    header = ("IMAGE", "DIGEST", "TASK ID", "DECISION")
    rows: list[tuple[str, ...]] = []
    for d in plan.decisions.values():
        digest = d.digest if wide else short_digest(d.digest)
        if d.action == "prebuilt":
            tag = d.docker_image or ""
            # The registry tag in full with ``wide``; else its version (the
            # name is the row's, the registry is ``list``'s).
            shown = tag if wide or ":" not in tag else "version " + tag.rsplit(":", 1)[1]
            rows.append((d.name, digest, "-", f"prebuilt: {shown}" if shown else "prebuilt"))
            continue
        if d.action == "reuse":
            where = f"{d.namespace} (level {d.level})" if wide else f"level {d.level}"
            decision = f"reuse: {where}"
        else:
            reason = d.reason
            if not wide and reason.startswith(not_indexed):
                # Being built already says it was not found; the explanation is news.
                reason = reason[len(not_indexed):]
            decision = f"build: {reason}"
        rows.append((d.name, digest, d.task_id or "-", decision))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(3)]
    lines = []
    for row in [header, *rows]:
        start = "  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  "
        if wide or len(start) + len(row[-1]) <= TABLE_WIDTH:
            lines.append(start + row[-1])
        else:
            import textwrap

            action, _, why = row[-1].partition(": ")
            lines.append(_cut(f"{start}{action}:", TABLE_WIDTH))
            lines.extend(
                textwrap.wrap(why, TABLE_WIDTH, initial_indent=_GOES_ON, subsequent_indent=_GOES_ON,
                              break_on_hyphens=False)
            )
    return "\n".join(lines) + "\n"


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 3] + "..."


#: How a decision too long for its row goes on, on lines of its own.
_GOES_ON = "    "


def _built_for_index_errors(plan: Plan) -> tuple[list[str], Optional[str]]:
    """The images built only because the index could not answer, and its error."""
    affected: list[str] = []
    error: Optional[str] = None
    for d in plan.decisions.values():
        if d.action != "build":
            continue
        if d.index_error is not None:
            affected.append(d.name)
            error = error or d.index_error
        elif d.parent in affected:
            affected.append(d.name)
    return affected, error


def make_plan(
    args: argparse.Namespace, *, submit: bool = False
) -> tuple[ImageCatalog, Any, Plan, Any]:
    """Make the plan :func:`add_plan_arguments` describe.

    Return the catalog, the index, the plan and, with ``submit``, the Queue
    to submit it to (opened and pinged before any lookup), else ``None``.
    """
    from taskgraph_images.cli._index import on_error, open_index
    from taskgraph_images.index import TaskclusterIndex
    from taskgraph_images.params import Params
    from taskgraph_images.plan import plan_images

    now = datetime.datetime.now(datetime.timezone.utc)
    params = Params.from_mapping(params_from_args(args, catalog_root(args), now))
    # The project decides a priority taskgraph's graph config gives by-project.
    catalog, config = load_catalog_and_config(args, project=params.project)
    note_config(args.config, config)
    index = open_index(args)
    # Found out before any lookup: a plan for a real Taskcluster needs a real queue.
    if submit:
        config.require_queue(params.level, "--submit creates the build tasks")
    elif isinstance(index, TaskclusterIndex):
        config.require_queue(params.level, "the plan is for the Taskcluster of its index")
    queue = open_queue(args, index) if submit else None
    plan = plan_images(
        catalog,
        params,
        index,
        config,
        on_error="build" if on_error(args) == "build" else "raise",
        now=now,
    )
    for line in plan.warnings:
        warning(line)
    affected, error = _built_for_index_errors(plan)
    if affected:
        warning(
            f"the {index.description} was unavailable ({error}); building "
            f"{len(affected)} image{'s' if len(affected) != 1 else ''} because of it "
            f"({', '.join(affected)})"
        )
    return catalog, index, plan, queue


def run_plan(args: argparse.Namespace) -> int:
    """Make the plan; print it; write, submit as asked."""
    if args.json or is_stdout(args.output):
        refuse_options(args, ["wide"], "applies only to the table, not to JSON")
    if not args.submit:
        refuse_options(args, ["jobs", "taskcluster_root_url"], "goes with --submit")
    _, _, plan, queue = make_plan(args, submit=args.submit)
    if args.json:
        write_output(None, plan.to_json())
    elif not is_stdout(args.output):
        write_output(None, _table(plan, wide=bool(args.wide)))
    if args.output:
        write_output(args.output, plan.to_json())
    counts = {a: sum(d.action == a for d in plan.decisions.values()) for a in ("build", "reuse")}
    summary = f"{counts['build']} to build, {counts['reuse']} reused, {len(plan.tasks)} tasks"
    if plan.tasks and not (args.output or args.json or args.submit):
        summary += " (not kept: --output FILE writes them, for render, graph and submit)"
    if queue is not None and plan.tasks:
        hint = (
            f"; `taskgraph-images submit {args.output}` creates the rest" if args.output else ""
        )
        note(f"{summary}; {submit(args, plan, queue, resume=False, hint=hint)}")
    else:
        note(summary)
    return 0


def read_plan(path: str) -> Plan:
    """Read the plan file at ``path``; errors name it."""
    from taskgraph_images.plan import Plan

    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise PlanError(f"cannot read plan {path}: {e.strerror}") from e
    try:
        return Plan.from_json(data)
    except PlanError as e:
        raise PlanError(f"{path}: {e}") from None


