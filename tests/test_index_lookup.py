"""find_image / find_images semantics, the same on every backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from index_helpers import BACKENDS, Plant, digest_of, make_backend
from tcserver import TCServer

from taskgraph_images.errors import IndexUnavailableError, InvalidValueError
from taskgraph_images.index import (
    Found,
    IndexedTask,
    Lookup,
    MemoryIndex,
    Usability,
    find_image,
    find_images,
    hash_namespace,
)

D = digest_of("builder")


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Any, Plant]:
    server: TCServer | None = None
    if request.param == "taskcluster":
        server = request.getfixturevalue("tc_server")
    return make_backend(request.param, tmp_path, server)


@pytest.fixture
def planted(backend: tuple[Any, Plant]) -> tuple[Any, dict[int, str]]:
    """Entries at levels 1 (malicious), 2 and 3 for the same digest."""
    index, plant = backend
    tasks = {level: plant(level, "builder", D) for level in (1, 2, 3)}
    return index, tasks


def test_level_3_lookup_returns_only_the_level_3_task(planted: tuple[Any, dict[int, str]]) -> None:
    index, tasks = planted
    lookup = find_image(index, "builder", D, 3)
    assert lookup.found == Found(tasks[3], hash_namespace(3, "builder", D), 3)


def test_level_2_lookup_never_returns_the_level_1_task(planted: tuple[Any, dict[int, str]]) -> None:
    index, tasks = planted
    assert find_image(index, "builder", D, 2).found == Found(
        tasks[2], hash_namespace(2, "builder", D), 2
    )


def test_level_1_lookup_prefers_its_own_level(planted: tuple[Any, dict[int, str]]) -> None:
    index, tasks = planted
    assert find_image(index, "builder", D, 1).found == Found(
        tasks[1], hash_namespace(1, "builder", D), 1
    )


def test_level_3_lookup_builds_when_only_lower_levels_have_the_image(
    backend: tuple[Any, Plant],
) -> None:
    index, plant = backend
    plant(1, "builder", D)
    plant(2, "builder", D)
    lookup = find_image(index, "builder", D, 3)
    assert lookup.found is None
    assert lookup.reason == "not indexed"


def test_level_1_lookup_falls_back_to_level_3(backend: tuple[Any, Plant]) -> None:
    index, plant = backend
    task_id = plant(3, "builder", D)
    assert find_image(index, "builder", D, 1).found == Found(
        task_id, hash_namespace(3, "builder", D), 3
    )


def test_expired_artifact_is_skipped_and_next_level_tried(backend: tuple[Any, Plant]) -> None:
    index, plant = backend
    plant(2, "builder", D, artifact="expired")
    good = plant(3, "builder", D)
    lookup = find_image(index, "builder", D, 2)
    assert lookup.found is not None and lookup.found.task_id == good
    assert "artifact expired at level 2" in lookup.reason


def test_expired_artifact_at_the_last_level_means_build(backend: tuple[Any, Plant]) -> None:
    index, plant = backend
    plant(3, "builder", D, artifact="expired")
    lookup = find_image(index, "builder", D, 3)
    assert (lookup.found, lookup.reason) == (None, "artifact expired at level 3")


def test_missing_artifact_is_skipped(backend: tuple[Any, Plant]) -> None:
    index, plant = backend
    plant(3, "builder", D, artifact="missing")
    assert find_image(index, "builder", D, 3).reason == "artifact missing at level 3"


@pytest.mark.parametrize("state", ["failed", "exception"])
def test_failed_task_is_skipped_and_next_level_tried(
    backend: tuple[Any, Plant], state: str
) -> None:
    index, plant = backend
    plant(1, "builder", D, state=state)
    good = plant(3, "builder", D)
    lookup = find_image(index, "builder", D, 1)
    assert lookup.found is not None and lookup.found.task_id == good
    assert f"task {state} at level 1" in lookup.reason


def test_find_images_answers_every_image_in_request_order(backend: tuple[Any, Plant]) -> None:
    index, plant = backend
    names = [f"img{i}" for i in range(12)]
    for i, name in enumerate(names):
        if i % 4:
            plant(i % 4, name, digest_of(name))
    result = find_images(index, [(n, digest_of(n)) for n in names], 1)
    assert list(result) == names
    assert [result[n].found is not None for n in names] == [i % 4 != 0 for i in range(12)]
    assert [r.found.level for r in result.values() if r.found] == [
        i % 4 for i in range(12) if i % 4
    ]


def test_find_images_with_no_requests_returns_empty(backend: tuple[Any, Plant]) -> None:
    assert find_images(backend[0], [], 1) == {}


def test_find_images_rejects_one_name_with_two_digests() -> None:
    with pytest.raises(InvalidValueError, match="'a' requested with two digests"):
        find_images(MemoryIndex(), [("a", D), ("a", digest_of("x"))], 1)


def test_find_images_rejects_unknown_on_error() -> None:
    with pytest.raises(InvalidValueError, match="on_error 'skip'"):
        find_images(MemoryIndex(), [("a", D)], 1, on_error="skip")  # type: ignore[arg-type]


class _Down:
    description = "broken index"

    def __init__(self, fail_at: str) -> None:
        self.fail_at = fail_at
        self.inner = MemoryIndex()

    def find_tasks(self, namespaces: Any) -> dict[str, IndexedTask]:
        if self.fail_at == "find":
            raise IndexUnavailableError("broken index is unavailable")
        return self.inner.find_tasks(namespaces)

    def usable_artifacts(self, task_ids: Any, artifact: str) -> dict[str, Usability]:
        raise IndexUnavailableError("broken queue is unavailable")


@pytest.mark.parametrize("fail_at", ["find", "usable"])
def test_on_error_raise_propagates_the_index_error(fail_at: str) -> None:
    down = _Down(fail_at)
    down.inner.record_build(3, "a", D, 0)
    with pytest.raises(IndexUnavailableError):
        find_images(down, [("a", D)], 3)


@pytest.mark.parametrize("fail_at", ["find", "usable"])
def test_on_error_build_marks_affected_images_as_builds_with_the_error(fail_at: str) -> None:
    down = _Down(fail_at)
    down.inner.record_build(3, "a", D, 0)
    result = find_images(down, [("a", D), ("b", digest_of("b"))], 3, on_error="build")
    assert result["a"] == Lookup(
        "a", D, 3, None, f"index unavailable: {_msg(fail_at)}", _msg(fail_at)
    )
    if fail_at == "usable":  # "b" was decided (not indexed) before the failure
        assert result["b"].index_error is None and result["b"].reason == "not indexed"
    else:
        assert result["b"].index_error is not None


def _msg(fail_at: str) -> str:
    return "broken index is unavailable" if fail_at == "find" else "broken queue is unavailable"


def test_memory_index_found_image_is_reusable() -> None:
    index = MemoryIndex()
    task_id = index.record_build(2, "a", D, 0)
    lookup = find_image(index, "a", D, 1)
    assert lookup.reuse and lookup.found == Found(task_id, hash_namespace(2, "a", D), 2)


@pytest.mark.parametrize(("level", "reused"), [(1, True), (2, False), (3, False)])
def test_a_pull_request_entry_is_trusted_at_level_1_only(level: int, reused: bool) -> None:
    """The plan decides as the taskgraph strategy does (one ``decide``): taskgraph's
    pull-request namespace holds level 1 builds."""
    from taskgraph_images.keys.indexkeys import IndexKeys
    from taskgraph_images.keys.taskgraph import pull_request_namespace

    index = MemoryIndex()
    namespace = pull_request_namespace("proj", "a", D)
    task_id = index.record_build(1, "a", D, 0, namespaces=[namespace])
    keys = IndexKeys(taskgraph_prefix="proj", tasks_for="github-pull-request")
    lookup = find_images(index, [("a", D)], level, search=keys.search)["a"]
    if reused:
        assert lookup.found == Found(task_id, namespace, 1)
        assert lookup.reason == "indexed at the pull-request namespace"
    else:
        assert lookup.found is None
        assert lookup.reason == f"not trusted: a pull-request entry at a level {level} push"
