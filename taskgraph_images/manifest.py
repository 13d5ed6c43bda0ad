"""Context manifests: what an image's digest was made of, and how two builds differ (pure).

A *context manifest* records, for one build of one image, every line its
digest is made of: each member of the context (its path from the repository
root and its sha256), the ``# %ARG`` values, the in-tree parents' digests
and the recipe. Every build writes one next to its image artifact
(:data:`DEFAULT_MANIFEST_ARTIFACT`); a plan compares the manifest of the
last trusted build of an image with the tree's to say why it is built
(:func:`diff_manifests`, :meth:`ManifestDiff.summary`).

The JSON format, version 1 (:data:`MANIFEST_FORMAT`)::

    {
      "format": "taskgraph-images-context-manifest/1",
      "image": "builder",
      "digest": "<the image's digest: 64 lowercase hex digits>",
      "recipe": "seed",                        # or "taskgraph": which cache key
      "members": {"<path>": "<sha256>", ...},  # every context and included file
      "args": {"NAME": "value", ...},          # the # %ARG values the digest folds in
      "parents": [{"name": "base", "digest": "<digest or registry tag>"}, ...]
    }

Paths are ``/``-separated, relative to the repository root (as the seed
hash's lines write them, without the leading ``/``). ``parents`` are in
``FROM`` order, the first being the image's parent; a prebuilt parent named
by the kind config has its registry tag as its digest. Every key is
required and no other is allowed; a reader refuses another format version.
A manifest is at most :data:`MAX_MANIFEST_BYTES` bytes and
:data:`MAX_MEMBERS` members (far beyond any real context: 8 MiB holds about
60,000 members), so that reading one fetched from a remote task costs a
bounded amount of memory and time.
"""

from __future__ import annotations

import json
import os
import re
from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

import attrs

from taskgraph_images.errors import ManifestError
from taskgraph_images.names import is_digest, is_image_name

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.catalog import ImageCatalog

__all__ = [
    "DEFAULT_MANIFEST_ARTIFACT",
    "MANIFEST_FORMAT",
    "MAX_MANIFEST_BYTES",
    "MAX_MEMBERS",
    "RECIPES",
    "ArgChange",
    "ContextManifest",
    "FileChange",
    "ManifestDiff",
    "Move",
    "ParentChange",
    "build_manifest",
    "diff_manifests",
    "manifest_file_path",
    "parse_manifest",
    "write_build_manifest",
    "write_manifest",
]

#: The ``format`` value of a version-1 manifest.
MANIFEST_FORMAT = "taskgraph-images-context-manifest/1"
#: Where a build task publishes its manifest, unless the config names another artifact.
DEFAULT_MANIFEST_ARTIFACT = "public/context-manifest.json"
#: The largest manifest read or written, in bytes of JSON.
MAX_MANIFEST_BYTES = 8 * 1024 * 1024
#: The most members a manifest may list.
MAX_MEMBERS = 100_000
#: The cache-key recipes a manifest can name.
RECIPES = ("seed", "taskgraph")

_FORMAT_PREFIX = "taskgraph-images-context-manifest/"
_KEYS = ("format", "image", "digest", "recipe", "members", "args", "parents")
_ARG = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_MAX_TEXT = 4096  # the longest arg value or parent reference


def _pairs(value: Any) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted((str(k), str(v)) for k, v in items))


def _members(value: Any) -> tuple[tuple[str, str], ...]:
    items = value.items() if isinstance(value, Mapping) else value
    return tuple(sorted(((str(k), str(v)) for k, v in items), key=lambda p: os.fsencode(p[0])))


def _ordered(value: Any) -> tuple[tuple[str, str], ...]:
    return tuple((str(n), str(d)) for n, d in value)


