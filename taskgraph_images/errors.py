"""The errors that taskgraph-images raises.

Every error the library raises on purpose derives from
:class:`TaskgraphImagesError`. Its ``str()`` is one line that names the file,
image or value at fault and, where there is one, what to do about it; the CLI
prints exactly that line and exits 1.

Errors about values a caller passed in also derive from :class:`ValueError`,
so code that already catches ``ValueError`` keeps working.
"""

from __future__ import annotations

__all__ = [
    "ArtifactError",
    "CatalogError",
    "ConfigError",
    "ContextError",
    "DependencyError",
    "DockerError",
    "DockerUnavailableError",
    "DockerfileError",
    "ImageBuildError",
    "IndexBackendError",
    "IndexStoreError",
    "IndexUnavailableError",
    "InvalidValueError",
    "ManifestError",
    "ParamsError",
    "PlanError",
    "SubmitError",
    "TaskgraphImagesError",
    "TemplateError",
]


#: The longest message (in characters) an error shows; the rest is cut.
MAX_MESSAGE = 2000


class TaskgraphImagesError(Exception):
    """Base of every error taskgraph-images raises on purpose."""

    def __str__(self) -> str:
        # Messages are one line by contract: fold any newline a wrapped
        # exception brought with it. No URL in a message keeps its
        # user:password@, and a control character a hostile name brought
        # is shown, not sent to the terminal (docs/security.rst).
        from taskgraph_images._redact import escape, strip_userinfo

        text = super().__str__()
        if "\n" in text:
            text = " ".join(text.split())
        text = strip_userinfo(escape(text))
        # A value quoted from a hostile file cannot make the line unbounded.
        if len(text) > MAX_MESSAGE:
            text = f"{text[:MAX_MESSAGE]}... ({len(text)} characters)"
        return text


class DependencyError(TaskgraphImagesError):
    """An installed package that taskgraph-images needs is missing or too old."""


class InvalidValueError(TaskgraphImagesError, ValueError):
    """A value (level, image name, digest, namespace, ...) is malformed."""


class CatalogError(TaskgraphImagesError, ValueError):
    """The images folder, an image folder or its files are not usable."""


class DockerfileError(CatalogError):
    """A Dockerfile cannot be understood (``FROM``, ``ARG``, ``# %`` lines)."""


class ContextError(TaskgraphImagesError):
    """An image's context cannot be listed, hashed or written safely."""


class ConfigError(TaskgraphImagesError, ValueError):
    """A configuration file or value is invalid; the message names the key."""


class ParamsError(TaskgraphImagesError, ValueError):
    """Decision parameters are missing or malformed; the message names each."""


class IndexBackendError(TaskgraphImagesError):
    """Base of index failures (Taskcluster Index, local index)."""


class IndexUnavailableError(IndexBackendError):
    """The index could not be asked (unreachable, failing, malformed answers)."""


class IndexStoreError(IndexBackendError):
    """The local index database or artifact store is corrupt, locked or unwritable."""


class PlanError(TaskgraphImagesError):
    """A plan cannot be made or read (for example a file that is not a plan)."""


class SubmitError(TaskgraphImagesError):
    """Creating build tasks with the Queue failed."""


class TemplateError(TaskgraphImagesError, ValueError):
    """A task template has a malformed tag or names an unusable image."""


class DockerError(TaskgraphImagesError):
    """The Docker engine refused or failed a request."""


class DockerUnavailableError(DockerError):
    """No Docker engine could be reached; the message says how to start one."""


class ImageBuildError(DockerError):
    """``docker build`` failed; the message carries the engine's error."""


class ArtifactError(TaskgraphImagesError):
    """An image artifact is corrupt, truncated, unsafe or too large."""



class ManifestError(TaskgraphImagesError, ValueError):
    """A context manifest is malformed, too large or of an unknown format version."""
