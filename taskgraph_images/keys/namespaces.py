"""Index namespaces of image build tasks and the trusted search order (pure).

A build task of image ``name`` with context digest ``digest``, run for a push
at ``level`` on ``pushdate``, is indexed under three namespaces::

    {prefix}.level-{level}.{name}.latest
    {prefix}.level-{level}.{name}.pushdate.{YYYY}.{MM}-{DD}-{HHMMSS}
    {prefix}.level-{level}.{name}.hash.{digest}

A lookup only ever reads the ``hash`` namespaces, starting at the push's own
level and going *up* to level 3, never down (see ``docs/index-lookup.rst``);
a plan's explanations read the ``latest`` ones under the same rule
(:mod:`taskgraph_images.explain`).
"""

from __future__ import annotations

import datetime
from typing import Optional, Union

import attrs

from taskgraph_images import names
from taskgraph_images.errors import InvalidValueError

__all__ = [
    "DEFAULT_PREFIX",
    "LEVELS",
    "Candidate",
    "PushDate",
    "hash_namespace",
    "index_namespaces",
    "latest_namespace",
    "pushdate_path",
    "search_order",
    "validate_digest",
    "validate_level",
    "validate_name",
    "validate_namespace",
    "validate_prefix",
    "validate_task_id",
]

DEFAULT_PREFIX = "docker.images.v2"
LEVELS = (1, 2, 3)


PushDate = Union[int, float, datetime.datetime]


def validate_level(level: object) -> int:
    """Return ``level`` if it is 1, 2 or 3 (an ``int``, not a ``bool``).

    :raises InvalidValueError: otherwise.
    """
    if isinstance(level, bool) or not isinstance(level, int) or level not in LEVELS:
        raise InvalidValueError(f"invalid level {level!r}: expected 1, 2 or 3")
    return level


#: Alias of :func:`taskgraph_images.names.image_name`.
validate_name = names.image_name


#: Alias of :func:`taskgraph_images.names.digest`.
validate_digest = names.digest


def validate_prefix(prefix: object) -> str:
    """Return ``prefix`` if it is dot-separated words of ``[A-Za-z0-9_-]``.

    :raises InvalidValueError: otherwise.
    """
    if not isinstance(prefix, str) or not names.is_dotted_words(prefix):
        raise InvalidValueError(
            f"invalid index prefix {prefix!r}: expected dot-separated words of "
            "letters, digits, '-' and '_'"
        )
    return prefix


#: Alias of :func:`taskgraph_images.names.namespace`.
validate_namespace = names.namespace
#: Alias of :func:`taskgraph_images.names.task_id`.
validate_task_id = names.task_id


def pushdate_path(pushdate: PushDate) -> str:
    """Return ``YYYY.MM-DD-HHMMSS`` for ``pushdate`` in UTC.

    ``pushdate`` is epoch seconds or an aware datetime.

    >>> pushdate_path(1478546787)
    '2016.11-07-192627'

    :raises InvalidValueError: for a naive datetime or anything else.
    """
    if isinstance(pushdate, datetime.datetime):
        if pushdate.tzinfo is None or pushdate.utcoffset() is None:
            raise InvalidValueError(f"invalid push date {pushdate!r}: the datetime has no timezone")
        when = pushdate.astimezone(datetime.timezone.utc)
    elif isinstance(pushdate, (int, float)) and not isinstance(pushdate, bool):
        try:
            when = datetime.datetime.fromtimestamp(pushdate, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError) as e:
            raise InvalidValueError(f"invalid push date {pushdate!r}: {e}") from e
    else:
        raise InvalidValueError(
            f"invalid push date {pushdate!r}: expected epoch seconds or an aware datetime"
        )
    return when.strftime("%Y.%m-%d-%H%M%S")


def _base(level: object, name: object, prefix: object) -> str:
    return f"{validate_prefix(prefix)}.level-{validate_level(level)}.{validate_name(name)}"


def hash_namespace(
    level: int, name: str, digest: str, *, prefix: str = DEFAULT_PREFIX
) -> str:
    """Return ``{prefix}.level-{level}.{name}.hash.{digest}``.

    :raises InvalidValueError: for an invalid level, name, digest or prefix.
    """
    return f"{_base(level, name, prefix)}.hash.{validate_digest(digest)}"


def latest_namespace(level: int, name: str, *, prefix: str = DEFAULT_PREFIX) -> str:
    """Return ``{prefix}.level-{level}.{name}.latest``: the last build of ``name`` at ``level``.

    :raises InvalidValueError: for an invalid level, name or prefix.
    """
    return f"{_base(level, name, prefix)}.latest"


def index_namespaces(
    level: int,
    name: str,
    digest: str,
    pushdate: PushDate,
    *,
    prefix: str = DEFAULT_PREFIX,
) -> tuple[str, str, str]:
    """Return the ``latest``, ``pushdate`` and ``hash`` namespaces, in this order.

    >>> index_namespaces(3, "builder", "0" * 64, 1478546787)[1]
    'docker.images.v2.level-3.builder.pushdate.2016.11-07-192627'

    Build-task routes are these namespaces prefixed ``index.``.

    :raises InvalidValueError: naming the invalid level, name, digest, prefix or date.
    """
    base = _base(level, name, prefix)
    digest = validate_digest(digest)
    return (
        f"{base}.latest",
        f"{base}.pushdate.{pushdate_path(pushdate)}",
        f"{base}.hash.{digest}",
    )


@attrs.frozen
class Candidate:
    """One place a lookup tries: the ``hash`` namespace at ``level``.

    ``pull_request`` marks taskgraph's pull-request namespace, whose builds
    run at level 1: a lookup trusts it only for a push at level 1.
    """

    level: int
    namespace: str
    pull_request: bool = False

    @property
    def where(self) -> str:
        """``level 3``, or ``the pull-request namespace``: where an entry was found, in reasons."""
        return "the pull-request namespace" if self.pull_request else f"level {self.level}"

    def distrust(self, level: int) -> Optional[str]:
        """Why a push at ``level`` must not use this candidate's entry, or ``None`` (pure).

        Never an entry of a lower level than the push's; a pull request's
        only for a push at level 1.

        >>> Candidate(1, "p.cache.pr.x", pull_request=True).distrust(3)
        'a pull-request entry at a level 3 push'
        >>> Candidate(1, "p.cache.level-1.x").distrust(3)
        'a level 1 entry at a level 3 push'
        """
        if self.pull_request:
            return None if level == 1 else f"a pull-request entry at a level {level} push"
        return None if self.level >= level else f"a level {self.level} entry at a level {level} push"


def search_order(
    name: str, digest: str, level: int, *, prefix: str = DEFAULT_PREFIX
) -> tuple[Candidate, ...]:
    """Return the candidates a lookup for a push at ``level`` tries, in order.

    The push's own level comes first, then each higher level up to 3; a lower
    level is never consulted, so a less trusted push can never supply an
    image to a more trusted one.

    >>> [c.level for c in search_order("builder", "0" * 64, 1)]
    [1, 2, 3]
    >>> [c.level for c in search_order("builder", "0" * 64, 3)]
    [3]

    :raises InvalidValueError: for an invalid level, name, digest or prefix.
    """
    validate_level(level)
    return tuple(
        Candidate(lv, hash_namespace(lv, name, digest, prefix=prefix))
        for lv in LEVELS
        if lv >= level
    )
