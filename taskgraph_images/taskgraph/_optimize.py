"""taskgraph's ``index-search`` strategy, with the sound reuse rule for docker-image tasks.

taskgraph's own :class:`~taskgraph.optimize.strategies.IndexSearch`
replaces a task by the first task indexed at one of its ``index-search``
paths that is not failed, and whose *task* outlives the deadline of the
tasks that depend on it. For a docker image that is not enough: the image
artifact may have expired already, or expire before the tasks that load it
run (taskgraph issues #246 and #247), and any path given is trusted, a
pull request's at any level.

:class:`SoundIndexSearch` takes the name ``index-search`` in the decision's
main process (from :func:`~taskgraph_images.taskgraph.register`). Tasks of
other kinds go to the strategy it replaced, unchanged. A docker-image task
keeps taskgraph's paths and their order, and is replaced by the first
indexed task that :func:`~taskgraph_images.index.decide` accepts,
the same decision the standalone ``plan`` makes:

- at a trusted place: a path of the push's level or higher, the
  pull-request namespace only at level 1 (a path of another shape is never
  trusted);
- :func:`~taskgraph_images.index.verdict`: the task completed, its
  ``public/image.tar.zst`` exists, and the artifact expires after the
  deadline of every task of the graph that depends on the image, and after
  the deadline a build task of this push would have plus
  ``min-artifact-lifetime`` (build-task config) when set.

taskgraph has already looked up every ``index-search`` path of the graph
(one batched index request) and every task found (one batched status
request) before the first task is judged. The artifact checks (one
``queue.latestArtifactInfo`` per completed docker-image task found) run all
at once on the first docker-image task judged: one round trip more, in
sequence, than taskgraph's own strategy (up to :data:`MAX_CONCURRENT`
images found; each further 64 costs one more). Their threads and
kept-alive connections are opened ahead, while taskgraph waits for the
index and the queue, so the checks leave together: :func:`get_ready`, a
``target_task_graph`` verification (:func:`install_readiness`), counts the
docker-image tasks of the target graph, the last step before the
optimization. taskgraph asks :meth:`~SoundIndexSearch.should_remove_task`
only of tasks that nothing depends on, which a used image never is.
"""

from __future__ import annotations

import datetime
import logging
import os
from typing import Any, Mapping, Optional, Sequence, Union

import attrs
from taskgraph.optimize import base as _optimize_base
from taskgraph.optimize.strategies import IndexSearch

from taskgraph_images.errors import TaskgraphImagesError
from taskgraph_images.index import DEFAULT_ARTIFACT, Lookup, Usability, decide, utcnow, verdict
from taskgraph_images.keys.namespaces import Candidate
from taskgraph_images.keys.taskgraph import CACHE_TYPE, cache_namespace, pull_request_namespace
from taskgraph_images.tc.time import parse_time

__all__ = [
    "ImageVerdict",
    "Settings",
    "SoundIndexSearch",
    "candidates",
    "current_strategy",
    "get_ready",
    "install_readiness",
    "install_strategy",
    "needed_until",
]

#: taskgraph's optimization log (the decision's ``public/optimizations.log``).
_optimization_log = logging.getLogger("optimization")
#: The decision's log.
_log = logging.getLogger("taskgraph_images")

#: The name taskgraph's cached tasks give their optimization.
STRATEGY = "index-search"
#: The most artifact checks in flight at once (taskgraph itself allows 50 requests).
MAX_CONCURRENT = 64


@attrs.frozen
class Settings:
    """What the strategy takes from the repository's configuration."""

    #: taskgraph's cache prefix: ``taskgraph.cached-task-prefix``, else the trust domain.
    prefix: str
    #: ``min-artifact-lifetime`` of the build-task config, if set.
    min_lifetime: Optional[datetime.timedelta] = None
    #: The image artifact of a docker-image task.
    artifact: str = DEFAULT_ARTIFACT

    @classmethod
    def from_graph_config(cls, graph_config: Any) -> Settings:
        """The settings of a repository: its graph config, and its build-task config if any.

        :raises ConfigError: when ``taskcluster/taskgraph-images.yml`` exists and is invalid.
        """
        from taskgraph_images.config import find_config, load_config
        from taskgraph_images.keys.taskgraph import cache_prefix

        taskgraph_section = graph_config.get("taskgraph") or {}
        prefix = cache_prefix(graph_config["trust-domain"],
                              taskgraph_section.get("cached-task-prefix"))
        path = find_config(_repository_root(graph_config))
        lifetime = load_config(path).min_artifact_lifetime if path is not None else None
        return cls(prefix, lifetime)


