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

from taskgraph_images.config import (
    DEFAULT_CONFIG_PATH,
    KEYS,
    BuildConfig,
    find_config,
    load_config,
    parse_config,
    parse_duration,
)
from taskgraph_images.errors import ConfigError


def test_defaults_serve_the_local_loop_and_name_no_real_queue() -> None:
    c = BuildConfig()
    at1, at3 = c.at(1), c.at(3)
    assert (at1.task_queue_id, at1.scheduler_id) == (None, "-")
    assert at1.deadline_after == datetime.timedelta(hours=24)
    assert (at1.expires_after, at3.expires_after) == (
        datetime.timedelta(days=28),
        datetime.timedelta(days=365),
    )
    assert (at1.zstd_level, c.at(2).zstd_level, at3.zstd_level) == (3, 10, 10)
    assert at3.artifact_expires_after == at3.expires_after
    assert c.command == ("taskgraph-images", "build-in-task")
    assert dict(c.features) == {"chainOfTrust": True, "taskclusterProxy": True}
    assert (c.treeherder_platform, c.treeherder_collection) == ("taskcluster-images", "opt")
    assert (c.image_builder, c.index_prefix) == ("image_builder", "docker.images.v2")


def test_no_default_is_a_2016_value() -> None:
    text = repr(BuildConfig())
    for old in ("aws-provisioner-v1", "task-graph-scheduler", "taskcluster-images/"):
        assert old not in text


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "build.yml"
    path.write_text("")
    c = load_config(path)
    assert c.path == str(path)
    assert attrs.evolve(c, source="<defaults>", path=None) == BuildConfig()


def test_yaml_keys_override_defaults(tmp_path: Path) -> None:
    path = tmp_path / "build.yml"
    path.write_text(
        "task-queue-id: proj-images/builder\nretries: 2\ndeadline-after: 2 hours\npriority: low\n"
        "env-names:\n  head-rev: HEAD_REV\nfeatures:\n  allowPtrace: true\n"
        "command: [/bin/build]\ntreeherder: false\n"
    )
    c = load_config(path)
    assert (c.task_queue_id, c.retries, c.priority, c.treeherder) == (
        "proj-images/builder", 2, "low", False)
    assert c.deadline_after == datetime.timedelta(hours=2)
    assert c.env_name("head-rev") == "HEAD_REV"
    assert c.env_name("hash") == "HASH"
    assert c.env_name("zstd-level") == "DOCKER_IMAGE_ZSTD_LEVEL"
    assert dict(c.features) == {"allowPtrace": True, "chainOfTrust": True, "taskclusterProxy": True}
    assert c.command == ("/bin/build",)


@pytest.mark.parametrize(
    ("key", "replacement"),
    [
        ("provisioner-id", "replaced by task-queue-id"),
        ("worker-type", "replaced by task-queue-id"),
        ("privileged", "disableSeccomp"),
    ],
)
def test_retired_keys_say_what_replaced_them(key: str, replacement: str) -> None:
    with pytest.raises(ConfigError, match=rf"cfg: {key}: .*{replacement}"):
        parse_config({key: "x"}, "cfg")


def test_placeholders_take_the_level_and_trust_domain() -> None:
    c = parse_config(
        {
            "trust-domain": "gecko",
            "task-queue-id": "{trust-domain}-{level}/images",
            "scheduler-id": "{trust-domain}-level-{level}",
            "cache-name": "{trust-domain}-level-{level}-imagebuilder-v1",
        }
    )
    assert (c.at(1).task_queue_id, c.at(3).task_queue_id) == ("gecko-1/images", "gecko-3/images")
    assert c.at(2).scheduler_id == "gecko-level-2"
    assert c.cache_for(3) == "gecko-level-3-imagebuilder-v1"


def test_by_level_gives_each_level_its_value_then_default_then_builtin() -> None:
    c = parse_config(
        {
            "task-queue-id": {"by-level": {3: "proj-3/images", "default": "proj-1/images"}},
            "zstd-level": {"by-level": {"1": 1}},
            "expires-after": {"by-level": {2: "3 days"}},
        }
    )
    assert [c.at(n).task_queue_id for n in (1, 2, 3)] == [
        "proj-1/images", "proj-1/images", "proj-3/images"]
    assert [c.at(n).zstd_level for n in (1, 2, 3)] == [1, 10, 10]
    assert [c.at(n).expires_after.days for n in (1, 2, 3)] == [28, 3, 365]


