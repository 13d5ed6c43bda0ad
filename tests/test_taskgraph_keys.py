"""taskgraph's docker-image digest recipe and namespaces, against the installed taskgraph."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any, Mapping, Optional

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from peer_taskgraph import peer, peer_image_tasks
from trees import make_tree

from taskgraph_images.errors import InvalidValueError
from taskgraph_images.keys.tar import context_hash
from taskgraph_images.keys.taskgraph import (
    CACHE_TYPE,
    IMAGE_BUILDER_IMAGE,
    DigestInputs,
    args_json,
    cache_namespace,
    cache_prefix,
    dependency,
    digest_of,
    index_routes,
    index_search,
    pull_request_namespace,
)

DIGEST = "0123456789abcdef" * 4


def our_tasks(root: Path, images: Mapping[str, Mapping[str, Any]], *,
              orjson: bool) -> dict[str, str]:
    """Each image's digest by our functions (parents first), from the image folders."""
    digests: dict[str, str] = {}

    def digest(name: str) -> str:
        if name not in digests:
            entry = images[name]
            folder = root / "taskcluster/docker" / entry.get("definition", name)
            files: dict[str, str | bytes] = {
                str(p.relative_to(folder)): str(p) for p in folder.rglob("*") if p.is_file()}
            files["Dockerfile"] = (folder / "Dockerfile").read_bytes()
            parent = entry.get("parent")
            digests[name] = DigestInputs(
                context_hash(files), entry.get("args"), orjson=orjson,
                parents={parent: digest(parent)} if parent else None).digest()
        return digests[name]

    for name in images:
        digest(name)
    return digests


def has_orjson() -> bool:
    return peer("taskgraph.util.json").orjson is not None


def tree(root: Path) -> Path:
    return make_tree(root, {
        "taskcluster/docker/base/Dockerfile": "FROM debian:12\nRUN true\n",
        "taskcluster/docker/base/setup.sh": "#!/bin/sh\n",
        "taskcluster/docker/child/Dockerfile": "FROM $DOCKER_IMAGE_PARENT\n",
        "taskcluster/docker/grandchild/Dockerfile": "FROM $DOCKER_IMAGE_PARENT\nRUN x\n",
        "taskcluster/docker/shared/Dockerfile": "FROM scratch\n",
    })


KIND = {
    "base": {"symbol": "I(b)", "args": {"VERSION": "1.2", "Ünïcode": "välue"}},
    "child": {"parent": "base"},
    "grandchild": {"parent": "child", "args": {"A": "1"}},
    "other-name": {"definition": "shared"},
}


# -- the digest ------------------------------------------------------------------------
def test_every_digest_is_taskgraphs_through_a_chain_of_parents(tmp_path: Path) -> None:
    tasks = peer_image_tasks(str(tree(tmp_path)), KIND)
    ours = our_tasks(tmp_path, KIND, orjson=has_orjson())
    for name in KIND:
        cached = tasks[f"docker-image-{name}"]["attributes"]["cached_task"]  # type: ignore[index]
        assert cached == {"type": CACHE_TYPE, "name": name, "digest": ours[name]}


def test_the_context_hash_is_the_hash_env_of_the_build_task(tmp_path: Path) -> None:
    tasks = peer_image_tasks(str(tree(tmp_path)), {"base": {}})
    folder = tmp_path / "taskcluster/docker/base"
    files: dict[str, str | bytes] = {"setup.sh": str(folder / "setup.sh"),
                                     "Dockerfile": (folder / "Dockerfile").read_bytes()}
    assert tasks["docker-image-base"]["worker"]["env"]["HASH"] == context_hash(  # type: ignore[index]
        files)


def test_an_image_with_cache_false_has_no_digest(tmp_path: Path) -> None:
    tasks = peer_image_tasks(str(tree(tmp_path)), {"base": {"cache": False}})
    assert "cached_task" not in tasks["docker-image-base"]["attributes"]  # type: ignore[operator]


