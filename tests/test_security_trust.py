"""A lower level cannot poison a higher one, and no secret or control character is printed.

A level-1 build task writes its manifest and its index entries; a pull
request writes taskgraph's pull-request namespace; the environment may hold
URLs with ``user:password@``. See ``docs/security.rst``.
"""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest
from clirun import error_line, run_cli
from manifest_helpers import BUILDER, TREE, Backend
from plan_helpers import GECKO, NOW, PARAMS, params, seeded_task_ids
from test_kindconfig import _plan, _repo
from test_taskgraph_mode import CONFIG as TG_CONFIG
from test_taskgraph_mode import TRUST
from test_taskgraph_mode import repo as tg_repo  # noqa: F401 - the fixture
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.cli._why import format_diff
from taskgraph_images.config import BuildConfig
from taskgraph_images.errors import ParamsError, PlanError
from taskgraph_images.explain import NO_MANIFEST
from taskgraph_images.index import MemoryIndex
from taskgraph_images.manifest import build_manifest, diff_manifests
from taskgraph_images.params import Params
from taskgraph_images.plan import plan_images

TOKEN = "ghs_s3cr3tT0k3nNeverPrinted"
HOSTILE = f"{BUILDER}/\x1b[2J\x1b[Hall good\rlib.sh"


# -- a deeply nested manifest (item 5) ----------------------------------------------------------


def test_a_level_1_manifest_nested_deep_gives_no_earlier_manifest_not_a_crash(
    tmp_path: Path,
) -> None:
    repo = make_tree(tmp_path / "repo", TREE)
    backend = Backend("memory", tmp_path, None)
    catalog = ImageCatalog.load(repo)
    backend.record(1, build_manifest(catalog, "base"))
    earlier = backend.record(1, build_manifest(catalog, "builder"),
                             b"[" * 100_000 + b"]" * 100_000)
    make_tree(repo, {f"{BUILDER}/build.sh": "echo new\n"})
    plan = plan_images(ImageCatalog.load(repo), params(level=1), backend.index,
                       task_ids=seeded_task_ids(), now=NOW)
    assert plan["builder"].action == "build"
    assert plan["builder"].reason == f"not indexed; {NO_MANIFEST}"
    assert plan.warnings == (
        f"no earlier manifest could be read for 1 image (builder: task {earlier}'s "
        "public/context-manifest.json: refused: nested too deeply)",
    )


# -- index.rank at level 1 (item 5) -------------------------------------------------------------


def test_a_level_1_task_cannot_pin_latest_with_a_huge_rank(tmp_path: Path) -> None:
    _repo(tmp_path, "tasks:\n  a:\n    index: {product: p, job-name: j, rank: 99999999999}\n",
          a="FROM scratch\n")
    config = BuildConfig(image_builder=TG_CONFIG.image_builder, trust_domain="gecko")
    catalog = ImageCatalog.load(tmp_path)
    with pytest.raises(PlanError) as raised:
        plan_images(catalog, params(level=1), MemoryIndex(), config,
                    task_ids=seeded_task_ids(), now=NOW)
    assert str(raised.value) == (
        "image 'a': index.rank 99999999999 in the kind config is above the push date "
        "(1478546787): at level 1 it would pin the 'latest' route against every later push; "
        "use by-tier or build_date"
    )
    # Level 3 is trusted with its own ranks, as taskgraph does.
    plan = _plan(catalog, config=config)
    assert plan.tasks[plan["a"].task_id or ""]["extra"]["index"] == {"rank": 99999999999}


# -- the pull-request namespace (item 11) -------------------------------------------------------


@pytest.mark.parametrize("level", [2, 3])
def test_the_pull_request_namespace_is_not_trusted_above_level_1(
    tg_repo: Path, level: int  # noqa: F811
) -> None:
    catalog = ImageCatalog.load(tg_repo, cache_keys="taskgraph")
    pr_namespace = f"{TRUST}.cache.pr.docker-images.v2.base.hash.{catalog.digest('base')}"
    index = MemoryIndex()
    index.insert_task(pr_namespace, "C3FW4Vj7RUy83vrdf5LVkw", expires=NOW.replace(year=2099))
    index.add_artifact("C3FW4Vj7RUy83vrdf5LVkw", expires=NOW.replace(year=2099))
    index.set_task_state("C3FW4Vj7RUy83vrdf5LVkw", "completed")
    plan = plan_images(catalog, params(level=level, tasks_for="github-pull-request"), index,
                       TG_CONFIG, task_ids=seeded_task_ids(), now=NOW)
    assert plan["base"].action == "build"
    at_1 = plan_images(catalog, params(level=1, tasks_for="github-pull-request"), index,
                       TG_CONFIG, task_ids=seeded_task_ids(), now=NOW)
    assert at_1["base"].action == "reuse" and at_1["base"].level == 1


