"""Creating a plan's build tasks with the Queue: concurrently, each after its dependencies.

:func:`submit_plan` keeps up to ``jobs`` ``createTask`` calls in flight and
starts a task only once every task of the plan it depends on was created,
so the Queue never sees a dependency it does not know. On a failure it
starts nothing more, lets the calls in flight finish, and raises one
:class:`~taskgraph_images.errors.SubmitError` that says what was created and
what was not. Submitting the same plan again creates only what is missing:
``existing`` (for example :func:`queue_existing`) names the tasks the Queue
already has, and ``createTask`` is idempotent for the same id and body
anyway.

The Queue is reached only through the callables passed in
(``taskcluster.Queue(...).createTask`` in production), so the scheduling
here is tested against any fake or the loopback server.
"""

from __future__ import annotations

import concurrent.futures
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping, Optional, Sequence

import attrs

from taskgraph_images.config import LOCAL_TASK_QUEUE
from taskgraph_images.errors import SubmitError
from taskgraph_images.keys.taskgraph import IMAGE_BUILDER_IMAGE

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.plan import Plan

__all__ = [
    "DEFAULT_JOBS",
    "CreateTask",
    "Existing",
    "Progress",
    "Submission",
    "queue_existing",
    "submission_order",
    "submit_plan",
]

#: ``createTask`` calls in flight at once by default.
DEFAULT_JOBS = 16
#: ``create_task(task_id, definition)``: ``taskcluster.Queue(...).createTask``.
CreateTask = Callable[[str, Mapping[str, Any]], object]
#: ``existing(task_ids)``: the ones of ``task_ids`` the Queue already has.
Existing = Callable[[Sequence[str]], Iterable[str]]
#: ``progress(done, total)``: called after each task is created (and once at the start).
Progress = Callable[[int, int], None]

# How many image names a failure lists before "and N more".
_NAMES_SHOWN = 8


@attrs.frozen
class Submission:
    """What :func:`submit_plan` did."""

    #: Task ids created by this call, in the order they were created.
    created: tuple[str, ...]
    #: Task ids the Queue already had (``existing``), not created again.
    existing: tuple[str, ...] = ()


