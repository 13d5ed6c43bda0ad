"""What the loopback test servers share: serving on 127.0.0.1 in a thread.

A subclass gives :meth:`LoopbackServer._handler`, its request handler class;
:meth:`~LoopbackServer.start` serves it at an ephemeral port and
:meth:`~LoopbackServer.stop` closes the listening socket. Either is also a
context manager.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional, TypeVar

__all__ = ["LoopbackServer"]

_S = TypeVar("_S", bound="LoopbackServer")


class _HTTPServer(ThreadingHTTPServer):
    # socketserver's backlog of 5 resets connections when a client opens dozens at
    # once (a concurrent submit does); a real service accepts them.
    request_queue_size = 128
    daemon_threads = True


class LoopbackServer:
    """An HTTP server on 127.0.0.1 for tests; subclasses give the handler."""

    _httpd: Optional[_HTTPServer] = None
    _thread: Optional[threading.Thread] = None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        raise NotImplementedError

    def start(self: _S) -> _S:
        """Start serving on 127.0.0.1 at an ephemeral port."""
        self._httpd = _HTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def host_port(self) -> str:
        """``127.0.0.1:PORT``, where it serves."""
        assert self._httpd is not None, f"{type(self).__name__} not started"
        host, port = self._httpd.server_address[:2]
        return f"{host!s}:{port}"

    def __enter__(self: _S) -> _S:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
