"""docs/tutorial.rst runs: every command on the page, in order, with the output it shows.

The page is read with :mod:`docblocks`: each ``console`` block's ``$``
commands run in bash in a scratch folder holding a copy of
``examples/gecko`` (with ``taskgraph-images`` on PATH running this checkout),
a YAML block with a ``:caption:`` is written to the file it names, and the
``pycon`` block runs as a doctest. The output the page shows for a command
must appear in what it prints (stdout and stderr), line by line and in
order: ``...`` stands for any text or lines, a task id for any task id; a
command shown without output must print nothing, and one shown failing
(``taskgraph-images: error:``) must exit 1.

The Docker steps run against the tests' own engine (tests/support/dockerd.py; with
``CI=true`` they fail rather than skip without one), and ``build --record``
runs buildah, as a build task does. No registry is reachable there, so the
engine gets a stand-in ``ubuntu:22.04`` first (busybox with an ``apt-get``
that does nothing and a ``useradd`` that adds the user), and buildah pulls
the same image from a loopback registry (tests/support/registry.py) that stands in
for Docker Hub.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional

import attrs
import pytest
from docblocks import Block, Step, console_steps, page_blocks, rst_blocks
from dockerd import BUSYBOX, DockerEngine, require_or_skip
from registry import Registry

from taskgraph_images.plan import Plan

REPO = Path(__file__).resolve().parent.parent
TUTORIAL = REPO / "docs" / "tutorial.rst"
ERROR = "taskgraph-images: error:"

# -- what the page shows against what a command printed ------------------------------------

_TASK_ID = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{22}(?![A-Za-z0-9_-])")


def line_pattern(shown: str) -> re.Pattern[str]:
    """A pattern for a line of shown output: ``...`` is any text, a task id any task id."""
    parts = []
    for i, piece in enumerate(shown.rstrip().split("...")):
        if i:
            parts.append(".*")
        pos = 0
        for m in _TASK_ID.finditer(piece):
            parts += [re.escape(piece[pos : m.start()]), "[A-Za-z0-9_-]{22}"]
            pos = m.end()
        parts.append(re.escape(piece[pos:]))
    return re.compile("".join(parts))


def mismatch(shown: tuple[str, ...], printed: str) -> Optional[str]:
    """Why ``printed`` does not show ``shown`` (None when it does)."""
    wanted = [line for line in shown if line.strip() not in ("", "...")]
    if not shown:
        return None if printed == "" else "the page shows no output"
    lines = iter(line.rstrip() for line in printed.splitlines())
    for line in wanted:
        pattern = line_pattern(line)
        if not any(pattern.fullmatch(got) for got in lines):
            return f"no line (after the lines matched before it) reads {line!r}"
    return None


def test_shown_output_matches_in_order_with_wildcards_and_task_ids() -> None:
    printed = "note: a\nIMAGE  ID\nbuilder  ZZ5D8DJ-TeSIWUQ3L976rg  not indexed\ndone\n"
    assert mismatch(("IMAGE  ID", "builder  GAXqDe0HT_uuxP425R7HLg  not ...", "done"), printed) is None
    assert mismatch(("...", "done"), printed) is None
    assert mismatch(("done", "IMAGE  ID"), printed) is not None  # order counts
    assert mismatch(("builder  not-a-task-id-of-22-chars  not indexed",), printed) is not None
    assert mismatch(("IMAGE ID",), printed) is not None  # spaces count
    assert mismatch((), "") is None
    assert mismatch((), "something\n") == "the page shows no output"


# -- running the page ---------------------------------------------------------------------


@attrs.frozen
class Scratch:
    """Where the tutorial runs: the folder, the environment, and the root URL of
    the loopback Taskcluster that commands with ``--index taskcluster`` talk to."""

    cwd: Path
    env: dict[str, str]
    taskcluster: str


def needs_docker(command: str) -> bool:
    words = command.split()
    return words[0] == "docker" or (
        words[0] == "taskgraph-images" and len(words) > 1 and words[1] in ("build", "save", "load")
    )


def run_command(step: Step, scratch: Scratch, page: str = "tutorial.rst") -> None:
    env = scratch.env
    if "--index taskcluster" in step.command:  # as in a decision task
        env = dict(env, TASKCLUSTER_ROOT_URL=scratch.taskcluster)
    done = subprocess.run(
        ["bash", "-c", step.command],
        cwd=scratch.cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )
    where = f"{page}:{step.line}: $ {step.command}"
    expected = 1 if any(line.startswith(ERROR) for line in step.output) else 0
    assert done.returncode == expected, f"{where}\nexit {done.returncode}:\n{done.stdout}"
    why = mismatch(step.output, done.stdout)
    assert why is None, f"{where}\n{why}; it printed:\n{done.stdout}"


def run_doctest(block: Block, scratch: Scratch) -> None:
    script = (
        "import doctest, sys\n"
        "test = doctest.DocTestParser().get_doctest(sys.stdin.read(), {}, 'tutorial', "
        f"'tutorial.rst', {block.line - 1})\n"
        "runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)\n"
        "runner.run(test)\n"
        "sys.exit(1 if runner.failures or not runner.tries else 0)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        input="\n".join(block.lines) + "\n",
        cwd=scratch.cwd,
        env=scratch.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"{block.where}: the Python example fails:\n{done.stdout}{done.stderr}"


def run_blocks(blocks: Iterable[Block], scratch: Scratch, *, docker: bool) -> list[str]:
    """Run ``blocks`` in order (up to the first Docker command unless ``docker``);
    return the commands run, a Python block as ``python``."""
    ran: list[str] = []
    for block in blocks:
        if block.language == "console":
            for step in console_steps(block):
                if needs_docker(step.command) and not docker:
                    return ran
                run_command(step, scratch, block.path.name)
                ran.append(step.command)
        elif block.language == "pycon":
            run_doctest(block, scratch)
            ran.append("python")
        elif "caption" in block.options and block.language == "yaml":
            target = scratch.cwd / block.options["caption"]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("\n".join(block.lines) + "\n")
    return ran


def run_page(scratch: Scratch, *, docker: bool) -> list[str]:
    """Run the tutorial (see :func:`run_blocks`)."""
    return run_blocks(rst_blocks(TUTORIAL), scratch, docker=docker)


@pytest.fixture
def scratch(tmp_path: Path, tc_server: Any) -> Scratch:
    """A folder with ``examples/gecko`` and ``taskgraph-images`` (this checkout) on PATH."""
    if shutil.which("dot") is None:
        require_or_skip("Graphviz's dot is missing (apt-get install graphviz)")
    cwd = tmp_path / "checkout"
    shutil.copytree(REPO / "examples" / "gecko", cwd / "examples" / "gecko")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    wrapper = bin_dir / "taskgraph-images"
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m taskgraph_images "$@"\n')
    wrapper.chmod(0o755)
    home = tmp_path / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("TASKCLUSTER_", "DOCKER_", "GIT_", "XDG_"))
    }
    env.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '/usr/bin:/bin')}",
        PYTHONPATH=str(REPO),
        HOME=str(home),
        XDG_CACHE_HOME=str(tmp_path / "cache"),
        USER="tutorial",
        COLUMNS="80",
    )
    return Scratch(cwd, env, tc_server.root_url)


def test_the_tutorial_covers_each_step_of_the_local_workflow() -> None:
    commands = [
        step.command
        for block in rst_blocks(TUTORIAL)
        if block.language == "console"
        for step in console_steps(block)
    ]
    wanted = [
        r"taskgraph-images list ",
        r"taskgraph-images hash ",
        r"taskgraph-images plan .*--output plan\.json",
        r"taskgraph-images plan .*--index taskcluster .*--submit",
        r"taskgraph-images graph .*",
        r"taskgraph-images render --plan plan\.json ",
        r"taskgraph-images plan --root myrepo ",
        r"taskgraph-images build ",
        r"taskgraph-images save ",
        r"taskgraph-images load ",
        r"taskgraph-images build .*--record",
        r"taskgraph-images plan --root examples/gecko$",
    ]
    it = iter(commands)
    for pattern in wanted:
        assert any(re.match(pattern, c) for c in it), f"no {pattern!r} after the steps before it"


def test_the_tutorial_runs_up_to_its_docker_steps(scratch: Scratch, tc_server: Any) -> None:
    ran = run_page(scratch, docker=False)
    # The decision-task plan submitted its two build tasks, schemas checked.
    assert tc_server.schema_errors == []
    plan = Plan.from_json((scratch.cwd / "decision-plan.json").read_bytes())
    assert set(tc_server.definitions) == set(plan.tasks) and len(plan.tasks) == 2
    assert "python" in ran
    assert any("myrepo" in c for c in ran)
    assert (scratch.cwd / "images.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.parametrize(
    ("page", "heading"), [("README.md", "## Usage"), ("docs/getting-started.rst", "First look"),
                          ("docs/index.rst", "Quick start")]
)
def test_the_first_example_under_a_heading_of_another_page_runs(
    scratch: Scratch, page: str, heading: str
) -> None:
    path = REPO / page
    at = path.read_text().splitlines().index(heading) + 1
    block = next(b for b in page_blocks(path) if b.line > at and b.language == "console")
    assert run_blocks([block], scratch, docker=False) == [
        step.command for step in console_steps(block)
    ]


# -- with Docker ------------------------------------------------------------------------------

_STANDIN = {
    "Dockerfile": (
        "FROM scratch\n"
        "COPY busybox /bin/busybox\n"
        'RUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
        "COPY etc /etc\n"
        "COPY apt-get useradd /usr/bin/\n"
        "ENV PATH=/usr/local/bin:/usr/bin:/bin\n"
    ),
    "etc/passwd": "root:x:0:0:root:/root:/bin/sh\n",
    "etc/group": "root:x:0:\n",
    "apt-get": "#!/bin/sh\necho \"apt-get $* (stand-in: nothing to do)\"\n",
    "useradd": (
        "#!/bin/sh\n"
        "# useradd [--create-home] [--uid N] NAME\n"
        "uid=1000\n"
        'while [ $# -gt 1 ]; do [ "$1" = --uid ] && { uid=$2; shift; }; shift; done\n'
        'echo "$1:x:$uid:$uid::/home/$1:/bin/sh" >> /etc/passwd\n'
        'echo "$1:x:$uid:" >> /etc/group\n'
        'mkdir -p "/home/$1" && chown "$uid:$uid" "/home/$1"\n'
    ),
}


@pytest.fixture
def ubuntu_standin(docker_engine: DockerEngine, tmp_path: Path) -> Iterator[dict[str, str]]:
    """``ubuntu:22.04`` (busybox, a no-op apt-get and a useradd) in the test engine and,
    for buildah (``build --record``), from a loopback registry standing in for Docker
    Hub; yields the environment that points buildah at it."""
    if not os.path.exists(BUSYBOX):
        require_or_skip(f"{BUSYBOX} is missing (apt-get install busybox-static)")
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        tar.add(BUSYBOX, "busybox")
        for name, text in _STANDIN.items():
            info = tarfile.TarInfo(name)
            data = text.encode()
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    context.seek(0)
    docker_engine.engine.build(context, ["ubuntu:22.04"])
    archive = tmp_path / "ubuntu.tar"
    with open(archive, "wb") as f:
        for chunk in docker_engine.engine.save("ubuntu:22.04"):
            f.write(chunk)
    conf = tmp_path / "registries.conf"
    try:
        with Registry() as registry:
            registry.add("library/ubuntu", "22.04", str(archive))
            conf.write_text(
                'unqualified-search-registries = ["docker.io"]\n'
                "[[registry]]\n"
                'prefix = "docker.io"\n'
                f'location = "{registry.address}"\n'
                "insecure = true\n"
            )
            yield {"CONTAINERS_REGISTRIES_CONF": str(conf)}
    finally:
        docker_engine.docker("image", "rm", "-f", "ubuntu:22.04", "tester:try", check=False)


@pytest.mark.docker
def test_the_whole_tutorial_runs_with_a_docker_engine(
    scratch: Scratch, docker_engine: DockerEngine, ubuntu_standin: dict[str, str]
) -> None:
    if shutil.which("buildah") is None:
        require_or_skip("buildah is missing (apt-get install buildah): build --record needs it")
    env = dict(scratch.env, DOCKER_HOST=docker_engine.host, **ubuntu_standin)
    ran = run_page(attrs.evolve(scratch, env=env), docker=True)
    assert ran[-1] == "taskgraph-images plan --root examples/gecko"
    assert (scratch.cwd / "tester.tar.zst").stat().st_size > 0
