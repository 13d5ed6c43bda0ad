"""taskgraph's cache keys for ``docker-image`` tasks: the digest recipe and its namespaces.

``taskcluster-taskgraph`` spreads this over four files (the context hash in
``util/docker.py``, args and the builder image in
``transforms/docker_image.py``, dependencies and chain of trust in
``transforms/cached_tasks.py``, the final sha256 and the index routes in
``util/cached_tasks.py``). Here it is in one place, as pure functions of
typed values, each equal to what taskgraph 24.4.1 to 24.5.x computes (the
tests compare them with the installed package).

The digest of an image is the sha256 of these lines joined by ``\\n``
(no newline at the end), in this order (:meth:`DigestInputs.lines`):

1. the context hash (:func:`taskgraph_images.keys.tar.context_hash`
   of the members taskgraph collects);
2. the image's ``args`` as JSON with sorted keys (:func:`args_json`);
3. ``image-builder-image:{image builder}``;
4. each dependency as ``{type}/{name}/{digest}``, sorted: an in-tree parent
   is ``docker-images.v2/{parent}/{parent's digest}`` (:func:`dependency`);
5. ``True``, for chain of trust, which every docker-image task has.

An image is then looked up under :func:`index_search` and indexed under
:func:`index_routes` (whose :func:`latest_namespace` a plan's explanations
read), both built from the cache prefix (:func:`cache_prefix`:
the trust domain unless ``taskgraph.cached-task-prefix`` is set).
"""

from __future__ import annotations

import hashlib
import json
import time
from typing import Iterable, Mapping, Optional, Sequence

import attrs

from taskgraph_images.keys.namespaces import validate_level

__all__ = [
    "CACHE_TYPE",
    "IMAGE_BUILDER_IMAGE",
    "PULL_REQUEST_TASKS_FOR",
    "DigestInputs",
    "args_json",
    "cache_namespace",
    "cache_prefix",
    "dependency",
    "digest_of",
    "index_routes",
    "index_search",
    "installed_package_dirs",
    "latest_namespace",
    "pull_request_namespace",
]

#: The cache type of taskgraph's docker-image tasks, in namespaces and dependencies.
CACHE_TYPE = "docker-images.v2"
#: The image builder taskgraph 24.2.0 and later run docker-image tasks in (and digest).
IMAGE_BUILDER_IMAGE = (
    "mozillareleases/image_builder:6.2.0"
    "@sha256:f7df722770d6caadea79b2de458e072d8b3d93e59675b34dffb32c3e7e30f5b9"
)
#: The ``tasks_for`` values whose images are looked up under the pull-request namespace.
PULL_REQUEST_TASKS_FOR = ("github-pull-request", "github-issue-comment")


def installed_package_dirs() -> list[str]:
    """The folders of the installed ``taskgraph`` package, found without importing it
    (importing takes ~0.4 s); empty when it is not installed."""
    import importlib.util

    try:
        spec = importlib.util.find_spec("taskgraph")
    except (ImportError, ValueError):  # pragma: no cover - a broken installation
        return []
    return list(spec.submodule_search_locations or []) if spec is not None else []


def args_json(args: Optional[Mapping[str, str]] = None, *, orjson: bool = False) -> str:
    """``args`` as taskgraph writes them into the digest: compact JSON, keys sorted.

    taskgraph uses ``orjson`` when the decision task has it installed, the
    standard library otherwise; they differ for non-ASCII text, which
    ``orjson`` writes as UTF-8 and the standard library as ``\\uXXXX``
    escapes. Say which with ``orjson``.

    >>> args_json({"B": "2", "A": "é"})
    '{"A":"\\\\u00e9","B":"2"}'
    >>> args_json({"B": "2", "A": "é"}, orjson=True)
    '{"A":"é","B":"2"}'
    """
    return json.dumps(dict(args or {}), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=not orjson)


def dependency(name: str, digest: str, cache_type: str = CACHE_TYPE) -> str:
    """How a cached dependency enters a digest: ``{type}/{name}/{digest}``.

    >>> dependency("base", "d" * 4)
    'docker-images.v2/base/dddd'
    """
    return f"{cache_type}/{name}/{digest}"


def _pairs(value: Optional[Mapping[str, str]]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted((value or {}).items()))


def _strings(value: Iterable[str]) -> tuple[str, ...]:
    return tuple(value)


@attrs.frozen
class DigestInputs:
    """What taskgraph folds into a docker-image task's digest.

    ``args`` are the image's ``args`` from the kind file; ``parents`` maps
    each in-tree parent image's name to its digest (taskgraph has at most
    one); ``dependencies`` are further cached dependencies already written
    as ``{type}/{name}/{digest}`` (a ``packages`` task, for example).
    ``image_builder`` is the image the build task runs in, as taskgraph's
    ``IMAGE_BUILDER_IMAGE`` names it; ``chain_of_trust`` is whether the task
    has chain of trust (taskgraph's docker-image tasks always do); ``orjson``
    as for :func:`args_json`. Mappings are kept as sorted pairs.
    """

    context_hash: str
    args: tuple[tuple[str, str], ...] = attrs.field(default=None, converter=_pairs)
    parents: tuple[tuple[str, str], ...] = attrs.field(default=None, converter=_pairs)
    dependencies: tuple[str, ...] = attrs.field(default=(), converter=_strings)
    image_builder: str = IMAGE_BUILDER_IMAGE
    chain_of_trust: bool = True
    orjson: bool = False

    def lines(self) -> list[str]:
        """The lines taskgraph hashes, in order."""
        deps = [dependency(name, digest) for name, digest in self.parents]
        deps.extend(self.dependencies)
        lines = [self.context_hash, args_json(dict(self.args), orjson=self.orjson),
                 f"image-builder-image:{self.image_builder}", *sorted(deps)]
        if self.chain_of_trust:
            lines.append(str(True))
        return lines

    def digest(self) -> str:
        """taskgraph's digest of the task: :func:`digest_of` its :meth:`lines`."""
        return digest_of(self.lines())


