"""cache-keys: taskgraph: every digest, namespace and decision is taskgraph's own.

Each comparison runs the installed taskcluster-taskgraph (its kind loader,
its docker-image and cached-task transforms) over the same tree.
"""

from __future__ import annotations

import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Mapping

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peer_taskgraph import peer, peer_context_hash, peer_image_tasks
from plan_helpers import NOW, params, seeded_task_ids
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.cli import main
from taskgraph_images.config import BuildConfig
from taskgraph_images.errors import CatalogError, ConfigError, ContextError, PlanError
from taskgraph_images.index import MemoryIndex
from taskgraph_images.plan import plan_images

D = "taskcluster/docker"
KIND_DIR = "taskcluster/kinds/docker-image"
TRUST = "myproject"
CONFIG = BuildConfig(image_builder="taskcluster/image_builder:4.0.0", cache_keys="taskgraph",
                     trust_domain=TRUST)

#: A kind file as taskgraph repositories write them.
KIND_YML = """\
loader: taskgraph.loader.transform:loader
transforms:
  - taskgraph.transforms.docker_image:transforms
  - taskgraph.transforms.cached_tasks:transforms
  - taskgraph.transforms.task:transforms
task-defaults:
  symbol: I(x)
  args: &common
    COMMON: shared välue
tasks:
  base:
    symbol: I(base)
  run-task:
    parent: base
  python:
    parent: run-task
    args:
      <<: *common
      PYTHON_VERSION: "3.12"
  decision:
    parent: run-task
    definition: decision-image
  other: &copy
    definition: decision-image
    parent: base
  copy-of-other: *copy
"""

TREE: dict[str, str | bytes] = {
    f"{KIND_DIR}/kind.yml": KIND_YML,
    f"{D}/base/Dockerfile": "FROM debian:12-slim\n# %include-run-task\nRUN apt-get update\n",
    f"{D}/base/setup.sh": "#!/bin/sh\necho setup\n",
    f"{D}/run-task/Dockerfile": "FROM $DOCKER_IMAGE_PARENT\n# %include taskcluster/scripts\n",
    f"{D}/python/Dockerfile": "FROM ${DOCKER_IMAGE_PARENT}\n# %ARG PYTHON_VERSION\n"
                              "RUN install-python $PYTHON_VERSION\n# %ARG COMMON\nRUN echo $COMMON\n",
    f"{D}/decision-image/Dockerfile": "FROM $DOCKER_IMAGE_PARENT\n# %include-run-task\n"
                                      "# %include README.md\n",
    f"{D}/decision-image/lib/__pycache__/x.pyc": b"\x00\x01",
    "taskcluster/scripts/run.sh": "#!/bin/sh\n",
    "taskcluster/scripts/__pycache__/mod.cpython-311.pyc": b"\x00",
    "README.md": "# a repo\n",
}


def peer_tasks(root: Path, **options: Any) -> dict[str, dict[str, Any]]:
    """taskgraph's task descriptions for the tree's kind file, loaded by taskgraph's loader."""
    loader = peer("taskgraph.loader.transform")
    yaml = peer("taskgraph.util.yaml")
    kind_dir = str(root / KIND_DIR)
    config = yaml.load_yaml(kind_dir, "kind.yml")
    entries = {t.pop("name"): t for t in loader.loader("docker-image", kind_dir, config, {}, [],
                                                       False)}
    return peer_image_tasks(str(root), entries, trust_domain=TRUST, **options)


def peer_digests(root: Path) -> dict[str, str]:
    return {str(t["attributes"]["image_name"]): t["attributes"]["cached_task"]["digest"]
            for t in peer_tasks(root).values()}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    peer("taskgraph")
    make_tree(tmp_path, TREE)
    os.chmod(tmp_path / D / "base" / "setup.sh", 0o755)
    return tmp_path


def test_every_digest_of_a_taskgraph_shaped_repository_is_taskgraphs(repo: Path) -> None:
    catalog = ImageCatalog.load(repo, cache_keys="taskgraph")
    assert {name: catalog.digest(name) for name in catalog.names()} == peer_digests(repo)


