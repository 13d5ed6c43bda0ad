"""Submitting a plan: each task after its dependencies, bounded concurrency, failures, resuming."""

from __future__ import annotations

import threading
import time
from typing import Any, Mapping

import attrs
import pytest
import taskcluster
from hypothesis import given, settings
from hypothesis import strategies as st
from plan_helpers import synthetic_plan

from taskgraph_images.config import LOCAL_TASK_QUEUE
from taskgraph_images.errors import SubmitError
from taskgraph_images.tc.submit import (
    DEFAULT_JOBS,
    Submission,
    queue_existing,
    submission_order,
    submit_plan,
)


class FakeQueue:
    """Records when each createTask call starts and ends; fails where told to."""

    def __init__(self, delay: float = 0.0, fail: Mapping[str, Exception] | None = None) -> None:
        self.delay = delay
        self.fail = dict(fail or {})
        self.lock = threading.Lock()
        self.started: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.active = 0
        self.peak = 0

    def create(self, task_id: str, task: Mapping[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.started[task_id] = time.monotonic()
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            time.sleep(self.delay)
            if task_id in self.fail:
                raise self.fail[task_id]
        finally:
            with self.lock:
                self.active -= 1
                self.ended[task_id] = time.monotonic()
        return {"status": {"taskId": task_id}}


def _deps(plan: Any, task_id: str) -> list[str]:
    return [d for d in plan.tasks[task_id]["dependencies"] if d in plan.tasks]


def test_every_task_starts_after_its_dependencies_were_created() -> None:
    plan = synthetic_plan(60, depth=4)
    queue = FakeQueue(delay=0.002)
    result = submit_plan(plan, queue.create, jobs=8)
    assert sorted(result.created) == sorted(plan.tasks) and result.existing == ()
    for task_id in plan.tasks:
        for dep in _deps(plan, task_id):
            assert queue.ended[dep] <= queue.started[task_id]


def test_no_more_than_jobs_calls_are_in_flight_and_the_bound_is_used() -> None:
    plan = synthetic_plan(64, depth=1)
    queue = FakeQueue(delay=0.01)
    submit_plan(plan, queue.create, jobs=5)
    assert queue.peak == 5
    assert DEFAULT_JOBS == 16


def test_one_job_is_the_submission_order() -> None:
    plan = synthetic_plan(12, depth=3)
    created: list[str] = []
    result = submit_plan(plan, lambda t, task: created.append(t), jobs=1)
    assert list(result.created) == created == submission_order(plan.tasks)


def test_a_failure_starts_nothing_more_and_says_what_was_created_and_not() -> None:
    plan = synthetic_plan(9, depth=3)
    order = submission_order(plan.tasks)
    failing = order[3]  # in the second layer
    queue = FakeQueue(fail={failing: RuntimeError("403 insufficient scopes\nmore detail")})
    with pytest.raises(SubmitError) as raised:
        submit_plan(plan, queue.create, jobs=1)
    message = str(raised.value)
    name = next(d.name for d in plan.decisions.values() if d.task_id == failing)
    assert message.startswith(f"created 3 of 9 build tasks; creating {failing} of image {name!r}")
    assert "RuntimeError: 403 insufficient scopes; not created: " in message
    assert "\n" not in message
    assert set(queue.started) == set(order[:4])


def test_calls_in_flight_finish_after_a_failure() -> None:
    plan = synthetic_plan(8, depth=1)
    order = submission_order(plan.tasks)
    queue = FakeQueue(delay=0.02, fail={order[0]: RuntimeError("boom")})
    with pytest.raises(SubmitError, match=r"^created 3 of 8 build tasks; .* not created: "):
        submit_plan(plan, queue.create, jobs=4)
    assert queue.active == 0 and len(queue.ended) == 4


def test_long_lists_of_missing_images_are_cut() -> None:
    plan = synthetic_plan(30, depth=1)
    first = submission_order(plan.tasks)[0]
    with pytest.raises(SubmitError, match=r"image-0007 and 22 more$"):
        submit_plan(plan, FakeQueue(fail={first: RuntimeError("x")}).create, jobs=1)


def test_existing_tasks_are_not_created_again_and_their_children_go_ahead() -> None:
    plan = synthetic_plan(9, depth=3)
    order = submission_order(plan.tasks)
    have = set(order[:4])
    asked: list[list[str]] = []

    def existing(task_ids: Any) -> set[str]:
        asked.append(list(task_ids))
        return have | {"not-in-the-plan"}

    progress: list[tuple[int, int]] = []
    queue = FakeQueue()
    result = submit_plan(plan, queue.create, existing=existing,
                         progress=lambda d, t: progress.append((d, t)))
    assert asked == [order]
    assert set(result.created) == set(order[4:]) and set(result.existing) == have
    assert set(queue.started) == set(order[4:])
    assert progress[0] == (4, 9) and progress[-1] == (9, 9) and len(progress) == 6


def test_existing_that_fails_is_one_line() -> None:
    def existing(task_ids: Any) -> set[str]:
        raise ConnectionError("refused\nsecond line")

    with pytest.raises(SubmitError, match=r"^cannot ask the Queue .*ConnectionError: refused$"):
        submit_plan(synthetic_plan(2), FakeQueue().create, existing=existing)


def test_a_task_for_the_local_queue_is_never_submitted() -> None:
    plan = synthetic_plan(3)
    first = next(iter(plan.tasks))
    tasks = {t: ({**d, "taskQueueId": LOCAL_TASK_QUEUE} if t == first else d)
             for t, d in plan.tasks.items()}
    queue = FakeQueue()
    with pytest.raises(SubmitError, match=rf"local taskQueueId {LOCAL_TASK_QUEUE}.*task-queue-id"):
        submit_plan(attrs.evolve(plan, tasks=tasks), queue.create)
    assert queue.started == {}


@pytest.mark.parametrize("image", [
    "mozillareleases/image_builder:6.2.0",
    "mozillareleases/image_builder:6.2.0@sha256:" + "f" * 64,
])
def test_our_builder_in_taskgraphs_image_builder_is_never_submitted(image: str) -> None:
    """A taskgraph repository with no file of ours plans taskgraph's digests, whose
    builder reference is taskgraph's image builder: that image cannot run ours."""
    plan = synthetic_plan(3)
    first = next(iter(plan.tasks))
    name = next(d.name for d in plan.decisions.values() if d.task_id == first)
    tasks = {t: ({**d, "payload": {**d["payload"], "image": image}} if t == first else d)
             for t, d in plan.tasks.items()}
    queue = FakeQueue()
    with pytest.raises(SubmitError) as raised:
        submit_plan(attrs.evolve(plan, tasks=tasks), queue.create)
    assert str(raised.value).startswith(
        f"the build task of image {name!r} would run `taskgraph-images build-in-task` in "
        "taskgraph's image builder (mozillareleases/image_builder), which does not hold it: "
        "let taskgraph's docker-image kind make the build tasks, or add the line "
        "`image-builder: REGISTRY/NAME:TAG`")
    assert queue.started == {}
    # Another image of the same name elsewhere, or taskgraph's own command, is no concern.
    for other in ({"image": "example.org/mozillareleases/image_builder:6.2.0"},
                  {"image": image, "command": ["/usr/local/bin/build.sh"]}):
        tasks = {t: ({**d, "payload": {**d["payload"], **other}} if t == first else d)
                 for t, d in plan.tasks.items()}
        assert submit_plan(attrs.evolve(plan, tasks=tasks), FakeQueue().create).created


def test_a_cycle_is_refused_before_anything_is_created() -> None:
    plan = synthetic_plan(2, depth=1)
    a, b = plan.tasks
    tasks = {a: {**plan.tasks[a], "dependencies": [b]}, b: {**plan.tasks[b], "dependencies": [a]}}
    with pytest.raises(SubmitError, match="cycle"):
        submit_plan(attrs.evolve(plan, tasks=tasks), FakeQueue().create)


def test_jobs_below_one_is_refused() -> None:
    with pytest.raises(SubmitError, match="jobs must be at least 1"):
        submit_plan(synthetic_plan(1), FakeQueue().create, jobs=0)


def test_an_empty_plan_creates_nothing() -> None:
    plan = attrs.evolve(synthetic_plan(1), tasks={}, decisions={})
    assert submit_plan(plan, FakeQueue().create, existing=lambda ids: 1 / 0) == Submission(())


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 40), st.integers(1, 5), st.integers(1, 9), st.data())
def test_any_plan_any_bound_any_failure(count: int, depth: int, jobs: int, data: Any) -> None:
    plan = synthetic_plan(count, depth=min(depth, count))
    order = submission_order(plan.tasks)
    failing = data.draw(st.one_of(st.none(), st.sampled_from(order)))
    queue = FakeQueue(fail={failing: RuntimeError("no")} if failing else {})
    try:
        result = submit_plan(plan, queue.create, jobs=jobs)
        assert sorted(result.created) == sorted(order)
    except SubmitError as e:
        assert failing is not None and f"creating {failing} " in str(e)
    assert queue.peak <= jobs
    for task_id in queue.started:
        assert all(d in queue.ended and d != failing for d in _deps(plan, task_id))


