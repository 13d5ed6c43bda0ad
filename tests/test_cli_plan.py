"""``taskgraph-images plan`` and ``render``: output, defaults, files, submit, errors."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from clirun import run_cli
from plan_helpers import GECKO, PARAMS

from taskgraph_images.cli._params import default_params
from taskgraph_images.index import hash_namespace
from taskgraph_images.plan import Plan

CHAIN = Path(__file__).resolve().parent / "data" / "plan_chain"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in (
        "TASKCLUSTER_ROOT_URL",
        "TASKCLUSTER_PROXY_URL",
        "TASKCLUSTER_CLIENT_ID",
        "TASKCLUSTER_ACCESS_TOKEN",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def params_file(tmp_path: Path) -> Path:
    path = tmp_path / "params.yml"
    path.write_text(json.dumps(PARAMS))
    return path


def test_plan_on_a_fresh_machine_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "plan", "--root", str(GECKO))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["IMAGE", "DIGEST", "TASK", "ID", "DECISION"]
    assert lines[2].split()[0] == "builder" and len(lines[2].split()[1]) == 8
    # Being built says "not indexed"; the table shows the explanation, below the
    # row where 80 columns end (--wide keeps the lookup's reason on the row).
    assert lines[2].endswith("  build:")
    assert lines[3] == "    first build of this image"
    assert max(len(line) for line in lines) <= 80
    assert "guessed the decision parameters level=1, project=gecko and 6 more" in err
    assert "using the local index" in err


def test_plan_table_keeps_its_columns_for_prebuilt_images(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, out, _ = run_cli(capsys, "plan", "-q", "--root", str(GECKO))
    assert code == 0
    lines = out.splitlines()
    column = lines[0].index("DECISION")
    rows_only = [line for line in lines if not line.startswith(" ")]
    assert all(line[column - 2:column] == "  " and line[column] != " " for line in rows_only)
    rows = {line.split()[0]: line for line in rows_only[1:]}
    assert rows["image_builder"][column:] == "prebuilt: version 1.0.0"
    code, out, _ = run_cli(capsys, "plan", "-q", "--wide", "--root", str(GECKO))
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert rows["image_builder"].endswith("prebuilt: taskcluster/image_builder:1.0.0")
    assert rows["builder"].endswith("build: not indexed; first build of this image")


def test_plan_lists_each_guessed_parameter_with_verbose(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code, _, err = run_cli(capsys, "plan", "-v", "--root", str(GECKO))
    assert code == 0
    assert "taskgraph-images:   level=1 (the lowest)" in err.splitlines()
    assert any(line.startswith("taskgraph-images:   head_rev=") for line in err.splitlines())


def test_plan_json_is_a_plan(capsys: pytest.CaptureFixture[str], params_file: Path) -> None:
    code, out, err = run_cli(capsys, "plan", "--root", str(GECKO), "--params", str(params_file), "--json")
    assert code == 0
    plan = Plan.from_json(out)
    assert plan.params.level == 3 and len(plan.tasks) == 2
    assert "guessed the decision parameters" not in err


def test_flags_override_the_params_file(capsys: pytest.CaptureFixture[str], params_file: Path) -> None:
    _, out, _ = run_cli(
        capsys,
        "plan",
        "--root",
        str(GECKO),
        "--params",
        str(params_file),
        "--level",
        "2",
        "--pushdate",
        "2020-01-01T00:00:00Z",
        "--json",
    )
    plan = Plan.from_json(out)
    assert (plan.params.level, plan.params.pushdate.year) == (2, 2020)


def test_output_file_holds_the_plan(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    code, out, _ = run_cli(capsys, "plan", "--root", str(GECKO), "--output", str(target))
    assert code == 0 and "IMAGE" in out
    assert set(Plan.from_json(target.read_text()).decisions) == {"base", "builder", "image_builder", "tester"}


def test_local_index_entry_is_reused(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.index import LocalIndex

    db = tmp_path / "index.sqlite"
    digest = ImageCatalog.load(GECKO).digest("builder")
    artifact = tmp_path / "image.tar.zst"
    artifact.write_bytes(b"image")
    task_id = LocalIndex(db).record_build(1, "builder", digest, 1478546787, artifact)
    _, out, _ = run_cli(capsys, "plan", "--root", str(GECKO), "--index", f"local:{db}")
    row = next(line for line in out.splitlines() if line.startswith("builder"))
    assert row.endswith("reuse: level 1") and task_id in row
    _, out, _ = run_cli(capsys, "plan", "--wide", "--root", str(GECKO), "--index", f"local:{db}")
    row = next(line for line in out.splitlines() if line.startswith("builder"))
    assert row.endswith(f"reuse: {hash_namespace(1, 'builder', digest)} (level 1)")
    assert digest in row


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--level", "7"], "level '7' is invalid"),
        (["--pushdate", "last tuesday"], "pushdate 'last tuesday' is invalid"),
        (["--index", "ftp:x"], "invalid --index"),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, "plan", "--root", str(GECKO), *argv)
    assert code == 1 and out == ""
    last = err.strip().splitlines()[-1]
    assert last.startswith("taskgraph-images: error: ") and message in last


def test_bad_config_names_the_key_and_leaves_no_output(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "build.yml"
    config.write_text("retries: many\n")
    target = tmp_path / "plan.json"
    code, _, err = run_cli(capsys, "plan", "--root", str(GECKO), "--config", str(config),
                           "--output", str(target))
    assert code == 1 and f"{config}: retries" in err
    assert list(tmp_path.iterdir()) == [config] or not target.exists()


def test_cycle_is_an_error(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from trees import make_tree

    make_tree(
        tmp_path,
        {"taskcluster/docker/a/Dockerfile": "FROM b\n", "taskcluster/docker/b/Dockerfile": "FROM a\n"},
    )
    code, _, err = run_cli(capsys, "plan", "--root", str(tmp_path))
    assert code == 1 and "cycle" in err


def test_render_prints_the_rendered_template(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    run_cli(capsys, "plan", "--root", str(GECKO), "--output", str(target))
    plan = Plan.from_json(target.read_text())
    template = GECKO / "taskcluster" / "tasks" / "build.yml"
    code, out, _ = run_cli(capsys, "render", str(template), "--plan", str(target))
    assert code == 0
    assert out == template.read_text().replace(
        "{{#task_id_for_image}}builder{{/task_id_for_image}}", plan.task_id_for_image("builder")
    )


def test_render_json_parses_the_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    target = tmp_path / "plan.json"
    run_cli(capsys, "plan", "--root", str(GECKO), "--output", str(target))
    _, out, _ = run_cli(
        capsys, "render", str(GECKO / "taskcluster" / "tasks" / "lint.yml"), "--plan", str(target), "--json"
    )
    assert json.loads(out)["payload"]["image"] == "taskcluster/base:0.1.7"


def test_render_with_a_file_that_is_not_a_plan(capsys: pytest.CaptureFixture[str]) -> None:
    template = str(GECKO / "taskcluster" / "tasks" / "lint.yml")
    code, _, err = run_cli(capsys, "render", template, "--plan", template)
    assert code == 1 and "not a plan" in err


def test_render_unknown_image_gives_line_and_column(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "plan.json"
    run_cli(capsys, "plan", "--root", str(GECKO), "--output", str(target))
    template = tmp_path / "t.yml"
    template.write_text("a: 1\nimage: {#docker_image}nope{/docker_image}\n")
    code, _, err = run_cli(capsys, "render", str(template), "--plan", str(target))
    assert code == 1 and f"{template}:2:23: unknown image 'nope'" in err


def test_submit_without_a_queue_is_an_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "plan", "--root", str(GECKO), "--submit")
    assert code == 1 and "--submit needs a Queue" in err


def _tc_plan(tc_server: Any, params_file: Path, *extra: str, root: Path = CHAIN) -> list[str]:
    return ["plan", "--root", str(root), "--params", str(params_file),
            "--index", f"taskcluster:{tc_server.root_url}", *extra]


@pytest.mark.parametrize(
    ("extra", "why"),
    [(("--submit",), "--submit creates the build tasks"),
     ((), "the plan is for the Taskcluster of its index")],
)
def test_a_plan_for_taskcluster_without_a_queue_stops_before_any_lookup(
    capsys: pytest.CaptureFixture[str], tc_server: Any, params_file: Path,
    extra: tuple[str, ...], why: str,
) -> None:
    code, out, err = run_cli(capsys, *_tc_plan(tc_server, params_file, "--config", "none", *extra))
    assert code == 1 and out == ""
    assert err.splitlines()[-1] == (
        f"taskgraph-images: error: task-queue-id is not set (at level 3), but {why}: add the "
        'line `task-queue-id: "{trust-domain}-{level}/images"` to taskcluster/taskgraph-images.yml'
    )
    assert tc_server.requests == []


def test_submit_to_a_queue_that_does_not_answer_stops_before_any_lookup(
    capsys: pytest.CaptureFixture[str], tc_server: Any, params_file: Path
) -> None:
    tc_server.disable("ping", 404)
    code, _, err = run_cli(capsys, *_tc_plan(tc_server, params_file, "--submit"))
    assert code == 1 and "does not answer ping" in err.splitlines()[-1]
    assert tc_server.requests == ["ping"]


def test_the_repositorys_config_is_used_by_default(
    capsys: pytest.CaptureFixture[str], params_file: Path
) -> None:
    code, out, err = run_cli(capsys, "plan", "--root", str(GECKO), "--params", str(params_file), "--json")
    assert code == 0 and "using the build-task config" in err
    task = next(iter(Plan.from_json(out).tasks.values()))
    assert (task["taskQueueId"], task["schedulerId"]) == ("gecko-3/images", "gecko-level-3")
    env = task["payload"]["env"]
    assert (env["TASKGRAPH_IMAGES_CONFIG"], env["DOCKER_IMAGE_ZSTD_LEVEL"]) == (
        "taskcluster/taskgraph-images.yml", "10")
    _, out, _ = run_cli(capsys, "plan", "--root", str(GECKO), "--params", str(params_file), "--json",
                        "--config", "none")
    task = next(iter(Plan.from_json(out).tasks.values()))
    assert task["taskQueueId"] == "taskgraph-images-local/run-task"
    assert "TASKGRAPH_IMAGES_CONFIG" not in task["payload"]["env"]


def test_a_config_outside_the_repository_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    config = tmp_path / "build.yml"
    config.write_text("zstd-level: 4\n")
    code, _, err = run_cli(capsys, "plan", "--root", str(GECKO), "--config", str(config))
    assert code == 1
    # The rule and its reason, in the one line.
    assert err.splitlines()[-1] == (
        f"taskgraph-images: error: the build-task config {config} is outside the repository "
        f"{GECKO}: the build tasks read it from their checkout of the repository (so that they "
        "build what the plan decided), where it would be missing; move it into the repository"
    )


def test_a_given_config_is_announced_as_the_default_one(
    capsys: pytest.CaptureFixture[str], params_file: Path
) -> None:
    config = GECKO / "taskcluster" / "taskgraph-images.yml"
    code, _, err = run_cli(capsys, "plan", "--root", str(GECKO), "--params", str(params_file),
                           "--config", str(config))
    assert code == 0
    assert f"taskgraph-images: using the build-task config {config} (--config)\n" in err
    code, _, err = run_cli(capsys, "plan", "--root", str(GECKO), "--params", str(params_file),
                           "--config", "none")
    assert code == 0 and "using the build-task config" not in err


def test_a_misspelt_config_key_is_answered_with_the_closest(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(GECKO, root)
    (root / "taskcluster" / "taskgraph-images.yml").write_text("task-queue: proj/images\n")
    code, _, err = run_cli(capsys, "list", "--root", str(root))
    assert code == 1
    assert "unknown key 'task-queue' (did you mean 'task-queue-id'? known keys: " in err


def test_a_misspelt_image_is_answered_with_the_closest(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "digest", "--root", str(GECKO), "buildr")
    assert (code, err) == (1, "taskgraph-images: error: unknown image 'buildr' (did you mean "
                           "'builder' or 'image_builder'? known images: base, builder, image_builder, "
                           "tester)\n")


def test_submit_creates_build_tasks_parents_first(
    capsys: pytest.CaptureFixture[str], tc_server: Any, params_file: Path
) -> None:
    code, out, err = run_cli(capsys, *_tc_plan(tc_server, params_file, "--submit", "--json"))
    assert code == 0, err
    plan = Plan.from_json(out)
    assert tc_server.schema_errors == []
    assert set(tc_server.definitions) == set(plan.tasks)
    created = [r for r in tc_server.requests if r == "createTask"]
    assert len(created) == 3
    assert list(tc_server.definitions) == [plan[n].task_id for n in ("base", "python", "tools")]
    assert all(t["taskQueueId"] == "proj-loopback-3/images" for t in plan.tasks.values())
    assert f"submitting 3 build tasks to {tc_server.root_url} (16 at a time)" in err
    assert "submitting 3 build tasks... 3/3" in err
    assert "created 3 build tasks" in err
    assert tc_server.requests.index("ping") < tc_server.requests.index("findTasksAtIndex")


def test_submit_refused_by_the_queue_is_a_submit_error(
    capsys: pytest.CaptureFixture[str], tc_server: Any, params_file: Path
) -> None:
    tc_server.inject("createTask", status=403)
    code, _, err = run_cli(capsys, *_tc_plan(tc_server, params_file, "--submit"))
    assert code == 1 and "creating" in err and "'base'" in err
    assert "not created: base, python, tools" in err.splitlines()[-1]


def test_a_submit_failing_midway_is_resumed_from_the_plan_file(
    capsys: pytest.CaptureFixture[str], tc_server: Any, params_file: Path, tmp_path: Path
) -> None:
    target = tmp_path / "plan.json"
    tc_server.inject("createTask", status=403, after=1)
    code, _, err = run_cli(capsys, *_tc_plan(tc_server, params_file, "--submit", "--output",
                                         str(target)))
    last = err.splitlines()[-1]
    assert code == 1 and last.startswith("taskgraph-images: error: created 1 of 3 build tasks; ")
    assert last.endswith(f"not created: python, tools; `taskgraph-images submit {target}` "
                         "creates the rest")
    tc_server.faults.clear()
    tc_server.requests.clear()
    code, _, err = run_cli(capsys, "submit", str(target), "--taskcluster-root-url", tc_server.root_url)
    assert code == 0, err
    assert "created 2 build tasks (1 existed already)" in err
    assert tc_server.requests == ["ping", "statuses", "createTask", "createTask"]
    assert set(tc_server.definitions) == set(Plan.from_json(target.read_text()).tasks)
    tc_server.requests.clear()
    code, _, err = run_cli(capsys, "submit", str(target), "--taskcluster-root-url", tc_server.root_url,
                           "--jobs", "1")
    assert code == 0 and "created 0 build tasks (3 existed already)" in err
    assert tc_server.requests == ["ping", "statuses"]


def test_submit_of_a_plan_without_tasks_asks_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "plan.json"
    target.write_text(Plan({}, {}, Plan.from_json(
        run_cli(capsys, "plan", "--root", str(GECKO), "--json")[1]).params).to_json())
    code, _, err = run_cli(capsys, "submit", str(target))
    assert code == 0 and "has no build tasks" in err


@pytest.mark.parametrize("flag", [("--jobs", "4"), ("--taskcluster-root-url", "http://tc")])
def test_submit_options_without_submit_are_refused(
    capsys: pytest.CaptureFixture[str], flag: tuple[str, str]
) -> None:
    code, out, err = run_cli(capsys, "plan", "--root", str(GECKO), *flag)
    assert (code, out) == (1, "") and err.splitlines()[-1] == (
        f"taskgraph-images: error: {flag[0]} goes with --submit")


def test_submit_jobs_below_one_is_refused(
    capsys: pytest.CaptureFixture[str], tc_server: Any, tmp_path: Path
) -> None:
    target = tmp_path / "plan.json"
    run_cli(capsys, "plan", "--root", str(CHAIN), "--output", str(target))
    code, _, err = run_cli(capsys, "submit", str(target), "--taskcluster-root-url",
                           tc_server.root_url, "--jobs", "0")
    assert code == 1 and "invalid --jobs 0" in err


def test_default_params_without_git(tmp_path: Path) -> None:
    import datetime

    root = tmp_path / "my repo"
    root.mkdir()
    now = datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc)
    found = default_params(str(root), now, git=lambda *a: None, environ={"USER": "ann"})
    values = {k: v for k, (v, _) in found.items()}
    assert values["project"] == "my-repo"
    assert values["head_rev"] == "0" * 40
    assert values["owner"] == "ann@localhost"
    assert values["pushdate"] == 1577836800
    assert values["head_repository"].startswith("file://")


def test_default_params_from_git(tmp_path: Path) -> None:
    import datetime

    answers = {"rev-parse": "a" * 40, "remote": "https://github.com/o/r", "config": "me@x.org"}
    found = default_params(
        str(tmp_path),
        datetime.datetime.now(datetime.timezone.utc),
        git=lambda root, cmd, *rest: answers[cmd],
        environ={},
    )
    values = {k: v for k, (v, _) in found.items()}
    assert (values["head_rev"], values["owner"], values["source"]) == (
        "a" * 40,
        "me@x.org",
        "https://github.com/o/r",
    )
    assert found["project"] == ("r", "the git remote origin's name")


@pytest.mark.parametrize("remote", [
    "https://github.com/mozilla-releng/scriptworker-scripts",
    "https://github.com/mozilla-releng/scriptworker-scripts.git",
    "https://github.com/mozilla-releng/scriptworker-scripts/",
    "git@github.com:mozilla-releng/scriptworker-scripts.git",
    "ssh://hg@hg.example.org/scriptworker-scripts",
])
def test_the_project_is_the_repositorys_name_not_the_clones_folder(
    tmp_path: Path, remote: str
) -> None:
    import datetime

    clone = tmp_path / "sws"
    clone.mkdir()
    answers = {"rev-parse": "a" * 40, "remote": remote, "config": "me@x.org"}
    found = default_params(str(clone), datetime.datetime.now(datetime.timezone.utc),
                           git=lambda root, cmd, *rest: answers[cmd], environ={})
    assert found["project"] == ("scriptworker-scripts", "the git remote origin's name")


def test_plan_of_a_copied_tree_uses_its_folder_name(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    root = tmp_path / "firefox"
    shutil.copytree(GECKO, root)
    _, _, err = run_cli(capsys, "plan", "--root", str(root))
    assert "project=firefox" in err


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("level: [1\n", r"params\.yml:\d+:\d+: "),
        (b"level: \xff\n", r"parameters file .*params\.yml is not UTF-8 text"),
        (None, r"cannot read parameters file .*params\.yml: No such file"),
    ],
    ids=["not-yaml", "not-utf8", "missing"],
)
def test_a_bad_params_file_is_one_line_naming_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: object, message: str
) -> None:
    path = tmp_path / "params.yml"
    if isinstance(content, str):
        path.write_text(content)
    elif isinstance(content, bytes):
        path.write_bytes(content)
    code, out, err = run_cli(capsys, "plan", "--root", str(GECKO), "--params", str(path))
    assert (code, out) == (1, "")
    assert err.count("\n") == 1 and re.search(message, err), err


def test_a_plan_whose_tasks_are_not_kept_says_how_to_keep_them(
    capsys: pytest.CaptureFixture[str], params_file: Path, tmp_path: Path
) -> None:
    code, _, err = run_cli(capsys, "plan", "--root", str(GECKO), "--params", str(params_file))
    assert code == 0
    assert err.splitlines()[-1] == (
        "taskgraph-images: 2 to build, 0 reused, 2 tasks (not kept: --output FILE writes them, "
        "for render, graph and submit)")
    code, _, err = run_cli(capsys, "plan", "--root", str(GECKO), "--params", str(params_file),
                           "--output", str(tmp_path / "plan.json"))
    assert code == 0 and err.splitlines()[-1] == "taskgraph-images: 2 to build, 0 reused, 2 tasks"
