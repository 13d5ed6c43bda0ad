"""Arguments and helpers shared by several sub-commands: the CLI's conventions.

Every command follows the same conventions, and a new command gets them by
using these helpers:

- ``-q/--quiet`` and ``-v/--verbose`` exist on every command:
  :class:`CommandParser` (the sub-parsers' class) adds them; the chosen
  :func:`verbosity` configures the reporter (``taskgraph_images.cli._report``)
  through which every note, warning, wait and transfer goes (:func:`note`,
  :func:`warning`, :func:`reporter`).
- ``--json`` on every command that prints data (:func:`add_json_argument`,
  :func:`print_json`).
- ``-o/--output FILE`` on every command that writes a file, ``-`` meaning
  stdout (:func:`add_output_argument`, :func:`write_output`,
  :func:`binary_stdout`); files appear only when complete.
- The build-task config is the ``--config`` file or the root's default
  (:func:`config_path`), read once per command: :func:`load_catalog_and_config`
  gives the catalog and the config its digests follow.
- Tables show the first 8 hex digits of a digest (:func:`short_digest`).
- Dates are printed as the Taskcluster services write them
  (:func:`format_date`), sizes in binary units
  (:func:`taskgraph_images.progress.format_size`).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import IO, TYPE_CHECKING, Any, Callable, Iterable, Iterator, Optional

if TYPE_CHECKING:  # pragma: no cover
    import datetime

    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.cli._report import ConsoleReporter
    from taskgraph_images.config import BuildConfig

__all__ = [
    "CommandParser",
    "add_catalog_arguments",
    "add_config_argument",
    "add_json_argument",
    "add_output_argument",
    "binary_stdout",
    "catalog_root",
    "config_path",
    "default_root",
    "format_date",
    "is_stdout",
    "load_build_config",
    "load_catalog",
    "load_catalog_and_config",
    "note",
    "note_config",
    "print_json",
    "refuse_options",
    "reporter",
    "short_digest",
    "verbosity",
    "warning",
    "write_output",
]


class CommandParser(argparse.ArgumentParser):
    """A sub-command's parser: adds ``-q/--quiet`` and ``-v/--verbose`` to it.

    Their defaults are suppressed, so that ``index -v find`` and
    ``index find -v`` both count (a nested parser does not reset them).
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        group = self.add_argument_group("output")
        group.add_argument(
            "-q", "--quiet", action="count", default=argparse.SUPPRESS,
            help="print only the output, warnings and errors (no notes or progress)",
        )
        group.add_argument(
            "-v", "--verbose", action="count", default=argparse.SUPPRESS,
            help=VERBOSE_HELP,
        )

    def say_more_about(self, what: str) -> None:
        """Add ``what`` to what ``-v`` says more about (a command's own details)."""
        for action in self._actions:
            if "--verbose" in action.option_strings:
                action.help = f"{action.help}, {what}"


#: ``-v``'s help on every command; :meth:`CommandParser.say_more_about` adds to it.
VERBOSE_HELP = "say more: every transfer's last line"


def verbosity(args: argparse.Namespace) -> int:
    """Return ``-v`` count minus ``-q`` count (0 by default)."""
    return int(getattr(args, "verbose", 0)) - int(getattr(args, "quiet", 0))


def reporter() -> ConsoleReporter:
    """Return the running command's reporter (progress, notes and warnings)."""
    from taskgraph_images.cli._report import current

    return current()


def note(message: str) -> None:
    """Tell the user something that is not the command's output (stderr; not with -q)."""
    reporter().note(message)


def warning(message: str) -> None:
    """Warn the user (stderr, even with -q)."""
    reporter().warning(message)


def refuse_options(args: argparse.Namespace, dests: Iterable[str], why: str) -> None:
    """Refuse the first of the options ``dests`` that was given: it does not apply.

    An option counts as given when its value is not ``None`` (give such
    options a ``None`` default and resolve it where it is used).

    :raises InvalidValueError: ``--OPTION applies only ...`` (``why``).
    """
    from taskgraph_images.errors import InvalidValueError

    for dest in dests:
        if getattr(args, dest, None) is not None:
            option = "--" + dest.replace("_", "-")
            raise InvalidValueError(f"{option} {why}")


def add_command(
    sub: Any, name: str, func: Callable[[argparse.Namespace], int], *, help: str,
    description: str,
) -> argparse.ArgumentParser:
    """Add sub-command ``name`` to ``sub`` (a sub-parsers action): run by ``func(args)``,
    shown with its one-line ``help`` and ``description``; return its parser."""
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help, description=description)
    parser.set_defaults(func=func)
    return parser


