"""Arguments and helpers shared by several sub-commands."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Optional

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.config import BuildConfig

__all__ = [
    "add_catalog_arguments",
    "default_root",
    "load_build_config",
    "load_catalog",
    "note",
    "write_output",
]

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


def load_catalog(args: argparse.Namespace) -> ImageCatalog:
    """Load the catalog the catalog arguments describe."""
    from taskgraph_images.catalog import ImageCatalog

    root = args.root or default_root()
    kwargs = {}
    if args.images_dir is not None:
        kwargs["images_dir"] = args.images_dir
    if getattr(args, "kind_config", None) is not None:
        kwargs["kind_config"] = args.kind_config
    from taskgraph_images._hashcache import hasher_for_option

    hasher = hasher_for_option(getattr(args, "hash_cache", None))
    return ImageCatalog.load(root, **kwargs, hasher=hasher)


def load_build_config(path: Optional[str], root: Optional[str] = None) -> BuildConfig:
    """Read the build-task config at ``path``; without one, ``root``'s default file if any.

    ``path`` ``none`` (or no path and no default file) gives the defaults.
    """
    from taskgraph_images.config import BuildConfig, find_config, load_config

    if path is None and root is not None:
        path = find_config(root)
        if path is not None:
            note(f"using the build-task config {path}")
    return load_config(path) if path and path != "none" else BuildConfig()


def note(message: str) -> None:
    """Tell the user something that is not the command's output (stderr)."""
    print(f"taskgraph-images: {message}", file=sys.stderr)


def write_output(path: Optional[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically, or to stdout when ``path`` is None or '-'."""
    if path is None or path == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
        return
    from taskgraph_images._atomic import atomic_output

    with atomic_output(path) as f:
        f.write(text.encode("utf-8"))
