"""Hostile files in a build context: what ``write_context`` (and the digest) do.

The context *hash* side of each item is tested in ``tests/test_context.py``
(symlinks leaving the root, broken symlinks and loops, FIFOs, sockets,
device files, names with newlines and tabs); a 10 MB Dockerfile in
``tests/test_catalog.py``; ``..`` members and zstd bombs on load in
``tests/test_artifacts.py``, ``tests/test_tarball.py`` and
``tests/test_cli_images.py``. This file covers the same hostile files on the
way out, through ``write_context`` and through a ``# %include``d folder, and
documents what file names with newlines and tabs do to the hash and the tar.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import stat
import tarfile
import threading
from pathlib import Path
from typing import Callable

import pytest
from plan_helpers import NOW, params, seeded_task_ids
from trees import make_tree, seed_context_hash

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.context import hash_context, write_context
from taskgraph_images.errors import ContextError
from taskgraph_images.index import MemoryIndex
from taskgraph_images.plan import plan_images

D = "taskcluster/docker"
APP = f"{D}/app"


def make_repo(root: Path) -> Path:
    """A repository with ``app`` (including ``shared/``) and a prebuilt image builder."""
    return make_tree(root, {
        f"{D}/REGISTRY": "taskcluster\n",
        f"{D}/image_builder/Dockerfile": "FROM debian:12\n",
        f"{D}/image_builder/VERSION": "1.0\n",
        f"{APP}/Dockerfile": "FROM debian:12\n# %include shared\nCOPY . /\n",
        f"{APP}/run.sh": "echo hi\n",
        "shared/lib.sh": "true\n",
    })


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def finishes(call: Callable[[], None], seconds: float = 20) -> BaseException | None:
    """Run ``call`` on a thread; fail the test if it blocks; return what it raised."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
        except BaseException as e:
            outcome.append(e)
        else:
            outcome.append(None)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(seconds)
    if worker.is_alive():
        pytest.fail(f"blocked for more than {seconds} s")
    return outcome[0]


def refuses(repo: Path, tmp_path: Path, match: str) -> None:
    """``write_context`` of ``app`` raises a ContextError matching ``match``, writes nothing."""
    out = tmp_path / "ctx.tar.gz"
    error = finishes(lambda: write_context(ImageCatalog.load(repo), "app", out))
    assert isinstance(error, ContextError), error
    assert len(str(error).splitlines()) == 1 and re.search(match, str(error)), error
    assert sorted(os.listdir(tmp_path)) == ["repo"]


def make_fifo(path: Path) -> None:
    os.mkfifo(path)


def make_socket(path: Path) -> None:
    cwd = os.getcwd()
    os.chdir(path.parent)  # AF_UNIX paths are short: bind relative to the folder
    try:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path.name)
        sock.close()  # the socket file stays
    finally:
        os.chdir(cwd)


