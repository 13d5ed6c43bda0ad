"""The CLI's shared helpers: the build-task config is found and read once per command."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from plan_helpers import GECKO, PARAMS

import taskgraph_images.config
from taskgraph_images.cli import main
from taskgraph_images.cli._common import (
    config_path,
    load_build_config,
    load_catalog,
    load_catalog_and_config,
)
from taskgraph_images.config import DEFAULT_CONFIG_PATH, BuildConfig
from taskgraph_images.errors import ConfigError

KINDREPO = Path(__file__).resolve().parent / "data" / "kindrepo"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("TASKCLUSTER_ROOT_URL", "TASKCLUSTER_PROXY_URL",
                "TASKCLUSTER_CLIENT_ID", "TASKCLUSTER_ACCESS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))


@pytest.fixture
def reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The build-task config files read (every call of ``config.load_config``)."""
    seen: list[str] = []
    real = taskgraph_images.config.load_config

    def spy(path: Any, **kwargs: Any) -> BuildConfig:
        seen.append(str(path))
        return real(path, **kwargs)

    monkeypatch.setattr(taskgraph_images.config, "load_config", spy)
    return seen


def _args(**values: Any) -> argparse.Namespace:
    defaults = {"root": str(GECKO), "images_dir": None, "kind_config": None,
                "hash_cache": "none", "config": None}
    return argparse.Namespace(**{**defaults, **values})


def test_config_path_is_the_given_file_none_or_the_roots_default(tmp_path: Path) -> None:
    assert config_path("other.yml", str(GECKO)) == "other.yml"
    assert config_path("none", str(GECKO)) is None
    assert config_path(None, str(GECKO)) == str(GECKO / DEFAULT_CONFIG_PATH)
    assert config_path(None, str(tmp_path)) is None
    assert config_path(None, None) is None


def test_catalog_and_config_read_the_file_once(reads: list[str]) -> None:
    catalog, config = load_catalog_and_config(_args())
    assert reads == [str(GECKO / DEFAULT_CONFIG_PATH)]
    assert config.path == str(GECKO / DEFAULT_CONFIG_PATH)
    assert catalog.cache_keys == config.cache_keys


def test_a_given_config_decides_the_catalogs_cache_keys(tmp_path: Path, reads: list[str]) -> None:
    path = tmp_path / "tg.yml"
    path.write_text("cache-keys: taskgraph\ntrust-domain: gecko\n")
    catalog, config = load_catalog_and_config(_args(root=str(KINDREPO), config=str(path)))
    assert (catalog.cache_keys, config.trust_domain) == ("taskgraph", "gecko")
    assert load_catalog(_args(root=str(KINDREPO), config=str(path))).cache_keys == "taskgraph"
    assert load_catalog(_args(root=str(KINDREPO), config="none")).cache_keys == "seed"
    assert reads == [str(path), str(path)]


def test_a_passed_config_is_not_read_again(reads: list[str]) -> None:
    config = load_build_config(None, str(GECKO))
    load_catalog(_args(), config)
    assert reads == [str(GECKO / DEFAULT_CONFIG_PATH)]


def test_plan_reads_the_roots_config_once(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, reads: list[str]
) -> None:
    params = tmp_path / "params.yml"
    params.write_text(json.dumps(PARAMS))
    code = main(["plan", "--root", str(GECKO), "--params", str(params), "--json"])
    _, err = capsys.readouterr()
    assert code == 0 and err.count("using the build-task config") == 1
    assert reads == [str(GECKO / DEFAULT_CONFIG_PATH)]


@pytest.mark.parametrize("command", [["plan"], ["list"], ["why", "builder"]])
def test_a_bad_config_is_named_in_one_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, command: list[str]
) -> None:
    root = tmp_path / "repo"
    shutil.copytree(GECKO, root)
    bad = root / DEFAULT_CONFIG_PATH
    bad.write_text("no-such-key: 1\n")
    code = main([*command, "--root", str(root)])
    _, err = capsys.readouterr()
    assert code == 1
    assert err.strip().splitlines()[-1].endswith(f"{bad}: unknown key 'no-such-key' "
                                                  f"(known keys: {_known_keys()})")


def _known_keys() -> str:
    return ", ".join(sorted(taskgraph_images.config.KEYS))


def test_an_unreadable_given_config_names_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.yml"
    with pytest.raises(ConfigError, match=str(missing)):
        load_catalog_and_config(_args(config=str(missing)))
    with pytest.raises(ConfigError, match=str(missing)):
        load_catalog(_args(config=str(missing)))
