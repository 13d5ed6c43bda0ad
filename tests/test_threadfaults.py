"""A fake server's unexpected exception fails the test it happens in (``tests/support/threadfaults.py``).

Each case runs a small test file in its own pytest session (``pytester``)
with the suite's ``thread_faults`` fixture, and reads the outcome.
"""

from __future__ import annotations

import pytest

pytest_plugins = ["pytester"]

CONFTEST = 'pytest_plugins = ["threadfaults"]\n'

SERVER = """
import socket
import socketserver
import threading


def serve(handle):
    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            handle()

    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    with socket.create_connection(server.server_address) as client:
        client.recv(1)  # the handler has ended when the server closes the connection
    server.shutdown()
    server.server_close()
    thread.join()
"""


def _outcome(pytester: pytest.Pytester, test: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_case=SERVER + test)
    return pytester.runpytest_inprocess("-q", "-p", "no:cacheprovider")


def test_an_exception_in_a_server_handler_fails_the_test(pytester: pytest.Pytester) -> None:
    result = _outcome(pytester, """
def test_case():
    def handle():
        raise KeyError("no such route")
    serve(handle)
""")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([
        "*an unexpected exception in a server or helper thread:",
        "ThreadingTCPServer ('127.0.0.1', *) answering ('127.0.0.1', *):",
        "*KeyError: 'no such route'",
    ])


def test_an_exception_in_a_plain_thread_fails_the_test(pytester: pytest.Pytester) -> None:
    result = _outcome(pytester, """
def test_case():
    def fail():
        raise ValueError("half-written answer")
    thread = threading.Thread(target=fail, name="uploader")
    thread.start()
    thread.join()
""")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["thread uploader:", "*ValueError: half-written answer"])


def test_a_server_that_answers_passes(pytester: pytest.Pytester) -> None:
    result = _outcome(pytester, """
def test_case():
    serve(lambda: None)
""")
    result.assert_outcomes(passed=1)


def test_a_client_that_hangs_up_is_not_a_server_fault(pytester: pytest.Pytester) -> None:
    """A reset or broken connection is the client's doing (a kept-alive connection
    of a session that went away): the test judges the client by what it saw."""
    result = _outcome(pytester, """
def test_case():
    def handle():
        raise ConnectionResetError(104, "Connection reset by peer")
    serve(handle)
""")
    result.assert_outcomes(passed=1)
