"""A taskgraph repository with no file of ours: its taskgraph files say everything.

``tests/data/taskgraph_repo`` is shaped like the taskgraph repositories in
use (taskgraph itself, scriptworker-scripts, translations): a graph config
with worker aliases, ``cached-task-prefix``, a ``by-project`` priority and
``task-expires-after``; its own ``register`` hook and parameter extension; a
kind file with a transform of its own, ``task-defaults``, dotted names, one
definition reused with different args, parents; and the parameters files a
decision task writes for a push and for a pull request. Each test compares
what ``taskgraph-images`` gives with what the installed taskgraph computes
for the same tree (``taskgraph full -k docker-image -J``, run in a git copy).
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from clirun import run_cli
from peer_taskgraph import peer
from plan_helpers import NOW

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.graphconfig import repository_config
from taskgraph_images.index import MemoryIndex
from taskgraph_images.params import Params, split_taskgraph_parameters
from taskgraph_images.plan import plan_images
from taskgraph_images.tc.time import parse_offset

TREE = Path(__file__).resolve().parent / "data" / "taskgraph_repo"
KINDS = ("pr", "push")


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.email=ci@example.com", "-c", "user.name=ci", *args],
                   cwd=root, check=True, capture_output=True)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A git checkout of the tree (taskgraph reads the repository's URL and revision)."""
    peer("taskgraph")
    root = tmp_path_factory.mktemp("taskgraph_repo") / "shaped"
    shutil.copytree(TREE, root)
    _git(root, "init", "-q", ".")
    _git(root, "remote", "add", "origin", "https://github.com/example/shaped")
    _git(root, "add", "-A")
    _git(root, "commit", "-q", "-m", "shaped")
    return root


