"""The command line run in the test's own process, and its one error line read back."""

from __future__ import annotations

import pytest

from taskgraph_images.cli import main

__all__ = ["error_line", "run_cli"]


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run ``taskgraph-images ARGV`` through :func:`taskgraph_images.cli.main`; return the
    exit code, stdout and stderr."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def error_line(err: str) -> str:
    """The MESSAGE of stderr's one line ``taskgraph-images: error: MESSAGE``; a note before
    it, a traceback or a second line fails the test."""
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("taskgraph-images: error: ")
    return lines[0][len("taskgraph-images: error: "):]
