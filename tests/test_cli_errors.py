"""Errors that name the thing: every load error names its artifact, bad roots and options
say what is wrong with them, each in one line on stderr."""

from __future__ import annotations

from pathlib import Path

import pytest
import zstandard
from clirun import error_line, run_cli
from plan_helpers import GECKO
from tcserver import TCServer
from trees import image_tar, tar_of

from taskgraph_images.cli import build_parser, main

# -- load: the file, URL or task id is named ------------------------------------------------


def test_load_of_a_missing_file_says_so_before_any_index(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = run_cli(capsys, "load", "nosuch.tar.zst")
    assert code == 1 and error_line(err) == "nosuch.tar.zst: no such file"


def test_a_three_byte_file_is_said_not_to_be_zstd(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "tiny.tar.zst"
    path.write_bytes(b"abc")
    code, _, err = run_cli(capsys, "load", str(path), "-o", str(tmp_path / "out.tar"))
    assert code == 1
    assert error_line(err) == (f"{path}: not zstd-compressed (it does not start with the zstd magic "
                               "number) and not a tar archive either (3 B)")
    assert not (tmp_path / "out.tar").exists()


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda z: z[:-7], "truncated zstd stream: it ends inside a frame"),
        (lambda z: z[:20] + bytes(b ^ 0x55 for b in z[20:60]) + z[60:], "corrupt zstd"),
    ],
    ids=["truncated", "corrupt"],
)
def test_damaged_zstd_names_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: object, message: str
) -> None:
    path = tmp_path / "bad.tar.zst"
    data = zstandard.ZstdCompressor(write_checksum=True).compress(image_tar())
    path.write_bytes(damage(data))  # type: ignore[operator]
    code, _, err = run_cli(capsys, "load", str(path), "-o", str(tmp_path / "out.tar"))
    assert code == 1 and error_line(err).startswith(f"{path}: ")
    assert message in err


def test_too_large_names_the_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "i.tar"
    path.write_bytes(image_tar())
    code, _, err = run_cli(capsys, "load", str(path), "-o", str(tmp_path / "o.tar"),
                           "--max-size", "1K")
    assert code == 1 and error_line(err).startswith(f"{path}: it decompresses to more than 1.0 KiB")


def test_retagging_a_tar_without_manifest_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "plain.tar"
    path.write_bytes(tar_of({"hello.txt": b"hi"}))
    code, _, err = run_cli(capsys, "load", str(path), "-t", "new:tag", "-o", str(tmp_path / "o.tar"))
    assert code == 1
    assert error_line(err).startswith(f"{path}: nothing to retag as new:tag: the archive has no "
                                      "manifest.json")
    assert not (tmp_path / "o.tar").exists()


def test_a_task_artifact_error_names_the_task(
    tc_server: TCServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKCLUSTER_PROXY_URL", raising=False)
    task_id = tc_server.add_task(artifacts={})
    code, _, err = run_cli(capsys, "load", task_id, "-o", str(tmp_path / "o.tar"),
                           "--root-url", tc_server.root_url, "--index",
                           f"local:{tmp_path / 'i.sqlite'}", "--root", str(GECKO))
    assert code == 1
    assert f"error: public/image.tar.zst of task {task_id}: cannot download " in err
    assert "HTTP 404" in err and err.count("error:") == 1


def test_load_refuses_on_index_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["load", "x.tar.zst", "--on-index-error", "build"])
    assert exit_.value.code == 2
    assert "unrecognized arguments: --on-index-error" in capsys.readouterr().err


def test_load_refuses_compression_without_output(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "i.tar"
    path.write_bytes(image_tar())
    code, _, err = run_cli(capsys, "load", str(path), "--compression", "zstd")
    assert code == 1 and "--compression applies only with --output" in error_line(err)


# -- roots ------------------------------------------------------------------------------------


def test_a_missing_root_is_said_to_be_missing(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "list", "--root", "/nosuch")
    assert code == 1 and error_line(err) == "--root /nosuch does not exist"


def test_a_root_that_is_a_file_is_said_to_be_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "f").write_text("")
    code, _, err = run_cli(capsys, "hash", "--root", str(tmp_path / "f"))
    assert code == 1 and error_line(err) == f"--root {tmp_path / 'f'} is not a folder"


def test_taskgraphs_root_gets_a_hint(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "list", "--root", str(GECKO / "taskcluster"))
    assert code == 1
    assert error_line(err).endswith(
        "--root is the repository root, not taskgraph's taskcluster folder "
        f"(try --root {GECKO})"
    )