@attrs.frozen
class ContextManifest:
    """One build's manifest: the lines its digest is made of (see the module docs)."""

    #: The image name.
    image: str
    #: The image's digest, its index key.
    digest: str
    #: The cache-key recipe, ``seed`` or ``taskgraph``.
    recipe: str
    #: ``(path, sha256)`` of every member, by path bytes.
    members: tuple[tuple[str, str], ...] = attrs.field(converter=_members)
    #: ``(NAME, value)`` of every arg, by name.
    args: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_pairs)
    #: ``(name, digest or registry tag)`` of every in-tree parent, in ``FROM`` order.
    parents: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_ordered)

    @property
    def parent(self) -> Optional[str]:
        """The image's parent (its first ``FROM``'s in-tree image), or ``None``."""
        return self.parents[0][0] if self.parents else None

    def to_json(self) -> dict[str, Any]:
        """Return the manifest as the JSON object the format describes."""
        return {
            "format": MANIFEST_FORMAT,
            "image": self.image,
            "digest": self.digest,
            "recipe": self.recipe,
            "members": dict(self.members),
            "args": dict(self.args),
            "parents": [{"name": n, "digest": d} for n, d in self.parents],
        }

    def dumps(self) -> bytes:
        """Return the manifest's JSON document (UTF-8, one member per line, newline-ended).

        :raises ManifestError: when it would exceed :data:`MAX_MANIFEST_BYTES`.
        """
        text = json.dumps(self.to_json(), indent=1, ensure_ascii=False) + "\n"
        data = text.encode("utf-8", "surrogateescape")
        if len(data) > MAX_MANIFEST_BYTES:
            raise ManifestError(
                f"the context manifest of image {self.image!r} would be {len(data)} bytes, "
                f"more than the {MAX_MANIFEST_BYTES} a reader accepts"
            )
        return data


def _fail(what: str, message: str) -> ManifestError:
    return ManifestError(f"{what}: {message}")


def _text(value: object, what: str, key: str) -> str:
    if not isinstance(value, str) or len(value) > _MAX_TEXT:
        raise _fail(what, f"{key!r} must be a string of at most {_MAX_TEXT} characters")
    return value


def _member_path(path: str, what: str) -> str:
    if (
        not path
        or path.startswith("/")
        or "\n" in path
        or "\0" in path
        or any(part in ("", ".", "..") for part in path.split("/"))
    ):
        raise _fail(what, f"member path {path!r} is not a relative '/'-separated path")
    return path


def parse_manifest(data: Union[bytes, str], *, source: str = "context manifest") -> ContextManifest:
    """Read a manifest written by :meth:`ContextManifest.dumps`, validating every field.

    ``source`` names the manifest in errors (a file, or a task's artifact).

    :raises ManifestError: naming ``source`` when ``data`` is larger than
        :data:`MAX_MANIFEST_BYTES`, not JSON, of another format version, or
        has a missing, unknown or malformed field.
    """
    size = len(data.encode("utf-8", "surrogateescape") if isinstance(data, str) else data)
    if size > MAX_MANIFEST_BYTES:
        raise _fail(source, f"{size} bytes, more than the {MAX_MANIFEST_BYTES} allowed")
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as e:
        raise _fail(source, f"not JSON ({e})") from None
    except RecursionError:  # a few hundred KB of '[' is enough
        raise _fail(source, "refused: nested too deeply") from None
    if not isinstance(doc, dict):
        raise _fail(source, "not a JSON object")
    fmt = doc.get("format")
    if not isinstance(fmt, str) or not fmt.startswith(_FORMAT_PREFIX):
        raise _fail(source, f"no 'format': {MANIFEST_FORMAT!r} marker")
    if fmt != MANIFEST_FORMAT:
        raise _fail(source, f"format {fmt!r} is not understood (this version reads "
                            f"{MANIFEST_FORMAT!r})")
    missing = [k for k in _KEYS if k not in doc]
    unknown = sorted(k for k in doc if k not in _KEYS)
    if missing or unknown:
        parts = [f"missing {', '.join(missing)}"] if missing else []
        parts += [f"unknown {', '.join(unknown)}"] if unknown else []
        raise _fail(source, "; ".join(parts))
    image = doc["image"]
    if not is_image_name(image):
        raise _fail(source, f"'image' {image!r} is not an image name")
    digest = doc["digest"]
    if not is_digest(digest):
        raise _fail(source, "'digest' must be 64 lowercase hex digits")
    recipe = doc["recipe"]
    if recipe not in RECIPES:
        raise _fail(source, f"'recipe' {recipe!r} is not one of {', '.join(RECIPES)}")
    members = doc["members"]
    if not isinstance(members, dict):
        raise _fail(source, "'members' must be an object of path: sha256")
    if len(members) > MAX_MEMBERS:
        raise _fail(source, f"{len(members)} members, more than the {MAX_MEMBERS} allowed")
    for path, sha in members.items():
        _member_path(path, source)
        if not is_digest(sha):
            raise _fail(source, f"member {path!r} has no sha256 (64 lowercase hex digits)")
    args = doc["args"]
    if not isinstance(args, dict):
        raise _fail(source, "'args' must be an object of NAME: value")
    for name, value in args.items():
        if not _ARG.match(name):
            raise _fail(source, f"arg name {name!r} is not a valid ARG name")
        _text(value, source, f"args.{name}")
    parents = doc["parents"]
    if not isinstance(parents, list):
        raise _fail(source, "'parents' must be a list of {name, digest} objects")
    pairs: list[tuple[str, str]] = []
    for item in parents:
        if not isinstance(item, dict) or set(item) != {"name", "digest"}:
            raise _fail(source, "each of 'parents' must be an object of exactly name and digest")
        name = item["name"]
        if not is_image_name(name):
            raise _fail(source, f"parent {name!r} is not an image name")
        pairs.append((name, _text(item["digest"], source, f"parent {name} digest")))
    return ContextManifest(image, digest, recipe, members, args, pairs)


