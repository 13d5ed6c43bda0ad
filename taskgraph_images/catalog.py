"""The image catalog: image folders, their versions, registries and parents.

A repository keeps one folder per image under an images folder (by default
``taskcluster/docker``): a ``Dockerfile``, an optional ``VERSION`` (which makes
it a *prebuilt* image, pushed to a registry) and ``REGISTRY`` (else the images
folder's default ``REGISTRY``), and optional ``.env`` files. An optional
``docker-image`` kind config adds parents, ``# %ARG`` values and treeherder
symbols (see :mod:`taskgraph_images.kindconfig`).
"""

from __future__ import annotations

import os
import re
import stat
from typing import TYPE_CHECKING, Iterator, Mapping, Optional, Union

import attrs

from taskgraph_images import _dockerfile
from taskgraph_images._redact import escape, quote_value
from taskgraph_images._safefile import (
    MAX_DOCKERFILE_BYTES,
    MAX_SMALL_BYTES,
    read_repo_text,
    repo_dir,
    repo_file,
)
from taskgraph_images.errors import CatalogError, DockerfileError
from taskgraph_images.kindconfig import (
    KIND_CONFIG_PATHS,
    ImageConfig,
    IndexConfig,
    find_kind_config,
    load_kind_config,
)
from taskgraph_images.names import IMAGE_NAME_RULE, ImageName, is_docker_component, is_image_name

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images._hashing.filehash import FileHasher
    from taskgraph_images.context import ContextFile, ImageContext
    from taskgraph_images.keys.digest import CatalogKeys

__all__ = ["DEFAULT_IMAGES_DIR", "Image", "ImageCatalog", "validate_image_name"]

PathLike = Union[str, "os.PathLike[str]"]

DEFAULT_IMAGES_DIR = "taskcluster/docker"
_AUTO = "auto"

# Docker's tag grammar.
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")
# Docker's repository grammar, without the final image name: an optional
# domain (it has a '.' or a ':' or is localhost) and lower-case path
# components (names.is_docker_component).
_DOMAIN = re.compile(
    r"(?:localhost|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)(?::[0-9]+)?\Z"
)
_PARENT_VARS = ("$DOCKER_IMAGE_PARENT", "${DOCKER_IMAGE_PARENT}")


def validate_image_name(name: str) -> ImageName:
    """Return ``name`` if it is a valid image name, else raise :class:`CatalogError`.

    Names follow :mod:`taskgraph_images.names`: what taskgraph and the
    Taskcluster Index accept (``python3.11``, ``gcc-4.4``).
    """
    if not is_image_name(name):
        raise CatalogError(f"{name!r} is not a valid image name: {IMAGE_NAME_RULE}")
    return ImageName(name)


@attrs.frozen
class Image:
    """One image of the catalog (a value: compare, hash and ``evolve`` it)."""

    #: The image's name (its folder's name, or its kind config task name).
    name: str
    #: The image folder relative to the repository root, ``/``-separated.
    path: str
    #: The ``VERSION`` file's content, stripped; ``None`` for a task image.
    version: Optional[str]
    #: The image's ``REGISTRY``, else the images folder's default, else ``None``.
    registry: Optional[str]
    #: The in-tree image the ``FROM`` of the image names first, or ``None``.
    parent: Optional[str]
    #: The final stage's ``FROM`` reference, as written.
    base: str
    #: ``.env`` files of the folder, relative to the repository root.
    env_files: tuple[str, ...] = ()
    #: Every in-tree image any ``FROM`` (or the kind config) names, in order.
    parents: tuple[str, ...] = ()
    #: Every ``FROM`` reference, as written, in order.
    bases: tuple[str, ...] = ()
    #: ``# %ARG`` values from the kind config, sorted by name.
    args: tuple[tuple[str, str], ...] = ()
    #: ``# %include`` paths, relative to the repository root.
    includes: tuple[str, ...] = ()
    #: Treeherder symbol from the kind config, if any.
    symbol: Optional[str] = None
    #: The parent the kind config names (``FROM $DOCKER_IMAGE_PARENT``), if any.
    config_parent: Optional[str] = None
    #: The ``# %include`` paths as the Dockerfile writes them (same order as ``includes``).
    include_lines: tuple[str, ...] = ()
    #: The folder of the run-task files, when the Dockerfile has ``# %include-run-task``
    #: and the folder is known (see ``run_task_line``).
    run_task: Optional[str] = None
    #: ``False`` when the kind config says ``cache: false``: never reused, built every push.
    cache: bool = True
    #: The kind config's ``index`` (routes for the build task), if any.
    index: Optional[IndexConfig] = None
    #: Where the Dockerfile writes ``# %include-run-task`` (``FILE:LINE``), if it does.
    #: With no ``run_task`` folder (taskgraph is not installed and none is
    #: configured), the image's context cannot be made; the catalog's other
    #: images are not affected.
    run_task_line: Optional[str] = None

    @property
    def prebuilt(self) -> bool:
        """True for an image with a ``VERSION``: pushed to a registry, not built per push."""
        return self.version is not None

    @property
    def dockerfile(self) -> str:
        """The Dockerfile's path relative to the repository root."""
        return f"{self.path}/Dockerfile"

    @property
    def definition(self) -> str:
        """The image folder's name."""
        return self.path.rsplit("/", 1)[-1]


