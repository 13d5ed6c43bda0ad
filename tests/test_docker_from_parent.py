"""Dockerfiles in the forms taskgraph's own images use, built by the real engine."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from dockerd import BUSYBOX, DockerEngine, require_or_skip
from trees import make_tree

from taskgraph_images.builder.local import build_image
from taskgraph_images.catalog import ImageCatalog

D = "taskcluster/docker"
KIND = "taskcluster/kinds/docker-image/kind.yml"
BASE = 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    if not os.path.exists(BUSYBOX):
        require_or_skip(f"{BUSYBOX} is missing (apt-get install busybox-static)")
    make_tree(tmp_path, {
        f"{D}/tgbase/Dockerfile": BASE,
        # No ARG above it: the form taskgraph's images use.
        f"{D}/tgchild/Dockerfile": "FROM $DOCKER_IMAGE_PARENT\n# %include-run-task\n"
                                   "RUN echo child > /child\n",
        f"{D}/tgbraces/Dockerfile": "FROM ${DOCKER_IMAGE_PARENT}\nRUN echo braces > /braces\n",
        KIND: "task-defaults:\n  parent: tgbase\n"
              "tasks:\n  tgbase: {parent: null}\n  tgchild: {}\n  tgbraces: {}\n",
        **{f"tools/rt/{n}": f"{n}-script\n"
           for n in ("run-task", "fetch-content", "hgrc", "robustcheckout.py")},
    })
    shutil.copy(BUSYBOX, tmp_path / D / "tgbase" / "busybox")
    return tmp_path


def test_from_docker_image_parent_without_an_arg_builds(docker_engine: DockerEngine,
                                                        repo: Path) -> None:
    catalog = ImageCatalog.load(repo, run_task="tools/rt")
    assert catalog["tgchild"].parent == "tgbase"  # from task-defaults
    build_image(docker_engine.engine, catalog, "tgchild")
    build_image(docker_engine.engine, catalog, "tgbraces")
    out = docker_engine.run("tgchild:latest", "/bin/busybox", "cat", "/child",
                            "/usr/local/bin/run-task", "/etc/mercurial/hgrc.d/mozilla.rc")
    assert out == "child\nrun-task-script\nhgrc-script\n"
    assert docker_engine.run("tgbraces:latest", "/bin/busybox", "cat", "/braces") == "braces\n"
