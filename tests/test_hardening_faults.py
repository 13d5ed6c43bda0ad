"""Fault injection at the plan level: ``plan_images`` and ``taskgraph-images plan``
against the loopback Taskcluster server.

The matrix is {500 for a few requests then success, 503 forever, dropped
connections (a few, or forever), a response slower than the client's timeout,
a missing batch endpoint, a malformed JSON body}, on each service call a plan
makes. Where the client can recover, the plan is the fault-free plan, to the
byte. Where it cannot, planning stops with one line naming the service and
its root URL (CLI: exit 1, no traceback, no output file), and the ``build``
policy (``on_error="build"`` / ``--on-index-error=build``) builds every image
whose lookup the fault made unknown, saying so.

The repository below has one image of each kind of decision, at a level-1
push: ``alpha`` indexed at level 3 (reused), ``beta`` (child of ``alpha``)
indexed at level 2 (reused), ``gamma`` indexed by a failed task at level 1
and with an expired artifact at level 3 (built), ``delta`` not indexed
(built), ``epsilon`` (child of ``delta``) indexed but rebuilt with its
parent, and the prebuilt ``image_builder``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Optional

import attrs
import pytest
from index_helpers import PAST
from plan_helpers import NOW, PARAMS, params, seeded_task_ids
from tcserver import TCServer, make_index
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.cli import main
from taskgraph_images.errors import IndexUnavailableError
from taskgraph_images.index import hash_namespace
from taskgraph_images.plan import Plan, plan_images

D = "taskcluster/docker"
LEVEL = 1
TASK_IMAGES = ("alpha", "beta", "gamma", "delta", "epsilon")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> ImageCatalog:
    root = make_tree(
        tmp_path_factory.mktemp("repo"),
        {
            f"{D}/REGISTRY": "taskcluster\n",
            f"{D}/image_builder/Dockerfile": "FROM ubuntu:22.04\n",
            f"{D}/image_builder/VERSION": "0.2.0\n",
            f"{D}/alpha/Dockerfile": "FROM debian:12\nRUN echo alpha\n",
            f"{D}/beta/Dockerfile": "FROM alpha\nRUN echo beta\n",
            f"{D}/gamma/Dockerfile": "FROM debian:12\nRUN echo gamma\n",
            f"{D}/delta/Dockerfile": "FROM debian:12\nRUN echo delta\n",
            f"{D}/epsilon/Dockerfile": "FROM delta\nRUN echo epsilon\n",
            # A plan for a real Taskcluster needs a queue; the CLI reads this file by default.
            "taskcluster/taskgraph-images.yml": "task-queue-id: proj-faults-{level}/images\n",
        },
    )
    return ImageCatalog.load(root)


def plant(server: TCServer, catalog: ImageCatalog) -> dict[str, str]:
    """Index the repository's images as the module docstring says; return the reusable tasks."""

    def at(level: int, name: str, **task: Any) -> str:
        task_id = server.add_task(**task)
        server.index_task(hash_namespace(level, name, catalog.digest(name)), task_id)
        return task_id

    reused = {"alpha": at(3, "alpha"), "beta": at(2, "beta")}
    at(1, "gamma", state="failed")
    at(3, "gamma", artifact_expires=PAST)
    at(3, "epsilon")
    return reused


def make_plan(catalog: ImageCatalog, index: Any, **kw: Any) -> Plan:
    kw.setdefault("explain", False)  # the lookup's reasons; explanations: test_explain.py
    return plan_images(catalog, params(level=LEVEL), index, task_ids=seeded_task_ids(), now=NOW, **kw)


@pytest.fixture
def fault_free(tc_server: TCServer, catalog: ImageCatalog) -> Plan:
    """The plan of the planted server with no fault (then the request log is cleared)."""
    reused = plant(tc_server, catalog)
    plan = make_plan(catalog, make_index(tc_server))
    assert {n: d.task_id for n, d in plan.decisions.items() if d.action == "reuse"} == reused
    assert [plan[n].action for n in TASK_IMAGES] == ["reuse", "reuse", "build", "build", "build"]
    with tc_server._lock:
        tc_server.requests.clear()
    return plan