def _read_version(root: str, path: str) -> Optional[str]:
    if not os.path.lexists(path):
        return None
    value = read_repo_text(root, path, "VERSION file", CatalogError, limit=MAX_SMALL_BYTES).strip()
    path = escape(path)
    if not value:
        raise CatalogError(f"VERSION file {path} is empty: write a Docker tag such as 1.0")
    if not _TAG.match(value):
        raise CatalogError(
            f"VERSION file {path} holds {quote_value(value)}, which is not a valid Docker tag"
        )
    return value


def _valid_registry(value: str) -> bool:
    first, _, rest = value.partition("/")
    if "." in first or ":" in first or first == "localhost":
        if not _DOMAIN.match(first):
            return False
        components = rest.split("/") if rest else []
    else:
        components = value.split("/")
    return all(is_docker_component(c) for c in components)


def _read_registry(root: str, path: str) -> Optional[str]:
    if not os.path.lexists(path):
        return None
    value = read_repo_text(root, path, "REGISTRY file", CatalogError,
                           limit=MAX_SMALL_BYTES).strip()
    path = escape(path)
    if not value:
        raise CatalogError(f"REGISTRY file {path} is empty: write a registry such as taskcluster")
    if not _valid_registry(value):
        raise CatalogError(
            f"REGISTRY file {path} holds {quote_value(value)}, which is not a valid "
            "registry/repository prefix"
        )
    return value


