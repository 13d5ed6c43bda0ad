"""``taskgraph-images context|build|save|load``: images with a real Docker engine."""

from __future__ import annotations

import argparse
import os
import sys
from typing import IO, TYPE_CHECKING, Any, Optional, cast

from taskgraph_images._redact import escape
from taskgraph_images.cli._common import (
    add_catalog_arguments,
    add_command,
    add_config_argument,
    add_json_argument,
    add_output_argument,
    binary_stdout,
    is_stdout,
    load_build_config,
    load_catalog,
    load_catalog_and_config,
    note,
    note_config,
    print_json,
    refuse_options,
    reporter,
)
from taskgraph_images.cli._index import add_index_arguments, open_index
from taskgraph_images.errors import ArtifactError, InvalidValueError, TaskgraphImagesError

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.cli._report import ConsoleReporter

__all__ = ["register"]

_LOCAL_ONLY = (
    "the image is tagged {tag}: it has no VERSION file, so it is only meant to run locally "
    "and overwrites any existing image with the same name and tag"
)


def _build_arg(text: str) -> tuple[str, str]:
    """``NAME=VALUE``, or ``NAME`` alone for the value of ``$NAME`` (as docker does)."""
    key, sep, value = text.partition("=")
    if not key:
        raise argparse.ArgumentTypeError(f"invalid --build-arg {text!r}: use NAME=VALUE or NAME")
    if not sep:
        if key not in os.environ:
            raise argparse.ArgumentTypeError(
                f"--build-arg {key}: {key} is not set in the environment (use {key}=VALUE)"
            )
        value = os.environ[key]
    return key, value


def register(subparsers: Any) -> None:
    """Add the ``context``, ``build``, ``save`` and ``load`` sub-commands."""
    p = add_command(
        subparsers, "context", _context, help="write an image's build context as a deterministic tar",
        description="Write the build context of image NAME as a tar, identical to the byte "
        "on every checkout; `docker build -` accepts it.",
    )
    p.add_argument("name", metavar="NAME", help="the image (a folder of the images folder)")
    add_output_argument(p, required=True,
                        help="the tar to write (.tar, .tar.gz or .tar.zst; a plain tar on stdout)")
    p.add_argument("--compression", choices=("none", "gzip", "zstd"), default=None,
                   help="compression (default: from the file name)")
    add_catalog_arguments(p)
    add_config_argument(p)

    p = add_command(
        subparsers, "build", _build, help="build an image with the Docker engine (the old build.sh)",
        description="Build image NAME (its in-tree parents first, unless present) and tag "
        "it registry/name:version (prebuilt) or name:latest (task image).",
    )
    p.add_argument("name", metavar="NAME", help="the image to build")
    p.add_argument("--no-cache", action="store_true", help="do not use the engine's cache")
    p.add_argument("--build-arg", action="append", type=_build_arg, default=[],
                   metavar="NAME[=VALUE]",
                   help="an extra build arg (repeatable); NAME alone takes $NAME")
    p.add_argument("--record", action="store_true",
                   help="build with the in-task builder (buildah; the FROM images the "
                   "Docker engine has are taken from it), as a build task does, and "
                   "record the image and its in-tree task-image ancestors (those not yet "
                   "recorded at their digest) in the local index, under the namespaces the "
                   "plan looks up (taskgraph's with cache-keys: taskgraph), so that the next "
                   "plan reuses them")
    p.add_argument("--level", type=int, default=None,
                   help="with --record: the trust level to index the build at (default 3, "
                   "the highest: a plan at any level looks up its own level and the higher "
                   "ones, so every plan reuses it)")
    add_config_argument(p, "its cache-keys and run-task decide the digests, and with "
                        "--record its index-prefix and artifact-name")
    add_json_argument(p, "print what was built (and recorded) as JSON; the engine's log "
                      "goes to stderr")
    add_catalog_arguments(p)
    add_index_arguments(p, on_error=False)

    p = add_command(
        subparsers, "save", _save, help="save an image as a tarball (zstd-compressed or plain)",
        description="Stream `docker save TAG` into FILE: zstd-compressed for a .tar.zst "
        "name (what an image-builder task uploads as public/image.tar.zst), plain for .tar.",
    )
    p.add_argument("tag", metavar="TAG", help="the engine's image, as NAME:TAG or an id")
    add_output_argument(p, required=True, help="the tarball to write (.tar.zst or .tar; "
                        "zstd on stdout)")
    p.add_argument("--compression", choices=("none", "zstd"), default=None,
                   help="compression (default: from the file name)")
    p.add_argument("--zstd-level", type=int, default=3, metavar="N",
                   help="zstd compression level, 1-22 (default 3)")
    # --level is a trust level on every other command: refused here, with the new name.
    p.add_argument("--level", default=None, help=argparse.SUPPRESS)
    p.add_argument("--threads", type=int, default=0,
                   help="compression threads (default 0: one per core)")

    p = add_command(
        subparsers, "load", _load, help="load an image artifact into the Docker engine, optionally retagged",
        description="Load SOURCE: a .tar.zst (or .tar) file, an http(s) URL, a Taskcluster "
        "task id or an image name (looked up in the index).",
    )
    p.add_argument("source", metavar="SOURCE",
                   help="a file, a URL, a task id or an image name (see above)")
    p.add_argument("-t", "--tag", metavar="NAME:TAG", default=None,
                   help="retag the image on the fly")
    add_output_argument(p, help="write the (retagged) tar to FILE instead of loading it "
                        "(zstd-compressed for .tar.zst, plain for .tar and stdout)")
    p.add_argument("--compression", choices=("none", "zstd"), default=None,
                   help="with --output: compression (default: from the file name)")
    p.add_argument("--max-size", default="64G", metavar="SIZE",
                   help="refuse an artifact decompressing to more than SIZE (default 64G)")
    p.add_argument("--level", type=int, default=None,
                   help="for an image name: the trust level to look it up at (default 3, "
                   "the highest: only builds as trusted as a level-3 push's; a lower "
                   "level also finds its own builds)")
    add_config_argument(p, "for an image name, its cache-keys, index-prefix and "
                        "artifact-name say where the build is")
    p.add_argument("--root-url", default=None,
                   help="Taskcluster root URL for a task id (default: TASKCLUSTER_ROOT_URL)")
    add_json_argument(p, "print what was loaded as JSON (the engine's messages, the size, "
                      "the tag files rewritten)")
    add_catalog_arguments(p)
    add_index_arguments(p, on_error=False)