def digest_of(lines: Sequence[str]) -> str:
    """The sha256 of ``lines`` joined by newlines, as taskgraph's ``add_optimization`` takes it.

    >>> digest_of(["a", "b"]) == hashlib.sha256(b"a\\nb").hexdigest()
    True
    """
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def cache_prefix(trust_domain: str, cached_task_prefix: Optional[str] = None) -> str:
    """The first words of every cache namespace: ``cached-task-prefix`` if set, else the trust domain.

    >>> cache_prefix("myproject"), cache_prefix("myproject", "other")
    ('myproject', 'other')
    """
    return trust_domain if cached_task_prefix is None else cached_task_prefix


def cache_namespace(prefix: str, name: str, digest: str, *, level: int,
                    cache_type: str = CACHE_TYPE) -> str:
    """``{prefix}.cache.level-{level}.{type}.{name}.hash.{digest}``.

    :raises InvalidValueError: ``level`` is not 1, 2 or 3.
    """
    return f"{prefix}.cache.level-{validate_level(level)}.{cache_type}.{name}.hash.{digest}"


def latest_namespace(prefix: str, name: str, *, level: int, cache_type: str = CACHE_TYPE) -> str:
    """``{prefix}.cache.level-{level}.{type}.{name}.latest``: the last build of ``name`` at ``level``.

    >>> latest_namespace("myproject", "base", level=3)
    'myproject.cache.level-3.docker-images.v2.base.latest'

    :raises InvalidValueError: ``level`` is not 1, 2 or 3.
    """
    return f"{prefix}.cache.level-{validate_level(level)}.{cache_type}.{name}.latest"


def pull_request_namespace(prefix: str, name: str, digest: str, *,
                           cache_type: str = CACHE_TYPE) -> str:
    """``{prefix}.cache.pr.{type}.{name}.hash.{digest}``: what pull requests index and find."""
    return f"{prefix}.cache.pr.{cache_type}.{name}.hash.{digest}"


def index_search(prefix: str, name: str, digest: str, *, level: int, tasks_for: str,
                 cache_pull_requests: bool = True, cache_type: str = CACHE_TYPE) -> list[str]:
    """The namespaces taskgraph looks a cached image up under, in order.

    The push's own level and every level above it, highest first; then, for
    a pull request or a comment on one (:data:`PULL_REQUEST_TASKS_FOR`) when
    ``taskgraph.cache-pull-requests`` is not false, the pull-request namespace.

    :raises InvalidValueError: ``level`` is not 1, 2 or 3.
    """
    found = [cache_namespace(prefix, name, digest, level=at, cache_type=cache_type)
             for at in range(3, validate_level(level) - 1, -1)]
    if tasks_for in PULL_REQUEST_TASKS_FOR and cache_pull_requests:
        found.append(pull_request_namespace(prefix, name, digest, cache_type=cache_type))
    return found


def index_routes(prefix: str, name: str, digest: str, *, level: int, tasks_for: str,
                 build_date: int, cache_pull_requests: bool = True,
                 cache_type: str = CACHE_TYPE) -> list[str]:
    """The ``index.`` routes taskgraph gives the task that builds the image.

    A pull request (any ``tasks_for`` starting ``github-pull-request``) or a
    comment on one indexes under the pull-request namespace only, and not at
    all when ``cache_pull_requests`` is false. Anything else indexes under the
    push's level, plus ``.latest`` and
    ``.pushdate.{YYYY}.{MM}.{DD}.{YYYYMMDDHHMMSS}`` of ``build_date`` (seconds
    since the epoch, UTC) for people to browse.

    :raises InvalidValueError: ``level`` is not 1, 2 or 3.
    """
    validate_level(level)
    if tasks_for.startswith("github-pull-request") or tasks_for == "github-issue-comment":
        if not cache_pull_requests:
            return []
        return ["index." + pull_request_namespace(prefix, name, digest, cache_type=cache_type)]
    base = f"{prefix}.cache.level-{level}.{cache_type}.{name}"
    stamp = time.strftime("%Y.%m.%d.%Y%m%d%H%M%S", time.gmtime(build_date))
    return [
        "index." + cache_namespace(prefix, name, digest, level=level, cache_type=cache_type),
        "index." + latest_namespace(prefix, name, level=level, cache_type=cache_type),
        f"index.{base}.pushdate.{stamp}",
    ]
