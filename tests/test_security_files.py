"""A hostile repository cannot make a decision read outside it, hang, or print a secret.

Every file taskgraph-images reads from a repository follows one rule (see
``docs/security.rst``): a regular file inside the root, symlinks resolved,
bounded in size. These are the cases a security review reproduced on the
``VERSION`` and ``REGISTRY`` files, image folders, a kind ``definition``,
``tasks-from``, the config's ``run-task:`` and the config file itself, each
refused in one line naming the file and never quoting what it holds.
"""

from __future__ import annotations

import os
import tarfile
import threading
import time
from pathlib import Path

import pytest
from clirun import error_line, run_cli
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.errors import CatalogError, ConfigError, DockerfileError, TemplateError

D = "taskcluster/docker"
KIND = "taskcluster/kinds/docker-image/kind.yml"
SECRET = "TASKCLUSTER_ACCESS_TOKEN=s3cr3t-value-never-printed"


def _repo(root: Path) -> Path:
    return make_tree(root, {
        f"{D}/base/Dockerfile": "FROM debian:12\n",
        f"{D}/app/Dockerfile": "FROM debian:12\nRUN true\n",
    })


def _outside(tmp_path: Path, text: str = SECRET + "\nHOME=/root\n") -> Path:
    secret = tmp_path / "outside" / "environ"
    secret.parent.mkdir(exist_ok=True)
    secret.write_text(text)
    return secret


# -- VERSION and REGISTRY (item 1) ----------------------------------------------------------