def test_every_context_hash_is_taskgraphs(repo: Path) -> None:
    catalog = ImageCatalog.load(repo, cache_keys="taskgraph")
    for name in catalog.names():
        image = catalog[name]
        assert catalog.context_hash(name) == peer_context_hash(
            str(repo), image.path, dict(image.args)), name


def test_the_seed_digests_differ_and_stay_the_seeds(repo: Path) -> None:
    seed = ImageCatalog.load(repo)
    taskgraph = ImageCatalog.load(repo, cache_keys="taskgraph")
    assert seed.digest("base") != taskgraph.digest("base")


def test_changing_the_run_task_files_changes_taskgraphs_digest_and_ours(repo: Path) -> None:
    rt = repo / "rt"
    for name in ("run-task", "fetch-content", "hgrc", "robustcheckout.py"):
        make_tree(rt, {name: f"{name} v1\n"})
    before = ImageCatalog.load(repo, cache_keys="taskgraph", run_task="rt").digest("base")
    (rt / "run-task").write_text("run-task v2\n")
    assert ImageCatalog.load(repo, cache_keys="taskgraph", run_task="rt").digest("base") != before


def test_the_kind_file_not_version_says_what_is_built(repo: Path) -> None:
    make_tree(repo, {f"{D}/base/VERSION": "1.0\n", f"{D}/base/REGISTRY": "example\n"})
    assert not ImageCatalog.load(repo, cache_keys="taskgraph")["base"].prebuilt
    assert ImageCatalog.load(repo)["base"].prebuilt