def write_manifest(manifest: ContextManifest, path: Union[str, os.PathLike[str]]) -> None:
    """Write ``manifest`` to ``path`` atomically (all of it, or nothing).

    :raises ManifestError: when it is too large or cannot be written.
    """
    from taskgraph_images._atomic import atomic_output

    data = manifest.dumps()
    try:
        with atomic_output(path) as f:
            f.write(data)
    except OSError as e:
        raise ManifestError(
            f"cannot write the context manifest of image {manifest.image!r} to "
            f"{os.fspath(path)}: {e.strerror or e}"
        ) from e


def manifest_file_path(artifact_path: str, manifest_artifact: str) -> str:
    """Return where a build writes its manifest: beside ``artifact_path``, named as the artifact.

    >>> manifest_file_path("/builds/worker/artifacts/image.tar.zst", "public/context-manifest.json")
    '/builds/worker/artifacts/context-manifest.json'
    """
    import posixpath

    return posixpath.join(posixpath.dirname(artifact_path), manifest_artifact.rsplit("/", 1)[-1])


# -- from the catalog ----------------------------------------------------------------


def build_manifest(catalog: ImageCatalog, name: str) -> ContextManifest:
    """Return the manifest of task image ``name`` as the tree now has it.

    It is made from the image's digest inputs
    (:meth:`~taskgraph_images.keys.digest.CatalogKeys.inputs`, the value its
    digest is made from) and its context's members
    (:meth:`~taskgraph_images.keys.digest.CatalogKeys.members`).

    :raises CatalogError: for an unknown image.
    :raises ContextError: when a member cannot be read.
    """
    keys = catalog.keys
    inputs = keys.inputs(name)
    return ContextManifest(
        image=name,
        digest=keys.digest(name),
        recipe=inputs.recipe,
        members=keys.members(name),
        args=inputs.args,
        parents=inputs.parents,
    )


def write_build_manifest(
    catalog: ImageCatalog,
    name: str,
    artifact_path: str,
    *,
    artifact: str = DEFAULT_MANIFEST_ARTIFACT,
    digest: Optional[str] = None,
) -> str:
    """Write image ``name``'s manifest beside its image artifact; return the file's path.

    What a build calls once the image is saved at ``artifact_path``: the
    manifest goes to :func:`manifest_file_path` (``artifact`` is the
    artifact name the task publishes it as, the config's
    ``manifest-artifact``). ``digest``, when given, is the digest the task
    was created for: a tree that hashes differently is refused, so no
    manifest ever describes another image than the one indexed.

    :raises ManifestError: when the digest differs, or the file cannot be written.
    :raises CatalogError: for an unknown image.
    :raises ContextError: when a member cannot be read.
    """
    manifest = build_manifest(catalog, name)
    if digest is not None and manifest.digest != digest:
        raise ManifestError(
            f"image {name!r} hashes to {manifest.digest} here, not {digest} as its task says; "
            "no manifest written"
        )
    path = manifest_file_path(artifact_path, artifact)
    write_manifest(manifest, path)
    return path


# -- differences ------------------------------------------------------------------------


@attrs.frozen
class FileChange:
    """A member whose content changed."""

    path: str
    old: str
    new: str


@attrs.frozen
class Move:
    """A member that kept its content at a new path."""

    old_path: str
    new_path: str
    sha256: str


@attrs.frozen
class ArgChange:
    """An arg that changed, appeared (``old`` is ``None``) or went (``new`` is ``None``)."""

    name: str
    old: Optional[str]
    new: Optional[str]


