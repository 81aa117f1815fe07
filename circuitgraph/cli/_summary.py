"""What a run prints and records about its circuit: the metrics, labelled, the one pruned on
first, and the edge count as circuit.json counts it (``discover`` and ``sweep``)."""

from __future__ import annotations

import argparse
import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Circuit

# The metrics of Scorer.evaluate as printed, in the order printed after the one pruned on.
METRIC_LABELS = {
    "normalised_logit_diff": "normalised logit diff",
    "logit_diff": "logit diff",
    "kl": "kl",
    "accuracy": "top-1 accuracy",
    "l2": "l2",
}


def pruned_key(metric: str) -> str:
    """The key of ``Scorer.evaluate``'s dict that pruning on ``metric`` optimised.

    >>> pruned_key("logit_diff"), pruned_key("kl"), pruned_key("prob_diff")
    ('normalised_logit_diff', 'kl', 'score')
    """
    return {"logit_diff": "normalised_logit_diff", "prob_diff": "score"}.get(metric, metric)


def pruned_on(args: argparse.Namespace) -> dict[str, str]:
    """What the printed circuit was pruned on: ``{evaluate key: note}``, first the metric of
    the last pruning (edges with --method edges), then node pruning's if it differs."""
    if args.method == "nodes":
        return {pruned_key(args.metric): "pruned on"}
    if args.threshold is None or args.metric != "kl":
        return {pruned_key(args.metric): "pruned on"}
    return {"kl": "edges pruned on", "normalised_logit_diff": "nodes pruned on"}


def metrics_text(scores: dict[str, float], pruned: dict[str, str]) -> str:
    """Every metric of one circuit, labelled: those in ``pruned`` first with their notes.

    >>> metrics_text({"score": 0.6, "normalised_logit_diff": 0.6, "logit_diff": 7.0,
    ...               "kl": 0.07, "accuracy": 1.0}, {"kl": "pruned on"})
    'kl 0.0700 (pruned on); normalised logit diff 0.6000; logit diff 7.0000; top-1 accuracy 1.0000'
    """
    labels = METRIC_LABELS | {"score": "normalised prob diff"}
    keys = [*pruned, *(k for k in METRIC_LABELS if k not in pruned)]
    notes = {k: f" ({note})" for k, note in pruned.items()}
    shown = [k for k in keys if k in scores and not math.isnan(scores[k])]  # no answers: no
    return "; ".join(f"{labels[k]} {scores[k]:.4f}{notes.get(k, '')}" for k in shown)


def edges_text(circuit: Circuit) -> str:
    """The circuit's edges as circuit.json counts them, with the q/k/v -> head edges inside
    heads told apart from those between components."""
    between = len(circuit.sender_receiver_edges())
    inside = circuit.number_of_edges() - between
    if not inside:
        return f"{between} edges"
    return (
        f"{circuit.number_of_edges()} edges ({between} between components, "
        f"{inside} from q/k/v inputs into their heads)"
    )


def run_summary(
    circuit: Circuit, finals: dict[str, dict[str, float]], pruned: dict[str, str]
) -> dict[str, Any]:
    return {
        "level": circuit.level,
        "n_heads": len(circuit.heads()),
        "n_mlps": len(circuit.mlps()),
        "n_edges": circuit.number_of_edges(),  # as circuit.json lists them
        "n_edges_between_components": len(circuit.sender_receiver_edges()),
        "heads": circuit.heads(),
        "mlps": circuit.mlps(),
        "pruned_on": list(pruned),  # keys of "scores" (see pruned_on)
        "score": finals["circuit"]["score"],
        "scores": finals,
    }
