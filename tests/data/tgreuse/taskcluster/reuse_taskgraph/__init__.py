"""This repository's taskgraph extensions: the register hook taskgraph calls first."""

from importlib import import_module


def register(graph_config):
    """Set up task generation, and let taskgraph-images judge the docker images."""
    import_module(".target", package=__name__)
    from taskgraph_images.taskgraph import register as register_images

    register_images(graph_config)
