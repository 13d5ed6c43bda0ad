"""The ``taskgraph-images`` command.

Thin by design: each sub-command module parses its arguments and calls one
library function. Library errors are printed as one line on stderr and exit 1;
usage errors exit 2 (argparse's convention).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # as in taskgraph_images/__init__.py: --version stays off typing
if TYPE_CHECKING:  # pragma: no cover
    import argparse
    from typing import Callable, Optional, Sequence

__all__ = ["main"]

PROG = "taskgraph-images"

# Each module registers its sub-commands with ``register(subparsers)``.
_COMMAND_MODULES = (
    "taskgraph_images.cli._catalog",
    "taskgraph_images.cli._index",
    "taskgraph_images.cli._plan",
    "taskgraph_images.cli._submit",
    "taskgraph_images.cli._render",
    "taskgraph_images.cli._images",
    "taskgraph_images.cli._tasks",
    "taskgraph_images.cli._why",
    "taskgraph_images.cli._graph",
)


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every sub-command registered."""
    import argparse
    import importlib

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Decide which Docker images a Taskcluster decision task must build or "
        "reuse, generate their build tasks, and build, save and load images.",
    )
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    from taskgraph_images.cli._common import CommandParser

    # Every sub-command (and theirs) is a CommandParser: -q/-v everywhere.
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=CommandParser)
    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Run the command line and return its exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:
        # Fast path: no argparse, no sub-command modules.
        from taskgraph_images._version import version

        print(f"{PROG} {version()}")
        return 0

    from taskgraph_images.errors import TaskgraphImagesError

    parser = build_parser()
    args = parser.parse_args(args_list)
    if args.version:
        from taskgraph_images._version import version

        print(f"{PROG} {version()}")
        return 0
    func: Optional[Callable[[argparse.Namespace], int]] = getattr(args, "func", None)
    if func is None:
        parser.print_usage(sys.stderr)
        print(f"{PROG}: error: a command is required", file=sys.stderr)
        return 2
    from taskgraph_images.cli._common import verbosity
    from taskgraph_images.cli._report import ConsoleReporter, using

    try:
        with using(ConsoleReporter(verbosity=verbosity(args))):
            return func(args)
    except TaskgraphImagesError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (``| head``); not an error of ours.
        return 0
