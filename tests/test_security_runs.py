"""``run-task`` does no more than a build task asks for, and writes only inside ``-o``.

A task definition comes from a plan or the Queue, which a lower level may
have written: its artifact names become file names, its routes index
entries, its capabilities a container's privileges (see ``docs/security.rst``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from clirun import error_line
from test_runtask import TASK_ID, _task
from told import Told

from taskgraph_images.builder.runtask import check_task, container_config, run_task
from taskgraph_images.cli import main
from taskgraph_images.errors import InvalidValueError

ESCAPING = "../../../ESCAPED.txt"


def _escaping_task() -> dict[str, Any]:
    return _task(artifacts={ESCAPING: {"type": "file", "path": "/etc/hostname"}})


class _Untouchable:
    """An engine that fails the test when anything is asked of it."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the engine was asked for {name} before the task was checked")


def test_an_artifact_name_leaving_the_output_folder_is_refused_before_the_run(
    tmp_path: Path,
) -> None:
    out = tmp_path / "a" / "b" / "c" / "out"
    with pytest.raises(InvalidValueError) as raised:
        run_task(_Untouchable(), _escaping_task(), TASK_ID,  # type: ignore[arg-type]
                 output_dir=str(out))
    assert str(raised.value) == (
        f"task {TASK_ID}: artifact name '../../../ESCAPED.txt' is not a relative '/'-separated "
        "name without '..' (it would be written outside the output folder)"
    )
    assert list(tmp_path.rglob("*ESCAPED*")) == []


@pytest.mark.parametrize("name", ["/abs/file", "public//x", "public/./x", "a\nb"])
def test_every_odd_artifact_name_is_refused(name: str) -> None:
    with pytest.raises(InvalidValueError, match="is not a relative '/'-separated name"):
        check_task(_task(artifacts={name: {"type": "file", "path": "/x"}}), TASK_ID)


def test_the_cli_refuses_the_task_before_the_index_or_the_engine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("TASKCLUSTER_ROOT_URL", raising=False)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"format": "x", "tasks": {TASK_ID: _escaping_task()}}))
    work = tmp_path / "w" / "x" / "y"
    work.mkdir(parents=True)
    db = tmp_path / "index.db"
    for extra in (["-o", str(work / "out")], ["--record", "--index", f"local:{db}"]):
        assert main(["run-task", TASK_ID, "--plan", str(plan), *extra]) == 1
        assert error_line(capsys.readouterr().err).startswith(
            f"task {TASK_ID}: artifact name '../../../ESCAPED.txt' is not a relative")
    assert list(tmp_path.rglob("*ESCAPED*")) == [] and not db.exists()
    assert not (work / "out").exists()


def test_record_refuses_a_route_it_could_not_index_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    task = _task()
    task["routes"] = ["index.docker.images..bad"]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"format": "x", "tasks": {TASK_ID: task}}))
    db = tmp_path / "index.db"
    assert main(["run-task", TASK_ID, "--plan", str(plan), "--record",
                 "--index", f"local:{db}"]) == 1
    assert error_line(capsys.readouterr().err) == (
        f"task {TASK_ID}: route index.'docker.images..bad' is not a valid index namespace; "
        "nothing recorded"
    )
    assert not db.exists()


def test_privileged_and_devices_are_refused() -> None:
    for capabilities in ({"privileged": True}, {"devices": {"kvm": True}},
                         {"devices": {"hostSharedMemory": True}}):
        with pytest.raises(InvalidValueError, match=r"privileged is refused|cannot give devices"):
            container_config(_task(capabilities=capabilities), TASK_ID, "b")


def test_host_networking_only_with_the_proxy_feature() -> None:
    plain = container_config(_task(), TASK_ID, "b")
    assert "NetworkMode" not in plain["HostConfig"]
    proxied = container_config(_task(features={"taskclusterProxy": True}), TASK_ID, "b",
                               root_url="http://127.0.0.1:9")
    assert proxied["HostConfig"]["NetworkMode"] == "host"


def test_a_cache_name_must_be_plain() -> None:
    with pytest.raises(InvalidValueError, match="cache name '/var/run' is not a plain name"):
        check_task(_task(cache={"/var/run": "/mnt"}), TASK_ID)


class _Engine:
    """Just enough of an engine to see the container a run asks for."""

    def __init__(self, bridge: bool) -> None:
        self.bridge = bridge
        self.configs: list[dict[str, Any]] = []

    def exists(self, name: str) -> bool:
        return True

    def has_network(self, name: str) -> bool:
        return self.bridge and name == "bridge"

    def create_container(self, config: dict[str, Any]) -> str:
        self.configs.append(config)
        return "c1"

    def start_container(self, cid: str) -> None:
        pass

    def logs(self, cid: str) -> list[tuple[int, bytes]]:
        return []

    def wait_container(self, cid: str, timeout: Any = None) -> int:
        return 0

    def remove_container(self, cid: str) -> None:
        pass


@pytest.mark.parametrize(("bridge", "host_config"), [(True, {}), (False, {"NetworkMode": "none"})])
def test_a_task_without_the_proxy_gets_the_default_network_or_none(
    bridge: bool, host_config: dict[str, Any]
) -> None:
    engine, told = _Engine(bridge), Told()
    run = run_task(engine, _task(), TASK_ID, reporter=told)  # type: ignore[arg-type]
    assert run.succeeded and engine.configs[0]["HostConfig"] == host_config
    assert any("no bridge network" in n for n in told.notes) is not bridge


def test_a_plan_nested_deep_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text("[" * 100_000 + "]" * 100_000)
    assert main(["run-task", TASK_ID, "--plan", str(plan)]) == 1
    assert error_line(capsys.readouterr().err) == f"{plan}: not a plan: JSON nested too deeply"
