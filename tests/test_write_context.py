"""write_context: the deterministic build-context tarball."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest
import zstandard

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.context import write_context
from taskgraph_images.errors import ContextError

DATA = Path(__file__).resolve().parent / "data" / "images_e2e"


def _repo(tmp_path: Path, name: str = "repo") -> Path:
    root = tmp_path / name
    shutil.copytree(DATA, root)
    (root / "taskcluster" / "docker" / "base" / "busybox").write_bytes(b"\x7fELF fake")
    return root


def _members(path: Path) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(path) as tar:
        return {m.name: m for m in tar.getmembers()}


def test_two_checkouts_give_identical_bytes(tmp_path: Path) -> None:
    a, b = _repo(tmp_path, "a"), _repo(tmp_path, "b")
    os.utime(b / "scripts" / "hello.sh", (1, 1))
    (b / "taskcluster" / "docker" / "app" / "Dockerfile").chmod(0o600)
    for root in (a, b):
        write_context(ImageCatalog.load(root), "app", root / "ctx.tar")
    assert (a / "ctx.tar").read_bytes() == (b / "ctx.tar").read_bytes()


def test_includes_go_under_topsrcdir_and_folder_files_at_the_top(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    write_context(ImageCatalog.load(root), "app", tmp_path / "c.tar")
    assert list(_members(tmp_path / "c.tar")) == [
        "Dockerfile", "run.sh", "topsrcdir", "topsrcdir/scripts", "topsrcdir/scripts/hello.sh",
    ]


def test_executable_bit_is_kept(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    write_context(ImageCatalog.load(root), "app", tmp_path / "c.tar")
    members = _members(tmp_path / "c.tar")
    assert (members["run.sh"].mode, members["Dockerfile"].mode) == (0o755, 0o644)


def test_dockerfile_has_the_kind_config_args_applied(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    write_context(ImageCatalog.load(root), "kinded", tmp_path / "c.tar")
    with tarfile.open(tmp_path / "c.tar") as tar:
        text = tar.extractfile("Dockerfile").read().decode()  # type: ignore[union-attr]
    assert "echo hello-from-args" in text
    assert "# %ARG" not in text


def test_gzip_output_has_no_name_and_mtime_zero(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    write_context(ImageCatalog.load(root), "app", tmp_path / "c.tar.gz")
    raw = (tmp_path / "c.tar.gz").read_bytes()
    assert raw[3] & 0x08 == 0  # no FNAME
    assert raw[4:8] == b"\0\0\0\0"  # MTIME 0
    write_context(ImageCatalog.load(root), "app", tmp_path / "c.tar")
    assert gzip.decompress(raw) == (tmp_path / "c.tar").read_bytes()


def test_zstd_output_holds_the_same_tar(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    write_context(ImageCatalog.load(root), "app", tmp_path / "c.tar.zst")
    write_context(ImageCatalog.load(root), "app", tmp_path / "c.tar")
    with open(tmp_path / "c.tar.zst", "rb") as f:
        plain = zstandard.ZstdDecompressor().stream_reader(f).read()
    assert plain == (tmp_path / "c.tar").read_bytes()


def test_compression_argument_overrides_the_suffix(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    write_context(ImageCatalog.load(root), "app", tmp_path / "c.bin", compression="gzip")
    assert (tmp_path / "c.bin").read_bytes()[:2] == b"\x1f\x8b"


def test_file_object_output_is_a_plain_tar(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    buf = io.BytesIO()
    write_context(ImageCatalog.load(root), "app", buf)
    write_context(ImageCatalog.load(root), "app", tmp_path / "c.tar")
    assert buf.getvalue() == (tmp_path / "c.tar").read_bytes()


def test_unknown_suffix_is_refused(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    with pytest.raises(ContextError, match="c.zip"):
        write_context(ImageCatalog.load(root), "app", tmp_path / "c.zip")


def test_symlink_inside_the_context_is_stored_as_a_link(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / "taskcluster" / "docker" / "app" / "alias.sh").symlink_to("run.sh")
    write_context(ImageCatalog.load(root), "app", tmp_path / "c.tar")
    member = _members(tmp_path / "c.tar")["alias.sh"]
    assert member.issym() and member.linkname == "run.sh"


def test_symlink_leaving_the_context_is_refused(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / "taskcluster" / "docker" / "app" / "escape").symlink_to("../../../scripts/hello.sh")
    with pytest.raises(ContextError, match="leaves the build context"):
        write_context(ImageCatalog.load(root), "app", tmp_path / "c.tar")
    assert not (tmp_path / "c.tar").exists()


def test_a_failed_write_leaves_no_file(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    (root / "taskcluster" / "docker" / "app" / "escape").symlink_to("../base/Dockerfile")
    with pytest.raises(ContextError):
        write_context(ImageCatalog.load(root), "app", tmp_path / "c.tar.gz")
    assert os.listdir(tmp_path) == ["repo"]
