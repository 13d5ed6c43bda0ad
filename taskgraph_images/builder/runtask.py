"""Run a docker-worker task on the local Docker engine, as docker-worker and d2g do.

:func:`container_config` turns a task definition into the Engine API's
container description (pure): ``payload.image``, ``payload.command`` as the
container's command (the image's entrypoint is not overridden),
``payload.env`` and the variables every docker-worker task gets
(``TASK_ID``, ``RUN_ID``, ``TASKCLUSTER_ROOT_URL``, ``TASKCLUSTER_WORKER_TYPE``),
``capabilities.disableSeccomp`` as ``--security-opt seccomp=unconfined``,
each ``payload.cache`` as a Docker volume (``taskgraph-images-cache-NAME``,
kept between runs as a worker keeps its caches) mounted where the task asks.
What a build task never asks for is refused: ``capabilities.privileged``
(root on the host), host devices, any other capability.

A task with the ``taskclusterProxy`` feature runs on the host's network (its
proxy URL may be a Taskcluster the caller serves on loopback); any other task
gets Docker's default network. The
``taskclusterProxy`` feature: a worker's proxy forwards
``$TASKCLUSTER_PROXY_URL/api/...`` to the deployment with the task's
credentials. Locally there is no proxy: ``TASKCLUSTER_PROXY_URL`` is the
caller's Taskcluster root URL, so the task reaches the same services the
caller does, with public access only.

:func:`run_task` makes the image available (a registry tag the engine has,
or a ``task-image`` / ``indexed-image`` loaded with
:func:`~taskgraph_images.images.artifacts.load_image`), runs the container with its
output streamed, kills it after ``maxRunTime``, and copies each of
``payload.artifacts`` out of it into a folder.
"""

from __future__ import annotations

import os
import re
import shutil
import tarfile
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Optional

import attrs

from taskgraph_images._safefile import inside
from taskgraph_images.errors import ArtifactError, DockerError, InvalidValueError

if TYPE_CHECKING:  # pragma: no cover
    from taskgraph_images.images.engine import Engine
    from taskgraph_images.progress import Reporter

__all__ = [
    "TaskRun",
    "check_task",
    "container_config",
    "copy_artifact",
    "image_reference",
    "index_routes",
    "record_run",
    "run_task",
]

#: What docker-worker features a local run reproduces; any other is refused.
SUPPORTED_FEATURES = frozenset({"taskclusterProxy", "chainOfTrust"})
SUPPORTED_CAPABILITIES = frozenset({"disableSeccomp"})
#: The payload keys a local run gives a meaning to; any other is refused.
SUPPORTED_PAYLOAD = frozenset({"image", "command", "env", "maxRunTime", "artifacts",
                               "capabilities", "features", "cache"})
_CACHE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\Z")
#: Prefix of the Docker volume that stands for a worker cache of a given name.
CACHE_VOLUME_PREFIX = "taskgraph-images-cache-"


def _payload(task: Mapping[str, Any]) -> Mapping[str, Any]:
    payload = task.get("payload")
    if not isinstance(payload, Mapping):
        raise InvalidValueError("the task has no payload object")
    return payload


def check_task(task: Mapping[str, Any], task_id: str, *, record: bool = False) -> None:
    """Refuse, before anything runs or is written, a task whose outputs could land elsewhere.

    Each of ``payload.artifacts`` must have a relative name without ``..``
    (it becomes a file under ``-o``) and a ``path``; each cache a plain name;
    with ``record``, each ``index.`` route a valid namespace.

    :raises InvalidValueError: naming the task and the artifact, cache or route.
    """
    from taskgraph_images._redact import quote_value
    from taskgraph_images.index import validate_artifact_name
    from taskgraph_images.keys.namespaces import validate_namespace

    payload = _payload(task)
    artifacts = payload.get("artifacts") or {}
    if not isinstance(artifacts, Mapping):
        raise InvalidValueError(f"task {task_id}: payload.artifacts must be an object")
    for name, spec in artifacts.items():
        try:
            validate_artifact_name(name)
        except InvalidValueError:
            raise InvalidValueError(
                f"task {task_id}: artifact name {quote_value(str(name))} is not a relative "
                "'/'-separated name without '..' (it would be written outside the output folder)"
            ) from None
        if not isinstance(spec, Mapping) or not isinstance(spec.get("path"), str):
            raise InvalidValueError(f"task {task_id}: artifact {name} has no path")
    caches = payload.get("cache") or {}
    if not isinstance(caches, Mapping):
        raise InvalidValueError(f"task {task_id}: payload.cache must be an object")
    for cache in caches:
        if not isinstance(cache, str) or not _CACHE_NAME.match(cache):
            raise InvalidValueError(
                f"task {task_id}: cache name {quote_value(str(cache))} is not a plain name"
            )
    if record:
        for namespace in index_routes(task):
            try:
                validate_namespace(namespace)
            except InvalidValueError:
                raise InvalidValueError(
                    f"task {task_id}: route index.{quote_value(namespace)} is not a valid "
                    "index namespace; nothing recorded"
                ) from None