def _context(args: argparse.Namespace) -> int:
    from taskgraph_images.context import write_context

    catalog = load_catalog(args)
    if is_stdout(args.output):
        with binary_stdout() as out:
            write_context(catalog, args.name, out, compression=args.compression)
        return 0
    write_context(catalog, args.name, args.output, compression=args.compression)
    note(f"wrote the context of {args.name} to {args.output}")
    return 0


def _build_reporter(args: argparse.Namespace) -> ConsoleReporter:
    """The command's reporter; with --json, stdout is the JSON: the build's log
    (the engine's or buildah's output) goes to stderr."""
    build_reporter = reporter()
    if args.json:
        build_reporter.output_stream = sys.stderr
    return build_reporter


def _build(args: argparse.Namespace) -> int:
    if args.record:
        return _build_record(args)
    from taskgraph_images.builder.local import build_chain, build_image
    from taskgraph_images.images.engine import Engine

    catalog = load_catalog(args)
    image = catalog[args.name]
    refuse_options(args, _RECORD_ONLY, "applies only with --record")
    build_chain(catalog, args.name)
    engine = Engine.from_env()
    engine.ping()
    done = build_image(
        engine, catalog, args.name, nocache=args.no_cache, build_args=dict(args.build_arg),
        reporter=_build_reporter(args),
    )
    tag = catalog.local_tag(args.name)
    if not image.prebuilt:
        note(_LOCAL_ONLY.format(tag=tag))
    elif not args.json:
        print(f"built {tag}; to push it to the registry when deploying, run:")
        print(f"docker push {tag}")
    if args.json:
        print_json([{"name": b.name, "tag": b.tag, "image_id": b.image_id, "reused": b.reused}
                    for b in done])
    return 0


