"""A transform of the repository's own between taskgraph's, as real kinds have."""

from taskgraph.transforms.base import TransformSequence

transforms = TransformSequence()


@transforms.add
def add_pull_request_route(config, tasks):
    for task in tasks:
        if config.params["tasks_for"].startswith("github-pull-request"):
            task.setdefault("routes", []).append(
                f"index.shaped.v2.pull-requests.{task['attributes']['image_name']}"
            )
        yield task
