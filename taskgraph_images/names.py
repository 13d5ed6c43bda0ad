"""The grammar of every name taskgraph-images reads or writes (pure).

One home for the rules other modules used to copy: image names, task ids,
digests and index namespaces, each a :class:`~typing.NewType` of ``str``
with a predicate (``is_...``) and a validator that returns the typed value
or raises :class:`~taskgraph_images.errors.InvalidValueError`.

Image names are what taskgraph and the Taskcluster Index accept for an image
(a docker-image task's name, put into its label and its index routes):
dot-separated words of letters, digits, ``-`` and ``_``, starting with a
letter or digit (so that no name reads as a command-line option), at most
:data:`MAX_IMAGE_NAME` characters::

    name := [A-Za-z0-9] [A-Za-z0-9_-]* ("." word)*
    word := [A-Za-z0-9_-]+

so ``python3.11``, ``gcc-4.4`` and ``Upper`` are names, and ``.hidden``,
``-x``, ``a..b``, ``a/b`` and ``a b`` are not. Each dot adds a level to the image's
index namespaces, as taskgraph's own routes do; no word is empty, so every
namespace the name goes into is one the Index accepts.

A name is not always a Docker repository name (those are lower case, and
words are joined by one ``.``, ``_``, two ``_`` or dashes): a local build
tags an image by its name, so :func:`docker_repository_problem` says why a
name cannot be built locally.

>>> [is_image_name(n) for n in ("python3.11", "gcc-4.4", "Upper", "a..b", "-x", "a/b")]
[True, True, True, False, False, False]
>>> docker_repository_problem("gcc-4.4") is None
True
>>> docker_repository_problem("Upper")
"'Upper' has upper-case letters"
"""

from __future__ import annotations

import re
from typing import NewType, Optional

from taskgraph_images.errors import InvalidValueError

__all__ = [
    "IMAGE_NAME_RULE",
    "MAX_IMAGE_NAME",
    "Digest",
    "ImageName",
    "Namespace",
    "TaskId",
    "digest",
    "docker_repository_problem",
    "image_name",
    "is_artifact_name",
    "is_commit_id",
    "is_digest",
    "is_docker_component",
    "is_dotted_words",
    "is_git_source",
    "is_image_name",
    "is_namespace",
    "is_task_id",
    "namespace",
    "task_id",
]

#: An image's name: a docker-image task's name, its folder's by default.
ImageName = NewType("ImageName", str)
#: A Taskcluster task id (a v4 slugid, 22 characters).
TaskId = NewType("TaskId", str)
#: An image's digest: a sha256 as 64 lowercase hexadecimal digits.
Digest = NewType("Digest", str)
#: A Taskcluster Index namespace (dot-separated words, 255 characters at most).
Namespace = NewType("Namespace", str)

#: The longest image name: with a 64-digit digest and any sensible prefix,
#: an index namespace stays within the Index's 255 characters.
MAX_IMAGE_NAME = 100
#: The image-name rule in words, for messages.
IMAGE_NAME_RULE = (
    "use letters, digits, '.', '-' and '_', starting with a letter or digit, "
    f"with no empty part between dots, at most {MAX_IMAGE_NAME} characters"
)

_IMAGE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*\Z")
_DIGEST = re.compile(r"[0-9a-f]{64}\Z")
_DOTTED_WORDS = re.compile(r"[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\Z")
# What the Index service accepts as a namespace: dot-separated words.
_NAMESPACE = re.compile(r"[A-Za-z0-9_!~*'()%-]+(?:\.[A-Za-z0-9_!~*'()%-]+)*\Z")
_MAX_NAMESPACE = 255
# The Queue's slugid pattern (task.json's taskId).
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{8}[Q-T][A-Za-z0-9_-][CGKOSWaeimquy26-][A-Za-z0-9_-]{10}[AQgw]\Z")
# A relative artifact name: '/'-separated words (see is_artifact_name).
_ARTIFACT_NAME = re.compile(r"[A-Za-z0-9_.-]+(?:/[A-Za-z0-9_.-]+)*\Z")
# Where a push's source can be fetched from: a git remote's URL.
_GIT_SOURCE = re.compile(r"(?:https?://|ssh://|git@)\S+\Z")
# A full git commit id: SHA-1 (40 hex digits) or SHA-256 (64).
_COMMIT_ID = re.compile(r"[0-9a-f]{40}(?:[0-9a-f]{24})?\Z")
# One path component of a Docker repository name (the distribution grammar).
_DOCKER_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*\Z")


