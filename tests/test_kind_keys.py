"""Every key of taskgraph's docker-image kind: honoured, or refused naming key and file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plan_helpers import NOW, params, seeded_task_ids
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.config import BuildConfig
from taskgraph_images.errors import ConfigError, PlanError
from taskgraph_images.index import MemoryIndex
from taskgraph_images.kindconfig import merge, parse_kind_config
from taskgraph_images.plan import Plan, plan_images
from taskgraph_images.tasks import default_index_routes

D = "taskcluster/docker"
KIND = "taskcluster/kinds/docker-image/kind.yml"
CONFIG = BuildConfig(image_builder="taskcluster/image_builder:4.0.0")


def _repo(root: Path, kind: str, **dockerfiles: str) -> Path:
    files = {f"{D}/{name}/Dockerfile": text for name, text in dockerfiles.items()}
    make_tree(root, {**files, KIND: kind})
    return root


def _plan(catalog: ImageCatalog, index: Any = None, config: BuildConfig = CONFIG) -> Plan:
    return plan_images(catalog, params(), index if index is not None else MemoryIndex(), config,
                       task_ids=seeded_task_ids(), now=NOW)


# -- task-defaults ------------------------------------------------------------------------


def test_a_parent_set_only_in_task_defaults_is_the_parent(tmp_path: Path) -> None:
    # The defect: 'FROM $DOCKER_IMAGE_PARENT needs a parent' although task-defaults set it.
    _repo(tmp_path, "task-defaults:\n  parent: base\n"
                    "tasks:\n  base: {parent: null}\n  app: {symbol: I(app)}\n",
          base="FROM scratch\n", app="FROM $DOCKER_IMAGE_PARENT\n")
    catalog = ImageCatalog.load(tmp_path)
    assert catalog["app"].parent == "base" and catalog["app"].symbol == "I(app)"
    assert catalog["base"].parent is None


def test_task_defaults_args_merge_key_by_key(tmp_path: Path) -> None:
    _repo(tmp_path, "task-defaults:\n  args: {A: one, B: two}\n"
                    "tasks:\n  app:\n    args: {B: three}\n",
          app="FROM scratch\n# %ARG A\n# %ARG B\nRUN echo $A $B\n")
    assert ImageCatalog.load(tmp_path)["app"].args == (("A", "one"), ("B", "three"))


def test_yaml_anchors_and_tasks_from_files_are_read(tmp_path: Path) -> None:
    _repo(tmp_path, "task-defaults:\n  symbol: I(d)\n"
                    "tasks-from: [more.yml]\n"
                    "tasks:\n  a: &same {definition: shared}\n  b: *same\n",
          shared="FROM scratch\n", c="FROM scratch\n")
    make_tree(tmp_path, {"taskcluster/kinds/docker-image/more.yml":
                         "task-defaults:\n  symbol: I(more)\nc: {}\n"})
    catalog = ImageCatalog.load(tmp_path)
    assert catalog.names() == ["a", "b", "c"]
    assert catalog["b"].path == f"{D}/shared" and catalog["b"].symbol == "I(d)"
    assert catalog["c"].symbol == "I(more)"


@pytest.mark.parametrize(("base", "over", "merged"), [
    ({"a": [1]}, {"a": [2]}, {"a": [1, 2]}),                      # lists append
    ({"a": {"x": 1}}, {"a": {"y": 2}}, {"a": {"x": 1, "y": 2}}),   # mappings merge
    ({"a": {"x": 1}}, {"a": {"by-level": {}}}, {"a": {"by-level": {}}}),  # by-* replaces
    ({"a": 1}, {"a": "s"}, {"a": "s"}),                          # another type replaces
    ({"a": 1}, {"a": None}, {"a": None}),
])
def test_merge_is_taskgraphs(base: dict[str, Any], over: dict[str, Any],
                             merged: dict[str, Any]) -> None:
    assert merge(base, over) == merged


_VALUES = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=3),
                       lambda inner: st.lists(inner, max_size=3)
                       | st.dictionaries(st.sampled_from(["a", "b", "by-x"]), inner, max_size=2),
                       max_leaves=8)
_DICTS = st.dictionaries(st.sampled_from(["a", "b", "c"]), _VALUES, max_size=3)


@given(_DICTS, _DICTS)
def test_merge_equals_taskgraphs_merge_on_any_values(base: dict[str, Any],
                                                      over: dict[str, Any]) -> None:
    templates = pytest.importorskip("taskgraph.util.templates")
    assert merge(base, over) == templates.merge(base, over)


# -- refused keys ------------------------------------------------------------------------


@pytest.mark.parametrize(("entry", "message"), [
    ("{packages: [deb-python]}", r"tasks\.a\.packages is not supported"),
    ("{run-on-projects: []}", r"tasks\.a has an unknown key 'run-on-projects'"),
    ("{cache: maybe}", r"tasks\.a\.cache must be true or false"),
    ("{index: {product: p}}", r"tasks\.a\.index\.job-name must be a non-empty string"),
    ("{index: {product: p, job-name: j, type: shippable}}", r"index\.type 'shippable'"),
    ("{index: {product: p, job-name: j, extra: 1}}", r"index has an unknown key 'extra'"),
])
def test_a_refused_key_is_one_line_naming_key_and_file(entry: str, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^kind\.yml: .*{message}") as info:
        parse_kind_config({"tasks": {"a": _yaml(entry)}}, "kind.yml")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(("data", "message"), [
    ({"tasks": {"a": {"index": "yes"}}}, r"tasks\.a\.index must be a mapping"),
    ({"tasks": {"a": {"index": {"product": "p", "job-name": "j", "rank": True}}}},
     r"tasks\.a\.index\.rank must be 'by-tier', 'build_date' or a number"),
    ({"tasks": {"a": {"packages": "deb"}}}, r"tasks\.a\.packages is not supported"),
    ({"tasks": {"a": {"packages": {}}}}, r"tasks\.a\.packages must be a list"),
    ({"task-defaults": [], "tasks": {"a": {}}}, r"'task-defaults' must be a mapping"),
    ({"tasks-from": "more.yml"}, r"'tasks-from' must be a list of file names"),
    ({"tasks": {"a": {"args": {1: "x"}}}}, r"tasks\.a\.args has a non-string name 1"),
    ({"tasks": {1: {}}}, r"tasks has a non-string name 1"),
])
def test_malformed_kind_configs_are_one_line_naming_the_file(data: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^kind\.yml: {message}"):
        parse_kind_config(data, "kind.yml")


def test_tasks_from_files_are_checked_too() -> None:
    with pytest.raises(ConfigError, match=r"^more\.yml: must be a mapping"):
        parse_kind_config({"tasks-from": ["more.yml"]}, "kind.yml", {"more.yml": [1]})
    with pytest.raises(ConfigError, match=r"more\.yml: image 'a' is defined twice"):
        parse_kind_config({"tasks": {"a": {}}, "tasks-from": ["more.yml"]}, "kind.yml",
                          {"more.yml": {"a": {}}})
    assert parse_kind_config({"tasks-from": ["empty.yml"]}, "kind.yml", {"empty.yml": None}) == {}


def test_an_unknown_key_in_task_defaults_is_refused_too() -> None:
    with pytest.raises(ConfigError, match=r"kind\.yml: tasks\.a has an unknown key 'worker'"):
        parse_kind_config({"task-defaults": {"worker": {}}, "tasks": {"a": {}}}, "kind.yml")


def test_empty_packages_are_accepted() -> None:
    assert parse_kind_config({"tasks": {"a": {"packages": []}}}, "k")["a"].definition == "a"


def _yaml(text: str) -> Any:
    import yaml

    return yaml.safe_load(text)


# -- cache: false -------------------------------------------------------------------------


def test_cache_false_is_never_reused_and_claims_no_hash_namespace(tmp_path: Path) -> None:
    _repo(tmp_path, "tasks:\n  a: {cache: false}\n  b: {}\n", a="FROM scratch\n",
          b="FROM scratch\n")
    catalog = ImageCatalog.load(tmp_path)
    index = MemoryIndex()
    for name in ("a", "b"):
        index.record_build(3, name, catalog.digest(name), 1478546787)
    plan = _plan(catalog, index)
    assert plan["b"].action == "reuse"
    assert plan["a"].action == "build" and plan["a"].reason == "cache: false in the kind config"
    routes = plan.tasks[plan["a"].task_id or ""]["routes"]
    assert not [r for r in routes if r.startswith("index.")]


def test_children_of_a_cache_false_image_are_rebuilt(tmp_path: Path) -> None:
    _repo(tmp_path, "tasks:\n  a: {cache: false}\n  b: {parent: a}\n", a="FROM scratch\n",
          b="FROM $DOCKER_IMAGE_PARENT\n")
    catalog = ImageCatalog.load(tmp_path)
    index = MemoryIndex()
    index.record_build(3, "b", catalog.digest("b"), 1478546787)
    # Its earlier build has no manifest to say more (see test_explain.py).
    assert _plan(catalog, index)["b"].reason == (
        "parent a rebuilt; no earlier manifest to compare (built before manifests were recorded)")


# -- index ----------------------------------------------------------------------------------


def test_index_gives_taskgraphs_generic_routes(tmp_path: Path) -> None:
    _repo(tmp_path, "tasks:\n  a:\n    index: {product: images, job-name: a-img}\n",
          a="FROM scratch\n")
    config = BuildConfig(image_builder=CONFIG.image_builder, trust_domain="gecko")
    plan = _plan(ImageCatalog.load(tmp_path), config=config)
    task = plan.tasks[plan["a"].task_id or ""]
    p = params()
    ours = [r for r in task["routes"] if r.startswith("index.gecko.")]
    assert ours == [
        f"index.gecko.v2.{p.project}.latest.images.a-img",
        f"index.gecko.v2.{p.project}.pushdate.2016.11.07.20161107192627.images.a-img",
        f"index.gecko.v2.{p.project}.pushlog-id.{p.pushlog_id or '0'}.images.a-img",
        f"index.gecko.v2.{p.project}.revision.{p.head_rev}.images.a-img",
    ]
    assert f"index.docker.images.v2.level-{p.level}.a.hash.{plan['a'].digest}" in task["routes"]
    assert {f"queue:route:{r}" for r in ours} <= set(task["scopes"])


def test_index_keeps_the_three_namespaces_a_task_gets_without_it(tmp_path: Path) -> None:
    # One rule for them: tasks.default_index_routes, in a plain task and before the kind's routes.
    _repo(tmp_path, "tasks:\n  a:\n    index: {product: images, job-name: a-img}\n  b: {}\n",
          a="FROM scratch\n", b="FROM scratch\n")
    config = BuildConfig(image_builder=CONFIG.image_builder, trust_domain="gecko",
                         index_prefix="custom.images")
    plan = _plan(ImageCatalog.load(tmp_path), config=config)
    for name in ("a", "b"):
        expected = default_index_routes(name, plan[name].digest, params(), config)
        assert len(expected) == 3 and expected[0].startswith("index.custom.images.")
        assert plan.tasks[plan[name].task_id or ""]["routes"][:3] == expected


@pytest.mark.parametrize(("rank", "expected"), [("", 1478546787), ("rank: build_date", 1478546787),
                                                ("rank: 7", 7)])
def test_index_rank_is_written_as_taskgraph_resolves_it(tmp_path: Path, rank: str,
                                                        expected: int) -> None:
    _repo(tmp_path, f"tasks:\n  a:\n    index: {{product: p, job-name: j, {rank}}}\n",
          a="FROM scratch\n")
    config = BuildConfig(image_builder=CONFIG.image_builder, trust_domain="gecko")
    plan = _plan(ImageCatalog.load(tmp_path), config=config)
    assert plan.tasks[plan["a"].task_id or ""]["extra"]["index"] == {"rank": expected}


def test_index_by_tier_ranks_other_tiers_zero(tmp_path: Path) -> None:
    _repo(tmp_path, "tasks:\n  a:\n    index: {product: p, job-name: j}\n", a="FROM scratch\n")
    config = BuildConfig(image_builder=CONFIG.image_builder, trust_domain="gecko",
                         treeherder_tier=2)
    plan = _plan(ImageCatalog.load(tmp_path), config=config)
    assert plan.tasks[plan["a"].task_id or ""]["extra"]["index"] == {"rank": 0}


def test_without_index_the_task_has_no_rank(tmp_path: Path) -> None:
    _repo(tmp_path, "tasks:\n  a: {}\n", a="FROM scratch\n")
    plan = _plan(ImageCatalog.load(tmp_path))
    assert "index" not in plan.tasks[plan["a"].task_id or ""]["extra"]


def test_index_without_a_trust_domain_is_refused(tmp_path: Path) -> None:
    _repo(tmp_path, "tasks:\n  a:\n    index: {product: images, job-name: a}\n", a="FROM scratch\n")
    with pytest.raises(PlanError,
                       match="add the line `trust-domain: NAME` to taskcluster/taskgraph-images.yml"):
        _plan(ImageCatalog.load(tmp_path))
