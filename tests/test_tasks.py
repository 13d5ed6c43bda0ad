"""Build-task definitions: every field, and every generated task valid against the schemas."""

from __future__ import annotations

import datetime
import json
from typing import Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from plan_helpers import NOW, params
from tcschemas import errors

from taskgraph_images.config import LOCAL_TASK_QUEUE, BuildConfig, parse_config
from taskgraph_images.errors import InvalidValueError
from taskgraph_images.tasks import BuildSpec, TaskImage, build_task, treeherder_symbol

DIGEST = "ab" * 32
PARENT_TASK = "Q2vWBHd8Rgu1dIUEtEfJ0Q"
BUILDER_TASK = "aWqMYsuhQ6yvvKr-5DXpkw"
DECISION = "fXhVfPQPRBm5eXhvRl_2Mw"
SPEC = BuildSpec(
    task_id="MjvsYq9NQ0GbFKY7TUDMFg",
    name="tester",
    digest=DIGEST,
    context_path="taskcluster/docker/tester",
    builder="taskcluster/image_builder:0.2.0",
)


def task(spec: BuildSpec = SPEC, config: BuildConfig | None = None, **param_changes: Any) -> dict[str, Any]:
    return build_task(spec, params(**param_changes), config or BuildConfig(), NOW)


def assert_valid(definition: dict[str, Any]) -> None:
    assert errors(definition, "queue/v1/create-task-request.json") == []
    assert errors(definition["payload"], "docker-worker/v1/payload.json") == []


def test_default_task_validates_against_both_schemas() -> None:
    assert_valid(task())


def test_routes_are_the_three_index_namespaces_then_treeherder() -> None:
    assert task()["routes"] == [
        "index.docker.images.v2.level-3.tester.latest",
        "index.docker.images.v2.level-3.tester.pushdate.2016.11-07-192627",
        f"index.docker.images.v2.level-3.tester.hash.{DIGEST}",
        "tc-treeherder.v2.mozilla-central.0123456789abcdef0123456789abcdef01234567",
    ]


def test_pushlog_id_joins_the_treeherder_route() -> None:
    assert task(pushlog_id="42")["routes"][-1] == (
        "tc-treeherder.v2.mozilla-central.0123456789abcdef0123456789abcdef01234567.42")


def test_scopes_cover_the_level_index_routes_cache_and_disable_seccomp() -> None:
    assert task()["scopes"] == [
        "docker-worker:cache:level-3-imagebuilder-v1",
        "docker-worker:capability:disableSeccomp",
        "queue:route:index.docker.images.v2.level-3.*",
        "queue:route:tc-treeherder.v2.mozilla-central.*",
    ]


def test_exact_route_scopes_name_each_route() -> None:
    t = task(config=BuildConfig(exact_route_scopes=True, treeherder=False))
    assert [s for s in t["scopes"] if s.startswith("queue:route:")] == [
        f"queue:route:{r}" for r in sorted(t["routes"])
    ]


def test_times_count_from_now() -> None:
    t = task()
    assert (t["created"], t["deadline"], t["expires"]) == (
        "2016-11-07T19:30:00.000Z",
        "2016-11-08T19:30:00.000Z",
        "2017-11-07T19:30:00.000Z",
    )
    assert t["payload"]["artifacts"]["public/image.tar.zst"] == {
        "type": "file",
        "path": "/builds/worker/artifacts/image.tar.zst",
        "expires": "2017-11-07T19:30:00.000Z",
    }


def test_env_carries_digest_project_image_and_repositories() -> None:
    assert task()["payload"]["env"] == {
        "CONTEXT_PATH": "taskcluster/docker/tester",
        "GECKO_BASE_REPOSITORY": "https://hg.mozilla.org/mozilla-central",
        "GECKO_HEAD_REPOSITORY": "https://hg.mozilla.org/mozilla-central",
        "GECKO_HEAD_REV": "0123456789abcdef0123456789abcdef01234567",
        "HASH": DIGEST,
        "IMAGE_NAME": "tester",
        "PROJECT": "mozilla-central",
        "DOCKER_IMAGE_ZSTD_LEVEL": "10",
        "IMAGE_ARTIFACT_PATH": "/builds/worker/artifacts/image.tar.zst",
    }


def test_config_path_goes_to_the_env_when_the_plan_used_a_file() -> None:
    env = task(attrs.evolve(SPEC, config_path="taskcluster/taskgraph-images.yml"))["payload"]["env"]
    assert env["TASKGRAPH_IMAGES_CONFIG"] == "taskcluster/taskgraph-images.yml"
    assert "TASKGRAPH_IMAGES_CONFIG" not in task()["payload"]["env"]


def test_payload_runs_the_in_task_builder_with_seccomp_off_and_never_privileged() -> None:
    payload = task()["payload"]
    assert payload["command"] == ["taskgraph-images", "build-in-task"]
    assert payload["capabilities"] == {"disableSeccomp": True}
    assert payload["features"] == {"chainOfTrust": True, "taskclusterProxy": True}
    assert payload["artifacts"]["public/image.tar.zst"]["path"] == payload["env"][
        "IMAGE_ARTIFACT_PATH"
    ]


