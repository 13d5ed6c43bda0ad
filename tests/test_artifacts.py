"""Artifacts without Docker: retagging, zstd checks, sources, sinks, save failures."""

from __future__ import annotations

import errno
import http.server
import io
import json
import os
import subprocess
import tarfile
import threading
from pathlib import Path
from typing import Any, Iterator, Optional

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st
from trees import docker_save_tar, zst

from taskgraph_images.errors import ArtifactError, DockerError
from taskgraph_images.images.artifacts import load_image, parse_size, save_image, stream_image
from taskgraph_images.images.compression import ZstdFrameChecker, compress_stream
from taskgraph_images.images.retag import retag_index, retag_manifest, retag_repositories
from taskgraph_images.images.sinks import FileSink, NullSink
from taskgraph_images.images.source import HttpReader
from taskgraph_images.images.tarball import Buffer
from taskgraph_images.tc.env import Credentials, TaskclusterEnv


class RecordingSink:
    """A sink that keeps what it got and whether it was finished or aborted."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.finished = False
        self.aborted = False

    def write(self, data: Buffer) -> None:
        self.data += data

    def finish(self) -> list[str]:
        self.finished = True
        return ["done"]

    def abort(self) -> None:
        self.aborted = True


def _members(data: bytes) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


# -- retagging -----------------------------------------------------------------------


def test_retag_manifest_sets_repo_tags() -> None:
    out = json.loads(retag_manifest(b'[{"Config":"c","RepoTags":["a:1","b:2"]}]', "new:3"))
    assert out == [{"Config": "c", "RepoTags": ["new:3"]}]


def test_retag_manifest_refuses_several_images() -> None:
    with pytest.raises(ArtifactError, match="2 images"):
        retag_manifest(b'[{"RepoTags":[]},{"RepoTags":[]}]', "x:1")


def test_retag_repositories_keeps_the_image_id() -> None:
    out = json.loads(retag_repositories(b'{"a":{"1":"abc"}}', "reg:5000/b:2"))
    assert out == {"reg:5000/b": {"2": "abc"}}


def test_retag_index_rewrites_oci_annotations() -> None:
    index = {"manifests": [{"digest": "sha256:1", "annotations": {
        "io.containerd.image.name": "docker.io/library/a:1",
        "org.opencontainers.image.ref.name": "1"}}]}
    out = json.loads(retag_index(json.dumps(index).encode(), "b:2"))
    assert out["manifests"][0]["annotations"] == {
        "io.containerd.image.name": "docker.io/library/b:2",
        "org.opencontainers.image.ref.name": "2",
    }
    assert out["manifests"][0]["digest"] == "sha256:1"


def test_malformed_manifest_is_an_artifact_error() -> None:
    with pytest.raises(ArtifactError, match="manifest.json"):
        retag_manifest(b"{not json", "x:1")


@settings(max_examples=30, deadline=None)
@given(layers=st.lists(st.binary(max_size=20000), min_size=1, max_size=4),
       tag=st.from_regex(r"[a-z][a-z0-9]{0,10}(/[a-z0-9]{1,8})?:[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}",
                         fullmatch=True))
def test_retagging_keeps_every_layer_byte_identical(layers: list[bytes], tag: str) -> None:
    original = docker_save_tar(layers)
    sink = RecordingSink()
    result = stream_image(io.BytesIO(zst(original)), sink, tag=tag)
    before, after = _members(original), _members(bytes(sink.data))
    assert set(before) == set(after)
    changed = {name for name in before if before[name] != after[name]}
    assert changed <= {"manifest.json", "repositories"}
    assert json.loads(after["manifest.json"])[0]["RepoTags"] == [tag]
    assert result.retagged == ("manifest.json", "repositories")


def test_without_a_tag_the_tarball_passes_through_unchanged() -> None:
    original = docker_save_tar([b"a" * 3000])
    sink = RecordingSink()
    stream_image(io.BytesIO(zst(original)), sink)
    assert bytes(sink.data) == original and sink.finished


def test_a_plain_tar_is_accepted() -> None:
    original = docker_save_tar([b"a"])
    sink = RecordingSink()
    assert not stream_image(io.BytesIO(original), sink).compressed
    assert bytes(sink.data) == original


# -- hostile and broken input ---------------------------------------------------------


def test_truncated_zst_is_an_error_and_the_sink_is_aborted() -> None:
    data = zst(docker_save_tar([os.urandom(50000)]))
    sink = RecordingSink()
    with pytest.raises(ArtifactError, match="truncated"):
        stream_image(io.BytesIO(data[:-2]), sink)
    assert sink.aborted and not sink.finished


def test_truncated_zst_never_passes_the_end_of_archive() -> None:
    original = docker_save_tar([os.urandom(50000)])
    sink = RecordingSink()
    with pytest.raises(ArtifactError):
        stream_image(io.BytesIO(zst(original)[:-1]), sink)
    assert len(sink.data) < len(original) - 1023


def test_tar_truncated_at_a_member_boundary_inside_valid_zstd_is_an_error() -> None:
    original = docker_save_tar([b"x" * 1000])
    sink = RecordingSink()
    with pytest.raises(ArtifactError, match="truncated tar"):
        stream_image(io.BytesIO(zst(original[:1024])), sink)
    assert sink.aborted


def test_corrupt_zst_is_an_error() -> None:
    data = bytearray(zst(docker_save_tar([os.urandom(50000)])))
    data[len(data) // 2] ^= 0xFF
    sink = RecordingSink()
    with pytest.raises(ArtifactError):
        stream_image(io.BytesIO(bytes(data)), sink)
    assert sink.aborted


def test_traversal_member_is_refused() -> None:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("../../etc/cron.d/evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    sink = RecordingSink()
    with pytest.raises(ArtifactError, match="path traversal"):
        stream_image(io.BytesIO(zst(buf.getvalue())), sink)
    assert sink.aborted


def test_zstd_bomb_stops_at_the_size_limit() -> None:
    cctx = zstandard.ZstdCompressor(level=19)
    bomb = cctx.compress(b"\0" * (64 << 20))
    assert len(bomb) < 100_000
    sink = RecordingSink()
    with pytest.raises(ArtifactError, match="more than 1.0 MiB"):
        stream_image(io.BytesIO(bomb), sink, max_size=1 << 20)
    assert sink.aborted


def test_garbage_is_not_an_image() -> None:
    with pytest.raises(ArtifactError):
        stream_image(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"nonsense" * 100), RecordingSink())


# -- zstd frame checker ---------------------------------------------------------------


def test_frame_checker_knows_where_every_prefix_ends() -> None:
    data = zst(b"hello" * 1000) + zstandard.ZstdCompressor(write_checksum=False).compress(b"x")
    first = len(zst(b"hello" * 1000))
    for cut in range(len(data) + 1):
        checker = ZstdFrameChecker()
        checker.feed(data[:cut])
        assert checker.complete == (cut in (first, len(data))), cut


def test_frame_checker_follows_skippable_frames_and_cli_output(tmp_path: Path) -> None:
    (tmp_path / "f").write_bytes(os.urandom(300_000) + b"a" * 300_000)
    subprocess.run(["zstd", "-q", "-3", "-T0", str(tmp_path / "f")], check=True)
    checker = ZstdFrameChecker()
    checker.feed(b"\x50\x2a\x4d\x18\x03\x00\x00\x00abc")
    checker.feed((tmp_path / "f.zst").read_bytes())
    assert checker.complete and checker.frames == 1


# -- sizes and progress ---------------------------------------------------------------


@pytest.mark.parametrize(("text", "value"), [("64G", 64 << 30), ("10", 10), ("2MiB", 2 << 20)])
def test_parse_size(text: str, value: int) -> None:
    assert parse_size(text) == value


def test_parse_size_refuses_nonsense() -> None:
    with pytest.raises(ArtifactError, match="'lots'"):
        parse_size("lots")


# -- save -----------------------------------------------------------------------------


class FakeEngine:
    """Stands in for :class:`~taskgraph_images.images.engine.Engine` in save tests."""

    def __init__(self, chunks: list[bytes], fail: Optional[Exception] = None) -> None:
        self.chunks = chunks
        self.fail = fail

    def save(self, name: str) -> Iterator[bytes]:
        yield from self.chunks
        if self.fail is not None:
            raise self.fail


def test_save_writes_a_zst_that_decompresses_to_the_stream(tmp_path: Path) -> None:
    chunks = [os.urandom(100_000), b"z" * 500_000]
    size = save_image(FakeEngine(chunks), "x", tmp_path / "i.tar.zst")  # type: ignore[arg-type]
    assert size == 600_000
    with open(tmp_path / "i.tar.zst", "rb") as f:
        assert zstandard.ZstdDecompressor().stream_reader(f).read() == b"".join(chunks)


def test_save_failure_mid_stream_leaves_no_file(tmp_path: Path) -> None:
    engine = FakeEngine([b"a" * 1000], fail=DockerError("engine broke"))
    with pytest.raises(DockerError):
        save_image(engine, "x", tmp_path / "i.tar.zst")  # type: ignore[arg-type]
    assert os.listdir(tmp_path) == []


class _FullDisk(io.RawIOBase):
    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        raise OSError(errno.ENOSPC, "No space left on device")


def test_compress_stream_reports_a_full_disk() -> None:
    with pytest.raises(OSError, match="No space left"):
        compress_stream([os.urandom(4 << 20)], _FullDisk(), threads=1)  # type: ignore[arg-type]


def test_a_full_disk_at_the_end_of_the_zstd_frame_is_reported() -> None:
    # The frame is held until finish (less than a write's worth): closing it meets the full disk.
    with pytest.raises(OSError, match="No space left"):
        FileSink(_FullDisk(), compression="zstd", threads=1).write_all([b"x" * 100])  # type: ignore[arg-type]


@pytest.fixture
def tiny_tmpfs(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "tiny"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mount)],
                          capture_output=True)
    if done.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (not root?); the injected ENOSPC test covers it")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False)


def test_disk_full_while_saving_removes_the_partial_file(tiny_tmpfs: Path) -> None:
    engine = FakeEngine([os.urandom(1 << 20)])
    with pytest.raises(ArtifactError, match="No space left"):
        save_image(engine, "x", tiny_tmpfs / "i.tar.zst")  # type: ignore[arg-type]
    assert os.listdir(tiny_tmpfs) == []


def test_disk_full_while_a_file_sink_writes_removes_the_partial_file(tiny_tmpfs: Path) -> None:
    with pytest.raises(OSError, match="No space left"):
        FileSink(tiny_tmpfs / "i.tar.zst", threads=1).write_all([os.urandom(1 << 20)])
    assert os.listdir(tiny_tmpfs) == []


# -- load to a file and over HTTP ------------------------------------------------------


def test_load_to_output_writes_the_retagged_tar(tmp_path: Path) -> None:
    (tmp_path / "i.tar.zst").write_bytes(zst(docker_save_tar([b"L" * 5000])))
    result = load_image(str(tmp_path / "i.tar.zst"), tag="n:t", output=tmp_path / "o.tar")
    members = _members((tmp_path / "o.tar").read_bytes())
    assert json.loads(members["manifest.json"])[0]["RepoTags"] == ["n:t"]
    assert result.messages == (f"Wrote {tmp_path / 'o.tar'}",)


def test_load_to_output_of_a_bad_artifact_creates_no_file(tmp_path: Path) -> None:
    (tmp_path / "i.tar.zst").write_bytes(zst(docker_save_tar([os.urandom(9000)]))[:-5])
    with pytest.raises(ArtifactError):
        load_image(str(tmp_path / "i.tar.zst"), output=tmp_path / "o.tar.zst")
    assert sorted(os.listdir(tmp_path)) == ["i.tar.zst"]


def test_load_of_an_unknown_source_says_what_it_tried() -> None:
    with pytest.raises(ArtifactError, match="not a file, a URL, a task id"):
        load_image("no-such-thing", output="/nonexistent/x")


class _Flaky(http.server.BaseHTTPRequestHandler):
    """Serves ``body``; the first ``drops`` GETs break off halfway."""

    body = b""
    drops = 0
    ranges = True
    seen: list[Optional[str]] = []

    def do_GET(self) -> None:
        cls = type(self)
        cls.seen.append(self.headers.get("Range"))
        start = 0
        if cls.ranges and self.headers.get("Range"):
            start = int(self.headers["Range"][6:-1])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(cls.body) - 1}/{len(cls.body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(cls.body) - start))
        self.end_headers()
        data = cls.body[start:]
        if cls.drops:
            cls.drops -= 1
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def flaky_server() -> Iterator[tuple[str, type[_Flaky]]]:
    handler = type("Handler", (_Flaky,), {"seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/image.tar.zst", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.mark.parametrize("ranges", [True, False])
def test_http_download_recovers_from_a_dropped_connection(
    flaky_server: tuple[str, type[_Flaky]], ranges: bool
) -> None:
    url, handler = flaky_server
    handler.body = os.urandom(3 << 20)
    handler.drops = 1
    handler.ranges = ranges
    with HttpReader(url, sleep=lambda s: None) as reader:
        got = b"".join(iter(lambda: reader.read(1 << 16), b""))
    assert got == handler.body
    resumed_at = int((handler.seen[1] or "bytes=0-")[6:-1])
    assert handler.seen[0] is None and 0 < resumed_at <= (3 << 20) // 2


def test_http_download_gives_up_after_the_attempts(flaky_server: tuple[str, type[_Flaky]]) -> None:
    url, handler = flaky_server
    handler.body = os.urandom(100_000)
    handler.drops = 100
    with HttpReader(url, attempts=3, sleep=lambda s: None) as reader, \
            pytest.raises(ArtifactError, match="gave up after 3 attempts"):
        while reader.read():  # each attempt may hand over what arrived before the drop
            pass


def test_load_by_task_id_fetches_the_queue_artifact(tc_server: Any, tmp_path: Path) -> None:
    original = docker_save_tar([b"L" * 5000])
    task_id = tc_server.add_task(artifacts={"public/image.tar.zst": zst(original)})
    tc_server.inject("blob", status=503, count=1)
    load_image(task_id, output=tmp_path / "o.tar", root_url=tc_server.root_url)
    assert (tmp_path / "o.tar").read_bytes() == original


def test_load_by_task_id_of_a_missing_artifact_is_an_error(tc_server: Any, tmp_path: Path) -> None:
    task_id = tc_server.add_task(artifacts={})
    with pytest.raises(ArtifactError, match="HTTP 404"):
        load_image(task_id, output=tmp_path / "o.tar", root_url=tc_server.root_url)


def test_null_sink_counts_bytes() -> None:
    sink = NullSink()
    stream_image(io.BytesIO(zst(docker_save_tar([b"a"]))), sink)
    assert sink.size == len(docker_save_tar([b"a"]))


def test_file_sink_abort_leaves_nothing(tmp_path: Path) -> None:
    sink = FileSink(tmp_path / "x.tar")
    sink.write(b"abc")
    sink.abort()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name, compression", [("x.tar", None), ("x.tar.zst", None),
                                               ("x.bin", "zstd"), ("x.bin", "none")])
def test_file_sink_write_all_writes_every_chunk_and_returns_their_size(
    tmp_path: Path, name: str, compression: Optional[str]
) -> None:
    data = [os.urandom(3000), b"", b"tail" * 100]
    assert FileSink(tmp_path / name, compression=compression).write_all(data) == 3400
    raw = (tmp_path / name).read_bytes()
    if name.endswith(".zst") or compression == "zstd":
        raw = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read()
    assert raw == b"".join(data) and os.listdir(tmp_path) == [name]


def test_file_sink_write_all_to_a_stream_gives_one_checked_zstd_frame() -> None:
    out = io.BytesIO()
    assert FileSink(out, compression="zstd", level=1).write_all([b"a" * 5000]) == 5000
    checker = ZstdFrameChecker()
    checker.feed(out.getvalue())
    assert checker.complete


def test_file_sink_write_all_leaves_nothing_when_the_chunks_fail(tmp_path: Path) -> None:
    def chunks() -> Iterator[bytes]:
        yield b"part"
        raise DockerError("the engine's stream broke")

    with pytest.raises(DockerError, match="stream broke"):
        FileSink(tmp_path / "x.tar.zst").write_all(chunks())
    assert os.listdir(tmp_path) == []


def test_compress_stream_to_a_file_is_valid_for_the_checker_and_the_cli(tmp_path: Path) -> None:
    data = b"text " * (1 << 20) + os.urandom(20 << 20)
    path = tmp_path / "o.zst"
    with open(path, "wb") as f:
        assert compress_stream([data[i:i + (1 << 20)] for i in range(0, len(data), 1 << 20)],
                               f, threads=2) == len(data)
    raw = path.read_bytes()
    checker = ZstdFrameChecker()
    checker.feed(raw)
    assert checker.complete
    assert zstandard.ZstdDecompressor().stream_reader(io.BytesIO(raw)).read() == data
    done = subprocess.run(["zstd", "-t", "-q", str(path)], capture_output=True)
    assert done.returncode == 0, done.stderr


# -- artifacts of a task ---------------------------------------------------------------------


def test_load_by_task_id_inside_a_task_goes_through_the_proxy(tc_server: Any) -> None:
    from taskgraph_images.images.source import open_source

    original = docker_save_tar([b"P" * 1000])
    task_id = tc_server.add_task(artifacts={"public/image.tar.zst": zst(original)})
    env = TaskclusterEnv(root_url="https://tc.invalid", proxy_url=tc_server.root_url,
                         credentials=Credentials("me", "secret"))
    with open_source(task_id, env=env) as raw:
        assert zstandard.ZstdDecompressor().stream_reader(raw).read() == original
