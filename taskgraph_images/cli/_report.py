"""What the command line shows while it works: notes, warnings, waits and transfers.

:class:`ConsoleReporter` is the :class:`~taskgraph_images.progress.Reporter`
every command uses. Everything it prints goes to stderr (stdout is the
command's output), prefixed ``taskgraph-images:``. ``-q`` keeps only
warnings; ``-v`` adds details (:meth:`ConsoleReporter.debug`) and every
transfer's final line.

A transfer is drawn as one live line on a terminal (redrawn at most four
times a second, and only once bytes have moved); off a terminal, in a task
log, it prints a line every ten seconds with the bytes moved, the rate and
the total or percentage when known.

The running command's reporter is held in a context variable that
:func:`taskgraph_images.cli.main` sets for the duration of the command, so
that :func:`current` (and ``note``) reach it without threading it through
every helper.
"""

from __future__ import annotations

import contextlib
import contextvars
import sys
import threading
import time
from typing import IO, Callable, Iterator, Optional

from taskgraph_images._redact import escape, strip_userinfo
from taskgraph_images.progress import Reporter, Transfer, Wait, format_rate, format_size

__all__ = ["ConsoleReporter", "current", "using"]

PREFIX = "taskgraph-images: "

#: Seconds between transfer lines off a terminal, and between live redraws on one.
LOG_INTERVAL = 10.0
TTY_INTERVAL = 0.25
#: A live line appears only after this long, so that a quick transfer draws nothing.
TTY_DELAY = 0.5


class ConsoleReporter(Reporter):
    """Print progress on ``stream`` (default stderr) for a person or a task log.

    ``verbosity`` is -1 with ``-q``, 0 by default, 1 or more with ``-v``;
    ``tty`` says whether to draw live lines (default: ``stream.isatty()``).
    """

    def __init__(
        self,
        stream: Optional[IO[str]] = None,
        *,
        verbosity: int = 0,
        tty: Optional[bool] = None,
        clock: Callable[[], float] = time.monotonic,
        log_interval: float = LOG_INTERVAL,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.verbosity = verbosity
        self.tty = _isatty(self.stream) if tty is None else tty
        self._clock = clock
        self._log_interval = log_interval
        # transfer label -> when last shown (the clock on a terminal, the
        # transfer's own elapsed time off one)
        self._shown: dict[str, float] = {}
        self._live = False  # a live line is on screen, unterminated
        self._lock = threading.Lock()  # index lookups report from several threads

    # -- plain lines ----------------------------------------------------------------

    def _line(self, text: str) -> None:
        # A line may carry a hostile name or a URL with user:password@.
        text = strip_userinfo(escape(text))
        with self._lock:
            if self._live:
                self.stream.write("\n")
                self._live = False
            self.stream.write(PREFIX + text + "\n")
            self.stream.flush()

    #: Where :meth:`output` writes: ``None`` for stdout (looked up when written).
    output_stream: Optional[IO[str]] = None

    def note(self, message: str) -> None:
        if self.verbosity >= 0:
            self._line(message)

    def output(self, text: str) -> None:
        """A program's output goes out as it comes, unchanged (it is not a progress line)."""
        out = self.output_stream if self.output_stream is not None else sys.stdout
        out.write(text)
        out.flush()

    def debug(self, message: str) -> None:
        """A detail shown only with ``-v``."""
        if self.verbosity > 0:
            self._line(message)

    def warning(self, message: str) -> None:
        self._line("warning: " + message)

    def waiting(self, wait: Wait) -> None:
        if self.verbosity < 0:
            return
        tries = f", try {wait.attempt} of {wait.attempts}" if wait.attempts > 1 else ""
        text = f"waiting for {wait.subject} ({wait.call}{tries})..."
        if wait.reason:
            text += f" try {wait.attempt - 1}: {wait.reason}"
        elif wait.elapsed > 0:
            text += f" {wait.elapsed:.0f} s so far"
        self._line(text)

    # -- transfers ------------------------------------------------------------------

    def transfer(self, transfer: Transfer) -> None:
        if self.verbosity < 0:
            return
        if self.tty:
            with self._lock:
                self._draw(transfer, self._clock())
            return
        label = transfer.label
        if transfer.finished:
            # Close off a transfer the log has heard of; a quick one prints nothing.
            if self._shown.pop(label, None) is not None or self.verbosity > 0:
                self._line(_describe(transfer, done=True))
            return
        last = self._shown.get(label, 0.0)
        if transfer.done and transfer.elapsed - last >= self._log_interval:
            self._shown[label] = transfer.elapsed
            self._line(_describe(transfer))

    def _draw(self, transfer: Transfer, now: float) -> None:
        label = transfer.label
        if transfer.finished:
            if self._live or self.verbosity > 0:
                self._rewrite(_describe(transfer, done=True))
                self.stream.write("\n")
                self.stream.flush()
                self._live = False
            self._shown.pop(label, None)
            return
        if not transfer.done or transfer.elapsed < TTY_DELAY:
            return  # nothing has moved yet: no "0 B at 0 B/s"
        if now - self._shown.get(label, float("-inf")) < TTY_INTERVAL:
            return
        self._shown[label] = now
        self._rewrite(_describe(transfer))
        self._live = True

    def _rewrite(self, text: str) -> None:
        self.stream.write("\r\x1b[K" + PREFIX + text)
        self.stream.flush()


def _describe(transfer: Transfer, *, done: bool = False) -> str:
    """``saving app:latest: 1.2 GiB of 2.0 GiB (60%) at 80.0 MiB/s``."""
    amount = format_size(transfer.done)
    if transfer.total:
        percent = min(100, int(100 * transfer.done / transfer.total))
        amount += f" of {format_size(transfer.total)} ({percent}%)"
    if done:
        return f"{transfer.label}: {amount} in {transfer.elapsed:.1f} s"
    rate = f" at {format_rate(transfer.rate)}" if transfer.done and transfer.elapsed > 0 else ""
    return f"{transfer.label}: {amount}{rate}"


def _isatty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


_CURRENT: contextvars.ContextVar[ConsoleReporter] = contextvars.ContextVar("reporter")


def current() -> ConsoleReporter:
    """Return the running command's reporter (a default one outside a command)."""
    try:
        return _CURRENT.get()
    except LookupError:
        return ConsoleReporter()


@contextlib.contextmanager
def using(reporter: ConsoleReporter) -> Iterator[ConsoleReporter]:
    """Make ``reporter`` the current one for the duration of the ``with`` block."""
    token = _CURRENT.set(reporter)
    try:
        yield reporter
    finally:
        _CURRENT.reset(token)
