"""The plan: for every image, reuse an indexed build or build it.

:func:`plan_images` is the shell: it hashes the images, looks every task
image up in the index at once (one
:func:`~taskgraph_images.index.find_images` call, so a remote index can
batch) and prefetches the explanations; then :func:`decide`, the pure
core, walks the catalog parents first: an image whose in-tree parent
is built in this plan is built too, and its build task depends on the
parent's. Prebuilt images (with a ``VERSION``) get no task; they are referred
to by their registry tag. The result, :class:`Plan`, holds a
:class:`Decision` per image and the build-task definitions
(:func:`taskgraph_images.tasks.build_tasks`), and serialises
to JSON (:meth:`Plan.to_json`, :meth:`Plan.from_json`).

Time (``now``) and task ids (``task_ids``) are injected, so that the same
inputs give the same plan.
"""

from __future__ import annotations

import datetime
import functools
import json
import os
import types
from typing import TYPE_CHECKING, Any, Callable, Literal, Mapping, Optional, Union

import attrs

from taskgraph_images.config import BuildConfig
from taskgraph_images.errors import PlanError, TaskgraphImagesError
from taskgraph_images.keys.indexkeys import IndexKeys
from taskgraph_images.names import Digest, ImageName, Namespace, TaskId
from taskgraph_images.params import Params, ParamsLike, coerce_params
from taskgraph_images.tasks import TaskImage, build_tasks

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.explain import Prefetch
    from taskgraph_images.index import IndexBackend, Lookup, OnError
    from taskgraph_images.manifest import ManifestDiff

__all__ = [
    "PLAN_FORMAT",
    "Action",
    "Decision",
    "Plan",
    "TaskIdSource",
    "decide",
    "plan_images",
]

#: The ``format`` marker of a plan file.
PLAN_FORMAT = "taskgraph-images-plan/1"

Action = Literal["reuse", "build", "prebuilt"]
#: Returns a fresh task id on each call (production: ``slugid.nice``).
TaskIdSource = Callable[[], str]


@attrs.frozen
class Decision:
    """What the plan does with one image."""

    #: The image name.
    name: ImageName
    #: ``reuse`` (an indexed build), ``build`` (a task of this plan) or ``prebuilt``.
    action: Action
    #: The image's digest (its index key).
    digest: Digest
    #: The task whose artifact holds the image; ``None`` for a prebuilt image.
    task_id: Optional[TaskId] = None
    #: For ``reuse``: the namespace and level the task was found at.
    namespace: Optional[Namespace] = None
    level: Optional[int] = None
    #: Why: where it was found, why it is built, or the registry for a prebuilt image.
    reason: str = ""
    #: For ``prebuilt``: the registry tag ``registry/name:version``.
    docker_image: Optional[str] = None
    #: The in-tree parent image, if any.
    parent: Optional[ImageName] = None
    #: The index error that turned a lookup into a build (``on_error="build"``).
    index_error: Optional[str] = None
    #: For ``build``: every difference from the earlier build's context manifest.
    changes: Optional[ManifestDiff] = None
    #: For ``build``: the earlier build's task that ``changes`` compares against.
    compared_with: Optional[str] = None

    def to_json(self) -> dict[str, Any]:
        """Return the decision as JSON values (``None`` fields left out)."""
        doc = {k: v for k, v in attrs.asdict(self, recurse=False).items() if v is not None}
        if self.changes is not None:
            doc["changes"] = self.changes.to_json()
        return doc


def _frozen_mapping(value: Mapping[str, Any]) -> Mapping[str, Any]:
    return types.MappingProxyType(dict(value))


