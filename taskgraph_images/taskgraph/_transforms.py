"""Our ``docker-image`` transform for taskgraph: its graph, computed with our catalog and keys.

A kind's ``transforms:`` entry ``taskgraph_images.taskgraph:transforms``
names :func:`transforms`, which taskgraph calls as it calls each entry:
with its ``TransformConfig`` and the loader's entries, expecting the task
descriptions back. It stands where ``taskgraph.transforms.docker_image``
stood, before taskgraph's ``cached_tasks`` and ``task`` transforms, and
gives them the same descriptions (:func:`~taskgraph_images.taskgraph._describe.describe`),
so the graph is the same. Underneath:

* every entry is read by :func:`~taskgraph_images.taskgraph._kind.read_task`:
  a key is honoured or refused in one line naming the kind file and task;
* the images are an :class:`~taskgraph_images.catalog.ImageCatalog` of the
  entries (our Dockerfile parser, includes checked to stay in the
  repository, parents resolved), keyed by taskgraph's recipe;
* context hashes come from :mod:`taskgraph_images.keys.tar` (no
  archive built), and when the decision writes artifacts each context is
  written, in the same pass, to ``docker-contexts/NAME.tar.gz``, byte for
  byte what taskgraph writes;
* ``taskgraph.fast`` skips the catalog and the hashing, as taskgraph skips
  its own, and refuses to write artifacts, as taskgraph does.

Nothing of taskgraph is imported until taskgraph calls the transform.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import posixpath
from typing import TYPE_CHECKING, Any, Iterable, Iterator, Optional

from taskgraph_images.errors import ConfigError
from taskgraph_images.taskgraph._describe import (
    CONTEXTS_DIR,
    InTaskBuilder,
    Push,
    context_file,
    describe,
)
from taskgraph_images.taskgraph._kind import KindTask, read_task

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.catalog import ImageCatalog

__all__ = ["FAST_CONTEXT_HASH", "PAYLOAD_ENTRY", "payload", "transforms"]

logger = logging.getLogger(__name__)

#: The context hash of every image under ``taskgraph.fast`` (taskgraph's).
FAST_CONTEXT_HASH = "0" * 40
#: Where taskgraph's images live, from the repository root.
IMAGES_DIR = "taskcluster/docker"


def transforms(config: Any, tasks: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """The ``docker-image`` task descriptions for taskgraph's loader entries ``tasks``.

    ``config`` is taskgraph's ``TransformConfig``.

    :raises ConfigError: for an entry taskgraph's schema refuses, a package
        no ``packages`` task provides, or ``taskgraph.fast`` with artifacts.
    :raises CatalogError: for an image folder, Dockerfile or context that
        cannot be used (naming it).
    """
    import taskgraph  # loaded by now in a decision

    fast = bool(taskgraph.fast)
    write = bool(config.write_artifacts)
    kind_path = _kind_path(config)
    entries = [read_task(task, kind_path) for task in tasks]
    if fast and write:
        raise ConfigError(f"{kind_path}: cannot write the docker-image contexts as artifacts "
                          "under taskgraph.fast (no context is hashed then)")
    _check_packages(config, entries)
    push = Push.from_taskgraph(config.params, config.graph_config,
                               importlib.util.find_spec("orjson") is not None)
    root = os.path.dirname(config.graph_config.taskcluster_yml)
    builder = _builder(config, root, kind_path, entries)
    if fast:
        for entry in entries:
            yield describe(entry, push, FAST_CONTEXT_HASH, cached=False, builder=builder,
                           digest=FAST_CONTEXT_HASH)
        return
    from taskgraph_images.catalog import ImageCatalog

    run_task = os.path.join(os.path.dirname(taskgraph.__file__), "run-task")
    catalog = ImageCatalog.from_configs(
        root, {entry.name: entry.image_config() for entry in entries}, images_dir=IMAGES_DIR,
        kind_config=os.path.join(root, kind_path, "kind.yml"), run_task=run_task,
        cache_keys="taskgraph", taskgraph_builder=builder.image if builder else None)
    if write:
        os.makedirs(CONTEXTS_DIR, exist_ok=True)
    hashes = _context_hashes(catalog, [entry.name for entry in entries], write)
    for entry in entries:
        # our builder checks the tree's digest against the task's (cached or not)
        digest = catalog.digest(entry.name) if builder is not None else None
        yield describe(entry, push, hashes[entry.name], cached=entry.cache, builder=builder,
                       digest=digest)


def payload(config: Any, tasks: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """After taskgraph's ``task`` transform: what our builder's tasks need and it cannot say.

    Only with ``builder: taskgraph-images`` (see :func:`_builder`); other
    tasks pass as they are.
    """
    from taskgraph_images.taskgraph._describe import payload as add

    for task in tasks:
        yield add(task)


#: The kind's ``transforms:`` entry of :func:`payload`.
PAYLOAD_ENTRY = "taskgraph_images.taskgraph:payload"


def _builder(config: Any, root: str, kind_path: str,
             entries: list[KindTask]) -> Optional[InTaskBuilder]:
    """Our in-task builder when the build-task config says ``builder: taskgraph-images``."""
    from taskgraph_images.config import DEFAULT_CONFIG_PATH, find_config, load_config

    path = find_config(root)
    if path is None:
        return None
    build = load_config(path)
    if build.builder != "taskgraph-images":
        return None
    where = posixpath.join(kind_path, "kind.yml")
    entries_of_kind = [str(t) for t in config.config.get("transforms", [])]
    if entries_of_kind[-1:] != [PAYLOAD_ENTRY]:
        raise ConfigError(
            f"{where}: {DEFAULT_CONFIG_PATH} says builder: taskgraph-images, whose tasks need "
            f"{PAYLOAD_ENTRY} as the last of the kind's transforms (after "
            "taskgraph.transforms.task:transforms)")
    for entry in entries:
        if entry.packages:
            raise ConfigError(
                f"{entry.source}: task {entry.name!r}: packages are installed by taskgraph's "
                f"image builder, not ours ({DEFAULT_CONFIG_PATH} says builder: "
                "taskgraph-images)")
    return InTaskBuilder.from_config(build, DEFAULT_CONFIG_PATH)


def _context_hashes(catalog: ImageCatalog, names: list[str], write: bool) -> dict[str, str]:
    """Every image's context hash, the contexts written too when ``write``.

    Images are hashed (and their tarballs compressed) on one thread per
    core: reading, sha256 and zlib run without the GIL, and each image is a
    chain of its own.
    """
    from concurrent.futures import ThreadPoolExecutor

    from taskgraph_images.keys.tar import cores

    def one(name: str) -> str:
        return _write_context(catalog, name) if write else catalog.context_hash(name)

    jobs = min(cores(), len(names))
    if jobs <= 1:
        return {name: one(name) for name in names}
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="docker-image-context") as pool:
        return dict(zip(names, pool.map(one, names)))


def _kind_path(config: Any) -> str:
    """The kind's folder from the repository root (where taskgraph's own is)."""
    path = str(config.path)
    rel = os.path.relpath(path, os.path.dirname(str(config.graph_config.root_dir)))
    return posixpath.join(*rel.split(os.sep)) if not rel.startswith("..") else path


def _check_packages(config: Any, entries: list[KindTask]) -> None:
    """Every package an image names must be a task of a ``packages`` kind dependency."""
    available = {task.label.replace("packages-", "")
                 for task in config.kind_dependencies_tasks.values() if task.kind == "packages"}
    for entry in entries:
        for package in entry.packages:
            if package not in available:
                raise ConfigError(
                    f"{entry.source}: task {entry.name!r}: package {package!r} has no task "
                    f"packages-{package} (add the packages kind to kind-dependencies)")


def _write_context(catalog: ImageCatalog, name: str) -> str:
    """Write ``docker-contexts/NAME.tar.gz`` as taskgraph does; return the context hash."""
    import gzip

    from taskgraph_images._atomic import atomic_output
    from taskgraph_images.errors import ContextError
    from taskgraph_images.keys.tar import DEFAULT_MTIME, write_context_tar

    path = context_file(name)
    logger.info(f"Writing {path} for docker image {name}")
    files = catalog.context(name).taskgraph_files()
    try:
        with atomic_output(path) as out, gzip.GzipFile(
                filename=os.path.basename(path), mode="wb", fileobj=out, compresslevel=9,
                mtime=DEFAULT_MTIME) as gz:
            return write_context_tar(files, gz.write)
    except OSError as e:
        raise ContextError(f"cannot write the context of image {name!r} to {path}: "
                           f"{e.strerror or e}") from None