def test_the_digest_lines_in_order() -> None:
    inputs = DigestInputs("c" * 64, {"B": "2", "A": "1"}, parents={"base": DIGEST},
                          dependencies=["packages/deb-x/" + "e" * 64])
    lines = inputs.lines()
    assert lines == [
        "c" * 64,
        '{"A":"1","B":"2"}',
        f"image-builder-image:{IMAGE_BUILDER_IMAGE}",
        f"docker-images.v2/base/{DIGEST}",
        "packages/deb-x/" + "e" * 64,
        "True",
    ]
    assert digest_of(lines) == hashlib.sha256("\n".join(lines).encode()).hexdigest()
    assert inputs.digest() == digest_of(lines)
    assert inputs == DigestInputs("c" * 64, {"A": "1", "B": "2"}, parents={"base": DIGEST},
                                  dependencies=("packages/deb-x/" + "e" * 64,))


def test_the_image_builder_is_taskgraphs() -> None:
    assert IMAGE_BUILDER_IMAGE == peer("taskgraph.transforms.docker_image").IMAGE_BUILDER_IMAGE


def test_chain_of_trust_and_the_builder_change_the_digest() -> None:
    plain = DigestInputs("c" * 64)
    assert attrs.evolve(plain, chain_of_trust=False).digest() != plain.digest()
    assert attrs.evolve(plain, image_builder="b@sha256:" + "0" * 64).digest() != plain.digest()
    assert attrs.evolve(plain, chain_of_trust=False).lines() == plain.lines()[:-1]


def test_a_dependency_is_type_name_digest() -> None:
    fmt = peer("taskgraph.transforms.cached_tasks").format_task_digest
    assert dependency("base", DIGEST) == fmt(
        {"type": CACHE_TYPE, "name": "base", "digest": DIGEST})
    assert dependency("x", DIGEST, "packages") == f"packages/x/{DIGEST}"


args_values = st.dictionaries(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12), max_size=5)


@settings(max_examples=150, deadline=None)
@given(args=args_values)
def test_args_json_is_taskgraphs_with_the_standard_library(args: dict[str, str]) -> None:
    module = peer("taskgraph.util.json")
    saved, module.orjson = module.orjson, None
    try:
        assert args_json(args) == module.dumps(args, sort_keys=True)
    finally:
        module.orjson = saved


@settings(max_examples=150, deadline=None)
@given(args=args_values)
def test_args_json_is_taskgraphs_with_orjson(args: dict[str, str]) -> None:
    module = peer("taskgraph.util.json")
    if module.orjson is None:
        pytest.importorskip("orjson")
    assert args_json(args, orjson=True) == module.dumps(args, sort_keys=True)


def test_no_args_is_an_empty_object() -> None:
    assert args_json() == args_json({}) == "{}"


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    depth=st.integers(1, 3),
    args=st.lists(args_values, min_size=3, max_size=3),
    scripts=st.lists(st.binary(max_size=600), min_size=3, max_size=3),
)
def test_generated_chains_digest_as_taskgraph_does(
        tmp_path_factory: pytest.TempPathFactory, depth: int,
        args: list[dict[str, str]], scripts: list[bytes]) -> None:
    root = tmp_path_factory.mktemp("repo")
    kind: dict[str, dict[str, Any]] = {}
    for i in range(depth):
        name = f"img{i}"
        make_tree(root, {
            f"taskcluster/docker/{name}/Dockerfile": "FROM debian\n" if i == 0 else
            "FROM $DOCKER_IMAGE_PARENT\n",
            f"taskcluster/docker/{name}/script": scripts[i],
        })
        kind[name] = {"args": args[i]} if args[i] else {}
        if i:
            kind[name]["parent"] = f"img{i - 1}"
    tasks = peer_image_tasks(str(root), kind)
    ours = our_tasks(root, kind, orjson=has_orjson())
    for name in kind:
        assert tasks[f"docker-image-{name}"]["attributes"][  # type: ignore[index]
            "cached_task"]["digest"] == ours[name]