class ImageCatalog:
    """The images of one repository; load it with :meth:`load`.

    A catalog is a snapshot of the tree's facts at load time. Context members,
    context hashes and digests come from :class:`~taskgraph_images.keys.digest.CatalogKeys`,
    computed on first use and kept for the catalog's lifetime.
    """

    def __init__(
        self,
        root: str,
        images_dir: str,
        images: Mapping[str, Image],
        *,
        kind_config: Optional[str] = None,
        hasher: Optional[FileHasher] = None,
        cache_keys: str = "seed",
        taskgraph_builder: Optional[str] = None,
    ) -> None:
        self.root = root
        self.images_dir = images_dir
        self.kind_config = kind_config
        #: ``"seed"`` or ``"taskgraph"``: whose digests :meth:`digest` gives.
        self.cache_keys = cache_keys
        #: The image builder taskgraph's digests name (``None``: taskgraph's own).
        self.taskgraph_builder = taskgraph_builder
        self._images = dict(sorted(images.items()))
        self._hasher = hasher
        self._keys: Optional[CatalogKeys] = None
        self._order = _topological_order(self._images)

    # -- loading -------------------------------------------------------------

    @classmethod
    def load(
        cls,
        root: PathLike,
        images_dir: str = DEFAULT_IMAGES_DIR,
        *,
        kind_config: Optional[PathLike] = _AUTO,
        hasher: Optional[FileHasher] = None,
        run_task: Optional[PathLike] = None,
        cache_keys: str = "seed",
        taskgraph_builder: Optional[str] = None,
    ) -> ImageCatalog:
        """Read every image folder directly under ``root/images_dir``.

        ``kind_config`` is a kind config path (relative paths are taken from
        ``root``), ``"auto"`` (look at :data:`~taskgraph_images.kindconfig.KIND_CONFIG_PATHS`)
        or ``None``/``"none"`` (ignore any). With a kind config, the catalog
        holds exactly its tasks; without one, every folder that has a
        ``Dockerfile`` (others are skipped quietly). ``hasher`` hashes one
        file (default :func:`~taskgraph_images._hashing.filehash.file_sha256`; a cache
        of file hashes fits). ``run_task`` is the folder holding the files
        ``# %include-run-task`` adds (relative paths are taken from ``root``);
        by default, the installed ``taskgraph`` package's ``run-task`` folder.
        ``cache_keys`` is ``"seed"`` or ``"taskgraph"`` (taskgraph's context
        hashes and digests; the kind config, which is then required, lists the
        images built per push, and ``VERSION`` files make no image prebuilt).
        ``taskgraph_builder`` is the image builder taskgraph's digests name,
        when not taskgraph's own (a build-task config's ``builder:
        taskgraph-images``).

        :raises CatalogError: naming the folder, file or value at fault.
        """
        root_s, images_dir, folder = _images_folder(root, images_dir)

        config_path: Optional[str] = None
        if kind_config is not None and os.fspath(kind_config) not in ("none", ""):
            if os.fspath(kind_config) == _AUTO:
                config_path = find_kind_config(root_s)
            else:
                config_path = os.path.join(root_s, os.fspath(kind_config))
                if not os.path.lexists(config_path):
                    raise CatalogError(f"kind config {os.fspath(kind_config)} does not exist")
        if cache_keys not in ("seed", "taskgraph"):
            raise CatalogError(f"unknown cache keys {cache_keys!r}: use 'seed' or 'taskgraph'")
        configs: Optional[dict[str, ImageConfig]] = None
        if config_path is not None:
            configs = load_kind_config(config_path, root=root_s)
        elif cache_keys == "taskgraph":
            raise CatalogError(
                f"cache-keys: taskgraph needs the docker-image kind config "
                f"({' or '.join(KIND_CONFIG_PATHS)}), which lists the images taskgraph builds"
            )

        return cls._from_folder(root_s, images_dir, folder, configs, config_path,
                                hasher=hasher, run_task=run_task, cache_keys=cache_keys,
                                taskgraph_builder=taskgraph_builder)

    @classmethod
    def from_configs(
        cls,
        root: PathLike,
        configs: Mapping[str, ImageConfig],
        *,
        images_dir: str = DEFAULT_IMAGES_DIR,
        kind_config: Optional[PathLike] = None,
        hasher: Optional[FileHasher] = None,
        run_task: Optional[PathLike] = None,
        cache_keys: str = "seed",
        taskgraph_builder: Optional[str] = None,
    ) -> ImageCatalog:
        """The catalog of exactly the images ``configs`` describes (kind entries already read).

        As :meth:`load` with a kind config, for entries that come from
        elsewhere (taskgraph's loader, for one); ``kind_config`` only names
        the file in errors.

        :raises CatalogError: naming the folder, file or value at fault.
        """
        root_s, images_dir, folder = _images_folder(root, images_dir)
        config_path = os.fspath(kind_config) if kind_config is not None else None
        return cls._from_folder(root_s, images_dir, folder, configs, config_path,
                                hasher=hasher, run_task=run_task, cache_keys=cache_keys,
                                taskgraph_builder=taskgraph_builder)

    @classmethod
    def _from_folder(
        cls,
        root_s: str,
        images_dir: str,
        folder: str,
        configs: Optional[Mapping[str, ImageConfig]],
        config_path: Optional[str],
        *,
        hasher: Optional[FileHasher],
        run_task: Optional[PathLike],
        cache_keys: str,
        taskgraph_builder: Optional[str] = None,
    ) -> ImageCatalog:
        """The one way :meth:`load` and :meth:`from_configs` end: the images
        ``configs`` lists (every folder with a ``Dockerfile`` when ``None``),
        with the folder's ``REGISTRY`` as their default registry."""
        default_registry = _read_registry(root_s, os.path.join(folder, "REGISTRY"))
        entries: list[tuple[str, str, Optional[ImageConfig]]] = []
        if configs is None:
            try:
                names = sorted(os.listdir(folder))
            except OSError as e:
                raise CatalogError(f"cannot list images folder {folder}: {e.strerror}") from e
            for name in names:
                if os.path.isfile(os.path.join(folder, name, "Dockerfile")):
                    entries.append((validate_image_name(name), name, None))
        else:
            for name, cfg in sorted(configs.items()):
                validate_image_name(name)
                _check_definition(config_path, name, cfg.definition)
                where = os.path.join(folder, cfg.definition)
                if not os.path.isfile(os.path.join(where, "Dockerfile")):
                    raise CatalogError(
                        f"kind config {config_path}: image {name!r} names folder "
                        f"{images_dir}/{cfg.definition}, which has no Dockerfile"
                    )
                entries.append((name, cfg.definition, cfg))
        if cache_keys not in ("seed", "taskgraph"):
            raise CatalogError(f"unknown cache keys {cache_keys!r}: use 'seed' or 'taskgraph'")
        run_task_dir = _RunTask(root_s, run_task)
        drafts = {
            name: _draft(root_s, images_dir, name, definition, cfg, default_registry,
                         run_task_dir, prebuilt=cache_keys == "seed")
            for name, definition, cfg in entries
        }
        images = _resolve_parents(drafts, config_path)
        rel_config = (
            os.path.relpath(config_path, root_s).replace(os.sep, "/") if config_path else None
        )
        return cls(root_s, images_dir, images, kind_config=rel_config, hasher=hasher,
                   cache_keys=cache_keys, taskgraph_builder=taskgraph_builder)

    # -- mapping protocol -----------------------------------------------------

    def names(self) -> list[str]:
        """Return the image names, sorted."""
        return list(self._images)

    def __getitem__(self, name: str) -> Image:
        try:
            return self._images[name]
        except KeyError:
            raise CatalogError(self._unknown(name)) from None

    def __contains__(self, name: object) -> bool:
        return name in self._images

    def __iter__(self) -> Iterator[Image]:
        return iter(self._images.values())

    def __len__(self) -> int:
        return len(self._images)

    def __repr__(self) -> str:
        return f"<ImageCatalog {self.root!r} {self.images_dir!r}: {len(self)} images>"

    def _unknown(self, name: str) -> str:
        from taskgraph_images._suggest import unknown_image

        return unknown_image(name, self._images)

    # -- references -----------------------------------------------------------

    def docker_image(self, name: str) -> str:
        """Return ``registry/name:version`` for the prebuilt image ``name``.

        :raises CatalogError: for a task image (no ``VERSION``): it has no
            registry tag; refer to it by task id instead.
        """
        image = self[name]
        if image.version is None:
            raise CatalogError(
                f"image {name!r} is a task image (no VERSION file): it is built per push "
                "and referenced by task id (task_id_for_image), not by a registry tag"
            )
        prefix = f"{image.registry}/" if image.registry else ""
        return f"{prefix}{name}:{image.version}"

    def local_tag(self, name: str) -> str:
        """Return the tag a local build gets: the registry tag, or ``name:latest``."""
        image = self[name]
        return self.docker_image(name) if image.prebuilt else f"{name}:latest"

    def order(self) -> list[str]:
        """Return every image name, parents before children (ties by name)."""
        return list(self._order)

    def ancestors(self, name: str) -> list[str]:
        """Return the in-tree ancestors of ``name``, nearest parents first."""
        seen: list[str] = []
        queue = list(self[name].parents)
        while queue:
            current = queue.pop(0)
            if current not in seen:
                seen.append(current)
                queue.extend(self._images[current].parents)
        return seen

    # -- contexts and keys ---------------------------------------------------------

    @property
    def keys(self) -> CatalogKeys:
        """The context members, context hashes and digests of the images."""
        if self._keys is None:
            from taskgraph_images.keys.digest import CatalogKeys

            self._keys = CatalogKeys(self, hasher=self._hasher, mode=self.cache_keys,
                                     image_builder=self.taskgraph_builder)
        return self._keys

    def context(self, name: str) -> ImageContext:
        """Return the members of the image's build context (computed once)."""
        return self.keys.context(name)

    def context_files(self, name: str) -> list[ContextFile]:
        """Return the files of the image's folder, sorted as the hash sorts them."""
        return list(self.context(name).own)

    def include_files(self, name: str) -> list[ContextFile]:
        """Return the files the image's ``# %include`` lines add, sorted, without repeats."""
        return list(self.context(name).included)

    def context_hash(self, name: str) -> str:
        """Return the image's context hash: the seed's of its folder, or taskgraph's
        of its context tar (``cache_keys="taskgraph"``)."""
        return self.keys.context_hash(name)

    def digest(self, name: str) -> str:
        """Return the key the index uses for ``name`` (see :mod:`taskgraph_images.keys.digest`)."""
        return self.keys.digest(name)


