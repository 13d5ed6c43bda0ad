"""``load`` of a hostile image archive: the retag cannot be bypassed, headers are bounded.

An image artifact is published by a build task of the push's level or a
lower one; ``load -t`` must tag exactly what it was asked to, and an archive
of a few KB must not take gigabytes (see ``docs/security.rst``).
"""

from __future__ import annotations

import io
import json
import resource
import tarfile
from pathlib import Path

import pytest
from clirun import error_line, run_cli
from trees import docker_save_tar, tar_of, zst

METADATA = ["manifest.json", "repositories", "index.json"]


def _tar(*infos: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in infos:
            tar.addfile(info, io.BytesIO(data) if data else None)
    return buf.getvalue()


def _file(name: str, data: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name: str, target: str, kind: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, b""


def _load(capsys: pytest.CaptureFixture[str], tmp_path: Path, data: bytes,
          *extra: str) -> tuple[int, str]:
    source = tmp_path / "image.tar.zst"
    source.write_bytes(data)
    out = tmp_path / "out.tar"
    code, _, err = run_cli(capsys, "load", str(source), "-o", str(out), *extra)
    assert not out.exists() or code == 0
    return code, err


# -- metadata members must be regular files (item 6) ------------------------------------------


@pytest.mark.parametrize("name", METADATA)
@pytest.mark.parametrize(("kind", "what"), [(tarfile.SYMTYPE, "a symlink"),
                                            (tarfile.LNKTYPE, "a hard link")])
def test_a_linked_metadata_member_cannot_escape_the_retag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, kind: bytes, what: str,
) -> None:
    theirs = json.dumps([{"Config": "c.json", "RepoTags": ["victim/image:latest"],
                          "Layers": []}]).encode()
    data = zst(_tar(_file("c.json", b"{}"), _file("real.json", theirs),
                    _link(name, "real.json", kind)))
    code, err = _load(capsys, tmp_path, data, "-t", "mine:1")
    assert code == 1
    assert error_line(err).endswith(
        f"tar member '{name}' is {what}: an image archive's metadata must be a regular file"
    )


def test_a_regular_manifest_is_still_retagged(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _load(capsys, tmp_path, zst(docker_save_tar([tar_of({"f": b"x"})])),
                      "-t", "mine:1")
    assert code == 0, err
    with tarfile.open(tmp_path / "out.tar") as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert manifest[0]["RepoTags"] == ["mine:1"]


# -- extended headers (item 7) ------------------------------------------------------------------


def _pax_block(records: bytes) -> bytes:
    info = tarfile.TarInfo("././@PaxHeader")
    info.type, info.size = tarfile.XHDTYPE, len(records)
    pad = -len(records) % 512
    return info.tobuf(tarfile.USTAR_FORMAT) + records + b"\0" * pad


def test_back_to_back_extended_headers_are_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = b"20 comment=xxxxxxxx\n"
    one = _pax_block(record * 50)  # 1.5 KB each
    data = zst(one * 40_000)  # 60 MB of headers for no member
    assert len(data) < 200_000
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    code, err = _load(capsys, tmp_path, data)
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert code == 1
    assert error_line(err).endswith("tar extended headers of one member larger than 1 MiB")
    assert grown_mb < 100


def test_a_global_pax_header_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    info = tarfile.TarInfo("pax_global_header")
    records = b"24 path=../../evil.txt\n"
    info.type, info.size = tarfile.XGLTYPE, len(records)
    data = (info.tobuf(tarfile.USTAR_FORMAT) + records + b"\0" * (-len(records) % 512)
            + _tar(_file("a.txt", b"hello")))
    code, err = _load(capsys, tmp_path, zst(data))
    assert code == 1
    assert error_line(err).endswith("the tar has a global PAX header, which is refused")


# -- a plain tar's real reason (item 12) ---------------------------------------------------------


def test_a_plain_tar_with_a_bad_first_member_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, err = _load(capsys, tmp_path, _tar(_file("a/../../evil.txt", b"evil")))
    assert code == 1
    assert error_line(err).endswith(
        "tar member 'a/../../evil.txt' has a '..' component (path traversal)")


def test_a_deeply_nested_manifest_json_is_one_line_when_retagging(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = zst(_tar(_file("manifest.json", b"[" * 100_000 + b"]" * 100_000)))
    code, err = _load(capsys, tmp_path, data, "-t", "mine:1")
    assert code == 1
    assert error_line(err).endswith("the image archive's manifest.json is refused: nested too deeply")
