"""The CLI's conventions: -q/-v everywhere, the reporter's lines on a terminal and in a log."""

from __future__ import annotations

import argparse
import io

import pytest
from importcheck import modules_added_by

from taskgraph_images.cli import build_parser
from taskgraph_images.cli._common import verbosity
from taskgraph_images.cli._report import ConsoleReporter, current, using
from taskgraph_images.progress import Meter, Transfer, Wait, format_rate, format_size


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[
    tuple[tuple[str, ...], argparse.ArgumentParser]
]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(((*prefix, name), sub))
                found.extend(_commands(sub, (*prefix, name)))
    return found


def test_every_command_has_quiet_and_verbose() -> None:
    commands = _commands(build_parser())
    assert len(commands) > 10
    for path, sub in commands:
        options = {s for a in sub._actions for s in a.option_strings}
        assert {"-q", "--quiet", "-v", "--verbose"} <= options, path


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["list"], 0),
        (["list", "-q"], -1),
        (["list", "-vv"], 2),
        (["index", "-v", "find", "a.b"], 1),
        (["index", "find", "-v", "a.b"], 1),
    ],
)
def test_verbosity_counts_v_minus_q(argv: list[str], expected: int) -> None:
    assert verbosity(build_parser().parse_args(argv)) == expected


def test_notes_and_warnings_go_to_the_stream_with_the_prefix() -> None:
    out = io.StringIO()
    r = ConsoleReporter(out)
    r.note("hello")
    r.warning("careful")
    r.debug("hidden")
    assert out.getvalue() == "taskgraph-images: hello\ntaskgraph-images: warning: careful\n"


def test_quiet_keeps_only_warnings() -> None:
    out = io.StringIO()
    r = ConsoleReporter(out, verbosity=-1)
    r.note("hello")
    r.waiting(Wait("the index", "findTask", 2, 6, reason="answered 503"))
    r.transfer(Transfer("saving", 5, 20.0))
    r.warning("careful")
    assert out.getvalue() == "taskgraph-images: warning: careful\n"


def test_waits_say_what_they_wait_for_and_which_try() -> None:
    out = io.StringIO()
    r = ConsoleReporter(out)
    r.waiting(Wait("the index", "findTasksAtIndex", 2, 6, reason="connection refused"))
    r.waiting(Wait("the queue", "statuses", 1, 6, elapsed=5.2))
    assert out.getvalue().splitlines() == [
        "taskgraph-images: waiting for the index (findTasksAtIndex, try 2 of 6)... "
        "try 1: connection refused",
        "taskgraph-images: waiting for the queue (statuses, try 1 of 6)... 5 s so far",
    ]


def test_off_a_terminal_a_transfer_prints_a_line_every_ten_seconds() -> None:
    out = io.StringIO()
    clock = Clock()
    meter = Meter(ConsoleReporter(out, tty=False), "saving app", total=100 * 2**20, clock=clock)
    for _ in range(25):  # 25 s at 2 MiB/s
        clock.now += 1
        meter.update(2 * 2**20)
    meter.finish()
    assert out.getvalue().splitlines() == [
        "taskgraph-images: saving app: 20.0 MiB of 100.0 MiB (20%) at 2.0 MiB/s",
        "taskgraph-images: saving app: 40.0 MiB of 100.0 MiB (40%) at 2.0 MiB/s",
        "taskgraph-images: saving app: 50.0 MiB of 100.0 MiB (50%) in 25.0 s",
    ]


def test_off_a_terminal_a_quick_transfer_prints_nothing_unless_verbose() -> None:
    for verbosity_, lines in ((0, []), (1, ["taskgraph-images: loading x: 1.0 KiB in 0.5 s"])):
        out = io.StringIO()
        clock = Clock()
        meter = Meter(ConsoleReporter(out, tty=False, verbosity=verbosity_), "loading x",
                      clock=clock)
        clock.now = 0.5
        meter.update(1024)
        meter.finish()
        assert out.getvalue().splitlines() == lines


def test_on_a_terminal_the_live_line_waits_for_bytes_and_ends_with_a_newline() -> None:
    out = io.StringIO()
    clock = Clock()
    r = ConsoleReporter(out, tty=True, clock=clock)
    meter = Meter(r, "loading x", clock=clock)
    clock.now = 2.0
    meter.update(0)  # the engine has not started: no "0 B at 0 B/s"
    assert out.getvalue() == ""
    meter.update(4 * 2**20)
    clock.now = 2.1
    meter.update(2**20)  # within a quarter second: not redrawn
    clock.now = 4.0
    meter.update(3 * 2**20)
    meter.finish()
    text = out.getvalue()
    assert "0 B" not in text and text.endswith("\n") and text.count("\n") == 1
    frames = [f for f in text.split("\r\x1b[K") if f]
    assert frames == [
        "taskgraph-images: loading x: 4.0 MiB at 2.0 MiB/s",
        "taskgraph-images: loading x: 8.0 MiB at 2.0 MiB/s",
        "taskgraph-images: loading x: 8.0 MiB in 4.0 s\n",
    ]


def test_a_note_during_a_live_line_starts_on_a_new_line() -> None:
    out = io.StringIO()
    clock = Clock()
    r = ConsoleReporter(out, tty=True, clock=clock)
    clock.now = 1
    r.transfer(Transfer("x", 10, 1.0))
    r.note("hi")
    assert out.getvalue().endswith("10 B at 10 B/s\ntaskgraph-images: hi\n")


def test_the_current_reporter_is_the_one_in_use() -> None:
    mine = ConsoleReporter(io.StringIO())
    with using(mine):
        assert current() is mine
    assert current() is not mine


@pytest.mark.parametrize(
    ("n", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (5 * 2**20 + 2**19, "5.5 MiB"),
     (2**40 * 3, "3.0 TiB"), (2**50, "1024.0 TiB")],
)
def test_sizes_have_one_unit_style(n: int, text: str) -> None:
    assert format_size(n) == text
    assert format_rate(n) == text + "/s"


def test_parsing_the_command_line_stays_light() -> None:
    added = modules_added_by("from taskgraph_images.cli import build_parser; build_parser()")
    heavy = {"attrs", "attr", "taskcluster", "requests", "zstandard", "yaml",
             "taskgraph_images.progress", "taskgraph_images.cli._report"}
    assert heavy & added == set()


def test_commands_that_print_data_take_json_and_every_output_is_dash_o() -> None:
    options = {path: {s for a in sub._actions for s in a.option_strings}
               for path, sub in _commands(build_parser())}
    printing = [("list",), ("hash",), ("digest",), ("index", "find"), ("index", "list"),
                ("index", "insert"), ("plan",), ("render",), ("build",), ("load",)]
    assert [p for p in printing if "--json" not in options[p]] == []
    writing = [p for p, opts in options.items() if "--output" in opts]
    assert len(writing) >= 5 and all("-o" in options[p] for p in writing)
