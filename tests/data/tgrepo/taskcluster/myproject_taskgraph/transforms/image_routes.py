"""The repository's own transform after the image transforms: a route per image, for people."""

from taskgraph.transforms.base import TransformSequence

transforms = TransformSequence()


@transforms.add
def add_browse_route(config, tasks):
    for task in tasks:
        name = task["attributes"]["image_name"]
        task.setdefault("routes", []).append(
            f"index.myproject.v2.{config.params['project']}.images.{name}"
        )
        yield task
