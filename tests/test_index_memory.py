"""The embedded backends keep the Index service's semantics: MemoryIndex beside LocalIndex.

``tests/test_index_local.py`` checks these rules on the SQLite index alone;
here both embedded backends run the same table, so that a plan made with
``MemoryIndex`` in a test behaves as one made with the local index.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import pytest
from index_helpers import PAST

from taskgraph_images.errors import InvalidValueError
from taskgraph_images.index import LocalIndex, MemoryIndex

T1 = "KD5yPlwqQtS7t4ieeFU-mA"
T2 = "Lc4c8BZ-RUqC0eL4TVTiRw"


@pytest.fixture(params=["memory", "local"])
def index(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return MemoryIndex() if request.param == "memory" else LocalIndex(tmp_path / "index.sqlite")


@pytest.mark.parametrize(("first", "second", "kept"), [(1, 2, T2), (2, 2, T2), (3, 2, T1)])
def test_an_insert_replaces_an_entry_of_equal_or_lower_rank(
    index: Any, first: float, second: float, kept: str
) -> None:
    index.insert_task("a.b", T1, rank=first)
    assert index.insert_task("a.b", T2, rank=second).task_id == kept
    assert index.find_task("a.b").task_id == kept


def test_an_expired_entry_is_gone_and_replaced_whatever_its_rank(index: Any) -> None:
    index.insert_task("a.b", T1, rank=9, expires=PAST)
    assert index.find_task("a.b") is None and index.list_tasks("a") == []
    assert index.insert_task("a.b", T2, rank=0).task_id == T2


def test_list_tasks_lists_direct_children_unless_recursive(index: Any) -> None:
    for ns in ("a.b.one", "a.b.two", "a.b.c.deep", "a.bc", "z"):
        index.insert_task(ns, T1)
    assert [e.namespace for e in index.list_tasks("a.b")] == ["a.b.one", "a.b.two"]
    assert [e.namespace for e in index.list_tasks("a.b", recursive=True)] == [
        "a.b.c.deep", "a.b.one", "a.b.two"]
    assert [e.namespace for e in index.list_tasks("")] == ["z"]


@pytest.mark.parametrize(("call", "says"), [
    (lambda i: i.insert_task("a..b", T1), "namespace"),
    (lambda i: i.insert_task("a.b", "not a slug"), "task"),
    (lambda i: i.insert_task("a.b", T1, rank=True), "invalid rank True"),
    (lambda i: i.insert_task("a.b", T1, rank=float("nan")), "invalid rank nan"),
    (lambda i: i.insert_task("a.b", T1, rank=float("inf")), "expected a finite number"),
    (lambda i: i.insert_task("a.b", T1, data=["x"]), "expected a JSON object"),
    (lambda i: i.insert_task("a.b", T1, data={1: "x"}), "expected a JSON object"),
    (lambda i: i.insert_task("a.b", T1, expires=datetime.datetime(2030, 1, 1)), "no timezone"),
    (lambda i: i.set_task_state(T1, "done"), "invalid task state 'done'"),
    (lambda i: i.list_tasks("a..b"), "namespace"),
], ids=["namespace", "task-id", "bool-rank", "nan-rank", "infinite-rank", "list-data",
        "non-string-key", "naive-expiry", "state", "list-namespace"])
def test_invalid_values_are_refused_naming_them(index: Any, call: Any, says: str) -> None:
    with pytest.raises(InvalidValueError, match=says):
        call(index)


def test_the_memory_index_describes_itself() -> None:
    index = MemoryIndex()
    index.insert_task("a.b", T1)
    assert (index.description, repr(index)) == ("in-memory index", "MemoryIndex(1 entries)")