@attrs.frozen
class Plan:
    """The outcome of :func:`plan_images`: a decision per image and the build tasks."""

    #: Image name -> decision, parents first.
    decisions: Mapping[str, Decision] = attrs.field(converter=_frozen_mapping)
    #: Task id -> ``createTask`` body, for the images to build, in submission order.
    tasks: Mapping[str, Mapping[str, Any]] = attrs.field(converter=_frozen_mapping)
    #: The parameters the plan was made for.
    params: Params
    #: The artifact name of image builds (``public/image.tar.zst``).
    artifact: str = "public/image.tar.zst"
    #: Problems met while explaining the builds (not written to JSON).
    warnings: tuple[str, ...] = ()

    # -- lookups ---------------------------------------------------------------

    def names(self) -> list[str]:
        """Return the image names, parents first."""
        return list(self.decisions)

    def __getitem__(self, name: str) -> Decision:
        try:
            return self.decisions[name]
        except KeyError:
            from taskgraph_images._suggest import unknown_image

            raise PlanError(unknown_image(name, sorted(self.decisions))) from None

    def task_id_for_image(self, name: str) -> str:
        """Return the task whose artifact holds task image ``name`` (reused or to be built).

        :raises PlanError: for an unknown or a prebuilt image.
        """
        decision = self[name]
        if decision.task_id is None:
            raise PlanError(
                f"image {name!r} is prebuilt ({decision.docker_image}): it has no task id; "
                "use docker_image instead"
            )
        return decision.task_id

    def docker_image(self, name: str) -> str:
        """Return the registry tag ``registry/name:version`` of prebuilt image ``name``.

        :raises PlanError: for an unknown or a task image.
        """
        decision = self[name]
        if decision.docker_image is None:
            raise PlanError(
                f"image {name!r} is a task image: it has no registry tag; "
                "use task_id_for_image instead"
            )
        return decision.docker_image

    def image_reference(self, name: str) -> Union[str, dict[str, str]]:
        """Return what a docker-worker payload's ``image`` should hold for ``name``.

        A ``task-image`` object for a task image, the registry tag for a prebuilt one.

        :raises PlanError: for an unknown image.
        """
        decision = self[name]
        if decision.docker_image is not None:
            return decision.docker_image
        assert decision.task_id is not None
        return TaskImage(decision.task_id, self.artifact).to_json()

    # -- serialisation -----------------------------------------------------------

    def to_json(self) -> str:
        """Return the plan as a JSON document (read back with :meth:`from_json`)."""
        doc = {
            "format": PLAN_FORMAT,
            "params": self.params.to_json(),
            "artifact": self.artifact,
            "images": {name: d.to_json() for name, d in self.decisions.items()},
            "tasks": {task_id: dict(task) for task_id, task in self.tasks.items()},
        }
        return json.dumps(doc, indent=2) + "\n"

    @classmethod
    def from_json(cls, text: Union[str, bytes]) -> Plan:
        """Read a plan written by :meth:`to_json`.

        :raises PlanError: when ``text`` is not such a plan.
        """
        try:
            doc = json.loads(text)
        except (ValueError, UnicodeDecodeError) as e:
            raise PlanError(f"not a plan: invalid JSON ({e})") from None
        except RecursionError:
            raise PlanError("not a plan: JSON nested too deeply") from None
        if not isinstance(doc, dict) or doc.get("format") != PLAN_FORMAT:
            raise PlanError(f"not a plan: no 'format': '{PLAN_FORMAT}' marker")
        images, tasks = doc.get("images"), doc.get("tasks")
        if not isinstance(images, dict) or not isinstance(tasks, dict):
            raise PlanError("not a plan: 'images' and 'tasks' must be objects")
        artifact = doc.get("artifact", "public/image.tar.zst")
        try:
            params = Params.from_mapping(doc.get("params"))  # type: ignore[arg-type]
            decisions = {name: _decision(name, value) for name, value in images.items()}
        except TaskgraphImagesError as e:
            raise PlanError(f"not a valid plan: {e}") from None
        for task_id, task in tasks.items():
            if not isinstance(task, dict):
                raise PlanError(f"not a valid plan: task {task_id!r} is not an object")
        built = {d.task_id for d in decisions.values() if d.action == "build"}
        if built != set(tasks):
            raise PlanError("not a valid plan: the tasks do not match the images to build")
        if not isinstance(artifact, str):
            raise PlanError("not a valid plan: 'artifact' must be a string")
        return cls(decisions, tasks, params, artifact)


_DECISION_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "action": (str,),
    "digest": (str,),
    "task_id": (str,),
    "namespace": (str,),
    "level": (int,),
    "reason": (str,),
    "docker_image": (str,),
    "parent": (str,),
    "index_error": (str,),
    "changes": (dict,),
    "compared_with": (str,),
}


def _decision(name: object, value: object) -> Decision:
    if not isinstance(value, dict):
        raise PlanError(f"image {name!r}: expected an object")
    for key, item in value.items():
        types_ = _DECISION_TYPES.get(key)
        if types_ is None or not isinstance(item, types_) or isinstance(item, bool):
            raise PlanError(f"image {name!r}: invalid or unknown field {key!r}")
    if value.get("name") != name:
        raise PlanError(f"image {name!r}: its 'name' differs")
    action = value.get("action")
    if action not in ("reuse", "build", "prebuilt") or "digest" not in value:
        raise PlanError(f"image {name!r}: needs an action (reuse, build, prebuilt) and a digest")
    if (action == "prebuilt") != ("docker_image" in value) or (
        (action != "prebuilt") != ("task_id" in value)
    ):
        raise PlanError(f"image {name!r}: a {action} image needs exactly one of task_id, docker_image")
    if "changes" in value:
        from taskgraph_images.manifest import ManifestDiff

        value = {**value, "changes": ManifestDiff.from_json(value["changes"])}
    return Decision(**value)


