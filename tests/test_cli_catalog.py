"""The ``list`` and ``hash`` commands, and the CLI's error conventions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from importcheck import modules_added_by
from trees import make_tree, seed_context_hash

from taskgraph_images.cli import main

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "gecko"


def test_list_prints_a_table_with_kind_version_registry_parent_and_digest(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["list", "--root", str(EXAMPLES)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["IMAGE", "KIND", "VERSION", "REGISTRY", "PARENT", "DIGEST"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert rows["base"][:5] == ["base", "prebuilt", "0.1.7", "taskcluster", "-"]
    assert rows["tester"][:5] == ["tester", "task", "-", "taskcluster", "builder"]
    assert len(rows["tester"][5]) == 8


def test_list_json_has_full_hashes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--root", str(EXAMPLES), "--json"]) == 0
    records = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    builder = records["builder"]
    assert builder["context_hash"] == seed_context_hash(str(EXAMPLES), builder["path"])
    assert builder["kind"] == "task" and builder["parent"] == "base"
    assert records["base"]["reference"] == "taskcluster/base:0.1.7"
    assert len(records["tester"]["digest"]) == 64


def test_hash_prints_name_and_context_hash(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash", "--root", str(EXAMPLES), "builder", "base"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        f"builder {seed_context_hash(str(EXAMPLES), 'taskcluster/docker/builder')}",
        f"base {seed_context_hash(str(EXAMPLES), 'taskcluster/docker/base')}",
    ]


def test_hash_without_names_prints_every_image(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash", "--root", str(EXAMPLES)]) == 0
    assert [line.split()[0] for line in capsys.readouterr().out.splitlines()] == [
        "base", "builder", "image_builder", "tester"]


def test_unknown_image_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hash", "--root", str(EXAMPLES), "builder", "nope"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""  # nothing printed for the good name before the bad one
    assert captured.err.count("\n") == 1
    assert captured.err.startswith("taskgraph-images: error: unknown image 'nope'")


def test_missing_images_folder_exits_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["list", "--root", str(tmp_path)]) == 1
    assert "images folder 'taskcluster/docker' does not exist" in capsys.readouterr().err


def test_images_dir_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_tree(tmp_path, {"docker/a/Dockerfile": "FROM scratch\n"})
    assert main(["hash", "--root", str(tmp_path), "--images-dir", "docker"]) == 0
    assert capsys.readouterr().out.startswith("a ")


def test_root_defaults_to_the_enclosing_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    make_tree(tmp_path, {"taskcluster/docker/a/Dockerfile": "FROM scratch\n", ".git/HEAD": ""})
    monkeypatch.chdir(tmp_path / "taskcluster" / "docker")
    assert main(["hash"]) == 0
    assert capsys.readouterr().out.startswith("a ")


def test_usage_errors_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["list", "--no-such-flag"])
    assert e.value.code == 2
    assert main([]) == 2
    assert "a command is required" in capsys.readouterr().err


def test_version_prints_the_distribution_version(capsys: pytest.CaptureFixture[str]) -> None:
    from importlib.metadata import version

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"taskgraph-images {version('taskgraph-images')}\n"


def test_the_console_script_runs_without_a_traceback() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "taskgraph_images", "hash", "--root", "/nonexistent"],
        capture_output=True, text=True, check=False,
    )
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0


def test_import_is_light() -> None:
    heavy = {"attrs", "yaml", "taskcluster", "zstandard", "requests", "typing"}
    assert heavy & modules_added_by("import taskgraph_images") == set()


def test_version_needs_neither_argparse_nor_typing() -> None:
    added = modules_added_by("from taskgraph_images.cli import main; main(['--version'])")
    assert {"argparse", "typing"} & added == set()


def test_public_names_resolve_lazily() -> None:
    import taskgraph_images

    assert taskgraph_images.ImageCatalog.__name__ == "ImageCatalog"
    assert callable(taskgraph_images.submit_plan)
    assert "plan_images" in dir(taskgraph_images)
    assert "hash_context" not in dir(taskgraph_images)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        taskgraph_images.nope  # noqa: B018


def test_version_flag_before_a_command_still_prints_the_version(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["--version", "list", "--root", str(EXAMPLES)]) == 0
    assert capsys.readouterr().out.startswith("taskgraph-images ")


@pytest.mark.parametrize(("raised", "code", "err"), [
    (KeyboardInterrupt, 130, "taskgraph-images: interrupted\n"),
    (BrokenPipeError, 0, ""),  # the reader went away (``| head``)
])
def test_interruptions_end_quietly(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    raised: type[BaseException], code: int, err: str,
) -> None:
    from taskgraph_images.catalog import ImageCatalog

    def interrupted(*args: object, **kwargs: object) -> None:
        raise raised

    monkeypatch.setattr(ImageCatalog, "load", interrupted)
    assert main(["list", "--root", str(EXAMPLES)]) == code
    assert capsys.readouterr().err == err
