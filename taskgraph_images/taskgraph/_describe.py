"""The task description of one ``docker-image`` task, as taskgraph 24.x's transform writes it (pure).

taskgraph's ``cached_tasks`` and ``task`` transforms run after ours and read
this description, so it is the same to the key: the label
``docker-image-{name}``, the attributes, the worker (the image builder, its
artifact and environment), the dependencies on the parent image and the
package tasks, the Treeherder symbol, the ``index`` as written, and the
``cache`` entry whose ``digest-data`` ``cached_tasks`` folds into the digest
(:class:`~taskgraph_images.keys.taskgraph.DigestInputs` gives its lines).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Mapping, Optional

import attrs

from taskgraph_images.keys.taskgraph import CACHE_TYPE, IMAGE_BUILDER_IMAGE, DigestInputs
from taskgraph_images.taskgraph._kind import KindTask

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.config import BuildConfig

__all__ = ["BUILDER_ATTRIBUTE", "CONTEXTS_DIR", "SECCOMP_SCOPE", "InTaskBuilder", "Push",
           "build_args_json", "context_file", "describe", "payload"]

#: Where a decision that writes artifacts puts each image's context, as ``NAME.tar.gz``.
CONTEXTS_DIR = "docker-contexts"


@attrs.frozen
class Push:
    """What a description takes from the decision's parameters and graph config."""

    level: str
    project: str
    base_repository: str
    head_repository: str
    head_rev: str
    repository_type: str
    #: The graph config's ``task-expires-after`` (level 1 images expire then).
    task_expires_after: str = "28 days"
    #: Whether ``orjson`` writes taskgraph's JSON (see :func:`~taskgraph_images.keys.taskgraph.args_json`).
    orjson: bool = False

    @classmethod
    def from_taskgraph(cls, params: Mapping[str, Any], graph_config: Any, orjson: bool) -> Push:
        """From taskgraph's ``Parameters`` and ``GraphConfig``."""
        return cls(level=params["level"], project=params["project"],
                   base_repository=params["base_repository"],
                   head_repository=params["head_repository"], head_rev=params["head_rev"],
                   repository_type=params["repository_type"],
                   task_expires_after=graph_config.get("task-expires-after", "28 days"),
                   orjson=orjson)


def build_args_json(args: Mapping[str, str], *, orjson: bool = False) -> str:
    """``DOCKER_BUILD_ARGS`` as taskgraph writes it: compact JSON, in the entry's order.

    >>> build_args_json({"B": "2", "A": "1"})
    '{"B":"2","A":"1"}'
    """
    return json.dumps(dict(args), separators=(",", ":"), ensure_ascii=not orjson)


@attrs.frozen
class InTaskBuilder:
    """Our in-task builder, as the build-task config (``builder: taskgraph-images``) names it."""

    #: The image the task runs in (a registry tag); the digests name it.
    image: str
    command: tuple[str, ...]
    #: The variable name of each role the builder reads (``env-names``).
    env_names: tuple[tuple[str, str], ...]
    artifact_name: str
    artifact_path: str
    manifest_artifact: str
    #: The build-task config, from the repository root (the builder reads it).
    config_path: str

    @classmethod
    def from_config(cls, config: BuildConfig, config_path: str) -> InTaskBuilder:
        """From a build-task config read from ``config_path``."""
        return cls(image=config.image_builder, command=config.command,
                   env_names=config.env_names, artifact_name=config.artifact_name,
                   artifact_path=config.artifact_path,
                   manifest_artifact=config.manifest_artifact, config_path=config_path)


#: The attribute that marks a task our in-task builder runs, for :func:`payload`.
BUILDER_ATTRIBUTE = "taskgraph_images_builder"