# -- planning ------------------------------------------------------------------------


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def plan_images(
    catalog: ImageCatalog,
    params: ParamsLike,
    index: IndexBackend,
    config: Optional[BuildConfig] = None,
    *,
    task_ids: Optional[TaskIdSource] = None,
    on_error: OnError = "raise",
    now: Optional[datetime.datetime] = None,
    explain: bool = True,
) -> Plan:
    """Decide, for every image of ``catalog``, whether to reuse or build it.

    ``params`` are the decision parameters (:class:`~taskgraph_images.params.Params`
    or a mapping); ``index`` is any index backend; ``config`` the build-task
    config (default: :class:`~taskgraph_images.config.BuildConfig`).
    ``task_ids`` gives a new task id per call (default: ``slugid.nice``);
    ``now`` (aware) is the build tasks' creation time (default: now).
    ``on_error="build"`` turns an index that cannot answer into builds
    (the reason says so) instead of an error. With ``explain`` (the
    default), each build's reason also says how its context differs from
    the last trusted build's (see :mod:`taskgraph_images.explain`); an
    earlier manifest that cannot be read changes only that explanation,
    and adds a line to :attr:`Plan.warnings`. So does a plan with build
    tasks for the Taskcluster of a :class:`~taskgraph_images.index.TaskclusterIndex`
    whose ``config`` sets no ``task-queue-id`` (the CLI refuses that plan).

    :raises ParamsError: for missing or malformed parameters.
    :raises PlanError: when the image builder is unusable, or task ids repeat.
    :raises IndexBackendError: when the index cannot answer and ``on_error="raise"``.
    :raises CatalogError: when an image's context cannot be hashed.
    """
    from taskgraph_images.index import find_images, new_task_id

    params = coerce_params(params)
    config = config if config is not None else BuildConfig()
    if catalog.cache_keys != config.cache_keys:
        raise PlanError(
            f"the catalog has {catalog.cache_keys} cache keys but the build-task config "
            f"{config.source} says cache-keys: {config.cache_keys}; load the catalog with "
            f"cache_keys={config.cache_keys!r}"
        )
    now = now if now is not None else _utcnow()
    if now.tzinfo is None or now.utcoffset() is None:
        raise PlanError(f"invalid now {now!r}: the datetime has no timezone")
    fresh_task_id = task_ids if task_ids is not None else new_task_id

    keys = IndexKeys.for_config(config, params.tasks_for)
    order = catalog.order()
    task_images = [name for name in order if not catalog[name].prebuilt]
    digests = {name: catalog.digest(name) for name in order}
    prefetch: Optional[Prefetch] = None
    if explain:
        from taskgraph_images.explain import Prefetch

        # Images with cache: false are never indexed, so have no earlier build.
        cached = [name for name in task_images if catalog[name].cache]
        prefetch = Prefetch(
            index,
            [(name, digests[name], [p for p in catalog[name].parents if p in task_images])
             for name in cached],
            params.level, prefix=config.index_prefix, artifact=config.manifest_artifact,
            search=keys.search, latest_order=keys.latest,
        )
    lookups = find_images(
        prefetch if prefetch is not None else index,
        [(name, digests[name]) for name in task_images if catalog[name].cache],
        params.level,
        on_error=on_error,
        prefix=config.index_prefix,
        artifact=config.artifact_name,
        search=keys.search,
    )

    config_path = None
    if config.path is not None:
        config_path = os.path.relpath(os.path.realpath(config.path), os.path.realpath(catalog.root))
    explainer = None
    if prefetch is not None:
        explainer = functools.partial(_explain, catalog, prefetch=prefetch)
    plan = decide(catalog, digests, lookups, params, config, task_ids=fresh_task_id, now=now,
                  config_path=config_path, explain=explainer)
    warnings = _queue_warning(index, config, params.level, plan.tasks)
    return attrs.evolve(plan, warnings=plan.warnings + warnings) if warnings else plan


