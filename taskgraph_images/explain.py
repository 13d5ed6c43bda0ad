"""Why an image is built: compare its manifest with the last trusted build's.

For each image to explain, the candidates are the ``latest`` namespaces of
the image at the push's level and every higher one (never a lower one: the
same trust rule as the lookup, see ``docs/index-lookup.rst``): this
library's by default, taskgraph's with ``cache-keys: taskgraph`` (a
``latest_order`` such as :meth:`~taskgraph_images.keys.indexkeys.IndexKeys.latest`). Of the
candidates indexed, the one with the highest rank wins, the push's own level
first on equal ranks. That task's context manifest artifact is fetched and
compared with the tree's (:func:`~taskgraph_images.manifest.diff_manifests`).

The index is asked once for every image's candidates (a plan passes them
along with its own lookups through :class:`Prefetch`), and the manifests
are fetched in one :meth:`read_artifacts` call, which a remote backend runs
concurrently. Whatever goes wrong reading an earlier manifest -- missing,
malformed, oversized, the index unreachable -- only gives the explanation
:data:`NO_MANIFEST` and a line in :attr:`Explanations.warning`; it never
raises.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Sequence

import attrs

from taskgraph_images.errors import IndexBackendError, ManifestError
from taskgraph_images.index import IndexedTask, Usability
from taskgraph_images.keys.namespaces import (
    DEFAULT_PREFIX,
    LEVELS,
    Candidate,
    latest_namespace,
    validate_level,
)
from taskgraph_images.manifest import (
    DEFAULT_MANIFEST_ARTIFACT,
    MAX_MANIFEST_BYTES,
    ContextManifest,
    ManifestDiff,
    diff_manifests,
    parse_manifest,
)

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.index import IndexBackend, SearchOrder

__all__ = [
    "FIRST_BUILD",
    "NO_INDEX",
    "NO_MANIFEST",
    "Explanation",
    "Explanations",
    "LatestOrder",
    "Prefetch",
    "best_candidate",
    "explain_builds",
    "latest_candidates",
    "link_parents",
]

#: The explanation of an image no trusted level has built before.
FIRST_BUILD = "first build of this image"
#: The explanation when the last trusted build has no readable manifest.
NO_MANIFEST = "no earlier manifest to compare (built before manifests were recorded)"
#: The explanation when the index could not answer the plan's lookup at all
#: (the plan's own warning says so: no second one).
NO_INDEX = "no earlier manifest to compare (the index could not answer)"

#: Gives the ``latest`` namespaces to compare ``(name, level)`` against, the
#: push's level first; a candidate below ``level`` is never used.
LatestOrder = Callable[[str, int], Sequence[Candidate]]


def latest_candidates(name: str, level: int, *, prefix: str = DEFAULT_PREFIX) -> list[str]:
    """Return the ``latest`` namespaces an explanation for a push at ``level`` may use.

    >>> [n.split(".")[3] for n in latest_candidates("builder", 2)]
    ['level-2', 'level-3']
    """
    validate_level(level)
    return [latest_namespace(lv, name, prefix=prefix) for lv in LEVELS if lv >= level]


def _seed_order(prefix: str) -> LatestOrder:
    from taskgraph_images.keys.indexkeys import IndexKeys

    return IndexKeys(prefix=prefix).latest


def _trusted(order: LatestOrder, name: str, level: int) -> list[Candidate]:
    """``order``'s candidates for ``name`` that a push at ``level`` trusts (never a lower level)."""
    validate_level(level)
    return [c for c in order(name, level) if c.level >= level]


@attrs.frozen
class Explanation:
    """Why one image is built, as far as the earlier builds tell."""

    #: The image name.
    name: str
    #: The one-line explanation.
    text: str
    #: The full difference, when an earlier manifest was compared.
    diff: Optional[ManifestDiff] = None
    #: The task of the earlier build compared against (or whose manifest was unreadable).
    earlier_task: Optional[str] = None
    #: The level that task was indexed at.
    earlier_level: Optional[int] = None
    #: Why no earlier manifest could be read, when one should have been.
    problem: Optional[str] = None


@attrs.frozen
class Explanations:
    """The explanations of several images, and the one warning line their problems make."""

    by_name: Mapping[str, Explanation]

    @property
    def warning(self) -> Optional[str]:
        """One line naming every image whose earlier manifest could not be read, or ``None``."""
        problems = [e for e in self.by_name.values() if e.problem]
        if not problems:
            return None
        shown = "; ".join(f"{e.name}: {e.problem}" for e in problems[:3])
        more = f"; +{len(problems) - 3} more" if len(problems) > 3 else ""
        count = f"{len(problems)} image{'s' if len(problems) != 1 else ''}"
        return f"no earlier manifest could be read for {count} ({shown}{more})"


