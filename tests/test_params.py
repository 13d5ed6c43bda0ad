"""Decision parameters: validation, coercion, one error naming every bad parameter."""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Any

import attrs
import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from plan_helpers import PARAMS

from taskgraph_images.errors import ParamsError
from taskgraph_images.params import (
    Params,
    is_taskgraph_parameters,
    parse_pushdate,
    split_taskgraph_parameters,
)

UTC = datetime.timezone.utc


def test_valid_mapping_makes_params() -> None:
    p = Params.from_mapping(PARAMS)
    assert (p.level, p.project, p.decision_task_id) == (3, "mozilla-central", None)


def test_pushdate_epoch_becomes_aware_utc() -> None:
    assert Params.from_mapping(PARAMS).pushdate == datetime.datetime(2016, 11, 7, 19, 26, 27, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        1478546787,
        "1478546787",
        "2016-11-07T19:26:27Z",
        "2016-11-07T20:26:27+01:00",
        datetime.datetime(2016, 11, 7, 19, 26, 27, tzinfo=UTC),
    ],
)
def test_pushdate_spellings_agree(value: Any) -> None:
    assert parse_pushdate(value) == datetime.datetime(2016, 11, 7, 19, 26, 27, tzinfo=UTC)


@pytest.mark.parametrize("value", ["yesterday", "2016-11-07T19:26:27", -1, True, [], float("nan")])
def test_bad_pushdate_is_a_params_error(value: Any) -> None:
    with pytest.raises(ParamsError, match="pushdate"):
        parse_pushdate(value)


def test_naive_datetime_pushdate_is_refused() -> None:
    with pytest.raises(ParamsError, match="no timezone"):
        Params.from_mapping({**PARAMS, "pushdate": datetime.datetime(2016, 1, 1)})


def test_level_string_from_the_command_line_is_accepted() -> None:
    assert Params.from_mapping({**PARAMS, "level": "2"}).level == 2


@pytest.mark.parametrize("level", [0, 4, "high", True, 2.0])
def test_level_out_of_range_is_refused(level: Any) -> None:
    with pytest.raises(ParamsError, match=r"level .* \(expected 1, 2 or 3\)"):
        Params.from_mapping({**PARAMS, "level": level})


def test_every_bad_parameter_is_named_in_one_line() -> None:
    bad = {**PARAMS, "level": 9, "head_rev": "main", "extra": 1}
    del bad["owner"]
    with pytest.raises(ParamsError) as info:
        Params.from_mapping(bad)
    message = str(info.value)
    assert "\n" not in message
    for part in ("level 9", "head_rev 'main'", "owner is missing", "unknown parameter 'extra'"):
        assert part in message


def test_empty_mapping_names_each_required_parameter() -> None:
    with pytest.raises(ParamsError) as info:
        Params.from_mapping({})
    for name in (
        "level",
        "project",
        "pushdate",
        "head_repository",
        "head_rev",
        "base_repository",
        "owner",
        "source",
    ):
        assert f"{name} is missing" in str(info.value)


def test_source_must_be_a_url_task_metadata_accepts() -> None:
    with pytest.raises(ParamsError, match="source"):
        Params.from_mapping({**PARAMS, "source": "file:///tmp/x"})


def test_decision_task_id_must_be_a_slugid() -> None:
    with pytest.raises(ParamsError, match="decision_task_id"):
        Params.from_mapping({**PARAMS, "decision_task_id": "not-a-task"})


def test_pushlog_id_number_becomes_text() -> None:
    assert Params.from_mapping({**PARAMS, "pushlog_id": 12345}).pushlog_id == "12345"


def test_evolve_is_validated_too() -> None:
    with pytest.raises(ParamsError, match="level"):
        attrs.evolve(Params.from_mapping(PARAMS), level=5)


def test_to_json_round_trips() -> None:
    p = Params.from_mapping({**PARAMS, "pushlog_id": "7"})
    assert Params.from_mapping(p.to_json()) == p


def test_non_mapping_is_refused() -> None:
    with pytest.raises(ParamsError, match="expected a mapping"):
        Params.from_mapping([1, 2])  # type: ignore[arg-type]


@given(
    st.dictionaries(
        st.sampled_from([*PARAMS, "x"]),
        st.one_of(st.none(), st.integers(), st.text(max_size=30), st.floats(), st.booleans()),
    )
)
def test_arbitrary_mappings_give_params_or_params_error(data: dict[str, Any]) -> None:
    try:
        Params.from_mapping(data)
    except ParamsError as e:
        assert "\n" not in str(e)


# taskgraph's parameters (what a taskgraph decision writes) ------------------------------

TASKGRAPH_FILE = Path(__file__).resolve().parent / "data" / "taskgraph_repo" / "parameters-pr.yml"


def test_taskgraphs_own_parameters_are_accepted_and_left_out() -> None:
    p = Params.from_mapping({**PARAMS, "base_rev": "a" * 40, "repository_type": "git",
                             "moz_build_date": "20251206054640", "files_changed": []})
    assert p == Params.from_mapping(PARAMS)


def test_build_date_dates_taskgraphs_routes_else_the_pushdate() -> None:
    assert Params.from_mapping(PARAMS).build_date_epoch == PARAMS["pushdate"]
    p = Params.from_mapping({**PARAMS, "build_date": "1765000000", "head_ref": "refs/heads/main"})
    assert (p.build_date_epoch, p.head_ref) == (1765000000, "refs/heads/main")
    assert Params.from_mapping(p.to_json()) == p


def test_a_decisions_parameters_file_is_taskgraphs_and_its_own_extensions_are_named() -> None:
    data = yaml.safe_load(TASKGRAPH_FILE.read_text())
    assert is_taskgraph_parameters(data) and not is_taskgraph_parameters(PARAMS)
    ours, theirs = split_taskgraph_parameters(data)
    assert theirs == ["release_name"]
    p = Params.from_mapping({**ours, "source": "https://github.com/example/shaped"})
    assert (p.level, p.tasks_for, p.build_date) == (1, "github-pull-request", 1765000000)


def test_a_name_neither_ours_nor_taskgraphs_is_refused() -> None:
    with pytest.raises(ParamsError, match="unknown parameter 'release_name'"):
        Params.from_mapping({**PARAMS, "release_name": "x"})
