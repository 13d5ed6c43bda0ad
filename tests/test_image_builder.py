"""The shipped image-builder image: what its folder holds, and the example uses it."""

from __future__ import annotations

from pathlib import Path

from taskgraph_images._dockerfile import parse
from taskgraph_images.catalog import ImageCatalog

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "image_builder"
EXAMPLE = ROOT / "examples" / "gecko" / "taskcluster" / "docker" / "image_builder"


def test_the_example_uses_the_shipped_image_builder() -> None:
    for name in ("Dockerfile", "VERSION", "REGISTRY"):
        assert (EXAMPLE / name).read_bytes() == (SHIPPED / name).read_bytes(), name
    # An archive put there to build the image (see docs/image-builder.rst) is not a difference.
    assert sorted(p.name for p in EXAMPLE.iterdir()) == sorted(
        p.name for p in SHIPPED.iterdir()
        if p.name != "README.md" and not p.name.startswith("taskgraph_images-"))


def test_it_is_a_prebuilt_image_with_the_tools_and_no_entrypoint() -> None:
    catalog = ImageCatalog.load(ROOT / "examples" / "gecko")
    image = catalog["image_builder"]
    assert image.prebuilt and image.version == (SHIPPED / "VERSION").read_text().strip()
    assert catalog.docker_image("image_builder") == f"taskcluster/image_builder:{image.version}"
    text = (SHIPPED / "Dockerfile").read_text()
    parsed = parse(text, source="image_builder/Dockerfile")
    assert parsed is not None
    instructions = [line.split()[0] for line in text.splitlines()
                    if line and not line.startswith((" ", "#"))]
    assert "ENTRYPOINT" not in instructions
    for tool in ("buildah", "zstd", "git", "python3"):
        assert tool in text
    assert 'CMD ["taskgraph-images", "build-in-task"]' in text


def test_it_installs_taskgraph_images_from_its_context_unless_a_build_arg_names_a_release() -> None:
    """Nothing is published on PyPI yet: the default is an archive of the clone, beside the Dockerfile."""
    text = (SHIPPED / "Dockerfile").read_text()
    assert 'ARG TASKGRAPH_IMAGES=""' in text
    assert "taskgraph-images==" not in text.replace("--build-arg TASKGRAPH_IMAGES=taskgraph-images==", "")
    # The whole context, not a pattern: COPY of a pattern matching nothing fails under buildah.
    assert "COPY . /tmp/image-builder-context/" in text
    assert "set -- /tmp/image-builder-context/taskgraph_images-*;" in text
    docs = (ROOT / "docs" / "image-builder.rst").read_text()
    assert "-o image_builder/taskgraph_images-src.tar.gz HEAD" in docs
    assert "image_builder/taskgraph_images-*" in (ROOT / ".gitignore").read_text().splitlines()
