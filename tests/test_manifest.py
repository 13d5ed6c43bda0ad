"""Context manifests: the format, strict parsing, building from a catalog, and differences."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trees import make_tree

from taskgraph_images.catalog import ImageCatalog
from taskgraph_images.errors import ManifestError
from taskgraph_images.keys.digest import image_digest
from taskgraph_images.keys.seed import combine_lines
from taskgraph_images.manifest import (
    DEFAULT_MANIFEST_ARTIFACT,
    MANIFEST_FORMAT,
    MAX_MANIFEST_BYTES,
    MAX_MEMBERS,
    ContextManifest,
    ManifestDiff,
    build_manifest,
    diff_manifests,
    manifest_file_path,
    parse_manifest,
    write_build_manifest,
    write_manifest,
)

A, B, C, D = ("a" * 64, "b" * 64, "c" * 64, "d" * 64)
OLD_DIGEST, NEW_DIGEST = "0" * 64, "1" * 64
DIR = "taskcluster/docker/builder"


def manifest(members: dict[str, str], **kw: Any) -> ContextManifest:
    kw.setdefault("digest", OLD_DIGEST)
    return ContextManifest(kw.pop("image", "builder"), kw.pop("digest"), kw.pop("recipe", "seed"),
                           members, **kw)


def summary(old: ContextManifest, new: ContextManifest) -> str:
    return diff_manifests(old, new).summary()


# -- the format ------------------------------------------------------------------------


def test_a_manifest_is_the_documented_json_object() -> None:
    m = manifest({f"{DIR}/build.sh": A, f"{DIR}/Dockerfile": B}, args={"PYTHON_VERSIONS": "3.11"},
                 parents=[("base", C)])
    doc = json.loads(m.dumps())
    assert doc == {
        "format": MANIFEST_FORMAT,
        "image": "builder",
        "digest": OLD_DIGEST,
        "recipe": "seed",
        "members": {f"{DIR}/Dockerfile": B, f"{DIR}/build.sh": A},
        "args": {"PYTHON_VERSIONS": "3.11"},
        "parents": [{"name": "base", "digest": C}],
    }
    assert list(doc["members"]) == [f"{DIR}/Dockerfile", f"{DIR}/build.sh"]  # by path bytes
    assert m.parent == "base"
    assert parse_manifest(m.dumps()) == m
    assert DEFAULT_MANIFEST_ARTIFACT == "public/context-manifest.json"


def valid() -> dict[str, Any]:
    return json.loads(manifest({"x/y": A}, args={"N": "v"}, parents=[("base", C)]).dumps())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d.pop("format"), "no 'format'"),
        (lambda d: d.update(format="taskgraph-images-context-manifest/2"), "is not understood"),
        (lambda d: d.update(format="something/1"), "no 'format'"),
        (lambda d: d.pop("members"), "missing members"),
        (lambda d: d.update(extra=1), "unknown extra"),
        (lambda d: d.update(image="Not A Name"), "not an image name"),
        (lambda d: d.update(digest="abc"), "'digest' must be 64"),
        (lambda d: d.update(recipe="md5"), "'recipe' 'md5' is not one of seed, taskgraph"),
        (lambda d: d.update(members=[]), "'members' must be an object"),
        (lambda d: d.update(members={"/etc/passwd": A}), "is not a relative"),
        (lambda d: d.update(members={"a/../b": A}), "is not a relative"),
        (lambda d: d.update(members={"a//b": A}), "is not a relative"),
        (lambda d: d.update(members={"a\nb": A}), "is not a relative"),
        (lambda d: d.update(members={"a": "A" * 64}), "has no sha256"),
        (lambda d: d.update(args=[]), "'args' must be an object"),
        (lambda d: d.update(args={"1X": "v"}), "not a valid ARG name"),
        (lambda d: d.update(args={"X": 3}), "'args.X' must be a string"),
        (lambda d: d.update(args={"X": "v" * 5000}), "at most 4096"),
        (lambda d: d.update(parents={}), "'parents' must be a list"),
        (lambda d: d.update(parents=[{"name": "base"}]), "exactly name and digest"),
        (lambda d: d.update(parents=[{"name": "b..c", "digest": C}]), "is not an image name"),
        (lambda d: d.update(parents=[{"name": "b", "digest": None}]), "must be a string"),
    ],
)
def test_a_malformed_manifest_is_one_error_naming_its_source(change: Any, message: str) -> None:
    doc = valid()
    change(doc)
    with pytest.raises(ManifestError, match="^task X's manifest: .*" + _re(message)):
        parse_manifest(json.dumps(doc), source="task X's manifest")


def _re(text: str) -> str:
    import re

    return re.escape(text)


@pytest.mark.parametrize("data", [b"", b"{", b"[]", b"\xff\xfe", b"null", b'"text"'])
def test_what_is_not_a_json_object_is_refused(data: bytes) -> None:
    with pytest.raises(ManifestError, match="^m: not "):
        parse_manifest(data, source="m")


def test_an_oversized_manifest_is_refused_before_it_is_parsed() -> None:
    data = b" " * (MAX_MANIFEST_BYTES + 1)
    with pytest.raises(ManifestError, match=f"{MAX_MANIFEST_BYTES + 1} bytes, more than the"):
        parse_manifest(data)
    with pytest.raises(ManifestError, match="more than the"):
        parse_manifest(data.decode())


def test_too_many_members_are_refused_both_ways() -> None:
    doc = valid()
    doc["members"] = {f"f{i}": A for i in range(MAX_MEMBERS + 1)}
    with pytest.raises(ManifestError, match=f"{MAX_MEMBERS + 1} members, more than"):
        parse_manifest(json.dumps(doc))
    huge = manifest({f"{'p' * 100}/{i}": A for i in range(MAX_MANIFEST_BYTES // 150)})
    with pytest.raises(ManifestError, match="would be .* bytes, more than the"):
        huge.dumps()


paths = st.lists(st.text("abcé/._-", min_size=1, max_size=8), max_size=6).map(
    lambda parts: [p.strip("/") for p in parts if p.strip("/")]
).map(lambda parts: [p for p in parts if ".." not in p.split("/") and "//" not in p
                     and "." not in p.split("/") and "" not in p.split("/")])


@given(
    members=paths.map(lambda ps: {p: hashlib.sha256(p.encode()).hexdigest() for p in ps}),
    args=st.dictionaries(st.from_regex(r"[A-Z_][A-Z0-9_]{0,5}", fullmatch=True),
                         st.text(max_size=10), max_size=3),
    parents=st.lists(st.sampled_from(["base", "core", "tools"]), unique=True, max_size=3),
)
def test_every_manifest_reads_back_as_itself(
    members: dict[str, str], args: dict[str, str], parents: list[str]
) -> None:
    m = manifest(members, args=args, parents=[(p, D) for p in parents])
    assert parse_manifest(m.dumps()) == m
    assert diff_manifests(m, m).summary() == "unchanged since the earlier build"


def test_write_manifest_is_atomic_and_reports_where(tmp_path: Path) -> None:
    m = manifest({"x": A})
    write_manifest(m, tmp_path / "m.json")
    assert parse_manifest((tmp_path / "m.json").read_bytes()) == m
    with pytest.raises(ManifestError, match="cannot write the context manifest of image 'builder'"):
        write_manifest(m, tmp_path / "missing" / "m.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.json"]


def test_the_manifest_file_goes_beside_the_image_artifact() -> None:
    assert manifest_file_path("/builds/worker/artifacts/image.tar.zst",
                              "public/context-manifest.json") == \
        "/builds/worker/artifacts/context-manifest.json"
    assert manifest_file_path("/a/b.tar.zst", "public/x/m.json") == "/a/m.json"


# -- from a catalog ----------------------------------------------------------------------


KIND = """\
tasks:
    base: {}
    builder:
        parent: base
        args:
            PYTHON_VERSIONS: "3.11 3.12"
