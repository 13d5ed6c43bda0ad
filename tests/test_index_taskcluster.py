"""TaskclusterIndex against the loopback server: batching, fallbacks and faults."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from index_helpers import digest_of
from tcserver import TCServer, make_index

from taskgraph_images.errors import (
    ConfigError,
    IndexBackendError,
    IndexUnavailableError,
)
from taskgraph_images.index import TaskclusterIndex, find_images, hash_namespace

NAMES = [f"img{i}" for i in range(9)]


def _plant_mix(server: TCServer) -> dict[str, str]:
    """img0..img8: indexed at level 1, 2, 3 by turns; every fourth one has failed."""
    tasks = {}
    for i, name in enumerate(NAMES):
        state = "failed" if i % 4 == 3 else "completed"
        task_id = server.add_task(state=state)
        server.index_task(hash_namespace(i % 3 + 1, name, digest_of(name)), task_id)
        tasks[name] = task_id
    return tasks


def _lookup(index: Any, on_error: str = "raise") -> dict[str, Any]:
    result = find_images(index, [(n, digest_of(n)) for n in NAMES], 1, on_error=on_error)
    return {n: (r.found, r.reason) for n, r in result.items()}


@pytest.fixture
def baseline(tc_server: TCServer) -> dict[str, Any]:
    _plant_mix(tc_server)
    result = _lookup(make_index(tc_server))
    tc_server.requests.clear()
    return result


def test_batch_lookup_uses_one_find_and_one_statuses_request(tc_server: TCServer) -> None:
    _plant_mix(tc_server)
    _lookup(make_index(tc_server))
    assert tc_server.count("findTasksAtIndex") == 1
    assert tc_server.count("statuses") == 1
    assert tc_server.count("findTask") == 0
    assert tc_server.schema_errors == []


def test_artifacts_are_checked_only_for_completed_tasks(tc_server: TCServer) -> None:
    _plant_mix(tc_server)
    _lookup(make_index(tc_server))
    assert tc_server.count("latestArtifactInfo") == sum(1 for i in range(9) if i % 4 != 3)


def test_batch_results_follow_continuation_tokens(tc_server: TCServer) -> None:
    _plant_mix(tc_server)
    expected = _lookup(make_index(tc_server))
    tc_server.requests.clear()
    assert _lookup(make_index(tc_server, batch_size=4)) == expected
    assert tc_server.count("findTasksAtIndex") == 7  # ceil(27 / 4) batches


def test_paginated_answers_are_followed(tc_server: TCServer, monkeypatch: Any) -> None:
    _plant_mix(tc_server)
    expected = _lookup(make_index(tc_server))
    monkeypatch.setattr(sys.modules["tcserver"], "PAGE_SIZE", 2)
    tc_server.requests.clear()
    assert _lookup(make_index(tc_server)) == expected
    assert tc_server.count("findTasksAtIndex") == 5  # 9 entries, 2 a page


@pytest.mark.parametrize("status", [404, 405])
def test_missing_batch_endpoint_falls_back_to_findtask_with_same_result(
    tc_server: TCServer, baseline: dict[str, Any], status: int
) -> None:
    tc_server.disable("findTasksAtIndex", status)
    assert _lookup(make_index(tc_server)) == baseline
    assert tc_server.count("findTask") == 27


def test_missing_statuses_endpoint_falls_back_to_status(
    tc_server: TCServer, baseline: dict[str, Any]
) -> None:
    tc_server.disable("statuses", 404)
    assert _lookup(make_index(tc_server)) == baseline
    assert tc_server.count("status") == 9


@pytest.mark.parametrize("endpoint", ["findTasksAtIndex", "statuses", "latestArtifactInfo"])
def test_500_for_k_requests_then_success_gives_the_fault_free_result(
    tc_server: TCServer, baseline: dict[str, Any], endpoint: str
) -> None:
    tc_server.inject(endpoint, status=500, count=2)
    assert _lookup(make_index(tc_server)) == baseline


def test_dropped_connections_then_success_give_the_fault_free_result(
    tc_server: TCServer, baseline: dict[str, Any]
) -> None:
    tc_server.inject(drop=True, count=2)
    assert _lookup(make_index(tc_server)) == baseline


def test_503_forever_raises_naming_the_service_and_root_url(tc_server: TCServer) -> None:
    _plant_mix(tc_server)
    tc_server.inject(status=503)
    with pytest.raises(IndexUnavailableError) as info:
        _lookup(make_index(tc_server))
    message = str(info.value)
    assert f"Taskcluster index service at {tc_server.root_url}" in message
    assert "503" in message and "\n" not in message


def test_503_forever_on_the_queue_names_the_queue(tc_server: TCServer) -> None:
    _plant_mix(tc_server)
    tc_server.inject("statuses", status=503)
    with pytest.raises(IndexUnavailableError, match="Taskcluster queue service at http"):
        _lookup(make_index(tc_server))


def test_on_error_build_marks_every_image_unknown_when_index_is_down(
    tc_server: TCServer,
) -> None:
    _plant_mix(tc_server)
    tc_server.inject(status=503)
    result = find_images(make_index(tc_server), [(n, digest_of(n)) for n in NAMES], 1,
                         on_error="build")
    assert all(r.found is None for r in result.values())
    assert all(r.index_error and tc_server.root_url in r.index_error for r in result.values())
    assert all(r.reason.startswith("index unavailable: ") for r in result.values())


def test_dropped_connections_forever_raise_unreachable(tc_server: TCServer) -> None:
    tc_server.inject(drop=True)
    with pytest.raises(IndexUnavailableError, match="is unreachable: findTasksAtIndex failed"):
        _lookup(make_index(tc_server))


def test_slow_response_past_the_timeout_raises(tc_server: TCServer) -> None:
    tc_server.inject(delay=1.5)
    with pytest.raises(IndexUnavailableError, match=r"gave no answer within 0.3s"):
        _lookup(make_index(tc_server, timeout=0.3, max_retries=0))


def test_slow_response_within_the_timeout_is_fine(
    tc_server: TCServer, baseline: dict[str, Any]
) -> None:
    tc_server.inject(delay=0.05)
    assert _lookup(make_index(tc_server)) == baseline


def test_malformed_json_raises_a_clear_error(tc_server: TCServer) -> None:
    tc_server.inject("findTasksAtIndex", malformed=True)
    with pytest.raises(IndexUnavailableError, match="findTasksAtIndex with malformed JSON"):
        _lookup(make_index(tc_server))


def test_malformed_json_with_on_error_build_builds(tc_server: TCServer) -> None:
    tc_server.inject("findTasksAtIndex", malformed=True)
    result = _lookup(make_index(tc_server), on_error="build")
    assert all(found is None for found, _ in result.values())


def test_find_task_returns_none_for_absent_namespace(tc_index: TaskclusterIndex) -> None:
    assert tc_index.find_task("docker.images.v2.level-3.nothing.latest") is None


def test_insert_then_find_task_round_trips(tc_server: TCServer, tc_index: Any) -> None:
    task_id = tc_server.add_task()
    entry = tc_index.insert_task("a.b.c", task_id, rank=3, data={"x": 1})
    assert tc_index.find_task("a.b.c") == entry
    assert entry.task_id == task_id and entry.rank == 3


def test_list_tasks_lists_direct_children(tc_server: TCServer, tc_index: Any) -> None:
    task_id = tc_server.add_task()
    for ns in ("a.b.one", "a.b.two", "a.b.c.deep", "a.other"):
        tc_server.index_task(ns, task_id)
    assert [e.namespace for e in tc_index.list_tasks("a.b")] == ["a.b.one", "a.b.two"]


def test_root_url_comes_from_the_proxy_inside_a_task() -> None:
    env = {"TASKCLUSTER_ROOT_URL": "https://tc.example.com",
           "TASKCLUSTER_PROXY_URL": "http://taskcluster"}
    assert TaskclusterIndex(environ=env).root_url == "http://taskcluster"


def test_root_url_comes_from_the_environment() -> None:
    env = {"TASKCLUSTER_ROOT_URL": "https://tc.example.com/"}
    assert TaskclusterIndex(environ=env).root_url == "https://tc.example.com"


def test_root_url_argument_wins() -> None:
    env = {"TASKCLUSTER_ROOT_URL": "https://tc.example.com"}
    assert TaskclusterIndex("https://other.example.com", environ=env).root_url == (
        "https://other.example.com"
    )


def test_missing_root_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="TASKCLUSTER_ROOT_URL"):
        TaskclusterIndex(environ={})


def test_forbidden_answer_is_a_backend_error(tc_server: TCServer) -> None:
    tc_server.inject("findTasksAtIndex", status=403)
    with pytest.raises(IndexBackendError, match="refused findTasksAtIndex"):
        _lookup(make_index(tc_server))


def test_importing_the_package_does_not_import_the_client() -> None:
    import subprocess

    code = "import sys, taskgraph_images.index; print('taskcluster' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
