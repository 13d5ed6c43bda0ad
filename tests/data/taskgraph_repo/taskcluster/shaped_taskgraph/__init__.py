"""The repository's own taskgraph extensions, registered by ``taskgraph.register``."""


def register(graph_config):
    # Imported for its side effect: the repository's own decision parameters.
    from shaped_taskgraph import parameters  # noqa: F401
