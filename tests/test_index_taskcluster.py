"""TaskclusterIndex against the loopback server: batching, fallbacks and faults."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from importcheck import modules_loaded_by
from index_helpers import digest_of
from tcserver import TCServer, make_index

from taskgraph_images.errors import (
    ConfigError,
    IndexBackendError,
    IndexUnavailableError,
    InvalidValueError,
)
from taskgraph_images.index import TaskclusterIndex, find_images, hash_namespace
from taskgraph_images.tc.env import Credentials, TaskclusterEnv

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


def test_warm_starts_the_threads_ahead_and_the_calls_run_on_them(tc_server: TCServer) -> None:
    """``warm(4)``: a thread for each of 4 concurrent calls and one for each call's
    try, started in the background; 4 artifact checks then start no thread."""
    import threading
    import time

    def runners() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "taskcluster-runner")

    before = runners()
    ids = [tc_server.add_task() for _ in range(4)]
    index = make_index(tc_server, max_workers=4)
    index.warm(4)
    waited = time.monotonic()
    while runners() < before + 8 and time.monotonic() - waited < 10:
        time.sleep(0.01)
    assert runners() == before + 8
    expiries = index.artifact_expiries(ids, "public/image.tar.zst")
    assert sorted(expiries) == sorted(ids) and None not in expiries.values()
    assert runners() == before + 8
    assert tc_server.count("latestArtifactInfo") == 4


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
    env = TaskclusterEnv(root_url="https://tc.example.com", proxy_url="http://taskcluster")
    assert TaskclusterIndex(env=env).root_url == "http://taskcluster"


def test_root_url_comes_from_the_environment() -> None:
    env = TaskclusterEnv(root_url="https://tc.example.com/")
    assert TaskclusterIndex(env=env).root_url == "https://tc.example.com"


def test_root_url_argument_wins() -> None:
    env = TaskclusterEnv(root_url="https://tc.example.com")
    assert TaskclusterIndex("https://other.example.com", env=env).root_url == (
        "https://other.example.com"
    )


def test_missing_root_url_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="TASKCLUSTER_ROOT_URL"):
        TaskclusterIndex(env=TaskclusterEnv())


def test_forbidden_answer_is_a_backend_error(tc_server: TCServer) -> None:
    tc_server.inject("findTasksAtIndex", status=403)
    with pytest.raises(IndexBackendError, match="refused findTasksAtIndex"):
        _lookup(make_index(tc_server))


def test_importing_the_package_does_not_import_the_client() -> None:
    assert "taskcluster" not in modules_loaded_by("import taskgraph_images.index")


# -- answers of the wrong shape, client errors, credentials and settings -------------------------

NS = hash_namespace(3, "img0", digest_of("img0"))


def _plant_raw_entry(server: TCServer, **changes: Any) -> None:
    """Index a task at NS, then break the stored entry (and stop validating answers)."""
    server.index_task(NS, server.add_task())
    with server._lock:
        entry = server.index[NS]
        for key, value in changes.items():
            if value is _DELETE:
                del entry[key]
            else:
                entry[key] = value
    server.validate_responses = False


_DELETE = object()


@pytest.mark.parametrize(("change", "says"), [
    ({"rank": _DELETE}, "missing 'rank'"),
    ({"rank": "high"}, "'rank' is not a number"),
    ({"rank": True}, "'rank' is not a number"),
    ({"data": ["x"]}, "'data' is not an object"),
    ({"taskId": 7}, "'taskId' is not a string"),
], ids=["no-rank", "text-rank", "bool-rank", "list-data", "number-task-id"])
@pytest.mark.parametrize(("method", "call"), [
    ("findTasksAtIndex", lambda index: index.find_tasks([NS])),
    ("findTask", lambda index: index.find_task(NS)),
    ("listTasks", lambda index: index.list_tasks(NS.rsplit(".", 1)[0])),
])
def test_an_entry_of_the_wrong_shape_is_an_unavailable_index_naming_the_field(
    tc_server: TCServer, change: dict[str, Any], says: str, method: str, call: Any
) -> None:
    _plant_raw_entry(tc_server, **change)
    with pytest.raises(IndexUnavailableError) as info:
        call(make_index(tc_server))
    assert f"answered {method} with a malformed body: " in str(info.value)
    assert says in str(info.value)


def _unknown_task_states(index: TaskclusterIndex, task_id: str = "") -> Any:
    return index.task_states(["KD5yPlwqQtS7t4ieeFU-mA"])


@pytest.mark.parametrize(("method", "call"), [
    ("findTask", lambda index, _: index.find_task(NS)),
    ("findTasksAtIndex", lambda index, _: index.find_tasks([NS])),
    ("listTasks", lambda index, _: index.list_tasks("docker.images")),
    ("insertTask", lambda index, _: index.insert_task(NS, "KD5yPlwqQtS7t4ieeFU-mA")),
    ("statuses", _unknown_task_states),
    ("latestArtifactInfo",
     lambda index, task_id: index.usable_artifacts([task_id], "public/image.tar.zst")),
])
def test_a_client_error_other_than_404_names_the_method_and_status(
    tc_server: TCServer, method: str, call: Any
) -> None:
    task_id = tc_server.add_task()
    tc_server.inject(method, status=409)
    with pytest.raises(IndexBackendError, match=f"answered {method}.*with 409: injected 409"):
        call(make_index(tc_server), task_id)


def test_status_fallback_with_a_client_error_names_status(tc_server: TCServer) -> None:
    tc_server.disable("statuses", 404)
    tc_server.inject("status", status=409)
    with pytest.raises(IndexBackendError, match="queue service at http.* answered status with 409"):
        _unknown_task_states(make_index(tc_server))


def test_status_fallback_treats_404_as_an_unknown_task(tc_server: TCServer) -> None:
    tc_server.disable("statuses", 405)
    index = make_index(tc_server)
    known = tc_server.add_task(state="running")
    assert index.task_states([known, "KD5yPlwqQtS7t4ieeFU-mA"]) == {known: "running"}
    verdicts = index.usable_artifacts(["KD5yPlwqQtS7t4ieeFU-mA"], "public/image.tar.zst")
    assert verdicts["KD5yPlwqQtS7t4ieeFU-mA"].reason == "task unknown"


def test_listing_a_namespace_the_index_does_not_know_is_empty(tc_server: TCServer) -> None:
    tc_server.inject("listTasks", status=404)
    assert make_index(tc_server).list_tasks("docker.images") == []


def test_list_tasks_follows_continuation_tokens(tc_server: TCServer, monkeypatch: Any) -> None:
    task_id = tc_server.add_task()
    for i in range(5):
        tc_server.index_task(f"a.b.n{i}", task_id)
    monkeypatch.setattr(sys.modules["tcserver"], "PAGE_SIZE", 2)
    assert [e.namespace for e in make_index(tc_server).list_tasks("a.b")] == [
        f"a.b.n{i}" for i in range(5)]
    assert tc_server.count("listTasks") == 3


@pytest.mark.parametrize("endpoint", ["findTasksAtIndex", "statuses"])
def test_a_batch_answer_that_repeats_its_continuation_token_is_malformed_not_endless(
        tc_server: TCServer, endpoint: str) -> None:
    _plant_mix(tc_server)
    tc_server.inject(endpoint, stuck=True)
    with pytest.raises(IndexUnavailableError,
                       match=f"{endpoint} with a malformed body: a continuationToken it had"):
        _lookup(make_index(tc_server))
    assert tc_server.count(endpoint) == 2  # the first page, then the one that repeated


def test_a_listing_that_repeats_its_continuation_token_is_malformed_not_endless(
        tc_server: TCServer) -> None:
    tc_server.index_task("a.b.c", tc_server.add_task())
    tc_server.inject("listTasks", stuck=True)
    with pytest.raises(IndexUnavailableError, match="listTasks with a malformed body"):
        make_index(tc_server).list_tasks("a.b")


def test_an_artifact_stored_as_an_error_is_missing(tc_server: TCServer) -> None:
    task_id = tc_server.add_task(artifacts={})
    tc_server.add_artifact(task_id, "public/image.tar.zst", storage_type="error")
    verdict = make_index(tc_server).usable_artifacts([task_id], "public/image.tar.zst")[task_id]
    assert verdict.reason == "artifact missing"


@pytest.mark.parametrize(("method", "break_it", "says"), [
    ("statuses", lambda s, t: s.tasks[t].update(state=42), "bad status entry"),
    ("status", lambda s, t: s.tasks[t].update(state=42), "no status.state"),
    ("latestArtifactInfo",
     lambda s, t: s.artifacts[(t, "public/image.tar.zst")].update(expires="whenever"),
     "invalid artifact expiry 'whenever'"),
])
def test_a_queue_answer_of_the_wrong_shape_is_an_unavailable_index(
    tc_server: TCServer, method: str, break_it: Any, says: str
) -> None:
    task_id = tc_server.add_task()
    with tc_server._lock:
        break_it(tc_server, task_id)
    tc_server.validate_responses = False
    if method == "status":
        tc_server.disable("statuses", 404)
    with pytest.raises(IndexUnavailableError, match=f"queue service at .* answered {method} "
                       f"with a malformed body: {says}"):
        make_index(tc_server).usable_artifacts([task_id], "public/image.tar.zst")


def test_an_unauthorised_answer_is_a_refusal(tc_server: TCServer) -> None:
    tc_server.inject("insertTask", status=401)
    with pytest.raises(IndexBackendError, match=r"refused insertTask \(401\)"):
        make_index(tc_server).insert_task(NS, "KD5yPlwqQtS7t4ieeFU-mA")


def _credentials(client: Any) -> dict[str, str]:
    """The credentials a client signs with (the client may hold them as bytes)."""
    return {k: v.decode() if isinstance(v, bytes) else v
            for k, v in client.options["credentials"].items() if v}


_ME = Credentials("me", "secret")


def test_credentials_come_from_the_environment_outside_a_task() -> None:
    env = TaskclusterEnv(root_url="https://tc.example.com", credentials=_ME)
    index = TaskclusterIndex(env=env)
    assert _credentials(index._index) == {"clientId": "me", "accessToken": "secret"}


def test_inside_a_task_the_proxy_signs_and_environment_credentials_are_dropped(tc_server: TCServer) -> None:
    env = TaskclusterEnv(proxy_url=tc_server.root_url, credentials=_ME)
    TaskclusterIndex(env=env).insert_task(NS, "KD5yPlwqQtS7t4ieeFU-mA")
    assert (tc_server.requests, tc_server.signed) == (["insertTask"], [])


def test_a_private_artifact_through_the_proxy_is_asked_for_unsigned(tc_server: TCServer) -> None:
    # The proxy signs: the index builds the URL by tcenv.artifact_url's rule, as load does.
    task_id = tc_server.add_task(artifacts={"private/m.json": b"{}"})
    env = TaskclusterEnv(proxy_url=tc_server.root_url, credentials=_ME)
    read = TaskclusterIndex(env=env).read_artifacts([task_id], "private/m.json", limit=100)
    assert (read[task_id].data, read[task_id].problem) == (b"{}", "")


def test_a_private_artifact_with_credentials_is_asked_for_signed(tc_server: TCServer) -> None:
    task_id = tc_server.add_task(artifacts={"private/m.json": b"{}"})
    index = TaskclusterIndex(env=TaskclusterEnv(root_url=tc_server.root_url, credentials=_ME))
    assert index.read_artifacts([task_id], "private/m.json", limit=100)[task_id].data == b"{}"


def test_explicit_credentials_win() -> None:
    index = TaskclusterIndex("https://tc.example.com", {"clientId": "x", "accessToken": "y"},
                             env=TaskclusterEnv(credentials=_ME))
    assert _credentials(index._queue) == {"clientId": "x", "accessToken": "y"}


def test_explicit_empty_credentials_mean_none(tc_server: TCServer) -> None:
    index = TaskclusterIndex(tc_server.root_url, {}, env=TaskclusterEnv(credentials=_ME))
    index.insert_task(NS, "KD5yPlwqQtS7t4ieeFU-mA")
    assert (tc_server.requests, tc_server.signed) == (["insertTask"], [])


def test_options_give_the_root_url_and_credentials() -> None:
    index = TaskclusterIndex(options={"rootUrl": "https://tc.example.com/",
                                      "credentials": {"clientId": "x", "accessToken": "y"}},
                             env=TaskclusterEnv(credentials=_ME))
    assert index.root_url == "https://tc.example.com"
    assert _credentials(index._index) == {"clientId": "x", "accessToken": "y"}


def test_the_environment_is_read_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKCLUSTER_ROOT_URL", "https://tc.example.com/")
    monkeypatch.delenv("TASKCLUSTER_PROXY_URL", raising=False)
    assert TaskclusterIndex().root_url == "https://tc.example.com"


@pytest.mark.parametrize("setting", [
    {"max_workers": 0}, {"max_retries": -1}, {"timeout": 0}, {"batch_size": 0},
    {"batch_size": 1001},
])
def test_invalid_settings_are_refused(setting: dict[str, Any]) -> None:
    with pytest.raises(InvalidValueError, match="invalid TaskclusterIndex settings"):
        TaskclusterIndex("https://tc.example.com", env=TaskclusterEnv(), **setting)


def test_description_and_repr_name_the_root_url() -> None:
    index = TaskclusterIndex("https://tc.example.com/", env=TaskclusterEnv())
    assert index.description == "Taskcluster index at https://tc.example.com"
    assert repr(index) == "TaskclusterIndex('https://tc.example.com')"


def test_asking_for_nothing_asks_nobody(tc_server: TCServer) -> None:
    index = make_index(tc_server)
    assert index.find_tasks([]) == {} and index.task_states([]) == {}
    assert tc_server.count() == 0
