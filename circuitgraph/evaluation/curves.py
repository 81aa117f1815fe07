"""Faithfulness curves (the MIB circuit-localisation standard): score the top-k circuits of a
ranking at growing sizes and summarise the curve by its areas.

f(C) = (m(C) - m(empty)) / (m(full) - m(empty)) for the scorer's metric m, so f = 0 for the
empty circuit and 1 for the full model under any metric (KL included). CPR is the area under
f and CMD the area under |1 - f|, both by the trapezoid rule over the fraction of ranked
elements kept (x from the smallest fraction to the largest, linear scale). A good ranking has a
high CPR and a low CMD; :func:`faithfulness_curve` also scores a seeded random ranking of the
same elements as the baseline.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.circuit.nodes import head_name, mlp_name

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer

__all__ = [
    "FRACTIONS",
    "FaithfulnessCurve",
    "curve_areas",
    "faithfulness_curve",
    "pruning_ranking",
]

FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
Element = str | tuple[str, str]


def curve_areas(fractions: Sequence[float], f: Sequence[float]) -> tuple[float, float]:
    """(CPR, CMD): trapezoid areas under f and under |1 - f| over ``fractions``."""
    x, y = np.asarray(fractions, dtype=float), np.asarray(f, dtype=float)
    if x.shape != y.shape or len(x) < 2 or np.any(np.diff(x) <= 0):
        raise ValueError("need at least two strictly increasing fractions, one f value each")
    width = np.diff(x)
    cpr = float(np.sum(width * (y[1:] + y[:-1]) / 2))
    gap = np.abs(1.0 - y)
    cmd = float(np.sum(width * (gap[1:] + gap[:-1]) / 2))
    return cpr, cmd


@dataclass(frozen=True)
class FaithfulnessCurve:
    """The curve of one ranking and of a seeded random ranking of the same elements.

    ``table``: one row per fraction with ``k`` (elements kept), ``score`` and ``f`` for the
    ranking and ``random_score`` / ``random_f`` for the baseline.
    """

    table: pd.DataFrame
    level: str
    full_score: float
    empty_score: float
    cpr: float
    cmd: float
    random_cpr: float
    random_cmd: float

    def plot(self, path: str | Path | None = None, ax: Any = None, label: str = "ranking"):
        """f against the fraction kept (log x), the random baseline dashed; saves to ``path``."""
        from circuitgraph.figures import new_figure, save_figure

        if ax is None:
            ax = new_figure(5, 3.5, layout="constrained").subplots()
        t = self.table
        ax.plot(t["fraction"], t["f"], "o-", label=f"{label} (CPR {self.cpr:.2f})")
        ax.plot(t["fraction"], t["random_f"], "s--", color="grey", label="random")
        ax.axhline(1.0, color="black", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel(f"fraction of {self.level}s kept")
        ax.set_ylabel("faithfulness f")
        ax.legend(frameon=False)
        if path is not None:
            save_figure(ax.figure, path)
        return ax


def pruning_ranking(circuit: Circuit) -> dict[str, float]:
    """Node ranking from a ``prune_nodes`` result: kept nodes first, then the removed ones from
    the last removed (survived longest) to the first; higher = more important."""
    removed = [r["node"] for r in circuit.metadata.get("removed", [])]
    if "removed" not in circuit.metadata:
        raise ValueError("circuit has no 'removed' metadata: pass a prune_nodes result")
    kept = circuit.components()
    order = kept + removed[::-1]
    return {name: float(len(order) - i) for i, name in enumerate(order)}


def _universe(scorer: Scorer, ranking: Mapping[Element, float]) -> tuple[str, Any, set]:
    """Level of the ranking, the config to build circuits with and every valid element."""
    cfg = scorer.model.cfg
    keys = list(ranking)
    if not keys:
        raise ValueError("ranking is empty")
    if all(isinstance(k, str) for k in keys):
        names = [head_name(L, h) for L in range(cfg.n_layers) for h in range(cfg.n_heads)]
        return "node", cfg, set(names + [mlp_name(L) for L in range(cfg.n_layers)])
    if not all(isinstance(k, tuple) and len(k) == 2 for k in keys):
        raise ValueError("ranking keys must all be node names or all (sender, receiver) edges")
    qkv = any(v.rsplit(".", 1)[-1] in ("q", "k", "v") for _, v in keys)
    full = full_circuit(cfg, qkv=qkv)
    return "edge", full.config, set(full.sender_receiver_edges())


def _circuit(level: str, config: Any, elements: list) -> Circuit:
    if level == "node":
        return Circuit.from_nodes(config, elements)
    return Circuit.from_edges(config, elements)


def _scores(scorer: Scorer, level: str, config: Any, order: list, ks: list[int]) -> list[float]:
    cache: dict[int, float] = {}
    for k in ks:
        if k not in cache:
            cache[k] = scorer.score(_circuit(level, config, order[:k]))
    return [cache[k] for k in ks]


def faithfulness_curve(
    scorer: Scorer,
    ranking: Mapping[Element, float],
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
    absolute: bool = True,
) -> FaithfulnessCurve:
    """Score the top-k circuits of ``ranking`` at each fraction of its elements.

    ``ranking`` maps edges ``(sender, receiver)`` (e.g. :func:`circuitgraph.attribute_edges`,
    or ACDC's tested effects) or head/MLP names (e.g. :func:`pruning_ranking`) to scores,
    higher = more important; with ``absolute`` the magnitude ranks (as ``Circuit.top_k``).
    Fractions are of the ranked elements (rank the full graph for MIB's curve); k is
    rounded up, so the smallest circuits keep at least one element.
    """
    fractions = [float(x) for x in fractions]
    if not fractions or any(not 0.0 < x <= 1.0 for x in fractions):
        raise ValueError(f"fractions must lie in (0, 1], got {fractions}")
    level, config, valid = _universe(scorer, ranking)
    unknown = [k for k in ranking if k not in valid]
    if unknown:
        raise ValueError(
            f"ranking has {len(unknown)} {level}(s) that are not in {config.model_name}'s graph, "
            f"e.g. {unknown[:5]}"
        )
    bad = [k for k, v in ranking.items() if not math.isfinite(float(v))]
    if bad:
        raise ValueError(f"ranking has non-finite scores for {bad[:5]}")
    fractions = sorted(set(fractions))
    items = sorted(ranking.items(), key=lambda kv: -abs(kv[1]) if absolute else -kv[1])
    order = [k for k, _ in items]
    shuffled = list(order)
    np.random.default_rng(seed).shuffle(shuffled)
    ks = [max(1, math.ceil(x * len(order) - 1e-9)) for x in fractions]
    full = scorer.score(full_circuit(scorer.model.cfg))
    empty = scorer.score(_circuit(level, config, []))
    span = full - empty
    if abs(span) < 1e-12:
        raise ValueError("the full model and the empty circuit score the same: f is undefined")
    scores = _scores(scorer, level, config, order, ks)
    random_scores = _scores(scorer, level, config, shuffled, ks)
    f = [(s - empty) / span for s in scores]
    random_f = [(s - empty) / span for s in random_scores]
    table = pd.DataFrame(
        {
            "fraction": fractions,
            "k": ks,
            "score": scores,
            "f": f,
            "random_score": random_scores,
            "random_f": random_f,
        }
    )
    cpr, cmd = curve_areas(fractions, f) if len(fractions) > 1 else (float("nan"),) * 2
    rcpr, rcmd = curve_areas(fractions, random_f) if len(fractions) > 1 else (float("nan"),) * 2
    return FaithfulnessCurve(table, level, full, empty, cpr, cmd, rcpr, rcmd)