# -- the matrix ------------------------------------------------------------------------

Inject = Callable[[TCServer], None]


@attrs.frozen
class Fault:
    """One cell of the matrix: how to break the server, and what the plan must do."""

    id: str
    inject: Inject
    #: None: the plan recovers; else the service (``index`` or ``queue``) the error names.
    service: Optional[str] = None
    #: Words the error message must contain.
    says: str = ""
    #: The task images whose lookup the fault makes unknown (build policy).
    affected: tuple[str, ...] = ()
    #: Client settings for this cell (small, so that the matrix runs fast).
    client: tuple[tuple[str, Any], ...] = (("max_retries", 2), ("timeout", 5.0))


def status(code: int, endpoint: Optional[str] = None, count: Optional[int] = None) -> Inject:
    def inject(server: TCServer) -> None:
        server.inject(endpoint, status=code, count=count)

    return inject


def drop(endpoint: Optional[str] = None, count: Optional[int] = None) -> Inject:
    def inject(server: TCServer) -> None:
        server.inject(endpoint, drop=True, count=count)

    return inject


def slow(endpoint: str) -> Inject:
    def inject(server: TCServer) -> None:
        server.inject(endpoint, delay=1.0)

    return inject


def malformed(endpoint: str) -> Inject:
    def inject(server: TCServer) -> None:
        server.inject(endpoint, malformed=True)

    return inject


def missing(endpoint: str, code: int, then: Optional[Inject] = None) -> Inject:
    def inject(server: TCServer) -> None:
        server.disable(endpoint, code)
        if then is not None:
            then(server)

    return inject


#: Images with an indexed candidate: their lookup needs the queue (epsilon is
#: indexed too, but its parent is rebuilt whatever the index says).
INDEXED = ("alpha", "beta", "gamma")
#: Images whose indexed task completed: their artifact is checked.
COMPLETED = ("alpha", "beta", "gamma")
FAST = (("max_retries", 0), ("timeout", 0.3))

RECOVERABLE = [
    Fault("500x2-then-ok-everywhere", status(500, count=2)),
    Fault("500x2-then-ok-findTasksAtIndex", status(500, "findTasksAtIndex", 2)),
    Fault("500x2-then-ok-statuses", status(500, "statuses", 2)),
    Fault("500x2-then-ok-latestArtifactInfo", status(500, "latestArtifactInfo", 2)),
    Fault("dropped-x2-then-ok-everywhere", drop(count=2)),
    Fault("dropped-x2-then-ok-statuses", drop("statuses", 2)),
    Fault("batch-find-missing-404", missing("findTasksAtIndex", 404)),
    Fault("batch-find-missing-405", missing("findTasksAtIndex", 405)),
    Fault("batch-statuses-missing-404", missing("statuses", 404)),
]

FATAL = [
    Fault("503-forever-everywhere", status(503), "index", "answered 503 3 times", TASK_IMAGES),
    Fault("503-forever-statuses", status(503, "statuses"), "queue", "statuses answered 503", INDEXED),
    Fault("503-forever-latestArtifactInfo", status(503, "latestArtifactInfo"), "queue",
          "latestArtifactInfo answered 503", COMPLETED),
    Fault("503-forever-findTask-fallback",
          missing("findTasksAtIndex", 404, then=status(503, "findTask")),
          "index", "findTask answered 503", TASK_IMAGES),
    Fault("dropped-forever-everywhere", drop(), "index", "is unreachable: findTasksAtIndex failed 3",
          TASK_IMAGES),
    Fault("dropped-forever-latestArtifactInfo", drop("latestArtifactInfo"), "queue",
          "is unreachable: latestArtifactInfo", COMPLETED),
    Fault("slow-past-timeout-findTasksAtIndex", slow("findTasksAtIndex"), "index",
          "findTasksAtIndex gave no answer within 0.3s", TASK_IMAGES, FAST),
    Fault("slow-past-timeout-statuses", slow("statuses"), "queue",
          "statuses gave no answer within 0.3s", INDEXED, FAST),
    Fault("malformed-findTasksAtIndex", malformed("findTasksAtIndex"), "index",
          "findTasksAtIndex with malformed JSON", TASK_IMAGES),
    Fault("malformed-statuses", malformed("statuses"), "queue", "statuses with malformed JSON",
          INDEXED),
    Fault("malformed-latestArtifactInfo", malformed("latestArtifactInfo"), "queue",
          "latestArtifactInfo with malformed JSON", COMPLETED),
]


