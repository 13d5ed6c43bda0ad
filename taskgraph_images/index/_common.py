"""Small helpers the embedded backends share (pure)."""

from __future__ import annotations

import datetime
from typing import Any, Iterable, Mapping, NamedTuple, Optional, Sequence

from taskgraph_images.errors import InvalidValueError
from taskgraph_images.index._base import IndexedTask
from taskgraph_images.keys.namespaces import (
    PushDate,
    index_namespaces,
    validate_namespace,
    validate_task_id,
)

__all__ = [
    "DEFAULT_EXPIRY",
    "TASK_STATES",
    "BuildRecord",
    "build_record",
    "children",
    "new_task_id",
    "replaces",
    "validate_data",
    "validate_rank",
    "validate_state",
]

DEFAULT_EXPIRY = datetime.timedelta(days=365)
TASK_STATES = ("unscheduled", "pending", "running", "completed", "failed", "exception")


class BuildRecord(NamedTuple):
    """What recording one finished build writes: its task id, namespaces and entry data."""

    task_id: str
    namespaces: tuple[str, ...]
    data: dict[str, Any]


def build_record(
    level: int, name: str, digest: str, pushdate: PushDate, task_id: Optional[str], prefix: str,
    namespaces: Optional[Sequence[str]] = None,
) -> BuildRecord:
    """Validate a build to record and return what the index holds for it.

    The build is indexed under ``namespaces`` when given (taskgraph's, say),
    else under the three namespaces of ``prefix``.

    :raises InvalidValueError: for an invalid level, name, digest, date, task
        id or namespace.
    """
    chosen: tuple[str, ...] = index_namespaces(level, name, digest, pushdate, prefix=prefix)
    if namespaces is not None:
        chosen = tuple(validate_namespace(n) for n in namespaces)
        if not chosen:
            raise InvalidValueError(f"a build of {name!r} needs at least one namespace")
    task_id = validate_task_id(task_id) if task_id is not None else new_task_id()
    return BuildRecord(task_id, chosen, {"image": name, "digest": digest, "level": level})


def new_task_id() -> str:
    """Return a fresh task id in Taskcluster's form: ``slugid.nice()``, a v4
    slugid that never starts with ``-``."""
    import slugid

    return str(slugid.nice())


def replaces(old: Optional[IndexedTask], rank: float, now: datetime.datetime) -> bool:
    """Return True if an insert with ``rank`` replaces ``old`` (Index semantics).

    A higher or equal rank replaces the entry; an expired entry is as good as absent.
    """
    return old is None or old.expires <= now or rank >= old.rank


def validate_rank(rank: object) -> float:
    """Return ``rank`` as a float if it is a finite number.

    :raises InvalidValueError: otherwise.
    """
    if isinstance(rank, bool) or not isinstance(rank, (int, float)) or rank != rank:
        raise InvalidValueError(f"invalid rank {rank!r}: expected a number")
    if rank in (float("inf"), float("-inf")):
        raise InvalidValueError(f"invalid rank {rank!r}: expected a finite number")
    return float(rank)


def validate_data(data: Optional[Mapping[str, Any]]) -> dict[str, Any]:
    """Return a copy of ``data`` (a JSON object), ``{}`` for ``None``.

    :raises InvalidValueError: when it is not a mapping with string keys.
    """
    if data is None:
        return {}
    if not isinstance(data, Mapping) or not all(isinstance(k, str) for k in data):
        raise InvalidValueError(f"invalid index data {data!r}: expected a JSON object")
    return dict(data)


def validate_state(state: object) -> str:
    """Return ``state`` if it is a Queue task state.

    :raises InvalidValueError: otherwise.
    """
    if state not in TASK_STATES:
        raise InvalidValueError(f"invalid task state {state!r}: expected one of {TASK_STATES}")
    assert isinstance(state, str)
    return state


def children(namespace: str, candidates: Iterable[str], *, recursive: bool) -> list[str]:
    """Return the namespaces of ``candidates`` under ``namespace``, sorted.

    Without ``recursive``, only those immediately under it (the Index
    service's ``listTasks``). An empty ``namespace`` is the root.
    """
    if namespace:
        validate_namespace(namespace)
        head = namespace + "."
    else:
        head = ""
    found = []
    for name in candidates:
        if not name.startswith(head):
            continue
        rest = name[len(head) :]
        if rest and (recursive or "." not in rest):
            found.append(name)
    return sorted(found)
