"""circuitgraph: find, compare and draw the circuits inside transformer language models.

>>> import circuitgraph as cg
>>> model = cg.load_model("toy-seq")
>>> task = cg.make_task("digits", model, n=8)
>>> cg.Scorer(model, task).score(cg.full_circuit(model.cfg))  # doctest: +ELLIPSIS
1.0...
"""

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The public API, imported on first use (``import circuitgraph`` stays fast: the command line's
# --help and --version do not load torch). name -> module that defines it.
_API = {
    "ablate_subcircuit": "circuitgraph.analysis",
    "attention_patterns": "circuitgraph.analysis",
    "cross_task_matrix": "circuitgraph.analysis",
    "logit_lens": "circuitgraph.analysis",
    "ov_scores": "circuitgraph.analysis",
    "Circuit": "circuitgraph.circuit.graph",
    "full_circuit": "circuitgraph.circuit.graph",
    "CircuitConfig": "circuitgraph.circuit.nodes",
    "overlap_table": "circuitgraph.circuit.setops",
    "shared": "circuitgraph.circuit.setops",
    "upset_table": "circuitgraph.circuit.setops",
    "venn": "circuitgraph.figures",
    "venn_grid": "circuitgraph.figures",
    "ModelLoadError": "circuitgraph.models",
    "list_models": "circuitgraph.models",
    "load_model": "circuitgraph.models",
    "attribute_edges": "circuitgraph.prune.attribution",
    "compare_with_pruned": "circuitgraph.prune.attribution",
    "prune_edges": "circuitgraph.prune.edges",
    "prune_nodes": "circuitgraph.prune.nodes",
    "threshold_sweep": "circuitgraph.prune.sweep",
    "order_frequency": "circuitgraph.prune.tables",
    "plot_score_vs_size": "circuitgraph.prune.tables",
    "threshold_changes": "circuitgraph.prune.tables",
    "threshold_table": "circuitgraph.prune.tables",
    "Scorer": "circuitgraph.scoring.scorer",
    "evaluate": "circuitgraph.evaluation",
    "faithfulness_curve": "circuitgraph.evaluation",
    "held_out_scorer": "circuitgraph.evaluation",
    "stability": "circuitgraph.evaluation",
    "compare_methods": "circuitgraph.evaluation.compare",
    "list_ground_truth": "circuitgraph.ground_truth",
    "load_ground_truth": "circuitgraph.ground_truth",
    "render_comparison": "circuitgraph.circuit.render",
    "RocCurve": "circuitgraph.evaluation.roc",
    "roc_auc": "circuitgraph.evaluation.roc",
    "UncertaintyError": "circuitgraph.guards",
    "UncertaintyWarning": "circuitgraph.guards",
    "Task": "circuitgraph.tasks",
    "list_corruptions": "circuitgraph.tasks",
    "list_tasks": "circuitgraph.tasks",
    "list_templates": "circuitgraph.tasks",
    "load_task": "circuitgraph.tasks",
    "make_task": "circuitgraph.tasks",
    "view": "circuitgraph.viewer",
    "analysis": "circuitgraph.analysis",
}

# Derived from the table; tests/test_api.py checks that the type-checking imports below match it.
# (Type checkers cannot follow a computed __all__; they read those imports instead.)
__all__ = ["__version__", *sorted(_API)]  # pyright: ignore[reportUnsupportedDunderAll]


def __getattr__(name: str) -> Any:
    """Import a public name's module (or a submodule) the first time the name is used."""
    if name not in _API:
        if name.startswith("_") or importlib.util.find_spec(f"circuitgraph.{name}") is None:
            raise AttributeError(f"module 'circuitgraph' has no attribute {name!r}")
        return importlib.import_module(f"circuitgraph.{name}")
    module = importlib.import_module(_API[name])
    value = module if module.__name__ == f"circuitgraph.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))


if TYPE_CHECKING:  # the same names for type checkers and IDEs (tested against _API)
    from circuitgraph import analysis
    from circuitgraph.analysis import (
        ablate_subcircuit,
        attention_patterns,
        cross_task_matrix,
        logit_lens,
        ov_scores,
    )
    from circuitgraph.circuit.graph import Circuit, full_circuit
    from circuitgraph.circuit.nodes import CircuitConfig
    from circuitgraph.circuit.render import render_comparison
    from circuitgraph.circuit.setops import overlap_table, shared, upset_table
    from circuitgraph.evaluation import (
        evaluate,
        faithfulness_curve,
        held_out_scorer,
        stability,
    )
    from circuitgraph.evaluation.compare import compare_methods
    from circuitgraph.evaluation.roc import RocCurve, roc_auc
    from circuitgraph.figures import venn, venn_grid
    from circuitgraph.ground_truth import list_ground_truth, load_ground_truth
    from circuitgraph.guards import UncertaintyError, UncertaintyWarning
    from circuitgraph.models import ModelLoadError, list_models, load_model
    from circuitgraph.prune.attribution import attribute_edges, compare_with_pruned
    from circuitgraph.prune.edges import prune_edges
    from circuitgraph.prune.nodes import prune_nodes
    from circuitgraph.prune.sweep import threshold_sweep
    from circuitgraph.prune.tables import (
        order_frequency,
        plot_score_vs_size,
        threshold_changes,
        threshold_table,
    )
    from circuitgraph.scoring.scorer import Scorer
    from circuitgraph.tasks import (
        Task,
        list_corruptions,
        list_tasks,
        list_templates,
        load_task,
        make_task,
    )
    from circuitgraph.viewer import view
