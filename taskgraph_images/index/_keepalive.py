"""Kept-alive HTTP/1.1 connections to one Taskcluster deployment, for small GET calls.

The optimization phase asks the Queue about sixty or more tasks at once
(``latestArtifactInfo``). Through ``requests`` each call costs about half a
millisecond of the interpreter before it leaves, so sixty calls leave over
more than one round trip of a 50 ms link. Here a call is one
:class:`http.client.HTTPConnection` request on a connection opened ahead
(:meth:`KeptConnections.open_ahead`, while taskgraph still waits for the
index), a fifth of that.

Only the plain case is served here, with the environment's settings the
caller's ``requests`` session resolved: a root URL that session does not
send through a proxy, with no ``.netrc`` credentials
(:meth:`KeptConnections.beside` returns ``None`` otherwise, and the caller
uses the session). HTTPS verifies the server against the session's CA
bundle: ``REQUESTS_CA_BUNDLE`` / ``CURL_CA_BUNDLE``, else ``certifi``'s.

Every blocking step is bounded by the time left before the caller's
deadline (the socket's timeout is set before each), and a body is read up
to :data:`MAX_BODY` bytes.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
import urllib.parse
from typing import TYPE_CHECKING, Mapping, Optional, Union

import attrs

if TYPE_CHECKING:  # pragma: no cover
    import requests

__all__ = ["MAX_BODY", "Answer", "BodyTooLarge", "KeptConnections"]

#: The largest body a GET call may answer with (a task definition is far smaller).
MAX_BODY = 8 << 20

_Connection = Union[http.client.HTTPConnection, http.client.HTTPSConnection]

#: Errors that mean a kept-alive connection was closed by the other end while
#: idle: the request is sent again once on a new connection (it is a GET).
_STALE = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
          ConnectionAbortedError)


@attrs.frozen
class Answer:
    """A response: its status and its body (at most :data:`MAX_BODY` bytes)."""

    status: int
    body: bytes


class BodyTooLarge(OSError):
    """The server answered with more than :data:`MAX_BODY` bytes."""


class KeptConnections:
    """Idle connections to one origin, taken by one call at a time and put back."""

    def __init__(self, scheme: str, host: str, port: int,
                 context: Optional[ssl.SSLContext] = None) -> None:
        self.scheme, self.host, self.port = scheme, host, port
        self._context = context
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._opening = 0

    @classmethod
    def beside(cls, session: requests.Session, root_url: str) -> Optional[KeptConnections]:
        """Connections for ``root_url`` that go where ``session`` would, or ``None``
        where only ``session`` can: a proxy, ``.netrc`` credentials or a client
        certificate applies, verification is off, or the scheme is not HTTP(S).

        ``session`` holds the environment's settings for ``root_url``, resolved
        once; HTTPS verifies the server against its CA bundle (``verify``).

        :raises OSError: when that CA bundle cannot be read.
        """
        import requests.utils

        parts = urllib.parse.urlsplit(root_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        if (requests.utils.select_proxy(root_url, session.proxies) or session.auth is not None
                or session.cert is not None):
            return None
        try:
            port = parts.port or (443 if parts.scheme == "https" else 80)
        except ValueError:
            return None
        context = None
        if parts.scheme == "https":
            if session.verify is False:
                return None
            context = _tls_context(requests.utils.DEFAULT_CA_BUNDLE_PATH
                                   if session.verify is True else str(session.verify))
        return cls(parts.scheme, parts.hostname, port, context)

    def __repr__(self) -> str:
        return f"KeptConnections({self.scheme}://{self.host}:{self.port})"

    @property
    def idle(self) -> int:
        """How many connections wait for a call."""
        with self._lock:
            return len(self._idle)

    def _new(self, timeout: float) -> _Connection:
        if self.scheme == "https":
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self._context)
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def open_ahead(self, wanted: int, timeout: float) -> None:
        """Open one connection if fewer than ``wanted`` are idle or opening.

        Meant for a background thread; a failure is kept quiet (the call
        that needs the connection will meet it and say so).
        """
        with self._lock:
            if len(self._idle) + self._opening >= wanted:
                return
            self._opening += 1
        try:
            connection = self._new(timeout)
            connection.connect()
        except (OSError, http.client.HTTPException):
            return
        finally:
            with self._lock:
                self._opening -= 1
        with self._lock:
            self._idle.append(connection)

    def _take(self, timeout: float) -> tuple[_Connection, bool]:
        with self._lock:
            if self._idle:
                return self._idle.pop(), True
        return self._new(timeout), False

    def get(self, target: str, headers: Mapping[str, str], deadline: float) -> Answer:
        """``GET target`` (a path with its query) before ``deadline`` (``time.monotonic``).

        :raises OSError: when no answer comes (``TimeoutError`` past the deadline).
        :raises http.client.HTTPException: for an answer that is not HTTP.
        """
        connection, reused = self._take(_left(deadline))
        try:
            try:
                answer = self._ask(connection, target, headers, deadline)
            except _STALE:
                if not reused:
                    raise
                connection.close()
                connection = self._new(_left(deadline))
                answer = self._ask(connection, target, headers, deadline)
        except BaseException:
            connection.close()
            raise
        return answer

    def _ask(self, connection: _Connection, target: str, headers: Mapping[str, str],
             deadline: float) -> Answer:
        connection.timeout = _left(deadline)
        if connection.sock is not None:
            connection.sock.settimeout(connection.timeout)
        connection.request("GET", target, headers={
            "Accept": "application/json", "Accept-Encoding": "identity", **headers})
        if connection.sock is not None:
            connection.sock.settimeout(_left(deadline))
        response = connection.getresponse()
        if connection.sock is not None:
            connection.sock.settimeout(_left(deadline))
        body = response.read(MAX_BODY + 1)
        if len(body) > MAX_BODY:
            raise BodyTooLarge(f"the answer is larger than {MAX_BODY} bytes")
        if response.will_close or not response.isclosed():
            connection.close()
        else:
            with self._lock:
                self._idle.append(connection)
        return Answer(response.status, body)

    def close(self) -> None:
        """Close every idle connection."""
        with self._lock:
            idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

    def __del__(self) -> None:  # the index keeps them for its lifetime: closed with it
        self.close()


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise socket.timeout("timed out")
    return left


def _tls_context(bundle: str) -> ssl.SSLContext:
    """Verify servers against the CA bundle ``bundle`` (a file, or a folder of them).

    :raises OSError: when it cannot be read.
    """
    import os

    if os.path.isdir(bundle):
        return ssl.create_default_context(capath=bundle)
    return ssl.create_default_context(cafile=bundle)
