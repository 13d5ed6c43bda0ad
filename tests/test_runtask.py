"""run-task without Docker: the container a task gets, artifacts copied out, runs recorded."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any, Iterator

import pytest

from taskgraph_images.builder.runtask import (
    TaskRun,
    container_config,
    copy_artifact,
    image_reference,
    index_routes,
    record_run,
)
from taskgraph_images.errors import ArtifactError, InvalidValueError
from taskgraph_images.index import LocalIndex, find_image

TASK_ID = "fGfKdQ1hRjq7b9x9XJm1yA"
DIGEST = "ab" * 32


def _task(**payload: Any) -> dict[str, Any]:
    body = {"image": "builder:1", "command": ["taskgraph-images", "build-in-task"],
            "env": {"HASH": DIGEST, "IMAGE_NAME": "app"}, "maxRunTime": 600, **payload}
    return {"taskQueueId": "proj/images", "payload": body,
            "routes": [f"index.docker.images.v2.level-1.app.hash.{DIGEST}",
                       "index.docker.images.v2.level-1.app.latest", "tc-treeherder.v2.x.y"],
            "extra": {"imageMeta": {"level": 1, "imageName": "app", "contextHash": DIGEST}}}


def test_the_container_runs_the_tasks_command_with_its_env() -> None:
    config = container_config(_task(), TASK_ID, "builder:1", root_url="http://tc.example/")
    assert config["Image"] == "builder:1"
    assert config["Cmd"] == ["taskgraph-images", "build-in-task"]
    assert "Entrypoint" not in config
    assert config["Env"] == [f"HASH={DIGEST}", "IMAGE_NAME=app", "RUN_ID=0",
                             "TASKCLUSTER_ROOT_URL=http://tc.example",
                             "TASKCLUSTER_WORKER_TYPE=images", f"TASK_ID={TASK_ID}"]
    # Without the proxy feature, Docker's default network, not the host's.
    assert config["HostConfig"] == {}


def test_disable_seccomp_is_seccomp_unconfined_and_privileged_is_refused() -> None:
    config = container_config(_task(capabilities={"disableSeccomp": True}), TASK_ID, "b")
    assert config["HostConfig"] == {"SecurityOpt": ["seccomp=unconfined"]}
    with pytest.raises(InvalidValueError) as raised:
        container_config(_task(capabilities={"privileged": True, "disableSeccomp": False}),
                         TASK_ID, "b")
    assert str(raised.value) == (
        f"task {TASK_ID}: capabilities.privileged is refused: a privileged container is root "
        "on the host, and a build task never asks for it (buildah needs disableSeccomp only)"
    )


def test_the_proxy_is_the_callers_taskcluster_on_the_hosts_network() -> None:
    task = _task(features={"taskclusterProxy": True, "chainOfTrust": True})
    config = container_config(task, TASK_ID, "b", root_url="http://127.0.0.1:9/")
    assert "TASKCLUSTER_PROXY_URL=http://127.0.0.1:9" in config["Env"]
    assert config["HostConfig"] == {"NetworkMode": "host"}
    with pytest.raises(InvalidValueError, match="uses the taskclusterProxy feature: give a"):
        container_config(task, TASK_ID, "b")


def test_what_a_local_run_cannot_give_is_refused() -> None:
    with pytest.raises(InvalidValueError) as e:
        container_config(_task(features={"dind": True, "interactive": False},
                               capabilities={"devices": {"kvm": True}}), TASK_ID, "b")
    assert str(e.value).startswith(f"task {TASK_ID}: a local run cannot give devices, dind (")


def test_caches_are_docker_volumes_kept_between_runs() -> None:
    task = _task(cache={"gecko-level-1-checkouts": "/builds/worker/checkouts"})
    assert container_config(task, TASK_ID, "b")["HostConfig"]["Mounts"] == [
        {"Type": "volume", "Source": "taskgraph-images-cache-gecko-level-1-checkouts",
         "Target": "/builds/worker/checkouts"}]


def test_payload_keys_a_local_run_cannot_give_are_refused() -> None:
    with pytest.raises(InvalidValueError) as e:
        container_config(_task(onExitStatus={"retry": [1]}, supersederUrl="x"), TASK_ID, "b")
    assert str(e.value) == (f"task {TASK_ID}: a local run cannot give payload.onExitStatus, "
                            "payload.supersederUrl")


def test_a_bad_command_or_payload() -> None:
    with pytest.raises(InvalidValueError, match="payload.command must be a list of strings"):
        container_config(_task(command="build"), TASK_ID, "b")
    with pytest.raises(InvalidValueError, match="the task has no payload object"):
        container_config({"payload": []}, TASK_ID, "b")


def test_without_a_command_the_image_default_runs() -> None:
    task = _task()
    del task["payload"]["command"]
    assert "Cmd" not in container_config(task, TASK_ID, "b")
    task["workerType"] = "legacy"
    assert "TASKCLUSTER_WORKER_TYPE=legacy" in container_config(task, TASK_ID, "b")["Env"]


@pytest.mark.parametrize(("image", "reference"), [
    ("taskcluster/image_builder:1.0.0", "taskcluster/image_builder:1.0.0"),
    ({"type": "docker-image", "name": "x:1"}, "x:1"),
    ({"type": "task-image", "taskId": "T", "path": "public/image.tar.zst"},
     f"taskgraph-images-run/{TASK_ID.lower()}:image"),
    ({"type": "indexed-image", "namespace": "a.b", "path": "public/image.tar.zst"},
     f"taskgraph-images-run/{TASK_ID.lower()}:image"),
])
def test_image_references(image: Any, reference: str) -> None:
    assert image_reference(image, TASK_ID) == reference


def test_an_unknown_image_is_refused() -> None:
    with pytest.raises(InvalidValueError, match="unknown payload.image"):
        image_reference({"type": "docker-image"}, TASK_ID)


def test_index_routes_are_the_index_dot_routes() -> None:
    assert index_routes(_task()) == [f"docker.images.v2.level-1.app.hash.{DIGEST}",
                                     "docker.images.v2.level-1.app.latest"]
    assert index_routes({}) == []


def _tar_of(name: str, data: bytes, kind: bytes = tarfile.REGTYPE) -> Iterator[bytes]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as tar:
        info = tarfile.TarInfo(name)
        info.type = kind
        info.size = len(data) if kind == tarfile.REGTYPE else 0
        tar.addfile(info, io.BytesIO(data) if kind == tarfile.REGTYPE else None)
    value = raw.getvalue()
    return iter([value[i:i + 700] for i in range(0, len(value), 700)])


def test_copy_artifact_writes_the_one_file(tmp_path: Path) -> None:
    dest = tmp_path / "public" / "image.tar.zst"
    copy_artifact(_tar_of("image.tar.zst", b"x" * 5000), str(dest))
    assert dest.read_bytes() == b"x" * 5000


def test_copy_artifact_of_a_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="is not a file in the container"):
        copy_artifact(_tar_of("artifacts", b"", tarfile.DIRTYPE), str(tmp_path / "a"))
    assert not (tmp_path / "a").exists()


def test_record_run_stores_and_indexes_under_the_tasks_routes(tmp_path: Path) -> None:
    index = LocalIndex(tmp_path / "index.db")
    artifact = tmp_path / "image.tar.zst"
    artifact.write_bytes(b"\x28\xb5\x2f\xfd image")
    run = TaskRun(TASK_ID, 0, (("public/image.tar.zst", str(artifact)),))
    namespaces = record_run(index, _task(), run)
    assert namespaces == index_routes(_task())
    found = find_image(index, "app", DIGEST, 1)
    assert found.reuse and found.found is not None and found.found.task_id == TASK_ID
    entry = index.find_task(f"docker.images.v2.level-1.app.hash.{DIGEST}")
    assert entry is not None and entry.data == {"image": "app", "digest": DIGEST, "level": 1}
    assert index.artifact_path(TASK_ID) is not None and not artifact.exists()


def test_run_task_cli_refusals(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                               monkeypatch: pytest.MonkeyPatch) -> None:
    from taskgraph_images.cli import main

    monkeypatch.delenv("TASKCLUSTER_ROOT_URL", raising=False)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"format": "x", "tasks": {TASK_ID: _task()}}))
    cases = [
        (["run-task", "T"], "to fetch task T from the Queue, set TASKCLUSTER_ROOT_URL or give "
                            "--root-url (or read it from a plan with --plan FILE)"),
        (["run-task", "T", "--plan", str(plan)], f"{plan} has no task T (its tasks: {TASK_ID})"),
        (["run-task", "T", "--plan", str(tmp_path / "none.json")], "cannot read plan "),
        (["run-task", TASK_ID, "--plan", str(plan), "--record", "--index", "taskcluster:http://x"],
         "run-task --record writes to the local index only, not the "),
    ]
    for argv, message in cases:
        assert main(argv) == 1
        err = capsys.readouterr().err.splitlines()
        assert err[-1].startswith(f"taskgraph-images: error: {message}"), err
    (tmp_path / "bad.json").write_text("{")
    assert main(["run-task", "T", "--plan", str(tmp_path / "bad.json")]) == 1
    assert "not a plan: invalid JSON" in capsys.readouterr().err
    (tmp_path / "list.json").write_text("[]")
    assert main(["run-task", "T", "--plan", str(tmp_path / "list.json")]) == 1
    assert "not a plan: no 'tasks' object" in capsys.readouterr().err
