"""``why NAME``: every difference between an image's context and its last trusted build's.

From the index (the tree's manifest against the manifest of the last build
at ``--level`` or higher), or from a plan file (``--plan``: what the plan
recorded when it was made).
"""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any, Optional

from taskgraph_images._redact import escape
from taskgraph_images.cli._common import (
    add_catalog_arguments,
    add_command,
    add_config_argument,
    add_json_argument,
    add_plan_file_argument,
    load_catalog_and_config,
    note_config,
    write_output,
)
from taskgraph_images.errors import InvalidValueError

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.manifest import ManifestDiff

__all__ = ["format_diff", "register", "run_why"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``why`` sub-command."""
    from taskgraph_images.cli._index import add_index_arguments

    p = add_command(
        sub, "why", run_why,
        help="show how an image's context differs from its last trusted build",
        description="Compare image NAME's context manifest (every member's path and sha256, "
        "its args and parents) with the manifest of its last build at --level or a higher "
        "level, and print every difference: changed files with their old and new hashes, "
        "added, removed and moved files, args and parents. With --plan, print what the "
        "plan file recorded instead.",
    )
    p.add_argument("name", metavar="NAME", help="the task image to explain")
    add_plan_file_argument(p, "read the difference from a plan file")
    p.add_argument("--level", type=int, default=None,
                   help="trust level of the push: earlier builds at this level or higher are "
                   "compared against (default 1, as plan: builds of every level)")
    add_config_argument(p)
    add_json_argument(p, "print the difference as JSON")
    add_catalog_arguments(p)
    add_index_arguments(p)


#: Hex digits of a hash in ``why``'s text: enough to compare by eye (``--json`` has them all).
SHORT_HASH = 12

#: The width ``why``'s text keeps to (the explanation is wrapped, hashes shortened).
WIDTH = 100


def _short(sha: str) -> str:
    return sha[:SHORT_HASH]


def format_diff(diff: ManifestDiff) -> list[str]:
    """Return one line per difference: paths with old and new sha256, moves, args, parents.

    Hashes show their first :data:`SHORT_HASH` hex digits, so that a line
    with a path of up to 60 characters fits :data:`WIDTH` columns.
    """
    lines = []
    if diff.old_recipe != diff.new_recipe:
        lines.append(f"recipe   {diff.old_recipe} -> {diff.new_recipe}")
    lines.append(f"digest   {_short(diff.old_digest)} -> {_short(diff.new_digest)}")
    lines += [f"changed  {c.path}  {_short(c.old)} -> {_short(c.new)}" for c in diff.changed]
    lines += [f"added    {path}  {_short(sha)}" for path, sha in diff.added]
    lines += [f"removed  {path}  {_short(sha)}" for path, sha in diff.removed]
    lines += [f"moved    {m.old_path} -> {m.new_path}  {_short(m.sha256)}" for m in diff.moved]
    for a in diff.args:
        old = "(unset)" if a.old is None else json.dumps(a.old)
        new = "(unset)" if a.new is None else json.dumps(a.new)
        lines.append(f"arg      {a.name}  {old} -> {new}")
    for p in diff.parents:
        old = _short(p.old_digest) if p.old_digest else "(none)"
        new = _short(p.new_digest) if p.new_digest else "(none)"
        # The line's label says "parent" already: "parent   base rebuilt ...".
        what = p.describe().removeprefix("parent ")
        lines.append(f"parent   {what}  {old} -> {new}")
    # Paths come from an earlier build's manifest: control characters shown, not sent.
    return [escape(line) for line in lines]


def _from_plan(args: argparse.Namespace) -> dict[str, Any]:
    from taskgraph_images.cli._plan import read_plan

    decision = read_plan(args.plan)[args.name]
    if decision.action == "reuse":
        text = f"reused: {decision.reason} (task {decision.task_id})"
    elif decision.action == "prebuilt":
        text = f"prebuilt: {decision.reason}"
    else:
        text = decision.reason
    return {
        "image": decision.name,
        "action": decision.action,
        "explanation": text,
        "compared_with": decision.compared_with,
        "level": None,
        "changes": decision.changes,
    }


def _from_index(args: argparse.Namespace) -> dict[str, Any]:
    from taskgraph_images.cli._index import open_index
    from taskgraph_images.explain import explain_builds, link_parents
    from taskgraph_images.keys.indexkeys import IndexKeys
    from taskgraph_images.keys.namespaces import validate_level
    from taskgraph_images.manifest import build_manifest

    level = validate_level(args.level if args.level is not None else 1)
    catalog, config = load_catalog_and_config(args)
    image = catalog[args.name]
    if image.prebuilt:
        return {"image": args.name, "action": "prebuilt",
                "explanation": f"prebuilt: registry tag {catalog.docker_image(args.name)}",
                "compared_with": None, "level": None, "changes": None}
    note_config(args.config, config)
    index = open_index(args)
    # The image and its task-image ancestors, parents first: a changed
    # parent's own difference is summed up in the image's line.
    ancestors = set(catalog.ancestors(args.name))
    names = [n for n in catalog.order()
             if n == args.name or (n in ancestors and not catalog[n].prebuilt)]
    manifests = {n: build_manifest(catalog, n) for n in names}
    # Where the earlier builds are: this library's latest namespaces, or
    # taskgraph's with cache-keys: taskgraph (the plan's own choice).
    keys = IndexKeys.for_config(config)
    explanations = explain_builds(index, manifests, level, prefix=config.index_prefix,
                                  artifact=config.manifest_artifact, latest_order=keys.latest)
    changed = [n for n, e in explanations.by_name.items() if e.diff is None or not e.diff.empty]
    explanation = link_parents(explanations, changed).by_name[args.name]
    if explanation.problem:
        from taskgraph_images.cli._common import warning

        warning(explanation.problem)
    return {
        "image": args.name,
        "action": None,
        "explanation": explanation.text,
        "compared_with": explanation.earlier_task,
        "level": explanation.earlier_level,
        "changes": explanation.diff,
    }


def run_why(args: argparse.Namespace) -> int:
    """Print the difference for one image."""
    if args.plan is not None and args.level is not None:
        raise InvalidValueError("--level is for the index; a plan file has its own level")
    result = _from_plan(args) if args.plan is not None else _from_index(args)
    diff: Optional[ManifestDiff] = result["changes"]
    if args.json:
        doc = {**result, "changes": diff.to_json() if diff is not None else None}
        doc = {k: v for k, v in doc.items() if v is not None}
        write_output(None, json.dumps(doc, indent=2) + "\n")
        return 0
    import textwrap

    lines = textwrap.wrap(f"{result['image']}: {result['explanation']}", WIDTH,
                          subsequent_indent="    ", break_on_hyphens=False,
                          break_long_words=False)
    if result["compared_with"]:
        at = f" (level {result['level']})" if result["level"] else ""
        lines.append(f"compared with task {result['compared_with']}{at}")
    if diff is not None:
        lines += format_diff(diff)
    write_output(None, "\n".join(lines) + "\n")
    return 0
