"""What is in an image's build context: its members, computed once from the catalog's facts.

An image's context has four parts (:class:`ImageContext`): the files of its
own folder, the files its ``# %include`` lines add, the run-task files
``# %include-run-task`` adds, and the Dockerfile as written into the context
(``# %ARG`` values applied, the run-task ``COPY`` lines added, ``FROM
$DOCKER_IMAGE_PARENT`` resolved to the parent's tag). The recipes that key an
image read these members: the seed hash (:mod:`taskgraph_images.keys.seed`)
and taskgraph's tar stream; :func:`write_context` writes them as a tarball.

Listing (which files, and which are refused) reads the file system and
nothing else; hashing is done elsewhere (:mod:`taskgraph_images._hashing.filehash`).
"""

from __future__ import annotations

import os
import posixpath
import stat
from typing import IO, TYPE_CHECKING, NamedTuple, Optional, Protocol, Union

import attrs

from taskgraph_images import _dockerfile
from taskgraph_images._hashing.filehash import FileHasher, file_sha256
from taskgraph_images._safefile import MAX_DOCKERFILE_BYTES, read_repo_text
from taskgraph_images._safefile import file_kind as _kind
from taskgraph_images.errors import ContextError, DockerfileError
from taskgraph_images.keys.seed import hash_files

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.images.tarball import Member

__all__ = [
    "PYCACHE",
    "ContextFacts",
    "ContextFile",
    "ImageContext",
    "ImageFacts",
    "Include",
    "context_members",
    "file_sha256",
    "hash_context",
    "image_context",
    "list_context",
    "list_tree",
    "sort_by_bytes",
    "write_context",
]

PathLike = Union[str, "os.PathLike[str]"]

#: The folder name skipped inside folders that ``# %include`` adds (Python bytecode).
PYCACHE = "__pycache__"

class ContextFile(NamedTuple):
    """One file of a context, as the hash and the tarball see it."""

    relpath: str  # relative to the repository root, '/'-separated
    abspath: str  # where to read it (a symlink's own path; reading follows it)
    link: Optional[str]  # the symlink's target as written, when it is a symlink


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def list_tree(root: PathLike, rel_dir: str, *, what: str = "context",
              skip_pycache: bool = False) -> list[ContextFile]:
    """List every file below ``root/rel_dir`` the way the seed's walk found them.

    Directories are walked recursively; directories reached through a symlink
    are not descended (they are skipped, as the seed's ``os.walk`` did).
    Symlinks to files are kept (reading follows them) when their target is
    inside ``root``. With ``skip_pycache``, folders named ``__pycache__`` are
    not descended either (taskgraph's rule for folders ``# %include`` adds). The
    result is sorted by path bytes.

    :raises ContextError: for a missing folder, a broken or looping symlink, a
        symlink to a place outside ``root``, a FIFO, socket or device file, or
        an unreadable folder.
    """
    root_s = os.path.abspath(os.fspath(root))
    real_root = os.path.realpath(root_s)
    start = os.path.join(root_s, *rel_dir.split("/")) if rel_dir else root_s
    if not os.path.isdir(start):
        raise ContextError(f"{what} folder {rel_dir!r} does not exist under {root_s}")
    found: list[ContextFile] = []
    # relpath() costs ~10 us a file; slicing the root off is the same for a
    # normalised start below the root (then every entry path extends it).
    prefix = os.path.join(root_s, "")
    plain = os.path.normpath(start) == start and (start == root_s or start.startswith(prefix))
    cut = len(prefix) if plain else 0
    stack = [start]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError as e:
            raise ContextError(f"cannot read folder {current}: {e.strerror}") from e
        for entry in entries:
            rel = entry.path[cut:] if cut else os.path.relpath(entry.path, root_s)
            if os.sep != "/":  # pragma: no cover - Windows
                rel = rel.replace(os.sep, "/")
            # The type comes from the folder listing itself (d_type): no stat
            # per file, unless the file system leaves the type out.
            try:
                if entry.is_file(follow_symlinks=False):
                    found.append(ContextFile(rel, entry.path, None))
                elif entry.is_dir(follow_symlinks=False):
                    if not (skip_pycache and entry.name == PYCACHE):
                        stack.append(entry.path)
                elif entry.is_symlink():
                    found.extend(_symlink(entry.path, rel, real_root, stack))
                else:
                    raise ContextError(
                        f"{rel} in the {what} is not a regular file "
                        f"({_kind(entry.stat(follow_symlinks=False).st_mode)}); remove it"
                    )
            except OSError as e:
                raise ContextError(f"cannot stat {rel} in the {what}: {e.strerror}") from e
    for f in found:
        if "\n" in f.relpath:
            raise ContextError(
                f"{f.relpath!r} in the {what} has a newline in its path: the context hash's "
                "one-line-per-file format could not tell it from other files; rename it"
            )
    sort_by_bytes(found)
    return found


