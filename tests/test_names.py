"""The one grammar of image names, task ids, digests and namespaces."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trees import make_tree

from taskgraph_images import names
from taskgraph_images.cli import main
from taskgraph_images.errors import InvalidValueError
from taskgraph_images.keys.namespaces import hash_namespace

DIGEST = "0123456789abcdef" * 4
TASK_ID = "fN1w0PbpQ0ys2hc7_EpA-g"


# Names that real taskgraph repositories use, and what taskgraph would put in a route.
@pytest.mark.parametrize(
    "name",
    ["python3.11", "gcc-4.4", "Upper", "decision", "image_builder", "a.b.c", "x" * 100, "9"],
)
def test_image_names_are_what_taskgraph_and_the_index_accept(name: str) -> None:
    assert names.image_name(name) == name
    assert names.is_namespace(hash_namespace(3, name, DIGEST, prefix="t.cache.level-3"))


@pytest.mark.parametrize(
    "name",
    ["", ".hidden", "-x", "_x", "a..b", "b.", "a/b", "a b", "ünï", "x" * 101, 3, None],
)
def test_other_image_names_are_refused_naming_them(name: object) -> None:
    assert not names.is_image_name(name)
    with pytest.raises(InvalidValueError) as info:
        names.image_name(name)
    assert f"invalid image name {name!r}" in str(info.value)
    assert "letters, digits, '.', '-' and '_'" in str(info.value)


@given(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}(\.[A-Za-z0-9_-]{1,9}){0,4}", fullmatch=True))
def test_every_image_name_goes_into_a_namespace_the_index_accepts(name: str) -> None:
    assert names.is_image_name(name)
    assert names.is_namespace(hash_namespace(1, name, DIGEST))


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("python3.11", None),
        ("gcc-4.4", None),
        ("a__b", None),
        ("a---b", None),
        ("Upper", "'Upper' has upper-case letters"),
        ("a_-b", "'a_-b' is not lower-case letters and digits joined by"),
        ("a-", "'a-' is not lower-case letters and digits joined by"),
        ("a___b", "'a___b' is not lower-case letters and digits joined by"),
    ],
)
def test_docker_repository_problem_says_why_a_name_cannot_be_a_docker_tag(
    name: str, problem: str | None
) -> None:
    found = names.docker_repository_problem(name)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem)


@pytest.mark.parametrize(
    ("check", "make", "good", "bad", "says"),
    [
        (names.is_digest, names.digest, DIGEST, DIGEST.upper(), "invalid digest"),
        (names.is_task_id, names.task_id, TASK_ID, TASK_ID[:-1], "invalid task id"),
        (names.is_namespace, names.namespace, "a.b-c.d_e", "a..b", "invalid index namespace"),
    ],
)
def test_the_other_validators_return_the_value_or_name_it(
    check: object, make: object, good: str, bad: str, says: str
) -> None:
    assert callable(check) and callable(make)
    assert check(good) and not check(bad)
    assert make(good) == good
    with pytest.raises(InvalidValueError, match=f"{says} {bad!r}"):
        make(bad)


def test_a_namespace_is_at_most_255_characters() -> None:
    assert names.is_namespace("a" * 255)
    assert not names.is_namespace("a" * 256)


def test_a_local_build_of_an_upper_case_name_says_so_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The name is refused before any Docker engine is asked.
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    root = make_tree(tmp_path / "repo", {
        "taskcluster/docker/Base/Dockerfile": "FROM debian:12\n",
        "taskcluster/docker/app/Dockerfile": "FROM Base:latest\n",
    })
    code = main(["build", "app", "--root", str(root)])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1
    assert "image 'Base' cannot be built locally" in err and "'Base' has upper-case letters" in err
    # Everything that does not tag an image works with the name.
    assert main(["list", "--root", str(root)]) == 0
    assert "Base" in capsys.readouterr().out


def test_the_module_doctest_holds() -> None:
    assert doctest.testmod(names).failed == 0


ARTIFACT_NAMES = ["public/image.tar.zst", "public/logs/live.log", "a", "x/y.z_1-2",
                  "", "/public/image.tar.zst", "public//image", "public/../image", "./image",
                  "public/image ", "public\\image"]


@pytest.mark.parametrize("name", ARTIFACT_NAMES)
def test_the_index_and_the_config_take_the_artifact_names_the_rule_takes(name: str) -> None:
    from taskgraph_images.config import parse_config
    from taskgraph_images.errors import ConfigError
    from taskgraph_images.index import MemoryIndex, find_images

    accepted = names.is_artifact_name(name)
    assert accepted == (name in ARTIFACT_NAMES[:4])
    try:
        parse_config({"artifact-name": name})
    except ConfigError:
        config_accepts = False
    else:
        config_accepts = True
    try:
        find_images(MemoryIndex(), [("base", DIGEST)], 3, artifact=name)
    except InvalidValueError:
        index_accepts = False
    else:
        index_accepts = True
    assert (config_accepts, index_accepts) == (accepted, accepted)


@pytest.mark.parametrize(("source", "ok"), [
    ("https://hg.mozilla.org/mozilla-central", True), ("git@github.com:o/r.git", True),
    ("ssh://hg.mozilla.org/x", True), ("http://x", True), ("ftp://x", False),
    ("file:///repo", False), ("https://a b", False), ("", False),
])
def test_a_push_source_is_a_git_remote_url(source: str, ok: bool) -> None:
    from plan_helpers import PARAMS

    from taskgraph_images.errors import ParamsError
    from taskgraph_images.params import Params

    assert names.is_git_source(source) == ok
    try:
        Params.from_mapping({**PARAMS, "source": source})
    except ParamsError:
        assert not ok
    else:
        assert ok


@pytest.mark.parametrize(("rev", "ok"), [
    ("a" * 40, True), ("0123456789abcdef" * 4, True), ("a" * 39, False), ("a" * 41, False),
    ("A" * 40, False), ("a" * 12, False), ("a" * 40 + "\n", False), (None, False), ("", False),
])
def test_a_commit_id_is_a_full_sha1_or_sha256_revision(rev: object, ok: bool) -> None:
    assert names.is_commit_id(rev) == ok
