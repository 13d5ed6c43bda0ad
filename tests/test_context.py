"""The build context (``taskgraph_images.context``): the seed context hash and the
listing rules behind it, the deterministic tarball ``write_context`` writes, and
what an image's context holds."""

from __future__ import annotations

import gzip
import io
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trees import make_tree, seed_context_hash

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.context import file_sha256, hash_context, list_context, write_context
from taskgraph_images.errors import ContextError, DockerfileError

BASE = "taskcluster/docker/base"


def test_hash_matches_a_vector_computed_with_sha256sum(tmp_path: Path) -> None:
    # printf '%s\t/taskcluster/docker/base/Dockerfile\n%s\t/...files/a.txt\n' | sha256sum
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n", f"{BASE}/files/a.txt": "hello\n"})
    assert hash_context(tmp_path, BASE) == (
        "cdf1772c86b6a4527516df73456f1dcef13d64d0bbebfcccdf6c5dc6881f043d"
    )


def test_hash_equals_the_independent_seed_implementation(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {
            f"{BASE}/Dockerfile": "FROM ubuntu\n",
            f"{BASE}/a-b/x": "1",
            f"{BASE}/a/x": "2",
            f"{BASE}/a b/ü.txt": "3",
            f"{BASE}/empty": "",
            f"{BASE}/d/e/f/g/h": "deep",
        },
    )
    assert hash_context(tmp_path, BASE) == seed_context_hash(str(tmp_path), BASE)