def sort_by_bytes(files: list[ContextFile]) -> None:
    """Sort ``files`` in place by the bytes of their paths, as the seed sorted them."""
    if all(f.relpath.isascii() for f in files):
        files.sort(key=lambda f: f.relpath)  # ASCII: str order is byte order
    else:
        files.sort(key=lambda f: os.fsencode(f.relpath))


def _symlink(path: str, rel: str, real_root: str, stack: list[str]) -> list[ContextFile]:
    target = os.readlink(path)
    real = os.path.realpath(path)
    if not _within(real, real_root):
        raise ContextError(
            f"{rel} is a symlink to {target!r}, outside the repository; "
            "refusing to hash or ship a file from outside it"
        )
    try:
        st = os.stat(path)
    except OSError as e:
        raise ContextError(f"{rel} is a broken symlink (to {target!r}): {e.strerror}") from e
    if stat.S_ISDIR(st.st_mode):
        return []  # the seed's walk does not descend symlinked directories
    if not stat.S_ISREG(st.st_mode):
        raise ContextError(f"{rel} is a symlink to {_kind(st.st_mode)}, not a regular file")
    return [ContextFile(rel, path, target)]


def list_context(root: PathLike, image_path: str) -> list[ContextFile]:
    """List the files of the image folder ``image_path`` (relative to ``root``)."""
    return list_tree(root, image_path, what="context")



def hash_context(
    root: PathLike,
    image_path: str,
    *,
    jobs: Optional[int] = None,
    hasher: FileHasher = file_sha256,
) -> str:
    """Return the seed context hash of the folder ``image_path`` below ``root``.

    ``image_path`` is relative to ``root`` and ``/``-separated (for example
    ``taskcluster/docker/base``). Files are hashed on ``jobs`` threads
    (default: one per core, up to eight; none for contexts under 1 MB); ``hasher`` may be a
    cache of file hashes from earlier runs.

    :raises ContextError: see :func:`list_tree`.
    """
    image_path = image_path.strip("/")
    return hash_files(list_context(root, image_path), jobs=jobs, hasher=hasher)


# -- the context model ------------------------------------------------------------


@attrs.frozen
class Include:
    """One ``# %include`` line and the files it adds."""

    #: The path as the Dockerfile writes it (taskgraph names members after it).
    written: str
    #: The same path, normalised, from the repository root.
    relpath: str
    #: Whether it names a folder (else one file).
    folder: bool
    #: The files, sorted by path bytes (``__pycache__`` folders skipped).
    files: tuple[ContextFile, ...]


@attrs.frozen
class ImageContext:
    """The members of one image's build context."""

    #: The image's name.
    name: str
    #: The image folder, from the repository root.
    path: str
    #: Every file of the image folder, sorted by path bytes (the seed's rule:
    #: nothing skipped).
    own: tuple[ContextFile, ...]
    #: The ``# %include`` lines, in the Dockerfile's order.
    includes: tuple[Include, ...]
    #: ``(name in the context, file)`` of each run-task file, when the
    #: Dockerfile has ``# %include-run-task``.
    run_task: tuple[tuple[str, str], ...]
    #: The Dockerfile written into the context (``# %ARG`` applied, run-task
    #: ``COPY`` lines added, ``$DOCKER_IMAGE_PARENT`` resolved).
    dockerfile: bytes
    #: The Dockerfile taskgraph 24.x writes into its context tar.
    taskgraph_dockerfile: bytes

    @property
    def included(self) -> tuple[ContextFile, ...]:
        """The files every ``# %include`` adds, sorted by path bytes, without repeats."""
        files = {f.relpath: f for include in self.includes for f in include.files}
        result = list(files.values())
        sort_by_bytes(result)
        return tuple(result)

    def taskgraph_files(self) -> dict[str, Union[str, bytes]]:
        """The members of taskgraph's context tar: name in the tar to file path or content.

        The image folder's files (``__pycache__`` folders skipped), each
        ``# %include`` under ``topsrcdir/`` with the path as written, the
        run-task files under ``run-task/`` and taskgraph's Dockerfile; a later
        entry of the same name replaces an earlier one, as in taskgraph.
        """
        files: dict[str, Union[str, bytes]] = {}
        cut = len(self.path) + 1
        for f in self.own:
            name = f.relpath[cut:]
            if PYCACHE not in name.split("/")[:-1]:
                files[name] = f.abspath
        for include in self.includes:
            if include.folder:
                inner = len(include.relpath) + 1
                for f in include.files:
                    files[posixpath.join("topsrcdir", include.written, f.relpath[inner:])] = (
                        f.abspath
                    )
            else:
                for f in include.files:
                    files[posixpath.join("topsrcdir", include.written)] = f.abspath
        for name, path in self.run_task:
            files[name] = path
        files["Dockerfile"] = self.taskgraph_dockerfile
        return files


