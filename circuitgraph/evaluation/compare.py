"""``compare_methods``: node pruning, ACDC edge pruning, EAP and EAP-IG on one task, in one
table: circuit size, held-out faithfulness with a bootstrap CI, the faithfulness curve's CPR
and CMD (with a random baseline; node and edge curves apart, by ``level``) and wall time."""

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
from circuitgraph.evaluation.held_out import check_held_out
from circuitgraph.options import Metric

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer
    from circuitgraph.tasks.task import Task

__all__ = ["METHODS", "MethodComparison", "compare_methods"]

METHODS = ("nodes", "acdc", "eap", "eap_ig")


@dataclass(frozen=True)
class MethodComparison:
    """``table``: one row per method; ``circuits`` and ``curves`` by method name.

    ``level`` says what a method's curve ranks: ``"node"`` (node pruning: CPR and CMD over
    fractions of the heads and MLPs) or ``"edge"`` (the others: over fractions of the edges).
    The two x-axes differ, so compare CPR and CMD only between rows of one level
    (:meth:`curve_table`). ``evaluated_on``: where every column was computed, the faithfulness
    and the curves alike ("held-out" or "in-sample").
    """

    table: pd.DataFrame
    circuits: dict
    curves: dict
    evaluated_on: str

    def curve_table(self, level: str) -> pd.DataFrame:
        """The rows of the methods whose curves rank ``level`` (``"node"`` or ``"edge"``)."""
        if level not in ("node", "edge"):
            raise ValueError(f"level must be 'node' or 'edge', got {level!r}")
        return self.table.loc[self.table["level"] == level]

    def plot(self, path: str | Path | None = None):
        """Faithfulness (with CI) against circuit size, then the node curves and the edge
        curves in panels of their own (each with its random baseline)."""
        from circuitgraph.figures import new_figure, save_figure

        levels = [v for v in ("node", "edge") if any(c.level == v for c in self.curves.values())]
        fig = new_figure(5 * (1 + len(levels)), 3.8, layout="tight")
        left, *panels = fig.subplots(1, 1 + len(levels))
        t = self.table
        for method, row in t.iterrows():
            err = [[row["score"] - row["ci_low"]], [row["ci_high"] - row["score"]]]
            left.errorbar(row["edges"], row["score"], yerr=err, fmt="o", capsize=3, label=method)
        left.set_xscale("log")
        left.set_xlabel("edges in the circuit")
        left.set_ylabel(f"faithfulness ({self.evaluated_on})")
        left.legend(frameon=False)
        for level, right in zip(levels, panels, strict=True):
            curves = {m: c for m, c in self.curves.items() if c.level == level}
            for method, curve in curves.items():
                right.plot(curve.table["fraction"], curve.table["f"], "o-", label=method)
                right.plot(
                    curve.table["fraction"], curve.table["random_f"], "--", color="grey", lw=0.8
                )
            right.plot([], [], "--", color="grey", label="random")
            right.set_xscale("log")
            right.set_xlabel(f"fraction of {level}s kept")
            right.set_ylabel(f"f ({self.evaluated_on})")
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
    ``held_out``: a Task (a Scorer like ``scorer`` is built on it, see
    :func:`held_out_scorer`) or a Scorer, whose prompts share no underlying sequence with
    ``scorer``'s (refused otherwise); None evaluates in-sample. Every column (faithfulness,
    CI, and the curves' CPR and CMD) is computed on those prompts with the same scorer and
    metric; discovery alone uses ``scorer``'s. Curves follow :func:`faithfulness_curve`'s
    default protocol; the table's ``level`` column keeps node and edge curves apart.
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
        check_held_out(scorer.task, judge.task, "compare_methods")
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
        curve = faithfulness_curve(judge, rankings[method], fractions, seed)
        curves[method] = curve
        rows.append(
            {
                "method": method,
                "level": curve.level,
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