def _switched_on(payload: Mapping[str, Any], key: str) -> set[str]:
    """The names of ``payload[key]`` (features, capabilities) set to a true value."""
    return {k for k, v in (payload.get(key) or {}).items() if v}


def image_reference(image: Any, task_id: str) -> str:
    """Return the local tag a run of ``task_id`` uses for ``payload.image``.

    A string or ``docker-image`` names its registry tag; a ``task-image`` or
    ``indexed-image`` gets ``taskgraph-images-run/<task>:<n>`` to load it under.

    :raises InvalidValueError: for an image of no known type.
    """
    if isinstance(image, str):
        return image
    if isinstance(image, Mapping):
        kind = image.get("type")
        if kind == "docker-image" and isinstance(image.get("name"), str):
            return str(image["name"])
        if kind in ("task-image", "indexed-image"):
            return f"taskgraph-images-run/{task_id.lower()}:image"
    raise InvalidValueError(f"task {task_id}: unknown payload.image {image!r}")


def container_config(
    task: Mapping[str, Any],
    task_id: str,
    image: str,
    *,
    root_url: Optional[str] = None,
    run_id: int = 0,
    network: Optional[str] = None,
) -> dict[str, Any]:
    """Return the Engine API body that creates the container of ``task``'s run.

    ``image`` is the local tag of its image (see :func:`image_reference`),
    ``root_url`` the Taskcluster the run talks to (required with the
    ``taskclusterProxy`` feature). ``network`` is the network of a task
    without that feature (default: the engine's default network); a task
    with it always runs on the host's.

    :raises InvalidValueError: for a payload feature or capability a local
        run cannot give, or a proxy without a root URL.
    """
    payload = _payload(task)
    extra = sorted(set(payload) - SUPPORTED_PAYLOAD)
    if extra:
        raise InvalidValueError(
            f"task {task_id}: a local run cannot give payload.{', payload.'.join(extra)}"
        )
    features = _switched_on(payload, "features")
    capabilities = _switched_on(payload, "capabilities")
    if "privileged" in capabilities:
        raise InvalidValueError(
            f"task {task_id}: capabilities.privileged is refused: a privileged container is "
            "root on the host, and a build task never asks for it (buildah needs "
            "disableSeccomp only)"
        )
    unknown = sorted((features - SUPPORTED_FEATURES) | (capabilities - SUPPORTED_CAPABILITIES))
    if unknown:
        raise InvalidValueError(
            f"task {task_id}: a local run cannot give {', '.join(unknown)} "
            f"(it gives the features {', '.join(sorted(SUPPORTED_FEATURES))} and the "
            f"capabilities {', '.join(sorted(SUPPORTED_CAPABILITIES))})"
        )
    env = {str(k): str(v) for k, v in (payload.get("env") or {}).items()}
    env.update({"TASK_ID": task_id, "RUN_ID": str(run_id)})
    if "workerType" in task:
        env["TASKCLUSTER_WORKER_TYPE"] = str(task["workerType"])
    elif "taskQueueId" in task:
        env["TASKCLUSTER_WORKER_TYPE"] = str(task["taskQueueId"]).split("/", 1)[-1]
    # The proxy stands for the caller's Taskcluster, which may listen on
    # loopback: only a task with the proxy feature gets the host's network.
    host: dict[str, Any] = {}
    if "taskclusterProxy" in features:
        host["NetworkMode"] = "host"
    elif network is not None:
        host["NetworkMode"] = network
    if root_url:
        from taskgraph_images.tc.env import normalize_root_url

        root_url = normalize_root_url(root_url)
        env["TASKCLUSTER_ROOT_URL"] = root_url
    if "taskclusterProxy" in features:
        if not root_url:
            raise InvalidValueError(
                f"task {task_id} uses the taskclusterProxy feature: give a Taskcluster root "
                "URL (--root-url or TASKCLUSTER_ROOT_URL) for the proxy to stand for"
            )
        env["TASKCLUSTER_PROXY_URL"] = root_url
    if "disableSeccomp" in capabilities:
        host["SecurityOpt"] = ["seccomp=unconfined"]
    caches = payload.get("cache") or {}
    if caches:
        host["Mounts"] = [
            {"Type": "volume", "Source": f"{CACHE_VOLUME_PREFIX}{name}", "Target": str(path)}
            for name, path in sorted(caches.items())
        ]
    command = payload.get("command")
    config: dict[str, Any] = {
        "Image": image,
        "Env": [f"{k}={v}" for k, v in sorted(env.items())],
        "Tty": False,
        "AttachStdout": True,
        "AttachStderr": True,
        "Labels": {"org.taskgraph-images.task-id": task_id},
        "HostConfig": host,
    }
    if command is not None:
        if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
            raise InvalidValueError(f"task {task_id}: payload.command must be a list of strings")
        config["Cmd"] = list(command)
    return config


