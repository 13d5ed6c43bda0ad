"""The loopback Taskcluster server of ``tests/support/tcserver.py`` in a child process, for benchmarks.

A real Taskcluster is remote: running the server in its own process keeps its
CPU time from competing with the client's for one interpreter.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator

__all__ = ["obey", "serving"]


@contextlib.contextmanager
def serving(target: Callable[..., None], *args: Any) -> Iterator[Any]:
    """Run ``target(conn, *args)`` in a spawned child; yield our end of the pipe ``conn``.

    ``target`` starts the server and talks over the pipe; on the way out the
    child is given 10 s to end (after the caller's own stop command), then killed.
    """
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    child.close()  # ours is the server's: if it dies, recv() ends instead of waiting
    try:
        yield parent
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()
            proc.join()
        parent.close()


def obey(conn: Any, server: Any) -> None:
    """Answer the commands coming over ``conn`` about ``server`` until ``"stop"``.

    ``"clear"`` forgets the requests answered so far; ``"sequence"`` is answered
    with the round trips in sequence since (``server.in_sequence()``), any other
    command with the number of requests since (``server.count()``).
    """
    while True:
        command = conn.recv()
        if command == "stop":
            return
        if command == "clear":
            server.requests.clear()
            server.spans.clear()
        conn.send(server.in_sequence() if command == "sequence" else server.count())