def add_plan_file_argument(
    parser: argparse.ArgumentParser, help: str, *, required: bool = False
) -> None:
    """Add ``--plan FILE``: a plan file (``plan --output``) the command reads."""
    parser.add_argument("--plan", required=required, metavar="FILE", help=help)


def add_json_argument(parser: Any, help: str = "print JSON") -> None:
    """Add ``--json`` to ``parser`` or an argument group: the data as JSON, not text."""
    parser.add_argument("--json", action="store_true", help=help)


def add_output_argument(
    parser: Any, *, required: bool = False, help: str = "the file to write"
) -> None:
    """Add ``-o/--output FILE`` (``-`` for stdout) to ``parser`` or an argument group."""
    parser.add_argument(
        "-o", "--output", metavar="FILE", required=required, help=f"{help} ('-': stdout)"
    )


def print_json(value: Any) -> None:
    """Print ``value`` as indented JSON with sorted keys on stdout."""
    write_output(None, json.dumps(value, indent=2, sort_keys=True) + "\n")


def format_date(when: datetime.datetime) -> str:
    """Return ``when`` as every command prints dates: ``2016-11-07T19:26:27.000Z``."""
    from taskgraph_images.tc.time import format_time

    return format_time(when)


#: Hex digits of a digest in a table (``--json`` and ``--wide`` give them all).
SHORT_DIGEST = 8


def short_digest(digest: str) -> str:
    """The start of ``digest`` that tables show.

    >>> short_digest("b3b3050e8b8b08de5f4e3a1e256b7bb3842435adee41930a727be43a547012af")
    'b3b3050e'
    """
    return digest[:SHORT_DIGEST]


def is_stdout(path: Optional[str]) -> bool:
    """Whether ``path`` means stdout (``-``)."""
    return path == "-"


@contextlib.contextmanager
def binary_stdout() -> Iterator[IO[bytes]]:
    """Yield stdout for bytes (what ``-o -`` means for a tarball), flushed at the end.

    :raises InvalidValueError: when stdout is a terminal.
    """
    from taskgraph_images.errors import InvalidValueError

    if sys.stdout.isatty():
        raise InvalidValueError(
            "refusing to write binary data to a terminal: redirect stdout or pass -o FILE"
        )
    sys.stdout.flush()
    out = sys.stdout.buffer
    yield out
    out.flush()

DEFAULT_IMAGES_DIR = "taskcluster/docker"


def default_root(start: Optional[str] = None) -> str:
    """Return the enclosing VCS checkout of ``start`` (default: cwd), else ``start``."""
    here = os.path.abspath(start or os.getcwd())
    probe = here
    while True:
        if any(os.path.exists(os.path.join(probe, m)) for m in (".git", ".hg")):
            return probe
        parent = os.path.dirname(probe)
        if parent == probe:
            return here
        probe = parent