def test_features_can_be_turned_off_and_others_on() -> None:
    config = parse_config({"features": {"taskclusterProxy": False, "allowPtrace": True}})
    assert task(config=config)["payload"]["features"] == {"allowPtrace": True, "chainOfTrust": True}
    off = parse_config({"features": {"taskclusterProxy": False, "chainOfTrust": False}})
    assert "features" not in task(config=off)["payload"]


@pytest.mark.parametrize(("level", "zstd", "days"), [(1, "3", 28), (2, "10", 365), (3, "10", 365)])
def test_zstd_level_and_expiry_follow_the_level(level: int, zstd: str, days: int) -> None:
    t = task(level=level)
    assert t["payload"]["env"]["DOCKER_IMAGE_ZSTD_LEVEL"] == zstd
    expires = NOW + datetime.timedelta(days=days)
    assert t["expires"] == t["payload"]["artifacts"]["public/image.tar.zst"]["expires"]
    assert t["expires"] == expires.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def test_default_queue_is_the_local_placeholder_and_the_scheduler_the_queues_default() -> None:
    t = task()
    assert (t["taskQueueId"], t["schedulerId"]) == (LOCAL_TASK_QUEUE, "-")
    assert "provisionerId" not in t and "workerType" not in t


def test_per_level_values_reach_the_task() -> None:
    config = parse_config(
        {
            "trust-domain": "gecko",
            "task-queue-id": "{trust-domain}-{level}/images",
            "scheduler-id": {"by-level": {3: "gecko-level-3", "default": "gecko-level-{level}"}},
            "priority": {"by-level": {1: "low"}},
            "cache-name": "{trust-domain}-level-{level}-checkouts",
            "max-run-time": {"by-level": {3: 7200, "default": 1800}},
            "zstd-level": {"by-level": {3: 19}},
        }
    )
    one, three = task(config=config, level=1), task(config=config, level=3)
    assert (one["taskQueueId"], three["taskQueueId"]) == ("gecko-1/images", "gecko-3/images")
    assert (one["schedulerId"], three["schedulerId"]) == ("gecko-level-1", "gecko-level-3")
    assert (one.get("priority"), three.get("priority")) == ("low", None)
    assert list(three["payload"]["cache"]) == ["gecko-level-3-checkouts"]
    assert "docker-worker:cache:gecko-level-1-checkouts" in one["scopes"]
    assert (one["payload"]["maxRunTime"], three["payload"]["maxRunTime"]) == (1800, 7200)
    zstd = [t["payload"]["env"]["DOCKER_IMAGE_ZSTD_LEVEL"] for t in (one, three)]
    assert zstd == ["3", "19"]
    assert_valid(one)
    assert_valid(three)


def test_treeherder_platform_and_collection_are_apart() -> None:
    th = task()["extra"]["treeherder"]
    assert (th["machine"], th["collection"]) == ({"platform": "taskcluster-images"}, {"opt": True})
    config = parse_config({"treeherder-platform": "linux64", "treeherder-collection": "debug"})
    th = task(config=config)["extra"]["treeherder"]
    assert (th["machine"], th["collection"]) == ({"platform": "linux64"}, {"debug": True})


def test_chain_of_trust_names_the_task_that_built_the_image_builder() -> None:
    t = task(attrs.evolve(SPEC, builder=TaskImage(BUILDER_TASK)))
    assert t["extra"]["chainOfTrust"] == {"inputs": {"docker-image": BUILDER_TASK}}
    assert "chainOfTrust" not in task()["extra"]  # a registry image: nothing to verify
    off = parse_config({"features": {"chainOfTrust": False}})
    assert "chainOfTrust" not in task(attrs.evolve(SPEC, builder=TaskImage(BUILDER_TASK)), off)[
        "extra"
    ]


def test_parent_task_and_build_args_go_to_the_env() -> None:
    spec = attrs.evolve(SPEC, parent_task_id=PARENT_TASK, args=(("A", "1"), ("B", "x y")))
    env = task(spec)["payload"]["env"]
    assert env["DOCKER_IMAGE_PARENT_TASK"] == PARENT_TASK
    assert json.loads(env["DOCKER_BUILD_ARGS"]) == {"A": "1", "B": "x y"}


def test_env_names_are_configurable() -> None:
    config = parse_config({"env-names": {"head-rev": "HEAD_REV", "base-repository": "BASE"}})
    env = task(config=config)["payload"]["env"]
    assert env["HEAD_REV"] == params().head_rev and "GECKO_HEAD_REV" not in env and "BASE" in env


def test_task_image_builder_is_a_task_image_reference() -> None:
    spec = attrs.evolve(SPEC, builder=TaskImage(BUILDER_TASK))
    t = task(spec)
    assert t["payload"]["image"] == {
        "type": "task-image",
        "path": "public/image.tar.zst",
        "taskId": BUILDER_TASK,
    }
    assert_valid(t)


def test_dependencies_then_decision_task_and_group() -> None:
    spec = attrs.evolve(SPEC, dependencies=(BUILDER_TASK, PARENT_TASK))
    t = task(spec, decision_task_id=DECISION)
    assert t["dependencies"] == [BUILDER_TASK, PARENT_TASK, DECISION]
    assert t["taskGroupId"] == DECISION


