"""The in-task builder: what a build task's ``payload.command`` runs.

``taskgraph-images build-in-task`` reads the task's environment
(:func:`read_env`, pure), checks out the revision (:func:`checkout`), loads
the catalog with the plan's config, recomputes the image's digest and
refuses to build when it is not the one the task's index routes claim,
fetches the in-tree parent image from the parent task's artifact and checks
it is that parent (:func:`fetch_parent`), builds with buildah on top of it
(never rebuilding an ancestor) and streams the image through zstd to the
artifact path, which appears only when complete (:func:`build_in_task`).

The variables have the names of :data:`~taskgraph_images.config.DEFAULT_ENV_NAMES`
(:data:`ENV_DEFAULTS`); a config
file that renames them is read first, from the variable
``TASKGRAPH_IMAGES_CONFIG`` (the name of the ``config`` role is not itself
configurable, nor are the repository and revision, read before the checkout).
"""

from __future__ import annotations

import json
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
import tempfile
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

import attrs

from taskgraph_images.builder.buildah import DIGEST_LABEL, Buildah, LineCallback, push_archive, run
from taskgraph_images.config import DEFAULT_ENV_NAMES
from taskgraph_images.errors import ArtifactError, ImageBuildError, InvalidValueError
from taskgraph_images.manifest import DEFAULT_MANIFEST_ARTIFACT, write_build_manifest

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.config import BuildConfig
    from taskgraph_images.progress import Reporter

__all__ = [
    "DEFAULT_ARTIFACT_PATH",
    "ENV_DEFAULTS",
    "Built",
    "TaskEnv",
    "archive_labels",
    "build_in_task",
    "check_task",
    "checkout",
    "env_names",
    "fetch_parent",
    "images_dir_of",
    "prebuilt_ancestors",
    "read_env",
]

#: Where the builder writes the artifact when the task does not say.
DEFAULT_ARTIFACT_PATH = "/builds/worker/artifacts/image.tar.zst"

#: Default variable names of the roles the builder reads (the config's win).
ENV_DEFAULTS: Mapping[str, str] = DEFAULT_ENV_NAMES


@attrs.frozen
class TaskEnv:
    """What a build task's environment asks the builder for."""

    image: str
    digest: str
    parent_task: Optional[str] = None
    build_args: Optional[tuple[tuple[str, str], ...]] = None
    zstd_level: int = 3
    artifact_path: str = DEFAULT_ARTIFACT_PATH
    context_path: Optional[str] = None


def env_names(config: Optional[BuildConfig] = None) -> dict[str, str]:
    """Return the variable name of every role: the config's, else :data:`ENV_DEFAULTS`."""
    names = dict(ENV_DEFAULTS)
    if config is not None:
        names.update(dict(config.env_names))
    return names


def _required(environ: Mapping[str, str], name: str) -> str:
    value = environ.get(name, "")
    if not value:
        raise InvalidValueError(f"the build task's environment has no {name}")
    return value


def read_env(
    environ: Mapping[str, str], names: Mapping[str, str], *, artifact_path: str = DEFAULT_ARTIFACT_PATH
) -> TaskEnv:
    """Read what to build from ``environ``, with the variable ``names`` by role.

    ``artifact_path`` is the path used when the task names none.

    :raises InvalidValueError: naming the variable that is missing or invalid.
    """
    args: Optional[tuple[tuple[str, str], ...]] = None
    raw_args = environ.get(names["build-args"])
    if raw_args:
        try:
            decoded = json.loads(raw_args)
        except ValueError as e:
            raise InvalidValueError(f"{names['build-args']} is not JSON: {e}") from e
        if not isinstance(decoded, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in decoded.items()
        ):
            raise InvalidValueError(
                f"{names['build-args']} must be a JSON object of strings, not {raw_args!r}"
            )
        args = tuple(sorted(decoded.items()))
    level_text = environ.get(names["zstd-level"], "3")
    try:
        level = int(level_text)
    except ValueError:
        level = 0
    if not 1 <= level <= 22:
        raise InvalidValueError(
            f"{names['zstd-level']}={level_text!r} is not a zstd level: use 1 to 22"
        )
    path = environ.get(names["artifact-path"]) or artifact_path
    if not os.path.isabs(path):
        raise InvalidValueError(f"{names['artifact-path']}={path!r} is not an absolute path")
    return TaskEnv(
        image=_required(environ, names["image-name"]),
        digest=_required(environ, names["hash"]),
        parent_task=environ.get(names["parent-task"]) or None,
        build_args=args,
        zstd_level=level,
        artifact_path=path,
        context_path=environ.get(names["context-path"]) or None,
    )


