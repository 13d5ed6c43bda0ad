"""``taskgraph-images index find|list|insert`` and the ``--index`` option.

``add_index_arguments`` and ``open_index`` are shared with the ``plan`` and
``load`` commands.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any, Optional, Union

from taskgraph_images.cli._common import (
    add_command,
    add_json_argument,
    format_date,
    note,
    print_json,
    reporter,
    warning,
)
from taskgraph_images.errors import InvalidValueError

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.index import LocalIndex, MemoryIndex, TaskclusterIndex
    from taskgraph_images.tc.env import TaskclusterEnv

    Backend = Union[LocalIndex, MemoryIndex, TaskclusterIndex]

__all__ = ["add_index_arguments", "on_error", "open_index", "register"]


def add_index_arguments(
    parser: argparse.ArgumentParser, *, on_error: bool = True, local_only: bool = False
) -> None:
    """Add ``--index local[:PATH] | taskcluster[:ROOT_URL]``, ``--index-timeout`` and
    ``--index-retries``; and ``--on-index-error`` unless ``on_error`` is false (for a
    command that has nothing to build when the index fails).

    With ``local_only`` (a command that writes the local index), only
    ``--index local[:PATH]``: the Taskcluster options would be refused anyway.
    """
    if local_only:
        parser.add_argument(
            "--index", metavar="local[:PATH]", default=None,
            help="the local index to write to (default: "
            "$XDG_CACHE_HOME/taskgraph-images/index.sqlite)",
        )
        return
    parser.add_argument(
        "--index",
        metavar="local[:PATH]|taskcluster[:ROOT_URL]",
        default=None,
        help="where to look images up (default: Taskcluster when TASKCLUSTER_ROOT_URL or "
        "TASKCLUSTER_PROXY_URL is set, else the local index)",
    )
    if on_error:
        parser.add_argument(
            "--on-index-error",
            choices=("stop", "build"),
            default="stop",
            help="when the index cannot be reached: stop with an error (default) or build "
            "every affected image, saying so",
        )
    parser.add_argument(
        "--index-timeout",
        metavar="SECONDS",
        type=float,
        default=None,
        help="Taskcluster index only: the longest one request may take, retries included "
        "(default: 60)",
    )
    parser.add_argument(
        "--index-retries",
        metavar="N",
        type=int,
        default=None,
        help="Taskcluster index only: how often a failed request (5xx, connection error) "
        "is retried, with exponential backoff (default: 5)",
    )
    from taskgraph_images.cli._common import CommandParser

    if isinstance(parser, CommandParser):
        parser.say_more_about("the Taskcluster index's time limits")


def on_error(args: argparse.Namespace) -> str:
    """Return the ``on_error`` value for ``find_images`` (``"raise"`` or ``"build"``)."""
    return "build" if getattr(args, "on_index_error", "stop") == "build" else "raise"


def open_index(args: argparse.Namespace, env: Optional[TaskclusterEnv] = None) -> Backend:
    """Open the index that ``--index`` names (or the default) and say which on stderr.

    :raises InvalidValueError: for an ``--index`` value of another kind, or a
        ``--index-timeout`` / ``--index-retries`` out of range.
    :raises ConfigError: for ``taskcluster`` without a root URL.
    """
    from taskgraph_images.index import LocalIndex, TaskclusterIndex
    from taskgraph_images.tc.env import TaskclusterEnv

    spec: Optional[str] = getattr(args, "index", None)
    if spec is None or spec.partition(":")[0] == "taskcluster":
        env = TaskclusterEnv.from_environment() if env is None else env
    if spec is None:
        spec = "taskcluster" if env is not None and env.configured else "local"
    kind, _, where = spec.partition(":")
    backend: Backend
    if kind == "local":
        backend = LocalIndex(where or None)
    elif kind == "taskcluster":
        limits: dict[str, Any] = {}
        if getattr(args, "index_timeout", None) is not None:
            limits["timeout"] = args.index_timeout
        if getattr(args, "index_retries", None) is not None:
            limits["max_retries"] = args.index_retries
        backend = TaskclusterIndex(where or None, env=env, reporter=reporter(), **limits)

    else:
        raise InvalidValueError(
            f"invalid --index {spec!r}: expected local[:PATH] or taskcluster[:ROOT_URL]"
        )
    note(f"using the {backend.description}")
    if isinstance(backend, TaskclusterIndex):
        from taskgraph_images.index.taskcluster import DEFAULT_RETRIES, DEFAULT_TIMEOUT

        reporter().debug(
            f"each index request may take {limits.get('timeout', DEFAULT_TIMEOUT):g} s, "
            f"{limits.get('max_retries', DEFAULT_RETRIES)} retries included"
        )
    return backend


def _entry_line(entry: Any) -> str:
    """``NAMESPACE  TASK_ID  EXPIRES``, the text form of an entry in every command."""
    return f"{entry.namespace}\t{entry.task_id}\t{format_date(entry.expires)}"


def _show(args: argparse.Namespace, entries: list[Any]) -> None:
    if args.json:
        print_json([entry.to_json() for entry in entries])
        return
    for entry in entries:
        print(_entry_line(entry))


def _find(args: argparse.Namespace) -> int:
    index = open_index(args)
    entry = index.find_task(args.namespace)
    if entry is None:
        warning(f"no task indexed at {args.namespace}")  # the exit status 1, explained even with -q
        return 1
    if args.json:
        print_json(entry.to_json())
    else:
        print(_entry_line(entry))
    return 0


def _list(args: argparse.Namespace) -> int:
    from taskgraph_images.index import TaskclusterIndex

    index = open_index(args)
    if isinstance(index, TaskclusterIndex):
        if args.recursive:
            raise InvalidValueError("--recursive works with the local index only")
        entries = index.list_tasks(args.prefix)
    else:
        entries = index.list_tasks(args.prefix, recursive=args.recursive)
    _show(args, list(entries))
    return 0


def _insert(args: argparse.Namespace) -> int:
    from taskgraph_images.index import LocalIndex
    from taskgraph_images.tc.time import parse_time

    # The local index even where TASKCLUSTER_ROOT_URL is set: nothing else is written.
    spec = args.index or "local"
    if spec.partition(":")[0] != "local":
        raise InvalidValueError(
            f"index insert writes to the local index only (--index local[:PATH]), not {spec!r}"
        )
    index = open_index(argparse.Namespace(index=spec))
    assert isinstance(index, LocalIndex)
    expires = parse_time(args.expires, "--expires") if args.expires else None
    entry = index.insert_task(args.namespace, args.task_id, rank=args.rank, expires=expires)
    if entry.task_id != args.task_id:
        note(f"{args.namespace} keeps task {entry.task_id}, which has a higher rank")
    if args.json:
        print_json(entry.to_json())
    else:
        print(_entry_line(entry))
    return 0


def register(subparsers: Any) -> None:
    """Add the ``index`` command and its ``find``, ``list`` and ``insert`` sub-commands."""
    parser = subparsers.add_parser(
        "index", help="query or fill an image index",
        description="Query an image index (the local SQLite index or Taskcluster's) as the "
        "plan does, or fill the local one by hand. Namespaces are dotted, as "
        "Taskcluster's: docker.images.v2.level-3.NAME.hash.DIGEST.",
    )
    sub = parser.add_subparsers(dest="index_command", metavar="SUBCOMMAND", required=True)

    find = add_command(
        sub, "find", _find, help="show the task indexed at NAMESPACE",
        description="Print the task indexed at NAMESPACE with its expiry (exit 1 when "
        "nothing is indexed there).",
    )
    find.add_argument("namespace", metavar="NAMESPACE", help="the full dotted namespace")
    add_json_argument(find, "print the entry as JSON (with its rank and data)")
    add_index_arguments(find, on_error=False)

    listing = add_command(
        sub, "list", _list, help="list the tasks indexed under PREFIX",
        description="Print the tasks indexed directly under PREFIX (everything below it "
        "with --recursive, local index only), one per line with its expiry.",
    )
    listing.add_argument("prefix", metavar="PREFIX",
                         help="a dotted namespace prefix, e.g. docker.images.v2.level-3")
    listing.add_argument(
        "--recursive", action="store_true", help="everything under PREFIX (local index only)"
    )
    add_json_argument(listing, "print a JSON list of the entries (with rank and data)")
    add_index_arguments(listing, on_error=False)

    insert = add_command(
        sub, "insert", _insert, help="index TASK_ID at NAMESPACE (local index only)",
        description="Index TASK_ID at NAMESPACE in the local index, as Taskcluster's "
        "insertTask does: an entry with a higher rank is kept.",
    )
    insert.add_argument("namespace", metavar="NAMESPACE", help="the full dotted namespace")
    insert.add_argument("task_id", metavar="TASK_ID", help="the task to index there")
    insert.add_argument("--expires", metavar="ISO", help="expiry (default: a year from now)")
    insert.add_argument("--rank", type=float, default=0, help="rank (default: 0)")
    add_json_argument(insert, "print the entry as JSON (with its rank and data)")
    add_index_arguments(insert, local_only=True)
