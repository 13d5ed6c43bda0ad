"""Building catalog images locally, in a Docker engine: an image's in-tree
ancestors first, each from the context the catalog writes, tagged by its
name.

The engine itself is spoken to through :class:`~taskgraph_images.images.engine.Engine`.
"""

from __future__ import annotations

from typing import IO, TYPE_CHECKING, Mapping, Optional

import attrs

from taskgraph_images.errors import ImageBuildError
from taskgraph_images.names import docker_repository_problem

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.images.engine import Engine
    from taskgraph_images.progress import Reporter

__all__ = ["Built", "build_chain", "build_image"]


@attrs.frozen
class Built:
    """One image :func:`build_image` dealt with."""

    name: str
    tag: str
    image_id: str
    reused: bool  # already present locally (an ancestor), not built


def build_chain(catalog: ImageCatalog, name: str, *, by: str = "locally") -> list[str]:
    """Return the images a local build of ``name`` may build: its in-tree ancestors, then it.

    :raises ImageBuildError: when one of them has a name Docker refuses as a
        repository name (a local build, or buildah in a build task: ``by``,
        tags each image by its name).
    """
    wanted = set(catalog.ancestors(name))
    chain = [n for n in catalog.order() if n in wanted] + [name]
    for current in chain:
        problem = docker_repository_problem(current)
        if problem is not None:
            raise ImageBuildError(
                f"image {current!r} cannot be built {by}: Docker tags an image by its name, "
                f"and {problem} (Docker repository names are lower case)"
            )
    return chain


def build_image(
    engine: Engine,
    catalog: ImageCatalog,
    name: str,
    *,
    nocache: bool = False,
    build_args: Optional[Mapping[str, str]] = None,
    reuse_present: bool = True,
    reporter: Optional[Reporter] = None,
) -> list[Built]:
    """Build image ``name`` of ``catalog``, its in-tree ancestors first when missing.

    Each image is tagged :meth:`~taskgraph_images.catalog.ImageCatalog.local_tag`
    (``registry/name:version`` for a prebuilt image, ``name:latest`` else).
    An ancestor already present in the engine is reused, unless
    ``reuse_present`` is false: then every ancestor is built from the tree
    (the engine's layer cache keeps that cheap), so that what was built
    matches the digests of the tree, as recording a build needs. Build args are the
    image's kind-config args, ``DOCKER_IMAGE_PARENT`` (the configured
    parent's local tag) and ``build_args`` (which win). Everything it tells
    goes to ``reporter``, the one channel: a note of each image reused, a
    note of each image built with the size of the context it sends, the
    sending itself as a transfer and the engine's build log as output. Returns what was done, ancestors first.

    :raises ImageBuildError: with the engine's error, or when an image of the
        chain has a name Docker refuses as a repository name.
    :raises ContextError: when the context cannot be written.
    """
    import tempfile

    from taskgraph_images.context import write_context
    from taskgraph_images.progress import Meter, MeteredReader, format_size

    chain = build_chain(catalog, name)
    done: list[Built] = []
    for current in chain:
        tag = catalog.local_tag(current)
        if current != name and reuse_present:
            found = engine.inspect(tag)
            if found is not None:
                if reporter is not None:
                    reporter.note(f"reusing {tag}, already present in the Docker engine")
                done.append(Built(current, tag, str(found.get("Id", "")), True))
                continue
        image = catalog[current]
        args = dict(image.args)
        if image.config_parent is not None:
            args["DOCKER_IMAGE_PARENT"] = catalog.local_tag(image.config_parent)
        args.update(build_args or {})
        with tempfile.TemporaryFile() as tar:
            write_context(catalog, current, tar, context=catalog.context(current))
            size = tar.tell()
            tar.seek(0)
            body: IO[bytes] = tar
            if reporter is not None:
                reporter.note(f"building {tag}: sending context ({format_size(size)})")
                meter = Meter(reporter, f"sending the context of {tag}", size)
                body = MeteredReader(tar, meter)  # type: ignore[assignment]
            image_id = engine.build(
                body, [tag], buildargs=args, nocache=nocache,
                on_output=reporter.output if reporter is not None else None,
            )
        done.append(Built(current, tag, image_id, False))
    return done
