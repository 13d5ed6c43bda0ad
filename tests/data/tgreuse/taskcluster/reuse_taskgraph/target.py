"""A target-tasks method of this repository's own, as real repositories have."""

from taskgraph.target_tasks import register_target_task


@register_target_task("checks")
def target_checks(full_task_graph, parameters, graph_config):
    """Every check task (their images come with them)."""
    return [label for label, task in full_task_graph.tasks.items() if task.kind == "check"]
