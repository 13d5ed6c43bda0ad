"""IndexKeys: where each cache-key mode looks builds up, explains them from and records them."""

from __future__ import annotations

import datetime

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskgraph_images.config import BuildConfig
from taskgraph_images.errors import InvalidValueError
from taskgraph_images.index import index_namespaces, search_order
from taskgraph_images.keys.indexkeys import PUSH, IndexKeys
from taskgraph_images.keys.taskgraph import index_routes, index_search

D = "d" * 64
TG = BuildConfig(cache_keys="taskgraph", trust_domain="proj")
levels = st.sampled_from([1, 2, 3])


def test_the_config_decides_the_mode_and_prefixes() -> None:
    assert IndexKeys.for_config(BuildConfig(index_prefix="my.images")) == \
        IndexKeys("my.images", None, PUSH, True)
    assert IndexKeys.for_config(BuildConfig()).mode == "seed"
    keys = IndexKeys.for_config(attrs.evolve(TG, cached_task_prefix="other"), "github-push")
    assert (keys.mode, keys.taskgraph_prefix, keys.tasks_for) == ("taskgraph", "other",
                                                                   "github-push")


@given(levels)
def test_seed_keys_are_the_seeds_namespaces(level: int) -> None:
    keys = IndexKeys(prefix="p")
    assert keys.search("base", D, level) == list(search_order("base", D, level, prefix="p"))
    assert [c.namespace for c in keys.latest("base", level)] == \
        [f"p.level-{lv}.base.latest" for lv in (1, 2, 3) if lv >= level]
    assert keys.record(level, "base", D, 1478546787) == \
        index_namespaces(level, "base", D, 1478546787, prefix="p")


@given(levels, st.sampled_from(["hg-push", "github-push", "github-pull-request"]))
def test_taskgraph_keys_are_taskgraphs_namespaces(level: int, tasks_for: str) -> None:
    keys = IndexKeys.for_config(TG, tasks_for)
    found = keys.search("base", D, level)
    assert [c.namespace for c in found] == index_search("proj", "base", D, level=level,
                                                        tasks_for=tasks_for)
    # Each hash namespace's level is the level it holds; the pull-request one is
    # level 1's, trusted by a level 1 push only: any pull request writes it.
    assert [c.level for c in found][: 4 - level] == list(range(3, level - 1, -1))
    asks_pr = tasks_for == "github-pull-request"
    assert [c.pull_request for c in found] == [False] * (4 - level) + [True] * asks_pr
    assert [c.distrust(level) is None for c in found] == [True] * (4 - level) + (
        [level == 1] * asks_pr)
    assert [(c.level, c.namespace) for c in keys.latest("base", level)] == [
        (lv, f"proj.cache.level-{lv}.docker-images.v2.base.latest")
        for lv in (1, 2, 3) if lv >= level]
    routes = index_routes("proj", "base", D, level=level, tasks_for=tasks_for,
                          build_date=1478546787)
    assert keys.record(level, "base", D, 1478546787) == tuple(r[6:] for r in routes)


def test_a_records_push_date_may_be_a_datetime() -> None:
    keys = IndexKeys.for_config(TG)
    when = datetime.datetime(2016, 11, 7, 19, 26, 27, tzinfo=datetime.timezone.utc)
    assert keys.record(3, "base", D, when) == keys.record(3, "base", D, 1478546787)
    assert keys.record(3, "base", D, when)[2].endswith(".pushdate.2016.11.07.20161107192627")


def test_bad_records_are_refused() -> None:
    keys = IndexKeys.for_config(TG)
    with pytest.raises(InvalidValueError, match="invalid digest"):
        keys.record(3, "base", "x", 0)
    with pytest.raises(InvalidValueError, match="invalid image name"):
        keys.record(3, "ba..se", D, 0)
    with pytest.raises(InvalidValueError, match="invalid level"):
        keys.latest("base", 4)
    off = IndexKeys.for_config(attrs.evolve(TG, cache_pull_requests=False), "github-pull-request")
    with pytest.raises(InvalidValueError, match="cache-pull-requests is false"):
        off.record(1, "base", D, 0)