@pytest.fixture(scope="module")
def theirs(repo: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """taskgraph's docker-image tasks by image name, for each parameters file."""
    found = {}
    for kind in KINDS:
        done = subprocess.run(
            [sys.executable, "-c", "import sys; from taskgraph.main import main; sys.exit(main())",
             "full", "-k", "docker-image", "-J", "-p", f"parameters-{kind}.yml"],
            cwd=repo, capture_output=True, text=True, check=True,
        )
        found[kind] = {t["attributes"]["image_name"]: t for t in json.loads(done.stdout).values()
                       if t["kind"] == "docker-image"}
    return found


def plan(capsys: pytest.CaptureFixture[str], repo: Path, kind: str, tmp_path: Path,
         *more: str) -> tuple[dict[str, Any], str]:
    code, out, err = run_cli(capsys, "plan", "--json", "--root", str(repo), "--params",
                             str(repo / f"parameters-{kind}.yml"),
                             "--index", f"local:{tmp_path}/index.sqlite", *more)
    assert code == 0, err
    return json.loads(out), err


def _cache_routes(routes: list[str]) -> list[str]:
    return [r for r in routes if r.startswith("index.") and ".cache." in r]


def test_the_tree_is_read_as_taskgraph_reads_it(theirs: dict[str, Any]) -> None:
    assert sorted(theirs["push"]) == ["base", "decision", "gcc-4.4", "python3.11", "python3.12"]


@pytest.mark.parametrize("kind", KINDS)
def test_with_no_file_of_ours_the_plan_is_taskgraphs(
    capsys: pytest.CaptureFixture[str], repo: Path, theirs: dict[str, Any], kind: str,
    tmp_path: Path,
) -> None:
    # Digests, index routes (pushdate from build_date), queue (the images worker
    # alias at the push's level), priority (by project) and expiry (by level).
    ours, _ = plan(capsys, repo, kind, tmp_path)
    for name, their in theirs[kind].items():
        image = ours["images"][name]
        task = ours["tasks"][image["task_id"]]
        their_task = their["task"]
        assert image["digest"] == their["attributes"]["cached_task"]["digest"], name
        assert _cache_routes(task["routes"]) == _cache_routes(their_task["routes"]), name
        assert task["taskQueueId"] == f"{their_task['provisionerId']}/{their_task['workerType']}"
        assert task["priority"] == their_task["priority"]
        lasts = (datetime.datetime.fromisoformat(task["expires"].replace("Z", "+00:00"))
                 - datetime.datetime.fromisoformat(task["created"].replace("Z", "+00:00")))
        assert lasts == parse_offset(their_task["expires"]["relative-datestamp"]), name


def test_the_queue_priority_and_expiry_follow_the_level_and_project(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path,
) -> None:
    pr, _ = plan(capsys, repo, "pr", tmp_path)
    push, _ = plan(capsys, repo, "push", tmp_path)
    assert {t["taskQueueId"] for t in pr["tasks"].values()} == {"shaped-1/images"}
    assert {t["taskQueueId"] for t in push["tasks"].values()} == {"shaped-3/images-gcp"}
    assert {t["priority"] for t in pr["tasks"].values()} == {"low"}
    assert {t["priority"] for t in push["tasks"].values()} == {"highest"}


@pytest.mark.parametrize("command", ["list", "digest"])
def test_list_and_digest_print_taskgraphs_digests(
    capsys: pytest.CaptureFixture[str], repo: Path, theirs: dict[str, Any], command: str,
) -> None:
    digests = {name: t["attributes"]["cached_task"]["digest"] for name, t in theirs["push"].items()}
    if command == "list":
        code, out, _ = run_cli(capsys, "list", "--json", "--root", str(repo))
        assert code == 0
        assert {i["name"]: i["digest"] for i in json.loads(out)} == digests
    else:
        for name, digest in digests.items():
            assert run_cli(capsys, "digest", name, "--root", str(repo))[1] == digest + "\n"


def test_our_file_overrides_key_by_key_and_v_says_which_file_set_what(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path,
) -> None:
    copy = tmp_path / "shaped"
    shutil.copytree(repo, copy)
    (copy / "taskcluster" / "taskgraph-images.yml").write_text("priority: medium\n")
    ours, err = plan(capsys, copy, "push", tmp_path, "-v")
    assert {t["priority"] for t in ours["tasks"].values()} == {"medium"}
    assert {t["taskQueueId"] for t in ours["tasks"].values()} == {"shaped-3/images-gcp"}
    lines = err.splitlines()
    assert ("taskgraph-images: using taskgraph's settings from taskcluster/config.yml and "
            "taskcluster/kinds/docker-image/kind.yml (-v lists them)") in lines
    assert any(line.endswith(f"using the build-task config {copy}/taskcluster/taskgraph-images.yml")
               for line in lines)
    said = "\n".join(lines)
    assert f"priority: set by {copy}/taskcluster/taskgraph-images.yml" in said
    assert "task-queue-id: set by taskcluster/config.yml (workers.aliases.images)" in said
    assert "trust-domain: set by taskcluster/config.yml (trust-domain)" in said
    assert ("cache-keys: set by taskcluster/kinds/docker-image/kind.yml "
            "(transforms: taskgraph.transforms.docker_image:transforms)") in said


def test_the_repositorys_own_parameters_are_left_out_and_listed_with_v(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path,
) -> None:
    _, err = plan(capsys, repo, "push", tmp_path, "-v")
    assert "reading " + str(repo / "parameters-push.yml") + " as taskgraph's decision parameters" in err
    assert "the repository's own parameters, not read: release_name" in err


def test_why_explains_with_no_file_of_ours(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path,
) -> None:
    code, out, err = run_cli(capsys, "why", "python3.11", "--root", str(repo),
                             "--index", f"local:{tmp_path}/index.sqlite")
    assert code == 0, err
    assert out == "python3.11: first build of this image\n"


def test_a_json_parameters_file_reads_as_the_yaml_one(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path,
) -> None:
    data = yaml.safe_load((repo / "parameters-pr.yml").read_text())
    (tmp_path / "parameters.json").write_text(json.dumps(data))
    from_yaml, _ = plan(capsys, repo, "pr", tmp_path / "y")
    code, out, err = run_cli(capsys, "plan", "--json", "--root", str(repo), "--params",
                             str(tmp_path / "parameters.json"), "--index", f"local:{tmp_path}/j.sqlite")
    assert code == 0, err
    assert json.loads(out)["params"] == from_yaml["params"]
    assert {n: i["digest"] for n, i in json.loads(out)["images"].items()} == {
        n: i["digest"] for n, i in from_yaml["images"].items()}


def test_without_a_graph_config_the_repository_reads_as_before(
    capsys: pytest.CaptureFixture[str], repo: Path, theirs: dict[str, Any], tmp_path: Path,
) -> None:
    copy = tmp_path / "shaped"
    shutil.copytree(repo, copy)
    (copy / "taskcluster" / "config.yml").unlink()
    code, out, err = run_cli(capsys, "list", "--json", "--root", str(copy))
    assert code == 0 and "taskgraph's settings" not in err
    ours = {i["name"]: i["digest"] for i in json.loads(out)}
    # This library's own digests: none is taskgraph's.
    assert sorted(ours) == sorted(theirs["push"])
    assert not set(ours.values()) & {t["attributes"]["cached_task"]["digest"]
                                     for t in theirs["push"].values()}


def test_images_taskgraph_indexed_are_reused(repo: Path, theirs: dict[str, Any]) -> None:
    # The library's way: the repository's config, the catalog it says, a plan.
    config = repository_config(str(repo))
    catalog = ImageCatalog.load(repo, cache_keys=config.cache_keys)
    index = MemoryIndex()
    task_ids = {"base": "fN1w0PbpQ0ys2hc7_EpA-g", "python3.11": "Wv-3ef4NQ-O5rZOrP7I_ug"}
    for name, task_id in task_ids.items():
        # Where taskgraph's build task of the push indexed it (its first route).
        namespace = theirs["push"][name]["task"]["routes"][0].removeprefix("index.")
        index.insert_task(namespace, task_id, expires=NOW.replace(year=2099))
        index.add_artifact(task_id, expires=NOW.replace(year=2099))
        index.set_task_state(task_id, "completed")
    data = yaml.safe_load((repo / "parameters-pr.yml").read_text())
    ours, _ = split_taskgraph_parameters(data)
    pull_request = Params.from_mapping({**ours, "source": "https://github.com/example/shaped"})
    plan = plan_images(catalog, pull_request, index, config, now=NOW)
    # A pull request finds what a push indexed, at level 3, as taskgraph's search does.
    assert {n: (plan[n].action, plan[n].task_id, plan[n].level) for n in task_ids} == {
        n: ("reuse", t, 3) for n, t in task_ids.items()}
    assert {n for n, d in plan.decisions.items() if d.action == "build"} == {
        "decision", "gcc-4.4", "python3.12"}


def test_the_graph_config_may_name_the_docker_image_kind(
    capsys: pytest.CaptureFixture[str], repo: Path, theirs: dict[str, Any], tmp_path: Path,
) -> None:
    copy = tmp_path / "shaped"
    shutil.copytree(repo, copy)
    (copy / "taskcluster/kinds/docker-image").rename(copy / "taskcluster/kinds/images")
    config = copy / "taskcluster/config.yml"
    config.write_text(config.read_text() + "docker-image-kind: images\n")
    code, out, err = run_cli(capsys, "list", "--json", "--root", str(copy))
    assert code == 0, err
    assert {i["name"]: i["digest"] for i in json.loads(out)} == {
        name: t["attributes"]["cached_task"]["digest"] for name, t in theirs["push"].items()}
    config.write_text(config.read_text().replace("kind: images", "kind: nope"))
    code, _, err = run_cli(capsys, "list", "--root", str(copy))
    assert code == 1 and err == ("taskgraph-images: error: taskcluster/config.yml: "
                                 "docker-image-kind: taskcluster/kinds/nope/kind.yml does not exist\n")


def test_as_in_taskgraph_an_indexed_image_is_reused_even_when_its_parent_is_built(
    repo: Path, theirs: dict[str, Any],
) -> None:
    # Its digest holds its parent's: what the index has was built on this very parent.
    config = repository_config(str(repo))
    catalog = ImageCatalog.load(repo, cache_keys=config.cache_keys)
    index = MemoryIndex()
    namespace = theirs["push"]["python3.11"]["task"]["routes"][0].removeprefix("index.")
    index.insert_task(namespace, "Wv-3ef4NQ-O5rZOrP7I_ug", expires=NOW.replace(year=2099))
    index.add_artifact("Wv-3ef4NQ-O5rZOrP7I_ug", expires=NOW.replace(year=2099))
    index.set_task_state("Wv-3ef4NQ-O5rZOrP7I_ug", "completed")
    data = yaml.safe_load((repo / "parameters-push.yml").read_text())
    push = Params.from_mapping({**split_taskgraph_parameters(data)[0],
                                "source": "https://github.com/example/shaped"})
    plan = plan_images(catalog, push, index, config, now=NOW)
    assert (plan["base"].action, plan["python3.11"].action) == ("build", "reuse")
    assert plan["python3.12"].reason.startswith("parent base rebuilt")
