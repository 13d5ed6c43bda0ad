"""taskgraph's docker-image kind (``taskgraph_images.kindconfig``): today's image trees
(kind config, FROM $DOCKER_IMAGE_PARENT, %include and %ARG), and every key of the
kind honoured, or refused naming key and file."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from plan_helpers import NOW, params, seeded_task_ids
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.config import BuildConfig
from taskgraph_images.errors import (
    CatalogError,
    ConfigError,
    DockerfileError,
    PlanError,
    TaskgraphImagesError,
)
from taskgraph_images.index import MemoryIndex
from taskgraph_images.keys.digest import image_digest
from taskgraph_images.kindconfig import merge, parse_kind_config
from taskgraph_images.plan import Plan, plan_images
from taskgraph_images.tasks import default_index_routes

KINDREPO = Path(__file__).resolve().parent / "data" / "kindrepo"
D = "taskcluster/docker"
KIND = "taskcluster/kinds/docker-image/kind.yml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A writable copy of the realistic kind-config repository."""
    dest = tmp_path / "repo"
    shutil.copytree(KINDREPO, dest, symlinks=True)
    return dest


def test_kind_config_is_found_and_lists_exactly_its_tasks(repo: Path) -> None:
    cat = ImageCatalog.load(repo)
    assert cat.kind_config == KIND
    assert cat.names() == ["base", "decision", "lint", "multi", "python", "run-task"]


def test_the_older_ci_path_is_found_too(repo: Path) -> None:
    (repo / "taskcluster/ci/docker-image").mkdir(parents=True)
    (repo / KIND).rename(repo / "taskcluster/ci/docker-image/kind.yml")
    assert ImageCatalog.load(repo).kind_config == "taskcluster/ci/docker-image/kind.yml"


def test_kind_config_can_be_ignored(repo: Path) -> None:
    shutil.rmtree(repo / D / "python")  # its '# %ARG' lines need the config
    with pytest.raises(DockerfileError, match=r"FROM \$\{?DOCKER_IMAGE_PARENT\}? needs a parent"):
        ImageCatalog.load(repo, kind_config=None)


def test_docker_image_parent_without_a_parent_names_the_image(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n",
                         f"{D}/b/Dockerfile": "ARG DOCKER_IMAGE_PARENT\nFROM $DOCKER_IMAGE_PARENT\n",
                         KIND: "tasks:\n  a: {}\n  b: {}\n"})
    with pytest.raises(DockerfileError, match=r"b/Dockerfile:2: .*set 'parent:' for image 'b'"):
        ImageCatalog.load(tmp_path)


def test_definition_names_the_folder(repo: Path) -> None:
    lint = ImageCatalog.load(repo)["lint"]
    assert lint.path == f"{D}/linter" and lint.definition == "linter"


def test_docker_image_parent_makes_the_config_parent_the_in_tree_parent(repo: Path) -> None:
    cat = ImageCatalog.load(repo)
    assert cat["run-task"].parent == "base"
    assert cat["decision"].parent == "run-task"  # the ${...} spelling
    assert cat.ancestors("decision") == ["run-task", "base"]
    order = cat.order()
    assert order.index("base") < order.index("run-task") < order.index("decision")


def test_symbols_and_args_come_from_the_config(repo: Path) -> None:
    cat = ImageCatalog.load(repo)
    assert cat["python"].symbol == "I(py)"
    assert cat["python"].args == (("GREETING", "hello"), ("PYTHON_VERSIONS", "3.13 3.12"))


def test_multi_stage_with_as_names_has_one_parent(repo: Path) -> None:
    multi = ImageCatalog.load(repo)["multi"]
    assert multi.parents == ("base",) and multi.bases == ("$DOCKER_IMAGE_PARENT", "build")


def test_includes_list_files_of_folders_recursively(repo: Path) -> None:
    cat = ImageCatalog.load(repo)
    assert [f.relpath for f in cat.include_files("decision")] == [
        "tools/lib/one.txt", "tools/lib/two.txt"]
    assert [f.relpath for f in cat.include_files("run-task")] == ["tools/run-task.sh"]


