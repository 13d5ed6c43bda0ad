"""Waiting is never silent: retries and slow answers of the index are reported, a hung
index stops within the timeout (60 s by default), and the errors give one short cause.

The loopback server injects the faults; the tests use short timeouts.
"""

from __future__ import annotations

import inspect
import time
from pathlib import Path
from typing import Any

import pytest
import zstandard
from index_helpers import digest_of
from tcserver import TCServer, make_index
from trees import docker_save_tar

from taskgraph_images.cli import main
from taskgraph_images.errors import IndexUnavailableError
from taskgraph_images.index import TaskclusterIndex, find_images
from taskgraph_images.progress import Reporter, Wait

GECKO = Path(__file__).resolve().parent.parent / "examples" / "gecko"


class Recorder(Reporter):
    """Keeps every wait it is told of; reports waits after ``report_after`` seconds."""

    def __init__(self, report_after: float = 5.0) -> None:
        self.waits: list[Wait] = []
        self.report_after = report_after

    def waiting(self, wait: Wait) -> None:
        self.waits.append(wait)


def _lookup(index: Any) -> Any:
    return find_images(index, [("builder", digest_of("builder"))], 1)


def test_the_default_timeout_stops_a_hung_index_within_a_minute() -> None:
    default = inspect.signature(TaskclusterIndex).parameters["timeout"].default
    assert default == 60.0


def test_retries_are_reported_with_their_try_and_the_last_cause(tc_server: TCServer) -> None:
    tc_server.inject("findTasksAtIndex", status=503, count=2)
    recorder = Recorder()
    _lookup(make_index(tc_server, max_retries=5, reporter=recorder))
    assert [(w.subject, w.call, w.attempt, w.attempts, w.reason) for w in recorder.waits] == [
        ("the index", "findTasksAtIndex", 2, 6, "answered 503"),
        ("the index", "findTasksAtIndex", 3, 6, "answered 503"),
    ]


def test_a_dropped_connection_is_retried_and_reported(tc_server: TCServer) -> None:
    tc_server.inject("findTasksAtIndex", drop=True, count=1)
    recorder = Recorder()
    _lookup(make_index(tc_server, max_retries=2, reporter=recorder))
    (wait,) = recorder.waits
    assert wait.attempt == 2 and wait.reason and "HTTPConnectionPool" not in wait.reason


def test_a_slow_answer_is_reported_while_it_is_awaited(tc_server: TCServer) -> None:
    tc_server.inject("findTasksAtIndex", delay=0.8, count=1)
    recorder = Recorder(report_after=0.3)
    _lookup(make_index(tc_server, reporter=recorder))
    assert [w.attempt for w in recorder.waits] == [1, 1]
    assert all(w.reason is None and w.elapsed >= 0.3 for w in recorder.waits)
    assert recorder.waits[1].elapsed >= 0.6


def test_a_hung_index_stops_at_the_timeout(tc_server: TCServer) -> None:
    tc_server.inject("findTasksAtIndex", delay=30)
    recorder = Recorder(report_after=0.4)
    start = time.monotonic()
    with pytest.raises(IndexUnavailableError, match=r"findTasksAtIndex gave no answer within 1s"):
        _lookup(make_index(tc_server, timeout=1.0, reporter=recorder))
    assert time.monotonic() - start < 2.5
    assert [w.attempt for w in recorder.waits] == [1, 1]


def test_the_deadline_covers_the_retries(tc_server: TCServer) -> None:
    tc_server.inject("findTasksAtIndex", status=500)
    start = time.monotonic()
    with pytest.raises(IndexUnavailableError, match="answered 500"):
        _lookup(make_index(tc_server, timeout=0.5, max_retries=50))
    assert time.monotonic() - start < 2.0


def test_cli_says_what_it_waits_for_on_stderr(
    tc_server: TCServer, capsys: pytest.CaptureFixture[str]
) -> None:
    tc_server.inject("findTasksAtIndex", status=503, count=1)
    code = main(["plan", "--root", str(GECKO), "--index", f"taskcluster:{tc_server.root_url}",
                 "--level", "1"])
    err = capsys.readouterr().err
    assert code == 0
    assert ("taskgraph-images: waiting for the index (findTasksAtIndex, try 2 of 6)... "
            "try 1: answered 503\n") in err


def test_cli_quiet_hides_the_waits(tc_server: TCServer, capsys: pytest.CaptureFixture[str]) -> None:
    tc_server.inject("findTasksAtIndex", status=503, count=1)
    assert main(["plan", "-q", "--root", str(GECKO), "--level", "1",
                 "--index", f"taskcluster:{tc_server.root_url}"]) == 0
    assert capsys.readouterr().err == ""


def test_a_refused_connection_is_one_short_cause(capsys: pytest.CaptureFixture[str]) -> None:
    # Nothing listens on port 9 of the loopback: connections are refused at once.
    code = main(["index", "find", "a.b", "--index", "taskcluster:http://127.0.0.1:9",
                 "--index-retries", "1"])
    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err[-2] == ("taskgraph-images: waiting for the index (findTask, try 2 of 2)... "
                       "try 1: connection refused")
    assert err[-1] == ("taskgraph-images: error: Taskcluster index service at "
                       "http://127.0.0.1:9 is unreachable: findTask failed 2 times "
                       "(connection refused)")


def test_on_index_error_build_warns_once_with_the_count(
    tc_server: TCServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tc_server.inject(status=503)
    code = main(["plan", "--root", str(GECKO), "--level", "1", "--on-index-error", "build",
                 "--index", f"taskcluster:{tc_server.root_url}", "--index-retries", "0"])
    err = capsys.readouterr().err
    assert code == 0
    warnings = [line for line in err.splitlines() if line.startswith("taskgraph-images: warning:")]
    assert len(warnings) == 1
    assert "was unavailable" in warnings[0]
    assert "building 2 images because of it (builder, tester)" in warnings[0]


def test_a_download_retry_is_reported(
    tc_server: TCServer, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKCLUSTER_PROXY_URL", raising=False)
    data = zstandard.ZstdCompressor().compress(docker_save_tar([b"L" * 5000]))
    task_id = tc_server.add_task(artifacts={"public/image.tar.zst": data})
    tc_server.inject("blob", status=503, count=1)
    code = main(["load", task_id, "-o", str(tmp_path / "o.tar"), "--root-url", tc_server.root_url,
                 "--index", f"local:{tmp_path / 'i.sqlite'}", "--root", str(GECKO)])
    err = capsys.readouterr().err
    assert code == 0, err
    assert ("taskgraph-images: waiting for the download (image.tar.zst, try 2 of 5)... "
            "try 1: HTTP 503\n") in err


def test_verbose_says_the_index_limits(capsys: pytest.CaptureFixture[str]) -> None:
    main(["index", "find", "a.b", "-v", "--index", "taskcluster:http://127.0.0.1:9",
          "--index-retries", "0", "--index-timeout", "7"])
    assert "each index request may take 7 s, 0 retries included\n" in capsys.readouterr().err


def test_a_refused_queue_is_one_short_cause(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["plan", "-q", "--root", str(GECKO), "--index", f"local:{tmp_path / 'i.sqlite'}",
                 "--submit", "--taskcluster-root-url", "http://127.0.0.1:9"])
    assert code == 1
    assert capsys.readouterr().err == ("taskgraph-images: error: the Queue at http://127.0.0.1:9 "
                                       "does not answer ping: connection refused\n")
