"""``list`` and ``hash``: what the catalog knows about each image."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from taskgraph_images.cli._common import add_catalog_arguments, add_config_argument, load_catalog

__all__ = ["register"]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``list`` and ``hash`` sub-commands."""
    p = sub.add_parser(
        "list",
        help="list the images, their kind, version, registry, parent and digest",
        description="List every image of the images folder.",
    )
    add_catalog_arguments(p)
    add_config_argument(p)
    p.add_argument("--json", action="store_true", help="one JSON object per image, full hashes")
    p.set_defaults(func=run_list)

    p = sub.add_parser(
        "hash",
        help="print the context hash of images (the seed's, or taskgraph's with --config)",
        description="Print 'NAME CONTEXT_HASH' for each image (all images when none is named).",
    )
    add_catalog_arguments(p)
    add_config_argument(p)
    p.add_argument("names", nargs="*", metavar="NAME", help="image names (default: all)")
    p.set_defaults(func=run_hash)


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
        json.dump(records, sys.stdout, indent=2)
        sys.stdout.write("\n")
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
                catalog.digest(name)[:12],
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    return 0


def run_hash(args: argparse.Namespace) -> int:
    catalog = load_catalog(args)
    names = args.names or catalog.names()
    for name in names:
        catalog[name]  # unknown names fail before any output
    for name in names:
        print(f"{name} {catalog.context_hash(name)}")
    return 0