class ImageFacts(Protocol):
    """What the context needs of an image (a :class:`~taskgraph_images.catalog.Image`)."""

    @property
    def path(self) -> str: ...
    @property
    def dockerfile(self) -> str: ...
    @property
    def args(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def includes(self) -> tuple[str, ...]: ...
    @property
    def include_lines(self) -> tuple[str, ...]: ...
    @property
    def run_task(self) -> Optional[str]: ...
    @property
    def run_task_line(self) -> Optional[str]: ...
    @property
    def config_parent(self) -> Optional[str]: ...


class ContextFacts(Protocol):
    """What the context needs of a catalog (an :class:`~taskgraph_images.catalog.ImageCatalog`)."""

    @property
    def root(self) -> str: ...

    def __getitem__(self, name: str) -> ImageFacts: ...

    def local_tag(self, name: str) -> str: ...


def image_context(facts: ContextFacts, name: str) -> ImageContext:
    """Return the members of image ``name``'s context, from the catalog's facts.

    :raises ContextError: for a file the context cannot hold (see :func:`list_tree`).
    :raises DockerfileError: when the Dockerfile no longer parses as it did.
    """
    image = facts[name]
    root = facts.root
    own = list_context(root, image.path)
    includes = []
    for written, rel in zip(image.include_lines, image.includes):
        full = os.path.join(root, *rel.split("/"))
        if os.path.isdir(full):
            files = tuple(list_tree(root, rel, what=f"%include {rel}", skip_pycache=True))
            includes.append(Include(written, rel, True, files))
        else:
            _regular(full, rel)
            link = os.readlink(full) if os.path.islink(full) else None
            includes.append(Include(written, rel, False, (ContextFile(rel, full, link),)))
    run_task: tuple[tuple[str, str], ...] = ()
    if image.run_task_line is not None and image.run_task is None:
        raise DockerfileError(
            f"{image.run_task_line}: '# %include-run-task' needs taskgraph's run-task files: "
            "pip install 'taskgraph-images[taskgraph]' (or add the line `run-task: FOLDER` to "
            "taskcluster/taskgraph-images.yml)"
        )
    if image.run_task is not None:
        run_task = tuple(
            (f"run-task/{n}", os.path.join(image.run_task, n)) for n in _dockerfile.RUN_TASK_FILES
        )
    text = read_repo_text(root, image.dockerfile, "Dockerfile", ContextError,
                          limit=MAX_DOCKERFILE_BYTES)
    parent = facts.local_tag(image.config_parent) if image.config_parent is not None else None
    written = _dockerfile.parse(
        text, source=image.dockerfile, args=dict(image.args), image=name, parent=parent
    ).text
    taskgraph = _dockerfile.taskgraph_text(text, dict(image.args), source=image.dockerfile)
    return ImageContext(
        name=name,
        path=image.path,
        own=tuple(own),
        includes=tuple(includes),
        run_task=run_task,
        dockerfile=written.encode("utf-8"),
        taskgraph_dockerfile=taskgraph.encode("utf-8"),
    )


def _regular(path: str, rel: str) -> None:
    """Refuse anything but a regular file (a FIFO would block the reader forever)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise ContextError(f"cannot stat %include {rel}: {e.strerror}") from e
    if not stat.S_ISREG(mode):
        raise ContextError(f"%include {rel} is {_kind(mode)}, not a regular file or folder")


# -- writing a context tarball ------------------------------------------------------


def context_members(facts: ContextFacts, name: str,
                    context: Optional[ImageContext] = None) -> list[Member]:
    """Return the tar members of image ``name``'s build context (see :func:`write_context`).

    ``context`` is the image's :class:`ImageContext` when the caller has it.
    """
    from taskgraph_images.images.tarball import Member

    if context is None:
        context = image_context(facts, name)
    root = facts.root
    members: list[Member] = []
    real_folder = os.path.realpath(os.path.join(root, *context.path.split("/")))
    real_root = os.path.realpath(root)
    included = context.included
    included_paths = {f.relpath for f in included}
    cut = len(context.path) + 1
    sources = [(f, f.relpath[cut:], "", real_folder) for f in context.own]
    sources += [(f, f"topsrcdir/{f.relpath}", "topsrcdir", real_root) for f in included]
    for f, arcname, top, real_top in sources:
        if arcname == "Dockerfile":
            executable = bool(os.stat(f.abspath).st_mode & 0o111)
            members.append(Member(arcname, "file", data=context.dockerfile,
                                  executable=executable))
        elif f.link is not None and top:
            # An included symlink stays a link only when what it points at is
            # included too; otherwise the file goes in with the content the
            # digest hashed, instead of a link left dangling in the context.
            real = os.path.realpath(f.abspath)
            target = os.path.relpath(real, real_root).replace(os.sep, "/")
            if _link_in_context(arcname, f.link, top) and target in included_paths:
                members.append(Member(arcname, "symlink", link=f.link))
            else:
                members.append(Member(arcname, "file", source=f.abspath))
        elif f.link is not None:
            real = os.path.realpath(f.abspath)
            if not _link_in_context(arcname, f.link, top) or not _within(real, real_top):
                raise ContextError(
                    f"{f.relpath} is a symlink to {f.link!r}, which leaves the build context "
                    f"of image {name!r}; copy the file into the image folder or use # %include"
                )
            members.append(Member(arcname, "symlink", link=f.link))
        else:
            members.append(Member(arcname, "file", source=f.abspath))
    taken = {m.name for m in members}
    for arcname, path in context.run_task:
        if arcname in taken:
            raise ContextError(
                f"{context.path}/{arcname} is in the way of the file '# %include-run-task' "
                f"adds there; rename it"
            )
        members.append(Member(arcname, "file", source=path))
    return members


def write_context(
    catalog: ContextFacts,
    name: str,
    out: Union[PathLike, IO[bytes]],
    *,
    compression: Optional[str] = None,
    context: Optional[ImageContext] = None,
) -> None:
    """Write image ``name``'s build context as a tar to ``out``, deterministic to the byte.

    The tar holds the image folder's files at its top level (the
    ``Dockerfile`` as :class:`ImageContext` describes it), each file that
    ``# %include`` adds under ``topsrcdir/<path from the repository root>``, and the run-task
    files under ``run-task/``. Members are sorted, directories listed, mtimes
    fixed, owners 0, modes 0644/0755; symlinks inside the context are kept as
    links.

    ``out`` is a path (written atomically; compression from its suffix
    ``.tar``, ``.tar.gz`` or ``.tar.zst`` unless ``compression`` is given) or
    a binary file object (plain tar unless ``compression`` is given).
    ``compression`` is ``"none"``, ``"gzip"`` or ``"zstd"``.

    :raises ContextError: for a symlink leaving the context, a file that is
        not a regular file, or a file that cannot be read.
    :raises CatalogError: for an unknown image.
    """
    from taskgraph_images.images.tarball import compression_for, write_tar_to

    kind = compression_for(out, compression)
    members = context_members(catalog, name, context)
    try:
        write_tar_to(members, out, kind)
    except OSError as e:
        target = os.fspath(out) if isinstance(out, (str, os.PathLike)) else "the output"
        raise ContextError(f"cannot write the context of image {name!r} to {target}: {e}") from e



def _link_in_context(arcname: str, link: str, top: str) -> bool:
    import posixpath

    if link.startswith("/"):
        return False
    target = posixpath.normpath(posixpath.join(posixpath.dirname(arcname), link))
    if target == ".." or target.startswith("../"):
        return False
    return not top or target == top or target.startswith(top + "/")

