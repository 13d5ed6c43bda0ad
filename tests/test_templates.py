"""render_template / render_yaml: the seed's substitutions and nothing else."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskgraph_images.errors import PlanError, TemplateError
from taskgraph_images.templates import render_template, render_yaml

TASK_ID = "Q2vWBHd8Rgu1dIUEtEfJ0Q"


class Lookups:
    """A plan stand-in: ``builder`` is a task image, ``base`` prebuilt."""

    def names(self) -> list[str]:
        return ["base", "builder"]

    def task_id_for_image(self, name: str) -> str:
        if name != "builder":
            raise PlanError(f"image {name!r} is prebuilt: it has no task id")
        return TASK_ID

    def docker_image(self, name: str) -> str:
        if name != "base":
            raise PlanError(f"image {name!r} is a task image: it has no registry tag")
        return "taskcluster/base:0.1.7"


PLAN = Lookups()


def render(text: str) -> str:
    return render_template(text, PLAN)


def test_task_id_for_image_is_replaced() -> None:
    assert render("taskId: '{{#task_id_for_image}}builder{{/task_id_for_image}}'") == f"taskId: '{TASK_ID}'"


def test_double_brace_docker_image_is_replaced() -> None:
    assert render("{{#docker_image}}base{{/docker_image}}") == "taskcluster/base:0.1.7"


def test_seed_single_brace_docker_image_is_replaced() -> None:
    assert render("image: {#docker_image}base{/docker_image}") == "image: taskcluster/base:0.1.7"


def test_whitespace_around_the_name_is_allowed() -> None:
    assert render("{{#task_id_for_image}} \n builder\t{{/task_id_for_image}}") == TASK_ID


@pytest.mark.parametrize(
    "text",
    [
        "{{now}}",
        "<a & b>",
        "{{#from_now}}1 year{{/from_now}}",
        "{#task_id_for_image}x{/task_id_for_image}",
        "{{{#}}}",
        "{ #docker_image }",
        "${HOME} \\n 'quoted' \"double\"",
    ],
)
def test_other_text_is_left_alone(text: str) -> None:
    assert render(text) == text


def test_unknown_image_lists_known_images_with_line_and_column() -> None:
    with pytest.raises(
        TemplateError,
        match=r"t.yml:2:26: unknown image 'buildr' \(did you mean 'builder'\? known images: base, "
        r"builder\)",
    ):
        render_template("a: 1\nb: {{#task_id_for_image}}buildr{{/task_id_for_image}}", PLAN, source="t.yml")


def test_docker_image_of_a_task_image_is_an_error() -> None:
    with pytest.raises(TemplateError, match=r"template:1:18: .*is a task image"):
        render("{{#docker_image}}builder{{/docker_image}}")


def test_task_id_for_image_of_a_prebuilt_image_is_an_error() -> None:
    with pytest.raises(TemplateError, match="is prebuilt"):
        render("{{#task_id_for_image}}base{{/task_id_for_image}}")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("x {{/docker_image}}", r"1:3: closing tag \{\{/docker_image\}\} without an opening tag"),
        ("{{#docker_image}}base", r"1:1: \{\{#docker_image\}\} is never closed"),
        ("{{#docker_image}}base{{/task_id_for_image}}", "does not close"),
        ("{{#docker_image}}base{/docker_image}", "does not close"),
        ("{#docker_image}base{{/docker_image}}", "does not close"),
        ("{{#docker_image}}{{#docker_image}}base{{/docker_image}}{{/docker_image}}", "inside"),
        ("{{#docker_image}}  {{/docker_image}}", "names no image"),
        ("{{#docker_image}}a b{{/docker_image}}", "unknown image 'a b'"),
    ],
)
def test_malformed_tags_are_template_errors(text: str, match: str) -> None:
    with pytest.raises(TemplateError, match=match):
        render(text)


def test_render_yaml_parses_after_rendering() -> None:
    doc = render_yaml(
        "image: {#docker_image}base{/docker_image}\n"
        "id: {{#task_id_for_image}}builder{{/task_id_for_image}}\n",
        PLAN,
    )
    assert doc == {"image": "taskcluster/base:0.1.7", "id": TASK_ID}


def test_render_yaml_reads_a_path(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text("image: '{{#docker_image}}base{{/docker_image}}'\n")
    assert render_yaml(path, PLAN) == {"image": "taskcluster/base:0.1.7"}


def test_render_yaml_of_bad_yaml_has_position(tmp_path: Path) -> None:
    path = tmp_path / "t.yml"
    path.write_text("a: [\n")
    with pytest.raises(TemplateError, match=r"t.yml:\d+:\d+: after rendering"):
        render_yaml(path, PLAN)


def test_render_yaml_of_a_missing_file_is_a_template_error(tmp_path: Path) -> None:
    with pytest.raises(TemplateError, match="cannot read template"):
        render_yaml(tmp_path / "absent.yml", PLAN)


def test_example_templates_render_with_a_real_plan() -> None:
    from plan_helpers import GECKO, NOW, params, seeded_task_ids

    from taskgraph_images.catalog import ImageCatalog
    from taskgraph_images.index import MemoryIndex
    from taskgraph_images.plan import plan_images

    plan = plan_images(ImageCatalog.load(GECKO), params(), MemoryIndex(), now=NOW, task_ids=seeded_task_ids())
    build = render_yaml(GECKO / "taskcluster" / "tasks" / "build.yml", plan)
    assert build["payload"]["image"] == plan.image_reference("builder")
    lint = render_yaml(GECKO / "taskcluster" / "tasks" / "lint.yml", plan)
    assert lint["payload"]["image"] == "taskcluster/base:0.1.7"


# -- properties ----------------------------------------------------------------------------

_TAGS = [
    ("{{#task_id_for_image}}", "{{/task_id_for_image}}", "builder", TASK_ID),
    ("{{#docker_image}}", "{{/docker_image}}", "base", "taskcluster/base:0.1.7"),
    ("{#docker_image}", "{/docker_image}", "base", "taskcluster/base:0.1.7"),
]
# Plain text that can never form a tag: no '#' or '/' right after a brace.
_plain = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20).filter(
    lambda s: "{#" not in s and "{/" not in s
)


@given(st.lists(st.tuples(_plain, st.sampled_from(_TAGS), st.sampled_from(["", " ", "\n "]))), _plain)
def test_rendering_never_alters_text_outside_tags(
    parts: list[tuple[str, tuple[str, str, str, str], str]], tail: str
) -> None:
    # Plain text ending in '{' would make a tag straddle the join: keep parts apart with a space.
    text = (
        "".join(f"{plain} {open_}{pad}{name}{pad}{close}" for plain, (open_, close, name, _), pad in parts)
        + " "
        + tail
    )
    expected = "".join(f"{plain} {value}" for plain, (_, _, _, value), _ in parts) + " " + tail
    assert render(text) == expected


_PIECES = [*"{}#/ab \n", "docker_image", "task_id_for_image", "base", "builder"]


@given(st.lists(st.sampled_from(_PIECES), max_size=30))
def test_malformed_input_raises_only_template_error(pieces: list[str]) -> None:
    try:
        render("".join(pieces))
    except TemplateError as e:
        assert "\n" not in str(e)


@given(st.text(max_size=200))
def test_arbitrary_text_raises_only_template_error(text: str) -> None:
    with contextlib.suppress(TemplateError):
        assert isinstance(render(text), str)


@given(st.text(max_size=100))
def test_render_yaml_raises_only_template_error(text: Any) -> None:
    with contextlib.suppress(TemplateError):
        render_yaml(text, PLAN)
