"""``taskgraph-images why NAME``: the whole difference, from the index or a plan file."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from manifest_helpers import BUILDER, PUSHDATE, TREE
from plan_helpers import PARAMS
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.cli import main
from taskgraph_images.index import LocalIndex
from taskgraph_images.manifest import build_manifest


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("TASKCLUSTER_ROOT_URL", "TASKCLUSTER_PROXY_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "repo", TREE)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


OLD_BUILD, NEW_BUILD = sha(b"echo build\n"), sha(b"echo new\n")
ADDED, LIB = sha(b"echo added\n"), sha(b"echo lib\n")


def record(repo: Path, index: Path, level: int = 3) -> dict[str, str]:
    catalog = ImageCatalog.load(repo)
    local = LocalIndex(index)
    image = index.parent / "image.tar.zst"
    index.parent.mkdir(parents=True, exist_ok=True)
    tasks = {}
    for name in ("base", "builder"):
        image.write_bytes(b"image")
        m = build_manifest(catalog, name)
        tasks[name] = local.record_build(level, name, m.digest, PUSHDATE, image, manifest=m)
    return tasks


def why(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["why", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def change_everything(repo: Path) -> None:
    make_tree(repo, {
        f"{BUILDER}/build.sh": "echo new\n",
        f"{BUILDER}/new.sh": "echo added\n",
        "taskcluster/kinds/docker-image/kind.yml":
            (repo / "taskcluster/kinds/docker-image/kind.yml").read_text().replace(
                "3.11 3.12", "3.13"),
        "taskcluster/docker/base/setup.sh": "echo 2\n",
    })
    shutil.move(str(repo / BUILDER / "lib.sh"), str(repo / BUILDER / "zz-lib.sh"))


def test_why_prints_every_path_with_both_hashes_moves_args_and_parent(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path
) -> None:
    index = tmp_path / "idx" / "index.sqlite"
    before = {n: ImageCatalog.load(repo).digest(n) for n in ("base", "builder")}
    tasks = record(repo, index)
    change_everything(repo)
    after = ImageCatalog.load(repo)
    code, out, err = why(capsys, "builder", "--root", str(repo), "--index", f"local:{index}")
    assert code == 0, err
    # 100 columns at most: the explanation wrapped, every hash its first 12 hex digits.
    lines = out.splitlines()
    compared = lines.index(f"compared with task {tasks['builder']} (level 3)")
    assert " ".join(line.strip() for line in lines[:compared]) == (
        "builder: 3 files changed (taskcluster/docker/builder/build.sh), 1 added, 0 removed, "
        f"1 moved ({BUILDER}/lib.sh -> {BUILDER}/zz-lib.sh); args changed: PYTHON_VERSIONS; "
        "parent base rebuilt (its 1 file changed)")
    assert compared > 1 and all(line.startswith("    ") for line in lines[1:compared])
    assert lines[compared + 1:] == [
        f"digest   {before['builder'][:12]} -> {after.digest('builder')[:12]}",
        f"changed  {BUILDER}/build.sh  {OLD_BUILD[:12]} -> {NEW_BUILD[:12]}",
        f"added    {BUILDER}/new.sh  {ADDED[:12]}",
        f"moved    {BUILDER}/lib.sh -> {BUILDER}/zz-lib.sh  {LIB[:12]}",
        'arg      PYTHON_VERSIONS  "3.11 3.12" -> "3.13"',
        "parent   base rebuilt (its 1 file changed)  "
        f"{before['base'][:12]} -> {after.digest('base')[:12]}",
    ]
    assert max(len(line) for line in out.splitlines()) <= 100

    code, out, _ = why(capsys, "builder", "--root", str(repo), "--index", f"local:{index}",
                       "--json")
    doc = json.loads(out)
    assert doc["image"] == "builder" and doc["compared_with"] == tasks["builder"]
    assert doc["level"] == 3
    assert doc["explanation"] == doc["changes"]["summary"]
    assert doc["changes"]["moved"] == [{"old_path": f"{BUILDER}/lib.sh",
                                        "new_path": f"{BUILDER}/zz-lib.sh",
                                        "sha256": LIB}]
    assert doc["changes"]["args"] == [{"name": "PYTHON_VERSIONS", "old": "3.11 3.12",
                                       "new": "3.13"}]


def test_why_reads_the_roots_default_config_for_the_index_prefix(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path
) -> None:
    # The root's taskcluster/taskgraph-images.yml counts as plan counts it: its
    # index-prefix is where the earlier builds were indexed.
    make_tree(repo, {"taskcluster/taskgraph-images.yml": "index-prefix: custom.images\n"})
    index = tmp_path / "idx" / "index.sqlite"
    catalog = ImageCatalog.load(repo)
    local = LocalIndex(index)
    image = index.parent / "image.tar.zst"
    index.parent.mkdir(parents=True)
    image.write_bytes(b"image")
    m = build_manifest(catalog, "builder")
    task = local.record_build(3, "builder", m.digest, PUSHDATE, image, manifest=m,
                              prefix="custom.images")
    make_tree(repo, {f"{BUILDER}/build.sh": "echo new\n"})
    code, out, err = why(capsys, "builder", "--root", str(repo), "--index", f"local:{index}")
    assert code == 0, err
    assert out.splitlines()[:2] == [
        "builder: 1 file changed (taskcluster/docker/builder/build.sh), 0 added, 0 removed",
        f"compared with task {task} (level 3)",
    ]


def test_why_respects_the_trust_rule_and_says_first_build(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path
) -> None:
    index = tmp_path / "idx" / "index.sqlite"
    record(repo, index, level=1)
    code, out, _ = why(capsys, "builder", "--root", str(repo), "--index", f"local:{index}",
                       "--level", "3")
    assert (code, out) == (0, "builder: first build of this image\n")
    code, out, _ = why(capsys, "builder", "--root", str(repo), "--index", f"local:{index}",
                       "--level", "1")
    assert out.splitlines()[0] == "builder: unchanged since the earlier build"


def test_why_warns_when_the_earlier_manifest_is_unreadable(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path
) -> None:
    index = tmp_path / "idx" / "index.sqlite"
    image = tmp_path / "image.tar.zst"
    image.write_bytes(b"image")
    task = LocalIndex(index).record_build(3, "base", "e" * 64, PUSHDATE, image)
    code, out, err = why(capsys, "base", "--root", str(repo), "--index", f"local:{index}")
    assert code == 0
    assert out.splitlines() == [
        "base: no earlier manifest to compare (built before manifests were recorded)",
        f"compared with task {task} (level 3)",
    ]
    assert f"warning: task {task} has no public/context-manifest.json" in err


def test_why_from_a_plan_file(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path
) -> None:
    index = tmp_path / "idx" / "index.sqlite"
    tasks = record(repo, index)
    make_tree(repo, {f"{BUILDER}/build.sh": "echo new\n"})
    params = tmp_path / "params.json"
    params.write_text(json.dumps(PARAMS))
    plan = tmp_path / "plan.json"
    assert main(["plan", "--root", str(repo), "--index", f"local:{index}", "--params",
                 str(params), "--output", str(plan), "--wide"]) == 0
    out, _ = capsys.readouterr()
    line = f"not indexed; 1 file changed ({BUILDER}/build.sh), 0 added, 0 removed"
    assert next(r for r in out.splitlines() if r.startswith("builder ")).endswith(line)
    code, out, _ = why(capsys, "builder", "--plan", str(plan))
    assert code == 0
    assert out.splitlines()[:2] == [f"builder: {line}", f"compared with task {tasks['builder']}"]
    assert out.splitlines()[3] == \
        f"changed  {BUILDER}/build.sh  {OLD_BUILD[:12]} -> {NEW_BUILD[:12]}"
    code, out, _ = why(capsys, "base", "--plan", str(plan), "--json")
    assert json.loads(out) == {"image": "base", "action": "reuse",
                               "explanation": f"reused: indexed at level 3 (task {tasks['base']})"}
    code, out, _ = why(capsys, "image_builder", "--plan", str(plan))
    assert out.startswith("image_builder: prebuilt: registry tag ")


def test_why_errors_are_one_line(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path
) -> None:
    code, _, err = why(capsys, "nope", "--root", str(repo))
    assert code == 1 and err.strip().splitlines()[-1].startswith(
        "taskgraph-images: error: unknown image 'nope'")
    code, _, err = why(capsys, "base", "--plan", str(tmp_path / "none.json"), "--level", "2")
    assert (code, err.strip()) == (
        1, "taskgraph-images: error: --level is for the index; a plan file has its own level")
    code, _, err = why(capsys, "base", "--root", str(repo), "--level", "7")
    assert code == 1 and "invalid level 7" in err
    code, out, _ = why(capsys, "image_builder", "--root", str(repo), "--json")
    assert json.loads(out)["action"] == "prebuilt"


def test_plan_prints_one_warning_line_for_unreadable_manifests(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path
) -> None:
    index = tmp_path / "idx" / "index.sqlite"
    image = tmp_path / "image.tar.zst"
    image.write_bytes(b"image")
    local = LocalIndex(index)
    tasks = [local.record_build(3, n, "e" * 64, PUSHDATE, image) for n in ("base", "builder")]
    params = tmp_path / "params.json"
    params.write_text(json.dumps(PARAMS))
    assert main(["plan", "--root", str(repo), "--index", f"local:{index}", "--params",
                 str(params), "--wide"]) == 0
    out, err = capsys.readouterr()
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert warnings == [
        "taskgraph-images: warning: no earlier manifest could be read for 2 images "
        f"(base: task {tasks[0]} has no public/context-manifest.json; "
        f"builder: task {tasks[1]} has no public/context-manifest.json)"
    ]
    assert "no earlier manifest to compare (built before manifests were recorded)" in out


def test_a_recipe_change_is_the_first_line_of_the_difference() -> None:
    from taskgraph_images.cli._why import format_diff
    from taskgraph_images.manifest import ContextManifest, diff_manifests

    old = ContextManifest("a", "0" * 64, "seed", {})
    new = ContextManifest("a", "1" * 64, "taskgraph", {})
    assert format_diff(diff_manifests(old, new)) == [
        "recipe   seed -> taskgraph", f"digest   {'0' * 12} -> {'1' * 12}"]


def test_why_asks_a_taskcluster_index_too(
    capsys: pytest.CaptureFixture[str], repo: Path, tmp_path: Path, tc_server: Any
) -> None:
    from manifest_helpers import Backend

    backend = Backend("taskcluster", tmp_path, tc_server)
    catalog = ImageCatalog.load(repo)
    earlier = backend.record(2, build_manifest(catalog, "base"))
    make_tree(repo, {"taskcluster/docker/base/new.sh": "echo new\n"})
    code, out, err = why(capsys, "base", "--root", str(repo), "--index",
                         f"taskcluster:{tc_server.root_url}", "--level", "2")
    assert code == 0, err
    assert out.splitlines()[:2] == ["base: 1 file changed, 1 added, 0 removed",
                                    f"compared with task {earlier} (level 2)"]
    assert out.splitlines()[3] == \
        f"added    taskcluster/docker/base/new.sh  {sha(b'echo new' + bytes([10]))[:12]}"