def test_digest_folds_parent_includes_and_args(repo: Path) -> None:
    cat = ImageCatalog.load(repo)
    import hashlib

    sha = hashlib.sha256((repo / "tools/run-task.sh").read_bytes()).hexdigest()
    assert cat.digest("run-task") == image_digest(
        cat.context_hash("run-task"), parents=[("base", cat.digest("base"))],
        includes=[("tools/run-task.sh", sha)],
    )
    assert cat.digest("base") == cat.context_hash("base")


def test_changing_an_included_file_changes_the_digest_not_the_context_hash(repo: Path) -> None:
    before = ImageCatalog.load(repo)
    old = {n: (before.context_hash(n), before.digest(n)) for n in ("decision", "python")}
    (repo / "tools/lib/two.txt").write_text("changed\n")
    after = ImageCatalog.load(repo)
    assert after.context_hash("decision") == old["decision"][0]
    assert after.digest("decision") != old["decision"][1]
    assert after.digest("python") == old["python"][1]


def test_changing_an_arg_changes_the_digest(repo: Path) -> None:
    before = ImageCatalog.load(repo).digest("python")
    kind = repo / KIND
    kind.write_text(kind.read_text().replace('"3.13 3.12"', '"3.14"'))
    assert ImageCatalog.load(repo).digest("python") != before


def test_missing_arg_value_names_image_and_arg(repo: Path) -> None:
    kind = repo / KIND
    kind.write_text(kind.read_text().replace("            GREETING: hello\n", ""))
    with pytest.raises(DockerfileError, match=r"python/Dockerfile:4: no value for '# %ARG GREETING'"):
        ImageCatalog.load(repo)


def test_missing_arg_value_names_the_image_when_its_folder_differs(repo: Path) -> None:
    linter = repo / D / "linter" / "Dockerfile"
    linter.write_text(linter.read_text() + "# %ARG TOOL\n")
    with pytest.raises(DockerfileError, match=r"linter/Dockerfile:4: no value for '# %ARG TOOL': "
                                              r".* for image 'lint' in the kind config"):
        ImageCatalog.load(repo)


def test_config_naming_a_missing_folder_is_an_error(repo: Path) -> None:
    kind = repo / KIND
    kind.write_text(kind.read_text() + "    ghost:\n        symbol: I(g)\n")
    with pytest.raises(CatalogError, match="image 'ghost' names folder taskcluster/docker/ghost"):
        ImageCatalog.load(repo)


def test_readme_only_folder_named_by_the_config_is_an_error(repo: Path) -> None:
    kind = repo / KIND
    kind.write_text(kind.read_text() + "    docs-only: {}\n")
    with pytest.raises(CatalogError, match="docs-only, which has no Dockerfile"):
        ImageCatalog.load(repo)


def test_parent_that_is_not_an_image_is_an_error(repo: Path) -> None:
    kind = repo / KIND
    kind.write_text(kind.read_text().replace("parent: run-task", "parent: nowhere", 1))
    with pytest.raises(CatalogError, match="has parent 'nowhere', which is not an image"):
        ImageCatalog.load(repo)


def test_config_cycle_is_named(repo: Path) -> None:
    kind = repo / KIND
    text = kind.read_text().replace("    base:\n        symbol: I(base)\n",
                                    "    base:\n        symbol: I(base)\n        parent: decision\n")
    kind.write_text(text)
    with pytest.raises(CatalogError, match="FROM cycle between images: base -> decision -> "
                                           "run-task -> base"):
        ImageCatalog.load(repo)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a mapping"),
        ({"loader": "x"}, "has no 'tasks' mapping"),
        ({"tasks": ["a"]}, "'tasks' must be a mapping"),
        ({"tasks": {"a": "x"}}, "tasks.a must be a mapping"),
        ({"tasks": {"a": {"parent": 3}}}, "tasks.a.parent must be a string, got int"),
        ({"tasks": {"a": {"symbol": ["I"]}}}, "tasks.a.symbol must be a string"),
        ({"tasks": {"a": {"args": ["X"]}}}, "tasks.a.args must be a mapping"),
        ({"tasks": {"a": {"args": {"X": None}}}}, "tasks.a.args.X must be a string or number"),
        ({"tasks": {"a": {"args": {"X": True}}}}, "tasks.a.args.X must be a string or number"),
    ],
)
def test_bad_config_names_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_kind_config(data, "kind.yml")