def submission_order(tasks: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Return the task ids, each after the tasks of ``tasks`` it depends on (stable otherwise).

    :raises SubmitError: when the tasks depend on each other in a cycle.
    """
    done: set[str] = set()
    result: list[str] = []
    pending = list(tasks)
    while pending:
        rest = []
        for task_id in pending:
            if all(d in done for d in _plan_dependencies(tasks, task_id)):
                result.append(task_id)
                done.add(task_id)
            else:
                rest.append(task_id)
        if len(rest) == len(pending):
            raise SubmitError(f"the plan's tasks depend on each other in a cycle: {rest[0]}")
        pending = rest
    return result


def _plan_dependencies(tasks: Mapping[str, Mapping[str, Any]], task_id: str) -> list[str]:
    deps = tasks[task_id].get("dependencies") or []
    return [d for d in deps if d in tasks and d != task_id]


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _listed(names: Sequence[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    more = len(names) - _NAMES_SHOWN
    return shown + (f" and {more} more" if more > 0 else "")


def _repository(reference: str) -> str:
    """The repository of an image ``reference`` (``repo[:tag][@digest]``)."""
    from taskgraph_images._dockerfile import split_reference

    return split_reference(reference.split("@", 1)[0])[0]


#: The repository of taskgraph's own image builder (of the reference taskgraph
#: digests): it runs taskgraph's build script and holds no taskgraph-images, so
#: our in-task builder cannot run there.
TASKGRAPH_BUILDER_REPOSITORY = _repository(IMAGE_BUILDER_IMAGE)


def _runs_ours_in_taskgraphs_builder(task: Mapping[str, Any]) -> bool:
    """Whether ``task`` runs ``build-in-task`` in taskgraph's image builder."""
    payload = task.get("payload")
    if not isinstance(payload, Mapping):
        return False
    image, command = payload.get("image"), payload.get("command")
    if not isinstance(image, str) or not isinstance(command, list):
        return False
    return _repository(image) == TASKGRAPH_BUILDER_REPOSITORY and "build-in-task" in command


def submit_plan(
    plan: Plan,
    create_task: CreateTask,
    *,
    jobs: int = DEFAULT_JOBS,
    existing: Optional[Existing] = None,
    progress: Optional[Progress] = None,
) -> Submission:
    """Create the build tasks of ``plan`` with ``create_task``, at most ``jobs`` at once.

    A task is created only after every task of the plan it depends on.
    ``existing``, when given, is asked once which tasks the Queue already
    has; those are not created again (a resumed submission).

    :raises SubmitError: when a task has :data:`~taskgraph_images.config.LOCAL_TASK_QUEUE`
        or would run our in-task builder in taskgraph's image builder, which
        does not hold it (nothing is created), when the plan's tasks form a cycle, when ``existing``
        fails, or when a ``createTask`` call fails; the message counts the
        tasks created and names the images not created.
    """
    if jobs < 1:
        raise SubmitError(f"jobs must be at least 1, not {jobs}")
    tasks = plan.tasks
    names: dict[Optional[str], str] = {
        d.task_id: d.name for d in plan.decisions.values() if d.action == "build"
    }
    local = [t for t, task in tasks.items() if task.get("taskQueueId") == LOCAL_TASK_QUEUE]
    if local:
        raise SubmitError(
            f"the build task of image {names.get(local[0], local[0])!r} has the local "
            f"taskQueueId {LOCAL_TASK_QUEUE} (no worker would claim it): add the line "
            '`task-queue-id: "{trust-domain}-{level}/images"` to the build-task config '
            "(taskcluster/taskgraph-images.yml) and plan again"
        )
    theirs = [t for t, task in tasks.items() if _runs_ours_in_taskgraphs_builder(task)]
    if theirs:
        raise SubmitError(
            f"the build task of image {names.get(theirs[0], theirs[0])!r} would run "
            "`taskgraph-images build-in-task` in taskgraph's image builder "
            f"({TASKGRAPH_BUILDER_REPOSITORY}), which does not hold it: let taskgraph's "
            "docker-image kind make the build tasks, or add the line `image-builder: "
            "REGISTRY/NAME:TAG` (an image with taskgraph-images, as image_builder/ builds) "
            "to the build-task config (taskcluster/taskgraph-images.yml) and plan again"
        )
    order = submission_order(tasks)
    rank = {task_id: i for i, task_id in enumerate(order)}
    found: set[str] = set()
    if existing is not None and order:
        try:
            found = set(existing(order)) & set(tasks)
        except Exception as e:  # the client raises many kinds; report each as one line
            raise SubmitError(
                f"cannot ask the Queue which build tasks exist: {type(e).__name__}: "
                f"{_first_line(e)}"
            ) from e
    waiting = {
        t: {d for d in _plan_dependencies(tasks, t) if d not in found}
        for t in order
        if t not in found
    }
    dependents: dict[str, list[str]] = {t: [] for t in order}
    for t, deps in waiting.items():
        for d in deps:
            dependents[d].append(t)
    total = len(order)
    ready = [t for t in order if t in waiting and not waiting[t]]
    created: list[str] = []
    failure: Optional[tuple[str, BaseException]] = None
    if progress is not None:
        progress(len(found), total)

    with concurrent.futures.ThreadPoolExecutor(max_workers=jobs) as pool:
        running: dict[concurrent.futures.Future[object], str] = {}
        while True:
            while ready and failure is None and len(running) < jobs:
                task_id = ready.pop(0)
                running[pool.submit(create_task, task_id, dict(tasks[task_id]))] = task_id
            if not running:
                break
            finished, _ = concurrent.futures.wait(
                running, return_when=concurrent.futures.FIRST_COMPLETED
            )
            for future in finished:
                task_id = running.pop(future)
                error = future.exception()
                if error is not None:
                    if failure is None:
                        failure = (task_id, error)
                    continue
                created.append(task_id)
                for child in dependents[task_id]:
                    waiting[child].discard(task_id)
                    if not waiting[child]:
                        ready.append(child)
                if progress is not None:
                    progress(len(found) + len(created), total)
            ready.sort(key=rank.__getitem__)

    if failure is not None:
        task_id, error = failure
        done = found | set(created)
        missing = [names.get(t, t) for t in order if t not in done]
        raise SubmitError(
            f"created {len(done)} of {total} build tasks"
            + (f" ({len(found)} existed already)" if found else "")
            + f"; creating {task_id} of image {names.get(task_id, '?')!r} failed: "
            f"{type(error).__name__}: {_first_line(error)}; not created: {_listed(missing)}"
        ) from error
    return Submission(tuple(created), tuple(t for t in order if t in found))


def queue_existing(queue: Any) -> Existing:
    """Return an ``existing`` callable that asks ``queue`` (a ``taskcluster.Queue``) in batches.

    It uses ``queue.statuses`` (one request per 1000 tasks).
    """

    def existing(task_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        for start in range(0, len(task_ids), 1000):
            batch = list(task_ids[start : start + 1000])
            query: dict[str, str] = {}
            tokens: set[str] = set()
            while True:
                answer = queue.statuses(payload={"taskIds": batch}, query=query)
                found.update(s["taskId"] for s in answer.get("statuses", []))
                token = answer.get("continuationToken")
                if not token:
                    break
                if token in tokens:
                    raise SubmitError("the Queue's statuses answer repeats its continuationToken")
                tokens.add(token)
                query = {"continuationToken": token}
        return found

    return existing
