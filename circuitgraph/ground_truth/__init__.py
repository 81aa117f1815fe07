"""Ground truth: tracr-compiled transformers whose circuits are known from the compiler.

>>> from circuitgraph.ground_truth import list_ground_truth
>>> "reverse" in list_ground_truth() and "proportion" in list_ground_truth()
True

``load_ground_truth(name)`` gives ``(model, task, truth)``; ``load_tracr_bridge(name)`` the
model alone; ``inert_truth_edges(name, ablation)`` the truth edges whose removal alone changes
nothing. The data ship in ``circuitgraph/data/tracr/`` and load with torch and
TransformerLens only; ``python -m circuitgraph.ground_truth.generate`` (with tracr installed:
``pip install circuitgraph-mi[tracr]``) rebuilds them. Importing this package does not import
torch (the generator runs in an environment without it).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__all__ = [
    "acdc_circuit",
    "inert_truth_edges",
    "list_ground_truth",
    "load_ground_truth",
    "load_record",
    "load_tracr_bridge",
    "make_ground_truth_task",
    "truth_circuit",
]
_SUITE = frozenset(__all__)  # every public name lives in suite.py


def __getattr__(name: str) -> Any:
    """Import ``suite`` (and torch) on first use of one of its names."""
    if name in _SUITE:
        return getattr(importlib.import_module("circuitgraph.ground_truth.suite"), name)
    raise AttributeError(f"module 'circuitgraph.ground_truth' has no attribute {name!r}")


if TYPE_CHECKING:
    from circuitgraph.ground_truth.suite import (
        acdc_circuit,
        inert_truth_edges,
        list_ground_truth,
        load_ground_truth,
        load_record,
        load_tracr_bridge,
        make_ground_truth_task,
        truth_circuit,
    )
