"""Taskcluster's side: the deployment the environment names (:mod:`.env`),
its time offsets and timestamps (:mod:`.time`), and the submission of a
plan's tasks to the queue (:mod:`.submit`).

Nothing is imported here, so that ``import taskgraph_images.tc.time`` stays
as cheap as the module itself.
"""
