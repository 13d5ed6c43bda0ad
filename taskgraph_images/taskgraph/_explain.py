"""Why each docker image is built, inside taskgraph: a log line each and ``public/docker-images.json``.

A morph (taskgraph runs morphs in the decision's main process, after the
optimization) gathers what happened to every docker-image task of the graph:

- reused: the task the strategy (:mod:`taskgraph_images.taskgraph._optimize`)
  found, and where;
- built: why -- the strategy's reason (``not indexed``, ``artifact expired
  at level 3``...), or ``parent base rebuilt`` for an image taskgraph did
  not ask about because its parent is built -- and what changed since the
  last build.

What changed comes from history that every taskgraph repository already
has: the last build of the image at a trusted level (taskgraph's
``latest`` namespaces, the push's level and higher) names, in its
``CONTEXT_TASK_ID``, the decision task that published its context as
``public/docker-contexts/NAME.tar.gz``. That tarball (at most
:data:`MAX_CONTEXT_BYTES` downloaded and :data:`MAX_CONTEXT_UNPACKED`
unpacked) is compared member by member with the context the tree has now,
and the build's args and parent task with the earlier build's
(:func:`~taskgraph_images.manifest.diff_manifests`). So explanations work
from the first decision that uses this package, against builds made before
it. Anything that goes wrong reading the history changes only the
explanation, never the graph.

Each image gets one ``INFO`` line in the decision's log, a built one
saying why it is built and what changed; the decision
(whose ``artifacts/`` folder taskgraph publishes as ``public/``) also gets
``public/docker-images.json`` (:data:`REPORT_FORMAT`).
"""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import logging
import os
import tarfile
from typing import Any, Callable, Mapping, Optional, Sequence

import attrs

from taskgraph_images.errors import IndexBackendError, TaskgraphImagesError
from taskgraph_images.explain import FIRST_BUILD
from taskgraph_images.manifest import MAX_MEMBERS, ContextManifest, ManifestDiff, diff_manifests
from taskgraph_images.names import is_digest

__all__ = [
    "ARTIFACT",
    "MAX_CONTEXT_BYTES",
    "MAX_CONTEXT_UNPACKED",
    "REPORT_FORMAT",
    "ImageReport",
    "context_members",
    "explain_images",
    "install_morph",
    "report_json",
]

logger = logging.getLogger("taskgraph_images")

#: The artifact's name in the decision's artifacts folder (published as ``public/``).
ARTIFACT = "docker-images.json"
#: The ``format`` marker of ``docker-images.json``.
REPORT_FORMAT = "taskgraph-images-docker-images/1"
#: The most bytes of an earlier context tarball downloaded.
MAX_CONTEXT_BYTES = 64 * 1024 * 1024
#: The most bytes an earlier context tarball may unpack to.
MAX_CONTEXT_UNPACKED = 1024 * 1024 * 1024

_PREFIX = "docker-image-"
#: Where taskgraph's docker-image transforms write the contexts a decision publishes.
CONTEXTS_DIR = "docker-contexts"


@attrs.frozen
class ImageReport:
    """What the decision did with one docker image, and why."""

    name: str
    #: ``reuse`` or ``build``.
    action: str
    #: The image's digest (``None`` for an image with ``cache: false``).
    digest: Optional[str]
    #: The reused task, or the task that builds the image.
    task_id: Optional[str]
    reason: str
    #: For a build: what changed since the earlier build, when it could be compared.
    changes: Optional[ManifestDiff] = None
    #: For a build: the earlier build compared against.
    compared_with: Optional[str] = None
    #: For a build: the explanation (``changes``' summary, or why there is none).
    explanation: str = ""

    def line(self) -> str:
        """The decision log's line: ``docker-image base: built: not indexed; 1 file changed...``."""
        if self.action == "reuse":
            return f"docker-image {self.name}: reused task {self.task_id} ({self.reason})"
        text = f"docker-image {self.name}: built: {self.reason}"
        return f"{text}; {self.explanation}" if self.explanation else text

    def to_json(self) -> dict[str, Any]:
        """The image's entry in ``docker-images.json``."""
        doc: dict[str, Any] = {"decision": self.action, "digest": self.digest,
                               "task": self.task_id, "reason": self.reason}
        if self.action == "build":
            doc["explanation"] = self.explanation
            doc["compared_with"] = self.compared_with
            doc["changes"] = self.changes.to_json() if self.changes is not None else None
        return doc