def add_catalog_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--root``, ``--images-dir``, ``--kind-config`` and ``--hash-cache``."""
    parser.add_argument(
        "--root",
        help="repository root (default: the enclosing git/hg checkout, else the current folder)",
    )
    parser.add_argument(
        "--images-dir",
        default=None,
        help=f"images folder relative to the root (default: {DEFAULT_IMAGES_DIR})",
    )
    parser.add_argument(
        "--kind-config",
        default=None,
        help="docker-image kind.yml (default: taskcluster/kinds/docker-image/kind.yml or "
        "taskcluster/ci/docker-image/kind.yml when present; 'none' to ignore them)",
    )
    parser.add_argument(
        "--hash-cache",
        metavar="PATH|none",
        default=None,
        help="file-hash cache, reused while a file's inode, size, mtime and ctime are "
        "unchanged (default: $XDG_CACHE_HOME/taskgraph-images/file-hashes.sqlite3; "
        "'none' to hash every file)",
    )


#: How every ``--config`` help ends: the default and ``none``.
CONFIG_DEFAULT = (
    "see docs/tasks.rst; default: taskcluster/taskgraph-images.yml under the root when "
    "present; 'none' for the defaults"
)


def add_config_argument(
    parser: Any, uses: str = "its cache-keys and run-task decide the digests"
) -> None:
    """Add ``--config FILE|none``: the build-task config, of which ``uses`` matters here."""
    parser.add_argument(
        "--config", metavar="FILE|none",
        help=f"build-task config YAML: {uses} ({CONFIG_DEFAULT})",
    )


def load_catalog(
    args: argparse.Namespace, config: Optional[BuildConfig] = None
) -> ImageCatalog:
    """Load the catalog the catalog arguments (and the build-task config, if any) describe.

    The build-task config's cache-keys and run-task decide the digests:
    ``config`` when given (see :func:`load_catalog_and_config`), else, for a
    command with ``--config``, the file :func:`config_path` names.

    :raises CatalogError: for a ``--root`` that does not exist, with a hint
        when it looks like taskgraph's ``--root`` (the ``taskcluster`` folder).
    :raises ConfigError: for a build-task config that cannot be read (naming the file).
    """
    root = catalog_root(args)
    if config is None and hasattr(args, "config"):
        # The root's own file is the repository's: it follows the repository rule.
        config = _read_config(config_path(args.config, root), root, args,
                              confine=args.config is None)
        _say_origins(config)
    return _load_catalog(args, root, config)


def load_catalog_and_config(
    args: argparse.Namespace, *, project: Optional[str] = None
) -> tuple[ImageCatalog, BuildConfig]:
    """Load the catalog and the build-task config, the config found and read once.

    The config is :func:`load_build_config`'s for ``--config`` and the root,
    over what the root's taskgraph graph config says (``project``, the
    push's, decides a priority taskgraph writes ``by-project``), and the
    catalog's digests follow it. Say which files set it with
    :func:`note_config` (once the command's other input is read, so that
    an error in it stays the only line).

    :raises CatalogError: as :func:`load_catalog`.
    :raises ConfigError: for a build-task config that cannot be read (naming the file).
    """
    root = catalog_root(args)
    config = _read_config(config_path(args.config, root), root, args, project=project,
                          confine=args.config is None)
    return _load_catalog(args, root, config), config


def catalog_root(args: argparse.Namespace) -> str:
    """The repository root the catalog arguments name (checked), as an absolute path.

    :raises CatalogError: as :func:`load_catalog`.
    """
    root: str = args.root or default_root()
    _check_root(root, args.root is not None, args.images_dir or DEFAULT_IMAGES_DIR)
    return os.path.abspath(root)


def _load_catalog(
    args: argparse.Namespace, root: str, config: Optional[BuildConfig]
) -> ImageCatalog:
    from taskgraph_images.catalog import ImageCatalog

    kwargs: dict[str, Any] = {}
    if config is not None:
        # Whose digests the catalog gives and where the run-task files are.
        kwargs["cache_keys"] = config.cache_keys
        if config.builder == "taskgraph-images":  # the digests name our builder
            kwargs["taskgraph_builder"] = config.image_builder
        if config.run_task is not None:
            kwargs["run_task"] = config.run_task
    if args.images_dir is not None:
        kwargs["images_dir"] = args.images_dir
    if getattr(args, "kind_config", None) is not None:
        kwargs["kind_config"] = args.kind_config
    else:
        # taskgraph's graph config may name the docker-image kind.
        from taskgraph_images.graphconfig import kind_config_of

        kwargs["kind_config"] = kind_config_of(root) or "none"
    from taskgraph_images._hashing.cache import hasher_for_option

    hasher = hasher_for_option(getattr(args, "hash_cache", None))
    if reporter().verbosity > 0:
        from taskgraph_images._hashing.filehash import engine

        reporter().debug(f"file hashing: {engine().describe()}")
    return ImageCatalog.load(root, **kwargs, hasher=hasher)


def _check_root(root: str, given: bool, images_dir: str) -> None:
    from taskgraph_images.errors import CatalogError

    if given and not os.path.isdir(root):
        what = "is not a folder" if os.path.exists(root) else "does not exist"
        raise CatalogError(f"--root {root} {what}")
    if os.path.isdir(os.path.join(root, images_dir)):
        return
    parent = os.path.dirname(os.path.abspath(root))
    if given and (os.path.basename(os.path.abspath(root)) == "taskcluster" or os.path.isdir(
        os.path.join(parent, images_dir)
    )):
        raise CatalogError(
            f"images folder {images_dir!r} does not exist under {root}: --root is the "
            f"repository root, not taskgraph's taskcluster folder (try --root {parent})"
        )
    below = _roots_below(root, images_dir)
    if below:
        raise CatalogError(
            f"images folder {images_dir!r} does not exist under {root}; the repositories "
            f"below it that have one: try --root {' or --root '.join(below)}"
        )


def _shown_path(path: str) -> str:
    """``path`` relative to the current folder when below it (what to type), else absolute."""
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


#: How many folders down :func:`_roots_below` looks, and how many roots it names.
_BELOW_DEPTH, _BELOW_NAMED = 2, 3


def _roots_below(root: str, images_dir: str) -> list[str]:
    """The folders at most two levels below ``root`` that have ``images_dir`` (a few, sorted).

    What a newcomer at a checkout's root (the bundled ``examples/gecko``) needs
    as ``--root``; hidden folders are skipped, and only directories are listed.
    """
    found: list[str] = []
    level = [""]
    for _ in range(_BELOW_DEPTH):
        deeper = []
        for rel in level:
            try:
                with os.scandir(os.path.join(root, rel)) as entries:
                    names = sorted(e.name for e in entries
                                   if e.is_dir(follow_symlinks=False) and not e.name.startswith("."))
            except OSError:
                continue
            for name in names[:200]:  # bounded: a home folder is no repository
                sub = os.path.join(rel, name)
                if os.path.isdir(os.path.join(root, sub, images_dir)):
                    found.append(_shown_path(os.path.join(root, sub)))
                else:
                    deeper.append(sub)
        level = deeper
    return sorted(found)[:_BELOW_NAMED]


def config_path(path: Optional[str], root: Optional[str]) -> Optional[str]:
    """Return the build-task config file to read, or ``None`` for the defaults.

    ``path`` is ``--config``: a file, ``none`` (the defaults), or ``None``
    for ``root``'s default file when it exists
    (:func:`taskgraph_images.config.find_config`).
    """
    if path is None:
        if root is None:
            return None
        from taskgraph_images.config import find_config

        return find_config(root)
    return None if path == "none" else path


def load_build_config(
    path: Optional[str], root: Optional[str] = None, args: Optional[argparse.Namespace] = None
) -> BuildConfig:
    """Read the build-task config at ``path``; without one, ``root``'s default file if any.

    ``path`` ``none`` (or no path and no default file) gives the defaults
    (:func:`config_path`), which in a taskgraph repository ``root`` are what
    its graph config says. The files read are announced in a note.

    :raises ConfigError: for a file that cannot be read or is invalid (naming it).
    """
    # The root's own file is the repository's: it follows the repository rule.
    config = _read_config(config_path(path, root), root, args, confine=path is None)
    note_config(path, config)
    return config


def note_config(given: Optional[str], config: BuildConfig) -> None:
    """Note which files set ``config``: the build-task config file (the root's
    default or ``--config``'s, ``given``) and taskgraph's files; with ``-v``,
    which key each set.

    ``given`` ``none`` (the defaults) needs no note of our file, as it was asked for.
    """
    files: dict[str, list[str]] = {}
    for key, origin in config.origins:
        files.setdefault(origin.split(" (", 1)[0], []).append(key)
    taskgraph = [f for f in files if f != config.source]
    if taskgraph:
        note(f"using taskgraph's settings from {' and '.join(taskgraph)} (-v lists them)")
    if config.path is not None:
        how = "" if given is None else " (--config)"
        note(f"using the build-task config {config.path}{how}")
    _say_origins(config)


def _say_origins(config: BuildConfig) -> None:
    """With ``-v``: which file set each key of ``config``."""
    for key, origin in config.origins:
        reporter().debug(f"  {key}: set by {origin}")


def _read_config(
    path: Optional[str], root: Optional[str] = None, args: Optional[argparse.Namespace] = None,
    *, project: Optional[str] = None, confine: bool = False,
) -> BuildConfig:
    """The build-task config: ``path`` over taskgraph's settings under ``root``.

    With ``confine`` (``path`` is the root's own default file) the file must
    be a regular file inside ``root`` (see ``docs/security.rst``).
    """
    from taskgraph_images.config import BuildConfig, load_config

    if root is None:
        return BuildConfig() if path is None else load_config(path)
    from taskgraph_images.graphconfig import repository_config

    return repository_config(root, path, kind_config=_kind_config(args, root), project=project,
                             confine=confine)


def _kind_config(args: Optional[argparse.Namespace], root: str) -> Optional[str]:
    """The kind file the catalog reads, from ``root``: ``--kind-config``, else ``auto``."""
    given = getattr(args, "kind_config", None)
    if given in ("none", ""):
        return None
    if given is None:
        return "auto"
    rel = os.path.relpath(os.path.join(root, str(given)), root)
    return None if rel.startswith("..") else rel.replace(os.sep, "/")


def write_output(path: Optional[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically, or to stdout when ``path`` is None or '-'.

    No URL in it keeps a ``user:password@`` (see ``docs/security.rst``).
    """
    from taskgraph_images._redact import strip_userinfo

    text = strip_userinfo(text)
    if path is None or path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from taskgraph_images._atomic import atomic_output

    with atomic_output(path) as f:
        f.write(text.encode("utf-8"))