def decide(
    catalog: ImageCatalog,
    digests: Mapping[str, str],
    lookups: Mapping[str, Lookup],
    params: Params,
    config: BuildConfig,
    *,
    task_ids: TaskIdSource,
    now: datetime.datetime,
    config_path: Optional[str] = None,
    explain: Optional[Callable[[dict[str, Decision]], tuple[str, ...]]] = None,
) -> Plan:
    """The decision core (pure): from digests and lookups to decisions and build tasks.

    ``digests`` holds every image's digest; ``lookups`` the index's answer
    for every task image with ``cache: true`` (what
    :func:`~taskgraph_images.index.find_images` returns); ``config_path`` the
    build-task config file's path from the catalog's root (``None``: no
    file). The catalog is asked only for its images' facts and order: no
    file is read and no index asked. ``explain``, when given, puts each
    build's explanation in its decision before the tasks are made and
    returns the plan's warnings. :func:`plan_images` is the shell that
    hashes, asks the index and prefetches, then calls this.

    :raises PlanError: when the image builder is unusable, or task ids repeat.
    """
    decisions: dict[str, Decision] = {}
    seen_ids: set[str] = set()
    for name in catalog.order():
        image = catalog[name]
        parent = None if image.parent is None else ImageName(image.parent)
        base = Decision(ImageName(name), "prebuilt", Digest(digests[name]), parent=parent)
        if image.prebuilt:
            tag = catalog.docker_image(name)
            decisions[name] = attrs.evolve(base, docker_image=tag, reason=f"registry tag {tag}")
            continue
        rebuilt = [p for p in image.parents if decisions[p].action == "build"]
        lookup = lookups.get(name)
        # taskgraph replaces every task its index has, whatever its parents' fate:
        # the digest already holds the parents' digests.
        follows_parents = bool(rebuilt) and catalog.cache_keys != "taskgraph"
        if not follows_parents and lookup is not None and lookup.found is not None:
            found = lookup.found
            decisions[name] = attrs.evolve(
                base,
                action="reuse",
                task_id=TaskId(found.task_id),
                namespace=Namespace(found.namespace),
                level=found.level,
                reason=lookup.reason,
            )
            continue
        task_id = TaskId(task_ids())
        if task_id in seen_ids:
            raise PlanError(f"the task id source gave {task_id!r} twice")
        seen_ids.add(task_id)
        if lookup is None:
            reason, index_error = "cache: false in the kind config", None
        elif rebuilt:
            reason, index_error = f"parent {rebuilt[0]} rebuilt", None
        else:
            reason, index_error = lookup.reason, lookup.index_error
        decisions[name] = attrs.evolve(
            base, action="build", task_id=task_id, reason=reason, index_error=index_error
        )

    warnings = explain(decisions) if explain is not None else ()
    tasks = build_tasks(catalog, params, config, decisions, now, config_path=config_path)
    return Plan(decisions, tasks, params, config.artifact_name, warnings)




def _queue_warning(
    index: IndexBackend, config: BuildConfig, level: int, tasks: Mapping[str, Any]
) -> tuple[str, ...]:
    """The CLI's rule as a warning: build tasks for a real Taskcluster need a real queue."""
    from taskgraph_images.errors import ConfigError
    from taskgraph_images.index import TaskclusterIndex

    if not tasks or not isinstance(index, TaskclusterIndex):
        return ()
    try:
        config.require_queue(level, "the plan is for the Taskcluster of its index")
    except ConfigError as e:
        queue = next(iter(tasks.values()))["taskQueueId"]
        return (f"{e}; the build tasks go to {queue}, which only `taskgraph-images run-task` "
                "serves",)
    return ()


def _explain(
    catalog: ImageCatalog, decisions: dict[str, Decision], *, prefetch: Prefetch
) -> tuple[str, ...]:
    """Put each build's explanation in its decision; return the warning, if any."""
    from taskgraph_images.explain import link_parents
    from taskgraph_images.manifest import build_manifest

    builds = [name for name, d in decisions.items() if d.action == "build"]
    built = [name for name in builds if catalog[name].cache]  # cache: false is never indexed
    manifests = {name: build_manifest(catalog, name) for name in built}
    explanations = prefetch.explain(manifests)
    explanations = link_parents(explanations, builds)
    for name in built:
        e = explanations.by_name[name]
        d = decisions[name]
        decisions[name] = attrs.evolve(
            d, reason=_explained(d.reason, e.text), changes=e.diff, compared_with=e.earlier_task
        )
    return () if explanations.warning is None else (explanations.warning,)


def _explained(reason: str, text: str) -> str:
    """The build's reason, then its explanation (alone when it repeats the reason)."""
    if reason.startswith("parent ") and reason in text:
        return text
    return f"{reason}; {text}"


