"""Progress of save, load and build off a terminal: a line every interval with the bytes, the
rate and the percentage when the total is known; nothing reads ``0 B at 0 B/s``.

Slow streams are faked where the engine adds nothing (the bytes pass through the same
compression and tar layers); the real engine shows what a person sees end to end.
"""

from __future__ import annotations

import io
import re
import time
from pathlib import Path
from typing import Iterator

import pytest
import zstandard
from dockerd import DockerEngine
from trees import image_tar

from taskgraph_images.cli import main
from taskgraph_images.cli._report import ConsoleReporter
from taskgraph_images.images.artifacts import save_image, stream_image
from taskgraph_images.images.sinks import NullSink
from taskgraph_images.progress import format_size

LINE = re.compile(r"taskgraph-images: (saving|loading) .+: [\d.]+ (B|KiB|MiB)( of .+ \(\d+%\))? "
                  r"at [\d.]+ (B|KiB|MiB)/s")


class SlowEngine:
    """Yields ``docker save`` chunks slowly, as a big image does."""

    def __init__(self, chunks: int, pause: float) -> None:
        self.chunks = chunks
        self.pause = pause

    def save(self, name: str) -> Iterator[bytes]:
        for _ in range(self.chunks):
            time.sleep(self.pause)
            yield b"\0" * 65536


class SlowReader:
    """A file read slowly, as a download is."""

    def __init__(self, data: bytes, pause: float) -> None:
        self._f = io.BytesIO(data)
        self.total = len(data)
        self.pause = pause

    def read(self, n: int = -1) -> bytes:
        time.sleep(self.pause)
        return self._f.read(min(n, 4096) if n > 0 else 4096)

    def close(self) -> None:
        self._f.close()


def test_save_off_a_terminal_prints_a_line_every_interval(tmp_path: Path) -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(out, tty=False, log_interval=0.2)
    save_image(SlowEngine(12, 0.05), "big:1", tmp_path / "i.tar.zst",  # type: ignore[arg-type]
               reporter=reporter)
    lines = out.getvalue().splitlines()
    assert len(lines) >= 3 and all(LINE.match(line) for line in lines[:-1]), lines
    assert lines[-1].startswith("taskgraph-images: saving big:1: 768.0 KiB in ")


def test_load_off_a_terminal_gives_the_percentage(tmp_path: Path) -> None:
    data = zstandard.ZstdCompressor().compress(image_tar() + b"\0" * 60000)
    out = io.StringIO()
    reporter = ConsoleReporter(out, tty=False, log_interval=0.1)
    stream_image(SlowReader(data, 0.05), NullSink(), reporter=reporter,  # type: ignore[arg-type]
                 name="i.tar.zst")
    lines = out.getvalue().splitlines()
    assert lines and all("%)" in line for line in lines), lines
    assert lines[-1].startswith(f"taskgraph-images: loading i.tar.zst: {len(data)} B of "
                                f"{len(data)} B (100%) in ")


def test_a_quick_transfer_prints_nothing_by_default(tmp_path: Path) -> None:
    out = io.StringIO()
    save_image(SlowEngine(2, 0), "x:1", tmp_path / "i.tar",  # type: ignore[arg-type]
               reporter=ConsoleReporter(out, tty=False), compression="none")
    assert out.getvalue() == ""
    assert (tmp_path / "i.tar").read_bytes() == b"\0" * 131072


@pytest.fixture
def app_built(
    docker_engine: DockerEngine, busybox_repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine has app:latest, built by the CLI (DOCKER_HOST points at the engine)."""
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    assert main(["build", "app", "--root", str(busybox_repo)]) == 0


@pytest.mark.docker
def test_save_and_load_with_the_engine(
    docker_engine: DockerEngine, busybox_repo: Path, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", docker_engine.host)
    assert main(["build", "app", "--root", str(busybox_repo), "--no-cache"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"building app:latest: sending context \([\d.]+ (B|KiB)\)", err)

    assert main(["save", "app:latest", "-v", "-o", str(tmp_path / "i.tar.zst")]) == 0
    err = capsys.readouterr().err
    assert "0 B at" not in err
    assert re.search(r"saving app:latest: [\d.]+ MiB in [\d.]+ s\n", err)
    written = format_size((tmp_path / "i.tar.zst").stat().st_size)
    # The image's size, then the file's: what the compression saved.
    assert re.search(rf"saved app:latest to .*i\.tar\.zst: [\d.]+ MiB, {re.escape(written)} "
                     r"zstd-compressed \(\d+%\)\n", err)

    assert main(["load", "-v", str(tmp_path / "i.tar.zst"), "-t", "prog/app:1"]) == 0
    out, err = capsys.readouterr()
    assert out == "Loaded image: prog/app:1\n"
    assert re.search(r"loading .*i\.tar\.zst: ([\d.]+ \w+) of \1 \(100%\) in ", err)


@pytest.mark.docker
@pytest.mark.usefixtures("app_built")
def test_save_chooses_the_format_by_the_name_and_streams_to_stdout(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    assert main(["save", "app:latest", "-o", str(tmp_path / "plain.tar")]) == 0
    plain = (tmp_path / "plain.tar").read_bytes()
    assert not plain.startswith(b"\x28\xb5\x2f\xfd") and b"manifest.json" in plain
    assert capsysbinary.readouterr().err.decode().endswith(
        f"saved app:latest to {tmp_path / 'plain.tar'}: {format_size(len(plain))}, a plain tar\n")
    assert main(["save", "app:latest", "-o", "-"]) == 0
    streamed, err = capsysbinary.readouterr()
    assert f"saved app:latest to stdout: {format_size(len(plain))}, " \
        f"{format_size(len(streamed))} zstd-compressed (" in err.decode()
    assert zstandard.ZstdDecompressor().decompressobj().decompress(streamed) == plain
    assert not Path("-").exists()


class SlowEngineLoad(NullSink):
    """An engine that takes its time to answer once the whole image is sent."""

    finish_waits_for = ("the Docker engine", "load")

    def finish(self) -> list[str]:
        time.sleep(0.35)
        return ["Loaded image: x:1"]


def test_a_slow_answer_after_the_upload_says_what_it_waits_for() -> None:
    out = io.StringIO()
    reporter = ConsoleReporter(out, tty=False)
    reporter.report_after = 0.1
    data = zstandard.ZstdCompressor().compress(image_tar())
    result = stream_image(io.BytesIO(data), SlowEngineLoad(), name="i.tar.zst",
                          reporter=reporter)
    lines = out.getvalue().splitlines()
    assert result.messages == ("Loaded image: x:1",)
    assert len(lines) >= 2 and all(
        re.fullmatch(r"taskgraph-images: waiting for the Docker engine \(load\)\.\.\. "
                     r"0 s so far", line) for line in lines)


@pytest.mark.docker
@pytest.mark.usefixtures("app_built")
def test_build_json_is_what_was_built_with_the_log_on_stderr(
    busybox_repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    capsys.readouterr()
    assert main(["build", "app", "--json", "--root", str(busybox_repo)]) == 0
    out, err = capsys.readouterr()
    records = json.loads(out)
    assert [r["name"] for r in records][-1] == "app" and records[-1]["tag"] == "app:latest"
    assert records[-1]["image_id"].startswith("sha256:") and "sending context" in err
