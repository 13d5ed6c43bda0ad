"""The deterministic tar writer and the streaming tar rewriter (pure, no Docker)."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskgraph_images.errors import ArtifactError
from taskgraph_images.images.tarball import (
    DEFAULT_MTIME,
    Member,
    TarRewriter,
    check_member,
    parse_header,
    write_tar,
)


def _tar(members: dict[str, bytes], *, fmt: int = tarfile.PAX_FORMAT, **links: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name.replace("__", "/"))
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return buf.getvalue()


def _run(data: bytes, rewriter: TarRewriter, step: int = 4096) -> bytes:
    out = bytearray()
    for i in range(0, len(data), step):
        for piece in rewriter.feed(data[i : i + step]):
            out += piece
    out += rewriter.close()
    return bytes(out)


def test_write_tar_sorts_members_and_lists_directories(tmp_path: Path) -> None:
    buf = io.BytesIO()
    write_tar([Member("b/x", "file", data=b"1"), Member("a-b", "file", data=b"2")], buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        names = [m.name for m in tar]
    assert names == ["a-b", "b", "b/x"]


def test_write_tar_normalises_owner_time_and_modes(tmp_path: Path) -> None:
    script = tmp_path / "s"
    script.write_bytes(b"#!/bin/sh\n")
    script.chmod(0o700)
    buf = io.BytesIO()
    write_tar([Member("s", "file", source=str(script), executable=True),
               Member("d/f", "file", data=b""), Member("l", "symlink", link="s")], buf)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tar:
        infos = {m.name: m for m in tar}
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname) for i in infos.values()} == {
        (DEFAULT_MTIME, 0, 0, "", "")
    }
    assert (infos["s"].mode, infos["d"].mode, infos["d/f"].mode) == (0o755, 0o755, 0o644)
    assert infos["l"].issym() and infos["l"].linkname == "s"


def test_write_tar_is_byte_identical_for_equal_input() -> None:
    def one() -> bytes:
        buf = io.BytesIO()
        write_tar([Member("é/long" * 30, "file", data=b"x"), Member("a", "file", data=b"y")], buf)
        return buf.getvalue()

    assert one() == one()


def test_rewriter_without_rewrite_passes_the_archive_through() -> None:
    data = _tar({"a/layer.tar": b"x" * 5000, "manifest.json": b"[]"})
    assert _run(data, TarRewriter(), step=700) == data


@settings(max_examples=40, deadline=None)
@given(
    contents=st.lists(st.binary(max_size=3000), min_size=1, max_size=5),
    step=st.integers(min_value=1, max_value=5000),
    fmt=st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT, tarfile.USTAR_FORMAT]),
)
def test_rewriter_passes_any_chunking_through_unchanged(
    contents: list[bytes], step: int, fmt: int
) -> None:
    data = _tar({"/".join(["d" * 50] * i + [f"f{i}"]): c for i, c in enumerate(contents)}, fmt=fmt)
    assert _run(data, TarRewriter(), step=step) == data


def test_rewriter_replaces_only_the_chosen_member() -> None:
    data = _tar({"x/layer.tar": b"L" * 1000, "manifest.json": b"old"})
    rewriter = TarRewriter(lambda name: (lambda b: b + b"-new" * 200) if name == "manifest.json"
                           else None)
    out = _run(data, rewriter, step=100)
    with tarfile.open(fileobj=io.BytesIO(out)) as tar:
        manifest = tar.extractfile("manifest.json").read()  # type: ignore[union-attr]
        layer = tar.extractfile("x/layer.tar").read()  # type: ignore[union-attr]
    assert (manifest, layer) == (b"old" + b"-new" * 200, b"L" * 1000)
    assert rewriter.rewritten == ["manifest.json"]


def test_rewriter_refuses_a_traversal_member() -> None:
    with pytest.raises(ArtifactError, match=r"'\.\.' component"):
        _run(_tar({"../evil": b"x"}), TarRewriter())


def test_rewriter_refuses_a_symlink_leaving_the_archive() -> None:
    with pytest.raises(ArtifactError, match="symlink leaving"):
        _run(_tar({}, a__link="../../etc/passwd"), TarRewriter())


def test_rewriter_accepts_a_shared_layer_symlink() -> None:
    data = _tar({"b/layer.tar": b"x"}, a__layer="../b/layer.tar")
    assert _run(data, TarRewriter()) == data


def test_rewriter_reports_a_truncated_archive() -> None:
    data = _tar({"a": b"x" * 600, "b": b"y"})
    rewriter = TarRewriter()
    rewriter.feed(data[: 512 * 3])
    with pytest.raises(ArtifactError, match="truncated tar"):
        rewriter.close()


def test_rewriter_withholds_the_end_blocks_until_close() -> None:
    data = _tar({"a": b"x"})
    rewriter = TarRewriter()
    passed = b"".join(bytes(p) for p in rewriter.feed(data))
    assert passed == data[:1024]
    assert rewriter.close() == data[1024:]


def test_rewriter_refuses_data_after_the_end() -> None:
    with pytest.raises(ArtifactError, match="after the tar's end"):
        _run(_tar({"a": b"x"}) + b"garbage", TarRewriter())


def test_parse_header_refuses_a_non_tar_block() -> None:
    with pytest.raises(ArtifactError, match="not a tar archive"):
        parse_header(b"hello".ljust(512, b"\1"))


@pytest.mark.parametrize(
    ("name", "kind", "link"),
    [
        ("/abs", b"0", ""),
        ("a/../../b", b"0", ""),
        ("dev", b"3", ""),
        ("fifo", b"6", ""),
        ("l", b"2", "/etc/passwd"),
        ("a/l", b"2", "../../x"),
        ("h", b"1", "../x"),
        ("s", b"S", ""),
    ],
)
def test_check_member_refuses_unsafe_members(name: str, kind: bytes, link: str) -> None:
    with pytest.raises(ArtifactError, match=repr(name)):
        check_member(name, kind, link)


@pytest.mark.parametrize(
    ("name", "kind", "link"),
    [("a/layer.tar", b"2", "../b/layer.tar"), ("d", b"5", ""), ("h", b"1", "a/b"), ("f", b"0", "")],
)
def test_check_member_accepts_safe_members(name: str, kind: bytes, link: str) -> None:
    check_member(name, kind, link)