@attrs.frozen
class ParentChange:
    """A parent whose digest changed, or one that appeared or went.

    ``rebuilt`` and ``summary`` are filled in by a plan that builds the
    parent too: ``summary`` is the parent's own short difference.
    """

    name: Optional[str]
    old_name: Optional[str]
    old_digest: Optional[str]
    new_digest: Optional[str]
    rebuilt: bool = False
    summary: Optional[str] = None

    def describe(self) -> str:
        """``parent base rebuilt (its 1 file changed)``, ``parent changed: a -> b``, ..."""
        if self.name is not None and self.old_name == self.name:
            text = f"parent {self.name} {'rebuilt' if self.rebuilt else 'changed'}"
            return f"{text} (its {self.summary})" if self.summary else text
        if self.old_name is None:
            return f"parent {self.name} added"
        if self.name is None:
            return f"parent {self.old_name} removed"
        return f"parent changed: {self.old_name} -> {self.name}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _first(items: Sequence[str]) -> str:
    from taskgraph_images._redact import escape

    more = f", +{len(items) - 1} more" if len(items) > 1 else ""
    # A path from an earlier build's manifest: its control characters shown, not sent.
    return f"{escape(items[0])}{more}"


@attrs.frozen
class ManifestDiff:
    """How one image's manifest differs from an earlier build's (:func:`diff_manifests`)."""

    image: str
    old_digest: str
    new_digest: str
    old_recipe: str
    new_recipe: str
    changed: tuple[FileChange, ...] = ()
    added: tuple[tuple[str, str], ...] = ()
    removed: tuple[tuple[str, str], ...] = ()
    moved: tuple[Move, ...] = ()
    args: tuple[ArgChange, ...] = ()
    parents: tuple[ParentChange, ...] = ()

    @property
    def files(self) -> int:
        """How many members differ in any way (changed, added, removed or moved)."""
        return len(self.changed) + len(self.added) + len(self.removed) + len(self.moved)

    @property
    def empty(self) -> bool:
        """True when members, args, parents and recipe are all the same."""
        return not (self.files or self.args or self.parents) and (
            self.old_recipe == self.new_recipe
        )

    def _parts(self, short: bool) -> list[str]:
        parts = []
        if self.old_recipe != self.new_recipe:
            parts.append(f"recipe changed: {self.old_recipe} -> {self.new_recipe}")
        if self.files:
            text = f"{_plural(self.files, 'file')} changed"
            if short:
                counts = [(len(self.added), "added"), (len(self.removed), "removed"),
                          (len(self.moved), "moved")]
                text += "".join(f", {n} {word}" for n, word in counts if n)
            else:
                if self.changed:
                    text += f" ({_first([c.path for c in self.changed])})"
                text += f", {len(self.added)} added, {len(self.removed)} removed"
                if self.moved:
                    moves = [f"{m.old_path} -> {m.new_path}" for m in self.moved]
                    text += f", {len(self.moved)} moved ({_first(moves)})"
            parts.append(text)
        if self.args:
            parts.append("args changed: " + ", ".join(a.name for a in self.args))
        for parent in self.parents:
            parts.append(
                attrs.evolve(parent, summary=None).describe() if short else parent.describe()
            )
        return parts

    def summary(self) -> str:
        """The one-line explanation (see ``docs/manifest.rst``).

        >>> old = ContextManifest("a", "0" * 64, "seed", {"x": "1" * 64})
        >>> new = ContextManifest("a", "2" * 64, "seed", {"x": "3" * 64, "y": "4" * 64})
        >>> diff_manifests(old, new).summary()
        '2 files changed (x), 1 added, 0 removed'
        """
        parts = self._parts(short=False)
        if parts:
            return "; ".join(parts)
        if self.old_digest == self.new_digest:
            return "unchanged since the earlier build"
        return "same members, args and parents as the earlier build; only the digest differs"

    def short(self) -> str:
        """The summary without paths or zero counts, for a child's ``(its ...)``; empty
        when nothing differs."""
        return "; ".join(self._parts(short=True))

    def to_json(self) -> dict[str, Any]:
        """Return every difference as JSON values (read back with :meth:`from_json`)."""
        return {
            "image": self.image,
            "old_digest": self.old_digest,
            "new_digest": self.new_digest,
            "old_recipe": self.old_recipe,
            "new_recipe": self.new_recipe,
            "changed": [{"path": c.path, "old": c.old, "new": c.new} for c in self.changed],
            "added": [{"path": p, "sha256": h} for p, h in self.added],
            "removed": [{"path": p, "sha256": h} for p, h in self.removed],
            "moved": [
                {"old_path": m.old_path, "new_path": m.new_path, "sha256": m.sha256}
                for m in self.moved
            ],
            "args": [{"name": a.name, "old": a.old, "new": a.new} for a in self.args],
            "parents": [attrs.asdict(p) for p in self.parents],
            "summary": self.summary(),
        }

    @classmethod
    def from_json(cls, doc: object) -> ManifestDiff:
        """Read what :meth:`to_json` wrote.

        :raises ManifestError: when ``doc`` is not such an object.
        """
        try:
            if not isinstance(doc, dict):
                raise TypeError(f"expected an object, got {type(doc).__name__}")
            return cls(
                image=_s(doc["image"]),
                old_digest=_s(doc["old_digest"]),
                new_digest=_s(doc["new_digest"]),
                old_recipe=_s(doc["old_recipe"]),
                new_recipe=_s(doc["new_recipe"]),
                changed=tuple(FileChange(_s(c["path"]), _s(c["old"]), _s(c["new"]))
                              for c in doc["changed"]),
                added=tuple((_s(a["path"]), _s(a["sha256"])) for a in doc["added"]),
                removed=tuple((_s(r["path"]), _s(r["sha256"])) for r in doc["removed"]),
                moved=tuple(Move(_s(m["old_path"]), _s(m["new_path"]), _s(m["sha256"]))
                            for m in doc["moved"]),
                args=tuple(ArgChange(_s(a["name"]), _o(a["old"]), _o(a["new"]))
                           for a in doc["args"]),
                parents=tuple(
                    ParentChange(_o(p["name"]), _o(p["old_name"]), _o(p["old_digest"]),
                                 _o(p["new_digest"]), _b(p["rebuilt"]), _o(p["summary"]))
                    for p in doc["parents"]
                ),
            )
        except (KeyError, TypeError) as e:
            raise ManifestError(f"not a manifest difference ({type(e).__name__}: {e})") from None


