"""``compare_methods``: node pruning, ACDC edge pruning, EAP and EAP-IG on one task, in one
table: circuit size, held-out faithfulness with a bootstrap CI, the faithfulness curve's CPR
and CMD (with a random baseline) and wall time."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, cast

import pandas as pd

from circuitgraph.circuit.graph import full_circuit
from circuitgraph.evaluation.curves import FRACTIONS, faithfulness_curve, pruning_ranking
from circuitgraph.evaluation.evaluate import evaluate, held_out_scorer
from circuitgraph.options import Metric

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer
    from circuitgraph.tasks.task import Task

__all__ = ["METHODS", "MethodComparison", "compare_methods"]

METHODS = ("nodes", "acdc", "eap", "eap_ig")


@dataclass(frozen=True)
class MethodComparison:
    """``table``: one row per method; ``circuits`` and ``curves`` by method name."""

    table: pd.DataFrame
    circuits: dict
    curves: dict
    evaluated_on: str

    def plot(self, path: str | Path | None = None):
        """Held-out faithfulness (with CI) against circuit size, and each method's curve."""
        from circuitgraph.figures import new_figure, save_figure

        fig = new_figure(10, 3.8, layout="tight")
        left, right = fig.subplots(1, 2)
        t = self.table
        for method, row in t.iterrows():
            err = [[row["score"] - row["ci_low"]], [row["ci_high"] - row["score"]]]
            left.errorbar(row["edges"], row["score"], yerr=err, fmt="o", capsize=3, label=method)
        left.set_xscale("log")
        left.set_xlabel("edges in the circuit")
        left.set_ylabel(f"faithfulness ({self.evaluated_on})")
        left.legend(frameon=False)
        for method, curve in self.curves.items():
            right.plot(curve.table["fraction"], curve.table["f"], "o-", label=method)
        if self.curves:
            baseline = next(iter(self.curves.values())).table
            right.plot(
                baseline["fraction"], baseline["random_f"], "--", color="grey", label="random"
            )
        right.set_xscale("log")
        right.set_xlabel("fraction of ranked elements kept")
        right.set_ylabel("f")
        right.legend(frameon=False)
        if path is not None:
            save_figure(fig, path)
        return fig


def compare_methods(
    scorer: Scorer,
    held_out: Task | Scorer | None = None,
    methods: Sequence[str] = METHODS,
    threshold: float = 0.8,
    tau: float = 0.01,
    k: int | None = None,
    steps: int = 5,
    resamples: int = 1000,
    seed: int = 0,
    fractions: Sequence[float] = FRACTIONS,
) -> MethodComparison:
    """Run each method on ``scorer``'s task and evaluate its circuit on ``held_out``.

    ``nodes``: :func:`prune_nodes` at ``threshold`` (its curve ranks nodes by when pruning
    removed them); ``acdc``: :func:`prune_edges` with KL at ``tau`` over the full graph (its
    curve ranks edges by their tested effect); ``eap`` / ``eap_ig``: the top ``k`` edges of
    :func:`attribute_edges` (default ``k``: as many edges as ACDC kept, else 5 % of the graph).
    ``held_out``: a Task (a Scorer like ``scorer`` is built on it) or a Scorer; None evaluates
    in-sample. Every circuit is evaluated with the same scorer and metric.
    """
    from circuitgraph.prune.attribution import attribute_edges
    from circuitgraph.prune.edges import prune_edges
    from circuitgraph.prune.nodes import prune_nodes

    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ValueError(f"unknown methods {unknown}; choose from {METHODS}")
    if scorer.metric is not Metric.LOGIT_DIFF:
        raise ValueError("compare_methods needs a logit_diff scorer (node pruning's metric)")
    if held_out is None:
        judge, evaluated_on = scorer, "in-sample"
    elif hasattr(held_out, "score_masks"):
        judge, evaluated_on = cast("Scorer", held_out), "held-out"
    else:
        judge, evaluated_on = held_out_scorer(scorer, cast("Task", held_out)), "held-out"
    n_edges = len(full_circuit(scorer.model.cfg, qkv=True).sender_receiver_edges())
    circuits, curves, rankings, seconds = {}, {}, {}, {}
    for method in methods:
        began = time.perf_counter()
        if method == "nodes":
            circuit = prune_nodes(scorer, threshold, progress=False)
            rankings[method] = pruning_ranking(circuit)
        elif method == "acdc":
            circuit = prune_edges(scorer.with_metric("kl"), tau=tau, progress=False)
            rankings[method] = {(u, v): e for u, v, e, _ in circuit.metadata["tested"]}
        else:
            scores = attribute_edges(scorer, method=method, steps=steps)
            size = k or _acdc_size(circuits) or max(1, round(0.05 * n_edges))
            circuit = full_circuit(scorer.model.cfg, qkv=True).top_k(scores, size)
            rankings[method] = scores
        seconds[method] = time.perf_counter() - began
        circuits[method] = circuit
    rows = []
    for method, circuit in circuits.items():
        result = evaluate(judge, circuit, resamples, seed, minimality=False)
        curve = faithfulness_curve(scorer, rankings[method], fractions, seed)
        curves[method] = curve
        rows.append(
            {
                "method": method,
                "heads": len(circuit.heads()),
                "mlps": len(circuit.mlps()),
                "edges": len(circuit.sender_receiver_edges()),
                "score": result.score,
                "ci_low": result.ci[0],
                "ci_high": result.ci[1],
                "cpr": curve.cpr,
                "cmd": curve.cmd,
                "random_cpr": curve.random_cpr,
                "random_cmd": curve.random_cmd,
                "seconds": seconds[method],
            }
        )
    table = pd.DataFrame(rows).set_index("method")
    return MethodComparison(table, circuits, curves, evaluated_on)


def _acdc_size(circuits: dict) -> int | None:
    acdc = circuits.get("acdc")
    return len(acdc.sender_receiver_edges()) if acdc is not None else None
