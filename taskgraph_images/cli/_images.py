"""``taskgraph-images context|build|save|load``: images with a real Docker engine."""

from __future__ import annotations

import argparse
import os
import sys
from typing import TYPE_CHECKING, Any, Optional

from taskgraph_images.cli._common import add_catalog_arguments, load_build_config, load_catalog, note
from taskgraph_images.cli._index import add_index_arguments, open_index
from taskgraph_images.errors import InvalidValueError, TaskgraphImagesError

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.config import BuildConfig

__all__ = ["register"]

_LOCAL_ONLY = (
    "the image is tagged {tag}: it has no VERSION file, so it is only meant to run locally "
    "and overwrites any existing image with the same name and tag"
)


def _build_arg(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"invalid --build-arg {text!r}: use NAME=VALUE")
    return key, value


def register(subparsers: Any) -> None:
    """Add the ``context``, ``build``, ``save`` and ``load`` sub-commands."""
    p = subparsers.add_parser(
        "context", help="write an image's build context as a deterministic tar",
        description="Write the build context of image NAME as a tar, identical to the byte "
        "on every checkout; `docker build -` accepts it.",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("-o", "--output", required=True, metavar="FILE",
                   help="the tar to write (.tar, .tar.gz or .tar.zst)")
    p.add_argument("--compression", choices=("none", "gzip", "zstd"), default=None,
                   help="compression (default: from the file name)")
    add_catalog_arguments(p)
    p.set_defaults(func=_context)

    p = subparsers.add_parser(
        "build", help="build an image with the Docker engine (the old build.sh)",
        description="Build image NAME (its in-tree parents first, unless present) and tag "
        "it registry/name:version (prebuilt) or name:latest (task image).",
    )
    p.add_argument("name", metavar="NAME")
    p.add_argument("--no-cache", action="store_true", help="do not use the engine's cache")
    p.add_argument("--build-arg", action="append", type=_build_arg, default=[],
                   metavar="NAME=VALUE", help="an extra build arg (repeatable)")
    p.add_argument("--record", action="store_true",
                   help="save the image and its in-tree task-image ancestors (rebuilt from "
                   "the tree) into the local index's artifact store and index them, so that "
                   "the next plan reuses them")
    p.add_argument("--level", type=int, default=3,
                   help="with --record: the level to index the build at (default 3)")
    p.add_argument("--config", metavar="FILE",
                   help="with --record: the build-task config whose index-prefix and "
                   "artifact-name the plan uses (see docs/tasks.rst; default: "
                   "taskcluster/taskgraph-images.yml under the root when present)")
    add_catalog_arguments(p)
    add_index_arguments(p)
    p.set_defaults(func=_build)

    p = subparsers.add_parser(
        "save", help="save an image as a zstd-compressed tarball",
        description="Stream `docker save TAG` through zstd into FILE (what an image-builder "
        "task uploads as public/image.tar.zst).",
    )
    p.add_argument("tag", metavar="TAG")
    p.add_argument("-o", "--output", required=True, metavar="FILE")
    p.add_argument("--level", type=int, default=3, help="zstd level, 1-22 (default 3)")
    p.add_argument("--threads", type=int, default=0,
                   help="compression threads (default 0: one per core)")
    p.set_defaults(func=_save)

    p = subparsers.add_parser(
        "load", help="load an image artifact into the Docker engine, optionally retagged",
        description="Load SOURCE: a .tar.zst (or .tar) file, an http(s) URL, a Taskcluster "
        "task id or an image name (looked up in the index).",
    )
    p.add_argument("source", metavar="SOURCE")
    p.add_argument("-t", "--tag", metavar="NAME:TAG", default=None,
                   help="retag the image on the fly")
    p.add_argument("--output", metavar="FILE", default=None,
                   help="write the (retagged) tar to FILE instead of loading it "
                   "(zstd-compressed when FILE ends in .zst)")
    p.add_argument("--max-size", default="64G", metavar="SIZE",
                   help="refuse an artifact decompressing to more than SIZE (default 64G)")
    p.add_argument("--level", type=int, default=3,
                   help="for an image name: the level to look it up at (default 3)")
    p.add_argument("--config", metavar="FILE",
                   help="the build-task config whose index-prefix and artifact-name the plan "
                   "uses (see docs/tasks.rst; default: taskcluster/taskgraph-images.yml under "
                   "the root when present)")
    p.add_argument("--root-url", default=None,
                   help="Taskcluster root URL for a task id (default: TASKCLUSTER_ROOT_URL)")
    add_catalog_arguments(p)
    add_index_arguments(p)
    p.set_defaults(func=_load)


def _context(args: argparse.Namespace) -> int:
    from taskgraph_images.context import write_context

    catalog = load_catalog(args)
    write_context(catalog, args.name, args.output, compression=args.compression)
    note(f"wrote the context of {args.name} to {args.output}")
    return 0


def _print(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def _build(args: argparse.Namespace) -> int:
    from taskgraph_images.docker import Engine, build_image

    catalog = load_catalog(args)
    image = catalog[args.name]
    index = None
    if args.record:
        if args.build_arg:
            # Extra build args are not part of the digest: the recorded image
            # would not be the one the tree describes.
            raise InvalidValueError(
                "build --record cannot take --build-arg: extra build args are not part of "
                "the digest the image would be indexed under"
            )
        index = _local_index(args)
    config = load_build_config(args.config, catalog.root) if args.record else None
    engine = Engine.from_env()
    engine.ping()
    # With --record, ancestors are built from the tree too (not taken from
    # whatever the engine has under their tag) and recorded with the image:
    # the plan reuses an image only when its in-tree parents are reused too.
    done = build_image(
        engine, catalog, args.name, nocache=args.no_cache, build_args=dict(args.build_arg),
        on_output=_print, on_note=note, reuse_present=index is None,
    )
    tag = catalog.local_tag(args.name)
    if image.prebuilt:
        print(f"built {tag}; to push it to the registry when deploying, run:")
        print(f"docker push {tag}")
    else:
        note(_LOCAL_ONLY.format(tag=tag))
    if index is not None:
        for built in done:
            if catalog[built.name].prebuilt:
                continue  # referred to by its registry tag, never looked up
            assert config is not None
            task_id = _record(engine, catalog, built.name, index, args.level, config)
            print(f"recorded {built.name} as task {task_id} at level {args.level} "
                  f"in the {index.description}")
    return 0


def _local_index(args: argparse.Namespace) -> Any:
    from taskgraph_images.index import LocalIndex

    index = open_index(args)
    if not isinstance(index, LocalIndex):
        raise InvalidValueError(
            f"build --record writes to the local index only, not the {index.description}"
        )
    return index


def _record(
    engine: Any, catalog: ImageCatalog, name: str, index: Any, level: int, config: BuildConfig
) -> str:
    import tempfile
    import time

    from taskgraph_images.artifacts import save_image
    from taskgraph_images.manifest import build_manifest

    manifest = build_manifest(catalog, name)
    store = os.fspath(index.path.parent)
    os.makedirs(store, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".record-", dir=store) as tmp:
        path = os.path.join(tmp, "image.tar.zst")
        save_image(engine, catalog.local_tag(name), path)
        task_id: str = index.record_build(
            level, name, catalog.digest(name), int(time.time()), path, move=True,
            prefix=config.index_prefix, artifact=config.artifact_name,
            manifest=manifest, manifest_artifact=config.manifest_artifact,
        )
    return task_id


def _save(args: argparse.Namespace) -> int:
    from taskgraph_images.artifacts import Progress, save_image
    from taskgraph_images.docker import Engine

    size = save_image(
        Engine.from_env(), args.tag, args.output, level=args.level, threads=args.threads,
        progress=Progress(f"saving {args.tag}"),
    )
    note(f"saved {args.tag} ({size} bytes uncompressed) to {args.output}")
    return 0


def _load(args: argparse.Namespace) -> int:
    from taskgraph_images.artifacts import Progress, load_image, parse_size

    max_size = parse_size(args.max_size)
    catalog: Optional[ImageCatalog] = None
    index: Any = None
    source: str = args.source
    if not os.path.exists(source) and not source.startswith(("http://", "https://")):
        try:
            catalog = load_catalog(args)
        except TaskgraphImagesError:
            catalog = None  # not in a repository: the source must be a task id
        index = open_index(args)
    config = load_build_config(args.config, catalog.root if catalog is not None else None)
    result = load_image(
        source, tag=args.tag, output=args.output, max_size=max_size, index=index,
        catalog=catalog, level=args.level, root_url=args.root_url,
        progress=Progress(f"loading {os.path.basename(source)}"),
        artifact=config.artifact_name, prefix=config.index_prefix,
    )
    for message in result.messages:
        print(message)
    return 0