def _checked(ok: bool, value: object, what: str, expected: str) -> str:
    if not ok:
        raise InvalidValueError(f"invalid {what} {value!r}: {expected}")
    return str(value)


def is_image_name(text: object) -> bool:
    """True if ``text`` is an image name (see the module's grammar)."""
    return (isinstance(text, str) and len(text) <= MAX_IMAGE_NAME
            and _IMAGE_NAME.match(text) is not None)


def image_name(value: object) -> ImageName:
    """Return ``value`` as an :data:`ImageName`.

    >>> image_name("python3.11")
    'python3.11'

    :raises InvalidValueError: for anything else, naming the value.
    """
    return ImageName(_checked(is_image_name(value), value, "image name", IMAGE_NAME_RULE))


def is_digest(text: object) -> bool:
    """True if ``text`` is 64 lowercase hexadecimal digits."""
    return isinstance(text, str) and _DIGEST.match(text) is not None


def digest(value: object) -> Digest:
    """Return ``value`` as a :data:`Digest`.

    :raises InvalidValueError: unless it is 64 lowercase hexadecimal digits.
    """
    return Digest(_checked(is_digest(value), value, "digest", "expected 64 lowercase hex digits"))


def is_task_id(text: object) -> bool:
    """True if ``text`` is a Taskcluster task id (a v4 slugid)."""
    return isinstance(text, str) and _TASK_ID.match(text) is not None


def task_id(value: object) -> TaskId:
    """Return ``value`` as a :data:`TaskId`.

    :raises InvalidValueError: unless it is a 22-character v4 slugid.
    """
    return TaskId(_checked(is_task_id(value), value, "task id", "expected a 22-character slugid"))


def is_namespace(text: object) -> bool:
    """True if the Index service would accept ``text`` as a namespace."""
    return (isinstance(text, str) and len(text) <= _MAX_NAMESPACE
            and _NAMESPACE.match(text) is not None)


def is_dotted_words(text: object) -> bool:
    """True for dot-separated words of letters, digits, ``-`` and ``_``: an index
    prefix, a trust domain or a route prefix (``docker.images.v2``).

    >>> is_dotted_words("docker.images.v2"), is_dotted_words("a..b")
    (True, False)
    """
    return isinstance(text, str) and _DOTTED_WORDS.match(text) is not None


def namespace(value: object) -> Namespace:
    """Return ``value`` as a :data:`Namespace`.

    :raises InvalidValueError: unless the Index service would accept it.
    """
    return Namespace(_checked(
        is_namespace(value), value, "index namespace",
        f"expected dot-separated words, {_MAX_NAMESPACE} characters at most",
    ))


def is_artifact_name(text: object) -> bool:
    """True if ``text`` is a relative artifact name such as ``public/image.tar.zst``:
    ``/``-separated words of letters, digits, ``.``, ``-`` and ``_``, none ``.`` or ``..``.

    >>> [is_artifact_name(n) for n in ("public/image.tar.zst", "/abs", "a/../b", "a//b")]
    [True, False, False, False]
    """
    return (isinstance(text, str) and _ARTIFACT_NAME.match(text) is not None
            and not any(part in (".", "..") for part in text.split("/")))


def is_git_source(text: object) -> bool:
    """True if ``text`` is a git remote's URL: ``https://``, ``http://``, ``ssh://``
    or ``git@``, then no whitespace."""
    return isinstance(text, str) and _GIT_SOURCE.match(text) is not None


def is_commit_id(text: object) -> bool:
    """True if ``text`` is a full git commit id: 40 (SHA-1) or 64 (SHA-256) lowercase
    hexadecimal digits, never abbreviated."""
    return isinstance(text, str) and _COMMIT_ID.match(text) is not None


def is_docker_component(text: str) -> bool:
    """True if ``text`` is one ``/``-separated component of a Docker repository name."""
    return _DOCKER_COMPONENT.match(text) is not None


def docker_repository_problem(name: str) -> Optional[str]:
    """Say why image ``name`` cannot be a Docker repository name, or ``None`` if it can.

    A local build tags a task image ``name:latest``, and a prebuilt one
    ``registry/name:version``: Docker refuses other names.
    """
    if is_docker_component(name):
        return None
    if name != name.lower():
        return f"{name!r} has upper-case letters"
    return (f"{name!r} is not lower-case letters and digits joined by one '.', "
            "one or two '_' or dashes")
