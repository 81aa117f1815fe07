"""circuitgraph: find, compare and draw the circuits inside transformer language models.

>>> import circuitgraph as cg
>>> model = cg.load_model("toy-seq")
>>> task = cg.make_task("digits", model, n=8)
>>> cg.Scorer(model, task).score(cg.full_circuit(model.cfg))  # doctest: +ELLIPSIS
1.0...
"""

from circuitgraph import analysis
from circuitgraph.analysis import (
    ablate_subcircuit,
    attention_patterns,
    cross_task_matrix,
    logit_lens,
    ov_scores,
)
from circuitgraph.graph import Circuit, full_circuit
from circuitgraph.models import ModelLoadError, list_models, load_model
from circuitgraph.nodes import CircuitConfig
from circuitgraph.prune.attribution import attribute_edges, compare_with_pruned
from circuitgraph.prune.edges import prune_edges
from circuitgraph.prune.nodes import prune_nodes, threshold_sweep
from circuitgraph.prune.tables import (
    order_frequency,
    plot_score_vs_size,
    threshold_changes,
    threshold_table,
)
from circuitgraph.render import venn, venn_grid
from circuitgraph.scorer import Scorer
from circuitgraph.setops import overlap_table, shared, upset_table
from circuitgraph.tasks import Task, list_corruptions, list_tasks, list_templates, make_task

__version__ = "0.1.0"

__all__ = [
    "Circuit",
    "CircuitConfig",
    "ModelLoadError",
    "Scorer",
    "Task",
    "__version__",
    "ablate_subcircuit",
    "analysis",
    "attention_patterns",
    "attribute_edges",
    "compare_with_pruned",
    "cross_task_matrix",
    "full_circuit",
    "list_corruptions",
    "list_models",
    "list_tasks",
    "list_templates",
    "load_model",
    "logit_lens",
    "make_task",
    "order_frequency",
    "ov_scores",
    "overlap_table",
    "plot_score_vs_size",
    "prune_edges",
    "prune_nodes",
    "shared",
    "threshold_changes",
    "threshold_sweep",
    "threshold_table",
    "upset_table",
    "venn",
    "venn_grid",
]
