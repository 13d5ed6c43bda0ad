"""The register hook a taskgraph repository calls (or names in ``config.yml``)."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(graph_config: Any) -> None:
    """Register what the decision's main process needs; safe to call more than once.

    Call it from the repository's own ``register(graph_config)`` hook, or
    name it in ``taskcluster/config.yml`` (``taskgraph: register:
    taskgraph_images.taskgraph:register``). taskgraph calls the hook in the
    decision's main process before it loads any kind, so what is installed
    here reaches the optimization phase (kinds are loaded in forked
    processes, whose imports never do):

    - the ``index-search`` optimization strategy becomes
      :class:`~taskgraph_images.taskgraph._optimize.SoundIndexSearch`, which
      judges ``docker-image`` tasks by the sound reuse rule and hands every
      other task to the strategy it replaces, unchanged;
    - a ``target_task_graph`` verification that checks nothing and opens,
      ahead, the connections the strategy's artifact checks will use
      (:func:`~taskgraph_images.taskgraph._optimize.get_ready`);
    - a morph that says why each image is built, in the log and in
      ``public/docker-images.json`` (:mod:`taskgraph_images.taskgraph._explain`).

    Task definitions are not touched. A repository without a docker-image
    kind loses nothing: its tasks go to taskgraph's own strategy.

    :raises ConfigError: when ``taskcluster/taskgraph-images.yml`` exists and is invalid.
    """
    from taskgraph_images.taskgraph._explain import install_morph
    from taskgraph_images.taskgraph._optimize import install_readiness, install_strategy

    install_strategy(graph_config)
    install_readiness()
    install_morph()
