"""``submit`` (create a plan file's build tasks that the Queue does not have yet),
and the submission ``plan --submit`` shares with it: the Queue opened and
pinged, the tasks created several at once with progress on stderr.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from taskgraph_images.cli._common import add_command, note
from taskgraph_images.errors import SubmitError

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.plan import Plan

__all__ = ["add_queue_arguments", "open_queue", "register", "run_submit", "submit"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``submit`` sub-command."""
    p = add_command(
        sub, "submit", run_submit,
        help="create the build tasks of a plan file (again: only the missing ones)",
        description="Create the build tasks of PLAN (plan --output) with the Queue, each after "
        "its dependencies, several at once. Tasks the Queue already has are not created "
        "again, so after a failure the same command creates the rest.",
    )
    p.add_argument("plan", metavar="PLAN", help="a plan file (plan --output)")
    add_queue_arguments(p)


def add_queue_arguments(p: argparse.ArgumentParser) -> None:
    """Add the Queue's arguments: its root URL and the calls in flight at once."""
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


def open_queue(args: argparse.Namespace, index: Any) -> Any:
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


def submit(args: argparse.Namespace, plan: Plan, queue: Any, *, resume: bool, hint: str) -> str:
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


def run_submit(args: argparse.Namespace) -> int:
    """Create the build tasks of a plan file that the Queue does not have yet."""
    from taskgraph_images.cli._plan import read_plan

    plan = read_plan(args.plan)
    if not plan.tasks:
        note(f"{args.plan} has no build tasks")
        return 0
    queue = open_queue(args, None)
    hint = "; run the same command again to create the rest"
    note(submit(args, plan, queue, resume=True, hint=hint))
    return 0
