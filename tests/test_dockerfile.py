"""The Dockerfile parser: FROM, ARG before FROM, and the ``# %`` directives."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskgraph_images._dockerfile import parse, substitute_args, taskgraph_text
from taskgraph_images.errors import DockerfileError, TaskgraphImagesError


def test_from_with_platform_and_stage_name() -> None:
    (line,) = parse("FROM --platform=linux/arm64 ubuntu:22.04 AS Build\n").froms
    assert (line.raw, line.ref, line.stage, line.platform) == (
        "ubuntu:22.04", "ubuntu:22.04", "build", "linux/arm64")


def test_keywords_are_case_insensitive() -> None:
    assert parse("from a as b\n").froms[0].stage == "b"


def test_arg_before_from_resolves_the_reference() -> None:
    (line,) = parse('ARG TAG="22.04"\nARG OTHER\nFROM ubuntu:${TAG}\n').froms
    assert (line.raw, line.ref) == ("ubuntu:${TAG}", "ubuntu:22.04")


def test_arg_after_from_does_not_resolve_a_later_from() -> None:
    froms = parse("FROM a\nARG X=b\nFROM $X\n").froms
    assert froms[1].ref == "$X"


def test_continuation_lines_join_one_instruction() -> None:
    (line,) = parse("FROM \\\n  ubuntu \\\n  AS base\n").froms
    assert (line.ref, line.stage) == ("ubuntu", "base")


def test_comments_and_blank_lines_are_kept_in_the_text() -> None:
    text = "# a comment\n\nFROM a\n"
    assert parse(text).text == text


def test_includes_are_listed_with_line_numbers() -> None:
    parsed = parse("FROM a\n# %include python/lib\n#  %include no\n# %include  b.txt \n")
    assert parsed.includes == ((2, "python/lib"), (4, "b.txt"))


def test_empty_include_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:2: '# %include' needs a path"):
        parse("FROM a\n# %include\n")


def test_arg_directive_substitutes_both_spellings_below_it() -> None:
    text = "FROM a\nRUN echo $V\n# %ARG V\nRUN echo $V ${V} $VV $OTHER\n"
    parsed = parse(text, args={"V": "3.12"})
    assert parsed.text == "FROM a\nRUN echo $V\nRUN echo 3.12 3.12 $VV $OTHER\n"
    assert parsed.arg_directives == ((3, "V"),)


def test_arg_directive_applies_to_include_lines() -> None:
    parsed = parse("# %ARG DIR\nFROM a\n# %include $DIR/x\n", args={"DIR": "tools"})
    assert parsed.includes == ((3, "tools/x"),)


def test_missing_arg_value_names_the_arg() -> None:
    with pytest.raises(DockerfileError, match=r"img/Dockerfile:2: no value for '# %ARG PY'"):
        parse("FROM a\n# %ARG PY\n", source="img/Dockerfile")


def test_arg_directive_needs_a_name() -> None:
    with pytest.raises(DockerfileError, match="needs one NAME"):
        parse("FROM a\n# %ARG 1X\n")


def test_no_from_is_an_error() -> None:
    with pytest.raises(DockerfileError, match="no FROM instruction"):
        parse("RUN true\n")


@pytest.mark.parametrize("text", ["FROM\n", "FROM a b\n", "FROM a AS\n", "FROM --pull a\n"])
def test_malformed_from_is_named(text: str) -> None:
    with pytest.raises(DockerfileError, match="Dockerfile:1: FROM"):
        parse(text)


def test_substitute_args_leaves_unknown_names() -> None:
    assert substitute_args("$A ${B} $C", {"A": "1", "B": "2"}) == "1 2 $C"


@given(st.text(max_size=300))
def test_arbitrary_text_raises_nothing_but_the_library_error(text: str) -> None:
    with contextlib.suppress(TaskgraphImagesError):
        parse(text)


# -- taskgraph's rewrite (cache-keys: taskgraph) ------------------------------------------

_TG_LINES = st.sampled_from([
    "FROM $DOCKER_IMAGE_PARENT", "FROM ${DOCKER_IMAGE_PARENT}", "# %ARG A", "# %ARG B",
    "RUN echo $A ${A} $AB $B", "  # %ARG A", "# %include-run-task", "  # %include-run-task  ",
    "# comment", "", "RUN a \\", "  continued $B", "COPY x y\r",
])


def _taskgraph_dockerfile(tmp: str, text: str, args: dict[str, str]) -> str:
    """The Dockerfile member of the context tar taskgraph itself writes for ``text``."""
    import io
    import os
    import tarfile
    import warnings

    from peer_taskgraph import peer

    docker = peer("taskgraph.util.docker")
    folder = os.path.join(tmp, "taskcluster", "docker", "img")
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "Dockerfile"), "w", encoding="utf-8", newline="") as f:
        f.write(text)
    out = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        docker.stream_context_tar(tmp, "taskcluster/docker/img", out, args=args)
    out.seek(0)
    with tarfile.open(fileobj=out) as tar:
        member = tar.extractfile("Dockerfile")
        assert member is not None
        return member.read().decode("utf-8")


@given(st.lists(_TG_LINES, max_size=8), st.booleans(),
       st.dictionaries(st.sampled_from(["A", "B"]), st.text("xyz\\1 &", max_size=4)))
def test_taskgraph_text_is_taskgraphs_rewrite(lines: list[str], newline: bool,
                                             args: dict[str, str]) -> None:
    import tempfile

    text = "\n".join(lines) + ("\n" if newline else "")
    args = {"A": "1", "B": "2", **args}
    with tempfile.TemporaryDirectory() as tmp:
        try:
            theirs = _taskgraph_dockerfile(tmp, text, args)
        except Exception:  # taskgraph refuses it (a bad re.sub template): so do we
            with pytest.raises(Exception):  # noqa: B017 - whatever taskgraph raised
                taskgraph_text(text.replace("\r\n", "\n").replace("\r", "\n"), args)
            return
    # we read Dockerfiles as taskgraph's open() does: universal newlines
    assert taskgraph_text(text.replace("\r\n", "\n").replace("\r", "\n"), args) == theirs


def test_taskgraph_text_needs_every_arg_it_meets() -> None:
    with pytest.raises(DockerfileError, match=r"^img/Dockerfile:2: no value for '# %ARG X'"):
        taskgraph_text("FROM a\n# %ARG X\n", {}, source="img/Dockerfile")