def report_json(reports: Sequence[ImageReport]) -> dict[str, Any]:
    """The document ``docker-images.json`` holds."""
    return {"format": REPORT_FORMAT,
            "images": {r.name: r.to_json() for r in sorted(reports, key=lambda r: r.name)}}


# -- what happened ----------------------------------------------------------------------


def _env(task: Mapping[str, Any]) -> Mapping[str, Any]:
    payload = task.get("payload")
    env = payload.get("env") if isinstance(payload, dict) else None
    return env if isinstance(env, dict) else {}


def _collect(graph: Any, label_to_taskid: Mapping[str, str],
             verdicts: Mapping[str, Any]) -> tuple[list[ImageReport], dict[str, Any]]:
    """The report of every docker-image task, unexplained, and the built ones' tasks by name."""
    names = {label: label[len(_PREFIX):] for label in label_to_taskid if label.startswith(_PREFIX)}
    by_task = {label_to_taskid[label]: name for label, name in names.items()}
    reports: list[ImageReport] = []
    built: dict[str, Any] = {}
    built_names = _built_names(graph)
    for task in graph.tasks.values():
        if task.kind != "docker-image" or task.label not in names:
            continue
        name = names[task.label]
        built[name] = task
        cached = task.attributes.get("cached_task") or {}
        judged = verdicts.get(task.label)
        parent = by_task.get(str(task.dependencies.get("parent", "")))
        # taskgraph asks the strategy only about a task none of whose dependencies runs.
        running = sorted(graph.tasks[t].label for t in task.dependencies.values()
                         if t in graph.tasks)
        if judged is not None:
            reason = judged.lookup.reason
        elif parent is not None and parent in built_names:
            reason = f"parent {parent} rebuilt"
        elif running:
            reason = f"{running[0]} runs"
        elif not cached:
            reason = "cache: false in the kind config"
        else:
            reason = "not optimized (do_not_optimize)"
        reports.append(ImageReport(name, "build", cached.get("digest"), task.task_id, reason))
    for label, judged in verdicts.items():
        found = judged.lookup.found
        if found is not None and label in names and names[label] not in built:
            reports.append(ImageReport(judged.name, "reuse", judged.digest, found.task_id,
                                       judged.lookup.reason))
    return reports, built


def _built_names(graph: Any) -> set[str]:
    return {t.label[len(_PREFIX):] for t in graph.tasks.values() if t.kind == "docker-image"}


# -- what changed ------------------------------------------------------------------------


class _Bounded:
    """A read-only stream that refuses to give more than ``limit`` bytes."""

    def __init__(self, raw: Any, limit: int) -> None:
        self.raw, self.left = raw, limit

    def read(self, size: int = -1) -> bytes:
        data: bytes = self.raw.read(size if size >= 0 else self.left + 1)
        self.left -= len(data)
        if self.left < 0:
            raise TaskgraphImagesError(f"it unpacks to more than {MAX_CONTEXT_UNPACKED} bytes")
        return data


def context_members(data: bytes, *, unpacked_limit: int = MAX_CONTEXT_UNPACKED) -> dict[str, str]:
    """Return ``{member name: sha256}`` of the regular files of a ``.tar.gz`` context (pure).

    :raises TaskgraphImagesError: when it is not a gzip tar, unpacks to more
        than ``unpacked_limit`` bytes or holds more than :data:`~taskgraph_images.manifest.MAX_MEMBERS`
        members.
    """
    import gzip
    import io

    members: dict[str, str] = {}
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as unzipped:
            stream = _Bounded(unzipped, unpacked_limit)
            with tarfile.open(fileobj=stream, mode="r|") as tar:  # type: ignore[call-overload]
                for info in tar:
                    if len(members) >= MAX_MEMBERS:
                        raise TaskgraphImagesError(f"it has more than {MAX_MEMBERS} members")
                    if not info.isfile():
                        continue
                    f = tar.extractfile(info)
                    assert f is not None
                    digest = hashlib.sha256()
                    while chunk := f.read(1 << 16):
                        digest.update(chunk)
                    members[info.name] = digest.hexdigest()
    except (OSError, EOFError, tarfile.TarError) as e:
        raise TaskgraphImagesError(f"it is not a gzip tar ({type(e).__name__}: {e})") from None
    return members