class Prefetch:
    """An index backend that asks for the ``latest`` namespaces along with the first lookup.

    A plan hands this to :func:`~taskgraph_images.index.find_images` in
    place of ``index``, so the ``latest`` namespaces of ``images`` (``(name,
    digest, in-tree task-image parents)``, parents first) travel in the
    same batched request as the ``hash`` ones. As soon as that answer is
    in, the manifests of the images that will surely be built (no ``hash``
    entry at a trusted level, or such an ancestor) start downloading on
    another thread, while the lookup goes on checking the indexed tasks;
    :meth:`explain` then waits for them. :attr:`extra` holds what the index
    answered for the ``latest`` namespaces (``None`` until a first
    :meth:`find_tasks` call succeeded).

    ``search`` is the plan's lookup order (default: this library's ``hash``
    namespaces under ``prefix``) and ``latest_order`` where the earlier
    builds are (default: this library's ``latest`` namespaces under
    ``prefix``): with ``cache-keys: taskgraph``, taskgraph's for both.
    """

    def __init__(
        self,
        index: IndexBackend,
        images: Sequence[tuple[str, str, Sequence[str]]],
        level: int,
        *,
        prefix: str = DEFAULT_PREFIX,
        artifact: str = DEFAULT_MANIFEST_ARTIFACT,
        search: Optional[SearchOrder] = None,
        latest_order: Optional[LatestOrder] = None,
    ) -> None:
        self.index = index
        self._images = list(images)
        self._level = level
        self._prefix = prefix
        self._artifact = artifact
        if search is None:
            from taskgraph_images.keys.indexkeys import IndexKeys

            search = IndexKeys(prefix=prefix).search
        self._search = search
        self._order = latest_order if latest_order is not None else _seed_order(prefix)
        self._wanted = [c.namespace for name, _, _ in self._images
                        for c in _trusted(self._order, name, level)]
        self.extra: Optional[dict[str, IndexedTask]] = None
        self._fetch: Optional[threading.Thread] = None
        self._fetched: dict[str, Any] = {}
        self._fetch_problem = ""

    @property
    def description(self) -> str:
        """The wrapped backend's description."""
        return self.index.description

    def find_tasks(self, namespaces: Sequence[str]) -> dict[str, IndexedTask]:
        """Answer ``namespaces``; the first call also asks for the ``latest`` namespaces."""
        if self.extra is not None or not self._wanted:
            return self.index.find_tasks(namespaces)
        asked = set(namespaces)
        answer = self.index.find_tasks([*namespaces, *(n for n in self._wanted if n not in asked)])
        self.extra = {n: answer[n] for n in self._wanted if n in answer}
        found = {n: e for n, e in answer.items() if n in asked}
        self._start_fetch(found)
        return found

    def usable_artifacts(self, task_ids: Sequence[str], artifact: str) -> dict[str, Usability]:
        """The wrapped backend's verdicts."""
        return self.index.usable_artifacts(task_ids, artifact)

    def _start_fetch(self, found: Mapping[str, IndexedTask]) -> None:
        assert self.extra is not None
        built: set[str] = set()
        for name, digest, parents in self._images:
            candidates = self._search(name, digest, self._level)
            if not any(c.namespace in found for c in candidates) or built.intersection(parents):
                built.add(name)
        task_ids = sorted({
            pick[1].task_id for name in built
            for pick in [best_candidate(_trusted(self._order, name, self._level), self.extra)] if pick
        })
        if not task_ids:
            return

        def fetch() -> None:
            self._fetched, self._fetch_problem = _read_manifests(
                self.index, task_ids, self._artifact)

        self._fetch = threading.Thread(target=fetch, name="manifests", daemon=True)
        self._fetch.start()

    def explain(self, manifests: Mapping[str, ContextManifest]) -> Explanations:
        """Explain the builds of ``manifests`` (see :func:`explain_builds`), with what was fetched.

        When the lookup could not ask the index, every image gets
        :data:`NO_INDEX` (and no problem: the lookup reports the index's error).
        """
        if self._fetch is not None:
            self._fetch.join()
        if self.extra is None:
            return Explanations({n: Explanation(n, NO_INDEX) for n in manifests})
        return explain_builds(
            self.index, manifests, self._level, prefix=self._prefix, artifact=self._artifact,
            latest=self.extra, fetched=self._fetched, fetch_problem=self._fetch_problem,
            latest_order=self._order,
        )


def best_candidate(
    candidates: Sequence[Candidate], entries: Mapping[str, IndexedTask]
) -> Optional[tuple[int, IndexedTask]]:
    """Return ``(level, entry)`` of the indexed candidate of highest rank (the first of
    ``candidates`` on equal ranks), or ``None`` when ``entries`` (namespace -> indexed task)
    holds none of them: the earlier build an explanation compares against."""
    best: Optional[tuple[int, IndexedTask]] = None
    for candidate in candidates:
        entry = entries.get(candidate.namespace)
        if entry is not None and (best is None or entry.rank > best[1].rank):
            best = (candidate.level, entry)
    return best


