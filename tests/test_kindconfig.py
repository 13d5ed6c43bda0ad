"""Today's image trees: kind config, FROM $DOCKER_IMAGE_PARENT, %include and %ARG."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.errors import CatalogError, ConfigError, DockerfileError, TaskgraphImagesError
from taskgraph_images.keys.digest import image_digest
from taskgraph_images.kindconfig import parse_kind_config

KINDREPO = Path(__file__).resolve().parent / "data" / "kindrepo"
D = "taskcluster/docker"
KIND = "taskcluster/kinds/docker-image/kind.yml"


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A writable copy of the realistic kind-config repository."""
    dest = tmp_path / "repo"
    shutil.copytree(KINDREPO, dest, symlinks=True)
    return dest


def test_kind_config_is_found_and_lists_exactly_its_tasks(repo: Path) -> None:
    cat = ImageCatalog.load(repo)
    assert cat.kind_config == KIND
    assert cat.names() == ["base", "decision", "lint", "multi", "python", "run-task"]


def test_the_older_ci_path_is_found_too(repo: Path) -> None:
    (repo / "taskcluster/ci/docker-image").mkdir(parents=True)
    (repo / KIND).rename(repo / "taskcluster/ci/docker-image/kind.yml")
    assert ImageCatalog.load(repo).kind_config == "taskcluster/ci/docker-image/kind.yml"


def test_kind_config_can_be_ignored(repo: Path) -> None:
    shutil.rmtree(repo / D / "python")  # its '# %ARG' lines need the config
    with pytest.raises(DockerfileError, match=r"FROM \$\{?DOCKER_IMAGE_PARENT\}? needs a parent"):
        ImageCatalog.load(repo, kind_config=None)


def test_docker_image_parent_without_a_parent_names_the_image(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM scratch\n",
                         f"{D}/b/Dockerfile": "ARG DOCKER_IMAGE_PARENT\nFROM $DOCKER_IMAGE_PARENT\n",
                         KIND: "tasks:\n  a: {}\n  b: {}\n"})
    with pytest.raises(DockerfileError, match=r"b/Dockerfile:2: .*set 'parent:' for image 'b'"):
        ImageCatalog.load(tmp_path)


def test_definition_names_the_folder(repo: Path) -> None:
    lint = ImageCatalog.load(repo)["lint"]
    assert lint.path == f"{D}/linter" and lint.definition == "linter"


def test_docker_image_parent_makes_the_config_parent_the_in_tree_parent(repo: Path) -> None:
    cat = ImageCatalog.load(repo)
    assert cat["run-task"].parent == "base"
    assert cat["decision"].parent == "run-task"  # the ${...} spelling
    assert cat.ancestors("decision") == ["run-task", "base"]
    order = cat.order()
    assert order.index("base") < order.index("run-task") < order.index("decision")


def test_symbols_and_args_come_from_the_config(repo: Path) -> None:
    cat = ImageCatalog.load(repo)
    assert cat["python"].symbol == "I(py)"
    assert cat["python"].args == (("GREETING", "hello"), ("PYTHON_VERSIONS", "3.13 3.12"))


def test_multi_stage_with_as_names_has_one_parent(repo: Path) -> None:
    multi = ImageCatalog.load(repo)["multi"]
    assert multi.parents == ("base",) and multi.bases == ("$DOCKER_IMAGE_PARENT", "build")


def test_includes_list_files_of_folders_recursively(repo: Path) -> None:
    cat = ImageCatalog.load(repo)
    assert [f.relpath for f in cat.include_files("decision")] == [
        "tools/lib/one.txt", "tools/lib/two.txt"]
    assert [f.relpath for f in cat.include_files("run-task")] == ["tools/run-task.sh"]


def test_digest_folds_parent_includes_and_args(repo: Path) -> None:
    cat = ImageCatalog.load(repo)
    import hashlib

    sha = hashlib.sha256((repo / "tools/run-task.sh").read_bytes()).hexdigest()
    assert cat.digest("run-task") == image_digest(
        cat.context_hash("run-task"), parents=[("base", cat.digest("base"))],
        includes=[("tools/run-task.sh", sha)],
    )
    assert cat.digest("base") == cat.context_hash("base")


