"""What an image's context holds: run-task files, the written Dockerfile, includes.

Each test names the defect of issue 14 it guards against.
"""

from __future__ import annotations

import io
import os
import re
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.context import write_context
from taskgraph_images.errors import ContextError, DockerfileError

D = "taskcluster/docker"
KIND = "taskcluster/kinds/docker-image/kind.yml"
RUN_TASK_FILES = ("run-task", "fetch-content", "hgrc", "robustcheckout.py")


def _run_task_folder(root: Path, marker: str = "v1") -> str:
    make_tree(root, {f"tools/rt/{n}": f"#!{n} {marker}\n" for n in RUN_TASK_FILES})
    return "tools/rt"


def _members(catalog: ImageCatalog, name: str) -> dict[str, bytes]:
    buf = io.BytesIO()
    write_context(catalog, name, buf)
    buf.seek(0)
    with tarfile.open(fileobj=buf) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar if m.isfile()}  # type: ignore[union-attr]


# -- # %include-run-task ------------------------------------------------------------


def test_run_task_files_join_the_context_and_the_dockerfile_gets_the_copy_lines(
        tmp_path: Path) -> None:
    folder = _run_task_folder(tmp_path)
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n# %include-run-task\nRUN true\n"})
    members = _members(ImageCatalog.load(tmp_path, run_task=folder), "a")
    assert {n for n in members if n.startswith("run-task/")} == {
        f"run-task/{n}" for n in RUN_TASK_FILES}
    assert members["run-task/hgrc"] == b"#!hgrc v1\n"
    assert members["Dockerfile"].decode() == (
        "FROM scratch\n# %include-run-task\n"
        "COPY run-task/run-task /usr/local/bin/run-task\n"
        "COPY run-task/fetch-content /usr/local/bin/fetch-content\n"
        "COPY run-task/robustcheckout.py /usr/local/mercurial/robustcheckout.py\n"
        "COPY run-task/hgrc /etc/mercurial/hgrc.d/mozilla.rc\n"
        "RUN true\n")


def test_changing_the_run_task_script_changes_the_digest(tmp_path: Path) -> None:
    # The defect: the directive was taken for a comment, and a stale image was reused.
    folder = _run_task_folder(tmp_path)
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n# %include-run-task\n"})
    before = ImageCatalog.load(tmp_path, run_task=folder).digest("a")
    (tmp_path / folder / "run-task").write_text("#!run-task v2\n")
    after = ImageCatalog.load(tmp_path, run_task=folder).digest("a")
    assert before != after
    assert before != ImageCatalog.load(tmp_path, run_task=folder).context_hash("a")


def test_run_task_files_come_from_the_installed_taskgraph_by_default(tmp_path: Path) -> None:
    docker = pytest.importorskip("taskgraph.util.docker")
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n# %include-run-task\n"})
    context = ImageCatalog.load(tmp_path).context("a")
    assert dict(context.run_task) == docker.RUN_TASK_FILES


def test_run_task_without_taskgraph_says_to_install_it_only_for_the_image_that_needs_it(
        tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n\n# %include-run-task\n",
                         f"{D}/b/Dockerfile": "FROM scratch\n"})
    # taskgraph made unimportable: what a user without it sees.
    code = (
        "import sys; sys.modules['taskgraph'] = None\n"
        "from taskgraph_images.cli import main\n"
        "sys.exit(main(['digest', sys.argv[2], '--root', sys.argv[1]]))\n"
    )

    def digest(name: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", code, str(tmp_path), name],
                              capture_output=True, text=True, check=False)

    done = digest("b")
    assert done.returncode == 0 and re.fullmatch(r"[0-9a-f]{64}\n", done.stdout)
    done = digest("a")
    assert done.returncode == 1 and done.stderr.count("\n") == 1
    assert done.stderr == (
        f"taskgraph-images: error: {D}/a/Dockerfile:3: '# %include-run-task' needs taskgraph's "
        "run-task files: pip install 'taskgraph-images[taskgraph]' (or add the line "
        "`run-task: FOLDER` to taskcluster/taskgraph-images.yml)\n"
    )


def test_a_run_task_folder_missing_a_file_is_named(tmp_path: Path) -> None:
    folder = _run_task_folder(tmp_path)
    os.unlink(tmp_path / folder / "hgrc")
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n# %include-run-task\n"})
    with pytest.raises(DockerfileError, match=r"a/Dockerfile:2: .*tools/rt has no file hgrc"):
        ImageCatalog.load(tmp_path, run_task=folder)


@pytest.mark.parametrize("line", ["# %include-runtask", "# %includes foo", "# %arg X",
                                  "# %copy a b", "# %"])
def test_an_unknown_directive_is_an_error(tmp_path: Path, line: str) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": f"FROM scratch\n{line}\n"})
    with pytest.raises(DockerfileError, match=r"a/Dockerfile:2: unknown directive"):
        ImageCatalog.load(tmp_path)


@pytest.mark.parametrize("line", ["  # %include-run-task", "\t# %ARG A", " # %include x"])
def test_an_indented_directive_is_an_error(tmp_path: Path, line: str) -> None:
    # taskgraph reads directives only at the start of a line: refuse what the tools would
    # read differently.
    make_tree(tmp_path, {f"{D}/a/Dockerfile": f"FROM scratch\n{line}\n"})
    with pytest.raises(DockerfileError, match=r"a/Dockerfile:2: a '# %' directive must start"):
        ImageCatalog.load(tmp_path)


