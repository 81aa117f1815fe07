"""circuitgraph: find, compare and draw the circuits inside transformer language models.

>>> import circuitgraph as cg
>>> model = cg.load_model("toy-seq")
>>> task = cg.make_task("digits", model, n=8)
>>> cg.Scorer(model, task).score(cg.full_circuit(model.cfg))  # doctest: +ELLIPSIS
1.0...
"""

from circuitgraph.graph import Circuit, full_circuit
from circuitgraph.models import ModelLoadError, list_models, load_model
from circuitgraph.nodes import CircuitConfig
from circuitgraph.render import render, venn, venn_grid
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
    "full_circuit",
    "list_corruptions",
    "list_models",
    "list_tasks",
    "list_templates",
    "load_model",
    "make_task",
    "overlap_table",
    "render",
    "shared",
    "upset_table",
    "venn",
    "venn_grid",
]
