"""The Engine API client and the image round trip, against a real private dockerd."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard
from dockerd import DockerEngine

from taskgraph_images.builder.local import build_image
from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.context import write_context
from taskgraph_images.errors import ArtifactError, DockerError, DockerUnavailableError, ImageBuildError
from taskgraph_images.images.artifacts import load_image, save_image
from taskgraph_images.images.engine import Engine, parse_json_stream

pytestmark = pytest.mark.docker


def test_missing_socket_says_how_to_start_docker(tmp_path: Path) -> None:
    with pytest.raises(DockerUnavailableError, match="start it"):
        Engine(f"unix://{tmp_path}/nothing.sock").ping()


def test_unsupported_docker_host_is_refused() -> None:
    with pytest.raises(DockerUnavailableError, match="ssh://x"):
        Engine("ssh://x")


def test_json_stream_keeps_the_incomplete_message() -> None:
    assert parse_json_stream('{"a": 1}{"b"') == ([{"a": 1}], '{"b"')


@pytest.fixture(scope="module")
def built(docker_engine: DockerEngine, busybox_repo: Path) -> ImageCatalog:
    """The base (prebuilt), app (in-tree parent) and kinded images, built once."""
    catalog = ImageCatalog.load(busybox_repo)
    build_image(docker_engine.engine, catalog, "kinded")
    return catalog


def test_build_tags_prebuilt_and_task_images(docker_engine: DockerEngine, built: ImageCatalog) -> None:
    engine = docker_engine.engine
    assert engine.exists("tgi-test/base:1.0") and engine.exists("app:latest")


def test_built_image_runs_with_parent_content(docker_engine: DockerEngine, built: ImageCatalog) -> None:
    assert docker_engine.run("app:latest", "/bin/busybox", "sh", "/run.sh") == "base-ok\napp-ok\n"


def test_kind_config_args_and_parent_reach_the_build(
    docker_engine: DockerEngine, built: ImageCatalog
) -> None:
    out = docker_engine.run("kinded:latest", "/bin/busybox", "cat", "/greeting.txt", "/app.txt")
    assert out == "hello-from-args\napp-ok\n"


def test_present_parents_are_reused(docker_engine: DockerEngine, built: ImageCatalog) -> None:
    done = build_image(docker_engine.engine, built, "app")
    assert [(b.name, b.reused) for b in done] == [("base", True), ("app", False)]


def test_failing_run_raises_the_engines_error(
    docker_engine: DockerEngine, built: ImageCatalog
) -> None:
    lines: list[str] = []
    with pytest.raises(ImageBuildError, match="non-zero code: 3"):
        build_image(docker_engine.engine, built, "broken", on_output=lines.append)
    assert "about to fail" in "".join(lines)


def test_docker_cli_accepts_the_context_tarball(
    docker_engine: DockerEngine, built: ImageCatalog, tmp_path: Path
) -> None:
    write_context(built, "app", tmp_path / "ctx.tar.gz")
    with open(tmp_path / "ctx.tar.gz", "rb") as f:
        done = subprocess.run(
            ["docker", "build", "-q", "-t", "cli-built:1", "-"], stdin=f, env=docker_engine.env,
            capture_output=True, text=True, timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert docker_engine.run("cli-built:1", "/bin/busybox", "cat", "/app.txt") == "app-ok\n"


def test_inspect_of_an_unknown_image_is_none(docker_engine: DockerEngine) -> None:
    assert docker_engine.engine.inspect("no-such-image:0") is None


def test_saving_an_unknown_image_is_an_error(docker_engine: DockerEngine, tmp_path: Path) -> None:
    with pytest.raises(DockerError, match="no-such-image"):
        save_image(docker_engine.engine, "no-such-image:0", tmp_path / "x.tar.zst")
    assert os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def saved(
    docker_engine: DockerEngine, built: ImageCatalog, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    folder = tmp_path_factory.mktemp("saved")
    save_image(docker_engine.engine, "app:latest", folder / "app.tar.zst", threads=2)
    return folder / "app.tar.zst"


def test_save_remove_load_retagged_and_run(docker_engine: DockerEngine, saved: Path) -> None:
    engine = docker_engine.engine
    engine.tag("app:latest", "roundtrip:keep")
    engine.remove("roundtrip:keep")
    result = load_image(str(saved), engine=engine, tag="roundtrip/app:v2")
    assert result.messages == ("Loaded image: roundtrip/app:v2",)
    assert docker_engine.run("roundtrip/app:v2", "/bin/busybox", "sh", "/run.sh") == (
        "base-ok\napp-ok\n"
    )


def test_truncated_artifact_loads_nothing(docker_engine: DockerEngine, saved: Path,
                                          tmp_path: Path) -> None:
    (tmp_path / "t.tar.zst").write_bytes(saved.read_bytes()[:-3])
    with pytest.raises(ArtifactError, match="truncated"):
        load_image(str(tmp_path / "t.tar.zst"), engine=docker_engine.engine, tag="trunc:1")
    assert not docker_engine.engine.exists("trunc:1")


def test_tar_cut_at_a_member_boundary_loads_nothing(
    docker_engine: DockerEngine, saved: Path, tmp_path: Path
) -> None:
    with open(saved, "rb") as f:
        plain = zstandard.ZstdDecompressor().stream_reader(f).read()
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        members = tar.getmembers()
    cut = members[-1].offset  # everything before the last member (repositories)
    (tmp_path / "c.tar.zst").write_bytes(zstandard.ZstdCompressor().compress(plain[:cut]))
    with pytest.raises(ArtifactError, match="truncated tar"):
        load_image(str(tmp_path / "c.tar.zst"), engine=docker_engine.engine, tag="cut:1")
    assert not docker_engine.engine.exists("cut:1")


def test_engine_refusing_an_archive_is_a_docker_error(docker_engine: DockerEngine) -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("hello.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(DockerError, match="docker load failed"):
        docker_engine.engine.load([buf.getvalue()])


class _Chunks:
    """Stands in for an HTTP response that returns the given pieces, one per read."""

    def __init__(self, pieces: list[bytes]) -> None:
        self.pieces = list(pieces)

    def read1(self, size: int) -> bytes:
        return self.pieces.pop(0) if self.pieces else b""


def test_progress_messages_survive_a_character_split_between_reads() -> None:
    from taskgraph_images.images.engine import iter_messages

    data = '{"stream": "caf\u00e9 \u2713"}\r\n{"aux": {"ID": "sha256:1"}}\n'.encode()
    cut = data.index(b"\xc3") + 1  # inside the two-byte "é"
    pieces = [data[:cut], data[cut:cut + 5], data[cut + 5:]]
    messages = list(iter_messages(_Chunks(pieces)))  # type: ignore[arg-type]
    assert messages == [{"stream": "caf\u00e9 \u2713"}, {"aux": {"ID": "sha256:1"}}]
