"""The image catalog: folders, VERSION/REGISTRY, parents, order, references."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
from trees import make_tree, seed_context_hash

from taskgraph_images.catalog import Image, ImageCatalog
from taskgraph_images.errors import CatalogError, ContextError, DockerfileError

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "gecko"
D = "taskcluster/docker"


def catalog_of(tmp_path: Path, files: dict[str, str], **kwargs: object) -> ImageCatalog:
    make_tree(tmp_path, files)
    return ImageCatalog.load(tmp_path, **kwargs)  # type: ignore[arg-type]


def test_names_are_the_folders_with_a_dockerfile_sorted(tmp_path: Path) -> None:
    cat = catalog_of(
        tmp_path,
        {f"{D}/zeta/Dockerfile": "FROM scratch\n", f"{D}/alpha/Dockerfile": "FROM scratch\n",
         f"{D}/docs-only/README.md": "no image here\n", f"{D}/REGISTRY": "taskcluster\n"},
    )
    assert cat.names() == ["alpha", "zeta"]
    assert len(cat) == 2 and "alpha" in cat and "docs-only" not in cat


def test_example_repository_facts() -> None:
    cat = ImageCatalog.load(EXAMPLES)
    assert cat["base"] == Image(
        name="base", path=f"{D}/base", version="0.1.7", registry="taskcluster", parent=None,
        base="ubuntu:22.04", bases=("ubuntu:22.04",),
    )
    assert cat["builder"].parent == "base" and cat["builder"].base == "taskcluster/base:0.1.7"
    assert cat["tester"].parent == "builder"
    assert cat["tester"].env_files == (f"{D}/tester/tester.env",)
    assert cat["base"].prebuilt and not cat["tester"].prebuilt


def test_image_is_a_frozen_value() -> None:
    image = ImageCatalog.load(EXAMPLES)["base"]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        image.name = "other"  # type: ignore[misc]
    assert attrs.evolve(image, version="0.2") != image


def test_version_is_stripped_and_registry_defaults_to_the_folder_default(tmp_path: Path) -> None:
    cat = catalog_of(
        tmp_path,
        {f"{D}/REGISTRY": "quay.io/mozilla\n", f"{D}/a/Dockerfile": "FROM x\n",
         f"{D}/a/VERSION": "  1.2.3 \n", f"{D}/b/Dockerfile": "FROM x\n",
         f"{D}/b/REGISTRY": "localhost:5000/private\n"},
    )
    assert cat["a"].version == "1.2.3" and cat["a"].registry == "quay.io/mozilla"
    assert cat["b"].registry == "localhost:5000/private" and cat["b"].version is None


def test_no_registry_anywhere_is_none(tmp_path: Path) -> None:
    cat = catalog_of(tmp_path, {f"{D}/a/Dockerfile": "FROM x\n", f"{D}/a/VERSION": "1\n"})
    assert cat["a"].registry is None
    assert cat.docker_image("a") == "a:1"


def test_docker_image_of_prebuilt_and_local_tags() -> None:
    cat = ImageCatalog.load(EXAMPLES)
    assert cat.docker_image("base") == "taskcluster/base:0.1.7"
    assert cat.local_tag("base") == "taskcluster/base:0.1.7"
    assert cat.local_tag("tester") == "tester:latest"


def test_docker_image_of_a_task_image_says_it_is_a_task_image() -> None:
    cat = ImageCatalog.load(EXAMPLES)
    with pytest.raises(CatalogError, match="'builder' is a task image"):
        cat.docker_image("builder")


def test_unknown_image_lists_the_known_ones() -> None:
    cat = ImageCatalog.load(EXAMPLES)
    with pytest.raises(CatalogError, match="unknown image 'nope' .known images: base, builder"):
        cat["nope"]


def test_order_puts_parents_first() -> None:
    order = ImageCatalog.load(EXAMPLES).order()
    assert order.index("base") < order.index("builder") < order.index("tester")


@pytest.mark.parametrize(
    ("from_line", "parent"),
    [
        ("FROM builder", "builder"),
        ("FROM builder:latest", "builder"),
        ("from builder", "builder"),
        ("FROM --platform=linux/amd64 builder AS build", "builder"),
        ("FROM taskcluster/base:0.1.7", "base"),
        ("FROM base:0.1.7", None),  # a prebuilt image is named by its full reference
        ("FROM taskcluster/base:0.1.6", None),  # another version is not the in-tree one
        ("FROM builder:1.0", None),
        ("FROM ubuntu:22.04", None),
        ("ARG BASE=builder\nFROM $BASE", "builder"),
        ("ARG TAG=0.1.7\nFROM taskcluster/base:${TAG}", "base"),
    ],
)
def test_from_names_an_in_tree_parent(tmp_path: Path, from_line: str, parent: str) -> None:
    cat = catalog_of(
        tmp_path,
        {f"{D}/REGISTRY": "taskcluster\n", f"{D}/base/Dockerfile": "FROM ubuntu\n",
         f"{D}/base/VERSION": "0.1.7\n", f"{D}/builder/Dockerfile": "FROM ubuntu\n",
         f"{D}/child/Dockerfile": from_line + "\nRUN true\n"},
    )
    assert cat["child"].parent == parent


def test_multi_stage_counts_every_from_and_skips_stage_names(tmp_path: Path) -> None:
    cat = catalog_of(
        tmp_path,
        {f"{D}/a/Dockerfile": "FROM scratch\n", f"{D}/b/Dockerfile": "FROM scratch\n",
         f"{D}/c/Dockerfile": "FROM a AS build\nFROM b\nCOPY --from=build /x /x\nFROM build\n"},
    )
    assert cat["c"].parents == ("a", "b")
    assert cat["c"].parent == "a" and cat["c"].base == "build"
    assert cat.order().index("c") == 2


def test_from_cycle_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="FROM cycle between images: a -> b -> a"):
        catalog_of(tmp_path, {f"{D}/a/Dockerfile": "FROM b\n", f"{D}/b/Dockerfile": "FROM a\n"})


def test_self_reference_is_a_cycle(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="a -> a"):
        catalog_of(tmp_path, {f"{D}/a/Dockerfile": "FROM a:latest\n"})


def test_missing_images_folder_is_named(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="images folder 'taskcluster/docker' does not exist"):
        ImageCatalog.load(tmp_path)


@pytest.mark.parametrize("name", ["-dash", "_under", "sp ace", "ünï", "a..b", "dot.", "x" * 101])
def test_invalid_folder_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(CatalogError, match="is not a valid image name"):
        catalog_of(tmp_path, {f"{D}/{name}/Dockerfile": "FROM x\n"})


@pytest.mark.parametrize("name", ["python3.11", "gcc-4.4", "Upper", "a_b-c.d"])
def test_names_taskgraph_accepts_are_image_names(tmp_path: Path, name: str) -> None:
    catalog = catalog_of(tmp_path, {f"{D}/{name}/Dockerfile": "FROM x\n"})
    assert catalog.names() == [name]


@pytest.mark.parametrize(("content", "message"), [
    ("\n", "VERSION file .* is empty"),
    ("1.0 beta\n", "not a valid Docker tag"),
    ("-1\n", "not a valid Docker tag"),
    ("x" * 129, "not a valid Docker tag"),
])
def test_bad_version_is_named(tmp_path: Path, content: str, message: str) -> None:
    with pytest.raises(CatalogError, match=message):
        catalog_of(tmp_path, {f"{D}/a/Dockerfile": "FROM x\n", f"{D}/a/VERSION": content})


@pytest.mark.parametrize("content", ["", "UPPER/case", "a//b", "has space", "trailing/"])
def test_bad_registry_is_named(tmp_path: Path, content: str) -> None:
    with pytest.raises(CatalogError, match="REGISTRY file"):
        catalog_of(tmp_path, {f"{D}/a/Dockerfile": "FROM x\n", f"{D}/REGISTRY": content})


def test_binary_version_file_is_named(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile": "FROM x\n", f"{D}/a/VERSION": b"\xff\xfe"})
    with pytest.raises(CatalogError, match="VERSION file .* is not UTF-8"):
        ImageCatalog.load(tmp_path)


def test_dockerfile_without_from_is_named(tmp_path: Path) -> None:
    with pytest.raises(DockerfileError, match="taskcluster/docker/a/Dockerfile: no FROM"):
        catalog_of(tmp_path, {f"{D}/a/Dockerfile": "RUN true\n"})


def test_unreadable_dockerfile_is_named(tmp_path: Path) -> None:
    make_tree(tmp_path, {f"{D}/a/Dockerfile/oops": "a folder, not a file"})
    (tmp_path / D / "b").mkdir()
    (tmp_path / D / "b" / "Dockerfile").symlink_to("missing")
    # Neither is a readable Dockerfile file: both are skipped as non-images.
    assert ImageCatalog.load(tmp_path).names() == []


def test_context_hash_is_the_seed_hash_of_the_folder() -> None:
    cat = ImageCatalog.load(EXAMPLES)
    for name in cat.names():
        assert cat.context_hash(name) == seed_context_hash(str(EXAMPLES), cat[name].path)


def test_context_hash_of_an_escaping_symlink_is_refused(tmp_path: Path) -> None:
    cat = catalog_of(tmp_path / "repo", {f"{D}/a/Dockerfile": "FROM x\n"})
    (tmp_path / "outside").write_text("x")
    (tmp_path / "repo" / D / "a" / "link").symlink_to(tmp_path / "outside")
    with pytest.raises(ContextError, match="outside the repository"):
        cat.context_hash("a")


def test_images_dir_may_be_another_folder(tmp_path: Path) -> None:
    cat = catalog_of(tmp_path, {"docker/a/Dockerfile": "FROM x\n"}, images_dir="docker")
    assert cat["a"].path == "docker/a"


def test_a_ten_megabyte_dockerfile_loads_and_hashes(tmp_path: Path) -> None:
    body = "RUN echo " + "x" * 100 + "\n"
    text = "FROM scratch\n" + body * (10_000_000 // len(body))
    make_tree(tmp_path, {f"{D}/big/Dockerfile": text})
    cat = ImageCatalog.load(tmp_path)
    assert cat["big"].base == "scratch"
    assert cat.context_hash("big") == seed_context_hash(str(tmp_path), f"{D}/big")