def index_routes(task: Mapping[str, Any]) -> list[str]:
    """Return the index namespaces of ``task``'s ``index.`` routes, in order."""
    return [r[len("index."):] for r in task.get("routes") or () if r.startswith("index.")]


# -- running ---------------------------------------------------------------------------


@attrs.frozen
class TaskRun:
    """What :func:`run_task` did."""

    task_id: str
    exit_code: int
    artifacts: tuple[tuple[str, str], ...]  # (artifact name, local file)
    timed_out: bool = False

    @property
    def succeeded(self) -> bool:
        """True when the command exited 0 within ``maxRunTime``."""
        return self.exit_code == 0 and not self.timed_out


def prepare_image(
    engine: Engine, task: Mapping[str, Any], task_id: str, *, index: Any = None,
    root_url: Optional[str] = None, reporter: Optional[Reporter] = None,
) -> str:
    """Make ``task``'s image present in ``engine`` and return its local tag.

    :raises DockerError: for a registry image the engine does not have.
    :raises ArtifactError: for a task or indexed image that cannot be loaded.
    """
    image = _payload(task).get("image")
    ref = image_reference(image, task_id)
    if isinstance(image, Mapping) and image.get("type") in ("task-image", "indexed-image"):
        from taskgraph_images.images.artifacts import load_image
        from taskgraph_images.images.source import ARTIFACT_NAME

        source = _image_task(image, index, root_url, task_id)
        if reporter is not None:
            reporter.note(f"loading the task's image from task {source}")
        load_image(source, engine=engine, tag=ref, index=index, root_url=root_url,
                   artifact=str(image.get("path") or ARTIFACT_NAME))
    elif not engine.exists(ref):
        raise DockerError(
            f"task {task_id}: the Docker engine has no image {ref} (pull or build it first; "
            "a local run does not pull)"
        )
    return ref


def _image_task(image: Mapping[str, Any], index: Any, root_url: Optional[str],
                task_id: str) -> str:
    if image.get("type") == "task-image":
        return str(image.get("taskId"))
    namespace = str(image.get("namespace"))
    if index is None:
        raise ArtifactError(f"task {task_id}: no index to find the indexed image {namespace}")
    found = index.find_task(namespace)
    if found is None:
        raise ArtifactError(f"task {task_id}: nothing is indexed at {namespace}")
    return str(found.task_id)


def _follow(engine: Engine, cid: str, out: Callable[[int, bytes], None]) -> threading.Thread:
    def pump() -> None:
        try:
            for stream, data in engine.logs(cid):
                out(stream, data)
        except DockerError:
            pass  # the container was removed under us; the wait reports why

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    return thread


def copy_artifact(chunks: Iterator[bytes], dest: str) -> None:
    """Write the one file in the tar ``chunks`` (the Engine's archive of a path) to ``dest``.

    The file appears only when complete.

    :raises ArtifactError: when the archive is not of one regular file.
    """
    from taskgraph_images._atomic import atomic_output
    from taskgraph_images.images.compression import BUFFER

    class _Reader:
        def __init__(self) -> None:
            self._buf = b""

        def read(self, n: int = -1) -> bytes:
            while n < 0 or len(self._buf) < n:
                more = next(chunks, b"")
                if not more:
                    break
                self._buf += more
            if n < 0:
                data, self._buf = self._buf, b""
            else:
                data, self._buf = self._buf[:n], self._buf[n:]
            return data

    # The engine sends 1 MiB chunks: read them whole, not in tarfile's 10 KiB
    # default (each small read would copy the rest of the buffered chunk).
    with tarfile.open(fileobj=_Reader(), mode="r|",  # type: ignore[call-overload]
                      bufsize=BUFFER) as tar:
        member = tar.next()
        if member is None or not member.isfile():
            raise ArtifactError(f"the artifact for {dest} is not a file in the container")
        source = tar.extractfile(member)
        assert source is not None
        os.makedirs(os.path.dirname(os.path.abspath(dest)), exist_ok=True)
        with atomic_output(dest) as f:
            shutil.copyfileobj(source, f, BUFFER)