def test_no_decision_task_means_no_group() -> None:
    assert "taskGroupId" not in task()


def test_metadata_names_the_image_and_the_push() -> None:
    meta = task()["metadata"]
    assert meta["name"] == "Docker image build: tester"
    assert (meta["owner"], meta["source"]) == (params().owner, params().source)


def test_image_meta_and_treeherder_extra() -> None:
    extra = task(attrs.evolve(SPEC, symbol="I(te)"))["extra"]
    assert extra["imageMeta"] == {"level": 3, "contextHash": DIGEST, "imageName": "tester"}
    assert (extra["treeherder"]["groupSymbol"], extra["treeherder"]["symbol"]) == ("I", "te")


def test_treeherder_off_drops_routes_and_extra() -> None:
    t = task(config=BuildConfig(treeherder=False))
    assert "treeherder" not in t["extra"]
    assert all(r.startswith("index.") for r in t["routes"])


@pytest.mark.parametrize(
    ("symbol", "expected"), [("I(py)", ("I", "py")), ("py", ("I", "py")), (None, ("I", "tester"))]
)
def test_treeherder_symbols(symbol: str | None, expected: tuple[str, str]) -> None:
    assert treeherder_symbol("tester", symbol, "I") == expected


def test_task_queue_id_and_priority_and_command_from_the_config() -> None:
    config = parse_config(
        {
            "task-queue-id": "proj-images/builder",
            "priority": "high",
            "command": ["/bin/sh", "-c", "build"],
            "project-id": "images",
        }
    )
    t = task(config=config)
    assert t["taskQueueId"] == "proj-images/builder"
    assert (t["priority"], t["projectId"]) == ("high", "images")
    assert t["payload"]["command"] == ["/bin/sh", "-c", "build"]
    assert_valid(t)


def test_no_cache_means_no_cache_scope() -> None:
    t = task(config=BuildConfig(cache_name=None))
    assert "cache" not in t["payload"]
    assert not any(s.startswith("docker-worker:cache:") for s in t["scopes"])


def test_naive_now_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="timezone"):
        build_task(SPEC, params(), BuildConfig(), datetime.datetime(2016, 1, 1))


def _by_level(values: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return st.dictionaries(st.sampled_from([1, 2, 3, "2", "default"]), values, max_size=3).map(
        lambda levels: {"by-level": levels}
    )


_configs = st.fixed_dictionaries(
    {"trust-domain": st.sampled_from(["gecko", "app-services"])},
    optional={
        "task-queue-id": st.one_of(
            st.sampled_from(["p-1/w-1", "proj_x/images", "{trust-domain}-{level}/images"]),
            _by_level(st.sampled_from(["p-1/w-1", "d-{level}/b-{level}"])),
        ),
        "scheduler-id": st.one_of(
            st.sampled_from(["-", "{trust-domain}-level-{level}"]),
            _by_level(st.sampled_from(["x", "y-{level}"])),
        ),
        "priority": st.one_of(st.sampled_from(["lowest", "high"]),
                              _by_level(st.sampled_from(["low", "very-high"]))),
        "retries": st.integers(0, 49),
        "max-run-time": st.one_of(st.integers(1, 86400), _by_level(st.integers(1, 86400))),
        "zstd-level": st.one_of(st.integers(1, 22), _by_level(st.integers(1, 22))),
        "expires-after": _by_level(st.sampled_from(["2 days", "28 days", "1 year"])),
        "treeherder": st.booleans(),
        "treeherder-collection": st.sampled_from(["opt", "debug"]),
        "exact-route-scopes": st.booleans(),
        "cache-name": st.one_of(
            st.none(), st.just("images-{level}"), _by_level(st.sampled_from(["a", "{trust-domain}"]))
        ),
        "features": st.dictionaries(
            st.sampled_from(["chainOfTrust", "taskclusterProxy", "allowPtrace"]), st.booleans(),
            max_size=3,
        ),
        "command": st.lists(st.text("abc/-", min_size=1, max_size=5), min_size=1, max_size=3),
        "env": st.dictionaries(st.sampled_from(["X", "MOZ_Y"]), st.text(max_size=5), max_size=2),
    },
)


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_configs, st.sampled_from([1, 2, 3]), st.booleans(), st.booleans(), st.booleans())
def test_every_generated_task_validates(
    data: dict[str, Any], level: int, with_parent: bool, with_decision: bool, task_builder: bool
) -> None:
    spec = attrs.evolve(
        SPEC,
        builder=TaskImage(BUILDER_TASK) if task_builder else SPEC.builder,
        config_path="taskcluster/taskgraph-images.yml",
        parent_task_id=PARENT_TASK if with_parent else None,
        dependencies=(PARENT_TASK,) if with_parent else (),
        args=(("V", "1"),),
    )
    changes: dict[str, Any] = {"level": level}
    if with_decision:
        changes["decision_task_id"] = DECISION
    assert_valid(task(spec, parse_config(data), **changes))
