"""``taskgraph-images build-in-task|run-task``: what a build task runs, and running one locally."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from typing import Any, Iterator, Mapping, Optional

from taskgraph_images.cli._common import (
    add_command,
    add_plan_file_argument,
    load_build_config,
    load_catalog,
    note,
    reporter,
)
from taskgraph_images.cli._index import add_index_arguments, open_index
from taskgraph_images.errors import DockerError, InvalidValueError, PlanError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``build-in-task`` and ``run-task`` sub-commands."""
    p = add_command(
        subparsers, "build-in-task", _build_in_task,
        help="build the image a build task names (its payload.command)",
        description="Run inside the image-builder image by a build task: read the task's "
        "environment, check out the revision, refuse to build when the tree's digest is not "
        "the task's HASH, fetch the parent image from the parent task's artifact, build "
        "with buildah and write the zstd-compressed image to IMAGE_ARTIFACT_PATH.",
    )
    p.add_argument("--checkout", metavar="DIR",
                   help="use this checkout instead of cloning GECKO_HEAD_REPOSITORY at "
                   "GECKO_HEAD_REV")
    p.add_argument("--images-dir", default=None,
                   help="images folder relative to the root (default: the folder CONTEXT_PATH "
                   "lies in)")
    p.add_argument("--kind-config", default=None,
                   help="docker-image kind.yml (default: the usual places; 'none' to ignore)")
    p.add_argument("--buildah", default="buildah", metavar="PATH", help="the buildah to run")
    p.add_argument("--workdir", default=None, metavar="DIR",
                   help="where buildah's storage and the clone go (default: the temp folder)")

    p = add_command(
        subparsers, "run-task", _run_task,
        help="run a build task on the local Docker engine, as a worker would",
        description="Run task TASK (from --plan FILE, or fetched from the Queue) in a "
        "container of its payload.image with its env, command, maxRunTime, "
        "capabilities and taskclusterProxy, and copy its artifacts out (-o DIR) or record "
        "them into the local index under the task's routes (--record).",
    )
    p.add_argument("task_id", metavar="TASK", help="the task id (a plan's or the Queue's)")
    add_plan_file_argument(p, "read the task from this plan file")
    p.add_argument("-o", "--output", metavar="DIR", help="copy the artifacts into DIR")
    p.add_argument("--record", action="store_true",
                   help="record the task, its artifacts and its index routes in the local index")
    p.add_argument("--root-url", default=None,
                   help="the Taskcluster the task talks to (default: TASKCLUSTER_ROOT_URL)")
    add_index_arguments(p)


@contextlib.contextmanager
def _terminated_as_interrupt() -> Iterator[None]:
    """Turn SIGTERM (a worker cancelling the task) into KeyboardInterrupt, so cleanups run."""
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _build_in_task(args: argparse.Namespace) -> int:
    from taskgraph_images.builder.intask import (
        ENV_DEFAULTS,
        build_in_task,
        checkout,
        env_names,
        images_dir_of,
        read_env,
    )

    environ = dict(os.environ)
    with _terminated_as_interrupt(), contextlib.ExitStack() as stack:
        root = args.checkout
        if root is None:
            repo = environ.get(ENV_DEFAULTS["head-repository"])
            rev = environ.get(ENV_DEFAULTS["head-rev"])
            if not repo or not rev:
                raise InvalidValueError(
                    f"no checkout: set {ENV_DEFAULTS['head-repository']} and "
                    f"{ENV_DEFAULTS['head-rev']}, or give --checkout DIR"
                )
            clone_parent = tempfile.mkdtemp(prefix="taskgraph-images-src-", dir=args.workdir)
            stack.callback(shutil.rmtree, clone_parent, True)
            root = os.path.join(clone_parent, "src")
            note(f"checking out {rev} of {repo}")
            checkout(repo, rev, root)
        config_path = environ.get(ENV_DEFAULTS["config"])
        # Without the variable, the plan used the defaults (not the root's default file),
        # over what the checkout's taskgraph graph config says, as the plan read it.
        config_file = os.path.join(root, config_path) if config_path else "none"
        config = load_build_config(config_file, root, args)
        task_env = read_env(environ, env_names(config), artifact_path=config.artifact_path)
        # Loaded as plan loads it (the digests must be the plan's); no file-hash
        # cache: a task hashes its checkout once.
        catalog = load_catalog(argparse.Namespace(
            root=root, images_dir=args.images_dir or images_dir_of(task_env.context_path),
            kind_config=args.kind_config, hash_cache="none",
        ), config)
        built = build_in_task(
            catalog, task_env, executable=args.buildah, workdir=args.workdir,
            reporter=reporter(), artifact=config.artifact_name,
            manifest_artifact=config.manifest_artifact,
        )
    print(f"built {built.image} (digest {built.digest}) into {built.path}")
    return 0