# -- loading helpers ------------------------------------------------------------


@attrs.frozen
class _Draft:
    image: Image
    froms: tuple[_dockerfile.FromLine, ...]
    dockerfile: str


class _RunTask:
    """Finds the run-task folder once, when a Dockerfile first asks for it."""

    def __init__(self, root: str, configured: Optional[PathLike]) -> None:
        self._root = root
        self._configured = configured
        self._found: Optional[Optional[str]] = None
        self._looked = False

    def folder(self, where: str) -> Optional[str]:
        """Return the folder (``None`` when taskgraph is not installed and none is
        configured), or raise :class:`DockerfileError` naming ``where`` for a
        folder that lacks a file."""
        root = self._root
        if self._configured is not None:
            what = f"run-task folder {escape(os.fspath(self._configured))}"
            if os.path.isabs(os.fspath(self._configured)):
                # A folder the caller named (the config's run-task: is always
                # relative): its files must still be regular files inside it.
                root = os.fspath(self._configured)
            folder = repo_dir(root, os.fspath(self._configured), f"{where}: run-task folder",
                              DockerfileError)
        else:
            if not self._looked:
                self._found, self._looked = _installed_run_task(), True
            if self._found is None:
                return None
            folder, what = self._found, f"run-task folder {self._found}"
            root = folder
        for entry in _dockerfile.RUN_TASK_FILES:
            if not os.path.lexists(os.path.join(folder, entry)):
                raise DockerfileError(f"{where}: '# %include-run-task': {what} has no file {entry}")
            # Each file ships as run-task/<entry>: a regular file inside the
            # repository (or the installed package), never a link out of it.
            repo_file(root, os.path.join(folder, entry), f"{where}: run-task file",
                      DockerfileError)
        return os.path.abspath(folder)


