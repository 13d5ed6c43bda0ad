"""taskgraph's own index-search strategy, to compare against:
``TASKGRAPH_OPTIMIZE_STRATEGIES=reuse_taskgraph.compare:TASKGRAPH_OWN``."""

from taskgraph.optimize.strategies import IndexSearch

TASKGRAPH_OWN = {"index-search": IndexSearch()}
