"""Time as Taskcluster writes it: offsets such as ``'1 day 12 hours'`` and the
services' millisecond timestamps such as ``2016-11-07T19:26:27.000Z``.

An offset is what the client's ``taskcluster.fromNow`` reads, and exactly
that (the tests hold the two together): after an optional sign (``-`` for
the past, ``+``), a count and a unit for each of, in this order and each at
most once, years (``y``, ``year``, ``years``; 365 days), months (``mo``,
``month``, ``months``; 30 days), weeks (``w``, ``week``, ``weeks``), days
(``d``, ``day``, ``days``), hours (``h``, ``hour``, ``hours``), minutes
(``m``, ``min``, ``minute``, ``minutes``) and seconds (``s``, ``sec``,
``second``, ``seconds``); whitespace anywhere between, none needed; units
in lower case. The grammar is matched here rather than the client imported,
so that reading a build config does not load the client.
"""

from __future__ import annotations

import datetime
import re

from taskgraph_images.errors import InvalidValueError

__all__ = ["format_time", "parse_offset", "parse_time"]

_OFFSET = re.compile(
    r"""
    (?:\s*(?P<years>\d+)\s*y(?:ears?)?)?
    (?:\s*(?P<months>\d+)\s*mo(?:nths?)?)?
    (?:\s*(?P<weeks>\d+)\s*w(?:eeks?)?)?
    (?:\s*(?P<days>\d+)\s*d(?:ays?)?)?
    (?:\s*(?P<hours>\d+)\s*h(?:ours?)?)?
    (?:\s*(?P<minutes>\d+)\s*m(?:in(?:utes?)?)?)?
    \s*
    (?:\s*(?P<seconds>\d+)\s*s(?:ec(?:onds?)?)?)?
    \s*\Z
    """,
    re.VERBOSE,
)
#: Days per unit longer than a week, as the client counts them.
_DAYS = {"years": 365, "months": 30, "days": 1}


def parse_offset(text: str) -> datetime.timedelta:
    """Return the offset ``text`` writes, as ``taskcluster.fromNow`` reads it.

    >>> parse_offset("1 day 12 hours")
    datetime.timedelta(days=1, seconds=43200)
    >>> parse_offset("2d") == parse_offset("48 hours")
    True
    >>> parse_offset("-1h")
    datetime.timedelta(days=-1, seconds=82800)

    :raises InvalidValueError: for text the client does not read, or an
        offset too large for a timedelta.
    """
    rest = text.lstrip()
    future = not rest.startswith("-")
    if not future:
        rest = rest[1:].lstrip()
    if rest.startswith("+"):
        rest = rest[1:].lstrip()
    m = _OFFSET.match(rest)
    if m is None:
        raise InvalidValueError(
            f"invalid time offset {text!r}: expected one like '1 day 12 hours', '2d' or '90 min'"
        )
    try:
        counts = {unit: int(count) for unit, count in m.groupdict(default="0").items()}
        delta = datetime.timedelta(
            weeks=counts["weeks"],
            days=sum(counts[unit] * days for unit, days in _DAYS.items()),
            hours=counts["hours"],
            minutes=counts["minutes"],
            seconds=counts["seconds"],
        )
    except (OverflowError, ValueError) as e:
        raise InvalidValueError(f"invalid time offset {text!r}: too large") from e
    return delta if future else -delta


def format_time(when: datetime.datetime) -> str:
    """Return ``when`` as the Queue and the Index write times, in UTC to the millisecond.

    >>> format_time(datetime.datetime(2016, 11, 7, 19, 26, 27, 123456, datetime.timezone.utc))
    '2016-11-07T19:26:27.123Z'

    :raises InvalidValueError: for a naive datetime.
    """
    if when.tzinfo is None or when.utcoffset() is None:
        raise InvalidValueError(f"invalid time {when!r}: the datetime has no timezone")
    utc = when.astimezone(datetime.timezone.utc).replace(tzinfo=None)
    return utc.isoformat(timespec="milliseconds") + "Z"


def parse_time(text: object, what: str = "date") -> datetime.datetime:
    """Parse an ISO 8601 date-time (``Z`` or an offset; naive means UTC).

    >>> parse_time("2016-11-07T19:26:27.123Z").isoformat()
    '2016-11-07T19:26:27.123000+00:00'

    :raises InvalidValueError: naming ``what`` and the text.
    """
    if not isinstance(text, str):
        raise InvalidValueError(f"invalid {what} {text!r}: expected an ISO 8601 date-time")
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    try:
        when = datetime.datetime.fromisoformat(value)
    except ValueError as e:
        raise InvalidValueError(f"invalid {what} {text!r}: expected an ISO 8601 date-time") from e
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.timezone.utc)
    return when