def test_a_plain_value_is_the_same_at_every_level() -> None:
    c = parse_config({"expires-after": "2 years", "zstd-level": 19})
    assert {c.at(n).expires_after.days for n in (1, 2, 3)} == {730}
    assert {c.at(n).zstd_level for n in (1, 2, 3)} == {19}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"zstd-level": {"by-level": {4: 3}}}, r"zstd-level.by-level: unknown level 4"),
        ({"zstd-level": {"by-level": {True: 3}}}, r"zstd-level.by-level: unknown level True"),
        ({"zstd-level": {"by-level": {"level-3": 3}}}, r"zstd-level.by-level: unknown level 'level-3'"),
        ({"zstd-level": {"by-project": {1: 3}}}, r"zstd-level: expected a value or by-level"),
        ({"zstd-level": {"by-level": [1]}}, r"zstd-level: expected a value or by-level"),
        ({"zstd-level": {"by-level": {3: 23}}}, r"zstd-level: 23 is not between 1 and 22 \(at level 3\)"),
        ({"zstd-level": {"by-level": {3: "high"}}}, r"zstd-level.by-level.3: expected an integer"),
        ({"zstd-level": 0}, r"zstd-level: 0 is not between 1 and 22$"),
        ({"task-queue-id": "{trust-domain}/images"}, r"task-queue-id: \{trust-domain\} needs trust-domain"),
        ({"task-queue-id": "{project}-{level}/images"}, r"task-queue-id: unknown placeholder \{project\}"),
        ({"task-queue-id": "p/w", "trust-domain": "a..b"}, r"trust-domain: invalid trust domain"),
        ({"task-queue-id": {"by-level": {1: "no-slash"}}}, r"task-queue-id: 'no-slash' is not"),
        ({"expires-after": {"by-level": {1: "1 hour"}}}, r"expires-after: a task cannot expire"),
        ({"treeherder-platform": "taskcluster-images/opt"}, r"treeherder-platform: .*treeherder-collection"),
        ({"treeherder-collection": "Opt!"}, r"treeherder-collection: invalid collection"),
        ({"command": None}, r"command: expected a list of strings"),
    ],
)
def test_bad_per_level_values_name_key_and_file(data: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=rf"^cfg: {message}"):
        parse_config(data, "cfg")


def test_level_outside_1_to_3_is_refused() -> None:
    with pytest.raises(ConfigError, match="there is no level 4"):
        BuildConfig().at(4)


def test_require_queue_names_the_key_to_set() -> None:
    with pytest.raises(ConfigError, match=r"task-queue-id is not set \(at level 3\), but x: "
                       r"add the line `task-queue-id: \"\{trust-domain\}-\{level\}/images\"` to cfg"):
        parse_config({"task-queue-id": {"by-level": {1: "p-1/images"}}}, "cfg").require_queue(3, "x")
    with pytest.raises(ConfigError, match="to taskcluster/taskgraph-images.yml"):
        BuildConfig().require_queue(3, "x")
    BuildConfig(task_queue_id="p-1/images").require_queue(3, "x")


def test_find_config_looks_at_the_default_path(tmp_path: Path) -> None:
    assert find_config(tmp_path) is None
    path = tmp_path / DEFAULT_CONFIG_PATH
    path.parent.mkdir(parents=True)
    path.write_text("zstd-level: 5\n")
    assert find_config(tmp_path) == str(path)


def test_unknown_key_names_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "build.yml"
    path.write_text("task_queue_id: p/w\n")
    with pytest.raises(ConfigError, match=rf"{path}: unknown key 'task_queue_id'"):
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
        ("task-queue-id", 3),
        ("zstd-level", "3"),
        ("trust-domain", 1),
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
        ({"task-queue-id": "p/Bad_Type"}, "task-queue-id"),
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