# -- URL credentials (item 10) -----------------------------------------------------------------


@pytest.mark.parametrize("key", ["head_repository", "base_repository", "source"])
def test_a_repository_with_credentials_is_refused_without_them(key: str) -> None:
    with pytest.raises(ParamsError) as raised:
        Params.from_mapping({**PARAMS, key: f"https://x-access-token:{TOKEN}@github.com/o/r"})
    assert str(raised.value) == (
        f"invalid decision parameters: {key} 'https://github.com/o/r' is invalid (it carries "
        "credentials (user:password@); give the URL without them)"
    )


def test_an_ssh_user_is_not_a_credential() -> None:
    p = Params.from_mapping({**PARAMS, "head_repository": "ssh://hg@hg.mozilla.org/try"})
    assert p.head_repository == "ssh://hg@hg.mozilla.org/try"


def test_the_head_repository_option_with_a_token_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKCLUSTER_ROOT_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "params.json"
    path.write_text(json.dumps(PARAMS))
    code, out, err = run_cli(capsys, "plan", "--root", str(GECKO), "--params", str(path),
                             "--head-repository", f"https://x-access-token:{TOKEN}@github.com/o/r",
                             "--output", str(tmp_path / "plan.json"))
    assert code == 1 and TOKEN not in out + err
    assert "head_repository 'https://github.com/o/r' is invalid" in error_line(err)
    assert not (tmp_path / "plan.json").exists()


def test_an_unreachable_index_url_with_credentials_is_never_printed_or_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKCLUSTER_ROOT_URL", raising=False)
    path = tmp_path / "params.json"
    path.write_text(json.dumps(PARAMS))
    out_file = tmp_path / "plan.json"
    code, out, err = run_cli(capsys, "plan", "--root", str(GECKO), "--params", str(path),
                             "--index", f"taskcluster:http://user:{TOKEN}@127.0.0.1:1",
                             "--index-retries", "0", "--on-index-error", "build",
                             "--output", str(out_file))
    assert code == 0
    written = out_file.read_text()
    assert "http://127.0.0.1:1 is unreachable" in written
    assert TOKEN not in out + err + written


def test_a_proxy_url_with_credentials_is_not_in_the_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKCLUSTER_ROOT_URL", raising=False)
    monkeypatch.setenv("TASKCLUSTER_PROXY_URL", f"http://me:{TOKEN}@127.0.0.1:1")
    path = tmp_path / "params.json"
    path.write_text(json.dumps(PARAMS))
    code, out, err = run_cli(capsys, "plan", "--root", str(GECKO), "--params", str(path),
                             "--index-retries", "0", "--output", str(tmp_path / "plan.json"))
    assert code == 1 and "127.0.0.1:1" in err
    assert TOKEN not in out + err


# -- control characters in an earlier manifest (item 12) ---------------------------------------


def test_a_hostile_member_path_is_escaped_in_the_explanation_and_in_why(tmp_path: Path) -> None:
    repo = make_tree(tmp_path / "repo", TREE)
    catalog = ImageCatalog.load(repo)
    new = build_manifest(catalog, "builder")
    members = dict(new.members)
    members[HOSTILE] = members.pop(f"{BUILDER}/lib.sh")
    old = attrs.evolve(new, members=members, digest="0" * 64)
    diff = diff_manifests(old, new)
    summary = diff.summary()
    assert summary == (
        "1 file changed, 0 added, 0 removed, 1 moved "
        f"({BUILDER}/\\x1b[2J\\x1b[Hall good\\rlib.sh -> {BUILDER}/lib.sh)"
    )
    lines = format_diff(diff)
    assert not any(c in "".join(lines) for c in "\x1b\r")
    assert any("\\x1b[2J" in line for line in lines)


def test_a_plan_file_nested_deep_is_a_plan_error() -> None:
    from taskgraph_images.plan import Plan

    with pytest.raises(PlanError, match="not a plan: JSON nested too deeply"):
        Plan.from_json("[" * 100_000 + "]" * 100_000)
