"""Find reusable images: the lookup decision over a backend (no I/O of its own).

For every image the candidates of :func:`search_order` are tried in order;
the first whose indexed task is usable wins. All images are looked up
together: one :meth:`~IndexBackend.find_tasks` call for every candidate
namespace of every image, then at most one
:meth:`~IndexBackend.usable_artifacts` call per level (only for the images
still undecided), so a remote backend can batch each step.
"""

from __future__ import annotations

from typing import Callable, Literal, Mapping, Optional, Sequence

from taskgraph_images.errors import IndexBackendError, InvalidValueError
from taskgraph_images.index._base import (
    DEFAULT_ARTIFACT,
    Found,
    IndexBackend,
    Lookup,
    Usability,
    validate_artifact_name,
)
from taskgraph_images.keys.namespaces import (
    DEFAULT_PREFIX,
    Candidate,
    search_order,
    validate_digest,
    validate_level,
    validate_name,
)

__all__ = ["NOT_INDEXED", "OnError", "SearchOrder", "decide", "find_image", "find_images"]

#: A build's reason when no level's index holds a usable build of its digest.
NOT_INDEXED = "not indexed"

OnError = Literal["raise", "build"]
#: Gives the candidates to try for ``(name, digest, level)``, in order.
SearchOrder = Callable[[str, str, int], Sequence[Candidate]]


def decide(
    name: str,
    digest: str,
    level: int,
    candidates: Sequence[Candidate],
    tasks: Mapping[str, str],
    verdicts: Mapping[str, Usability],
) -> Optional[Lookup]:
    """Return the lookup's outcome, or ``None`` if a verdict is still needed (pure).

    ``tasks`` maps each indexed namespace to its task id, ``verdicts`` each
    task id to :func:`~taskgraph_images.index.verdict`'s answer.
    Walks ``candidates`` in order: unindexed ones are passed over, indexed
    ones a push at ``level`` must not trust (:meth:`Candidate.distrust`) are
    skipped with the reason, the first indexed one without a verdict stops
    the walk (``None``), unusable ones are skipped with their reason, and
    the first usable one wins. The plan and the taskgraph strategy
    (:mod:`taskgraph_images.taskgraph`) both decide here.
    """
    skipped: list[str] = []
    for candidate in candidates:
        task_id = tasks.get(candidate.namespace)
        if task_id is None:
            continue
        distrust = candidate.distrust(level)
        if distrust is not None:
            skipped.append(f"not trusted: {distrust}")
            continue
        usability = verdicts.get(task_id)
        if usability is None:
            return None
        if usability.usable:
            found = Found(task_id, candidate.namespace, candidate.level)
            reason = f"indexed at {candidate.where}"
            if skipped:
                reason += f" ({'; '.join(skipped)})"
            return Lookup(name, digest, level, found, reason)
        skipped.append(f"{usability.reason} at {candidate.where}")
    reason = "; ".join(skipped) if skipped else NOT_INDEXED
    return Lookup(name, digest, level, None, reason)


def _next_task_id(
    candidates: Sequence[Candidate],
    tasks: Mapping[str, str],
    verdicts: Mapping[str, Usability],
    level: int,
) -> Optional[str]:
    for candidate in candidates:
        task_id = tasks.get(candidate.namespace)
        if task_id is not None and candidate.distrust(level) is None and task_id not in verdicts:
            return task_id
    return None  # pragma: no cover - decide() returned a result first


def _unknown(name: str, digest: str, level: int, error: IndexBackendError) -> Lookup:
    message = str(error)
    return Lookup(name, digest, level, None, f"index unavailable: {message}", message)


def find_images(
    index: IndexBackend,
    requests: Sequence[tuple[str, str]],
    level: int,
    *,
    prefix: str = DEFAULT_PREFIX,
    artifact: str = DEFAULT_ARTIFACT,
    on_error: OnError = "raise",
    search: Optional[SearchOrder] = None,
) -> dict[str, Lookup]:
    """Look up every ``(name, digest)`` for a push at ``level``; return ``{name: Lookup}``.

    ``search`` gives each image's candidates (default: :func:`search_order`
    with ``prefix``); taskgraph's cache keys bring their own.

    ``on_error="raise"`` (the default) lets an unreachable index stop the
    caller; ``on_error="build"`` marks every image the failure affected as
    to be built, with the error in :attr:`Lookup.index_error`.

    :raises InvalidValueError: for an invalid level, name, digest, prefix,
        artifact name or ``on_error``, or one name given with two digests.
    :raises IndexBackendError: when the index cannot answer and ``on_error="raise"``.
    """
    validate_level(level)
    validate_artifact_name(artifact)
    if on_error not in ("raise", "build"):
        raise InvalidValueError(f"invalid on_error {on_error!r}: expected 'raise' or 'build'")
    wanted: dict[str, str] = {}
    for name, digest in requests:
        validate_name(name)
        validate_digest(digest)
        if wanted.setdefault(name, digest) != digest:
            raise InvalidValueError(f"image {name!r} requested with two digests")
    orders = {
        name: (tuple(search(name, digest, level)) if search is not None
               else search_order(name, digest, level, prefix=prefix))
        for name, digest in wanted.items()
    }
    results: dict[str, Lookup] = {}
    if not orders:
        return results

    namespaces = sorted({c.namespace for order in orders.values() for c in order})
    try:
        tasks = {ns: e.task_id for ns, e in index.find_tasks(namespaces).items()}
    except IndexBackendError as e:
        if on_error == "raise":
            raise
        return {name: _unknown(name, wanted[name], level, e) for name in orders}

    verdicts: dict[str, Usability] = {}
    pending = dict(orders)
    while pending:
        needed: dict[str, str] = {}
        for name, order in pending.items():
            outcome = decide(name, wanted[name], level, order, tasks, verdicts)
            if outcome is not None:
                results[name] = outcome
            else:
                task_id = _next_task_id(order, tasks, verdicts, level)
                assert task_id is not None
                needed[name] = task_id
        pending = {name: orders[name] for name in needed}
        if not needed:
            break
        try:
            answer = index.usable_artifacts(sorted(set(needed.values())), artifact)
        except IndexBackendError as e:
            if on_error == "raise":
                raise
            for name in needed:
                results[name] = _unknown(name, wanted[name], level, e)
            break
        for task_id in set(needed.values()):
            verdicts[task_id] = answer.get(task_id, Usability(False, "task unknown"))
    return {name: results[name] for name in wanted}


def find_image(
    index: IndexBackend,
    name: str,
    digest: str,
    level: int,
    *,
    prefix: str = DEFAULT_PREFIX,
    artifact: str = DEFAULT_ARTIFACT,
    on_error: OnError = "raise",
) -> Lookup:
    """Look up one image; see :func:`find_images` (which a planner should prefer).

    >>> from taskgraph_images.index import MemoryIndex
    >>> find_image(MemoryIndex(), "builder", "0" * 64, 3).reason
    'not indexed'

    :raises InvalidValueError: for an invalid level, name, digest or prefix.
    :raises IndexBackendError: when the index cannot answer and ``on_error="raise"``.
    """
    return find_images(
        index, [(name, digest)], level, prefix=prefix, artifact=artifact, on_error=on_error
    )[name]