def _build_record(args: argparse.Namespace) -> int:
    """``build --record``: the in-task builder, parents first, each recorded in the local index.

    Each task image the image stands on is taken from the local index when
    it is recorded there at its digest, else built (by the same code a build
    task runs) on its recorded parent and recorded; prebuilt images under
    them are built from the tree.
    """
    import tempfile
    import time

    from taskgraph_images.builder.intask import TaskEnv, build_in_task, check_task
    from taskgraph_images.builder.local import build_chain
    from taskgraph_images.errors import ManifestError
    from taskgraph_images.index import find_images
    from taskgraph_images.keys.indexkeys import IndexKeys
    from taskgraph_images.manifest import manifest_file_path, parse_manifest

    if args.build_arg:
        # Extra build args are not part of the digest: the recorded image
        # would not be the one the tree describes.
        raise InvalidValueError(
            "build --record cannot take --build-arg: extra build args are not part of "
            "the digest the image would be indexed under"
        )
    index = _local_index(args)
    catalog, config = load_catalog_and_config(args)
    note_config(args.config, config)
    # Recorded where a plan with this config looks (taskgraph's namespaces
    # with cache-keys: taskgraph), as a push's build task would index it.
    keys = IndexKeys.for_config(config)
    level = 3 if args.level is None else args.level
    if catalog[args.name].prebuilt:
        raise InvalidValueError(
            f"build --record has nothing to record for {args.name!r}: a prebuilt image is "
            "referred to by its registry tag; build it without --record and push it"
        )
    build_chain(catalog, args.name)
    wanted = set(catalog.ancestors(args.name))
    chain = [n for n in catalog.order() if n in wanted and not catalog[n].prebuilt]
    engine_copy = _engine_copy()
    recorded: dict[str, str] = {}
    records: list[dict[str, Any]] = []
    store = os.fspath(index.path.parent)
    os.makedirs(store, exist_ok=True)
    build_reporter = _build_reporter(args)
    for name in [*chain, args.name]:
        digest = catalog.digest(name)
        if name != args.name:
            lookup = find_images(index, [(name, digest)], level, artifact=config.artifact_name,
                                 search=keys.search)[name]
            if lookup.reuse and lookup.found is not None:
                recorded[name] = lookup.found.task_id
                note(f"reusing {name}, recorded as task {lookup.found.task_id}")
                records.append({"name": name, "tag": catalog.local_tag(name), "digest": digest,
                                "task_id": lookup.found.task_id, "level": level,
                                "reused": True})
                continue
        parents = [p for p in catalog[name].parents if p in recorded]
        with tempfile.TemporaryDirectory(prefix=".record-", dir=store) as tmp:
            env = TaskEnv(image=name, digest=digest,
                          parent_task=recorded[parents[0]] if parents else None,
                          zstd_level=config.at(level).zstd_level,
                          artifact_path=os.path.join(tmp, "image.tar.zst"))
            check_task(catalog, env)
            build_in_task(catalog, env, index=index, build_prebuilt=True,
                          reporter=build_reporter, artifact=config.artifact_name,
                          manifest_artifact=config.manifest_artifact,
                          engine_copy=engine_copy)
            # The manifest the builder wrote beside the image goes in with it.
            written = manifest_file_path(env.artifact_path, config.manifest_artifact)
            try:
                with open(written, "rb") as f:
                    manifest = parse_manifest(f.read(), source=written)
            except OSError as e:
                raise ManifestError(f"cannot read {written}: {e.strerror}") from e
            pushdate = int(time.time())
            task_id: str = index.record_build(
                level, name, digest, pushdate, env.artifact_path, move=True,
                prefix=config.index_prefix, artifact=config.artifact_name,
                manifest=manifest, manifest_artifact=config.manifest_artifact,
                namespaces=keys.record(level, name, digest, pushdate),
            )
        recorded[name] = task_id
        records.append({"name": name, "tag": catalog.local_tag(name), "digest": digest,
                        "task_id": task_id, "level": level, "reused": False})
        if not args.json:
            print(f"recorded {name} as task {task_id} at level {level} "
                  f"in the {index.description}")
    if args.json:
        print_json(records)
    return 0


def _engine_copy() -> Any:
    """The Docker engine's copies of the ``FROM`` images, for ``build --record`` offline.

    Return a function that saves (as ``docker save``) a reference the engine has into
    a file (see :data:`taskgraph_images.builder.intask.EngineCopy`), or ``None``
    when no engine answers at ``DOCKER_HOST`` (then buildah pulls them).
    """
    from taskgraph_images.errors import DockerError
    from taskgraph_images.images.engine import Engine

    engine = Engine.from_env()
    try:
        engine.ping()
    except DockerError as e:
        reporter().debug(f"the FROM images come from their registries: {e}")
        return None

    def save(reference: str, path: str) -> bool:
        if not engine.exists(reference):
            return False
        with open(path, "wb") as f:
            for chunk in engine.save(reference):
                f.write(chunk)
        return True

    return save


#: ``build`` options that only ``--record`` uses (``--config`` is not one: its
#: run-task and cache-keys shape the context that is built).
_RECORD_ONLY = ("level", "index", "index_timeout", "index_retries")


#: ``load`` options that only a task id or an image name (not a file or URL) uses.
_NAMED_ONLY = ("index", "level", "config", "root_url", "index_timeout", "index_retries")


def _local_index(args: argparse.Namespace) -> Any:
    from taskgraph_images.index import LocalIndex

    index = open_index(args)
    if not isinstance(index, LocalIndex):
        raise InvalidValueError(
            f"build --record writes to the local index only, not the {index.description}"
        )
    return index