def _installed_run_task() -> Optional[str]:
    """The ``run-task`` folder of the installed ``taskgraph`` package, without importing it."""
    from taskgraph_images.keys.taskgraph import installed_package_dirs

    for location in installed_package_dirs():
        folder = os.path.join(location, "run-task")
        if os.path.isdir(folder):
            return folder
    return None


def _draft(
    root: str,
    images_dir: str,
    name: str,
    definition: str,
    cfg: Optional[ImageConfig],
    default_registry: Optional[str],
    run_task: _RunTask,
    *,
    prebuilt: bool = True,
) -> _Draft:
    rel = f"{images_dir}/{definition}" if images_dir else definition
    folder = os.path.join(root, *rel.split("/"))
    repo_dir(root, folder, f"image {name!r}: folder", CatalogError)
    version = _read_version(root, os.path.join(folder, "VERSION")) if prebuilt else None
    registry = _read_registry(root, os.path.join(folder, "REGISTRY")) or default_registry
    dockerfile = os.path.join(folder, "Dockerfile")
    text = read_repo_text(root, dockerfile, "Dockerfile", CatalogError,
                          limit=MAX_DOCKERFILE_BYTES)
    args = dict(cfg.args) if cfg else {}
    parsed = _dockerfile.parse(text, source=f"{rel}/Dockerfile", args=args, image=name)
    used = {n for _, n in parsed.arg_directives}
    env_files = tuple(
        f"{rel}/{entry}"
        for entry in sorted(os.listdir(folder))
        if entry.endswith(".env") and os.path.isfile(os.path.join(folder, entry))
    )
    includes = tuple(
        _check_include(root, f"{rel}/Dockerfile", lineno, path) for lineno, path in parsed.includes
    )
    run_task_dir = run_task_line = None
    if parsed.run_task is not None:
        run_task_line = f"{rel}/Dockerfile:{parsed.run_task}"
        run_task_dir = run_task.folder(run_task_line)
    image = Image(
        name=name,
        path=rel,
        version=version,
        registry=registry,
        parent=None,
        base=parsed.froms[-1].raw,
        env_files=env_files,
        bases=tuple(f.raw for f in parsed.froms),
        # Every configured arg reaches the build (--build-arg), so every one counts.
        args=tuple(sorted(args.items())) if cfg else tuple(sorted((k, args[k]) for k in used)),
        includes=includes,
        symbol=cfg.symbol if cfg else None,
        config_parent=cfg.parent if cfg else None,
        include_lines=tuple(path for _, path in parsed.includes),
        run_task=run_task_dir,
        run_task_line=run_task_line,
        cache=cfg.cache if cfg else True,
        index=cfg.index if cfg else None,
    )
    return _Draft(image=image, froms=parsed.froms, dockerfile=f"{rel}/Dockerfile")


def _images_folder(root: PathLike, images_dir: str) -> tuple[str, str, str]:
    """``(root, images_dir, folder)``: the absolute root, the images folder as
    given (``/``-separated) and its path, a folder inside the root.

    :raises CatalogError: when the folder does not exist or leaves the root.
    """
    root_s = os.path.abspath(os.fspath(root))
    images_dir = images_dir.strip("/").replace(os.sep, "/")
    folder = os.path.join(root_s, *images_dir.split("/"))
    if not os.path.isdir(folder):
        raise CatalogError(f"images folder {images_dir!r} does not exist under {root_s}")
    repo_dir(root_s, folder, "images folder", CatalogError)
    return root_s, images_dir, folder