def images_dir_of(context_path: Optional[str]) -> Optional[str]:
    """Return the images folder a task's context path lies in (its parent folder)."""
    if not context_path:
        return None
    parent = posixpath.dirname(context_path.strip("/"))
    return parent or None


# -- the checkout ---------------------------------------------------------------------


def checkout(repository: str, revision: str, dest: str) -> None:
    """Clone ``repository`` into ``dest`` (which must not exist) and check out ``revision``.

    :raises ImageBuildError: with git's last lines when either step fails.
    """
    steps = [
        (["git", "clone", "--quiet", "--no-checkout", repository, dest], f"cloning {repository}"),
        (["git", "-C", dest, "checkout", "--quiet", "--detach", revision],
         f"checking out {revision} of {repository}"),
    ]
    for cmd, what in steps:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL)
        except OSError as e:
            raise ImageBuildError(f"{what}: cannot run git: {e.strerror or e}") from e
        if done.returncode != 0:
            tail = " | ".join(line for line in done.stderr.splitlines() if line.strip())
            raise ImageBuildError(f"{what} failed: {tail or f'exit {done.returncode}'}")


# -- the parent -----------------------------------------------------------------------


def archive_labels(path: str) -> dict[str, str]:
    """Return the labels of the (only) image of the ``docker save`` tarball at ``path``.

    :raises ArtifactError: when the tarball holds no image, or several.
    """
    try:
        with tarfile.open(path, "r:") as tar:
            manifest = _member_json(tar, "manifest.json", path)
            if not isinstance(manifest, list) or len(manifest) != 1:
                raise ArtifactError(f"{path}: expected one image in manifest.json")
            config = _member_json(tar, str(manifest[0].get("Config", "")), path)
    except (OSError, tarfile.TarError) as e:
        raise ArtifactError(f"cannot read the image tarball {path}: {e}") from e
    labels = (config.get("config") or {}).get("Labels") or {}
    return {str(k): str(v) for k, v in labels.items()}


def _member_json(tar: tarfile.TarFile, name: str, path: str) -> Any:
    try:
        member = tar.extractfile(name)
    except KeyError:
        member = None
    if member is None:
        raise ArtifactError(f"{path}: no {name or 'image config'} in the image tarball")
    try:
        return json.load(member)
    except ValueError as e:
        raise ArtifactError(f"{path}: {name} is not JSON: {e}") from e
    except RecursionError:
        raise ArtifactError(f"{path}: {name} is refused: nested too deeply") from None


