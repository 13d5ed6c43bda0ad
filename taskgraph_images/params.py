"""The decision parameters a plan is made for (a validated value, no I/O).

A decision task knows, for the push it runs for: the trust ``level`` (1, 2
or 3), the ``project`` (branch) name, the ``pushdate``, the repositories and
revision, who pushed (``owner``) and a ``source`` URL for task metadata.
:meth:`Params.from_mapping` checks all of them at once and names every bad
one in a single :class:`~taskgraph_images.errors.ParamsError`.
"""

from __future__ import annotations

import datetime
import re
from typing import Any, Callable, Mapping, Optional, Union

import attrs

from taskgraph_images._redact import QUOTE_LIMIT, has_userinfo, quote_value
from taskgraph_images.errors import ParamsError
from taskgraph_images.names import is_git_source, is_task_id

__all__ = [
    "PARAM_NAMES",
    "REQUIRED",
    "TASKGRAPH_ONLY",
    "Params",
    "ParamsLike",
    "coerce_params",
    "is_taskgraph_parameters",
    "parse_pushdate",
    "split_taskgraph_parameters",
]

#: The parameters every plan needs.
REQUIRED = (
    "level",
    "project",
    "pushdate",
    "head_repository",
    "head_rev",
    "base_repository",
    "owner",
    "source",
)
#: Every parameter :class:`Params` holds.
PARAM_NAMES = (*REQUIRED, "decision_task_id", "pushlog_id", "tasks_for", "build_date", "head_ref")
#: The parameters of taskgraph's schema (its decision's ``parameters.yml``)
#: that do not concern images: :meth:`Params.from_mapping` accepts them and
#: leaves them out.
TASKGRAPH_ONLY = (
    "base_ref",
    "base_rev",
    "build_number",
    "code-review",
    "do_not_optimize",
    "enable_always_target",
    "existing_tasks",
    "files_changed",
    "filters",
    "head_tag",
    "moz_build_date",
    "next_version",
    "optimize_strategies",
    "optimize_target_tasks",
    "repository_type",
    "target-kinds",
    "target_tasks_method",
    "version",
)
# Keys only a taskgraph decision writes: a file holding them is taskgraph's.
_TASKGRAPH_MARKERS = ("build_date", "repository_type", "target_tasks_method")

_PROJECT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\Z")
# Treeherder and Index routes put the revision in a dotted name: hex only.
_REV = re.compile(r"[0-9a-f]{12,64}\Z")
_REPOSITORY = re.compile(r"(?:https?://|ssh://|git@|file://)\S+\Z")
# What task metadata accepts as a source (task-metadata.json).
_PUSHLOG_ID = re.compile(r"[0-9]{1,20}\Z")
_TASKS_FOR = re.compile(r"[a-z][a-z0-9-]{0,99}\Z")
_HEAD_REF = re.compile(r"[^\s\x00-\x1f]{1,255}\Z")


class _Bad(Exception):
    """One parameter's problem (collected, then reported together)."""


def parse_pushdate(value: object) -> datetime.datetime:
    """Return ``value`` as an aware UTC datetime.

    Accepts epoch seconds (``int``/``float``, or a string of digits), an aware
    :class:`~datetime.datetime`, or an ISO 8601 string with ``Z`` or an offset.

    >>> parse_pushdate(1478546787).isoformat()
    '2016-11-07T19:26:27+00:00'

    :raises ParamsError: naming the value.
    """
    try:
        return _pushdate(value)
    except _Bad as e:
        raise ParamsError(f"invalid pushdate {value!r}: {e}") from None


def _pushdate(value: object) -> datetime.datetime:
    expected = "expected epoch seconds, an aware datetime or an ISO 8601 date-time with a timezone"
    if isinstance(value, bool):
        raise _Bad(expected)
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"[0-9]{1,12}(?:\.[0-9]+)?", text):
            value = float(text) if "." in text else int(text)
        else:
            if text.endswith(("Z", "z")):
                text = text[:-1] + "+00:00"
            try:
                value = datetime.datetime.fromisoformat(text)
            except ValueError:
                raise _Bad(expected) from None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise _Bad("the date-time has no timezone")
        return value.astimezone(datetime.timezone.utc)
    if isinstance(value, (int, float)):
        if value != value or value < 0:
            raise _Bad("expected non-negative epoch seconds")
        try:
            return datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):
            raise _Bad("out of range") from None
    raise _Bad(expected)


def _text(value: object, pattern: Union[re.Pattern[str], Callable[[str], bool]],
          expected: str) -> str:
    """``value`` if it is a string ``pattern`` matches (or the predicate ``pattern`` holds)."""
    ok = pattern.match if isinstance(pattern, re.Pattern) else pattern
    if not isinstance(value, str) or not ok(value):
        raise _Bad(expected)
    return value


def _repository(value: object) -> str:
    return _no_credentials(
        _text(value, _REPOSITORY, "expected a repository URL (https://, ssh://, git@ or file://)"))


def _no_credentials(text: str) -> str:
    # Copied into every task's env and the plan: a token in it would be published.
    user = text.partition("://")[2].partition("/")[0].rpartition("@")[0]
    if has_userinfo(text) and (not text.startswith("ssh://") or ":" in user):
        raise _Bad("it carries credentials (user:password@); give the URL without them")
    return text