def run_task(
    engine: Engine,
    task: Mapping[str, Any],
    task_id: str,
    *,
    output_dir: Optional[str] = None,
    index: Any = None,
    root_url: Optional[str] = None,
    on_output: Optional[Callable[[int, bytes], None]] = None,
    reporter: Optional[Reporter] = None,
) -> TaskRun:
    """Run ``task`` in a container of ``engine``; copy its artifacts into ``output_dir``.

    The container is removed at the end, whatever happens. An artifact is
    copied only when the command succeeded; a missing one is an error, as a
    worker fails a task whose artifact it cannot find.

    What it tells goes to ``reporter`` (a note of the image loaded and of how
    the task ended); the task's own output, raw bytes of its stream 1 or 2,
    goes to ``on_output``: it is the run's product, as the artifacts are.

    :raises DockerError: when the container cannot be created or run.
    :raises ArtifactError: when an artifact is missing after a successful run.
    """
    payload = _payload(task)
    check_task(task, task_id)
    image = prepare_image(engine, task, task_id, index=index, root_url=root_url,
                          reporter=reporter)
    network = None
    if "taskclusterProxy" not in _switched_on(payload, "features") \
            and not engine.has_network("bridge"):
        # An engine without a bridge (dockerd --bridge=none) has no network
        # to give short of the host's, which such a task does not get.
        network = "none"
        if reporter is not None:
            reporter.note(f"task {task_id}: the Docker engine has no bridge network; the task runs "
                    "without a network")
    config = container_config(task, task_id, image, root_url=root_url, network=network)
    max_run = float(payload.get("maxRunTime") or 0) or None
    cid = engine.create_container(config)
    try:
        engine.start_container(cid)
        started = time.monotonic()
        follower = _follow(engine, cid, on_output or (lambda stream, data: None))
        timed_out = False
        try:
            code = engine.wait_container(cid, timeout=max_run)
        except TimeoutError:
            timed_out = True
            engine.kill_container(cid)
            code = engine.wait_container(cid, timeout=60)
        follower.join(timeout=10)
        if reporter is not None:
            spent = time.monotonic() - started
            if timed_out:
                reporter.note(f"task {task_id} ran out of its maxRunTime ({max_run:.0f} s) and was "
                        "killed")
            else:
                reporter.note(f"task {task_id} exited {code} after {spent:.1f} s")
        copied: list[tuple[str, str]] = []
        if code == 0 and not timed_out and output_dir is not None:
            for name, spec in sorted((payload.get("artifacts") or {}).items()):
                if spec.get("type", "file") != "file":
                    raise ArtifactError(
                        f"task {task_id}: artifact {name} is a {spec.get('type')}; a local "
                        "run copies file artifacts only"
                    )
                dest = os.path.join(output_dir, *name.split("/"))
                if not inside(output_dir, dest):  # a folder of -o linked elsewhere
                    raise ArtifactError(f"task {task_id}: artifact {name} would be written "
                                        f"outside {output_dir}")
                try:
                    copy_artifact(engine.get_archive(cid, str(spec["path"])), dest)
                except DockerError as e:
                    raise ArtifactError(f"task {task_id}: artifact {name}: {e}") from e
                copied.append((name, dest))
        return TaskRun(task_id, code, tuple(copied), timed_out)
    finally:
        engine.remove_container(cid)


def record_run(index: Any, task: Mapping[str, Any], run: TaskRun) -> list[str]:
    """Record a successful run in the local ``index`` as the Queue and Index would.

    The task is marked completed, its artifacts stored, and it is indexed at
    each of its ``index.`` routes (with the ``extra.imageMeta`` data when
    present). Returns the namespaces.
    """
    for name, path in run.artifacts:
        index.store_artifact(run.task_id, name, path, move=True)
    index.set_task_state(run.task_id, "completed")
    meta = (task.get("extra") or {}).get("imageMeta") or {}
    data = {"image": meta.get("imageName"), "digest": meta.get("contextHash"),
            "level": meta.get("level")} if meta else {}
    namespaces = index_routes(task)
    for namespace in namespaces:
        index.insert_task(namespace, run.task_id, data={k: v for k, v in data.items()
                                                         if v is not None})
    return namespaces