def _tree_members(root: str) -> Callable[[str], dict[str, str]]:
    """A function giving each image's context members as this decision has them.

    The context the decision wrote (taskgraph's ``docker-contexts/NAME.tar.gz``
    in the working folder, which a decision publishes) when there is one;
    else the tree's, as :class:`~taskgraph_images.catalog.ImageCatalog`
    reads it (a local ``taskgraph morphed`` writes no contexts).
    """
    from taskgraph_images._hashing.filehash import file_sha256

    catalogs: list[Any] = []

    def members(name: str) -> dict[str, str]:
        written = os.path.join(CONTEXTS_DIR, f"{name}.tar.gz")
        if os.path.isfile(written):
            with open(written, "rb") as f:
                data = f.read(MAX_CONTEXT_BYTES + 1)
            if len(data) > MAX_CONTEXT_BYTES:
                raise TaskgraphImagesError(f"{written} is more than {MAX_CONTEXT_BYTES} bytes")
            return context_members(data)
        if not catalogs:
            from taskgraph_images.catalog import ImageCatalog

            catalogs.append(ImageCatalog.load(root, cache_keys="taskgraph"))
        files = catalogs[0].context(name).taskgraph_files()
        return {member: hashlib.sha256(source).hexdigest() if isinstance(source, bytes)
                else file_sha256(source) for member, source in files.items()}

    return members


def _args(env: Mapping[str, Any]) -> dict[str, str]:
    try:
        args = json.loads(env.get("DOCKER_BUILD_ARGS") or "{}")
    except (TypeError, ValueError):
        return {}
    return {str(k): str(v) for k, v in args.items()} if isinstance(args, dict) else {}


def _old_digest(task: Mapping[str, Any], prefix: str, name: str) -> Optional[str]:
    head = f"index.{prefix}.cache."
    tail = f".docker-images.v2.{name}.hash."
    for route in task.get("routes") or []:
        if isinstance(route, str) and route.startswith(head) and tail in route:
            digest = route.rsplit(".", 1)[-1]
            if is_digest(digest):
                return digest
    return None


@attrs.frozen
class _History:
    """What the index and queue said about the earlier builds of the images built."""

    earlier: Mapping[str, str]  # image -> its earlier build task
    definitions: Mapping[str, Mapping[str, Any]]  # earlier build task -> its definition
    contexts: Mapping[str, Any]  # image -> ArtifactRead of its earlier context
    problem: str = ""


def _history(index: Any, names: Sequence[str], level: int, prefix: str) -> _History:
    """Ask for the earlier builds: the ``latest`` entries, their tasks, their decisions' contexts.

    Three round trips in sequence, each batched or concurrent.
    """
    from taskgraph_images.explain import best_candidate
    from taskgraph_images.keys.indexkeys import IndexKeys
    from taskgraph_images.keys.namespaces import validate_task_id

    keys = IndexKeys(taskgraph_prefix=prefix)
    orders = {n: [c for c in keys.latest(n, level) if c.level >= level] for n in names}
    try:
        entries = index.find_tasks([c.namespace for o in orders.values() for c in o])
        earlier = {n: pick[1].task_id for n in names
                   for pick in [best_candidate(orders[n], entries)] if pick is not None}
        definitions = index.task_definitions(sorted(set(earlier.values())))
    except IndexBackendError as e:
        return _History({}, {}, {}, f"the index cannot answer: {e}")
    wanted: dict[str, str] = {}
    for name, task_id in earlier.items():
        context_task = _env(definitions.get(task_id, {})).get("CONTEXT_TASK_ID")
        try:
            wanted[name] = validate_task_id(context_task)
        except TaskgraphImagesError:
            continue
    with concurrent.futures.ThreadPoolExecutor(max(1, min(16, len(wanted)))) as pool:
        reads = dict(zip(wanted, pool.map(
            lambda n: index.read_artifacts([wanted[n]], f"public/docker-contexts/{n}.tar.gz",
                                           limit=MAX_CONTEXT_BYTES)[wanted[n]],
            wanted)))
    return _History(earlier, definitions, reads)