def _level(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or value not in (1, 2, 3):
        raise _Bad("expected 1, 2 or 3")
    return value


def _owner(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 255 or "\n" in value:
        raise _Bad("expected a non-empty name or e-mail address of at most 255 characters")
    return value


def _pushlog_id(value: object) -> str:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    return _text(value, _PUSHLOG_ID, "expected a number")


_CHECKS: dict[str, Any] = {
    "level": _level,
    "project": lambda v: _text(
        v, _PROJECT, "expected letters, digits, '.', '-' and '_' (100 at most)"
    ),
    "pushdate": _pushdate,
    "head_repository": lambda v: _repository(v),
    "head_rev": lambda v: _text(v, _REV, "expected a revision of 12 to 64 lowercase hex digits"),
    "base_repository": lambda v: _repository(v),
    "owner": _owner,
    "source": lambda v: _no_credentials(
        _text(v, is_git_source, "expected a URL starting https://, http://, ssh:// or git@")),
    "decision_task_id": lambda v: _text(v, is_task_id, "expected a 22-character slugid"),
    "pushlog_id": _pushlog_id,
    "tasks_for": lambda v: _text(v, _TASKS_FOR, "expected e.g. hg-push, github-push or "
                                 "github-pull-request"),
    "build_date": lambda v: _build_date(v),
    "head_ref": lambda v: _text(v, _HEAD_REF, "expected a branch or ref name"),
}


def _build_date(value: object) -> int:
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 1 << 40:
        raise _Bad("expected epoch seconds")
    return value


def is_taskgraph_parameters(data: Mapping[str, Any]) -> bool:
    """Whether ``data`` is a parameters file a taskgraph decision wrote.

    >>> is_taskgraph_parameters({"build_date": 1, "repository_type": "git",
    ...                          "target_tasks_method": "default", "level": "3"})
    True
    """
    return all(k in data for k in _TASKGRAPH_MARKERS)


def split_taskgraph_parameters(data: Mapping[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Return the parameters of taskgraph's file ``data`` this library knows, and the
    names of the others: the repository's own, which its taskgraph extensions
    declare (taskgraph's schema lets them in) and which say nothing about images.
    """
    known = set(PARAM_NAMES) | set(TASKGRAPH_ONLY)
    ours = {k: v for k, v in data.items() if k in known}
    return ours, sorted(str(k) for k in data if k not in known)


@attrs.frozen
class Params:
    """Validated decision parameters; build one with :meth:`from_mapping`.

    ``pushdate`` is always an aware UTC datetime.
    """

    level: int
    project: str
    pushdate: datetime.datetime
    head_repository: str
    head_rev: str
    base_repository: str
    owner: str
    source: str
    decision_task_id: Optional[str] = None
    pushlog_id: Optional[str] = None
    #: What the decision task runs for (taskgraph's ``tasks_for``): ``hg-push``,
    #: ``github-push``, ``github-pull-request``, ... ``None`` is a push.
    tasks_for: Optional[str] = None
    #: taskgraph's ``build_date``: when the decision ran, epoch seconds; the
    #: date of taskgraph's ``pushdate`` index route (else :attr:`pushdate`).
    build_date: Optional[int] = None
    #: taskgraph's ``head_ref``: the branch or ref pushed (taskgraph 24.x reads
    #: it for pull requests, but no namespace holds it).
    head_ref: Optional[str] = None

    def __attrs_post_init__(self) -> None:
        # Direct construction and attrs.evolve get the same checks as from_mapping.
        values = _validate({name: getattr(self, name) for name in PARAM_NAMES})
        for name in PARAM_NAMES:
            object.__setattr__(self, name, values.get(name))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Params:
        """Validate ``data`` (parameter name -> value) and return the parameters.

        Values as a YAML/JSON file or the command line give them are accepted
        too: a level or epoch pushdate as a string of digits, an ISO 8601
        pushdate, a pushlog id as a number.

        :raises ParamsError: one line naming every missing, unknown or malformed parameter.
        """
        return cls(**_validate(data))

    @property
    def pushdate_epoch(self) -> int:
        """The push date as whole epoch seconds."""
        return int(self.pushdate.timestamp())

    @property
    def build_date_epoch(self) -> int:
        """taskgraph's ``build_date``, else the push date, as whole epoch seconds."""
        return self.pushdate_epoch if self.build_date is None else self.build_date

    def to_json(self) -> dict[str, Any]:
        """Return the parameters as JSON values (pushdate as epoch seconds when whole)."""
        result: dict[str, Any] = {}
        for name in PARAM_NAMES:
            value = getattr(self, name)
            if value is None:
                continue
            if name == "pushdate":
                stamp = value.timestamp()
                value = int(stamp) if stamp == int(stamp) else value.isoformat()
            result[name] = value
        return result


ParamsLike = Union[Params, Mapping[str, Any]]


def _validate(data: Mapping[str, Any]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ParamsError(
            f"invalid decision parameters: expected a mapping, got {type(data).__name__}"
        )
    problems: list[str] = []
    values: dict[str, Any] = {}
    for key in sorted(str(k) for k in data if k not in PARAM_NAMES and k not in TASKGRAPH_ONLY):
        problems.append(f"unknown parameter {key!r}")
    for name in PARAM_NAMES:
        value = data.get(name)
        if value is None:
            if name in REQUIRED:
                problems.append(f"{name} is missing")
            continue
        try:
            values[name] = _CHECKS[name](value)
        except _Bad as e:
            # A bounded, escaped prefix: a parameter may hold a token or a long text.
            shown = quote_value(value) if isinstance(value, str) else repr(value)[:QUOTE_LIMIT]
            problems.append(f"{name} {shown} is invalid ({e})")
    if problems:
        raise ParamsError("invalid decision parameters: " + "; ".join(problems))
    return values


def coerce_params(params: ParamsLike) -> Params:
    """Return ``params`` if it is :class:`Params`, else validate it as a mapping."""
    return params if isinstance(params, Params) else Params.from_mapping(params)