def _repository_root(graph_config: Any) -> str:
    """The repository's root: taskgraph's ``vcs_root``, else the folder above ``taskcluster/``."""
    try:
        return str(os.fspath(graph_config.vcs_root))
    except Exception:  # taskgraph refuses to guess for a graph config in an odd place
        return os.path.dirname(str(os.fspath(graph_config.root_dir)))


def candidates(
    paths: Sequence[str], prefix: str, cache_type: str, name: str, digest: str
) -> tuple[list[Candidate], list[str]]:
    """Map each ``index-search`` path to the place it is (pure).

    Returns the candidates, in the paths' order, and the paths that are none
    of taskgraph's cache namespaces for this image under ``prefix`` (never
    trusted: nothing says which level wrote them).

    >>> found, odd = candidates(["p.cache.level-3.t.n.hash.d", "p.cache.pr.t.n.hash.d", "x"],
    ...                         "p", "t", "n", "d")
    >>> [(c.level, c.pull_request) for c in found], odd
    ([(3, False), (1, True)], ['x'])
    """
    places = {cache_namespace(prefix, name, digest, level=lv, cache_type=cache_type):
              Candidate(lv, cache_namespace(prefix, name, digest, level=lv, cache_type=cache_type))
              for lv in (1, 2, 3)}
    pr = pull_request_namespace(prefix, name, digest, cache_type=cache_type)
    places[pr] = Candidate(1, pr, pull_request=True)
    found = [places[p] for p in paths if p in places]
    return found, [p for p in paths if p not in places]


def needed_until(
    dependents: Optional[datetime.datetime],
    own_deadline: datetime.datetime,
    min_lifetime: Optional[datetime.timedelta],
) -> datetime.datetime:
    """The last moment a reused image's artifact is needed (pure).

    The latest deadline of the tasks that depend on the image (``None``: no
    task does), and at least the deadline a build task of this push would
    have (``own_deadline``) plus ``min_lifetime``.
    """
    floor = own_deadline + (min_lifetime or datetime.timedelta(0))
    return floor if dependents is None else max(dependents, floor)


@attrs.frozen
class ImageVerdict:
    """What the strategy decided for one docker-image task."""

    label: str
    name: str
    digest: str
    lookup: Lookup
    needed_until: datetime.datetime


def _as_time(value: Any) -> Optional[datetime.datetime]:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value if value.tzinfo is not None else value.replace(tzinfo=datetime.timezone.utc)
    return parse_time(value, "deadline")