def _compression(output: str, given: Optional[str], *, stdout: str) -> str:
    """The format of an image tarball written to ``output``: ``given`` (``--compression``),
    else what the file name says (``stdout`` for ``-``).

    :raises ArtifactError: for a name of another format than ``given``, or a name that
        says none when none is given.
    """
    from taskgraph_images.images.compression import compression_for_name

    if is_stdout(output):
        return given or stdout
    try:
        by_name = compression_for_name(output)
    except ArtifactError:
        if given is None:
            raise
        return given  # the name says nothing: --compression decides
    if given is not None and given != by_name:
        raise ArtifactError(
            f"--compression {given} contradicts the name {output!r}, which means "
            f"{'a plain tar' if by_name == 'none' else 'zstd'}"
        )
    return by_name


def _save(args: argparse.Namespace) -> int:
    from taskgraph_images.images.artifacts import save_image
    from taskgraph_images.images.engine import Engine

    if args.level is not None:
        raise InvalidValueError(
            "save --level is no more: --level is the trust level on the other commands; "
            f"the zstd level is --zstd-level (--zstd-level {args.level})"
        )
    to_stdout = is_stdout(args.output)
    compression = _compression(args.output, args.compression, stdout="zstd")
    engine = Engine.from_env()
    options: dict[str, Any] = {
        "level": args.zstd_level, "threads": args.threads, "reporter": reporter(),
        "compression": compression,
    }
    if to_stdout:
        with binary_stdout() as out:
            counted = _Counted(out)
            # A file object to save_image: only write and flush are called.
            size = save_image(engine, args.tag, cast("IO[bytes]", counted), **options)
        where, written = "stdout", counted.count
    else:
        size = save_image(engine, args.tag, args.output, **options)
        where, written = args.output, os.path.getsize(args.output)
    note(f"saved {args.tag} to {where}: {_sizes(size, written, compression)}")
    return 0


def _sizes(size: int, written: int, compression: str) -> str:
    """``1.0 GiB, 256.0 MiB zstd-compressed (25%)``, or ``1.0 GiB, a plain tar``."""
    from taskgraph_images.progress import format_size

    if compression != "zstd":
        return f"{format_size(size)}, a plain tar"
    ratio = f" ({100 * written / size:.0f}%)" if size else ""
    return f"{format_size(size)}, {format_size(written)} zstd-compressed{ratio}"


class _Counted:
    """A binary stream that counts the bytes written through it (stdout's size)."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.count = 0

    def write(self, data: Any) -> int:
        n = len(memoryview(data).cast("B"))
        self._out.write(data)
        self.count += n
        return n

    def flush(self) -> None:
        self._out.flush()


def _load(args: argparse.Namespace) -> int:
    from taskgraph_images.images.artifacts import load_image, parse_size
    from taskgraph_images.images.source import looks_like_file

    max_size = parse_size(args.max_size)
    source: str = args.source
    if args.output is None:
        refuse_options(args, ["compression"], "applies only with --output")
        compression = None
    else:
        if args.json and is_stdout(args.output):
            raise InvalidValueError("--json cannot go with -o -: stdout is the tar")
        compression = _compression(args.output, args.compression, stdout="none")
    if looks_like_file(source) and not os.path.exists(source):
        raise ArtifactError(f"{source}: no such file")
    catalog: Optional[ImageCatalog] = None
    index: Any = None
    if os.path.exists(source) or source.startswith(("http://", "https://")):
        refuse_options(args, _NAMED_ONLY, "applies only to a task id or an image name")
    else:
        try:
            catalog, config = load_catalog_and_config(args)
        except TaskgraphImagesError:
            catalog = None  # not in a repository: the source must be a task id
        index = open_index(args)
    if catalog is None:
        config = load_build_config(args.config)
    else:
        note_config(args.config, config)
    from taskgraph_images.keys.indexkeys import IndexKeys

    options: dict[str, Any] = {
        "tag": args.tag, "max_size": max_size, "index": index, "catalog": catalog,
        "level": 3 if args.level is None else args.level, "root_url": args.root_url,
        "reporter": reporter(),
        "artifact": config.artifact_name, "prefix": config.index_prefix,
        # An image name is looked up where a plan with this config looks.
        "search": IndexKeys.for_config(config).search,
    }
    if args.output is not None and is_stdout(args.output):
        with binary_stdout() as out:
            result = load_image(source, output=out, compression=compression, **options)
    else:
        result = load_image(source, output=args.output, compression=compression, **options)
    if args.json:
        print_json({"messages": list(result.messages), "compressed": result.compressed,
                    "size": result.size, "retagged": list(result.retagged)})
        return 0
    for message in result.messages:
        if args.output is None:
            # The engine's "Loaded image: ...", naming tags the archive chose.
            print(escape(message))
        else:
            note(message)
    return 0