"""


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return make_tree(tmp_path, {
        "taskcluster/kinds/docker-image/kind.yml": KIND,
        "taskcluster/docker/base/Dockerfile": "FROM debian:12\n",
        "taskcluster/docker/builder/Dockerfile":
            "ARG DOCKER_IMAGE_PARENT\nFROM $DOCKER_IMAGE_PARENT\n# %ARG PYTHON_VERSIONS\n"
            "# %include tools/run.sh\n",
        "taskcluster/docker/builder/build.sh": "echo build\n",
        "tools/run.sh": "echo run\n",
    })


def test_the_manifest_lists_the_lines_the_digest_is_made_of(repo: Path) -> None:
    catalog = ImageCatalog.load(repo)
    m = build_manifest(catalog, "builder")
    files = {p: hashlib.sha256((repo / p).read_bytes()).hexdigest() for p in [
        f"{DIR}/Dockerfile", f"{DIR}/build.sh", "tools/run.sh"]}
    assert dict(m.members) == files
    assert m.args == (("PYTHON_VERSIONS", "3.11 3.12"),)
    assert m.parents == (("base", catalog.digest("base")),)
    assert (m.image, m.digest, m.recipe) == ("builder", catalog.digest("builder"), "seed")
    # The digest, recomputed from the manifest's lines alone.
    context = combine_lines((p, h) for p, h in m.members if p.startswith(DIR + "/"))
    includes = [(p, h) for p, h in m.members if not p.startswith(DIR + "/")]
    assert image_digest(context, parents=m.parents, includes=includes, args=m.args) == m.digest


def test_the_builder_writes_the_manifest_beside_the_image(repo: Path, tmp_path: Path) -> None:
    catalog = ImageCatalog.load(repo)
    out = tmp_path / "artifacts"
    out.mkdir()
    path = write_build_manifest(catalog, "builder", str(out / "image.tar.zst"),
                                digest=catalog.digest("builder"))
    assert path == str(out / "context-manifest.json")
    assert parse_manifest(Path(path).read_bytes()) == build_manifest(catalog, "builder")
    with pytest.raises(ManifestError, match=f"hashes to {catalog.digest('base')} here, not "):
        write_build_manifest(catalog, "base", str(out / "base.tar.zst"), digest="f" * 64,
                             artifact="public/base-manifest.json")
    assert not (out / "base-manifest.json").exists()


# -- differences ---------------------------------------------------------------------------


def test_changed_added_and_removed_files_in_the_issues_words() -> None:
    old = manifest({f"{DIR}/build.sh": A, f"{DIR}/setup.sh": B, f"{DIR}/old": C})
    new = manifest({f"{DIR}/build.sh": B, f"{DIR}/setup.sh": C, f"{DIR}/new": D}, digest=NEW_DIGEST)
    assert summary(old, new) == \
        "4 files changed (taskcluster/docker/builder/build.sh, +1 more), 1 added, 1 removed"
    old = manifest({f"{DIR}/build.sh": A, f"{DIR}/setup.sh": B})
    new = manifest({f"{DIR}/build.sh": B, f"{DIR}/setup.sh": C, f"{DIR}/new": D}, digest=NEW_DIGEST)
    assert summary(old, new) == \
        "3 files changed (taskcluster/docker/builder/build.sh, +1 more), 1 added, 0 removed"


@pytest.mark.parametrize(
    ("old", "new", "text"),
    [
        ({"a": A}, {"a": B}, "1 file changed (a), 0 added, 0 removed"),
        ({"a": A}, {"a": A, "b": B}, "1 file changed, 1 added, 0 removed"),
        ({"a": A, "b": B}, {"a": A}, "1 file changed, 0 added, 1 removed"),
        ({"a": A}, {"z": A}, "1 file changed, 0 added, 0 removed, 1 moved (a -> z)"),
        ({"a": A, "b": A}, {"c": A, "d": A},
         "2 files changed, 0 added, 0 removed, 2 moved (a -> c, +1 more)"),
        ({"a": A, "b": A}, {"c": A}, "2 files changed, 0 added, 1 removed, 1 moved (a -> c)"),
    ],
)
def test_file_differences(old: dict[str, str], new: dict[str, str], text: str) -> None:
    assert summary(manifest(old), manifest(new, digest=NEW_DIGEST)) == text


def test_a_move_keeps_both_paths_and_the_content() -> None:
    diff = diff_manifests(manifest({"a/x": A}), manifest({"b/x": A}))
    assert (diff.added, diff.removed) == ((), ())
    assert [(m.old_path, m.new_path, m.sha256) for m in diff.moved] == [("a/x", "b/x", A)]


def test_args_changed_by_name() -> None:
    old = manifest({"a": A}, args={"PYTHON_VERSIONS": "3.11", "GONE": "x", "SAME": "s"})
    new = manifest({"a": A}, args={"PYTHON_VERSIONS": "3.12", "NEW": "y", "SAME": "s"})
    diff = diff_manifests(old, new)
    assert diff.summary() == "args changed: GONE, NEW, PYTHON_VERSIONS"
    assert [(a.name, a.old, a.new) for a in diff.args] == [
        ("GONE", "x", None), ("NEW", None, "y"), ("PYTHON_VERSIONS", "3.11", "3.12")]


@pytest.mark.parametrize(
    ("old", "new", "text"),
    [
        ([("base", A)], [("base", B)], "parent base changed"),
        ([("base", A)], [("core", B)], "parent changed: base -> core"),
        ([], [("base", B)], "parent base added"),
        ([("base", A)], [], "parent base removed"),
        ([("base", A), ("tools", C)], [("base", A)], "parent tools removed"),
    ],
)
def test_parent_differences(
    old: list[tuple[str, str]], new: list[tuple[str, str]], text: str
) -> None:
    assert summary(manifest({"a": A}, parents=old), manifest({"a": A}, parents=new)) == text


def test_every_kind_of_difference_in_one_line_and_in_short() -> None:
    old = manifest({"a": A, "b": B}, args={"X": "1"}, parents=[("base", A)])
    new = manifest({"a": C, "c": D}, args={"X": "2"}, parents=[("base", B)], recipe="taskgraph",
                   digest=NEW_DIGEST)
    diff = diff_manifests(old, new)
    assert diff.summary() == (
        "recipe changed: seed -> taskgraph; 3 files changed (a), 1 added, 1 removed; "
        "args changed: X; parent base changed"
    )
    assert diff.short() == (
        "recipe changed: seed -> taskgraph; 3 files changed, 1 added, 1 removed; "
        "args changed: X; parent base changed"
    )
    assert diff_manifests(new, new).short() == ""


def test_only_the_digest_differs() -> None:
    assert summary(manifest({"a": A}), manifest({"a": A}, digest=NEW_DIGEST)) == \
        "same members, args and parents as the earlier build; only the digest differs"


def test_a_difference_reads_back_from_its_json() -> None:
    old = manifest({"a": A, "b": B, "m": C}, args={"X": "1"}, parents=[("base", A)])
    new = manifest({"a": C, "c": D, "n": C}, args={"Y": "2"}, parents=[("base", B)])
    diff = diff_manifests(old, new)
    doc = json.loads(json.dumps(diff.to_json()))
    assert doc["summary"] == diff.summary()
    assert ManifestDiff.from_json(doc) == diff
    bad_parent = {**doc["parents"][0], "rebuilt": "yes"}
    for broken in ({}, [], {**doc, "changed": [{"path": 1}]}, {**doc, "parents": [{}]},
                   {**doc, "parents": [bad_parent]}):
        with pytest.raises(ManifestError, match="not a manifest difference"):
            ManifestDiff.from_json(broken)


def test_a_prebuilt_parent_named_by_the_kind_config_is_its_registry_tag(tmp_path: Path) -> None:
    repo = make_tree(tmp_path, {
        "taskcluster/kinds/docker-image/kind.yml":
            "tasks:\n    base: {}\n    app:\n        parent: base\n",
        "taskcluster/docker/base/Dockerfile": "FROM debian:12\n",
        "taskcluster/docker/base/VERSION": "1.2\n",
        "taskcluster/docker/base/REGISTRY": "example\n",
        "taskcluster/docker/app/Dockerfile": "ARG DOCKER_IMAGE_PARENT\nFROM $DOCKER_IMAGE_PARENT\n",
    })
    m = build_manifest(ImageCatalog.load(repo), "app")
    assert m.parents == (("base", "example/base:1.2"),)


contents = st.sampled_from([A, B, C, D])
trees = st.dictionaries(st.sampled_from([f"d/{c}" for c in "pqrstuvw"]), contents, max_size=8)


@given(old=trees, new=trees)
def test_a_difference_is_complete_and_its_counts_add_up(
    old: dict[str, str], new: dict[str, str]
) -> None:
    diff = diff_manifests(manifest(old), manifest(new, digest=NEW_DIGEST))
    # Applying the difference to the old members gives the new ones.
    rebuilt = dict(old)
    for c in diff.changed:
        assert rebuilt[c.path] == c.old
        rebuilt[c.path] = c.new
    for path, _ in diff.removed:
        del rebuilt[path]
    for m in diff.moved:
        assert rebuilt.pop(m.old_path) == m.sha256
        rebuilt[m.new_path] = m.sha256
    for path, sha in diff.added:
        assert path not in rebuilt
        rebuilt[path] = sha
    assert rebuilt == new
    # Nothing is both added and removed with one content: that is a move.
    assert not {h for _, h in diff.added} & {h for _, h in diff.removed}
    if diff.files:
        assert diff.summary().startswith(f"{diff.files} file")
    else:
        assert diff.summary() == \
            "same members, args and parents as the earlier build; only the digest differs"


def _run_task_folder(root: Path) -> Path:
    from taskgraph_images._dockerfile import RUN_TASK_FILES

    make_tree(root, {f"rt/{n}": f"# {n}\n" for n in RUN_TASK_FILES})
    return root / "rt"


def test_run_task_files_are_members_by_their_name_in_the_context(tmp_path: Path) -> None:
    repo = make_tree(tmp_path / "repo", {
        "taskcluster/docker/app/Dockerfile": "FROM debian:12\n# %include-run-task\n",
    })
    catalog = ImageCatalog.load(repo, run_task=_run_task_folder(tmp_path))
    members = dict(build_manifest(catalog, "app").members)
    assert members["run-task/run-task"] == hashlib.sha256(b"# run-task\n").hexdigest()
    assert "taskcluster/docker/app/Dockerfile" in members


def test_a_taskgraph_keyed_image_lists_its_context_tars_members(repo: Path) -> None:
    catalog = ImageCatalog.load(repo, cache_keys="taskgraph")
    m = build_manifest(catalog, "builder")
    assert m.recipe == "taskgraph" and m.digest == catalog.digest("builder")
    files = catalog.context("builder").taskgraph_files()
    assert [p for p, _ in m.members] == sorted(files, key=os.fsencode)
    dockerfile = files["Dockerfile"]
    assert isinstance(dockerfile, bytes)
    assert dict(m.members)["Dockerfile"] == hashlib.sha256(dockerfile).hexdigest()
    assert dict(m.members)["topsrcdir/tools/run.sh"] == \
        hashlib.sha256((repo / "tools/run.sh").read_bytes()).hexdigest()
    assert m.parents == (("base", catalog.digest("base")),)
    seed = build_manifest(ImageCatalog.load(repo), "builder")
    assert diff_manifests(seed, m).summary().startswith("recipe changed: seed -> taskgraph; ")