class SoundIndexSearch(IndexSearch):  # type: ignore[misc]  # taskgraph has no types
    """``index-search`` with the sound reuse rule for docker-image tasks (see the module)."""

    def __init__(self, settings: Settings, fallback: Any, *, index: Any = None) -> None:
        super().__init__()
        self.settings = settings
        #: The strategy this one replaced: it judges every task of another kind.
        self.fallback = fallback
        self.description = getattr(fallback, "description", STRATEGY)
        self._index = index
        #: Label -> decision, for the docker-image tasks judged so far.
        self.verdicts: dict[str, ImageVerdict] = {}
        self._batch: Optional[Mapping[str, str]] = None
        self._expiries: dict[str, Optional[datetime.datetime]] = {}
        self._expiry_error: Optional[str] = None

    # -- taskgraph's interface ------------------------------------------------------

    def get_ready(self, images: int) -> None:
        """Open, in the background, what ``images`` concurrent artifact checks need
        (threads and kept-alive connections); never fails (the checks will say why)."""
        try:
            warm = getattr(self.index(), "warm", None)
        except Exception:  # no index here: the checks will say so
            return
        if warm is not None:
            warm(images)

    def should_replace_task(self, task: Any, params: Any, deadline: Any, arg: Any) -> Any:
        """Return the task id to reuse, or False to build (taskgraph's protocol)."""
        cached = _image_cache(task)
        if cached is None:
            return self.fallback.should_replace_task(task, params, deadline, arg)
        now = utcnow()
        own = _as_time(_resolve_deadline(task.task["deadline"], now))
        assert own is not None
        needed = needed_until(_as_time(deadline), own, self.settings.min_lifetime)
        level = int(params["level"])
        if isinstance(arg, tuple) and len(arg) == 3:
            paths, index_to_taskid, statuses = arg
        else:  # called on its own, not by taskgraph's optimization: look up here
            paths = arg
            try:
                index_to_taskid, statuses = self._look_up(list(paths))
            except TaskgraphImagesError as e:
                name, digest = str(cached["name"]), str(cached["digest"])
                lookup = Lookup(name, digest, level, None, f"index unavailable: {e}", str(e))
                self.verdicts[task.label] = ImageVerdict(task.label, name, digest, lookup, needed)
                return False
        judged = self.judge(task.label, cached, level, list(paths),
                            index_to_taskid, statuses, now, needed)
        self.verdicts[task.label] = judged
        found = judged.lookup.found
        _optimization_log.debug(
            "%s: %s (%s)", task.label,
            f"reuse {found.task_id}" if found is not None else "build", judged.lookup.reason)
        return found.task_id if found is not None else False

    # -- the decision -----------------------------------------------------------------

    def judge(
        self,
        label: str,
        cached: Mapping[str, Any],
        level: int,
        paths: Sequence[str],
        index_to_taskid: Mapping[str, str],
        statuses: Mapping[str, Any],
        now: datetime.datetime,
        needed: datetime.datetime,
    ) -> ImageVerdict:
        """Decide one docker-image task from what the index and the queue said."""
        name, digest = str(cached["name"]), str(cached["digest"])
        cache_type = str(cached.get("type", CACHE_TYPE))
        found, odd = candidates(paths, self.settings.prefix, cache_type, name, digest)
        tasks = {c.namespace: index_to_taskid[c.namespace] for c in found
                 if c.namespace in index_to_taskid}
        self._check_artifacts(index_to_taskid, statuses)
        verdicts: dict[str, Usability] = {}
        for task_id in set(tasks.values()):
            status = statuses.get(task_id)
            state = status.get("state") if isinstance(status, dict) else None
            if state == "completed" and self._expiry_error is not None:
                verdicts[task_id] = Usability(False, self._expiry_error)
                continue
            verdicts[task_id] = verdict(state if isinstance(state, str) else None,
                                        self._expiries.get(task_id), now, needed_until=needed)
        lookup = decide(name, digest, level, found, tasks, verdicts)
        assert lookup is not None  # every indexed task has a verdict
        untrusted = [p for p in odd if p in index_to_taskid]
        if untrusted:
            note = f"not trusted: {untrusted[0]} is not a cache namespace of {self.settings.prefix}"
            reason = lookup.reason if lookup.reuse else (
                note if lookup.reason == "not indexed" else f"{lookup.reason}; {note}")
            lookup = attrs.evolve(lookup, reason=reason)
        return ImageVerdict(label, name, digest, lookup, needed)

    def _check_artifacts(self, index_to_taskid: Mapping[str, str],
                         statuses: Mapping[str, Any]) -> None:
        """Once per lookup batch: the image artifact's expiry of every completed image task found."""
        if self._batch is index_to_taskid:
            return
        self._batch = index_to_taskid
        self._expiries, self._expiry_error = {}, None
        image_ids = sorted({
            task_id for path, task_id in index_to_taskid.items()
            if path.startswith(f"{self.settings.prefix}.cache.") and f".{CACHE_TYPE}." in path
            and isinstance(statuses.get(task_id), dict)
            and statuses[task_id].get("state") == "completed"
        })
        if not image_ids:
            return
        try:
            self._expiries = self.index().artifact_expiries(image_ids, self.settings.artifact)
        except TaskgraphImagesError as e:  # unreachable, or no deployment configured
            self._expiry_error = f"artifact not checked ({e})"

    def _look_up(self, paths: list[str]) -> tuple[dict[str, str], dict[str, Any]]:
        """The index and queue answers for ``paths``, when taskgraph did not batch them.

        :raises TaskgraphImagesError: when the index or the queue cannot answer.
        """
        entries = self.index().find_tasks(paths)
        states = self.index().task_states(sorted({e.task_id for e in entries.values()}))
        self._batch = None
        return ({p: e.task_id for p, e in entries.items()},
                {t: {"state": s} for t, s in states.items()})

    def index(self) -> Any:
        """The Taskcluster index and queue of the environment (as taskgraph finds them)."""
        if self._index is None:
            from taskgraph_images.errors import ConfigError
            from taskgraph_images.index.taskcluster import TaskclusterIndex

            try:
                self._index = TaskclusterIndex(max_workers=MAX_CONCURRENT)
            except ConfigError:  # no root URL in the environment: taskgraph's own default
                from taskgraph.util.taskcluster import get_root_url

                self._index = TaskclusterIndex(get_root_url(), max_workers=MAX_CONCURRENT)
        return self._index