def make_device(path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("creating a device node needs root")
    os.mknod(path, 0o600 | stat.S_IFCHR, os.makedev(1, 3))


@pytest.mark.parametrize("where", [APP, "shared"], ids=["image-folder", "included-folder"])
@pytest.mark.parametrize(("make", "kind"), [
    (make_fifo, "a FIFO"), (make_socket, "a socket"), (make_device, "a device"),
], ids=["fifo", "socket", "device"])
def test_write_context_refuses_special_files_without_blocking(
    repo: Path, tmp_path: Path, where: str, make: Callable[[Path], None], kind: str
) -> None:
    make(repo / where / "special")
    refuses(repo, tmp_path, rf"{where}/special in the .* is not a regular file \({kind}")


@pytest.mark.parametrize("where", [APP, "shared"], ids=["image-folder", "included-folder"])
def test_write_context_refuses_a_symlink_loop(repo: Path, tmp_path: Path, where: str) -> None:
    (repo / where / "a").symlink_to("b")
    (repo / where / "b").symlink_to("a")
    refuses(repo, tmp_path, "is a broken symlink")


def test_write_context_refuses_a_symlink_to_a_host_file(repo: Path, tmp_path: Path) -> None:
    (repo / APP / "passwd").symlink_to("/etc/passwd")
    refuses(repo, tmp_path, "passwd")


def test_write_context_refuses_a_symlinked_folder_leaving_the_repository(
    repo: Path, tmp_path: Path
) -> None:
    (repo / APP / "etc").symlink_to("/etc", target_is_directory=True)
    refuses(repo, tmp_path, "etc")


def test_a_plan_with_a_fifo_in_a_context_is_a_context_error_not_a_hang(repo: Path) -> None:
    os.mkfifo(repo / APP / "pipe")

    def plan() -> None:
        plan_images(ImageCatalog.load(repo), params(), MemoryIndex(), task_ids=seeded_task_ids(),
                    now=NOW)

    error = finishes(plan)
    assert isinstance(error, ContextError) and "pipe" in str(error)


# -- names with newlines and tabs -----------------------------------------------------------

ODD = ["tab\there", "both\t", "sub/x\ty", "tab\tfolder/z"]


def test_names_with_tabs_are_kept_verbatim_in_the_tar(repo: Path, tmp_path: Path) -> None:
    for i, name in enumerate(ODD):
        make_tree(repo / APP, {name: f"file {i}\n"})
    write_context(ImageCatalog.load(repo), "app", tmp_path / "ctx.tar")
    with tarfile.open(tmp_path / "ctx.tar") as tar:
        files = {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]
    for i, name in enumerate(ODD):
        assert files[name] == f"file {i}\n".encode()


def test_names_with_tabs_give_the_same_bytes_on_every_checkout(tmp_path: Path) -> None:
    tars = []
    for checkout in ("one", "two"):
        root = make_repo(tmp_path / checkout)
        make_tree(root / APP, {name: name for name in ODD})
        write_context(ImageCatalog.load(root), "app", tmp_path / f"{checkout}.tar")
        tars.append((tmp_path / f"{checkout}.tar").read_bytes())
    assert tars[0] == tars[1]


def test_names_with_tabs_hash_as_the_seed_and_change_the_hash(repo: Path) -> None:
    before = hash_context(repo, APP)
    make_tree(repo / APP, {"tab\tone": "x"})
    after = hash_context(repo, APP)
    assert after == seed_context_hash(str(repo), APP) != before
    os.rename(repo / APP / "tab\tone", repo / APP / "tab\ttwo")
    assert hash_context(repo, APP) not in (before, after)


def test_a_newline_in_a_folder_name_cannot_imitate_a_line_of_the_seed_format(tmp_path: Path) -> None:
    """A line is ``{sha256 of the file}\\t/{path}\\n``. Two files ``app/f`` and
    ``app/g`` give two lines; one file whose *folder* name is
    ``f\\n{sha256 of g}\\t`` and whose path below it repeats ``/.../app/g``
    would give the very same bytes as one line. Names with a newline are
    refused, so the forged tree has no hash at all."""
    f, g = "first\n", b"second\n"
    forged = f"{APP}/f\n{hashlib.sha256(g).hexdigest()}\t/{APP}/g"
    one = make_tree(tmp_path / "one", {forged: f})
    assert [p.is_file() for p in (one / APP).rglob("*")].count(True) == 1
    with pytest.raises(ContextError, match="has a newline in its path"):
        hash_context(one, APP)


@pytest.mark.parametrize("name", ["new\nline", "both\t\n", "sub/x\ny"])
def test_names_with_a_newline_are_refused_by_plan_and_tar(repo: Path, tmp_path: Path, name: str) -> None:
    make_tree(repo / APP, {name: "x"})
    catalog = ImageCatalog.load(repo)
    with pytest.raises(ContextError, match="has a newline in its path"):
        plan_images(catalog, params(), MemoryIndex(), task_ids=seeded_task_ids(), now=NOW)
    with pytest.raises(ContextError, match="has a newline in its path"):
        write_context(catalog, "app", tmp_path / "ctx.tar")
    assert not (tmp_path / "ctx.tar").exists()


# -- a 10 MB Dockerfile -----------------------------------------------------------------------


def test_a_ten_megabyte_dockerfile_plans_and_goes_into_the_tar_unchanged(
    repo: Path, tmp_path: Path
) -> None:
    body = "RUN echo " + "y" * 100 + "\n"
    text = "FROM debian:12\n" + body * (10_000_000 // len(body))
    make_tree(repo / APP, {"Dockerfile": text})
    catalog = ImageCatalog.load(repo)
    plan = plan_images(catalog, params(), MemoryIndex(), task_ids=seeded_task_ids(), now=NOW)
    assert plan["app"].action == "build"
    write_context(catalog, "app", tmp_path / "ctx.tar")
    with tarfile.open(tmp_path / "ctx.tar") as tar:
        member = tar.extractfile("Dockerfile")
        assert member is not None and member.read() == text.encode()
