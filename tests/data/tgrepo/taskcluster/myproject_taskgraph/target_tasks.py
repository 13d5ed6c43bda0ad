from taskgraph.target_tasks import register_target_task


@register_target_task("images_only")
def target_images(full_task_graph, parameters, graph_config):
    return [label for label, task in full_task_graph.tasks.items() if task.kind == "docker-image"]
