"""The in-task builder without buildah: the task's environment, the checks, the checkout, labels."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

import attrs
import pytest
from trees import make_tree

from taskgraph_images.builder.intask import (
    DEFAULT_ARTIFACT_PATH,
    ENV_DEFAULTS,
    TaskEnv,
    archive_labels,
    build_in_task,
    check_task,
    checkout,
    env_names,
    images_dir_of,
    prebuilt_ancestors,
    read_env,
)
from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.config import DEFAULT_ENV_NAMES, BuildConfig
from taskgraph_images.errors import ArtifactError, ImageBuildError, InvalidValueError

D = "taskcluster/docker"


@pytest.fixture
def catalog(tmp_path: Path) -> ImageCatalog:
    """``base`` (prebuilt), ``tool`` (prebuilt, on base), ``app`` on tool, ``child`` on app,
    ``two`` (two task-image parents) and ``kinded`` (args)."""
    make_tree(tmp_path, {
        f"{D}/base/Dockerfile": "FROM scratch\n", f"{D}/base/VERSION": "1\n",
        f"{D}/tool/Dockerfile": "FROM reg/base:1\n", f"{D}/tool/VERSION": "2\n",
        f"{D}/app/Dockerfile": "FROM reg/tool:2\n",
        f"{D}/child/Dockerfile": "FROM app:latest\n",
        f"{D}/other/Dockerfile": "FROM scratch\n",
        f"{D}/two/Dockerfile": "FROM app:latest AS a\nFROM other:latest\n",
        f"{D}/REGISTRY": "reg\n",
        ".git/HEAD": "",
    })
    return ImageCatalog.load(tmp_path)


def test_env_names_are_the_contracts_unless_the_config_renames_them() -> None:
    assert env_names() == dict(ENV_DEFAULTS) == dict(DEFAULT_ENV_NAMES)
    config = attrs.evolve(BuildConfig(), env_names=tuple(
        dict(DEFAULT_ENV_NAMES, hash="IMAGE_HASH").items()))
    assert env_names(config)["hash"] == "IMAGE_HASH"
    assert env_names(config)["artifact-path"] == "IMAGE_ARTIFACT_PATH"


def test_read_env_reads_every_role() -> None:
    env = read_env({
        "IMAGE_NAME": "app", "HASH": "ab" * 32, "DOCKER_IMAGE_PARENT_TASK": "T",
        "DOCKER_BUILD_ARGS": '{"B": "2", "A": "1"}', "DOCKER_IMAGE_ZSTD_LEVEL": "19",
        "IMAGE_ARTIFACT_PATH": "/out/i.tar.zst", "CONTEXT_PATH": "taskcluster/docker/app",
    }, ENV_DEFAULTS)
    assert env == TaskEnv("app", "ab" * 32, "T", (("A", "1"), ("B", "2")), 19, "/out/i.tar.zst",
                          "taskcluster/docker/app")


def test_read_env_defaults() -> None:
    env = read_env({"IMAGE_NAME": "app", "HASH": "h", "DOCKER_IMAGE_PARENT_TASK": ""},
                   ENV_DEFAULTS, artifact_path="/a/b.tar.zst")
    assert env == TaskEnv("app", "h", None, None, 3, "/a/b.tar.zst", None)
    assert read_env({"IMAGE_NAME": "a", "HASH": "h"}, ENV_DEFAULTS).artifact_path == (
        DEFAULT_ARTIFACT_PATH)


OK = {"IMAGE_NAME": "a", "HASH": "h"}


@pytest.mark.parametrize(("env", "message"), [
    ({"HASH": "h"}, "the build task's environment has no IMAGE_NAME"),
    ({"IMAGE_NAME": "a", "HASH": ""}, "the build task's environment has no HASH"),
    ({**OK, "DOCKER_BUILD_ARGS": "{"}, "DOCKER_BUILD_ARGS is not JSON: "),
    ({**OK, "DOCKER_BUILD_ARGS": '["A"]'}, "DOCKER_BUILD_ARGS must be a JSON object of strings"),
    ({**OK, "DOCKER_BUILD_ARGS": '{"A": 1}'}, "DOCKER_BUILD_ARGS must be a JSON object of strings"),
    ({**OK, "DOCKER_IMAGE_ZSTD_LEVEL": "max"}, "DOCKER_IMAGE_ZSTD_LEVEL='max' is not a zstd level"),
    ({**OK, "DOCKER_IMAGE_ZSTD_LEVEL": "23"}, "DOCKER_IMAGE_ZSTD_LEVEL='23' is not a zstd level"),
    ({**OK, "IMAGE_ARTIFACT_PATH": "o.tar.zst"}, "IMAGE_ARTIFACT_PATH='o.tar.zst' is not an abs"),
])
def test_read_env_refuses_with_the_variables_name(env: dict[str, str], message: str) -> None:
    with pytest.raises(InvalidValueError) as e:
        read_env(env, ENV_DEFAULTS)
    assert str(e.value).startswith(message)


def test_images_dir_of_a_context_path() -> None:
    assert images_dir_of("taskcluster/docker/app") == "taskcluster/docker"
    assert images_dir_of("/images/app/") == "images"
    assert images_dir_of("app") is None
    assert images_dir_of(None) is None


def test_prebuilt_ancestors_stop_at_task_images(catalog: ImageCatalog) -> None:
    assert prebuilt_ancestors(catalog, "app") == ["base", "tool"]
    assert prebuilt_ancestors(catalog, "child") == []
    assert prebuilt_ancestors(catalog, "tool") == ["base"]


def _env(catalog: ImageCatalog, name: str, **changes: object) -> TaskEnv:
    env = TaskEnv(name, catalog.digest(name), context_path=catalog[name].path)
    return attrs.evolve(env, **changes)  # type: ignore[arg-type]


def test_check_task_returns_the_parent_to_fetch(catalog: ImageCatalog) -> None:
    assert check_task(catalog, _env(catalog, "app")) is None
    assert check_task(catalog, _env(catalog, "child", parent_task="T")) == "app"


@pytest.mark.parametrize(("name", "changes", "message"), [
    ("nope", {}, "the task builds image 'nope', which the tree at this revision does not have"),
    ("app", {"digest": "0" * 64}, "refusing to build 'app': the tree's digest is "),
    ("app", {"context_path": "elsewhere/app"},
     "refusing to build 'app': the task's context path is elsewhere/app, the tree's is "
     "taskcluster/docker/app"),
    ("app", {"build_args": (("A", "1"),)},
     "refusing to build 'app': the task's build args {'A': '1'} are not the tree's {}"),
    ("child", {}, "image 'child' is built on the task image 'app', but the task names no parent"),
    ("app", {"parent_task": "T"},
     "the task names parent task T, but image 'app' has no in-tree task-image parent"),
    ("two", {"parent_task": "T"},
     "image 'two' has several in-tree task-image parents (app, other); a build task names one"),
])
def test_check_task_refusals(catalog: ImageCatalog, name: str, changes: dict[str, object],
                             message: str) -> None:
    env = _env(catalog, name, **changes) if name in catalog else TaskEnv(name, "h")
    with pytest.raises(ImageBuildError) as e:
        check_task(catalog, env)
    assert str(e.value).startswith(message)


def _archive(path: Path, manifest: object, config: object = None) -> str:
    with tarfile.open(path, "w") as tar:
        for name, value in (("manifest.json", manifest), ("c.json", config)):
            if value is None:
                continue
            data = json.dumps(value).encode()
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return str(path)


def test_archive_labels(tmp_path: Path) -> None:
    path = _archive(tmp_path / "a.tar", [{"Config": "c.json"}],
                    {"config": {"Labels": {"org.taskgraph-images.digest": "d", "x": 1}}})
    assert archive_labels(path) == {"org.taskgraph-images.digest": "d", "x": "1"}
    assert archive_labels(_archive(tmp_path / "b.tar", [{"Config": "c.json"}], {})) == {}


@pytest.mark.parametrize(("manifest", "config", "message"), [
    (None, None, "no manifest.json in the image tarball"),
    ([], None, "expected one image in manifest.json"),
    ([{"Config": "c.json"}, {"Config": "c.json"}], {}, "expected one image in manifest.json"),
    ([{"Config": "missing.json"}], {}, "no missing.json in the image tarball"),
])
def test_archive_labels_refuses_what_is_not_one_image(
    tmp_path: Path, manifest: object, config: object, message: str
) -> None:
    path = _archive(tmp_path / "a.tar", manifest, config)
    with pytest.raises(ArtifactError, match=message):
        archive_labels(path)


def test_archive_labels_of_a_file_that_is_not_a_tar(tmp_path: Path) -> None:
    (tmp_path / "x.tar").write_bytes(b"not a tar" * 100)
    with pytest.raises(ArtifactError, match="cannot read the image tarball"):
        archive_labels(str(tmp_path / "x.tar"))


def test_archive_labels_of_json_that_is_not(tmp_path: Path) -> None:
    path = tmp_path / "a.tar"
    with tarfile.open(path, "w") as tar:
        info = tarfile.TarInfo("manifest.json")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"{"))
    with pytest.raises(ArtifactError, match="manifest.json is not JSON"):
        archive_labels(str(path))


def _repo(tmp_path: Path) -> tuple[Path, str]:
    src = make_tree(tmp_path / "src", {"a.txt": "one\n"})
    git = ["git", "-C", str(src), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "-A"], check=True)
    subprocess.run([*git, "commit", "-q", "-m", "one"], check=True)
    rev = subprocess.run([*git, "rev-parse", "HEAD"], check=True, capture_output=True,
                         text=True).stdout.strip()
    (src / "a.txt").write_text("two\n")
    subprocess.run([*git, "commit", "-qam", "two"], check=True)
    return src, rev


def test_checkout_clones_and_checks_out_the_revision(tmp_path: Path) -> None:
    src, rev = _repo(tmp_path)
    checkout(f"file://{src}", rev, str(tmp_path / "dest"))
    assert (tmp_path / "dest" / "a.txt").read_text() == "one\n"


def test_checkout_of_an_unknown_revision(tmp_path: Path) -> None:
    src, _ = _repo(tmp_path)
    with pytest.raises(ImageBuildError) as e:
        checkout(f"file://{src}", "1" * 40, str(tmp_path / "dest"))
    assert str(e.value).startswith(f"checking out {'1' * 40} of file://{src} failed: ")


def test_checkout_of_a_missing_repository(tmp_path: Path) -> None:
    with pytest.raises(ImageBuildError, match=r"^cloning file:///nonexistent failed: "):
        checkout("file:///nonexistent", "1" * 40, str(tmp_path / "dest"))


def test_a_name_buildah_cannot_tag_is_refused_before_any_build(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/Base/Dockerfile": "FROM scratch\n",
                         f"{D}/app/Dockerfile": "FROM Base:latest\n"})
    catalog = ImageCatalog.load(tmp_path)
    env = _env(catalog, "app", parent_task="T")
    with pytest.raises(ImageBuildError) as info:
        build_in_task(catalog, env, executable="/nonexistent/buildah", workdir=str(tmp_path))
    assert str(info.value) == (
        "image 'Base' cannot be built by buildah in the task: Docker tags an image by its name, "
        "and 'Base' has upper-case letters (Docker repository names are lower case)"
    )


def test_buildahs_warning_about_unused_build_args_is_not_shown(
    catalog: ImageCatalog, tmp_path: Path
) -> None:
    """DOCKER_IMAGE_PARENT goes to every image with a parent; buildah's warning
    that ``child``'s Dockerfile does not use it is no news to the user."""
    import stat

    from taskgraph_images.builder.buildah import Buildah
    from taskgraph_images.builder.intask import _bud

    exe = tmp_path / "fake-buildah"
    exe.write_text("#!/bin/sh\necho 'STEP 1/1: FROM app:latest'\n"
                   "echo '[Warning] one or more build args were not consumed: "
                   "[DOCKER_IMAGE_PARENT]' >&2\necho 'COMMIT child:latest'\n")
    exe.chmod(exe.stat().st_mode | stat.S_IEXEC)
    work = tmp_path / "work"
    work.mkdir()
    lines: list[str] = []
    _bud(Buildah(str(work / "s"), str(work / "r"), executable=str(exe)), catalog, "child",
         str(work), {}, lines.append, "app")
    assert lines == ["STEP 1/1: FROM app:latest\n", "COMMIT child:latest\n"]