# -- against the loopback Queue ----------------------------------------------------


def _queue(tc_server: Any) -> Any:
    return taskcluster.Queue({"rootUrl": tc_server.root_url, "maxRetries": 0})


def test_loopback_queue_gets_every_task_after_its_dependencies(tc_server: Any) -> None:
    # The loopback Queue refuses a task whose dependency it does not have, like the real one.
    plan = synthetic_plan(40, depth=4)
    result = submit_plan(plan, _queue(tc_server).createTask, jobs=8)
    assert set(result.created) == set(tc_server.definitions) == set(plan.tasks)
    assert tc_server.schema_errors == [] and tc_server.peak <= 8
    assert tc_server.definitions == {t: dict(d) for t, d in plan.tasks.items()}


def test_loopback_queue_failing_midway_then_resumed_creates_only_the_rest(tc_server: Any) -> None:
    plan = synthetic_plan(30, depth=3)
    queue = _queue(tc_server)
    tc_server.inject("createTask", status=500, after=12)
    with pytest.raises(SubmitError, match=r"^created \d+ of 30 build tasks; creating .* failed: "):
        submit_plan(plan, queue.createTask, jobs=4)
    first = set(tc_server.definitions)
    assert 12 <= len(first) < 30
    tc_server.faults.clear()
    tc_server.requests.clear()
    result = submit_plan(plan, queue.createTask, jobs=4, existing=queue_existing(queue))
    assert set(result.existing) == first and set(result.created) == set(plan.tasks) - first
    assert tc_server.requests.count("createTask") == 30 - len(first)
    assert tc_server.requests.count("statuses") == 1
    assert set(tc_server.definitions) == set(plan.tasks)


