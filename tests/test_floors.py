"""The declared dependency floors: one list, and one clear line for a package older than it."""

from __future__ import annotations

import configparser
import re
import subprocess
import sys
from pathlib import Path

import pytest
from floorsrun import FLOORS_FILE, is_floors_run

from taskgraph_images._floors import FLOORS, _release, require
from taskgraph_images.errors import DependencyError

ROOT = Path(__file__).resolve().parent.parent


def _declared() -> dict[str, str]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    lines = config["options"]["install_requires"].split("\n")
    found = {}
    for line in filter(None, (line.strip() for line in lines)):
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", line)
        assert match, f"setup.cfg: {line!r} is not NAME>=FLOOR"
        found[match.group(1).lower()] = match.group(2)
    return found


def _pinned() -> dict[str, str]:
    found = {}
    for line in FLOORS_FILE.read_text().splitlines():
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)==([0-9.]+)", line.strip())
        if match:
            found[match.group(1).lower()] = match.group(2)
    return found


def test_setup_cfg_the_constraints_file_and_the_code_name_the_same_floors() -> None:
    assert _declared() == _pinned() == dict(FLOORS)


@pytest.mark.parametrize(("version", "release"), [
    ("64.1.1", (64, 1, 1, 0)), ("5.1", (5, 1, 0, 0)), ("0.15.0rc1", (0, 15, 0, 0)),
    ("2.25.0.post1", (2, 25, 0, 0)), ("weird", (0, 0, 0, 0)),
])
def test_release_numbers(version: str, release: tuple[int, ...]) -> None:
    assert _release(version) == release


def test_the_installed_dependencies_are_at_their_floors_or_later() -> None:
    for distribution in FLOORS:
        require(distribution)


@pytest.mark.skipif(
    not is_floors_run(),
    reason="only in a floors run (tox -e floors, .ci/run), with PIP_CONSTRAINT=tests/floors.txt",
)
def test_a_floors_run_has_every_dependency_exactly_at_its_floor() -> None:
    from importlib import metadata

    installed = {name: metadata.version(name) for name in FLOORS}
    print("floors:", ", ".join(f"{name} {version}" for name, version in sorted(installed.items())))
    assert installed == dict(FLOORS)


def _fake_distribution(where: Path, name: str, version: str) -> Path:
    """A ``NAME-VERSION.dist-info`` that the metadata finder sees before the real one."""
    info = where / f"{name}-{version}.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    return where


def test_an_older_package_is_one_line_naming_it_and_the_version_needed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(_fake_distribution(tmp_path, "taskcluster", "44.0.0")))
    with pytest.raises(DependencyError) as info:
        require("taskcluster")
    assert str(info.value) == (
        f"taskcluster 44.0.0 is too old: taskgraph-images needs taskcluster>={FLOORS['taskcluster']}"
        f" (pip install 'taskcluster>={FLOORS['taskcluster']}')"
    )


def test_a_missing_package_is_one_line_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FLOORS, "no-such-package-i12", "1.0")  # type: ignore[index]
    with pytest.raises(DependencyError, match="^no-such-package-i12 is not installed: "
                                              r"taskgraph-images needs no-such-package-i12>=1\.0"):
        require("no-such-package-i12")


def _module_without_metadata(where: Path, name: str, version: object) -> Path:
    where.mkdir(parents=True)
    line = "" if version is None else f"__version__ = {version!r}\n"
    (where / f"{name}.py").write_text(line)
    return where


@pytest.mark.parametrize(("version", "passes"), [("0.1", False), ("9.0", True), (None, True),
                                                 (7, True)])
def test_a_module_without_metadata_is_judged_by_its_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, version: object, passes: bool
) -> None:
    monkeypatch.syspath_prepend(str(_module_without_metadata(tmp_path / "lib", "vendored_i12",
                                                                version)))
    monkeypatch.setitem(FLOORS, "vendored_i12", "1.0")  # type: ignore[index]
    monkeypatch.delitem(sys.modules, "vendored_i12", raising=False)
    if passes:
        require("vendored_i12")
    else:
        with pytest.raises(DependencyError, match=r"^vendored_i12 0\.1 is too old"):
            require("vendored_i12")


def test_plan_with_an_old_client_says_so_in_one_line(tmp_path: Path) -> None:
    fake = _fake_distribution(tmp_path / "old", "taskcluster", "44.0.0")
    env = {"PYTHONPATH": f"{fake}:{ROOT}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "taskgraph_images", "plan", "--root", str(ROOT / "examples" / "gecko"),
         "--index", "taskcluster:http://127.0.0.1:9"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert lines[-1].endswith(f"taskcluster 44.0.0 is too old: taskgraph-images needs "
                              f"taskcluster>={FLOORS['taskcluster']} "
                              f"(pip install 'taskcluster>={FLOORS['taskcluster']}')")


def test_saving_to_zst_with_an_old_zstandard_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from taskgraph_images.images.sinks import FileSink

    monkeypatch.syspath_prepend(str(_fake_distribution(tmp_path / "old", "zstandard", "0.14.1")))
    with pytest.raises(DependencyError, match=r"^zstandard 0\.14\.1 is too old"):
        FileSink(tmp_path / "image.tar.zst")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