def test_older_jobs_key_and_numbers_as_args() -> None:
    configs = parse_kind_config({"jobs": {"a": {"args": {"N": 3}}, "b": None}}, "kind.yml")
    assert configs["a"].args == (("N", "3"),) and configs["b"].definition == "b"


def test_invalid_yaml_gives_file_line_and_column(repo: Path) -> None:
    (repo / KIND).write_text("tasks:\n  a: [unclosed\n")
    with pytest.raises(ConfigError, match=r"kind.yml:\d+:\d+: "):
        ImageCatalog.load(repo)


def test_explicit_kind_config_that_does_not_exist(repo: Path) -> None:
    with pytest.raises(CatalogError, match="kind config other.yml does not exist"):
        ImageCatalog.load(repo, kind_config="other.yml")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("# %include /etc/passwd", "is absolute"),
        ("# %include ../outside.txt", "leaves the repository"),
        ("# %include tools/../../outside.txt", "leaves the repository"),
        ("# %include tools/missing.txt", "does not exist"),
        ("# %include tools/escape", "leaves the repository"),
        ("# %include tools/dangling", "is a broken symlink"),
        ("# %include .", "includes the whole repository"),
    ],
)
def test_bad_includes_are_named(tmp_path: Path, line: str, message: str) -> None:
    repo = make_tree(tmp_path / "repo", {f"{D}/a/Dockerfile": f"FROM x\n{line}\n", "tools/ok": "1"})
    (tmp_path / "outside.txt").write_text("secret")
    (repo / "tools" / "escape").symlink_to(tmp_path / "outside.txt")
    (repo / "tools" / "dangling").symlink_to("nothing-here")
    with pytest.raises(DockerfileError, match=rf"taskcluster/docker/a/Dockerfile:2: .*{message}"):
        ImageCatalog.load(repo)


def test_a_repository_prefix_sibling_is_not_inside_it(tmp_path: Path) -> None:
    # /x/repo-evil is not inside /x/repo even though the string starts the same.
    repo = make_tree(tmp_path / "repo", {f"{D}/a/Dockerfile": "FROM x\n# %include link\n"})
    make_tree(tmp_path / "repo-evil", {"f": "x"})
    (repo / "link").symlink_to(tmp_path / "repo-evil")
    with pytest.raises(DockerfileError, match="leaves the repository"):
        ImageCatalog.load(repo)


def test_include_through_a_symlinked_folder_leaving_the_repository_is_refused(tmp_path: Path) -> None:
    repo = make_tree(tmp_path / "repo", {f"{D}/a/Dockerfile": "FROM x\n# %include tools/out/f\n",
                                         "tools/ok": "1"})
    make_tree(tmp_path / "outside", {"f": "secret"})
    (repo / "tools" / "out").symlink_to(tmp_path / "outside")
    with pytest.raises(DockerfileError, match=r"a/Dockerfile:2: '# %include tools/out/f' leaves"):
        ImageCatalog.load(repo)


def test_include_of_a_symlink_to_a_file_inside_the_repository_is_accepted(tmp_path: Path) -> None:
    repo = make_tree(tmp_path / "repo", {f"{D}/a/Dockerfile": "FROM x\n# %include tools/link\n",
                                         "tools/real": "1"})
    (repo / "tools" / "link").symlink_to("real")
    assert ImageCatalog.load(repo)["a"].includes == ("tools/link",)


def test_included_folder_with_an_escaping_symlink_is_refused(tmp_path: Path) -> None:
    from taskgraph_images.errors import ContextError

    repo = make_tree(tmp_path / "repo", {f"{D}/a/Dockerfile": "FROM x\n# %include tools\n",
                                         "tools/ok": "1"})
    (tmp_path / "secret").write_text("x")
    (repo / "tools" / "leak").symlink_to(tmp_path / "secret")
    cat = ImageCatalog.load(repo)
    with pytest.raises(ContextError, match="tools/leak is a symlink .*outside the repository"):
        cat.digest("a")


@given(st.text(max_size=200))
def test_arbitrary_config_text_raises_nothing_but_the_library_error(text: str) -> None:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    with contextlib.suppress(TaskgraphImagesError):
        parse_kind_config(data, "kind.yml")


# -- every key of taskgraph's docker-image kind: honoured, or refused naming key and file ---


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
