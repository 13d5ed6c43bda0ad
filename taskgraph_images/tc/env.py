"""The Taskcluster deployment the environment names, and the client options for it.

The package's one reader of the ``TASKCLUSTER_*`` variables: the Taskcluster
index, ``load`` of a task's artifact and ``plan --submit`` all build their
clients' options here.

- ``TASKCLUSTER_ROOT_URL`` and the credentials ``TASKCLUSTER_CLIENT_ID``,
  ``TASKCLUSTER_ACCESS_TOKEN`` and ``TASKCLUSTER_CERTIFICATE`` are read with
  the client's own ``taskcluster.optionsFromEnvironment``.
- ``TASKCLUSTER_PROXY_URL`` is set inside a task whose payload asks for the
  ``taskclusterProxy`` feature. The proxy serves the root URL's layout
  (``/api/<service>/<version>/...``) and signs each request with the task's
  own credentials, so it is used as the root URL, without credentials.

Which root URL a client gets, first found: the one the caller names (an
``--index taskcluster:URL``, say), the proxy, ``TASKCLUSTER_ROOT_URL``.
URLs are built by the client (``Queue.buildUrl`` / ``buildSignedUrl``, over
``taskcluster_urls``), never by hand.
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Optional

import attrs

from taskgraph_images._floors import require
from taskgraph_images.errors import ConfigError

__all__ = ["PROXY_URL_VARIABLE", "Credentials", "TaskclusterEnv",
           "artifact_url", "client", "normalize_root_url"]

#: The variable a task with the ``taskclusterProxy`` feature gets.
PROXY_URL_VARIABLE = "TASKCLUSTER_PROXY_URL"


def normalize_root_url(url: str) -> str:
    """Return ``url`` as the client writes a root URL (no trailing ``/``).

    >>> normalize_root_url("https://tc.example.com/")
    'https://tc.example.com'
    """
    import taskcluster_urls

    return str(taskcluster_urls.normalize_root_url(url))


@attrs.frozen
class Credentials:
    """Taskcluster credentials: a client id, its access token, and a certificate
    when they are temporary."""

    client_id: str
    access_token: str = attrs.field(repr=False)
    certificate: Optional[str] = attrs.field(default=None, repr=False)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> Optional[Credentials]:
        """Return the credentials of a client's ``credentials`` option, or ``None``
        when it names none.

        :raises ConfigError: when a client id comes without an access token or
            the other way round.
        """
        client_id = options.get("clientId") or None
        token = options.get("accessToken") or None
        if client_id is None and token is None:
            return None
        if client_id is None or token is None:
            given, missing = (
                ("TASKCLUSTER_CLIENT_ID", "TASKCLUSTER_ACCESS_TOKEN") if token is None
                else ("TASKCLUSTER_ACCESS_TOKEN", "TASKCLUSTER_CLIENT_ID")
            )
            raise ConfigError(
                f"Taskcluster credentials: {given} is set but {missing} is not; set both, "
                "or neither"
            )
        certificate = options.get("certificate") or None
        return cls(str(client_id), str(token), None if certificate is None else str(certificate))

    def to_options(self) -> dict[str, str]:
        """Return the credentials as the client's ``credentials`` option."""
        options = {"clientId": self.client_id, "accessToken": self.access_token}
        if self.certificate is not None:
            options["certificate"] = self.certificate
        return options


@attrs.frozen
class TaskclusterEnv:
    """What the environment says about Taskcluster: the deployment's root URL,
    the task's proxy URL (inside a task) and credentials; each may be absent.

    Build one with :meth:`from_environment`, or directly (in tests, say).
    """

    root_url: Optional[str] = attrs.field(
        default=None, converter=attrs.converters.optional(normalize_root_url)
    )
    proxy_url: Optional[str] = attrs.field(
        default=None, converter=attrs.converters.optional(normalize_root_url)
    )
    credentials: Optional[Credentials] = None

    @classmethod
    def from_environment(cls) -> TaskclusterEnv:
        """Read the running process's ``TASKCLUSTER_*`` variables.

        Imports the client only when one of them is set, so that a run without
        Taskcluster does not pay for it.

        :raises ConfigError: for a client id without an access token, or the
            other way round.
        """
        if not any(name.startswith("TASKCLUSTER_") for name in os.environ):
            return cls()
        import taskcluster

        options = taskcluster.optionsFromEnvironment()
        return cls(
            root_url=options.get("rootUrl") or None,
            proxy_url=os.environ.get(PROXY_URL_VARIABLE) or None,
            credentials=Credentials.from_options(options.get("credentials") or {}),
        )

    @property
    def configured(self) -> bool:
        """Whether the environment names a deployment (a root URL or a proxy)."""
        return bool(self.root_url or self.proxy_url)

    def root(self, root_url: Optional[str] = None) -> Optional[str]:
        """Return the root URL a client should use: ``root_url`` when given, else
        the proxy, else the environment's root URL; ``None`` when there is none."""
        if root_url:
            return normalize_root_url(root_url)
        return self.proxy_url or self.root_url

    def options(self, root_url: str, **extra: Any) -> dict[str, Any]:
        """Return a client's options for the deployment at ``root_url``: the
        environment's credentials, except through the proxy (which signs
        requests itself), and the further client options ``extra``
        (``maxRetries``, say).

        >>> env = TaskclusterEnv(proxy_url="http://taskcluster",
        ...                      credentials=Credentials("me", "secret"))
        >>> env.options("http://taskcluster/", maxRetries=2)
        {'maxRetries': 2, 'rootUrl': 'http://taskcluster'}
        >>> sorted(env.options("https://tc.example.com"))
        ['credentials', 'rootUrl']
        """
        root = normalize_root_url(root_url)
        options: dict[str, Any] = dict(extra)
        options["rootUrl"] = root
        if self.credentials is not None and root != self.proxy_url:
            options["credentials"] = self.credentials.to_options()
        return options


def client(service: str, options: Mapping[str, Any]) -> Any:
    """Return the ``taskcluster`` client of ``service`` (``"Index"``, ``"Queue"``)
    with ``options``, once the installed client is known to be recent enough.

    :raises DependencyError: for a client older than the floor (say, without
        ``Index.findTasksAtIndex``).
    """
    require("taskcluster")
    import taskcluster

    return getattr(taskcluster, service)(dict(options))


def artifact_url(
    options: Mapping[str, Any], task_id: str, artifact: str, *, queue: Any = None
) -> str:
    """Return the Queue URL of ``task_id``'s latest ``artifact``, built by the client.

    A ``public/`` artifact gets a plain URL; any other is signed (a ``bewit``)
    when ``options`` hold credentials (through the proxy they do not: it signs).
    ``queue`` is the Queue client made with ``options``, when the caller has
    one already; else one is made.

    :raises DependencyError: for a client older than the floor.
    """
    if queue is None:
        queue = client("Queue", options)
    if artifact.startswith("public/") or "credentials" not in options:
        return str(queue.buildUrl("getLatestArtifact", task_id, artifact))
    return str(queue.buildSignedUrl("getLatestArtifact", task_id, artifact))