def test_taskgraph_keys_need_a_kind_file(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n"})
    with pytest.raises(CatalogError, match="cache-keys: taskgraph needs the docker-image kind"):
        ImageCatalog.load(tmp_path, cache_keys="taskgraph")


def test_taskgraph_keys_need_a_trust_domain() -> None:
    with pytest.raises(ConfigError, match="cache-keys: 'taskgraph' needs the trust domain .*: "
                       "add the line `trust-domain: NAME`"):
        BuildConfig(cache_keys="taskgraph")


def test_a_cached_image_with_an_uncached_parent_is_refused_as_taskgraph_does(repo: Path) -> None:
    text = KIND_YML.replace("  base:\n    symbol: I(base)\n", "  base:\n    cache: false\n")
    make_tree(repo, {f"{KIND_DIR}/kind.yml": text})
    with pytest.raises(Exception, match="uncached parent"):
        peer_tasks(repo)
    with pytest.raises(CatalogError, match="'run-task' is cached but its parent 'base' has "
                                           "cache: false"):
        ImageCatalog.load(repo, cache_keys="taskgraph").digest("run-task")


# -- the plan: taskgraph's namespaces --------------------------------------------------------


@pytest.mark.parametrize(("level", "tasks_for"), [(1, "github-push"), (3, "hg-push"),
                                                  (1, "github-pull-request")])
def test_build_tasks_carry_taskgraphs_index_routes(repo: Path, level: int,
                                                   tasks_for: str) -> None:
    catalog = ImageCatalog.load(repo, cache_keys="taskgraph")
    p = params(level=level, tasks_for=tasks_for)
    plan = plan_images(catalog, p, MemoryIndex(), CONFIG, task_ids=seeded_task_ids(), now=NOW)
    theirs = peer_tasks(repo, level=str(level), tasks_for=tasks_for,
                        build_date=p.pushdate_epoch)
    for name in catalog.names():
        task = plan.tasks[plan[name].task_id or ""]
        ours = [r for r in task["routes"] if r.startswith(f"index.{TRUST}.")]
        assert ours == theirs[f"docker-image-{name}"]["routes"], name


def test_an_image_taskgraph_indexed_is_reused(repo: Path) -> None:
    catalog = ImageCatalog.load(repo, cache_keys="taskgraph")
    search = peer_tasks(repo, level="1")["docker-image-base"]["optimization"]["index-search"]
    index = MemoryIndex()
    index.insert_task(search[0], "C3FW4Vj7RUy83vrdf5LVkw", expires=NOW.replace(year=2099))
    index.add_artifact("C3FW4Vj7RUy83vrdf5LVkw", expires=NOW.replace(year=2099))
    index.set_task_state("C3FW4Vj7RUy83vrdf5LVkw", "completed")
    plan = plan_images(catalog, params(level=1), index, CONFIG, task_ids=seeded_task_ids(),
                       now=NOW)
    assert plan["base"].action == "reuse" and plan["base"].namespace == search[0]
    assert plan["base"].level == 3  # taskgraph looks at the highest level first
    assert plan["run-task"].action == "build"


def test_the_plan_refuses_a_catalog_of_the_other_keys(repo: Path) -> None:
    with pytest.raises(PlanError, match="the catalog has seed cache keys"):
        plan_images(ImageCatalog.load(repo), params(), MemoryIndex(), CONFIG)


def test_list_json_with_the_config_prints_the_digest_the_plan_uses(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = repo / "images.yml"
    config.write_text(f"cache-keys: taskgraph\ntrust-domain: {TRUST}\n"
                      "image-builder: taskcluster/image_builder:4.0.0\n")
    assert main(["list", "--root", str(repo), "--json", "--config", str(config)]) == 0
    listed = {r["name"]: r["digest"] for r in json.loads(capsys.readouterr().out)}
    assert listed == peer_digests(repo)
    assert main(["plan", "--root", str(repo), "--config", str(config),
                 "--index", f"local:{repo / 'index.sqlite'}",
                 "--json", "--level", "1", "--pushdate", "1478546787"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert {n: d["digest"] for n, d in planned["images"].items()} == listed


# -- generated trees ------------------------------------------------------------------------

_NAMES = st.text(st.sampled_from("abz_-. üé漢"), min_size=1, max_size=8).filter(
    lambda n: n.strip(". ") == n and n not in (".", ".."))
_LONG = st.integers(90, 130).map(lambda n: "l" * n)
_FILES = st.dictionaries(st.lists(_NAMES | _LONG | st.just("__pycache__"), min_size=1,
                                  max_size=3).map("/".join),
                         st.tuples(st.binary(max_size=600), st.sampled_from([0o644, 0o755, 0o600,
                                                                             0o664])),
                         max_size=5)


@st.composite
def _trees(draw: st.DrawFn) -> tuple[dict[str, tuple[bytes, int]], dict[str, Any]]:
    """The files (content and mode) and the kind file's tasks of a generated tree."""
    count = draw(st.integers(1, 3))
    tasks: dict[str, Any] = {}
    files: dict[str, tuple[bytes, int]] = {}
    include_pool = draw(_FILES)
    for path, value in include_pool.items():
        files[f"inc/{path}"] = value
    for i in range(count):
        name = f"img{i}"
        entry: dict[str, Any] = {}
        lines = []
        if i and draw(st.booleans()):
            entry["parent"] = f"img{draw(st.integers(0, i - 1))}"
            lines.append(draw(st.sampled_from(["FROM $DOCKER_IMAGE_PARENT",
                                               "FROM ${DOCKER_IMAGE_PARENT}"])))
        else:
            lines.append("FROM scratch")
        args = draw(st.dictionaries(st.sampled_from(["A", "B", "VER"]),
                                    st.text(st.characters(codec="ascii", exclude_characters="\\\n\r"),
                                            max_size=5), max_size=2))
        if args:
            entry["args"] = args
            for arg in args:
                lines += [f"# %ARG {arg}", f"RUN echo ${arg}"]
        if draw(st.booleans()):
            lines.append("# %include-run-task")
        if include_pool:
            choices = ["inc", *[f"inc/{p}" for p in include_pool]]
            for path in draw(st.lists(st.sampled_from(choices), max_size=2, unique=True)):
                lines.append(f"# %include {path}")
        files[f"{D}/{name}/Dockerfile"] = ("\n".join(lines) + "\n").encode(), 0o644
        for path, value in draw(_FILES).items():
            if path != "Dockerfile" and not path.startswith("Dockerfile/"):
                files[f"{D}/{name}/{path}"] = value
        tasks[name] = entry
    return files, tasks


def _write(root: Path, files: Mapping[str, tuple[bytes, int]]) -> bool:
    """Write the files; False when two collide (a file where a folder must be)."""
    for path, (data, mode) in files.items():
        target = root / path
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        except (NotADirectoryError, IsADirectoryError, FileExistsError):
            return False
        os.chmod(target, mode)
    return True


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_trees())
def test_generated_trees_digest_as_taskgraph_does(
        drawn: tuple[dict[str, tuple[bytes, int]], dict[str, Any]]) -> None:
    peer("taskgraph")
    files, tasks = drawn
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        if not _write(root, files):
            return
        import yaml

        make_tree(root, {f"{KIND_DIR}/kind.yml": yaml.safe_dump({"tasks": tasks})})
        catalog = ImageCatalog.load(root, cache_keys="taskgraph")
        theirs = peer_digests(root)
        assert {name: catalog.digest(name) for name in catalog.names()} == theirs


def test_a_setuid_file_is_refused_as_taskgraph_refuses_it(repo: Path) -> None:
    path = repo / D / "base" / "setup.sh"
    os.chmod(path, 0o755 | stat.S_ISUID)
    with pytest.raises(ContextError, match="setuid"):
        ImageCatalog.load(repo, cache_keys="taskgraph").digest("base")


def test_hash_with_the_config_prints_taskgraphs_context_hashes(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = repo / "images.yml"
    config.write_text(f"cache-keys: taskgraph\ntrust-domain: {TRUST}\n")
    assert main(["hash", "--root", str(repo), "--config", str(config), "base", "python"]) == 0
    catalog = ImageCatalog.load(repo, cache_keys="taskgraph")
    assert capsys.readouterr().out == "".join(
        f"{n} {peer_context_hash(str(repo), catalog[n].path, dict(catalog[n].args))}\n"
        for n in ("base", "python"))


def test_digest_with_the_config_prints_taskgraphs_digest_the_plan_uses(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = repo / "images.yml"
    config.write_text(f"cache-keys: taskgraph\ntrust-domain: {TRUST}\n"
                      "image-builder: taskcluster/image_builder:4.0.0\n")
    theirs = peer_digests(repo)
    assert main(["digest", "python", "--root", str(repo), "--config", str(config)]) == 0
    assert capsys.readouterr().out == f"{theirs['python']}\n"
    assert main(["digest", "--root", str(repo), "--config", str(config), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == theirs
    assert main(["plan", "--root", str(repo), "--config", str(config),
                 "--index", f"local:{repo / 'index.sqlite'}",
                 "--json", "--level", "1", "--pushdate", "1478546787"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert {n: d["digest"] for n, d in planned["images"].items()} == theirs


def test_opening_an_image_by_name_needs_taskgraphs_search(repo: Path) -> None:
    """A library caller opening a taskgraph-keyed image by name must say where to look
    (the CLI passes the config's :class:`~taskgraph_images.keys.indexkeys.IndexKeys`)."""
    from taskgraph_images.errors import ArtifactError
    from taskgraph_images.images.source import open_source
    from taskgraph_images.keys.indexkeys import IndexKeys

    catalog = ImageCatalog.load(repo, cache_keys="taskgraph")
    with pytest.raises(ArtifactError, match="give the task id"):
        open_source("base", index=MemoryIndex(), catalog=catalog)
    index = MemoryIndex()
    [hit] = IndexKeys.for_config(CONFIG).search("base", catalog.digest("base"), 3)
    index.insert_task(hit.namespace, "C3FW4Vj7RUy83vrdf5LVkw")
    index.set_task_state("C3FW4Vj7RUy83vrdf5LVkw", "completed")
    index.add_artifact("C3FW4Vj7RUy83vrdf5LVkw")
    with pytest.raises(ArtifactError, match="no Taskcluster root URL"):
        # Found under taskgraph's namespace; its artifact is not stored locally.
        open_source("base", index=index, catalog=catalog,
                    search=IndexKeys.for_config(CONFIG).search)


@pytest.mark.parametrize(("setting", "theirs"), [
    ({"cached_task_prefix": "other.prefix"}, {"cached-task-prefix": "other.prefix"}),
    ({"cache_pull_requests": False}, {"cache-pull-requests": False}),
])
@pytest.mark.parametrize("tasks_for", ["github-push", "github-pull-request"])
def test_taskgraphs_graph_config_settings_shape_the_namespaces_alike(
        repo: Path, setting: dict[str, Any], theirs: dict[str, Any], tasks_for: str) -> None:
    import attrs

    catalog = ImageCatalog.load(repo, cache_keys="taskgraph")
    config = attrs.evolve(CONFIG, **setting)
    p = params(level=1, tasks_for=tasks_for)
    plan = plan_images(catalog, p, MemoryIndex(), config, task_ids=seeded_task_ids(), now=NOW)
    peer_run = peer_tasks(repo, level="1", tasks_for=tasks_for, build_date=p.pushdate_epoch,
                          taskgraph_config=theirs)
    task = plan.tasks[plan["base"].task_id or ""]
    expected = peer_run["docker-image-base"].get("routes", [])
    assert [r for r in task["routes"] if not r.startswith("tc-treeherder")] == expected


@pytest.mark.parametrize("cache_pull_requests", [True, False])
def test_a_pull_request_finds_what_a_pull_request_indexed_unless_switched_off(
        repo: Path, cache_pull_requests: bool) -> None:
    import attrs

    catalog = ImageCatalog.load(repo, cache_keys="taskgraph")
    theirs = peer_tasks(repo, level="1", tasks_for="github-pull-request",
                        taskgraph_config={"cache-pull-requests": cache_pull_requests})
    search = theirs["docker-image-base"]["optimization"]["index-search"]
    pr_namespace = f"{TRUST}.cache.pr.docker-images.v2.base.hash.{catalog.digest('base')}"
    assert (pr_namespace in search) is cache_pull_requests
    index = MemoryIndex()
    index.insert_task(pr_namespace, "C3FW4Vj7RUy83vrdf5LVkw", expires=NOW.replace(year=2099))
    index.add_artifact("C3FW4Vj7RUy83vrdf5LVkw", expires=NOW.replace(year=2099))
    index.set_task_state("C3FW4Vj7RUy83vrdf5LVkw", "completed")
    config = attrs.evolve(CONFIG, cache_pull_requests=cache_pull_requests)
    plan = plan_images(catalog, params(level=1, tasks_for="github-pull-request"), index, config,
                       task_ids=seeded_task_ids(), now=NOW)
    assert (plan["base"].action == "reuse") is cache_pull_requests


def test_the_roots_default_config_file_decides_the_keys_of_list_and_plan(
        repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tree(repo, {"taskcluster/taskgraph-images.yml":
                     f"cache-keys: taskgraph\ntrust-domain: {TRUST}\n"
                     "image-builder: taskcluster/image_builder:4.0.0\n"})
    assert main(["list", "--root", str(repo), "--json"]) == 0
    listed = {r["name"]: r["digest"] for r in json.loads(capsys.readouterr().out)}
    assert listed == peer_digests(repo)
    assert main(["plan", "--root", str(repo), "--index", f"local:{repo / 'i.sqlite'}", "--json",
                 "--level", "1", "--pushdate", "1478546787"]) == 0
    planned = json.loads(capsys.readouterr().out)
    assert {n: d["digest"] for n, d in planned["images"].items()} == listed
    assert main(["list", "--root", str(repo), "--json", "--config", "none"]) == 0
    seed = {r["name"]: r["digest"] for r in json.loads(capsys.readouterr().out)}
    assert seed == {n: ImageCatalog.load(repo).digest(n) for n in seed}
