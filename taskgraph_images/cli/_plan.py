"""``plan`` (reuse or build every image; optionally submit the builds) and ``render``.

Decision parameters come from defaults, then ``--params FILE``, then the
flags; every default used is reported on stderr, so that on a machine with
no Taskcluster account ``taskgraph-images plan --root examples/gecko`` works
and says what it assumed.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

from taskgraph_images.cli._common import (
    add_catalog_arguments,
    add_config_argument,
    add_json_argument,
    add_output_argument,
    catalog_root,
    is_stdout,
    load_catalog_and_config,
    note,
    note_config,
    refuse_options,
    reporter,
    short_digest,
    warning,
    write_output,
)
from taskgraph_images.errors import ParamsError, PlanError, SubmitError

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.plan import Plan

__all__ = [
    "add_plan_arguments",
    "default_params",
    "make_plan",
    "read_plan",
    "register",
    "run_plan",
    "run_render",
    "run_submit",
]

_GIT_SOURCE = re.compile(r"(?:https?://|ssh://|git@)\S+\Z")
_HEX_REV = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?\Z")

# Flag destination -> parameter name.
_PARAM_FLAGS = (
    ("level", "level"),
    ("project", "project"),
    ("pushdate", "pushdate"),
    ("head_repository", "head_repository"),
    ("head_rev", "head_rev"),
    ("base_repository", "base_repository"),
    ("owner", "owner"),
    ("source", "source"),
    ("decision_task_id", "decision_task_id"),
    ("pushlog_id", "pushlog_id"),
    ("tasks_for", "tasks_for"),
)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``plan`` and ``render`` sub-commands."""
    p = sub.add_parser(
        "plan",
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
    _add_queue_arguments(p)
    p.set_defaults(func=run_plan)

    p = sub.add_parser(
        "submit",
        help="create the build tasks of a plan file (again: only the missing ones)",
        description="Create the build tasks of PLAN (plan --output) with the Queue, each after "
        "its dependencies, several at once. Tasks the Queue already has are not created "
        "again, so after a failure the same command creates the rest.",
    )
    p.add_argument("plan", metavar="PLAN", help="a plan file (plan --output)")
    _add_queue_arguments(p)
    p.set_defaults(func=run_submit)

    p = sub.add_parser(
        "render",
        help="render a task template's image tags from a plan",
        description="Replace {{#task_id_for_image}}NAME{{/task_id_for_image}} and "
        "{{#docker_image}}NAME{{/docker_image}} (or {#docker_image}NAME{/docker_image}) in "
        "TEMPLATE with the values of the plan file; nothing else changes.",
    )
    p.add_argument("template", metavar="TEMPLATE", help="the template file")
    p.add_argument("--plan", required=True, metavar="FILE", help="a plan file (plan --output)")
    add_json_argument(p, "parse the result as YAML; print JSON")
    add_output_argument(p, help="write to FILE (atomically), not stdout")
    p.set_defaults(func=run_render)


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """Add what a plan is made from: the catalog, index, parameter and config arguments."""
    from taskgraph_images.cli._index import add_index_arguments

    add_catalog_arguments(p)
    add_index_arguments(p)
    g = p.add_argument_group("decision parameters (default: --params, else guessed and reported)")
    g.add_argument("--params", metavar="FILE", help="a YAML or JSON file of decision parameters")
    g.add_argument("--level", help="trust level of the push: 1, 2 or 3 (default 1, the "
                   "lowest, whose plan reuses the builds of every level)")
    g.add_argument("--project", help="project (branch) name (default: the repository's name "
                   "from git remote origin, else the root folder's)")
    g.add_argument(
        "--pushdate", help="push date: epoch seconds or ISO 8601 with a timezone (default: now)"
    )
    g.add_argument("--head-repository", metavar="URL", help="repository pushed to")
    g.add_argument("--head-rev", metavar="REV", help="revision pushed (default: git HEAD)")
    g.add_argument("--base-repository", metavar="URL", help="base repository")
    g.add_argument("--owner", help="who pushed (default: git user.email)")
    g.add_argument("--source", metavar="URL", help="URL for the tasks' metadata.source")
    g.add_argument("--decision-task-id", metavar="TASK_ID", help="taskGroupId and a dependency")
    g.add_argument("--pushlog-id", metavar="N", help="pushlog id for treeherder routes")
    g.add_argument("--tasks-for", metavar="KIND", help="what the decision runs for "
                   "(hg-push, github-pull-request, ...; cache-keys: taskgraph reads it)")
    add_config_argument(p, "its cache-keys and run-task decide the digests, the rest "
                        "the build tasks")


# -- parameters ----------------------------------------------------------------------


def _git(root: str, *args: str) -> Optional[str]:
    try:
        done = subprocess.run(
            ["git", "-C", root, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = done.stdout.strip()
    return value if done.returncode == 0 and value else None


def _project_name(text: str) -> str:
    """``text`` as a project name: letters, digits, ``_.-`` (others become ``-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text).lstrip("._-")[:100]


def default_params(
    root: str,
    now: datetime.datetime,
    *,
    git: Callable[..., Optional[str]] = _git,
    environ: Optional[Mapping[str, str]] = None,
) -> dict[str, tuple[Any, str]]:
    """Return ``{param: (default value, how it was found)}`` for a local plan of ``root``."""
    env = os.environ if environ is None else environ
    rev = git(root, "rev-parse", "HEAD")
    remote = git(root, "remote", "get-url", "origin")
    email = git(root, "config", "user.email")
    if remote and _GIT_SOURCE.match(remote):
        repository, repo_how = remote, "git remote origin"
        # The repository's name, not the clone's folder (sws for scriptworker-scripts).
        named = remote.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
        project, project_how = _project_name(named), "the git remote origin's name"
    else:
        repository, repo_how = "file://" + os.path.abspath(root), "the root folder"
        project, project_how = "", ""
    if not project:
        project = _project_name(os.path.basename(os.path.abspath(root)))
        project_how = "the root folder's name"
    project = project or "local"
    user = env.get("USER") or env.get("USERNAME") or "nobody"
    source = repository if _GIT_SOURCE.match(repository) else "https://localhost/" + project
    return {
        "level": (1, "the lowest"),
        "project": (project, project_how),
        "pushdate": (int(now.timestamp()), "now"),
        "head_repository": (repository, repo_how),
        "head_rev": (
            (rev, "git HEAD") if rev and _HEX_REV.match(rev) else ("0" * 40, "no git revision")
        ),
        "base_repository": (repository, repo_how),
        "owner": ((email, "git user.email") if email else (f"{user}@localhost", "$USER")),
        "source": (source, "the head repository" if source == repository else "a placeholder"),
    }


def _read_params_file(path: str) -> dict[str, Any]:
    """The parameters of ``path``: ours, or those a taskgraph decision wrote.

    A taskgraph file also holds the repository's own parameters (its
    taskgraph extensions declare them); they say nothing about images and
    are left out, listed with ``-v``. In any other file an unknown name is refused.
    """
    from taskgraph_images._yamlfile import load_yaml_file
    from taskgraph_images.params import is_taskgraph_parameters, split_taskgraph_parameters

    data = load_yaml_file(path, "parameters file", ParamsError)  # JSON is YAML too
    if not isinstance(data, dict):
        raise ParamsError(f"parameters file {path} must hold a mapping of parameter names")
    if not is_taskgraph_parameters(data):
        return data
    ours, theirs = split_taskgraph_parameters(data)
    note(f"reading {path} as taskgraph's decision parameters")
    if theirs:
        reporter().debug(f"  the repository's own parameters, not read: {', '.join(theirs)}")
    return ours


def _params(args: argparse.Namespace, root: str, now: datetime.datetime) -> dict[str, Any]:
    given: dict[str, Any] = {}
    if args.params:
        given.update(_read_params_file(args.params))
    for dest, name in _PARAM_FLAGS:
        value = getattr(args, dest)
        if value is not None:
            given[name] = value
    used = []
    for name, (value, how) in default_params(root, now).items():
        if given.get(name) is None:
            given[name] = value
            used.append(f"{name}={value} ({how})")
    if used:
        shown = ", ".join(u.split(" (", 1)[0] for u in used[:2])
        more = f" and {len(used) - 2} more" if len(used) > 2 else ""
        note(f"guessed the decision parameters {shown}{more} (-v lists them)")
        for line in used:
            reporter().debug(f"  {line}")
    return given


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
    from taskgraph_images.index._lookup import NOT_INDEXED

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


def _add_queue_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--taskcluster-root-url",
        metavar="URL",
        help="the Queue to submit to (default: the --index root URL, TASKCLUSTER_PROXY_URL or "
        "TASKCLUSTER_ROOT_URL)",
    )
    p.add_argument(
        "--jobs",
        metavar="N",
        type=int,
        help="createTask calls in flight at once (default: 16)",
    )


def _jobs(args: argparse.Namespace) -> int:
    from taskgraph_images.tc.submit import DEFAULT_JOBS

    jobs: int = DEFAULT_JOBS if args.jobs is None else args.jobs
    if jobs < 1:
        raise SubmitError(f"invalid --jobs {jobs}: expected at least 1")
    return jobs


def _open_queue(args: argparse.Namespace, index: Any) -> Any:
    """Return a ``taskcluster.Queue`` for submitting, after checking that it answers."""
    from taskgraph_images.tc.env import TaskclusterEnv, client

    tc_env = TaskclusterEnv.from_environment()
    root_url = tc_env.root(args.taskcluster_root_url or getattr(index, "root_url", None))
    if not root_url:
        raise SubmitError(
            "--submit needs a Queue: pass --taskcluster-root-url or --index taskcluster:URL, or "
            "set TASKCLUSTER_ROOT_URL or TASKCLUSTER_PROXY_URL"
        )
    options = tc_env.options(root_url, maxRetries=5)
    _jobs(args)  # a bad --jobs is found out before any lookup too
    queue = client("Queue", options)
    try:
        queue.ping()
    except Exception as e:  # the client raises many kinds; report each as one line
        from taskgraph_images._neterrors import describe

        cause = getattr(e, "superExc", None)  # a connection error: say why in a few words
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        why = describe(cause) if isinstance(cause, BaseException) else f"{type(e).__name__}: {first}"
        raise SubmitError(
            f"the Queue at {options['rootUrl']} does not answer ping: {why}"
        ) from e
    return queue


def _submit(args: argparse.Namespace, plan: Plan, queue: Any, *, resume: bool, hint: str) -> str:
    """Submit ``plan``'s tasks with progress on stderr; return what was done, for the summary."""
    import time

    from taskgraph_images.tc.submit import queue_existing, submit_plan

    total, jobs = len(plan.tasks), _jobs(args)
    note(f"submitting {total} build tasks to {queue.options['rootUrl']} ({jobs} at a time)")
    last = [time.monotonic()]

    def progress(done: int, total: int) -> None:
        now = time.monotonic()
        if done == total or now - last[0] >= 1.0:
            last[0] = now
            note(f"submitting {total} build tasks... {done}/{total}")

    try:
        result = submit_plan(
            plan,
            queue.createTask,
            jobs=jobs,
            existing=queue_existing(queue) if resume else None,
            progress=progress,
        )
    except SubmitError as e:
        raise SubmitError(f"{e}{hint}") from e
    existed = f" ({len(result.existing)} existed already)" if result.existing else ""
    return f"created {len(result.created)} build tasks{existed}"


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
    params = Params.from_mapping(_params(args, catalog_root(args), now))
    # The project decides a priority taskgraph's graph config gives by-project.
    catalog, config = load_catalog_and_config(args, project=params.project)
    note_config(args.config, config)
    index = open_index(args)
    # Found out before any lookup: a plan for a real Taskcluster needs a real queue.
    if submit:
        config.require_queue(params.level, "--submit creates the build tasks")
    elif isinstance(index, TaskclusterIndex):
        config.require_queue(params.level, "the plan is for the Taskcluster of its index")
    queue = _open_queue(args, index) if submit else None
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
        note(f"{summary}; {_submit(args, plan, queue, resume=False, hint=hint)}")
    else:
        note(summary)
    return 0


def run_submit(args: argparse.Namespace) -> int:
    """Create the build tasks of a plan file that the Queue does not have yet."""
    plan = read_plan(args.plan)
    if not plan.tasks:
        note(f"{args.plan} has no build tasks")
        return 0
    queue = _open_queue(args, None)
    hint = "; run the same command again to create the rest"
    note(_submit(args, plan, queue, resume=True, hint=hint))
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


def run_render(args: argparse.Namespace) -> int:
    """Render TEMPLATE with the plan file's values."""
    import pathlib

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
