"""The backend protocol and the values that lookups pass around.

A backend answers two batched questions, which is all a lookup needs:

* :meth:`IndexBackend.find_tasks` -- which task is indexed at each of these
  namespaces (absent namespaces and expired entries are left out);
* :meth:`IndexBackend.usable_artifacts` -- for each of these tasks, can its
  artifact be used (task completed, artifact present and not expired)?

Both take every namespace or task id of a whole plan at once, so that a
remote backend can batch and parallelise its requests. Both raise
:class:`~taskgraph_images.errors.IndexBackendError` (or a subclass) when the
index cannot answer; they never guess.
"""

from __future__ import annotations

import datetime
from typing import Any, Callable, Mapping, Optional, Protocol, Sequence

import attrs

from taskgraph_images.errors import InvalidValueError
from taskgraph_images.names import is_artifact_name
from taskgraph_images.tc.time import format_time

__all__ = [
    "DEFAULT_ARTIFACT",
    "ArtifactRead",
    "Clock",
    "Found",
    "IndexBackend",
    "IndexedTask",
    "Lookup",
    "Usability",
    "utcnow",
    "validate_artifact_name",
    "verdict",
]

DEFAULT_ARTIFACT = "public/image.tar.zst"

Clock = Callable[[], datetime.datetime]



def utcnow() -> datetime.datetime:
    """Return the current time as an aware UTC datetime."""
    return datetime.datetime.now(datetime.timezone.utc)


def validate_artifact_name(name: object) -> str:
    """Return ``name`` if it is a relative artifact name such as ``public/image.tar.zst``.

    :raises InvalidValueError: otherwise (absolute, ``..``, empty segments, odd characters).
    """
    if not isinstance(name, str) or not is_artifact_name(name):
        raise InvalidValueError(f"invalid artifact name {name!r}")
    return name


def _aware(value: datetime.datetime) -> datetime.datetime:
    if value.tzinfo is None:
        raise InvalidValueError(f"invalid expiry {value!r}: the datetime has no timezone")
    return value


@attrs.frozen
class IndexedTask:
    """An Index entry: the task indexed at ``namespace``."""

    namespace: str
    task_id: str
    rank: float
    expires: datetime.datetime = attrs.field(validator=lambda _s, _a, v: _aware(v))
    data: Mapping[str, Any] = attrs.field(factory=dict)

    def to_json(self) -> dict[str, Any]:
        """Return the Index service's representation (``indexed-task-response``)."""
        return {
            "namespace": self.namespace,
            "taskId": self.task_id,
            "rank": self.rank,
            "data": dict(self.data),
            "expires": format_time(self.expires),
        }


@attrs.frozen
class ArtifactRead:
    """The content of a small artifact, or why it could not be read (``problem``)."""

    data: Optional[bytes] = None
    problem: str = ""


@attrs.frozen
class Usability:
    """Whether a task's artifact can be reused, and if not, why (``reason``)."""

    usable: bool
    reason: str = ""


def verdict(
    state: Optional[str],
    artifact_expires: Optional[datetime.datetime],
    now: datetime.datetime,
    *,
    artifact_exists: bool = True,
    needed_until: Optional[datetime.datetime] = None,
) -> Usability:
    """Decide whether a task's artifact is usable (pure): the one reuse verdict.

    ``state`` is the task's state (``None``: the queue does not know the
    task); ``artifact_expires`` is ``None`` when the artifact does not exist.
    A task that is not ``completed`` (``failed``, ``exception``, still
    running...) is never used, nor an artifact that is missing or expired at
    ``now``. ``needed_until``, when given, is the last moment the artifact
    is needed (the deadline of the tasks that use it): an artifact that
    expires by then is not used either.

    >>> import datetime as dt
    >>> t = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    >>> verdict("completed", t + dt.timedelta(days=1), t).usable
    True
    >>> verdict("completed", t + dt.timedelta(days=1), t, needed_until=t + dt.timedelta(days=2))
    Usability(usable=False, reason='artifact expires too soon')
    """
    if state is None:
        return Usability(False, "task unknown")
    if state != "completed":
        return Usability(False, f"task {state}")
    if not artifact_exists or artifact_expires is None:
        return Usability(False, "artifact missing")
    if artifact_expires <= now:
        return Usability(False, "artifact expired")
    if needed_until is not None and artifact_expires <= needed_until:
        return Usability(False, "artifact expires too soon")
    return Usability(True)


class IndexBackend(Protocol):
    """What :func:`~taskgraph_images.index.find_images` needs from an index."""

    @property
    def description(self) -> str:
        """A short human description, e.g. ``local index at /path/index.sqlite``."""
        ...

    def find_tasks(self, namespaces: Sequence[str]) -> dict[str, IndexedTask]:
        """Return the live entry at each namespace that has one.

        :raises IndexBackendError: when the index cannot answer.
        """
        ...

    def usable_artifacts(self, task_ids: Sequence[str], artifact: str) -> dict[str, Usability]:
        """Return a verdict for every task id given.

        :raises IndexBackendError: when the index or queue cannot answer.
        """
        ...


@attrs.frozen
class Found:
    """A reusable image: the task that built it and where it was indexed."""

    task_id: str
    namespace: str
    level: int


@attrs.frozen
class Lookup:
    """The outcome of looking up one image.

    ``found`` is ``None`` when the image must be built; ``reason`` says why
    (``"not indexed"``, ``"artifact expired at level 3"``, ``"index
    unavailable: ..."``) or, when found, where it came from. ``index_error``
    is set when ``on_error="build"`` turned an unreachable index into a build.
    """

    name: str
    digest: str
    level: int
    found: Optional[Found]
    reason: str
    index_error: Optional[str] = None

    @property
    def reuse(self) -> bool:
        """True when an indexed image can be reused."""
        return self.found is not None
