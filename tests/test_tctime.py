"""Time as Taskcluster writes it: offsets exactly as ``taskcluster.fromNow`` reads
them, and the services' millisecond timestamps."""

from __future__ import annotations

import datetime
import re

import pytest
import taskcluster
from hypothesis import example, given
from hypothesis import strategies as st

from taskgraph_images.errors import InvalidValueError
from taskgraph_images.tc.time import format_time, parse_offset, parse_time

UTC = datetime.timezone.utc
WHEN = datetime.datetime(2016, 11, 7, 19, 26, 27, 123000, tzinfo=UTC)
#: Far from both ends of datetime's range, so that fromNow's sum rarely overflows.
MIDDLE = datetime.datetime(5000, 1, 1)


# -- offsets -----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "delta"), [
    ("1 day 12 hours", datetime.timedelta(days=1, hours=12)),
    ("2d", datetime.timedelta(days=2)),
    ("24 hours", datetime.timedelta(days=1)),
    ("1 year", datetime.timedelta(days=365)),
    ("1 mo", datetime.timedelta(days=30)),
    ("3 months 2 weeks", datetime.timedelta(days=104)),
    ("90 min", datetime.timedelta(minutes=90)),
    ("1m 30s", datetime.timedelta(seconds=90)),
    ("1y2mo3w4d5h6m7s", datetime.timedelta(days=365 + 60 + 21 + 4, hours=5, minutes=6,
                                           seconds=7)),
    ("  + 1 hour ", datetime.timedelta(hours=1)),
    ("-1h", datetime.timedelta(hours=-1)),
    ("- + 2 seconds", datetime.timedelta(seconds=-2)),
    ("", datetime.timedelta(0)),
])
def test_offsets_as_the_client_writes_them(text: str, delta: datetime.timedelta) -> None:
    assert parse_offset(text) == delta == taskcluster.fromNow(text, MIDDLE) - MIDDLE


@pytest.mark.parametrize("text", [
    "1 fortnight", "1 Day", "2 days 1 year", "1 day 1 day", "+-1h", "1.5 hours", "hours",
    "1 hour ago", "--1h",
])
def test_what_the_client_refuses_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        taskcluster.fromNow(text, MIDDLE)
    with pytest.raises(InvalidValueError, match=re.escape(f"invalid time offset {text!r}: expected")):
        parse_offset(text)


def test_an_offset_too_large_for_a_timedelta_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="too large"):
        parse_offset("99999999999 years")


_PIECES = st.sampled_from([
    "1", "2", "07", "365", " ", "  ", "\t", "-", "+", "y", "year", "years", "mo", "month",
    "months", "w", "week", "weeks", "d", "day", "days", "h", "hour", "hours", "m", "min",
    "minute", "minutes", "s", "sec", "second", "seconds", "x", "D", "\u0663", "\u2003", ".",
])


@given(st.one_of(st.lists(_PIECES, max_size=12).map("".join), st.text(max_size=12)))
@example("1 mo 1 m")
@example("1\n")
def test_parse_offset_reads_exactly_what_fromnow_reads(text: str) -> None:
    try:
        expected = taskcluster.fromNow(text, MIDDLE) - MIDDLE
    except OverflowError:
        return  # past year 9999 for fromNow's sum: not a question of the grammar
    except ValueError:
        with pytest.raises(InvalidValueError):
            parse_offset(text)
        return
    assert parse_offset(text) == expected


# -- timestamps --------------------------------------------------------------------------


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


def test_format_time_is_utc_to_the_millisecond_truncated() -> None:
    paris = datetime.timezone(datetime.timedelta(hours=1))
    when = datetime.datetime(2016, 11, 7, 20, 26, 27, 999999, tzinfo=paris)
    assert format_time(when) == "2016-11-07T19:26:27.999Z"


def test_format_time_pads_early_years() -> None:
    assert format_time(datetime.datetime(5, 1, 2, tzinfo=UTC)) == "0005-01-02T00:00:00.000Z"


def test_format_time_refuses_a_naive_datetime() -> None:
    with pytest.raises(InvalidValueError, match="has no timezone"):
        format_time(datetime.datetime(2016, 11, 7))


@given(st.datetimes(timezones=st.just(UTC)))
def test_format_time_reads_back_to_the_millisecond(when: datetime.datetime) -> None:
    assert parse_time(format_time(when)) == when.replace(microsecond=when.microsecond // 1000 * 1000)


@given(st.datetimes(min_value=datetime.datetime(1970, 1, 2), timezones=st.just(UTC)))
def test_format_time_writes_what_the_client_writes(when: datetime.datetime) -> None:
    truncated = when.replace(microsecond=when.microsecond // 1000 * 1000)
    client = taskcluster.stringDate(truncated.replace(tzinfo=None))
    assert parse_time(client) == parse_time(format_time(when))
