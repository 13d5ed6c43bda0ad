"""The values lookups pass around: dates as the services write them, artifact names, verdicts."""

from __future__ import annotations

import datetime

import pytest

from taskgraph_images.errors import InvalidValueError
from taskgraph_images.index._base import (
    Usability,
    format_time,
    parse_time,
    validate_artifact_name,
    verdict,
)

UTC = datetime.timezone.utc
WHEN = datetime.datetime(2016, 11, 7, 19, 26, 27, 123000, tzinfo=UTC)
NOW = datetime.datetime(2020, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize("text", [
    "2016-11-07T19:26:27.123Z", "2016-11-07T19:26:27.123z", "2016-11-07T20:26:27.123+01:00",
    "2016-11-07T19:26:27.123", " 2016-11-07T19:26:27.123Z ",
], ids=["Z", "lower-z", "offset", "naive-is-utc", "spaces"])
def test_parse_time_reads_every_spelling_of_one_instant(text: str) -> None:
    assert parse_time(text) == WHEN
    assert format_time(parse_time(text)) == "2016-11-07T19:26:27.123Z"


@pytest.mark.parametrize("value", ["tomorrow", "", None, 1478546787, "2016-13-01T00:00:00Z"])
def test_parse_time_refuses_anything_else_naming_what_it_is(value: object) -> None:
    with pytest.raises(InvalidValueError, match=f"invalid artifact expiry {value!r}: expected an ISO"):
        parse_time(value, "artifact expiry")


@pytest.mark.parametrize("name", [
    "/public/image.tar.zst", "public/../image", "public//image", "./image", "public/im age",
    "", 7,
])
def test_artifact_names_must_be_relative_and_plain(name: object) -> None:
    with pytest.raises(InvalidValueError, match="invalid artifact name"):
        validate_artifact_name(name)


@pytest.mark.parametrize(("state", "expires", "exists", "expected"), [
    (None, None, True, Usability(False, "task unknown")),
    ("failed", NOW, True, Usability(False, "task failed")),
    ("exception", NOW, True, Usability(False, "task exception")),
    ("running", NOW, True, Usability(False, "task running")),
    ("completed", None, True, Usability(False, "artifact missing")),
    ("completed", NOW + datetime.timedelta(days=1), False, Usability(False, "artifact missing")),
    ("completed", NOW, True, Usability(False, "artifact expired")),
    ("completed", NOW + datetime.timedelta(seconds=1), True, Usability(True)),
])
def test_only_a_completed_task_with_a_live_artifact_is_usable(
    state: str | None, expires: datetime.datetime | None, exists: bool, expected: Usability
) -> None:
    assert verdict(state, expires, NOW, artifact_exists=exists) == expected