def _read_manifests(
    index: IndexBackend, task_ids: Sequence[str], artifact: str
) -> tuple[dict[str, Any], str]:
    """Return ``({task id: ArtifactRead}, problem)``: what the index gave, and why not all."""
    reader = getattr(index, "read_artifacts", None)
    if reader is None:
        return {}, f"the {index.description} cannot serve artifacts"
    try:
        return dict(reader(task_ids, artifact, limit=MAX_MANIFEST_BYTES)), ""
    except IndexBackendError as e:
        return {}, f"the index cannot answer: {e}"
    except Exception as e:  # a backend's own failure: an explanation never stops a plan
        return {}, f"the {index.description} failed to read manifests: {type(e).__name__}: {e}"


def explain_builds(
    index: IndexBackend,
    manifests: Mapping[str, ContextManifest],
    level: int,
    *,
    prefix: str = DEFAULT_PREFIX,
    artifact: str = DEFAULT_MANIFEST_ARTIFACT,
    latest: Optional[Mapping[str, IndexedTask]] = None,
    fetched: Optional[Mapping[str, Any]] = None,
    fetch_problem: str = "",
    latest_order: Optional[LatestOrder] = None,
) -> Explanations:
    """Explain each image of ``manifests`` (name -> the tree's manifest) for a push at ``level``.

    ``latest`` is what the index answered for the images' candidates, and
    ``fetched`` the manifests already read (task id -> ``ArtifactRead``),
    when the caller has them (see :class:`Prefetch`); the rest is asked
    here. ``artifact`` is the name the builds publish their manifests as;
    ``latest_order`` where the earlier builds are indexed (default: this
    library's ``latest`` namespaces under ``prefix``).
    """
    validate_level(level)
    order = latest_order if latest_order is not None else _seed_order(prefix)
    names = list(manifests)
    candidates = {n: _trusted(order, n, level) for n in names}
    result: dict[str, Explanation] = {}
    if latest is None:
        wanted = [c.namespace for n in names for c in candidates[n]]
        try:
            latest = index.find_tasks(wanted) if wanted else {}
        except IndexBackendError as e:
            return Explanations({
                n: Explanation(n, NO_MANIFEST, problem=f"the index cannot answer: {e}")
                for n in names
            })
    chosen: dict[str, tuple[int, IndexedTask]] = {}
    for name in names:
        pick = best_candidate(candidates[name], latest)
        if pick is None:
            result[name] = Explanation(name, FIRST_BUILD)
        else:
            chosen[name] = pick
    reads: dict[str, Any] = dict(fetched or {})
    missing = sorted({e.task_id for _, e in chosen.values() if e.task_id not in reads})
    problem = ""
    if missing:
        more, problem = _read_manifests(index, missing, artifact)
        reads.update(more)
    for name, (lv, entry) in chosen.items():
        base = Explanation(name, NO_MANIFEST, earlier_task=entry.task_id, earlier_level=lv)
        read = reads.get(entry.task_id)
        if read is None or read.data is None:
            why = read.problem if read is not None else (problem or fetch_problem or "no answer")
            result[name] = attrs.evolve(base, problem=why)
            continue
        try:
            old = parse_manifest(read.data, source=f"task {entry.task_id}'s {artifact}")
        except ManifestError as e:
            result[name] = attrs.evolve(base, problem=str(e))
            continue
        if old.image != name:
            result[name] = attrs.evolve(
                base, problem=f"task {entry.task_id}'s {artifact} is image {old.image!r}'s"
            )
            continue
        diff = diff_manifests(old, manifests[name])
        result[name] = attrs.evolve(base, text=diff.summary(), diff=diff)
    return Explanations({n: result[n] for n in names})


def link_parents(explanations: Explanations, rebuilt: Sequence[str]) -> Explanations:
    """Fill in each changed parent that is ``rebuilt`` too: ``parent base rebuilt (its ...)``.

    ``explanations`` are in parents-first order; a parent's summary is its
    own difference's :meth:`~taskgraph_images.manifest.ManifestDiff.short`.
    """
    built = set(rebuilt)
    out: dict[str, Explanation] = {}
    for name, e in explanations.by_name.items():
        if e.diff is None or not e.diff.parents:
            out[name] = e
            continue
        changes = []
        for change in e.diff.parents:
            if change.name is not None and change.name == change.old_name and change.name in built:
                parent = out.get(change.name) or explanations.by_name.get(change.name)
                summary = (parent.diff.short() or None) if parent and parent.diff else None
                change = attrs.evolve(change, rebuilt=True, summary=summary)
            changes.append(change)
        diff = attrs.evolve(e.diff, parents=tuple(changes))
        out[name] = attrs.evolve(e, diff=diff, text=diff.summary())
    return Explanations(out)