def describe(task: KindTask, push: Push, context_hash: str, *, cached: bool,
             builder: Optional[InTaskBuilder] = None, digest: Optional[str] = None,
             ) -> dict[str, Any]:
    """The description taskgraph's ``docker_image`` transform yields for ``task``.

    ``context_hash`` is the image's context hash (taskgraph's ``"0" * 40``
    under ``taskgraph.fast``); ``cached`` whether the task gets its ``cache``
    entry (an entry with ``cache: false``, and every entry under
    ``taskgraph.fast``, does not). With ``builder``, the task runs our
    in-task builder instead (:func:`_our_worker`), whose check needs the
    image's ``digest``, and its digest names ``builder.image``.
    """
    name = task.name
    args = dict(task.args)
    builder_image = IMAGE_BUILDER_IMAGE if builder is None else builder.image
    lines = DigestInputs(context_hash, args=args, chain_of_trust=False,
                         image_builder=builder_image, orjson=push.orjson).lines()
    build_args = {**args, "DOCKER_IMAGE_PACKAGES": " ".join(f"<{p}>" for p in task.packages)}
    env: dict[str, Any] = {
        "CONTEXT_TASK_ID": {"task-reference": "<decision>"},
        "CONTEXT_PATH": f"public/{CONTEXTS_DIR}/{name}.tar.gz",
        "HASH": context_hash,
        "PROJECT": push.project,
        "IMAGE_NAME": name,
        # faster compression where a push's images are read least
        "DOCKER_IMAGE_ZSTD_LEVEL": "3" if int(push.level) == 1 else "10",
        "DOCKER_BUILD_ARGS": {"task-reference": build_args_json(build_args, orjson=push.orjson)},
        "VCS_BASE_REPOSITORY": push.base_repository,
        "VCS_HEAD_REPOSITORY": push.head_repository,
        "VCS_HEAD_REV": push.head_rev,
        "VCS_REPOSITORY_TYPE": push.repository_type,
    }
    description: dict[str, Any] = {
        "label": f"docker-image-{name}",
        "description": f"Build the docker image {name} for use by dependent tasks",
        "attributes": {"image_name": name, "artifact_prefix": "public"},
        "always-target": True,
        "expires-after": push.task_expires_after if push.level == "1" else "1 year",
        "scopes": [],
        "run-on-projects": [],
        "worker-type": "images",
        "worker": {
            "implementation": "docker-worker",
            "os": "linux",
            "artifacts": [{"type": "file", "path": "/workspace/out/image.tar.zst",
                           "name": "public/image.tar.zst"}],
            "env": env,
            "chain-of-trust": True,
            "max-run-time": 7200,
            "docker-image": builder_image,
        },
    }
    if builder is not None:
        assert digest is not None
        description["worker"] = _our_worker(task, push, builder, digest)
        description["attributes"][BUILDER_ATTRIBUTE] = True
    if task.has_index:
        description["index"] = task.index
    if task.symbol:
        description["treeherder"] = {"symbol": task.symbol, "platform": "taskcluster-images/opt",
                                     "kind": "other", "tier": 1}
    dependencies: dict[str, str] = {p: f"packages-{p}" for p in sorted(task.packages)}
    if task.parent:
        dependencies["parent"] = f"docker-image-{task.parent}"
        if builder is None:
            env["PARENT_TASK_ID"] = {"task-reference": "<parent>"}
    if dependencies:
        description["dependencies"] = dependencies
    if cached:
        description["cache"] = {"type": CACHE_TYPE, "name": name, "digest-data": lines}
    return description


def context_file(name: str) -> str:
    """Where a decision writes image ``name``'s context: ``docker-contexts/NAME.tar.gz``."""
    return f"{CONTEXTS_DIR}/{name}.tar.gz"


def _our_worker(task: KindTask, push: Push, builder: InTaskBuilder, digest: str,
                ) -> dict[str, Any]:
    """The worker of a task our in-task builder runs (``taskgraph-images build-in-task``).

    The builder checks out the push, refuses to build unless the tree's
    digest is ``digest`` (what the task's routes claim), fetches the parent
    image from the parent task through the proxy, and writes the image and
    its context manifest.
    """
    from taskgraph_images.manifest import manifest_file_path

    names = dict(builder.env_names)
    env: dict[str, Any] = {
        names["hash"]: digest,
        names["project"]: push.project,
        names["image-name"]: task.name,
        names["context-path"]: f"taskcluster/docker/{task.definition}",
        names["base-repository"]: push.base_repository,
        names["head-repository"]: push.head_repository,
        names["head-rev"]: push.head_rev,
        names["build-args"]: json.dumps(dict(sorted(task.args)), separators=(",", ":")),
        names["zstd-level"]: "3" if int(push.level) == 1 else "10",
        names["config"]: builder.config_path,
        names["artifact-path"]: builder.artifact_path,
    }
    if task.parent:
        env[names["parent-task"]] = {"task-reference": "<parent>"}
    manifest = manifest_file_path(builder.artifact_path, builder.manifest_artifact)
    return {
        "implementation": "docker-worker",
        "os": "linux",
        "artifacts": [
            {"type": "file", "path": builder.artifact_path, "name": builder.artifact_name},
            {"type": "file", "path": manifest, "name": builder.manifest_artifact},
        ],
        "env": env,
        "chain-of-trust": True,
        "taskcluster-proxy": True,
        "max-run-time": 7200,
        "docker-image": builder.image,
        "command": list(builder.command),
    }


#: The scope a task needs to run with seccomp off (buildah unshares a user namespace).
SECCOMP_SCOPE = "docker-worker:capability:disableSeccomp"


def payload(task: dict[str, Any]) -> dict[str, Any]:
    """Give a task our builder runs what taskgraph's payload cannot say: seccomp off.

    ``task`` is what taskgraph's ``task`` transform yields (the definition
    under ``task``); others are returned as they are.
    """
    if not task.get("attributes", {}).get(BUILDER_ATTRIBUTE):
        return task
    definition = task["task"]
    definition["payload"].setdefault("capabilities", {})["disableSeccomp"] = True
    if SECCOMP_SCOPE not in definition["scopes"]:
        definition["scopes"].append(SECCOMP_SCOPE)
    return task
