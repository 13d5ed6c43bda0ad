"""An unexpected exception in a test's server or helper thread fails that test.

The fake services (the loopback Taskcluster of :mod:`tcserver`, the registry of
:mod:`registry`, a test's own fake engine) answer in threads. An exception
there does not reach the test: :mod:`socketserver` catches it (its
``handle_error`` prints a traceback to stderr and the server carries on), and
a plain thread's goes to :func:`threading.excepthook`. Either way the test
that caused it could still pass. This module is a plugin (``conftest.py``
names it in ``pytest_plugins``): its autouse fixture :func:`thread_faults`
records both for the length of each test, and the test fails, quoting every
one, when any happened while it ran (or errors, when one happened while its
fixtures were torn down).
"""

from __future__ import annotations

import socketserver
import sys
import threading
import traceback
from typing import Any, Iterator

import pytest

__all__ = ["pytest_runtest_call", "thread_faults"]

_MESSAGE = "an unexpected exception in a server or helper thread:\n"


@pytest.fixture(autouse=True)
def thread_faults(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Yield the list the faults of this test's threads go to; fail the test if it is not empty."""
    faults: list[str] = []
    lock = threading.Lock()

    def record(where: str, exc: BaseException | None) -> None:
        text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)) if exc else ""
        with lock:
            faults.append(f"{where}:\n{text}")

    def handle_error(server: socketserver.BaseServer, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            # The client hung up (a kept-alive connection reset when its session
            # went away, a pipe broken by a client that stopped reading): the
            # client's doing, which the test judges by what the client saw.
            return
        record(f"{type(server).__name__} {server.server_address!r} answering {client_address!r}",
               exc)

    def excepthook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:  # as threading's own hook: a thread may end that way
            return
        name = args.thread.name if args.thread is not None else "a thread"
        record(f"thread {name}", args.exc_value)

    monkeypatch.setattr(socketserver.BaseServer, "handle_error", handle_error)
    monkeypatch.setattr(threading, "excepthook", excepthook)
    yield faults
    if faults:
        pytest.fail(_MESSAGE + "\n".join(faults), pytrace=False)


@pytest.hookimpl(trylast=True)
def pytest_runtest_call(item: pytest.Item) -> None:
    """After the test ran (pytest's own call runs it first), fail it for its threads' faults so far."""
    faults = getattr(item, "funcargs", {}).get("thread_faults")
    if faults:
        reported = list(faults)
        faults.clear()
        pytest.fail(_MESSAGE + "\n".join(reported), pytrace=False)
