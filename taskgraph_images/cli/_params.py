"""The decision parameters of a plan made on the command line.

They come from defaults, then ``--params FILE`` (ours, or the file a
taskgraph decision wrote), then the flags; every default used is reported on
stderr, so that on a machine with no Taskcluster account ``taskgraph-images
plan --root examples/gecko`` works and says what it assumed.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import subprocess
from typing import Any, Callable, Mapping, Optional

from taskgraph_images.cli._common import note, reporter
from taskgraph_images.errors import ParamsError
from taskgraph_images.names import is_commit_id, is_git_source

__all__ = ["add_param_arguments", "default_params", "params_from_args"]


# Flag destination -> parameter name.
_PARAM_FLAGS = (
    ("level", "level"),
    ("project", "project"),
    ("pushdate", "pushdate"),
    ("head_repository", "head_repository"),
    ("head_rev", "head_rev"),
    ("base_repository", "base_repository"),
    ("owner", "owner"),
    ("source", "source"),
    ("decision_task_id", "decision_task_id"),
    ("pushlog_id", "pushlog_id"),
    ("tasks_for", "tasks_for"),
)


def add_param_arguments(p: argparse.ArgumentParser) -> None:
    """Add the decision parameters' arguments (``--params`` and one flag per parameter)."""
    g = p.add_argument_group("decision parameters (default: --params, else guessed and reported)")
    g.add_argument("--params", metavar="FILE", help="a YAML or JSON file of decision parameters")
    g.add_argument("--level", help="trust level of the push: 1, 2 or 3 (default 1, the "
                   "lowest, whose plan reuses the builds of every level)")
    g.add_argument("--project", help="project (branch) name (default: the repository's name "
                   "from git remote origin, else the root folder's)")
    g.add_argument(
        "--pushdate", help="push date: epoch seconds or ISO 8601 with a timezone (default: now)"
    )
    g.add_argument("--head-repository", metavar="URL", help="repository pushed to")
    g.add_argument("--head-rev", metavar="REV", help="revision pushed (default: git HEAD)")
    g.add_argument("--base-repository", metavar="URL", help="base repository")
    g.add_argument("--owner", help="who pushed (default: git user.email)")
    g.add_argument("--source", metavar="URL", help="URL for the tasks' metadata.source")
    g.add_argument("--decision-task-id", metavar="TASK_ID", help="taskGroupId and a dependency")
    g.add_argument("--pushlog-id", metavar="N", help="pushlog id for treeherder routes")
    g.add_argument("--tasks-for", metavar="KIND", help="what the decision runs for "
                   "(hg-push, github-pull-request, ...; cache-keys: taskgraph reads it)")


def _git(root: str, *args: str) -> Optional[str]:
    try:
        done = subprocess.run(
            ["git", "-C", root, *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    value = done.stdout.strip()
    return value if done.returncode == 0 and value else None


def _project_name(text: str) -> str:
    """``text`` as a project name: letters, digits, ``_.-`` (others become ``-``)."""
    return re.sub(r"[^A-Za-z0-9_.-]", "-", text).lstrip("._-")[:100]


def default_params(
    root: str,
    now: datetime.datetime,
    *,
    git: Callable[..., Optional[str]] = _git,
    environ: Optional[Mapping[str, str]] = None,
) -> dict[str, tuple[Any, str]]:
    """Return ``{param: (default value, how it was found)}`` for a local plan of ``root``."""
    env = os.environ if environ is None else environ
    rev = git(root, "rev-parse", "HEAD")
    remote = git(root, "remote", "get-url", "origin")
    email = git(root, "config", "user.email")
    if remote and is_git_source(remote):
        repository, repo_how = remote, "git remote origin"
        # The repository's name, not the clone's folder (sws for scriptworker-scripts).
        named = remote.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1].removesuffix(".git")
        project, project_how = _project_name(named), "the git remote origin's name"
    else:
        repository, repo_how = "file://" + os.path.abspath(root), "the root folder"
        project, project_how = "", ""
    if not project:
        project = _project_name(os.path.basename(os.path.abspath(root)))
        project_how = "the root folder's name"
    project = project or "local"
    user = env.get("USER") or env.get("USERNAME") or "nobody"
    source = repository if is_git_source(repository) else "https://localhost/" + project
    return {
        "level": (1, "the lowest"),
        "project": (project, project_how),
        "pushdate": (int(now.timestamp()), "now"),
        "head_repository": (repository, repo_how),
        "head_rev": (
            (rev, "git HEAD") if is_commit_id(rev) else ("0" * 40, "no git revision")
        ),
        "base_repository": (repository, repo_how),
        "owner": ((email, "git user.email") if email else (f"{user}@localhost", "$USER")),
        "source": (source, "the head repository" if source == repository else "a placeholder"),
    }


def _read_params_file(path: str) -> dict[str, Any]:
    """The parameters of ``path``: ours, or those a taskgraph decision wrote.

    A taskgraph file also holds the repository's own parameters (its
    taskgraph extensions declare them); they say nothing about images and
    are left out, listed with ``-v``. In any other file an unknown name is refused.
    """
    from taskgraph_images._yamlfile import load_yaml_file
    from taskgraph_images.params import is_taskgraph_parameters, split_taskgraph_parameters

    data = load_yaml_file(path, "parameters file", ParamsError)  # JSON is YAML too
    if not isinstance(data, dict):
        raise ParamsError(f"parameters file {path} must hold a mapping of parameter names")
    if not is_taskgraph_parameters(data):
        return data
    ours, theirs = split_taskgraph_parameters(data)
    note(f"reading {path} as taskgraph's decision parameters")
    if theirs:
        reporter().debug(f"  the repository's own parameters, not read: {', '.join(theirs)}")
    return ours


def params_from_args(args: argparse.Namespace, root: str, now: datetime.datetime) -> dict[str, Any]:
    given: dict[str, Any] = {}
    if args.params:
        given.update(_read_params_file(args.params))
    for dest, name in _PARAM_FLAGS:
        value = getattr(args, dest)
        if value is not None:
            given[name] = value
    used = []
    for name, (value, how) in default_params(root, now).items():
        if given.get(name) is None:
            given[name] = value
            used.append(f"{name}={value} ({how})")
    if used:
        shown = ", ".join(u.split(" (", 1)[0] for u in used[:2])
        more = f" and {len(used) - 2} more" if len(used) > 2 else ""
        note(f"guessed the decision parameters {shown}{more} (-v lists them)")
        for line in used:
            reporter().debug(f"  {line}")
    return given
