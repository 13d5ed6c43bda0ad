"""Where a build-task config's cache keys put builds in the index (pure).

With ``cache-keys: seed`` (the default) a build is indexed under this
library's three namespaces (:mod:`taskgraph_images.keys.namespaces`);
with ``cache-keys: taskgraph`` under taskgraph's
(:mod:`taskgraph_images.keys.taskgraph`). :class:`IndexKeys` answers the
three questions every command asks, the same way in both modes:

* :meth:`IndexKeys.search`: the ``hash`` namespaces a lookup tries, in order;
* :meth:`IndexKeys.latest`: the ``latest`` namespaces an explanation
  compares against (the push's level and higher, never lower);
* :meth:`IndexKeys.record`: the namespaces a build recorded in a local
  index is indexed under (what its build task's routes would be).

Builds of a pull request are indexed by taskgraph under the pull-request
``hash`` namespace only, with no ``latest`` one: an explanation never
compares against them.
"""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Optional

import attrs

from taskgraph_images.errors import InvalidValueError
from taskgraph_images.keys.namespaces import (
    DEFAULT_PREFIX,
    LEVELS,
    Candidate,
    PushDate,
    index_namespaces,
    latest_namespace,
    search_order,
    validate_level,
)

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.config import BuildConfig

__all__ = ["PUSH", "IndexKeys"]

#: What a decision without ``tasks_for`` runs for: a push.
PUSH = "hg-push"


@attrs.frozen
class IndexKeys:
    """The namespaces of one cache-key mode.

    ``prefix`` is the seed mode's index prefix; ``taskgraph_prefix`` is
    taskgraph's cache prefix (``None``: seed mode). ``tasks_for`` and
    ``cache_pull_requests`` shape taskgraph's pull-request namespaces.
    """

    prefix: str = DEFAULT_PREFIX
    taskgraph_prefix: Optional[str] = None
    tasks_for: str = PUSH
    cache_pull_requests: bool = True

    @classmethod
    def for_config(cls, config: BuildConfig, tasks_for: Optional[str] = None) -> IndexKeys:
        """The namespaces ``config`` puts builds under, for a decision run for ``tasks_for``."""
        tg_prefix: Optional[str] = None
        if config.cache_keys == "taskgraph":
            from taskgraph_images.keys.taskgraph import cache_prefix

            # BuildConfig refuses cache-keys: taskgraph without a trust domain.
            assert config.trust_domain is not None
            tg_prefix = cache_prefix(config.trust_domain, config.cached_task_prefix)
        return cls(config.index_prefix, tg_prefix, tasks_for or PUSH, config.cache_pull_requests)

    @property
    def mode(self) -> str:
        """``seed`` or ``taskgraph``."""
        return "seed" if self.taskgraph_prefix is None else "taskgraph"

    def search(self, name: str, digest: str, level: int) -> list[Candidate]:
        """The ``hash`` namespaces a lookup of ``name`` at ``digest`` for a push at ``level`` tries.

        Seed: the push's level up to 3. taskgraph: level 3 down to the
        push's, then the pull-request namespace for a pull request. Its
        candidate is a level 1 pull-request one, which the lookup trusts only
        for a push at level 1 (:meth:`Candidate.distrust`): any pull request
        can write it, so at level 2 or 3 an entry there is reported as not
        trusted, never reused (see ``docs/security.rst``).
        """
        if self.taskgraph_prefix is None:
            return list(search_order(name, digest, level, prefix=self.prefix))
        from taskgraph_images.keys.taskgraph import index_search

        found = index_search(self.taskgraph_prefix, name, digest, level=level,
                             tasks_for=self.tasks_for,
                             cache_pull_requests=self.cache_pull_requests)
        levels = list(range(3, level - 1, -1))
        return [Candidate(levels[i], ns) if i < len(levels)
                else Candidate(1, ns, pull_request=True)
                for i, ns in enumerate(found)]

    def latest(self, name: str, level: int) -> list[Candidate]:
        """The ``latest`` namespaces of ``name`` trusted by a push at ``level``, own level first.

        >>> [c.namespace for c in IndexKeys(taskgraph_prefix="p").latest("base", 2)]
        ['p.cache.level-2.docker-images.v2.base.latest', 'p.cache.level-3.docker-images.v2.base.latest']
        """
        validate_level(level)
        if self.taskgraph_prefix is None:
            return [Candidate(lv, latest_namespace(lv, name, prefix=self.prefix))
                    for lv in LEVELS if lv >= level]
        from taskgraph_images.keys.taskgraph import latest_namespace as tg_latest

        return [Candidate(lv, tg_latest(self.taskgraph_prefix, name, level=lv))
                for lv in LEVELS if lv >= level]

    def record(self, level: int, name: str, digest: str, pushdate: PushDate) -> tuple[str, ...]:
        """The namespaces a build of ``name`` at ``digest``, pushed at ``level``, is indexed under.

        Seed: its ``latest``, ``pushdate`` and ``hash`` namespaces. taskgraph:
        its build task's ``index.`` routes without the ``index.`` (a
        pull request's: the pull-request namespace only).

        :raises InvalidValueError: for an invalid level, name, digest or date,
            or a pull request whose builds are not cached.
        """
        if self.taskgraph_prefix is None:
            return index_namespaces(level, name, digest, pushdate, prefix=self.prefix)
        from taskgraph_images.keys.namespaces import pushdate_path, validate_digest, validate_name
        from taskgraph_images.keys.taskgraph import index_routes

        validate_name(name)
        validate_digest(digest)
        pushdate_path(pushdate)  # validates it
        epoch = int(pushdate.timestamp() if isinstance(pushdate, datetime.datetime) else pushdate)
        routes = index_routes(self.taskgraph_prefix, name, digest, level=level,
                              tasks_for=self.tasks_for, build_date=epoch,
                              cache_pull_requests=self.cache_pull_requests)
        if not routes:
            raise InvalidValueError(
                f"a build of {name!r} for {self.tasks_for} is not indexed: "
                "cache-pull-requests is false"
            )
        return tuple(r[len("index."):] for r in routes)
