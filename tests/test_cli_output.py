"""One output convention: --json where data is printed, -o/--output with - for stdout where a
file is written, the format of an image tarball chosen by its name, the digest one command away."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest
import zstandard
from clirun import run_cli
from plan_helpers import GECKO
from trees import image_tar

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.cli import main
from taskgraph_images.context import write_context
from taskgraph_images.plan import Plan

# -- the digest and the seed hash -----------------------------------------------------------


def test_digest_of_one_image_prints_the_digest_alone(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "digest", "builder", "--root", str(GECKO))
    assert code == 0 and out == ImageCatalog.load(GECKO).digest("builder") + "\n"


def test_digest_of_several_images_names_each(capsys: pytest.CaptureFixture[str]) -> None:
    catalog = ImageCatalog.load(GECKO)
    code, out, _ = run_cli(capsys, "digest", "--root", str(GECKO))
    assert code == 0
    assert out.splitlines() == [f"{n} {catalog.digest(n)}" for n in catalog.names()]


@pytest.mark.parametrize(("command", "method"), [("hash", "context_hash"), ("digest", "digest")])
def test_hash_and_digest_json(
    capsys: pytest.CaptureFixture[str], command: str, method: str
) -> None:
    catalog = ImageCatalog.load(GECKO)
    code, out, _ = run_cli(capsys, command, "--json", "builder", "base", "--root", str(GECKO))
    assert code == 0
    assert json.loads(out) == {n: getattr(catalog, method)(n) for n in ("builder", "base")}


def test_digest_of_an_unknown_image_prints_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "digest", "builder", "nope", "--root", str(GECKO))
    assert code == 1 and out == "" and "unknown image 'nope'" in err


# -- -o - ---------------------------------------------------------------------------------------


def test_context_to_stdout_is_the_plain_tar(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    assert main(["context", "builder", "-o", "-", "--root", str(GECKO)]) == 0
    out = capsysbinary.readouterr().out
    write_context(ImageCatalog.load(GECKO), "builder", tmp_path / "c.tar")
    assert out == (tmp_path / "c.tar").read_bytes()
    assert not Path("-").exists()


def test_load_to_stdout_writes_the_retagged_tar(
    capsysbinary: pytest.CaptureFixture[bytes], tmp_path: Path
) -> None:
    src = tmp_path / "i.tar.zst"
    src.write_bytes(zstandard.ZstdCompressor().compress(image_tar()))
    assert main(["load", str(src), "-t", "new:2", "-o", "-"]) == 0
    captured = capsysbinary.readouterr()
    with tarfile.open(fileobj=io.BytesIO(captured.out)) as tar:
        f = tar.extractfile("manifest.json")
        assert f is not None and json.load(f)[0]["RepoTags"] == ["new:2"]
    assert b"Wrote stdout" in captured.err


@pytest.mark.parametrize(("name", "compressed"), [("o.tar", False), ("o.tar.zst", True)])
def test_load_output_format_follows_the_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, compressed: bool
) -> None:
    src = tmp_path / "i.tar"
    src.write_bytes(image_tar())
    code, _, _ = run_cli(capsys, "load", str(src), "-o", str(tmp_path / name))
    data = (tmp_path / name).read_bytes()
    assert code == 0 and data.startswith(b"\x28\xb5\x2f\xfd") == compressed


def test_load_output_with_an_unknown_suffix_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "i.tar"
    src.write_bytes(image_tar())
    code, _, err = run_cli(capsys, "load", str(src), "-o", str(tmp_path / "o.img"))
    assert code == 1 and "cannot tell the format of" in err and "o.img" in err
    assert not (tmp_path / "o.img").exists()


def test_save_with_an_unknown_suffix_is_refused_before_the_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    code, _, err = run_cli(capsys, "save", "app:latest", "-o", str(tmp_path / "image.gz"))
    assert code == 1 and err.count("\n") == 1
    assert "cannot tell the format of" in err and "use .tar (plain) or .tar.zst" in err


def test_binary_output_to_a_terminal_is_refused(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdout.isatty", lambda: True)
    code, _, err = run_cli(capsys, "context", "builder", "-o", "-", "--root", str(GECKO))
    assert code == 1 and "refusing to write binary data to a terminal" in err


def test_plan_output_to_stdout_is_the_plan_alone(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, out, _ = run_cli(capsys, "plan", "-q", "--root", str(GECKO), "-o", "-",
                           "--index", f"local:{tmp_path / 'i.sqlite'}")
    assert code == 0 and set(Plan.from_json(out).decisions) == {
        "base", "builder", "image_builder", "tester"}


def test_plan_table_and_wide(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    index = f"local:{tmp_path / 'i.sqlite'}"
    _, narrow, _ = run_cli(capsys, "plan", "-q", "--root", str(GECKO), "--index", index)
    _, wide, _ = run_cli(capsys, "plan", "-q", "--wide", "--root", str(GECKO), "--index", index)
    digest = ImageCatalog.load(GECKO).digest("builder")
    assert max(map(len, narrow.splitlines())) <= 80 and digest not in narrow
    assert digest[:8] in narrow and digest in wide


def test_quiet_keeps_stdout_and_drops_the_notes(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    argv = ["plan", "--json", "--root", str(GECKO), "--index", f"local:{tmp_path / 'i.sqlite'}"]
    _, out, err = run_cli(capsys, *argv)
    _, quiet_out, quiet_err = run_cli(capsys, *argv, "-q")
    assert "guessed the decision parameters" in err and "using the local index" in err
    assert quiet_err == "" and Plan.from_json(quiet_out).decisions.keys() == Plan.from_json(
        out).decisions.keys()


@pytest.mark.parametrize(
    ("name", "code", "compressed"),
    [("o.img", 0, True), ("o.tar", 1, False)],
    ids=["name-says-nothing", "name-contradicts"],
)
def test_compression_decides_only_where_the_name_says_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, code: int,
    compressed: bool,
) -> None:
    src = tmp_path / "i.tar"
    src.write_bytes(image_tar())
    got, _, err = run_cli(capsys, "load", str(src), "-o", str(tmp_path / name),
                          "--compression", "zstd")
    assert got == code
    if compressed:
        assert (tmp_path / name).read_bytes().startswith(b"\x28\xb5\x2f\xfd")
    else:
        assert "--compression zstd contradicts the name" in err
        assert not (tmp_path / name).exists()


def test_load_json_says_what_was_loaded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "i.tar"
    src.write_bytes(image_tar())
    code, out, _ = run_cli(capsys, "load", str(src), "-t", "n:1", "-o", str(tmp_path / "o.tar"),
                           "--json")
    assert code == 0 and json.loads(out) == {
        "messages": [f"Wrote {tmp_path / 'o.tar'}"], "compressed": False,
        "size": len(image_tar()), "retagged": ["manifest.json", "repositories"]}


def test_load_json_with_the_tar_on_stdout_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "i.tar"
    src.write_bytes(image_tar())
    code, out, err = run_cli(capsys, "load", str(src), "-o", "-", "--json")
    assert code == 1 and out == "" and "--json cannot go with -o -" in err
