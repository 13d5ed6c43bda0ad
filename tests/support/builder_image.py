"""An image-builder image made offline, ``FROM scratch``, from this machine's files.

No registry is reachable from the test machines, so the image that
``image_builder/Dockerfile`` describes (Debian with buildah, git, Python and
taskgraph-images) cannot be built here. :func:`write_rootfs` assembles the
same tools from the running machine instead: this interpreter with its
standard library and only the third-party packages taskgraph-images imports,
the package from the working tree, ``buildah`` and ``git`` (with its HTTP helper) and the shared
libraries ``ldd`` names, and the small ``/etc`` buildah needs (``passwd``,
``policy.json``, a ``registries.conf`` that lets it pull over plain HTTP from
the test registry). ``taskgraph-images`` is on ``PATH``; there is no
``ENTRYPOINT``.

The ``builder_image`` session fixture builds it once in the test engine.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import tempfile
from pathlib import Path
from typing import Iterable

__all__ = ["BUILDER_TAG", "build_builder_image", "write_rootfs"]

BUILDER_TAG = "tgi-image-builder:test"
PACKAGE = Path(__file__).resolve().parents[2] / "taskgraph_images"

#: Standard-library folders a build task never imports.
_STDLIB_SKIP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip",
                "lib2to3", "pydoc_data", "__pycache__", "distutils", "unittest",
                f"config-{sys.version_info[0]}.{sys.version_info[1]}-{sys.implementation._multiarch}"}
_IMPORTS = (
    "import taskgraph_images.cli, taskgraph_images.builder.intask, taskgraph_images.images.artifacts, "
    "taskgraph_images.builder.runtask, taskgraph_images.index, taskgraph_images._hashing.cache, "
    "taskgraph_images.context, zstandard, taskcluster, requests, yaml, sqlite3, tarfile; "
    "taskgraph_images.cli.build_parser()"
)


def _libraries(path: str) -> list[str]:
    out = subprocess.run(["ldd", path], capture_output=True, text=True).stdout
    found = []
    for line in out.splitlines():
        for word in line.split():
            if word.startswith("/") and os.path.exists(word):
                found.append(word)
    return found


def _copy(root: Path, paths: Iterable[str]) -> None:
    """Copy each file (and every shared library it needs) to the same path under ``root``."""
    for path in paths:
        for item in [path, *_libraries(path)]:
            dest = root / item.lstrip("/")
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.realpath(item), dest)


def _site_packages() -> list[str]:
    """The top-level site-packages entries that importing taskgraph-images loads."""
    code = (f"{_IMPORTS}\nimport sys, site\nroots = site.getsitepackages()\n"
            "for m in list(sys.modules.values()):\n"
            "    f = getattr(m, '__file__', None) or ''\n"
            "    for r in roots:\n"
            "        if f.startswith(r + '/'):\n"
            "            print(f[len(r) + 1:].split('/')[0])\n")
    env = dict(os.environ, PYTHONPATH=str(PACKAGE.parent))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         env=env, check=True).stdout
    return sorted({n for n in out.split()
                   if not n.startswith(("taskgraph_images", "__editable__", "_distutils_hack"))})


def write_rootfs(root: Path, registry: str) -> None:
    """Write the builder's file system under ``root``; buildah may pull from ``registry``."""
    stdlib = sysconfig.get_paths()["stdlib"]
    site = sysconfig.get_paths()["purelib"]  # where the packages are (a venv's, in one)
    # Where the image's interpreter (the base one, with no venv around it) looks.
    image_site = sysconfig.get_paths(vars={"base": sys.base_prefix,
                                           "platbase": sys.base_prefix})["purelib"]
    for dirpath, dirnames, filenames in os.walk(stdlib):
        dirnames[:] = [d for d in dirnames if d not in _STDLIB_SKIP]
        for name in filenames:
            src = os.path.join(dirpath, name)
            dest = root / src.lstrip("/")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    _copy(root, [os.path.realpath(sys.executable)])
    _copy(root, [os.path.join(stdlib, "lib-dynload", n)
                 for n in os.listdir(os.path.join(stdlib, "lib-dynload"))])
    for name in _site_packages():
        src = os.path.join(site, name)
        dest = root / image_site.lstrip("/") / name
        if os.path.isdir(src):
            shutil.copytree(src, dest, ignore=shutil.ignore_patterns("__pycache__", "tests",
                                                                     "_cffi*.so"))
        else:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest)
    shutil.copytree(PACKAGE, root / image_site.lstrip("/") / "taskgraph_images",
                    ignore=shutil.ignore_patterns("__pycache__", "*.c"))
    shared = [str(p) for p in (root / image_site.lstrip("/")).rglob("*.so")]
    git_core = subprocess.run(["git", "--exec-path"], capture_output=True, text=True,
                              check=True).stdout.strip()
    _copy(root, [shutil.which("buildah") or "/usr/bin/buildah", shutil.which("git") or "/usr/bin/git",
                 os.path.join(git_core, "git-remote-http")])
    for lib in shared:
        for dep in _libraries(lib):
            dest = root / dep.lstrip("/")
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(os.path.realpath(dep), dest)
    if shutil.which("strip"):  # debug symbols are most of these libraries' size
        elves = [p for p in root.rglob("*.so*") if p.is_file()]
        subprocess.run(["strip", "--strip-unneeded", *map(str, elves)], capture_output=True)
    launcher = root / "usr/local/bin/taskgraph-images"
    launcher.parent.mkdir(parents=True, exist_ok=True)
    launcher.write_text(f"#!{os.path.realpath(sys.executable)}\nimport sys\n"
                        "from taskgraph_images.cli import main\nsys.exit(main())\n")
    launcher.chmod(0o755)
    etc = root / "etc"
    (etc / "containers").mkdir(parents=True, exist_ok=True)
    (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (etc / "group").write_text("root:x:0:\n")
    shutil.copy("/etc/containers/policy.json", etc / "containers" / "policy.json")
    (etc / "containers" / "registries.conf").write_text(
        f'[[registry]]\nlocation = "{registry}"\ninsecure = true\n'
    )
    for folder in ("tmp", "var/tmp", "root", "builds/worker/artifacts"):
        (root / folder).mkdir(parents=True, exist_ok=True)
    (root / "tmp").chmod(0o1777)


DOCKERFILE = """FROM scratch
COPY rootfs/ /
ENV PATH=/usr/local/bin:/usr/bin:/bin HOME=/root
WORKDIR /builds/worker
CMD ["taskgraph-images", "build-in-task"]
"""


def build_builder_image(engine: object, registry: str) -> str:
    """Build the image in ``engine`` (a :class:`~taskgraph_images.images.engine.Engine`); return its tag."""
    from taskgraph_images.images.engine import Engine

    assert isinstance(engine, Engine)
    with tempfile.TemporaryDirectory(prefix="tgi-builder-") as tmp:
        rootfs = Path(tmp) / "rootfs"
        write_rootfs(rootfs, registry)
        with tempfile.TemporaryFile() as context:
            with tarfile.open(fileobj=context, mode="w") as tar:
                data = DOCKERFILE.encode()
                info = tarfile.TarInfo("Dockerfile")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
                tar.add(rootfs, arcname="rootfs")
            context.seek(0)
            engine.build(context, [BUILDER_TAG])
    return BUILDER_TAG