def fetch_parent(
    catalog: ImageCatalog,
    parent: str,
    task_id: str,
    dest: str,
    *,
    index: Any = None,
    artifact: Optional[str] = None,
) -> None:
    """Fetch ``task_id``'s image artifact to ``dest`` (a plain tarball) tagged for ``parent``.

    The artifact is ``artifact``, by default
    :data:`~taskgraph_images.images.source.ARTIFACT_NAME`.

    The tarball is tagged :meth:`~taskgraph_images.catalog.ImageCatalog.local_tag`
    of ``parent``, the name the child's ``FROM`` uses. It comes from
    ``index``'s artifact store when it has the task, else from the Queue
    (``TASKCLUSTER_PROXY_URL`` inside a task, else ``TASKCLUSTER_ROOT_URL``:
    see :mod:`taskgraph_images.tc.env`).

    :raises ArtifactError: when the artifact is missing, truncated or corrupt,
        or is not an image the builder made for ``parent`` at its digest.
    """
    from taskgraph_images.images.artifacts import load_image
    from taskgraph_images.images.source import ARTIFACT_NAME

    if artifact is None:
        artifact = ARTIFACT_NAME
    expected = catalog.digest(parent)
    what = f"the parent image {parent!r} (task {task_id}, {artifact})"
    try:
        load_image(task_id, output=dest, tag=catalog.local_tag(parent), index=index,
                   artifact=artifact)
    except ArtifactError as e:
        raise ArtifactError(f"cannot fetch {what}: {e}") from e
    found = archive_labels(dest).get(DIGEST_LABEL)
    if found is None:
        os.unlink(dest)
        raise ArtifactError(
            f"{what} carries no {DIGEST_LABEL} label, so it cannot be checked: it was not "
            f"made by build-in-task; rebuild {parent}"
        )
    if found != expected:
        os.unlink(dest)
        raise ArtifactError(
            f"{what} is not that image: it has digest {found}, the tree's {parent} has "
            f"{expected}"
        )


# -- the build ------------------------------------------------------------------------


@attrs.frozen
class Built:
    """What :func:`build_in_task` wrote."""

    image: str
    digest: str
    path: str
    size: int  # uncompressed bytes of the image tarball


def _task_parent(catalog: ImageCatalog, name: str) -> Optional[str]:
    image = catalog[name]
    tasks = [p for p in image.parents if not catalog[p].prebuilt]
    if len(tasks) > 1:
        raise ImageBuildError(
            f"image {name!r} has several in-tree task-image parents ({', '.join(tasks)}); "
            "a build task names one parent task"
        )
    return tasks[0] if tasks else None


def check_task(catalog: ImageCatalog, env: TaskEnv) -> Optional[str]:
    """Check that the tree builds what the task claims; return the parent to fetch, if any.

    :raises ImageBuildError: when the digest, context path or build args
        differ from the task's, or the task lacks or has a parent task wrongly.
    """
    name = env.image
    if name not in catalog:
        raise ImageBuildError(f"the task builds image {name!r}, which the tree at this revision "
                              "does not have")
    digest = catalog.digest(name)
    if digest != env.digest:
        raise ImageBuildError(
            f"refusing to build {name!r}: the tree's digest is {digest}, the task's is "
            f"{env.digest} (its index routes would claim an image it does not build)"
        )
    image = catalog[name]
    if env.context_path is not None and env.context_path.strip("/") != image.path:
        raise ImageBuildError(
            f"refusing to build {name!r}: the task's context path is {env.context_path}, "
            f"the tree's is {image.path}"
        )
    if env.build_args is not None and env.build_args != image.args:
        raise ImageBuildError(
            f"refusing to build {name!r}: the task's build args {dict(env.build_args)} are "
            f"not the tree's {dict(image.args)}"
        )
    parent = _task_parent(catalog, name)
    if parent is not None and env.parent_task is None:
        raise ImageBuildError(
            f"image {name!r} is built on the task image {parent!r}, but the task names no "
            "parent task"
        )
    if parent is None and env.parent_task is not None:
        raise ImageBuildError(
            f"the task names parent task {env.parent_task}, but image {name!r} has no "
            "in-tree task-image parent"
        )
    return parent


def _extract_context(catalog: ImageCatalog, name: str, dest: str) -> None:
    from taskgraph_images.context import write_context

    with tempfile.TemporaryFile() as raw:
        write_context(catalog, name, raw, context=catalog.context(name))
        raw.seek(0)
        with tarfile.open(fileobj=raw, mode="r:") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(dest, filter="data")
            else:  # pragma: no cover (Python < 3.11.4); our own deterministic tar
                tar.extractall(dest)


def prebuilt_ancestors(catalog: ImageCatalog, name: str) -> list[str]:
    """Return the prebuilt images ``name`` is built on directly, parents first.

    They are the image's prebuilt parents and theirs, not those under a task
    image (a task image's artifact holds its own base).
    """
    wanted: list[str] = []
    queue = [p for p in catalog[name].parents if catalog[p].prebuilt]
    while queue:
        current = queue.pop(0)
        if current not in wanted:
            wanted.append(current)
            queue += [p for p in catalog[current].parents if catalog[p].prebuilt]
    return [n for n in catalog.order() if n in wanted]


