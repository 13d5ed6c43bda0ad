"""buildah commands (pure) and running them: failures named, the output stream checked."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskgraph_images._atomic import atomic_output
from taskgraph_images.builder.buildah import Buildah, push_archive, run
from taskgraph_images.errors import ImageBuildError
from taskgraph_images.images.compression import compress_stream

B = Buildah("/s", "/r")
BASE = ["buildah", "--root", "/s", "--runroot", "/r", "--storage-driver", "vfs"]


def test_bud_builds_the_folder_in_chroot_isolation_as_a_docker_format_image() -> None:
    assert B.bud_command("/ctx", "app:latest") == [
        *BASE, "bud", "--isolation", "chroot", "--format", "docker", "--layers=false",
        "--pull=missing", "-t", "app:latest", "-f", "/ctx/Dockerfile", "/ctx"]


@given(st.dictionaries(st.from_regex(r"[A-Z_]{1,8}", fullmatch=True), st.text(max_size=8)))
def test_bud_passes_every_build_arg_once_in_name_order(args: dict[str, str]) -> None:
    cmd = B.bud_command("/c", "x:1", build_args=args)
    given_args = [cmd[i + 1] for i, word in enumerate(cmd) if word == "--build-arg"]
    assert given_args == [f"{k}={args[k]}" for k in sorted(args)]


def test_bud_labels_and_pull_policy() -> None:
    cmd = B.bud_command("/c", "x:1", labels={"b": "2", "a": "1"}, pull="never")
    assert "--pull=never" in cmd
    assert cmd[cmd.index("--label"):cmd.index("--label") + 4] == ["--label", "a=1", "--label", "b=2"]


def test_pull_and_push_go_through_docker_archive() -> None:
    assert B.pull_command("/t/p.tar") == [*BASE, "pull", "--quiet", "docker-archive:/t/p.tar"]
    assert B.push_command("app:latest", "app:latest") == [
        *BASE, "push", "--quiet", "--format", "docker", "app:latest",
        "docker-archive:/dev/stdout:app:latest"]


def test_another_driver_and_executable() -> None:
    b = Buildah("/s", "/r", executable="/opt/buildah", storage_driver="overlay", isolation="oci")
    cmd = b.bud_command("/c", "x:1")
    assert cmd[0] == "/opt/buildah" and cmd[6] == "overlay" and cmd[9] == "oci"


def test_run_returns_the_output_and_streams_it() -> None:
    lines: list[str] = []
    assert run(["sh", "-c", "echo one; echo two >&2"], "saying", on_line=lines.append) == "one\ntwo\n"
    assert lines == ["one\n", "two\n"]


def test_run_names_what_failed_with_the_last_lines() -> None:
    with pytest.raises(ImageBuildError) as e:
        run(["sh", "-c", "echo step 1; echo; echo 'Error: no such image' >&2; exit 125"],
            "building image 'app'")
    assert str(e.value) == "building image 'app' failed (exit 125): step 1 | Error: no such image"


def test_run_of_a_missing_executable() -> None:
    with pytest.raises(ImageBuildError, match=r"^building: cannot run /nonexistent/buildah: "):
        run(["/nonexistent/buildah", "bud"], "building")


def _fake_buildah(tmp_path: Path, script: str) -> Buildah:
    exe = tmp_path / "buildah"
    exe.write_text(f"#!/bin/sh\n{script}\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    return Buildah(str(tmp_path / "s"), str(tmp_path / "r"), executable=str(exe))


def test_push_archive_streams_the_tarball_into_the_consumer(tmp_path: Path) -> None:
    fake = _fake_buildah(tmp_path, 'head -c 3000000 /dev/zero')
    out = tmp_path / "image.tar.zst"
    with atomic_output(out) as f:
        size = push_archive(fake, "app:latest", "app:latest",
                            lambda chunks: compress_stream(chunks, f, level=1))
    assert size == 3_000_000 and 0 < out.stat().st_size < 10_000


def test_a_failing_push_raises_at_the_end_and_nothing_is_written(tmp_path: Path) -> None:
    fake = _fake_buildah(tmp_path, 'head -c 100000 /dev/zero; echo "Error: disk full" >&2; exit 2')
    out = tmp_path / "image.tar.zst"
    with pytest.raises(ImageBuildError) as e, atomic_output(out) as f:
        push_archive(fake, "app:latest", "app:latest",
                     lambda chunks: compress_stream(chunks, f, level=1))
    assert str(e.value) == "saving app:latest failed (exit 2): Error: disk full"
    assert os.listdir(tmp_path) == ["buildah"]


def test_a_consumer_that_stops_kills_buildah(tmp_path: Path) -> None:
    fake = _fake_buildah(tmp_path, 'exec cat /dev/zero')

    def first_chunk_only(chunks: object) -> int:
        next(iter(chunks))  # type: ignore[call-overload]
        raise RuntimeError("consumer gave up")

    with pytest.raises(RuntimeError, match="consumer gave up"):
        push_archive(fake, "x:1", "x:1", first_chunk_only)


def test_push_of_a_missing_executable(tmp_path: Path) -> None:
    b = Buildah("/s", "/r", executable=str(tmp_path / "none"))
    with pytest.raises(ImageBuildError, match=r"^saving x:1: cannot run "):
        push_archive(b, "x:1", "x:1", lambda chunks: 0)
