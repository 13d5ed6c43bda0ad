"""Every command's help speaks one vocabulary and fits an 80-column terminal.

A newcomer reads ``--help`` first: every command and sub-command has a
description, every argument a help text, usage lines fit 80 columns, one
flag means one thing on every command (``--level`` is the trust level,
``--zstd-level`` the compression level, ``--config FILE|none`` the
build-task config), and no help names the code's internals.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path
from typing import Iterator

import pytest

from taskgraph_images.cli import build_parser, main


def _commands() -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """``(the command's name, its parser)`` for every command and sub-command."""
    todo = [("taskgraph-images", build_parser())]
    while todo:
        name, parser = todo.pop(0)
        yield name, parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                todo += [(f"{name} {sub}", p) for sub, p in action.choices.items()]


COMMANDS = dict(_commands())
SUBCOMMANDS = [name for name in COMMANDS if name != "taskgraph-images"]


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {o: a for a in parser._actions for o in a.option_strings}


@pytest.fixture(autouse=True)
def _terminal_80(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")


def test_the_commands_found_are_the_clis() -> None:
    assert {"taskgraph-images plan", "taskgraph-images save", "taskgraph-images index insert",
            "taskgraph-images index find", "taskgraph-images index list"} <= set(COMMANDS)


@pytest.mark.parametrize("name", SUBCOMMANDS)
def test_every_command_has_a_description_and_every_argument_a_help(name: str) -> None:
    parser = COMMANDS[name]
    assert parser.description, f"{name} has no description"
    missing = [a.metavar or a.dest for a in parser._actions
               if a.help is None and not isinstance(a, argparse._SubParsersAction)]
    assert not missing, f"{name}: no help for {missing}"


@pytest.mark.parametrize("name", list(COMMANDS))
def test_usage_and_help_fit_80_columns(name: str) -> None:
    text = COMMANDS[name].format_help()
    wide = [line for line in text.splitlines() if len(line) > 80]
    assert not wide, f"{name}:\n" + "\n".join(wide)


@pytest.mark.parametrize("name", list(COMMANDS))
def test_no_help_names_the_codes_internals(name: str) -> None:
    text = COMMANDS[name].format_help()
    assert not re.search(r"\b[a-z_]+\.[A-Z]+_[A-Z_]+\b|taskgraph_images\.", text), text


def test_level_is_the_trust_level_everywhere_with_its_default_and_why() -> None:
    for name, parser in COMMANDS.items():
        level = _options(parser).get("--level")
        if level is None or level.help == argparse.SUPPRESS:
            continue
        assert level.help is not None and "trust level" in level.help, name
        assert re.search(r"\(default \d, the (lowest|highest)|\(default 1, as plan", level.help), name
    save = _options(COMMANDS["taskgraph-images save"])
    assert save["--zstd-level"].help == "zstd compression level, 1-22 (default 3)"


def test_save_refuses_the_old_level_with_a_one_line_hint(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["save", "app:latest", "-o", "x.tar.zst", "--level", "19"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        "taskgraph-images: error: save --level is no more: --level is the trust level on the "
        "other commands; the zstd level is --zstd-level (--zstd-level 19)\n"
    )


def test_config_takes_a_file_or_none_on_every_command_that_has_it() -> None:
    having = [name for name, p in COMMANDS.items() if "--config" in _options(p)]
    assert {f"taskgraph-images {c}" for c in
            ("list", "hash", "digest", "context", "build", "load", "plan", "graph", "why")} \
        <= set(having)
    for name in having:
        config = _options(COMMANDS[name])["--config"]
        assert config.metavar == "FILE|none", name
        assert config.help is not None and "'none' for the defaults" in config.help, name


def test_verbose_mentions_the_index_only_where_an_index_is_used() -> None:
    for name, parser in COMMANDS.items():
        options = _options(parser)
        if "--verbose" not in options:
            continue
        says = options["--verbose"].help or ""
        assert ("index" in says) == ("--index-timeout" in options), name


def test_index_insert_offers_only_the_local_index(capsys: pytest.CaptureFixture[str]) -> None:
    options = _options(COMMANDS["taskgraph-images index insert"])
    assert options["--index"].metavar == "local[:PATH]"
    assert not {"--index-timeout", "--index-retries"} & set(options)
    code = main(["index", "insert", "a.b", "fUAOGiVsTMmL4BCT5yf4mw", "--index", "taskcluster:http://x"])
    assert code == 1
    assert capsys.readouterr().err.strip().startswith(
        "taskgraph-images: error: index insert writes to the local index only (--index local[:PATH]), "
        "not 'taskcluster:http://x'")


def test_index_insert_writes_the_local_index_even_in_a_task(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TASKCLUSTER_ROOT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert main(["index", "insert", "a.b", "fUAOGiVsTMmL4BCT5yf4mw"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("a.b\tfUAOGiVsTMmL4BCT5yf4mw\t")
    assert f"using the local index at {tmp_path}" in err
