"""A parameter of the repository's own, as real repositories add (release names, PR numbers)."""

from typing import Optional

from taskgraph.parameters import extend_parameters_schema
from taskgraph.util.schema import Schema


class ShapedParameters(Schema):
    release_name: Optional[str] = None


def get_defaults(repo_root=None):
    return {"release_name": None}


extend_parameters_schema(ShapedParameters, defaults_fn=get_defaults)


def decision_parameters(graph_config, parameters):
    parameters["release_name"] = None
