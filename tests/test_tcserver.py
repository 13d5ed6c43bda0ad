"""The loopback server itself: routes, schemas, error shape, redirects."""

from __future__ import annotations

import datetime

import pytest
import requests
import taskcluster_urls
from tcschemas import errors, validate
from tcserver import TCServer


def _task(payload: dict[str, object]) -> dict[str, object]:
    now = datetime.datetime.now(datetime.timezone.utc)
    return {
        "created": now.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "deadline": (now + datetime.timedelta(days=1)).strftime("%Y-%m-%dT%H:%M:%S.000Z"),
        "taskQueueId": "proj/images",
        "payload": payload,
        "metadata": {"name": "x", "description": "x", "owner": "a@example.com",
                     "source": "https://example.com/"},
    }


def test_create_task_accepts_a_valid_definition(tc_server: TCServer) -> None:
    import taskcluster

    queue = taskcluster.Queue({"rootUrl": tc_server.root_url, "maxRetries": 0})
    task = _task({"image": "ubuntu:22.04", "maxRunTime": 600})
    validate(task, "queue/v1/create-task-request.json")
    answer = queue.createTask("KD5yPlwqQtS7t4ieeFU-mA", task)
    assert answer["status"]["state"] == "pending"
    assert tc_server.definitions["KD5yPlwqQtS7t4ieeFU-mA"] == task


def test_create_task_rejects_a_bad_payload_with_input_validation_error(
    tc_server: TCServer,
) -> None:
    import taskcluster
    import taskcluster.exceptions

    queue = taskcluster.Queue({"rootUrl": tc_server.root_url, "maxRetries": 0})
    with pytest.raises(taskcluster.exceptions.TaskclusterRestFailure) as info:
        queue.createTask("KD5yPlwqQtS7t4ieeFU-mA", _task({"image": 5}))
    assert info.value.status_code == 400
    assert info.value.body["code"] == "InputValidationError"


def test_errors_have_the_services_shape(tc_server: TCServer) -> None:
    r = requests.get(taskcluster_urls.api(tc_server.root_url, "index", "v1", "task/a.b"), timeout=5)
    assert r.status_code == 404
    assert set(r.json()) == {"code", "message", "requestInfo"}
    assert r.json()["code"] == "ResourceNotFound"


def test_get_latest_artifact_redirects_to_a_blob_with_range_support(tc_server: TCServer) -> None:
    task_id = tc_server.add_task(artifacts={"public/image.tar.zst": b"0123456789"})
    url = taskcluster_urls.api(tc_server.root_url, "queue", "v1",
                               f"task/{task_id}/artifacts/public%2Fimage.tar.zst")
    r = requests.get(url, allow_redirects=False, timeout=5)
    assert r.status_code == 303
    blob = requests.get(r.headers["Location"], headers={"Range": "bytes=2-4"}, timeout=5)
    assert (blob.status_code, blob.content) == (206, b"234")
    assert requests.get(url, timeout=5).content == b"0123456789"


def test_tcschemas_errors_lists_problems() -> None:
    assert errors({"image": 5}, "docker-worker/v1/payload.json")


def test_create_task_is_idempotent_refuses_another_body_and_unknown_dependencies(
    tc_server: TCServer,
) -> None:
    import taskcluster

    queue = taskcluster.Queue({"rootUrl": tc_server.root_url, "maxRetries": 0})
    task = _task({"image": "ubuntu:22.04", "maxRunTime": 600})
    first = queue.createTask("KD5yPlwqQtS7t4ieeFU-mA", task)
    assert queue.createTask("KD5yPlwqQtS7t4ieeFU-mA", task) == first
    with pytest.raises(taskcluster.TaskclusterRestFailure) as conflict:
        queue.createTask("KD5yPlwqQtS7t4ieeFU-mA", {**task, "retries": 1})
    assert conflict.value.status_code == 409
    with pytest.raises(taskcluster.TaskclusterRestFailure) as missing:
        queue.createTask("Zm9vYmFyYmF6cXV4cXV1eA", {**task, "dependencies": ["nope"]})
    assert missing.value.status_code == 400 and "nope" in str(missing.value)
    assert first["status"]["taskQueueId"] == "proj/images"
    assert first["status"]["provisionerId"] == "proj"


def test_ping_answers_alive(tc_server: TCServer) -> None:
    import taskcluster

    queue = taskcluster.Queue({"rootUrl": tc_server.root_url, "maxRetries": 0})
    assert queue.ping()["alive"] is True
    assert tc_server.schema_errors == []


def test_a_fault_after_n_requests_lets_them_through_first(tc_server: TCServer) -> None:
    import taskcluster

    queue = taskcluster.Queue({"rootUrl": tc_server.root_url, "maxRetries": 0})
    tc_server.inject("ping", status=500, after=2, count=1)
    queue.ping()
    queue.ping()
    with pytest.raises(taskcluster.TaskclusterRestFailure):
        queue.ping()
    queue.ping()
    assert tc_server.peak == 1 and tc_server.requests.count("ping") == 4