def _bud(buildah: Buildah, catalog: ImageCatalog, name: str, work: str,
         labels: Mapping[str, str], on_line: Optional[LineCallback],
         parent: Optional[str] = None) -> None:
    image = catalog[name]
    args = dict(image.args)
    from_arg = image.config_parent or parent
    if from_arg is not None:
        args["DOCKER_IMAGE_PARENT"] = catalog.local_tag(from_arg)
    context = os.path.join(work, f"context-{name}")
    _extract_context(catalog, name, context)
    try:
        run(buildah.bud_command(context, catalog.local_tag(name), build_args=args, labels=labels),
            f"building image {name!r}", on_line=_without_unused_args(on_line))
    finally:
        shutil.rmtree(context, ignore_errors=True)


#: buildah's warning about build args a Dockerfile does not use: ``DOCKER_IMAGE_PARENT``
#: goes to every image with a parent, used or not (as taskgraph's builder does), so the
#: warning says nothing the user could act on.
_UNUSED_ARGS = re.compile(r"build args? (were|was) not consumed", re.IGNORECASE)


def _without_unused_args(on_line: Optional[LineCallback]) -> Optional[LineCallback]:
    """``on_line`` without buildah's warning that some build args went unused."""
    if on_line is None:
        return None
    shown: LineCallback = on_line

    def filtered(line: str) -> None:
        if not _UNUSED_ARGS.search(line):
            shown(line)

    return filtered


#: Gives the Docker engine's copy of a registry image: ``(reference, path)`` writes
#: its ``docker save`` tarball at ``path`` and returns True, or returns False when
#: the engine does not have it (see ``build --record``).
EngineCopy = Callable[[str, str], bool]


def registry_bases(catalog: ImageCatalog, name: str) -> list[str]:
    """The ``FROM`` references of image ``name`` that a build pulls from a registry.

    Not ``scratch``, not a reference made of ARGs (``$DOCKER_IMAGE_PARENT``:
    the parent, fetched from its task), not the tag of an image of the
    catalog (built into the same storage first).
    """
    ours = {catalog.local_tag(n) for n in catalog.names()}
    found: list[str] = []
    for ref in catalog[name].bases:
        if "$" in ref or ref.lower() == "scratch" or ref in ours or ref in found:
            continue
        found.append(ref)
    return found


def _import_engine_copies(buildah: Buildah, refs: list[str], work: str,
                          engine_copy: EngineCopy, done: set[str],
                          say: Callable[[str], None], on_line: Optional[LineCallback]) -> None:
    """Import into buildah's storage the engine's copy of each of ``refs`` it has."""
    for ref in refs:
        if ref in done:
            continue
        done.add(ref)
        archive = os.path.join(work, "engine-copy.tar")
        if not engine_copy(ref, archive):
            say(f"the Docker engine has no {ref}: buildah pulls it from its registry")
            continue
        say(f"using the Docker engine's copy of {ref} (not pulled from its registry)")
        try:
            run(buildah.pull_command(archive), f"importing {ref} from the Docker engine",
                on_line=on_line)
        finally:
            os.unlink(archive)


