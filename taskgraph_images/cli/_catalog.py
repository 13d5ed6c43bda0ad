"""``list``, ``hash`` and ``digest``: what the catalog knows about each image."""

from __future__ import annotations

import argparse
from typing import Any, Callable

from taskgraph_images.cli._common import (
    add_catalog_arguments,
    add_command,
    add_config_argument,
    add_json_argument,
    load_catalog,
    print_json,
    short_digest,
)

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``list``, ``hash`` and ``digest`` sub-commands."""
    p = add_command(
        sub, "list", run_list,
        help="list the images, their kind, version, registry, parent and digest",
        description="List every image of the images folder.",
    )
    add_catalog_arguments(p)
    add_config_argument(p)
    add_json_argument(p, "one JSON object per image, full hashes")

    for name, func, what, description in (
        ("hash", run_hash, "context hash",
         "Print 'NAME CONTEXT_HASH' for each image (all images when none is named): the "
         "seed's, or taskgraph's with cache-keys: taskgraph in the --config file. The "
         "index uses the digest, which `digest` prints."),
        ("digest", run_digest, "digest",
         "Print the digest (what the index is searched by) of image NAME alone, as "
         "taskgraph's `image-digest NAME` does; with several names or none (all images), "
         "'NAME DIGEST' lines. In a taskgraph repository whose docker-image kind runs "
         "taskgraph's transforms (or with cache-keys: taskgraph in the --config file), "
         "taskgraph's digest, the one the plan looks up; else this library's own."),
    ):
        p = sub.add_parser(name, help=f"print the {what} of images", description=description)
        add_catalog_arguments(p)
        add_config_argument(p)
        p.add_argument("names", nargs="*", metavar="NAME", help="image names (default: all)")
        add_json_argument(p, f"a JSON object of name to {what}")
        p.set_defaults(func=func)


def run_list(args: argparse.Namespace) -> int:
    catalog = load_catalog(args)
    if args.json:
        records: list[dict[str, Any]] = []
        for name in catalog.names():
            image = catalog[name]
            records.append(
                {
                    "name": name,
                    "kind": "prebuilt" if image.prebuilt else "task",
                    "path": image.path,
                    "version": image.version,
                    "registry": image.registry,
                    "parent": image.parent,
                    "parents": list(image.parents),
                    "base": image.base,
                    "env_files": list(image.env_files),
                    "args": dict(image.args),
                    "includes": list(image.includes),
                    "symbol": image.symbol,
                    "cache": image.cache,
                    "cache_keys": catalog.cache_keys,
                    "reference": catalog.local_tag(name),
                    "context_hash": catalog.context_hash(name),
                    "digest": catalog.digest(name),
                }
            )
        print_json(records)
        return 0
    header = ("IMAGE", "KIND", "VERSION", "REGISTRY", "PARENT", "DIGEST")
    rows = [header]
    for name in catalog.names():
        image = catalog[name]
        rows.append(
            (
                name,
                "prebuilt" if image.prebuilt else "task",
                image.version or "-",
                image.registry or "-",
                ",".join(image.parents) or "-",
                short_digest(catalog.digest(name)),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def _print_values(args: argparse.Namespace, value: Callable[[Any, str], str]) -> None:
    """Print ``value(catalog, name)`` for the images named (all by default)."""
    catalog = load_catalog(args)
    names: list[str] = args.names or catalog.names()
    for name in names:
        catalog[name]  # unknown names fail before any output
    values = {name: value(catalog, name) for name in names}
    if args.json:
        print_json(values)
    elif args.command == "digest" and len(args.names) == 1:
        print(values[names[0]])  # as taskgraph's image-digest: the digest alone
    else:
        for name, text in values.items():
            print(f"{name} {text}")


def run_hash(args: argparse.Namespace) -> int:
    _print_values(args, lambda catalog, name: catalog.context_hash(name))
    return 0


def run_digest(args: argparse.Namespace) -> int:
    _print_values(args, lambda catalog, name: catalog.digest(name))
    return 0