def _s(value: object) -> str:
    if not isinstance(value, str):
        raise TypeError(f"expected a string, got {value!r}")
    return value


def _o(value: object) -> Optional[str]:
    return None if value is None else _s(value)


def _b(value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"expected true or false, got {value!r}")
    return value


def diff_manifests(old: ContextManifest, new: ContextManifest) -> ManifestDiff:
    """Return how ``new`` differs from the earlier ``old`` (of the same image).

    A member that left one path and appeared at another with the same
    sha256 is a move, not a removal and an addition (several of one content
    are paired in path order).
    """
    before, after = dict(old.members), dict(new.members)
    changed = tuple(
        FileChange(p, before[p], after[p]) for p, _ in new.members
        if p in before and before[p] != after[p]
    )
    gone = [(p, h) for p, h in old.members if p not in after]
    came = [(p, h) for p, h in new.members if p not in before]
    by_hash: dict[str, list[str]] = {}
    for p, h in gone:
        by_hash.setdefault(h, []).append(p)
    moves = []
    added = []
    for p, h in came:
        olds = by_hash.get(h)
        if olds:
            moves.append(Move(olds.pop(0), p, h))
        else:
            added.append((p, h))
    moved_from = {m.old_path for m in moves}
    removed = tuple((p, h) for p, h in gone if p not in moved_from)
    moves.sort(key=lambda m: os.fsencode(m.old_path))

    old_args, new_args = dict(old.args), dict(new.args)
    args = tuple(
        ArgChange(n, old_args.get(n), new_args.get(n))
        for n in sorted(set(old_args) | set(new_args))
        if old_args.get(n) != new_args.get(n)
    )
    return ManifestDiff(
        image=new.image,
        old_digest=old.digest,
        new_digest=new.digest,
        old_recipe=old.recipe,
        new_recipe=new.recipe,
        changed=changed,
        added=tuple(added),
        removed=removed,
        moved=tuple(moves),
        args=args,
        parents=_parent_changes(old.parents, new.parents),
    )


def _parent_changes(
    old: Sequence[tuple[str, str]], new: Sequence[tuple[str, str]]
) -> tuple[ParentChange, ...]:
    before, after = dict(old), dict(new)
    changes = [
        ParentChange(n, n, before[n], d) for n, d in new if n in before and before[n] != d
    ]
    gone = [n for n, _ in old if n not in after]
    came = [n for n, _ in new if n not in before]
    # The first parent replaced by another reads as one change, not two.
    if old and new and old[0][0] in gone and new[0][0] in came:
        o, n = old[0][0], new[0][0]
        changes.insert(0, ParentChange(n, o, before[o], after[n]))
        gone.remove(o)
        came.remove(n)
    changes += [ParentChange(n, None, None, after[n]) for n in came]
    changes += [ParentChange(None, n, before[n], None) for n in gone]
    return tuple(changes)