def test_lines_carry_a_leading_slash_and_the_path_from_the_root(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    import hashlib

    inner = hashlib.sha256(b"FROM scratch\n").hexdigest()
    line = f"{inner}\t/{BASE}/Dockerfile\n".encode()
    assert hash_context(tmp_path, BASE) == hashlib.sha256(line).hexdigest()


def test_hash_accepts_a_trailing_slash_on_the_image_path(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    assert hash_context(tmp_path, BASE + "/") == hash_context(tmp_path, BASE)


def test_dash_sorts_before_slash_as_in_the_seed(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/a/x": "1", f"{BASE}/a-b/x": "2", f"{BASE}/a.c": "3"})
    assert [f.relpath.rsplit("base/", 1)[1] for f in list_context(tmp_path, BASE)] == [
        "a-b/x",
        "a.c",
        "a/x",
    ]


def test_hash_ignores_mtimes(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    before = hash_context(tmp_path, BASE)
    os.utime(tmp_path / BASE / "Dockerfile", (1, 1))
    assert hash_context(tmp_path, BASE) == before


def test_renaming_a_file_changes_the_hash(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/a": "x"})
    before = hash_context(tmp_path, BASE)
    (tmp_path / BASE / "a").rename(tmp_path / BASE / "b")
    assert hash_context(tmp_path, BASE) != before


def test_symlinked_folders_are_not_descended(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n", "elsewhere/f": "x"})
    (tmp_path / BASE / "linked").symlink_to(tmp_path / "elsewhere")
    assert hash_context(tmp_path, BASE) == seed_context_hash(str(tmp_path), BASE)
    assert [f.relpath for f in list_context(tmp_path, BASE)] == [f"{BASE}/Dockerfile"]


def test_symlinked_file_inside_the_root_is_hashed_by_its_content(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n", "shared/script.sh": "echo\n"})
    (tmp_path / BASE / "script.sh").symlink_to("../../../shared/script.sh")
    assert hash_context(tmp_path, BASE) == seed_context_hash(str(tmp_path), BASE)


def test_symlink_leaving_the_root_is_refused(tmp_path: Path) -> None:
    repo = make_tree(tmp_path / "repo", {f"{BASE}/Dockerfile": "FROM scratch\n"})
    (tmp_path / "secret").write_text("host file")
    (repo / BASE / "leak").symlink_to(tmp_path / "secret")
    with pytest.raises(ContextError, match=r"base/leak is a symlink .*outside the repository"):
        hash_context(repo, BASE)


def test_broken_symlink_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    (tmp_path / BASE / "dangling").symlink_to("missing")
    with pytest.raises(ContextError, match="base/dangling is a broken symlink"):
        hash_context(tmp_path, BASE)


def test_symlink_loop_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    (tmp_path / BASE / "a").symlink_to("b")
    (tmp_path / BASE / "b").symlink_to("a")
    with pytest.raises(ContextError, match="broken symlink"):
        hash_context(tmp_path, BASE)


def test_fifo_is_refused_instead_of_blocking(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    os.mkfifo(tmp_path / BASE / "pipe")
    with pytest.raises(ContextError, match="base/pipe in the context is not a regular file .a FIFO"):
        hash_context(tmp_path, BASE)


def test_socket_is_refused(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    # AF_UNIX paths are short: bind relative to the folder.
    cwd = os.getcwd()
    os.chdir(tmp_path / BASE)
    try:
        with socket.socket(socket.AF_UNIX) as s:
            s.bind("sock")
            with pytest.raises(ContextError, match="a socket"):
                hash_context(tmp_path, BASE)
    finally:
        os.chdir(cwd)


def test_a_file_that_cannot_be_opened_is_named(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match=r"cannot read .*gone: No such file"):
        file_sha256(str(tmp_path / "gone"))


def test_a_file_that_cannot_be_read_is_named(tmp_path: Path) -> None:
    # Opening a folder works on Linux; reading it fails, like an I/O error would.
    with pytest.raises(ContextError, match="cannot read .*: Is a directory"):
        file_sha256(str(tmp_path))


def test_missing_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(ContextError, match="context folder 'taskcluster/docker/nope' does not"):
        hash_context(tmp_path, "taskcluster/docker/nope")


def test_non_utf8_file_names_hash_by_their_bytes(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    raw = os.path.join(os.fsencode(tmp_path / BASE), b"caf\xe9")
    with open(raw, "wb") as f:
        f.write(b"latin-1 name")
    assert hash_context(tmp_path, BASE) == seed_context_hash(str(tmp_path), BASE)


def test_names_with_a_tab_are_hashed_verbatim(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/tab\there": "1", f"{BASE}/sub\tdir/x": "2"})
    assert hash_context(tmp_path, BASE) == seed_context_hash(str(tmp_path), BASE)


@pytest.mark.parametrize("name", ["new\nline", "folder\n/x"])
def test_names_with_a_newline_are_refused(tmp_path: Path, name: str) -> None:
    # A newline could make one file's line imitate two (see docs/hash.rst).
    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n", f"{BASE}/{name}": "1"})
    with pytest.raises(ContextError, match=r"has a newline in its path.*rename it"):
        hash_context(tmp_path, BASE)


def test_single_threaded_and_threaded_hashes_agree(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{BASE}/f{i:03d}": os.urandom(i * 37) for i in range(40)})
    assert hash_context(tmp_path, BASE, jobs=1) == hash_context(tmp_path, BASE, jobs=4)


_names = st.text(
    alphabet=st.sampled_from("ab-_. üZ9"), min_size=1, max_size=6
).filter(lambda s: s not in (".", "..") and not s.startswith(" "))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    tree=st.dictionaries(
        st.lists(_names, min_size=1, max_size=4).map("/".join), st.binary(max_size=64),
        min_size=1, max_size=8,
    )
)
def test_hash_equals_the_seed_on_generated_trees(tmp_path_factory: pytest.TempPathFactory,
                                                  tree: dict[str, bytes]) -> None:
    root = tmp_path_factory.mktemp("gen")
    written: dict[str, bytes] = {}
    for rel, content in tree.items():
        # A path can't be both a file and a folder: skip the clashing ones.
        parts = rel.split("/")
        prefixes = {"/".join(parts[:i]) for i in range(1, len(parts))}
        if prefixes & written.keys() or any(k.startswith(rel + "/") for k in written):
            continue
        written[rel] = content
    make_tree(root, {f"img/{k}": v for k, v in written.items()})
    assert hash_context(root, "img") == seed_context_hash(str(root), "img")


@pytest.mark.skipif(os.geteuid() != 0, reason="creating a device node needs root")
def test_device_file_is_refused(tmp_path: Path) -> None:
    import stat

    make_tree(tmp_path, {f"{BASE}/Dockerfile": "FROM scratch\n"})
    os.mknod(tmp_path / BASE / "null", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    with pytest.raises(ContextError, match="base/null in the context is not a regular file .a device"):
        hash_context(tmp_path, BASE)


# -- write_context: the deterministic build-context tarball ------------------------------


DATA = Path(__file__).resolve().parent / "data" / "images_e2e"


def _repo(tmp_path: Path, name: str = "repo") -> Path:
    root = tmp_path / name
    shutil.copytree(DATA, root)
    (root / "taskcluster" / "docker" / "base" / "busybox").write_bytes(b"\x7fELF fake")
    return root


def _tar_members(path: Path) -> dict[str, tarfile.TarInfo]:
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
    assert list(_tar_members(tmp_path / "c.tar")) == [
        "Dockerfile", "run.sh", "topsrcdir", "topsrcdir/scripts", "topsrcdir/scripts/hello.sh",
    ]


def test_executable_bit_is_kept(tmp_path: Path) -> None:
    root = _repo(tmp_path)
    write_context(ImageCatalog.load(root), "app", tmp_path / "c.tar")
    members = _tar_members(tmp_path / "c.tar")
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
    member = _tar_members(tmp_path / "c.tar")["alias.sh"]
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


# -- what an image's context holds: run-task files, the written Dockerfile, includes -----
# Each test names the defect of issue 14 it guards against.


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