def _image_cache(task: Any) -> Optional[dict[str, Any]]:
    """The ``cached_task`` attribute of a docker-image task; ``None`` for another task."""
    cached = (getattr(task, "attributes", None) or {}).get("cached_task")
    return cached if getattr(task, "kind", None) == "docker-image" and isinstance(
        cached, dict) else None


def get_ready(task: Any, taskgraph: Any, scratch_pad: dict[str, Any], graph_config: Any,
              parameters: Any) -> None:
    """A ``target_task_graph`` verification: count the docker-image tasks judged by
    ``index-search``; at the end (``task`` is ``None``), have the installed strategy
    get ready for that many artifact checks (:meth:`SoundIndexSearch.get_ready`).

    It verifies nothing and never fails: it is the last code of ours that
    taskgraph runs before the optimization looks the index up.
    """
    if task is not None:
        if _image_cache(task) is not None and STRATEGY in (getattr(task, "optimization", None) or {}):
            scratch_pad["images"] = scratch_pad.get("images", 0) + 1
        return
    strategy = current_strategy()
    images = int(scratch_pad.get("images", 0))
    if strategy is None or not images or _overridden(strategy, parameters):
        return
    calls = min(images, MAX_CONCURRENT)
    _log.info("taskgraph-images: opening %d connection%s ahead for %d docker-image task%s",
              calls, "" if calls == 1 else "s", images, "" if images == 1 else "s")
    strategy.get_ready(calls)


def _overridden(strategy: SoundIndexSearch, parameters: Any) -> bool:
    """Whether the decision replaces our ``index-search`` (``optimize_strategies``, or
    ``TASKGRAPH_OPTIMIZE_STRATEGIES``, as taskgraph reads them)."""
    name = os.environ.get("TASKGRAPH_OPTIMIZE_STRATEGIES") or (
        parameters.get("optimize_strategies") if hasattr(parameters, "get") else None)
    if not name:
        return False
    try:
        from taskgraph.util.python_path import find_object

        override = find_object(name)
    except Exception:  # taskgraph will say what is wrong with it
        return True
    return isinstance(override, Mapping) and override.get(STRATEGY, strategy) is not strategy


def install_readiness() -> None:
    """Add :func:`get_ready` to taskgraph's ``target_task_graph`` verifications, once."""
    from taskgraph.util.verify import verifications

    added = verifications._verifications.get("target_task_graph", [])
    if not any(getattr(v, "func", None) is get_ready for v in added):
        verifications.add("target_task_graph")(get_ready)


def _resolve_deadline(value: Any, now: datetime.datetime) -> Any:
    from taskgraph.util.parameterization import resolve_timestamps

    return resolve_timestamps(now, value)


def current_strategy() -> Optional[SoundIndexSearch]:
    """The installed strategy, or ``None`` when taskgraph's own judges ``index-search``."""
    strategy = _optimize_base.registry.get(STRATEGY)
    return strategy if isinstance(strategy, SoundIndexSearch) else None


def install_strategy(graph_config: Any, *, index: Any = None) -> SoundIndexSearch:
    """Make :class:`SoundIndexSearch` taskgraph's ``index-search`` strategy; return it.

    The strategy it replaces (taskgraph's, or a project's own) keeps judging
    every task of another kind. Installing again replaces the earlier one
    with a fresh one for ``graph_config``.

    :raises ConfigError: when the build-task config is invalid.
    """
    settings = Settings.from_graph_config(graph_config)
    registry: dict[str, Any] = _optimize_base.registry
    previous: Union[SoundIndexSearch, Any] = registry.get(STRATEGY)
    if isinstance(previous, SoundIndexSearch):
        previous = previous.fallback
    if previous is None:  # pragma: no cover - importing strategies registers taskgraph's
        raise TaskgraphImagesError("taskgraph registered no index-search strategy")
    strategy = SoundIndexSearch(settings, previous, index=index)
    registry[STRATEGY] = strategy
    return strategy