def _check_definition(config_path: Optional[str], name: str, definition: str) -> None:
    """A kind ``definition`` names a folder below the images folder: no ``..``, not absolute."""
    parts = definition.split("/")
    if (not definition or definition.startswith("/") or os.path.isabs(definition)
            or any(p in ("", ".", "..") for p in parts) or escape(definition) != definition):
        raise CatalogError(
            f"kind config {escape(config_path or '')}: image {name!r}: definition "
            f"{quote_value(definition)} must name a folder below the images folder "
            "(no '..', not absolute)"
        )


def _check_include(root: str, source: str, lineno: int, path: str) -> str:
    where = f"{source}:{lineno}: '# %include {path}'"
    if path.startswith("/") or os.path.isabs(path):
        raise DockerfileError(f"{where} is absolute; give a path from the repository root")
    norm = os.path.normpath(path).replace(os.sep, "/")
    full = os.path.join(root, norm)
    real_root = os.path.realpath(root)
    real = os.path.realpath(full)
    if norm == ".." or norm.startswith("../") or not (
        real == real_root or real.startswith(real_root + os.sep)
    ):
        raise DockerfileError(f"{where} leaves the repository")
    if not os.path.lexists(full):
        raise DockerfileError(f"{where} does not exist")
    if not os.path.exists(full):
        raise DockerfileError(f"{where} is a broken symlink")
    if real == real_root:
        raise DockerfileError(f"{where} includes the whole repository")
    mode = os.stat(full).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        kind = ("a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode)
                else "a device file")
        raise DockerfileError(f"{where} is {kind}: include a regular file or a folder")
    return norm


def _resolve_parents(drafts: Mapping[str, _Draft], config_path: Optional[str]) -> dict[str, Image]:
    by_reference: dict[str, str] = {}
    for name, draft in drafts.items():
        by_reference[name] = name
        by_reference[f"{name}:latest"] = name
        if draft.image.version is not None:
            prefix = f"{draft.image.registry}/" if draft.image.registry else ""
            by_reference[f"{prefix}{name}:{draft.image.version}"] = name
    images: dict[str, Image] = {}
    for name, draft in drafts.items():
        image = draft.image
        parents: list[str] = []
        cfg_parent = image.config_parent
        if cfg_parent is not None and cfg_parent not in drafts:
            raise CatalogError(
                f"kind config {config_path}: image {name!r} has parent {cfg_parent!r}, "
                "which is not an image of the catalog"
            )
        stages: set[str] = set()
        for line in draft.froms:
            if line.raw in _PARENT_VARS:
                if cfg_parent is None:
                    raise DockerfileError(
                        f"{draft.dockerfile}:{line.lineno}: FROM {line.raw} needs a parent: "
                        f"set 'parent:' for image {name!r} in the kind config"
                    )
                parent: Optional[str] = cfg_parent
            elif line.ref.lower() in stages:
                parent = None
            else:
                parent = by_reference.get(line.ref)
                if parent == name and line.ref == name:
                    # A bare 'FROM hello-world' in folder hello-world names the
                    # registry's image; 'FROM hello-world:latest' names its own tag.
                    parent = None
            if parent is not None and parent not in parents:
                parents.append(parent)
            if line.stage:
                stages.add(line.stage)
        if cfg_parent is not None and cfg_parent not in parents:
            parents.append(cfg_parent)
        images[name] = attrs.evolve(
            image, parent=parents[0] if parents else None, parents=tuple(parents)
        )
    return images


def _topological_order(images: Mapping[str, Image]) -> list[str]:
    """Parents first, ties by name; a cycle is a :class:`CatalogError` naming it."""
    order: list[str] = []
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(name: str, path: list[str]) -> None:
        mark = state.get(name)
        if mark == 2:
            return
        if mark == 1:
            cycle = [*path[path.index(name) :], name]
            raise CatalogError(f"FROM cycle between images: {' -> '.join(cycle)}")
        state[name] = 1
        path.append(name)
        for parent in sorted(images[name].parents):
            visit(parent, path)
        path.pop()
        state[name] = 2
        order.append(name)

    for name in sorted(images):
        visit(name, [])
    return order

