"""taskgraph-images inside taskcluster-taskgraph's own decision task.

A repository that runs taskgraph adopts us with two lines:

- in ``taskcluster/kinds/docker-image/kind.yml``, the transform
  ``taskgraph.transforms.docker_image:transforms`` becomes
  ``taskgraph_images.taskgraph:transforms`` (taskgraph's ``cached_tasks`` and
  ``task`` transforms stay after it). The graph is the one taskgraph's own
  transform gives, computed with our catalog and keys (see
  :mod:`taskgraph_images.taskgraph._transforms`);
- in the repository's ``register(graph_config)`` hook, a call to
  :func:`register` (or ``taskgraph: register:
  taskgraph_images.taskgraph:register`` in ``config.yml``), which puts our
  sound reuse rule and the explanations in the decision's main process.

With ``builder: taskgraph-images`` in the build-task config
(``taskcluster/taskgraph-images.yml``), the images are built by our in-task
builder instead of taskgraph's image_builder; the kind then ends its
transforms with ``taskgraph_images.taskgraph:payload`` (:func:`payload`).

Importing this package imports nothing of taskgraph: taskgraph loads each
``transforms:`` entry as ``module:attribute`` and calls it.
"""

from __future__ import annotations

from taskgraph_images.taskgraph._register import register
from taskgraph_images.taskgraph._transforms import payload, transforms

__all__ = ["payload", "register", "transforms"]
