"""The repository's own taskgraph extensions, registered by config.yml's `register`."""

from importlib import import_module


def register(graph_config):
    """Load the modules whose decorators register target-task methods."""
    import_module(".target_tasks", package=__name__)
