"""The digest recipe and how the catalog feeds it."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.keys.digest import image_digest

D = "taskcluster/docker"
CTX = "c" * 64


def test_nothing_to_fold_keeps_the_context_hash() -> None:
    assert image_digest(CTX) == CTX


def test_formula_is_the_documented_one() -> None:
    expected = hashlib.sha256(
        b"taskgraph-images-digest-v1\n"
        + f"context\t{CTX}\n".encode()
        + f"parent\tbase\t{'p' * 64}\n".encode()
        + f"include\t{'f' * 64}\t/tools/a.py\n".encode()
        + b'arg\tPY\t"3.12"\n'
    ).hexdigest()
    got = image_digest(
        CTX, parents=[("base", "p" * 64)], includes=[("tools/a.py", "f" * 64)],
        args=[("PY", "3.12")],
    )
    assert got == expected


def test_part_order_does_not_matter() -> None:
    a = image_digest(CTX, args=[("A", "1"), ("B", "2")], includes=[("x", "1" * 64), ("y", "2" * 64)])
    b = image_digest(CTX, args=[("B", "2"), ("A", "1")], includes=[("y", "2" * 64), ("x", "1" * 64)])
    assert a == b


def test_arg_values_cannot_be_confused_with_other_lines() -> None:
    a = image_digest(CTX, args=[("A", "1\narg\tB\t2")])
    b = image_digest(CTX, args=[("A", "1"), ("B", "2")])
    assert a != b


def test_task_parent_folds_its_digest_and_prebuilt_parent_does_not(tmp_path: Path) -> None:
    make_tree(
        tmp_path,
        {f"{D}/REGISTRY": "taskcluster\n", f"{D}/base/Dockerfile": "FROM ubuntu\n",
         f"{D}/base/VERSION": "1.0\n", f"{D}/mid/Dockerfile": "FROM taskcluster/base:1.0\n",
         f"{D}/leaf/Dockerfile": "FROM mid\n"},
    )
    cat = ImageCatalog.load(tmp_path)
    assert cat.digest("mid") == cat.context_hash("mid")
    assert cat.digest("leaf") == image_digest(
        cat.context_hash("leaf"), parents=[("mid", cat.digest("mid"))]
    )


LINE = ["a", "b", "c", "d"]


def _chain(root: Path, contents: dict[str, str]) -> ImageCatalog:
    files = {f"{D}/a/Dockerfile": "FROM scratch\n"}
    for parent, child in zip(LINE, LINE[1:]):
        files[f"{D}/{child}/Dockerfile"] = f"FROM {parent}\n"
    files[f"{D}/z/Dockerfile"] = "FROM scratch\n"
    for name, text in contents.items():
        files[f"{D}/{name}/extra"] = text
    make_tree(root, files)
    return ImageCatalog.load(root)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(changed=st.sampled_from([*LINE, "z"]))
def test_a_change_in_an_ancestor_changes_every_descendant_and_nothing_else(
    tmp_path_factory: pytest.TempPathFactory, changed: str
) -> None:
    before = _chain(tmp_path_factory.mktemp("before"), {})
    after = _chain(tmp_path_factory.mktemp("after"), {changed: "new byte"})
    affected = set(LINE[LINE.index(changed):]) if changed in LINE else {"z"}
    for name in [*LINE, "z"]:
        assert (before.digest(name) != after.digest(name)) == (name in affected), name


def test_the_digest_and_the_manifest_are_made_from_one_value(tmp_path: Path) -> None:
    """KeyInputs: what an image's digest folds, computed once; its manifest lists the same."""
    from taskgraph_images.keys.digest import KeyInputs
    from taskgraph_images.manifest import build_manifest

    make_tree(
        tmp_path,
        {f"{D}/REGISTRY": "taskcluster\n", f"{D}/base/Dockerfile": "FROM ubuntu\n",
         f"{D}/base/VERSION": "1.0\n", f"{D}/mid/Dockerfile": "FROM taskcluster/base:1.0\n",
         f"{D}/leaf/Dockerfile": "FROM mid\n# %include tools/a.py\n",
         f"{D}/leaf/setup.sh": "echo\n", "tools/a.py": "print()\n"},
    )
    cat = ImageCatalog.load(tmp_path)
    inputs = cat.keys.inputs("leaf")
    sha = {p: hashlib.sha256((tmp_path / p).read_bytes()).hexdigest()
           for p in (f"{D}/leaf/Dockerfile", f"{D}/leaf/setup.sh", "tools/a.py")}
    assert inputs == KeyInputs(
        "leaf", "seed", cat.context_hash("leaf"), parents=[("mid", cat.digest("mid"))],
        own=[(f"{D}/leaf/Dockerfile", sha[f"{D}/leaf/Dockerfile"]),
             (f"{D}/leaf/setup.sh", sha[f"{D}/leaf/setup.sh"])],
        includes=[("tools/a.py", sha["tools/a.py"])],
    )
    assert cat.keys.inputs("leaf") is inputs  # computed once
    assert cat.digest("leaf") == inputs.digest() == image_digest(
        cat.context_hash("leaf"), parents=[("mid", cat.digest("mid"))],
        includes=[("tools/a.py", sha["tools/a.py"])])
    manifest = build_manifest(cat, "leaf")
    assert (manifest.digest, manifest.recipe, manifest.parents, manifest.args) == (
        inputs.digest(), "seed", inputs.parents, inputs.args)
    assert dict(manifest.members) == sha