def build_in_task(
    catalog: ImageCatalog,
    env: TaskEnv,
    *,
    index: Any = None,
    executable: str = "buildah",
    workdir: Optional[str] = None,
    build_prebuilt: bool = False,
    reporter: Optional[Reporter] = None,
    artifact: Optional[str] = None,
    manifest_artifact: str = DEFAULT_MANIFEST_ARTIFACT,
    engine_copy: Optional[EngineCopy] = None,
) -> Built:
    """Build what ``env`` asks for from ``catalog`` and write it to ``env.artifact_path``.

    Checks the task first (:func:`check_task`), then fetches the parent
    (:func:`fetch_parent`, from ``index`` or the Queue, its ``artifact``:
    by default :data:`~taskgraph_images.images.source.ARTIFACT_NAME`) into buildah's own
    storage (in a temporary folder under ``workdir``, removed at the end),
    builds with the image's args, ``DOCKER_IMAGE_PARENT`` (the parent's local
    tag) and the label :data:`~taskgraph_images.builder.buildah.DIGEST_LABEL`, and
    streams the image tarball through zstd at ``env.zstd_level``. The
    artifact appears only when complete; then the image's context manifest
    (:func:`~taskgraph_images.manifest.write_build_manifest`, published as
    ``manifest_artifact``) is written beside it.

    A prebuilt parent comes from its registry, unless ``build_prebuilt``
    (the local loop, where it may be pushed nowhere yet): then the prebuilt
    images the image stands on (:func:`prebuilt_ancestors`) are built from
    the tree first, into the same storage.

    With ``engine_copy`` (the local loop), the registry images the builds
    start from (:func:`registry_bases`) are taken from the Docker engine
    when it has them, so that a machine without network builds what its
    engine already holds; the others are pulled as in a task.

    Everything it tells goes to ``reporter``, the one channel: a note of
    each step (the parent fetched, each image built, what was written) and
    buildah's lines as output.

    :raises ImageBuildError: when the task does not match the tree or the build fails.
    :raises ArtifactError: for a bad parent artifact or an unwritable artifact path.
    """
    from taskgraph_images.builder.local import build_chain
    from taskgraph_images.images.sinks import FileSink
    from taskgraph_images.progress import format_size

    def say(text: str) -> None:
        if reporter is not None:
            reporter.note(text)

    on_line: Optional[LineCallback] = reporter.output if reporter is not None else None

    name = env.image
    parent = check_task(catalog, env)
    build_chain(catalog, name, by="by buildah in the task")  # buildah tags by name too
    tag = catalog.local_tag(name)
    work = tempfile.mkdtemp(prefix="taskgraph-images-build-", dir=workdir)
    try:
        buildah = Buildah(os.path.join(work, "storage"), os.path.join(work, "run"),
                          executable=executable)
        if parent is not None:
            assert env.parent_task is not None
            archive = os.path.join(work, "parent.tar")
            say(f"fetching the parent image {parent} from task {env.parent_task}")
            fetch_parent(catalog, parent, env.parent_task, archive, index=index,
                         artifact=artifact)
            run(buildah.pull_command(archive), f"importing the parent image {parent}",
                on_line=on_line)
            os.unlink(archive)
        first = prebuilt_ancestors(catalog, name) if build_prebuilt else []
        imported: set[str] = set()
        for base in first:
            if engine_copy is not None:
                _import_engine_copies(buildah, registry_bases(catalog, base), work,
                                      engine_copy, imported, say, on_line)
            say(f"building the prebuilt {catalog.local_tag(base)} from the tree")
            _bud(buildah, catalog, base, work, {}, on_line)
        if engine_copy is not None:
            _import_engine_copies(buildah, registry_bases(catalog, name), work, engine_copy,
                                  imported, say, on_line)
        say(f"building {tag} (digest {env.digest})")
        _bud(buildah, catalog, name, work, {DIGEST_LABEL: env.digest}, on_line, parent)
        out = env.artifact_path
        try:
            os.makedirs(os.path.dirname(out), exist_ok=True)
            size = push_archive(
                buildah, tag, tag,
                lambda chunks: FileSink(out, compression="zstd", level=env.zstd_level)
                .write_all(chunks),
            )
        except OSError as e:
            raise ArtifactError(f"cannot write {out}: {e.strerror or e}") from e
        say(f"wrote {out}: {format_size(size)}, {format_size(os.path.getsize(out))} "
            f"at zstd level {env.zstd_level}")
        manifest = write_build_manifest(catalog, name, out, artifact=manifest_artifact,
                                        digest=env.digest)
        say(f"wrote {manifest} (its context manifest)")
        return Built(name, env.digest, out, size)
    finally:
        shutil.rmtree(work, ignore_errors=True)