def _explain_one(report: ImageReport, task: Any, history: _History, prefix: str,
                 tree: Callable[[str], dict[str, str]], parents: Mapping[str, str]) -> ImageReport:
    """Compare one built image with its earlier build (or say why not)."""
    name = report.name
    earlier = history.earlier.get(name)
    if earlier is None:
        text = (f"no earlier context to compare ({history.problem})" if history.problem
                else FIRST_BUILD)
        return attrs.evolve(report, explanation=text)
    base = attrs.evolve(report, compared_with=earlier)
    old_task = history.definitions.get(earlier)
    if old_task is None:
        return attrs.evolve(base, explanation=f"no earlier context to compare (the queue does "
                                              f"not know task {earlier})")
    old_env, new_env = _env(old_task), _env(task.task)
    read = history.contexts.get(name)
    if read is None or read.data is None:
        why = read.problem if read is not None else (
            f"task {earlier} names no decision task in CONTEXT_TASK_ID")
        return attrs.evolve(base, explanation=f"no earlier context to compare ({why})")
    try:
        old_members = context_members(read.data)
    except TaskgraphImagesError as e:
        return attrs.evolve(base, explanation=f"no earlier context to compare (task "
                                              f"{old_env.get('CONTEXT_TASK_ID')}'s context: {e})")
    try:
        new_members = tree(name)
    except TaskgraphImagesError as e:
        return attrs.evolve(base, explanation=f"no context to compare ({e})")
    parent = parents.get(name)
    old_parent = old_env.get("PARENT_TASK_ID")
    new_parent = new_env.get("PARENT_TASK_ID")
    old_digest = _old_digest(old_task, prefix, name) or ""
    old = ContextManifest(name, old_digest, "taskgraph", old_members, _args(old_env),
                          [(parent or "parent", str(old_parent))] if old_parent else [])
    new = ContextManifest(name, report.digest or "", "taskgraph", new_members, _args(new_env),
                          [(parent or "parent", str(new_parent))] if new_parent else [])
    diff = diff_manifests(old, new)
    return attrs.evolve(base, changes=diff, explanation=diff.summary())


# -- the morph -----------------------------------------------------------------------------


def explain_images(graph: Any, label_to_taskid: Any, parameters: Any,
                   graph_config: Any) -> tuple[Any, Any]:
    """taskgraph morph: log why each image is built and write ``docker-images.json``.

    Returns the graph and ``label_to_taskid`` unchanged.
    """
    from taskgraph_images.taskgraph._optimize import _repository_root, current_strategy

    strategy = current_strategy()
    if strategy is None:
        return graph, label_to_taskid
    reports, tasks = _collect(graph, label_to_taskid, strategy.verdicts)
    built = [r for r in reports if r.action == "build" and r.digest is not None]
    if built:
        try:
            explained = _explain(built, tasks, strategy, int(parameters["level"]),
                                 _repository_root(graph_config), label_to_taskid)
        except Exception as e:  # an explanation never stops a decision
            why = f"no earlier context to compare ({type(e).__name__}: {e})"
            explained = [attrs.evolve(r, explanation=why) for r in built]
        reports = [r for r in reports if r not in built] + explained
    reports.sort(key=lambda r: r.name)
    for report in reports:
        logger.info(report.line())
    _write(report_json(reports))
    return graph, label_to_taskid


def _explain(built: list[ImageReport], tasks: Mapping[str, Any], strategy: Any, level: int,
             root: str, label_to_taskid: Mapping[str, str]) -> list[ImageReport]:
    names = [r.name for r in built]
    by_task = {t: label[len(_PREFIX):] for label, t in label_to_taskid.items()
               if label.startswith(_PREFIX)}
    parents = {n: by_task.get(str(tasks[n].dependencies.get("parent")), "") for n in names}
    try:
        history = _history(strategy.index(), names, level, strategy.settings.prefix)
    except TaskgraphImagesError as e:
        history = _History({}, {}, {}, str(e))
    tree = _tree_members(root)
    return [_explain_one(r, tasks[r.name], history, strategy.settings.prefix, tree,
                         {k: v for k, v in parents.items() if v}) for r in built]


def _write(doc: Mapping[str, Any]) -> None:
    """Write ``docker-images.json`` into the decision's artifacts folder, when there is one."""
    from taskgraph.decision import ARTIFACTS_DIR

    folder = os.fspath(ARTIFACTS_DIR)
    if not os.path.isdir(folder):
        return
    from taskgraph_images._atomic import atomic_output

    path = os.path.join(folder, ARTIFACT)
    try:
        with atomic_output(path) as f:
            f.write((json.dumps(doc, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    except OSError as e:  # the graph is sound without it: say so, and go on
        logger.warning("cannot write %s: %s", path, e.strerror or e)


def install_morph() -> None:
    """Add :func:`explain_images` to taskgraph's morphs, once."""
    from taskgraph.morph import registered_morphs

    if explain_images not in registered_morphs:
        registered_morphs.append(explain_images)