# -- build args -------------------------------------------------------------------------------


def test_build_arg_without_a_value_takes_it_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://proxy:3128")
    args = build_parser().parse_args(["build", "app", "--build-arg", "HTTP_PROXY",
                                      "--build-arg", "A=b=c"])
    assert args.build_arg == [("HTTP_PROXY", "http://proxy:3128"), ("A", "b=c")]


def test_build_arg_of_an_unset_variable_is_refused(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("NOPE_NOT_SET", raising=False)
    with pytest.raises(SystemExit) as exit_:
        build_parser().parse_args(["build", "app", "--build-arg", "NOPE_NOT_SET"])
    assert exit_.value.code == 2
    assert "NOPE_NOT_SET is not set in the environment" in capsys.readouterr().err


# -- options that do not apply ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["build", "builder", "--level", "2"], "--level applies only with --record"),
        (["build", "builder", "--index", "local"], "--index applies only with --record"),
        (["plan", "--json", "--wide"], "--wide applies only to the table, not to JSON"),
        (["plan", "-o", "-", "--wide"], "--wide applies only to the table, not to JSON"),
    ],
)
def test_options_that_do_not_apply_are_refused(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run_cli(capsys, *argv, "--root", str(GECKO))
    assert code == 1 and out == "" and error_line(err) == message


def test_build_reads_its_config_without_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The config's run-task and cache-keys shape the context built, so
    # --config applies to every build, not only to --record.
    missing = tmp_path / "missing.yml"
    code, out, err = run_cli(capsys, "build", "builder", "--root", str(GECKO),
                             "--config", str(missing))
    assert code == 1 and out == ""
    assert str(missing) in error_line(err) and "applies only" not in err


@pytest.mark.parametrize("option", [["--level", "1"], ["--index", "local"],
                                    ["--root-url", "http://x"], ["--config", "c.yml"]])
def test_load_of_a_file_refuses_the_lookup_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], option: list[str]
) -> None:
    path = tmp_path / "i.tar"
    path.write_bytes(image_tar())
    code, _, err = run_cli(capsys, "load", str(path), "-o", str(tmp_path / "o.tar"), *option)
    assert code == 1
    assert error_line(err) == f"{option[0]} applies only to a task id or an image name"
    assert not (tmp_path / "o.tar").exists()


def test_a_folder_above_the_repositories_points_at_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """As at this checkout's root: the bundled example is ``--root examples/gecko``."""
    (tmp_path / "examples" / "gecko" / "taskcluster" / "docker").mkdir(parents=True)
    (tmp_path / "docs").mkdir()
    monkeypatch.chdir(tmp_path)
    assert main(["list"]) == 1
    assert capsys.readouterr().err == (
        f"taskgraph-images: error: images folder 'taskcluster/docker' does not exist under "
        f"{tmp_path}; the repositories below it that have one: try --root examples/gecko\n"
    )


# -- run-task and build-in-task: what is missing is named ---------------------------------------
# (outside a task: no Taskcluster or checkout variables, as the lifecycle tests run them)

_TASK_ENV = ("TASKCLUSTER_ROOT_URL", "TASKCLUSTER_PROXY_URL", "TASKCLUSTER_CLIENT_ID",
             "TASKCLUSTER_ACCESS_TOKEN", "GECKO_HEAD_REPOSITORY", "GECKO_HEAD_REV",
             "TASKGRAPH_IMAGES_CONFIG")


def test_run_task_of_a_task_the_queue_does_not_have(
    tc_server: TCServer, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _TASK_ENV:
        monkeypatch.delenv(name, raising=False)
    code, _, err = run_cli(capsys, "run-task", "Hu2sR1YTTbaqAUGxWnzH9A", "--root-url", tc_server.root_url)
    assert code == 1
    assert err.startswith("taskgraph-images: error: cannot fetch task Hu2sR1YTTbaqAUGxWnzH9A "
                          f"from the Queue at {tc_server.root_url}: ")
    assert err.count("\n") == 1


def test_build_in_task_without_a_checkout_or_a_repository(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _TASK_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("IMAGE_NAME", "base")
    monkeypatch.setenv("HASH", "0" * 64)
    code, _, err = run_cli(capsys, "build-in-task")
    assert code == 1
    assert err == ("taskgraph-images: error: no checkout: set GECKO_HEAD_REPOSITORY and "
                   "GECKO_HEAD_REV, or give --checkout DIR\n")