def _read_task(args: argparse.Namespace, root_url: Optional[str]) -> Mapping[str, Any]:
    if args.plan:
        try:
            with open(args.plan, encoding="utf-8") as f:
                doc = json.load(f)
        except OSError as e:
            raise PlanError(f"cannot read plan {args.plan}: {e.strerror}") from e
        except ValueError as e:
            raise PlanError(f"{args.plan}: not a plan: invalid JSON ({e})") from None
        except RecursionError:
            raise PlanError(f"{args.plan}: not a plan: JSON nested too deeply") from None
        tasks = doc.get("tasks") if isinstance(doc, dict) else None
        if not isinstance(tasks, dict):
            raise PlanError(f"{args.plan}: not a plan: no 'tasks' object")
        found = tasks.get(args.task_id)
        if not isinstance(found, dict):
            known = ", ".join(sorted(tasks)) or "none"
            raise PlanError(f"{args.plan} has no task {args.task_id} (its tasks: {known})")
        return found
    if not root_url:
        raise InvalidValueError(
            f"to fetch task {args.task_id} from the Queue, set TASKCLUSTER_ROOT_URL or give "
            "--root-url (or read it from a plan with --plan FILE)"
        )
    import taskcluster

    from taskgraph_images.errors import IndexUnavailableError
    from taskgraph_images.tc.env import TaskclusterEnv

    try:
        task = taskcluster.Queue(TaskclusterEnv.from_environment().options(root_url)).task(
            args.task_id)
    except taskcluster.exceptions.TaskclusterRestFailure as e:
        raise IndexUnavailableError(
            f"cannot fetch task {args.task_id} from the Queue at {root_url}: {e}"
        ) from e
    except taskcluster.exceptions.TaskclusterConnectionError as e:
        raise IndexUnavailableError(f"cannot reach the Queue at {root_url}: {e}") from e
    if not isinstance(task, dict):
        raise IndexUnavailableError(f"the Queue at {root_url} answered no task {args.task_id}")
    return task


def _write_output(stream: int, data: bytes) -> None:
    """The task's log (both its streams) goes to stderr; stdout is for what run-task made."""
    out = sys.stderr
    raw = getattr(out, "buffer", None)
    if raw is not None:
        out.flush()
        raw.write(data)
        raw.flush()
    else:  # a text stream without bytes underneath (a test's capture)
        out.write(data.decode("utf-8", "replace"))
        out.flush()


def _run_task(args: argparse.Namespace) -> int:
    from taskgraph_images.builder.runtask import check_task, record_run, run_task
    from taskgraph_images.images.engine import Engine
    from taskgraph_images.tc.env import TaskclusterEnv

    root_url = TaskclusterEnv.from_environment().root(args.root_url)
    task = _read_task(args, root_url)
    # Before any index, engine or file is touched: names that would escape -o,
    # routes --record could not index.
    check_task(task, args.task_id, record=args.record)
    image = (task.get("payload") or {}).get("image")
    # The index holds recorded runs and the artifacts of task or indexed images.
    wants_index = args.record or args.index is not None or isinstance(image, dict)
    index = open_index(args) if wants_index else None
    if args.record:
        from taskgraph_images.index import LocalIndex

        if not isinstance(index, LocalIndex):
            assert index is not None
            raise InvalidValueError(
                f"run-task --record writes to the local index only, not the {index.description}"
            )
    engine = Engine.from_env()
    engine.ping()
    with contextlib.ExitStack() as stack:
        out = args.output
        if out is None and args.record:
            out = stack.enter_context(tempfile.TemporaryDirectory(prefix="taskgraph-images-run-"))
        run = run_task(engine, task, args.task_id, output_dir=out, index=index,
                       root_url=root_url, on_output=_write_output, reporter=reporter())
        if not run.succeeded:
            why = "ran out of its maxRunTime" if run.timed_out else f"failed (exit {run.exit_code})"
            raise DockerError(f"task {args.task_id} {why}"
                              + ("; nothing recorded" if args.record else ""))
        if args.record:
            assert index is not None
            namespaces = record_run(index, task, run)
            print(f"recorded task {args.task_id} in the {index.description} at "
                  f"{len(namespaces)} namespaces")
        elif out is not None:
            for name, path in run.artifacts:
                print(f"{name} -> {path}")
    return 0
