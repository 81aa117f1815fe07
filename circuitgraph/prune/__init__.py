"""Circuit discovery by pruning. Node pruning and its tables are exported here; edge pruning
and attribution live in ``prune.edges`` and ``prune.attribution``."""

from circuitgraph.prune.nodes import ORDERS, prune_nodes
from circuitgraph.prune.sweep import threshold_sweep
from circuitgraph.prune.tables import (
    order_frequency,
    plot_score_vs_size,
    threshold_changes,
    threshold_table,
)

__all__ = [
    "ORDERS",
    "order_frequency",
    "plot_score_vs_size",
    "prune_nodes",
    "threshold_changes",
    "threshold_sweep",
    "threshold_table",
]
