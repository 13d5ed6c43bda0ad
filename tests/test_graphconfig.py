"""taskgraph's graph config as build-task config settings (``taskgraph_images.graphconfig``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from peer_taskgraph import peer
from trees import make_tree

from taskgraph_images.config import BuildConfig, parse_config
from taskgraph_images.errors import ConfigError
from taskgraph_images.graphconfig import (
    GRAPH_CONFIG_PATH,
    MAX_FILE_BYTES,
    Setting,
    graph_settings,
    kind_uses_taskgraph_transforms,
    read_graph_config,
    repository_settings,
    taskgraph_image_builder,
)
from taskgraph_images.keys.taskgraph import IMAGE_BUILDER_IMAGE

ALIAS = {"provisioner": "{trust-domain}-{level}", "implementation": "docker-worker",
         "os": "linux", "worker-type": "images"}


def settings(data: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    return {s.key: s.value for s in graph_settings(data, **kwargs)}


def test_what_the_graph_config_says_becomes_build_task_config_keys() -> None:
    data = {
        "trust-domain": "shaped",
        "task-priority": "low",
        "task-expires-after": "90 days",
        "taskgraph": {"cached-task-prefix": "shaped.images", "cache-pull-requests": False,
                      "register": "shaped_taskgraph:register", "repositories": {}},
        "workers": {"aliases": {"images": ALIAS, "b-linux": {**ALIAS, "worker-type": "linux"}}},
        "treeherder": {"group-names": {"I": "Docker images"}},
    }
    assert settings(data) == {
        "trust-domain": "shaped",
        "cached-task-prefix": "shaped.images",
        "cache-pull-requests": False,
        "expires-after": {"by-level": {1: "90 days", "default": "1 year"}},
        "priority": "low",
        "task-queue-id": "{trust-domain}-{level}/images",
    }
    config = parse_config(None, defaults=graph_settings(data))
    assert [config.at(level).task_queue_id for level in (1, 2, 3)] == [
        "shaped-1/images", "shaped-2/images", "shaped-3/images"]
    assert str(config.at(1).expires_after) == "90 days, 0:00:00"
    assert str(config.at(3).expires_after) == "365 days, 0:00:00"


@pytest.mark.parametrize(
    ("worker_type", "queues"),
    [
        ("{alias}", ["t-1/images", "t-2/images", "t-3/images"]),
        ({"by-level": {"3": "{alias}-gcp", "default": "{alias}"}},
         ["t-1/images", "t-2/images", "t-3/images-gcp"]),
        ({"by-level": {"[12]": "try", "default": "release"}}, ["t-1/try", "t-2/try", "t-3/release"]),
    ],
)
def test_the_images_alias_gives_the_queue_at_each_level_as_taskgraph_does(
    worker_type: Any, queues: list[str]
) -> None:
    data = {"trust-domain": "t", "workers": {"aliases": {"images": {**ALIAS, "worker-type": worker_type}}}}
    config = parse_config(None, defaults=graph_settings(data))
    assert [config.at(level).task_queue_id for level in (1, 2, 3)] == queues


@pytest.mark.parametrize(
    ("project", "priority"),
    [("release", "highest"), ("release-esr", "high"), ("try", "low"), (None, "low")],
)
def test_a_by_project_priority_is_decided_by_the_push_project(
    project: str | None, priority: str
) -> None:
    data = {"task-priority": {"by-project": {"release": "highest", "release-.*": "high",
                                             "default": "low"}}}
    assert settings(data, project=project)["priority"] == priority


def test_a_by_project_priority_without_default_waits_for_the_project() -> None:
    data = {"task-priority": {"by-project": {"release": "highest"}}}
    assert "priority" not in settings(data)
    with pytest.raises(ConfigError, match="task-priority: by-project: nothing for project 'try'"):
        settings(data, project="try")


def test_a_priority_may_differ_per_level() -> None:
    data = {"task-priority": {"by-level": {"3": "high", "default": "low"}}}
    assert settings(data)["priority"] == {"by-level": {1: "low", 2: "low", 3: "high"}}


@pytest.mark.parametrize(
    ("data", "says"),
    [
        ({"trust-domain": 3}, "trust-domain: expected a string"),
        ({"taskgraph": []}, "taskgraph: expected a mapping"),
        ({"taskgraph": {"cache-pull-requests": "no"}},
         "taskgraph.cache-pull-requests: expected true or false"),
        ({"task-expires-after": 90}, "task-expires-after: expected a time offset"),
        ({"task-priority": {"by-os": {"linux": "low"}}}, "task-priority: by-os is not supported"),
        ({"workers": {"aliases": {"images": {"provisioner": "p"}}}},
         "workers.aliases.images: has no worker-type"),
        ({"workers": {"aliases": {"images": "p/w"}}}, "workers.aliases.images: expected a mapping"),
        ({"workers": {"aliases": {"images": {**ALIAS, "worker-type": ["x"]}}}},
         "workers.aliases.images.worker-type: expected str, got list"),
    ],
)
def test_a_value_of_the_wrong_shape_names_the_file_and_key(data: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        graph_settings(data)
    assert str(info.value).startswith(f"{GRAPH_CONFIG_PATH}: {says}")


def test_a_bad_value_the_config_checks_names_where_it_came_from() -> None:
    data = {"workers": {"aliases": {"images": {**ALIAS, "worker-type": "Not_Valid"}}},
            "trust-domain": "t"}
    with pytest.raises(ConfigError) as info:
        parse_config(None, defaults=graph_settings(data))
    assert str(info.value).startswith(
        "taskcluster/config.yml (workers.aliases.images): task-queue-id: 't-1/Not_Valid' is not")


def test_our_settings_win_key_by_key_and_origins_say_who_set_what() -> None:
    defaults = [Setting("priority", "low", "taskcluster/config.yml (task-priority)"),
                Setting("trust-domain", "t", "taskcluster/config.yml (trust-domain)")]
    config = parse_config({"priority": "high"}, "ours.yml", defaults=defaults)
    assert (config.priority, config.trust_domain) == ("high", "t")
    assert dict(config.origins) == {"priority": "ours.yml",
                                    "trust-domain": "taskcluster/config.yml (trust-domain)"}
    assert BuildConfig().origins == ()


KIND = "taskcluster/kinds/docker-image/kind.yml"


@pytest.mark.parametrize(
    ("transforms", "theirs"),
    [
        (["taskgraph.transforms.docker_image:transforms", "taskgraph.transforms.task:transforms"],
         True),
        (["my_project.transforms.images:transforms"], False),
    ],
)
def test_a_kind_run_by_taskgraphs_transforms_makes_taskgraphs_keys_the_defaults(
    tmp_path: Path, transforms: list[str], theirs: bool
) -> None:
    make_tree(tmp_path, {
        GRAPH_CONFIG_PATH: "trust-domain: t\n",
        KIND: "transforms:\n" + "".join(f"  - {t}\n" for t in transforms) + "tasks: {}\n",
    })
    assert kind_uses_taskgraph_transforms(str(tmp_path), KIND) is theirs
    found = {s.key: s.value for s in repository_settings(str(tmp_path), KIND)}
    if theirs:
        assert found == {"trust-domain": "t", "cache-keys": "taskgraph",
                         "image-builder": taskgraph_image_builder()}
    else:
        assert found == {"trust-domain": "t"}


def test_a_repository_without_a_graph_config_gets_no_settings(tmp_path: Path) -> None:
    make_tree(tmp_path, {KIND: "transforms:\n  - taskgraph.transforms.docker_image:transforms\n"})
    assert repository_settings(str(tmp_path), KIND) == []


def _builder_with(path: list[str], hide_taskgraph: bool = False) -> str:
    """``taskgraph_image_builder()`` in a fresh interpreter with ``path`` first on sys.path."""
    code = ("import sys; sys.path[:0] = sys.argv[1:]\n"
            + ("sys.modules['taskgraph'] = None\n" if hide_taskgraph else "")
            + "from taskgraph_images.graphconfig import taskgraph_image_builder\n"
            "print(taskgraph_image_builder())\n")
    return subprocess.run([sys.executable, "-c", code, *path], capture_output=True, text=True,
                          check=True).stdout.strip()


def test_the_image_builder_is_the_installed_taskgraphs_else_the_newest_tested(
    tmp_path: Path,
) -> None:
    theirs = peer("taskgraph.transforms.docker_image").IMAGE_BUILDER_IMAGE
    assert taskgraph_image_builder() == theirs
    assert _builder_with([], hide_taskgraph=True) == IMAGE_BUILDER_IMAGE
    # Another release's constant is read from its file, without importing it.
    make_tree(tmp_path, {
        "taskgraph/__init__.py": "raise ImportError('never imported')\n",
        "taskgraph/transforms/docker_image.py":
            'IMAGE_BUILDER_IMAGE = (\n    "example/image_builder:9.0"\n    "@sha256:" "ab12"\n)\n',
    })
    assert _builder_with([str(tmp_path)]) == "example/image_builder:9.0@sha256:ab12"


def test_the_graph_config_is_read_only_as_a_bounded_regular_file_inside_the_root(
    tmp_path: Path,
) -> None:
    root = tmp_path / "repo"
    make_tree(root, {"README.md": "x\n"})
    (tmp_path / "outside.yml").write_text("trust-domain: stolen\n")
    (root / "taskcluster").mkdir()
    os.symlink(tmp_path / "outside.yml", root / GRAPH_CONFIG_PATH)
    with pytest.raises(ConfigError, match="graph config taskcluster/config.yml leaves the repository"):
        read_graph_config(str(root))
    os.unlink(root / GRAPH_CONFIG_PATH)
    (root / GRAPH_CONFIG_PATH).write_text("x: " + "y" * MAX_FILE_BYTES + "\n")
    with pytest.raises(ConfigError, match="graph config taskcluster/config.yml is .* bytes, more than"):
        read_graph_config(str(root))
    (root / GRAPH_CONFIG_PATH).write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        read_graph_config(str(root))
    (root / GRAPH_CONFIG_PATH).write_text("trust-domain: [unclosed\n")
    with pytest.raises(ConfigError, match=r"taskcluster/config.yml:2:1: "):
        read_graph_config(str(root))