def test_changing_an_included_file_changes_the_digest_not_the_context_hash(repo: Path) -> None:
    before = ImageCatalog.load(repo)
    old = {n: (before.context_hash(n), before.digest(n)) for n in ("decision", "python")}
    (repo / "tools/lib/two.txt").write_text("changed\n")
    after = ImageCatalog.load(repo)
    assert after.context_hash("decision") == old["decision"][0]
    assert after.digest("decision") != old["decision"][1]
    assert after.digest("python") == old["python"][1]


def test_changing_an_arg_changes_the_digest(repo: Path) -> None:
    before = ImageCatalog.load(repo).digest("python")
    kind = repo / KIND
    kind.write_text(kind.read_text().replace('"3.13 3.12"', '"3.14"'))
    assert ImageCatalog.load(repo).digest("python") != before


def test_missing_arg_value_names_image_and_arg(repo: Path) -> None:
    kind = repo / KIND
    kind.write_text(kind.read_text().replace("            GREETING: hello\n", ""))
    with pytest.raises(DockerfileError, match=r"python/Dockerfile:4: no value for '# %ARG GREETING'"):
        ImageCatalog.load(repo)


def test_missing_arg_value_names_the_image_when_its_folder_differs(repo: Path) -> None:
    linter = repo / D / "linter" / "Dockerfile"
    linter.write_text(linter.read_text() + "# %ARG TOOL\n")
    with pytest.raises(DockerfileError, match=r"linter/Dockerfile:4: no value for '# %ARG TOOL': "
                                              r".* for image 'lint' in the kind config"):
        ImageCatalog.load(repo)


def test_config_naming_a_missing_folder_is_an_error(repo: Path) -> None:
    kind = repo / KIND
    kind.write_text(kind.read_text() + "    ghost:\n        symbol: I(g)\n")
    with pytest.raises(CatalogError, match="image 'ghost' names folder taskcluster/docker/ghost"):
        ImageCatalog.load(repo)


def test_readme_only_folder_named_by_the_config_is_an_error(repo: Path) -> None:
    kind = repo / KIND
    kind.write_text(kind.read_text() + "    docs-only: {}\n")
    with pytest.raises(CatalogError, match="docs-only, which has no Dockerfile"):
        ImageCatalog.load(repo)


def test_parent_that_is_not_an_image_is_an_error(repo: Path) -> None:
    kind = repo / KIND
    kind.write_text(kind.read_text().replace("parent: run-task", "parent: nowhere", 1))
    with pytest.raises(CatalogError, match="has parent 'nowhere', which is not an image"):
        ImageCatalog.load(repo)