def test_loopback_resubmit_of_a_complete_plan_creates_nothing(tc_server: Any) -> None:
    plan = synthetic_plan(10, depth=2)
    queue = _queue(tc_server)
    submit_plan(plan, queue.createTask)
    tc_server.requests.clear()
    again = submit_plan(plan, queue.createTask, existing=queue_existing(queue))
    assert again.created == () and len(again.existing) == 10
    assert tc_server.requests == ["statuses"]


def test_loopback_create_again_without_asking_is_idempotent(tc_server: Any) -> None:
    plan = synthetic_plan(6, depth=2)
    queue = _queue(tc_server)
    submit_plan(plan, queue.createTask)
    statuses = dict(tc_server.tasks)
    assert len(submit_plan(plan, queue.createTask).created) == 6
    assert tc_server.tasks == statuses


def test_loopback_statuses_in_pages(tc_server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    import tcserver

    monkeypatch.setattr(tcserver, "PAGE_SIZE", 4)
    plan = synthetic_plan(10, depth=1)
    queue = _queue(tc_server)
    submit_plan(plan, queue.createTask)
    assert queue_existing(queue)(list(plan.tasks)) == set(plan.tasks)


def test_loopback_statuses_that_never_end_are_an_error(tc_server: Any) -> None:
    plan = synthetic_plan(3, depth=1)
    queue = _queue(tc_server)
    tc_server.inject("statuses", stuck=True)
    with pytest.raises(SubmitError, match="repeats its continuationToken"):
        submit_plan(plan, queue.createTask, existing=queue_existing(queue))


def test_loopback_latency_is_paid_about_once_per_layer_not_once_per_task(tc_server: Any) -> None:
    tc_server.latency = 0.05
    tc_server.validate_responses = False
    walls: list[float] = []
    peaks: list[int] = []
    for jobs in (1, 16):
        tc_server.reset()
        tc_server.latency = 0.05
        plan = synthetic_plan(24, depth=3)
        start = time.perf_counter()
        submit_plan(plan, _queue(tc_server).createTask, jobs=jobs)
        walls.append(time.perf_counter() - start)
        peaks.append(tc_server.peak)
    # One at a time pays 24 x 50 ms, one request in flight; with 8 tasks a layer
    # in flight at once, ~3 x 50 ms (plus the host's overhead, which a loaded CI
    # machine makes large: the ratio is kept at 2x, not the ideal 8x).
    assert walls[0] >= 24 * 0.05 and peaks[0] == 1, (walls, peaks)
    assert peaks[1] > 1 and walls[1] * 2 < walls[0], (walls, peaks)