def test_plain_comments_are_not_directives(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n# 100% fine\n#%not one\n"})
    assert ImageCatalog.load(tmp_path).names() == ["a"]


# -- FROM $DOCKER_IMAGE_PARENT in the written Dockerfile ------------------------------


@pytest.mark.parametrize("spelling", ["$DOCKER_IMAGE_PARENT", "${DOCKER_IMAGE_PARENT}"])
def test_the_written_dockerfile_names_the_parents_tag(tmp_path: Path, spelling: str) -> None:
    make_tree(tmp_path, {f"{D}/p/Dockerfile": "FROM scratch\n",
                         f"{D}/c/Dockerfile": f"FROM {spelling} AS build\nRUN echo {spelling}\n",
                         KIND: "tasks:\n  p: {}\n  c: {parent: p}\n"})
    written = _members(ImageCatalog.load(tmp_path), "c")["Dockerfile"].decode()
    # Only FROM lines: the variable elsewhere is the build's business.
    assert written == f"FROM p:latest AS build\nRUN echo {spelling}\n"


def test_a_prebuilt_parent_is_named_by_its_registry_tag(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/p/Dockerfile": "FROM scratch\n", f"{D}/p/VERSION": "1.2\n",
                         f"{D}/p/REGISTRY": "example\n",
                         f"{D}/c/Dockerfile": "FROM $DOCKER_IMAGE_PARENT\n",
                         KIND: "tasks:\n  p: {}\n  c: {parent: p}\n"})
    assert _members(ImageCatalog.load(tmp_path), "c")["Dockerfile"] == b"FROM example/p:1.2\n"


# -- bare FROM of the image's own folder ------------------------------------------------


def test_a_bare_from_naming_the_own_folder_is_a_registry_image(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/hello-world/Dockerfile": "FROM hello-world\n",
                         f"{D}/b/Dockerfile": "FROM hello-world\n"})
    catalog = ImageCatalog.load(tmp_path)
    assert catalog["hello-world"].parents == ()
    assert catalog["b"].parents == ("hello-world",)  # another folder's FROM still finds it
    assert catalog.order() == ["hello-world", "b"]


# -- __pycache__ --------------------------------------------------------------------------


def test_pycache_in_included_folders_is_skipped(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n# %include lib\n",
                         "lib/mod.py": "x = 1\n"})
    before = ImageCatalog.load(tmp_path).digest("a")
    make_tree(tmp_path, {"lib/__pycache__/mod.cpython-311.pyc": b"\x00bytecode",
                         "lib/sub/__pycache__/x.pyc": b"\x01"})
    catalog = ImageCatalog.load(tmp_path)
    assert catalog.digest("a") == before
    assert [f.relpath for f in catalog.include_files("a")] == ["lib/mod.py"]
    assert "topsrcdir/lib/__pycache__/mod.cpython-311.pyc" not in _members(catalog, "a")


def test_pycache_in_the_image_folder_keeps_the_seed_rule(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n"})
    before = ImageCatalog.load(tmp_path).digest("a")
    make_tree(tmp_path, {f"{D}/a/__pycache__/x.pyc": b"\x00"})
    assert ImageCatalog.load(tmp_path).digest("a") != before


# -- # %include of something that is not a file or a folder --------------------------------


def _load_in_thread(root: Path) -> BaseException:
    """Load the catalog on a thread; a hang fails the test instead of blocking it."""
    result: list[BaseException] = []

    def load() -> None:
        try:
            ImageCatalog.load(root).digest("a")
        except BaseException as e:  # handed back to the test
            result.append(e)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(20)
    assert not thread.is_alive(), "loading the catalog hangs"
    assert result, "loading the catalog did not fail"
    return result[0]


def test_an_include_of_a_fifo_is_refused_without_hanging(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n# %include pipe\n"})
    os.mkfifo(tmp_path / "pipe")
    error = _load_in_thread(tmp_path)
    assert isinstance(error, DockerfileError)
    assert str(error) == f"{D}/a/Dockerfile:2: '# %include pipe' is a FIFO: include a " \
        "regular file or a folder"


def test_an_include_of_a_device_file_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n# %include zero\n"})
    try:
        os.mknod(tmp_path / "zero", 0o600 | 0o020000, os.makedev(1, 5))  # /dev/zero
    except PermissionError:
        pytest.skip("creating a device file needs root")
    error = _load_in_thread(tmp_path)
    assert isinstance(error, DockerfileError) and "is a device file" in str(error)


def test_an_include_of_a_socket_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n# %include s\n"})
    here = os.getcwd()
    os.chdir(tmp_path)  # a socket's path must be short
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("s")
            error = _load_in_thread(tmp_path)
    finally:
        os.chdir(here)
    assert isinstance(error, DockerfileError) and "is a socket" in str(error)


def test_an_include_that_became_a_fifo_after_loading_is_refused_without_hanging(
        tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n# %include pipe\n", "pipe": "x"})
    catalog = ImageCatalog.load(tmp_path)
    os.unlink(tmp_path / "pipe")
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ContextError, match="%include pipe is a FIFO, not a regular file"):
        catalog.context("a")


def test_an_own_file_in_the_way_of_a_run_task_file_is_named(tmp_path: Path) -> None:
    folder = _run_task_folder(tmp_path)
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n# %include-run-task\n",
                         f"{D}/a/run-task/hgrc": "mine\n"})
    with pytest.raises(ContextError, match=r"a/run-task/hgrc is in the way of the file"):
        write_context(ImageCatalog.load(tmp_path, run_task=folder), "a", io.BytesIO())
