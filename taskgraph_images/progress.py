"""Progress hooks: what a long operation tells whoever runs it, while it runs.

Library functions that wait (an index request, its retries), move bytes
(save, load, a build context) or run a program (a build) take a ``reporter``
and call its hooks with small values; they never print. :class:`Reporter`'s hooks do nothing, so a
caller that wants no progress passes nothing, and one that wants some
overrides only the hooks it cares about (as resolvelib's ``BaseReporter``).
The command line's reporter, which decides what reaches the terminal or a
task log and how often, is ``taskgraph_images.cli._report.ConsoleReporter``.

:class:`Meter` counts the bytes of one transfer and hands the reporter a
:class:`Transfer` for each step.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import IO, Callable, Iterator, Optional

import attrs

__all__ = [
    "Meter",
    "MeteredReader",
    "Reporter",
    "Transfer",
    "Wait",
    "announcing",
    "format_rate",
    "format_size",
]


@attrs.frozen
class Wait:
    """A request that has not answered yet, or is being tried again.

    ``subject`` is what is waited for (``"the index"``), ``call`` the API
    method (``"findTasksAtIndex"``); ``attempt`` counts from 1 up to
    ``attempts``; ``elapsed`` is how long this attempt has waited so far
    (0 when it just started); ``reason`` says why the previous attempt
    failed, for a retry.
    """

    subject: str
    call: str
    attempt: int
    attempts: int
    elapsed: float = 0.0
    reason: Optional[str] = None


@attrs.frozen
class Transfer:
    """How far one transfer of bytes has come.

    ``total`` is the size when known beforehand; ``finished`` is set on the
    last report of the transfer.
    """

    label: str
    done: int
    elapsed: float
    total: Optional[int] = None
    finished: bool = False

    @property
    def rate(self) -> float:
        """Bytes per second so far (0 before any time has passed)."""
        return self.done / self.elapsed if self.elapsed > 0 else 0.0


class Reporter:
    """Receives progress; every hook does nothing. Subclass to show some."""

    #: Seconds a blocking wait lasts before (and between) :meth:`waiting` reports.
    report_after: float = 5.0

    def note(self, message: str) -> None:
        """Something worth telling that is not the operation's result."""

    def warning(self, message: str) -> None:
        """Something that went differently from what the caller asked for."""

    def waiting(self, wait: Wait) -> None:
        """A request is slow (called about every few seconds) or being retried."""

    def transfer(self, transfer: Transfer) -> None:
        """A transfer moved on (called for every chunk: throttle what is shown)."""

    def output(self, text: str) -> None:
        """What a program the operation runs printed (the engine's build log,
        buildah's lines), in order, as it comes: to pass on whole."""


class Meter:
    """Counts the bytes of one transfer and reports each step to ``reporter``."""

    def __init__(
        self,
        reporter: Reporter,
        label: str,
        total: Optional[int] = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.reporter = reporter
        self.label = label
        self.total = total
        self.done = 0
        self._clock = clock
        self._start = clock()
        self._finished = False

    def _report(self, finished: bool) -> None:
        elapsed = self._clock() - self._start
        self.reporter.transfer(Transfer(self.label, self.done, elapsed, self.total, finished))

    def update(self, n: int) -> None:
        """Count ``n`` more bytes."""
        self.done += n
        self._report(False)

    def finish(self) -> None:
        """Report the end of the transfer (once; later calls do nothing)."""
        if not self._finished:
            self._finished = True
            self._report(True)


class MeteredReader:
    """A binary reader that counts what is read from ``raw`` on ``meter``."""

    def __init__(self, raw: IO[bytes], meter: Meter) -> None:
        self._raw = raw
        self.meter = meter

    def read(self, n: int = -1) -> bytes:
        """Read up to ``n`` bytes from ``raw``; the end of it finishes the meter."""
        data = self._raw.read(n)
        if data:
            self.meter.update(len(data))
        else:
            self.meter.finish()
        return data


@contextlib.contextmanager
def announcing(reporter: Reporter, subject: str, call: str) -> Iterator[None]:
    """Tell ``reporter`` every ``reporter.report_after`` seconds that the ``with`` body
    still waits.

    For a call that cannot report on itself (a blocking answer from the
    Docker engine, say): a timer thread reports a :class:`Wait` (attempt 1
    of 1) each time that many seconds pass, until the body ends.
    """
    done = threading.Event()
    start = time.monotonic()

    def tick() -> None:
        while not done.wait(reporter.report_after):
            reporter.waiting(Wait(subject, call, 1, 1, time.monotonic() - start))

    timer = threading.Thread(target=tick, name=f"waiting-{call}", daemon=True)
    timer.start()
    try:
        yield
    finally:
        done.set()
        timer.join()


_UNITS = ("KiB", "MiB", "GiB", "TiB")


def format_size(n: float) -> str:
    """Return a size in binary units, the one style every message uses.

    >>> format_size(512), format_size(1536), format_size(3 * 2**30)
    ('512 B', '1.5 KiB', '3.0 GiB')
    """
    if n < 1024:
        return f"{int(n)} B"
    for unit in _UNITS:
        n /= 1024
        if n < 1024 or unit == _UNITS[-1]:
            break
    return f"{n:.1f} {unit}"


def format_rate(bytes_per_second: float) -> str:
    """Return a rate in the units of :func:`format_size`.

    >>> format_rate(2.5 * 2**20)
    '2.5 MiB/s'
    """
    return format_size(bytes_per_second) + "/s"
