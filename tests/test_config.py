"""The build-task config: defaults, YAML keys, errors naming the key and file."""

from __future__ import annotations

import datetime
import re
from pathlib import Path
from typing import Any

import attrs
import pytest
import taskcluster
from hypothesis import given
from hypothesis import strategies as st

from taskgraph_images.config import KEYS, BuildConfig, load_config, parse_config, parse_duration
from taskgraph_images.errors import ConfigError


def test_defaults_follow_the_seed_decision_task() -> None:
    c = BuildConfig()
    assert (c.provisioner_id, c.worker_type, c.scheduler_id) == (
        "aws-provisioner-v1",
        "taskcluster-images",
        "task-graph-scheduler",
    )
    assert c.deadline_after == datetime.timedelta(hours=24)
    assert c.expires_after == datetime.timedelta(days=365)
    assert (c.image_builder, c.index_prefix) == ("image_builder", "docker.images.v2")


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "build.yml"
    path.write_text("")
    assert attrs.evolve(load_config(path), source="<defaults>") == BuildConfig()


def test_yaml_keys_override_defaults(tmp_path: Path) -> None:
    path = tmp_path / "build.yml"
    path.write_text(
        "worker-type: images\nretries: 2\ndeadline-after: 2 hours\npriority: low\n"
        "env-names:\n  head-rev: HEAD_REV\nfeatures:\n  chainOfTrust: true\n"
        "command: [/bin/build]\ntreeherder: false\n"
    )
    c = load_config(path)
    assert (c.worker_type, c.retries, c.priority, c.treeherder) == ("images", 2, "low", False)
    assert c.deadline_after == datetime.timedelta(hours=2)
    assert c.env_name("head-rev") == "HEAD_REV"
    assert c.env_name("hash") == "HASH"
    assert c.features == (("chainOfTrust", True),)
    assert c.command == ("/bin/build",)


def test_task_queue_id_replaces_provisioner_and_worker_type() -> None:
    c = parse_config({"task-queue-id": "proj-images/builder"})
    assert (c.task_queue_id, c.provisioner_id, c.worker_type) == ("proj-images/builder", None, None)


def test_task_queue_id_with_worker_type_is_an_error() -> None:
    with pytest.raises(ConfigError, match="worker-type"):
        parse_config({"task-queue-id": "p/w", "worker-type": "x"})


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "build.yml"
    path.write_text("worker_type: images\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'worker_type'"):
        load_config(path)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("retries", "5"),
        ("retries", True),
        ("treeherder", "yes"),
        ("scopes", "a"),
        ("env", {"A": 1}),
        ("features", []),
        ("command", "build"),
        ("worker-type", 3),
    ],
)
def test_wrong_type_names_the_key(key: str, value: Any) -> None:
    with pytest.raises(ConfigError, match=rf"build.yml: {key}"):
        parse_config({key: value}, "build.yml")


@pytest.mark.parametrize(
    ("data", "key"),
    [
        ({"retries": 50}, "retries"),
        ({"priority": "urgent"}, "priority"),
        ({"deadline-after": "6 days"}, "deadline-after"),
        ({"worker-type": "Bad_Type"}, "worker-type"),
        ({"features": {"dind": True}}, "features.dind"),
        ({"env": {"HASH": "x"}}, "env.HASH"),
        ({"env-names": {"hash": "PROJECT"}}, "env-names"),
        ({"env-names": {"nope": "X"}}, "env-names.nope"),
        ({"artifact-expires-after": "2 years"}, "artifact-expires-after"),
        ({"index-prefix": "a..b"}, "index-prefix"),
        ({"cache-name": "x/{y}"}, "cache-name"),
        ({"max-run-time": 0}, "max-run-time"),
    ],
)
def test_bad_value_names_the_key(data: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError, match=rf"cfg: {key}"):
        parse_config(data, "cfg")


def test_not_a_mapping_is_an_error() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config(["x"], "cfg")


def test_invalid_yaml_has_position(tmp_path: Path) -> None:
    path = tmp_path / "build.yml"
    path.write_text("a: [\n")
    with pytest.raises(ConfigError, match=r"build.yml:\d+:\d+"):
        load_config(path)


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "absent.yml")


@pytest.mark.parametrize(("text", "seconds"), [
    ("24 hours", 86400), ("1 year", 365 * 86400), (90, 90), ("1 day 12 hours", 129600),
    ("2d", 172800), ("+90 min", 5400), ("1w", 604800),
])
def test_durations(text: Any, seconds: int) -> None:
    assert parse_duration(text) == datetime.timedelta(seconds=seconds)


@given(st.text(max_size=20))
def test_a_string_duration_is_what_fromnow_reads_when_positive(text: str) -> None:
    reference = datetime.datetime(5000, 1, 1)
    try:
        expected = taskcluster.fromNow(text, reference) - reference
    except (ValueError, OverflowError):
        expected = None
    if expected is not None and expected > datetime.timedelta(0):
        assert parse_duration(text, "deadline-after") == expected
    else:
        with pytest.raises(ConfigError, match="^deadline-after: invalid"):
            parse_duration(text, "deadline-after")


@pytest.mark.parametrize(("text", "why"), [
    ("soon", "expected one like"), ("1 fortnight", "expected one like"),
    ("2 Days", "expected one like"), (True, "or whole seconds"), (None, "or whole seconds"),
    ("99999999999 years", "too large"), (10**20, "too large"),
])
def test_bad_duration_is_refused(text: Any, why: str) -> None:
    with pytest.raises(ConfigError, match=f"^expires-after: invalid .*{why}"):
        parse_duration(text, "expires-after")


@pytest.mark.parametrize("text", ["0 hours", "", "-1h", "- 2 days", -3, 0])
def test_a_duration_must_be_positive(text: Any) -> None:
    with pytest.raises(ConfigError, match="durations must be positive"):
        parse_duration(text, "deadline-after")


def test_a_config_file_takes_the_clients_durations(tmp_path: Path) -> None:
    path = tmp_path / "images.yml"
    path.write_text("deadline-after: 1 day 12 hours\nexpires-after: 2w\n")
    config = load_config(path)
    assert config.deadline_after == datetime.timedelta(hours=36)
    assert config.expires_after == datetime.timedelta(weeks=2)


def test_a_bad_duration_in_a_file_names_the_file_and_key(tmp_path: Path) -> None:
    path = tmp_path / "images.yml"
    path.write_text("deadline-after: -1h\n")
    with pytest.raises(ConfigError, match=f"^{re.escape(str(path))}: deadline-after: invalid "
                                          "duration '-1h'"):
        load_config(path)


def test_cache_name_gets_the_level() -> None:
    assert BuildConfig().cache_for(3) == "level-3-imagebuilder-v1"


def test_every_key_is_documented() -> None:
    doc = (Path(__file__).resolve().parent.parent / "docs" / "tasks.rst").read_text()
    assert [k for k in KEYS if f"``{k}``" not in doc] == []


@given(
    st.dictionaries(
        st.sampled_from([*KEYS, "other"]),
        st.one_of(
            st.none(),
            st.integers(),
            st.text(max_size=12),
            st.booleans(),
            st.lists(st.text(max_size=5), max_size=2),
            st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2),
        ),
    )
)
def test_arbitrary_config_gives_config_or_config_error(data: dict[str, Any]) -> None:
    try:
        parse_config(data, "cfg")
    except ConfigError as e:
        assert "\n" not in str(e)
