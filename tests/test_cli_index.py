"""``taskgraph-images index ...`` through ``taskgraph_images.cli.main``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from tcserver import TCServer

from taskgraph_images.cli import main
from taskgraph_images.cli._index import add_index_arguments, on_error, open_index
from taskgraph_images.index import LocalIndex, TaskclusterIndex
from taskgraph_images.tc.env import TaskclusterEnv

T1 = "KD5yPlwqQtS7t4ieeFU-mA"


@pytest.fixture(autouse=True)
def _no_taskcluster_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("TASKCLUSTER_ROOT_URL", "TASKCLUSTER_PROXY_URL"):
        monkeypatch.delenv(var, raising=False)


def test_insert_then_find_on_the_local_index(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = f"local:{tmp_path / 'i.sqlite'}"
    assert main(["index", "insert", "a.b", T1, "--rank", "2", "--index", db]) == 0
    capsys.readouterr()
    assert main(["index", "find", "a.b", "--json", "--index", db]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["taskId"] == T1 and json.loads(out)["rank"] == 2
    assert "using the local index at" in err


def test_find_of_an_absent_namespace_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["index", "find", "a.b", "--index", f"local:{tmp_path / 'i.sqlite'}"]) == 1
    assert "no task indexed at a.b" in capsys.readouterr().err


def test_list_prints_one_line_per_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = LocalIndex(tmp_path / "i.sqlite")
    index.insert_task("a.b.one", T1)
    index.insert_task("a.b.c.two", T1)
    assert main(["index", "list", "a.b", "--recursive", "--index", f"local:{index.path}"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("\t")[0] for line in lines] == ["a.b.c.two", "a.b.one"]


def test_insert_with_an_invalid_task_id_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["index", "insert", "a.b", "nope", "--index", f"local:{tmp_path}/i"]) == 1
    err = capsys.readouterr().err
    assert "error: invalid task id 'nope'" in err and err.count("\n") == 2


def test_insert_into_taskcluster_is_refused(
    tc_server: TCServer, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["index", "insert", "a.b", T1, "--index", f"taskcluster:{tc_server.root_url}"]) == 1
    assert "local index only" in capsys.readouterr().err


def test_find_on_taskcluster(tc_server: TCServer, capsys: pytest.CaptureFixture[str]) -> None:
    task_id = tc_server.add_task()
    tc_server.index_task("a.b", task_id)
    assert main(["index", "find", "a.b", "--json", "--index",
                 f"taskcluster:{tc_server.root_url}"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["taskId"] == task_id
    assert f"using the Taskcluster index at {tc_server.root_url}" in err


def test_unreachable_taskcluster_is_a_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on port 9 of the loopback: connections are refused at once.
    rc = main(["index", "find", "a.b", "--index", "taskcluster:http://127.0.0.1:9"])
    assert rc == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("taskgraph-images: error: Taskcluster index service at")


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_index_arguments(parser)
    return parser.parse_args(list(argv))


def test_default_index_is_taskcluster_when_the_root_url_is_set() -> None:
    backend = open_index(_args(), TaskclusterEnv(root_url="https://tc.example.com"))
    assert isinstance(backend, TaskclusterIndex)


def test_default_index_is_local_otherwise(capsys: pytest.CaptureFixture[str]) -> None:
    assert isinstance(open_index(_args(), TaskclusterEnv()), LocalIndex)
    assert "using the local index at" in capsys.readouterr().err


def test_unknown_index_kind_is_an_error() -> None:
    from taskgraph_images.errors import InvalidValueError

    with pytest.raises(InvalidValueError, match="invalid --index 'redis'"):
        open_index(_args("--index", "redis"), {})


def test_on_index_error_maps_to_on_error() -> None:
    assert on_error(_args()) == "raise"
    assert on_error(_args("--on-index-error", "build")) == "build"


def test_find_list_and_insert_print_the_same_line_with_one_date_format(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = f"local:{tmp_path / 'i.sqlite'}"
    expires = "2031-02-03T04:05:06.000Z"
    outputs = []
    for argv in (["insert", "a.b", T1, "--expires", expires], ["find", "a.b"], ["list", "a"],
                 ["list", "a", "--recursive"]):
        assert main(["index", *argv, "--index", db]) == 0
        outputs.append(capsys.readouterr().out)
    line = f"a.b\t{T1}\t{expires}\n"
    assert outputs == [line] * 4


def test_list_json_is_a_list_of_entries(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    index = LocalIndex(tmp_path / "i.sqlite")
    index.insert_task("a.b.one", T1, rank=3)
    assert main(["index", "list", "a.b", "--json", "--index", f"local:{index.path}"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["namespace"] == "a.b.one" and entry["taskId"] == T1 and entry["rank"] == 3
    assert entry["expires"].endswith("Z")


@pytest.mark.parametrize("command", [["find", "a.b"], ["list", "a"], ["insert", "a.b", T1]])
def test_on_index_error_is_refused_by_the_index_commands(
    command: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["index", *command, "--on-index-error", "build"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --on-index-error" in capsys.readouterr().err
