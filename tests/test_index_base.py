"""The values lookups pass around: artifact names, verdicts."""

from __future__ import annotations

import datetime

import pytest

from taskgraph_images.errors import InvalidValueError
from taskgraph_images.index._base import Usability, validate_artifact_name, verdict

UTC = datetime.timezone.utc
NOW = datetime.datetime(2020, 1, 1, tzinfo=UTC)


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