def cells(faults: list[Fault]) -> Any:
    return pytest.mark.parametrize("fault", faults, ids=[f.id for f in faults])


FALLBACK = {"findTasksAtIndex": "findTask", "statuses": "status"}


@cells(RECOVERABLE)
def test_recoverable_fault_gives_the_fault_free_plan(
    tc_server: TCServer, catalog: ImageCatalog, fault_free: Plan, fault: Fault
) -> None:
    fault.inject(tc_server)
    plan = make_plan(catalog, make_index(tc_server, **dict(fault.client)))
    assert plan.to_json() == fault_free.to_json()
    assert tc_server.schema_errors == []
    # The fault was met: every injected failure was served, every missing
    # batch endpoint was asked and its one-by-one fallback used.
    assert [f.count for f in tc_server.faults] == [0] * len(tc_server.faults)
    for endpoint in tc_server.disabled:
        assert tc_server.count(endpoint) == 1 and tc_server.count(FALLBACK[endpoint]) > 1


@cells(FATAL)
def test_fatal_fault_stops_the_plan_naming_the_service_and_root_url(
    tc_server: TCServer, catalog: ImageCatalog, fault_free: Plan, fault: Fault
) -> None:
    fault.inject(tc_server)
    with pytest.raises(IndexUnavailableError) as info:
        make_plan(catalog, make_index(tc_server, **dict(fault.client)))
    message = str(info.value)
    assert f"Taskcluster {fault.service} service at {tc_server.root_url}" in message
    assert fault.says in message
    assert "\n" not in message


@cells(FATAL)
def test_fatal_fault_with_build_policy_builds_every_affected_image_and_says_why(
    tc_server: TCServer, catalog: ImageCatalog, fault_free: Plan, fault: Fault
) -> None:
    fault.inject(tc_server)
    plan = make_plan(catalog, make_index(tc_server, **dict(fault.client)), on_error="build")
    for name in TASK_IMAGES:
        got, before = plan[name], fault_free[name]
        if name in fault.affected:
            assert got.action == "build"
            parent = got.parent if got.parent in fault.affected else None
            if parent is not None:  # built with its parent, which says why
                assert got.reason == f"parent {parent} rebuilt"
            else:
                assert got.reason.startswith("index unavailable: Taskcluster ")
                assert got.index_error is not None and tc_server.root_url in got.index_error
                assert fault.says in got.index_error
        else:
            assert (got.action, got.reason, got.index_error) == (
                before.action, before.reason, None)
    built = {d.task_id for d in plan.decisions.values() if d.action == "build"}
    assert set(plan.tasks) == built


