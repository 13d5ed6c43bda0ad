"""Inside taskgraph: what a taskgraph repository's decision uses of taskgraph-images."""

from taskgraph_images.taskgraph._register import register

__all__ = ["register"]