# -- namespaces and routes -----------------------------------------------------------------
def peer_optimization(*, level: int, tasks_for: str, head_ref: str = "refs/heads/main",
                      build_date: int = 1_700_000_000, trust_domain: str = "myproject",
                      taskgraph_config: Optional[dict[str, Any]] = None,
                      ) -> dict[str, Any]:
    """What taskgraph's ``add_optimization`` gives a task for the digest ``DIGEST``."""
    cached = peer("taskgraph.util.cached_tasks")
    from taskgraph.config import GraphConfig
    from taskgraph.transforms.base import TransformConfig

    config = TransformConfig(
        kind="docker-image", path="", config={},
        params={"level": str(level), "tasks_for": tasks_for, "head_ref": head_ref,
                "build_date": build_date},
        kind_dependencies_tasks={},
        graph_config=GraphConfig({"trust-domain": trust_domain,
                                  "taskgraph": taskgraph_config or {}}, "/nowhere/taskcluster"),
        write_artifacts=False)
    task: dict[str, Any] = {"attributes": {}}
    cached.add_optimization(config, task, cache_type=CACHE_TYPE, cache_name="img",
                            digest=DIGEST)
    return task


TASKS_FOR = ["github-push", "github-pull-request", "github-pull-request-untrusted",
             "github-issue-comment", "github-release", "action", "cron", "hg-push"]


@pytest.mark.parametrize("tasks_for", TASKS_FOR)
@pytest.mark.parametrize("level", [1, 2, 3])
@pytest.mark.parametrize("cache_pull_requests", [True, False, None])
def test_search_and_routes_are_taskgraphs(tasks_for: str, level: int,
                                          cache_pull_requests: Optional[bool]) -> None:
    taskgraph_config = {} if cache_pull_requests is None else {
        "cache-pull-requests": cache_pull_requests}
    theirs = peer_optimization(level=level, tasks_for=tasks_for,
                               taskgraph_config=taskgraph_config)
    flag = cache_pull_requests is not False
    assert index_search("myproject", "img", DIGEST, level=level, tasks_for=tasks_for,
                        cache_pull_requests=flag) == theirs["optimization"]["index-search"]
    assert index_routes("myproject", "img", DIGEST, level=level, tasks_for=tasks_for,
                        build_date=1_700_000_000, cache_pull_requests=flag
                        ) == theirs.get("routes", [])


@settings(max_examples=80, deadline=None)
@given(build_date=st.integers(0, 4_102_444_800), level=st.sampled_from([1, 2, 3]),
       tasks_for=st.sampled_from(TASKS_FOR),
       prefix=st.sampled_from([None, "other-prefix", "a.b"]),
       head_ref=st.sampled_from(["refs/heads/feature", "feature", "refs/pull/1/head"]))
def test_generated_pushes_get_taskgraphs_namespaces(build_date: int, level: int,
                                                    tasks_for: str, prefix: Optional[str],
                                                    head_ref: str) -> None:
    config = {} if prefix is None else {"cached-task-prefix": prefix}
    theirs = peer_optimization(level=level, tasks_for=tasks_for, head_ref=head_ref,
                               build_date=build_date, trust_domain="domain",
                               taskgraph_config=config)
    start = cache_prefix("domain", prefix)
    assert index_search(start, "img", DIGEST, level=level, tasks_for=tasks_for) == theirs[
        "optimization"]["index-search"]
    assert index_routes(start, "img", DIGEST, level=level, tasks_for=tasks_for,
                        build_date=build_date) == theirs.get("routes", [])


def test_namespaces_spelled_out() -> None:
    assert cache_namespace("td", "img", DIGEST, level=3) == (
        f"td.cache.level-3.docker-images.v2.img.hash.{DIGEST}")
    assert pull_request_namespace("td", "img", DIGEST) == (
        f"td.cache.pr.docker-images.v2.img.hash.{DIGEST}")
    assert index_routes("td", "img", DIGEST, level=1, tasks_for="github-push",
                        build_date=0) == [
        f"index.td.cache.level-1.docker-images.v2.img.hash.{DIGEST}",
        "index.td.cache.level-1.docker-images.v2.img.latest",
        "index.td.cache.level-1.docker-images.v2.img.pushdate.1970.01.01.19700101000000",
    ]


@pytest.mark.parametrize("level", [0, 4, "3", True, None])
def test_a_level_other_than_1_2_3_is_refused(level: object) -> None:
    with pytest.raises(InvalidValueError, match="invalid level"):
        index_search("td", "img", DIGEST, level=level, tasks_for="github-push")  # type: ignore[arg-type]
    with pytest.raises(InvalidValueError, match="invalid level"):
        index_routes("td", "img", DIGEST, level=level, tasks_for="github-pull-request",  # type: ignore[arg-type]
                     build_date=0)