# -- the command line ------------------------------------------------------------------


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No Taskcluster variables, a private cache, and a parameters file (returned)."""
    for var in ("TASKCLUSTER_ROOT_URL", "TASKCLUSTER_PROXY_URL", "TASKCLUSTER_CLIENT_ID",
                "TASKCLUSTER_ACCESS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    path = tmp_path / "params.json"
    path.write_text(json.dumps({**PARAMS, "level": LEVEL}))
    return path


def cli_plan(
    capsys: pytest.CaptureFixture[str], server: TCServer, catalog: ImageCatalog, params_file: Path,
    fault: Fault, *extra: str,
) -> tuple[int, str, str]:
    client = dict(fault.client)
    code = main([
        "plan", "--root", str(catalog.root), "--params", str(params_file),
        "--index", f"taskcluster:{server.root_url}",
        "--index-retries", str(client["max_retries"]), "--index-timeout", str(client["timeout"]),
        "--output", str(params_file.parent / "plan.json"), *extra,
    ])
    out, err = capsys.readouterr()
    return code, out, err


def decisions_without_new_task_ids(plan: Plan) -> dict[str, dict[str, Any]]:
    """The decisions, less the task ids of builds (the CLI draws fresh ones)."""
    return {
        name: {k: v for k, v in d.to_json().items() if not (k == "task_id" and d.action == "build")}
        for name, d in plan.decisions.items()
    }


@cells([f for f in RECOVERABLE if "everywhere" in f.id or "missing" in f.id])
def test_cli_recovers_with_the_fault_free_decisions(
    capsys: pytest.CaptureFixture[str], tc_server: TCServer, catalog: ImageCatalog,
    fault_free: Plan, cli_env: Path, fault: Fault,
) -> None:
    fault.inject(tc_server)
    code, _, err = cli_plan(capsys, tc_server, catalog, cli_env, fault)
    assert code == 0, err
    plan = Plan.from_json((cli_env.parent / "plan.json").read_text())
    # The CLI explains its builds: so must the fault-free plan compared with.
    explained = make_plan(catalog, make_index(tc_server), explain=True)
    assert decisions_without_new_task_ids(plan) == decisions_without_new_task_ids(explained)
    assert len(plan.tasks) == len(fault_free.tasks)


@cells(FATAL)
def test_cli_fatal_fault_is_one_line_exit_1_and_no_output_file(
    capsys: pytest.CaptureFixture[str], tc_server: TCServer, catalog: ImageCatalog,
    fault_free: Plan, cli_env: Path, fault: Fault,
) -> None:
    fault.inject(tc_server)
    code, out, err = cli_plan(capsys, tc_server, catalog, cli_env, fault)
    assert (code, out) == (1, "")
    last = err.strip().splitlines()[-1]
    assert last.startswith("taskgraph-images: error: Taskcluster ")
    assert f"{fault.service} service at {tc_server.root_url}" in last and fault.says in last
    assert "Traceback" not in err
    assert sorted(p.name for p in cli_env.parent.iterdir()) == ["cache", "params.json"]


@cells([f for f in FATAL if f.id in ("503-forever-everywhere", "malformed-statuses")])
def test_cli_build_policy_writes_a_plan_that_builds_the_affected_images(
    capsys: pytest.CaptureFixture[str], tc_server: TCServer, catalog: ImageCatalog,
    fault_free: Plan, cli_env: Path, fault: Fault,
) -> None:
    fault.inject(tc_server)
    code, out, err = cli_plan(capsys, tc_server, catalog, cli_env, fault, "--on-index-error", "build")
    assert code == 0, err
    plan = Plan.from_json((cli_env.parent / "plan.json").read_text())
    unknown = [n for n, d in plan.decisions.items() if d.index_error is not None]
    assert unknown and set(unknown) <= set(fault.affected)
    assert all(plan[n].action == "build" for n in fault.affected)
    lines = out.splitlines()
    assert all(len(line) <= 80 for line in lines)
    for name in unknown:
        at = next(i for i, line in enumerate(lines) if line.startswith(name + " "))
        # The reason is too long for the row: it goes on, indented, below it.
        assert lines[at].endswith("  build:")
        assert lines[at + 1].startswith("    index unavailable: T")
    warnings = [line for line in err.splitlines() if "warning:" in line]
    assert len(warnings) == 1 and f"building {len(fault.affected)} image" in warnings[0]


def test_cli_rejects_a_negative_retry_count(
    capsys: pytest.CaptureFixture[str], tc_server: TCServer, catalog: ImageCatalog, cli_env: Path
) -> None:
    code = main(["plan", "--root", str(catalog.root), "--params", str(cli_env),
                 "--index", f"taskcluster:{tc_server.root_url}", "--index-retries", "-1"])
    err = capsys.readouterr().err
    assert code == 1 and "invalid TaskclusterIndex settings" in err.strip().splitlines()[-1]