@pytest.mark.parametrize("name", ["VERSION", "REGISTRY"])
def test_a_value_file_linked_out_of_the_repository_is_refused_without_its_content(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    root = _repo(tmp_path / "repo")
    (root / D / "base" / name).symlink_to(_outside(tmp_path))
    code, out, err = run_cli(capsys, "list", "--root", str(root))
    assert code == 1 and out == ""
    assert error_line(err) == (
        f"{name} file {D}/base/{name} leaves the repository (through a symlink or '..'); "
        "only what is under the root is read"
    )
    assert "s3cr3t" not in err


def test_version_linked_to_the_process_environment_is_refused(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    (root / D / "base" / "VERSION").symlink_to("/proc/self/environ")
    with pytest.raises(CatalogError, match="VERSION file .* leaves the repository"):
        ImageCatalog.load(root)


def test_version_linked_to_a_device_inside_is_refused_at_once(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    os.symlink("/dev/zero", root / D / "base" / "VERSION")
    started = time.monotonic()
    with pytest.raises(CatalogError, match="leaves the repository"):
        ImageCatalog.load(root)
    assert time.monotonic() - started < 5


def test_a_fifo_version_inside_the_repository_is_refused_not_waited_on(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    os.mkfifo(root / D / "base" / "VERSION")
    with pytest.raises(CatalogError) as raised:
        ImageCatalog.load(root)
    assert str(raised.value) == f"VERSION file {D}/base/VERSION is a FIFO, not a regular file"


def test_an_oversized_version_is_refused_before_it_is_read(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    with open(root / D / "base" / "VERSION", "wb") as f:
        f.truncate(3 * 1024**3)  # sparse: 3 GB that take no disk
    with pytest.raises(CatalogError) as raised:
        ImageCatalog.load(root)
    assert str(raised.value) == (
        f"VERSION file {D}/base/VERSION is 3221225472 bytes, more than the 4096 allowed"
    )


def test_a_bad_version_is_quoted_as_a_short_escaped_prefix(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    (root / D / "base" / "VERSION").write_text("\x1b[2J" + SECRET + " and more text after it")
    with pytest.raises(CatalogError) as raised:
        ImageCatalog.load(root)
    message = str(raised.value)
    assert message == (
        f"VERSION file {root / D / 'base' / 'VERSION'} holds "
        "'\\x1b[2JTASKCLUSTER_ACCESS_TOKEN=s3cr3t-valu'... (78 characters), "
        "which is not a valid Docker tag"
    )
    assert "never-printed" not in message and "\x1b" not in message


# -- image folders and definition (item 3) ----------------------------------------------------


def test_an_image_folder_linked_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    elsewhere = make_tree(tmp_path / "elsewhere", {"evil/Dockerfile": "FROM debian:12\n",
                                                   "evil/secret.txt": SECRET})
    (root / D / "evil").symlink_to(elsewhere / "evil")
    with pytest.raises(CatalogError) as raised:
        ImageCatalog.load(root)
    assert str(raised.value) == (
        f"image 'evil': folder {D}/evil leaves the repository (through a symlink or '..'); "
        "only what is under the root is read"
    )


@pytest.mark.parametrize("definition", ["../../../outside", "/etc", "app/../../..", "app/./x"])
def test_a_kind_definition_must_name_a_folder_below_the_images_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], definition: str
) -> None:
    root = _repo(tmp_path / "repo")
    make_tree(tmp_path, {"outside/Dockerfile": "FROM debian:12\n"})
    make_tree(root, {KIND: f"tasks:\n  app:\n    definition: {definition!r}\n"})
    code, _, err = run_cli(capsys, "context", "app", "--root", str(root),
                           "-o", str(tmp_path / "ctx.tar"))
    assert code == 1
    assert error_line(err) == (
        f"kind config {root / KIND}: image 'app': definition '{definition}' must name a "
        "folder below the images folder (no '..', not absolute)"
    )
    assert not (tmp_path / "ctx.tar").exists()


def test_a_definition_below_the_images_folder_still_works(tmp_path: Path) -> None:
    root = make_tree(tmp_path / "repo", {
        f"{D}/group/app/Dockerfile": "FROM debian:12\n",
        KIND: "tasks:\n  app:\n    definition: group/app\n",
    })
    assert ImageCatalog.load(root)["app"].path == f"{D}/group/app"


# -- run-task: (item 4) -----------------------------------------------------------------------


def _run_task_repo(root: Path, run_task: str) -> Path:
    return make_tree(root, {
        f"{D}/app/Dockerfile": "FROM debian:12\n# %include-run-task\n",
        "taskcluster/taskgraph-images.yml": f"run-task: {run_task}\n",
        "tools/run-task/run-task": "#!/bin/sh\n",
        "tools/run-task/fetch-content": "#!/bin/sh\n",
        "tools/run-task/robustcheckout.py": "# robustcheckout\n",
        "tools/run-task/hgrc": "[ui]\n",
    })


def test_run_task_folder_outside_the_repository_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _run_task_repo(tmp_path / "repo", "../outside")
    make_tree(tmp_path, {f"outside/{n}": "x" for n in
                         ("run-task", "fetch-content", "robustcheckout.py", "hgrc")})
    code, _, err = run_cli(capsys, "hash", "app", "--root", str(root))
    assert code == 1
    assert error_line(err) == (
        f"{D}/app/Dockerfile:2: run-task folder {tmp_path / 'outside'} leaves the repository "
        "(through a symlink or '..'); only what is under the root is read"
    )


def test_a_run_task_file_linked_out_of_the_repository_is_refused(tmp_path: Path) -> None:
    root = _run_task_repo(tmp_path / "repo", "tools/run-task")
    target = root / "tools" / "run-task" / "run-task"
    target.unlink()
    target.symlink_to(_outside(tmp_path))
    with pytest.raises(DockerfileError, match=r"run-task file tools/run-task/run-task leaves"):
        ImageCatalog.load(root, run_task="tools/run-task")


def test_run_task_files_linked_inside_the_repository_ship_as_usual(tmp_path: Path) -> None:
    root = _run_task_repo(tmp_path / "repo", "tools/run-task")
    target = root / "tools" / "run-task" / "hgrc"
    (root / "tools" / "hgrc").write_text("[ui]\n")
    target.unlink()
    target.symlink_to("../hgrc")
    catalog = ImageCatalog.load(root, run_task="tools/run-task")
    shipped = dict(catalog.context("app").run_task)
    assert os.path.realpath(shipped["run-task/hgrc"]) == str(root / "tools" / "hgrc")


# -- tasks-from and the config file (item 8) ----------------------------------------------------


@pytest.mark.parametrize("name", ["/etc/passwd", "../../../../outside.yml"])
def test_tasks_from_may_not_leave_the_repository(tmp_path: Path, name: str) -> None:
    root = _repo(tmp_path / "repo")
    (tmp_path / "outside.yml").write_text("app: {}\n")
    make_tree(root, {KIND: f"tasks-from: [{name!r}]\n"})
    with pytest.raises(ConfigError) as raised:
        ImageCatalog.load(root)
    assert "tasks-from" in str(raised.value) or "leaves the repository" in str(raised.value)
    assert "passwd" not in str(raised.value) or "must be a file name" in str(raised.value)


def test_tasks_from_stdin_is_refused_without_blocking(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    make_tree(root, {KIND: "tasks-from: [/dev/stdin]\n"})
    errors: list[BaseException] = []

    def load() -> None:
        try:
            ImageCatalog.load(root)
        except ConfigError as e:
            errors.append(e)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    thread.join(10)
    assert not thread.is_alive(), "tasks-from: /dev/stdin blocked the decision"
    assert str(errors[0]) == (
        f"{root / KIND}: tasks-from '/dev/stdin' must be a file name relative to the kind "
        "config's folder"
    )


def test_a_fifo_tasks_from_inside_the_repository_is_refused(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    make_tree(root, {KIND: "tasks-from: [more.yml]\n"})
    os.mkfifo(root / "taskcluster/kinds/docker-image/more.yml")
    with pytest.raises(ConfigError) as raised:
        ImageCatalog.load(root)
    assert str(raised.value) == ("kind config tasks-from file "
                                 "taskcluster/kinds/docker-image/more.yml is a FIFO, "
                                 "not a regular file")


def test_the_repository_config_linked_out_of_it_is_refused_and_not_printed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _repo(tmp_path / "repo")
    (root / "taskcluster/taskgraph-images.yml").symlink_to(
        _outside(tmp_path, f"{SECRET.replace('=', '_')}: 1\n"))
    code, _, err = run_cli(capsys, "hash", "app", "--root", str(root))
    assert code == 1
    assert error_line(err) == (
        "build-task config taskcluster/taskgraph-images.yml leaves the repository "
        "(through a symlink or '..'); only what is under the root is read"
    )
    assert "s3cr3t" not in err


def test_a_config_named_on_the_command_line_is_still_read_from_anywhere(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = _repo(tmp_path / "repo")
    config = tmp_path / "mine.yml"
    config.write_text("artifact-name: public/image.tar.zst\n")
    code, out, _ = run_cli(capsys, "hash", "app", "--root", str(root), "--config", str(config))
    assert code == 0 and len(out.split()[-1]) == 64


# -- YAML bombs and deep nesting (items 9 and 12) ---------------------------------------------

LAUGHS = "\n".join(
    ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    + [f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]"
       for i in range(8)]
) + "\n"


def test_a_template_of_yaml_aliases_is_refused_not_expanded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from taskgraph_images.templates import render_yaml

    template = tmp_path / "bomb.yml"
    template.write_text(LAUGHS)
    with pytest.raises(TemplateError) as raised:
        render_yaml(template, {})  # type: ignore[arg-type]
    assert str(raised.value) == (
        f"{template}: after rendering: refused: the YAML document is more than 1000000 nodes "
        "once its aliases are expanded"
    )


def test_a_few_aliases_still_render(tmp_path: Path) -> None:
    from taskgraph_images.templates import render_yaml

    doc = render_yaml("base: &b {x: 1}\nother: *b\n", {})  # type: ignore[arg-type]
    assert doc == {"base": {"x": 1}, "other": {"x": 1}}


@pytest.mark.parametrize("where", [KIND, "taskcluster/taskgraph-images.yml"])
def test_deeply_nested_yaml_is_one_line_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    root = _repo(tmp_path / "repo")
    make_tree(root, {where: "a: " + "[" * 100_000 + "]" * 100_000 + "\n"})
    code, _, err = run_cli(capsys, "hash", "app", "--root", str(root))
    assert code == 1
    message = error_line(err)
    assert message.startswith(str(root / where)) and "refused: the YAML document is" in message


def test_a_recursive_alias_is_refused(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    make_tree(root, {KIND: "tasks: &t\n  app: {args: *t}\n"})
    with pytest.raises(ConfigError, match="an alias refers to a node that contains it"):
        ImageCatalog.load(root)


def test_context_of_an_inside_folder_is_unchanged(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    out = tmp_path / "ctx.tar"
    from taskgraph_images.context import write_context

    write_context(ImageCatalog.load(root), "app", str(out))
    with tarfile.open(out) as tar:
        assert tar.getnames() == ["Dockerfile"]


def test_a_huge_value_in_a_kind_file_makes_a_bounded_message(tmp_path: Path) -> None:
    root = _repo(tmp_path / "repo")
    make_tree(root, {KIND: "tasks:\n  app:\n    ? " + "k" * 100_000 + "\n    : 1\n"})
    with pytest.raises(ConfigError) as raised:
        ImageCatalog.load(root)
    message = str(raised.value)
    assert message.startswith(f"{root / KIND}: tasks.app has an unknown key 'kkkk")
    assert len(message) < 2100 and message.endswith(" characters)")