def test_config_cycle_is_named(repo: Path) -> None:
    kind = repo / KIND
    text = kind.read_text().replace("    base:\n        symbol: I(base)\n",
                                    "    base:\n        symbol: I(base)\n        parent: decision\n")
    kind.write_text(text)
    with pytest.raises(CatalogError, match="FROM cycle between images: base -> decision -> "
                                           "run-task -> base"):
        ImageCatalog.load(repo)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ([], "must be a mapping"),
        ({"loader": "x"}, "has no 'tasks' mapping"),
        ({"tasks": ["a"]}, "'tasks' must be a mapping"),
        ({"tasks": {"a": "x"}}, "tasks.a must be a mapping"),
        ({"tasks": {"a": {"parent": 3}}}, "tasks.a.parent must be a string, got int"),
        ({"tasks": {"a": {"symbol": ["I"]}}}, "tasks.a.symbol must be a string"),
        ({"tasks": {"a": {"args": ["X"]}}}, "tasks.a.args must be a mapping"),
        ({"tasks": {"a": {"args": {"X": None}}}}, "tasks.a.args.X must be a string or number"),
        ({"tasks": {"a": {"args": {"X": True}}}}, "tasks.a.args.X must be a string or number"),
    ],
)
def test_bad_config_names_the_key(data: object, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_kind_config(data, "kind.yml")


def test_older_jobs_key_and_numbers_as_args() -> None:
    configs = parse_kind_config({"jobs": {"a": {"args": {"N": 3}}, "b": None}}, "kind.yml")
    assert configs["a"].args == (("N", "3"),) and configs["b"].definition == "b"


def test_invalid_yaml_gives_file_line_and_column(repo: Path) -> None:
    (repo / KIND).write_text("tasks:\n  a: [unclosed\n")
    with pytest.raises(ConfigError, match=r"kind.yml:\d+:\d+: "):
        ImageCatalog.load(repo)


def test_explicit_kind_config_that_does_not_exist(repo: Path) -> None:
    with pytest.raises(CatalogError, match="kind config other.yml does not exist"):
        ImageCatalog.load(repo, kind_config="other.yml")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("# %include /etc/passwd", "is absolute"),
        ("# %include ../outside.txt", "leaves the repository"),
        ("# %include tools/../../outside.txt", "leaves the repository"),
        ("# %include tools/missing.txt", "does not exist"),
        ("# %include tools/escape", "leaves the repository"),
        ("# %include tools/dangling", "is a broken symlink"),
        ("# %include .", "includes the whole repository"),
    ],
)
def test_bad_includes_are_named(tmp_path: Path, line: str, message: str) -> None:
    repo = make_tree(tmp_path / "repo", {f"{D}/a/Dockerfile": f"FROM x\n{line}\n", "tools/ok": "1"})
    (tmp_path / "outside.txt").write_text("secret")
    (repo / "tools" / "escape").symlink_to(tmp_path / "outside.txt")
    (repo / "tools" / "dangling").symlink_to("nothing-here")
    with pytest.raises(DockerfileError, match=rf"taskcluster/docker/a/Dockerfile:2: .*{message}"):
        ImageCatalog.load(repo)


def test_a_repository_prefix_sibling_is_not_inside_it(tmp_path: Path) -> None:
    # /x/repo-evil is not inside /x/repo even though the string starts the same.
    repo = make_tree(tmp_path / "repo", {f"{D}/a/Dockerfile": "FROM x\n# %include link\n"})
    make_tree(tmp_path / "repo-evil", {"f": "x"})
    (repo / "link").symlink_to(tmp_path / "repo-evil")
    with pytest.raises(DockerfileError, match="leaves the repository"):
        ImageCatalog.load(repo)


def test_include_through_a_symlinked_folder_leaving_the_repository_is_refused(tmp_path: Path) -> None:
    repo = make_tree(tmp_path / "repo", {f"{D}/a/Dockerfile": "FROM x\n# %include tools/out/f\n",
                                         "tools/ok": "1"})
    make_tree(tmp_path / "outside", {"f": "secret"})
    (repo / "tools" / "out").symlink_to(tmp_path / "outside")
    with pytest.raises(DockerfileError, match=r"a/Dockerfile:2: '# %include tools/out/f' leaves"):
        ImageCatalog.load(repo)


def test_include_of_a_symlink_to_a_file_inside_the_repository_is_accepted(tmp_path: Path) -> None:
    repo = make_tree(tmp_path / "repo", {f"{D}/a/Dockerfile": "FROM x\n# %include tools/link\n",
                                         "tools/real": "1"})
    (repo / "tools" / "link").symlink_to("real")
    assert ImageCatalog.load(repo)["a"].includes == ("tools/link",)


def test_included_folder_with_an_escaping_symlink_is_refused(tmp_path: Path) -> None:
    from taskgraph_images.errors import ContextError

    repo = make_tree(tmp_path / "repo", {f"{D}/a/Dockerfile": "FROM x\n# %include tools\n",
                                         "tools/ok": "1"})
    (tmp_path / "secret").write_text("x")
    (repo / "tools" / "leak").symlink_to(tmp_path / "secret")
    cat = ImageCatalog.load(repo)
    with pytest.raises(ContextError, match="tools/leak is a symlink .*outside the repository"):
        cat.digest("a")


@given(st.text(max_size=200))
def test_arbitrary_config_text_raises_nothing_but_the_library_error(text: str) -> None:
    import yaml

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return
    with contextlib.suppress(TaskgraphImagesError):
        parse_kind_config(data, "kind.yml")
