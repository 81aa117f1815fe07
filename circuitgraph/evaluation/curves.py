"""Faithfulness curves (the MIB circuit-localisation standard): score the top-k circuits of a
ranking at growing sizes and summarise the curve by its areas.

f(C) = (m(C) - m(empty)) / (m(full) - m(empty)) for the scorer's metric m, so f = 0 for the
empty circuit and 1 for the full model under any metric (KL included). CPR is the area under
f and CMD the area under |1 - f|, both by the trapezoid rule over the fraction of elements kept
(x from the smallest fraction to the largest, linear scale). A good ranking has a high CPR and
a low CMD; :func:`faithfulness_curve` also scores seeded random rankings of the same elements
as the baseline (the mean of ``random_draws`` draws).

``protocol="mib"`` is the protocol of MIB's circuit-localisation track (Mueller et al. 2025,
"MIB: A Mechanistic Interpretability Benchmark"; ``evaluate_area_under_curve`` in
``MIB_circuit_track/evaluation.py`` of its code, and its results table, which takes CPR from
the run with ``absolute=False`` and CMD from the run with ``absolute=True``):

- what is not in the circuit is patched with each prompt's counterfactual (corrupted)
  activations (``ablation="resample"``, noising), whatever the scorer's own ablation;
- the fractions (MIB's ``.001 .. 1``, :data:`FRACTIONS`) are of N = every element of the full
  graph (every edge of the full edge graph, or every head and MLP), ranked or not; elements
  the ranking leaves out come after the ranked ones;
- k = floor(fraction x N) (``int(pct * n)``, so the smallest circuits may be empty);
- CPR comes from the signed ranking (highest score first), CMD from the absolute one
  (largest |score| first); x is the fraction, on a linear scale; f as above, with m the
  mean of the metric over the prompts.
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
    "PROTOCOLS",
    "FaithfulnessCurve",
    "curve_areas",
    "faithfulness_curve",
    "pruning_ranking",
]

FRACTIONS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)  # MIB's percentages
PROTOCOLS = ("default", "mib")
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
    """The curve of one ranking and of seeded random rankings of the same elements.

    ``table``: one row per fraction with ``k`` (elements kept), ``score`` and ``f`` for the
    ranking (with ``protocol="mib"``: the signed ranking, and ``abs_score`` / ``abs_f`` for the
    absolute one, which CMD comes from), and ``random_score`` / ``random_f`` (means over the
    ``random_draws`` random rankings) with ``random_f_sd``. ``random_cpr`` / ``random_cmd``
    are the means of the draws' areas, ``random_cpr_sd`` / ``random_cmd_sd`` their sds.
    ``n_elements``: N, the number of elements the fractions are of.
    """

    table: pd.DataFrame
    level: str
    full_score: float
    empty_score: float
    cpr: float
    cmd: float
    random_cpr: float
    random_cmd: float
    protocol: str = "default"
    n_elements: int = 0
    random_draws: int = 1
    random_cpr_sd: float = float("nan")
    random_cmd_sd: float = float("nan")

    def plot(self, path: str | Path | None = None, ax: Any = None, label: str = "ranking"):
        """f against the fraction kept (log x), the random baseline dashed; saves to ``path``."""
        from circuitgraph.figures import new_figure, save_figure

        if ax is None:
            ax = new_figure(5, 3.5, layout="constrained").subplots()
        t = self.table
        ax.plot(t["fraction"], t["f"], "o-", label=f"{label} (CPR {self.cpr:.2f})")
        ax.plot(
            t["fraction"], t["random_f"], "s--", color="grey", label=f"random ({self.random_draws})"
        )
        ax.axhline(1.0, color="black", lw=0.5)
        ax.set_xscale("log")
        ax.set_xlabel(f"fraction of {self.level}s kept")
        ax.set_ylabel("faithfulness f")
        ax.legend(frameon=False)
        if path is not None:
            save_figure(ax.figure, path)
        return ax


def pruning_ranking(circuit: Circuit) -> dict[str, float]:
    """Node ranking from a ``prune_nodes`` result; higher = more important.

    Kept nodes first, by the drop pruning recorded when it tried to remove them (the running
    score before the try minus the score without the node, from the ``kept`` log; a node
    tried more than once, with ``repeat``, by its last try; a removal that was undone, by its
    own), largest first; kept nodes pruning never tried next, in the circuit's order; then the
    removed ones from the last removed (survived longest) to the first.
    """
    metadata = circuit.metadata
    if "removed" not in metadata:
        raise ValueError("circuit has no 'removed' metadata: pass a prune_nodes result")
    removed = [r["node"] for r in metadata["removed"]]
    drops = _recorded_drops(metadata)
    kept = circuit.components()
    kept = sorted(kept, key=lambda n: (n not in drops, -drops.get(n, 0.0)))  # stable
    order = kept + removed[::-1]
    return {name: float(len(order) - i) for i, name in enumerate(order)}


def _recorded_drops(metadata: Mapping[str, Any]) -> dict[str, float]:
    """Node -> the score drop of its last refused (or undone) removal in a prune_nodes log."""
    accepted = sorted(
        [*metadata.get("removed", []), *metadata.get("undone", [])], key=lambda r: r["step"]
    )
    steps = [r["step"] for r in accepted]
    start = metadata.get("start_score")

    def before(step: int) -> float | None:
        """The running score before the try at ``step``."""
        i = int(np.searchsorted(steps, step)) - 1
        return float(accepted[i]["score"]) if i >= 0 else start

    drops: dict[str, tuple[int, float]] = {}
    tries = [*metadata.get("kept", []), *metadata.get("undone", [])]
    for record in sorted(tries, key=lambda r: r["step"]):
        running = before(record["step"])
        if running is not None:
            drops[record["node"]] = (record["step"], running - float(record["score"]))
    return {node: drop for node, (_, drop) in drops.items()}


def _universe(scorer: Scorer, ranking: Mapping[Element, float]) -> tuple[str, Any, list]:
    """Level of the ranking, the config to build circuits with and every valid element, in
    graph order (the full graph at the ranking's granularity)."""
    cfg = scorer.model.cfg
    keys = list(ranking)
    if not keys:
        raise ValueError("ranking is empty")
    if all(isinstance(k, str) for k in keys):
        names = [head_name(L, h) for L in range(cfg.n_layers) for h in range(cfg.n_heads)]
        return "node", cfg, names + [mlp_name(L) for L in range(cfg.n_layers)]
    if not all(isinstance(k, tuple) and len(k) == 2 for k in keys):
        raise ValueError("ranking keys must all be node names or all (sender, receiver) edges")
    qkv = any(v.rsplit(".", 1)[-1] in ("q", "k", "v") for _, v in keys)
    full = full_circuit(cfg, qkv=qkv)
    return "edge", full.config, list(full.sender_receiver_edges())


def _circuit(level: str, config: Any, elements: list) -> Circuit:
    if level == "node":
        return Circuit.from_nodes(config, elements)
    return Circuit.from_edges(config, elements)


def _scores(
    scorer: Scorer, level: str, config: Any, order: list, ks: list[int], empty: float
) -> list[float]:
    cache: dict[int, float] = {0: empty}  # k = 0 (MIB's floor at small fractions): no element
    for k in ks:
        if k not in cache:
            cache[k] = scorer.score(_circuit(level, config, order[:k]))
    return [cache[k] for k in ks]


def _patching(scorer: Scorer) -> Scorer:
    """``scorer``, or a Scorer like it that patches each prompt's counterfactual activations
    into what is not in the circuit (MIB's "patching": resample ablation, noising)."""
    from circuitgraph.options import Ablation, Direction
    from circuitgraph.scoring.scorer import Scorer

    if scorer.ablation is Ablation.RESAMPLE and scorer.direction is Direction.NOISING:
        return scorer
    return Scorer(
        scorer.model,
        scorer.task,
        metric=scorer.metric,
        ablation="resample",
        normalise=scorer.normalise,
        direction="noising",
        max_memory=getattr(scorer, "max_memory", None),
    )


def _ordered(ranking: Mapping[Element, float], absolute: bool) -> list:
    """The ranking's elements, most important first (ties keep the ranking's order)."""
    key = (lambda kv: -abs(kv[1])) if absolute else (lambda kv: -kv[1])
    return [k for k, _ in sorted(ranking.items(), key=key)]


def faithfulness_curve(
    scorer: Scorer,
    ranking: Mapping[Element, float],
    fractions: Sequence[float] = FRACTIONS,
    seed: int = 0,
    absolute: bool = True,
    protocol: str = "default",
    random_draws: int = 5,
) -> FaithfulnessCurve:
    """Score the top-k circuits of ``ranking`` at each fraction of its elements.

    ``ranking`` maps edges ``(sender, receiver)`` (e.g. :func:`circuitgraph.attribute_edges`,
    or ACDC's tested effects) or head/MLP names (e.g. :func:`pruning_ranking`) to scores,
    higher = more important.

    ``protocol="default"``: the scorer as it is; fractions of the ranked elements; k rounded
    up, so the smallest circuits keep at least one element; one ranking, by magnitude with
    ``absolute`` (as ``Circuit.top_k``), else by signed score, gives both CPR and CMD.
    ``protocol="mib"``: MIB's protocol exactly (see the module docstring): counterfactual
    patching, fractions of the full graph, k rounded down, CPR from the signed ranking and CMD
    from the absolute one (``absolute`` is not used).

    The random baseline is the mean over ``random_draws`` seeded random orders of the same
    elements (the ranked ones; with ``"mib"`` the full graph's).
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol {protocol!r}; choose one of {PROTOCOLS}")
    if isinstance(random_draws, bool) or not isinstance(random_draws, int) or random_draws < 1:
        raise ValueError(f"random_draws must be an integer >= 1, got {random_draws!r}")
    fractions = [float(x) for x in fractions]
    if not fractions or any(not 0.0 < x <= 1.0 for x in fractions):
        raise ValueError(f"fractions must lie in (0, 1], got {fractions}")
    level, config, universe = _universe(scorer, ranking)
    valid = set(universe)
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
    mib = protocol == "mib"
    if mib:
        scorer = _patching(scorer)
        rest = [e for e in universe if e not in ranking]  # unranked: after the ranked ones
        order = _ordered(ranking, False) + rest  # signed: CPR
        abs_order = _ordered(ranking, True) + rest  # absolute: CMD
        pool = universe
        ks = [int(x * len(universe)) for x in fractions]  # MIB: int(pct * n_scored_items)
    else:
        order = _ordered(ranking, absolute)
        abs_order, pool = order, order
        ks = [max(1, math.ceil(x * len(order) - 1e-9)) for x in fractions]
    full = scorer.score(full_circuit(scorer.model.cfg))
    empty = scorer.score(_circuit(level, config, []))
    span = full - empty
    if abs(span) < 1e-12:
        raise ValueError("the full model and the empty circuit score the same: f is undefined")

    def curve(elements: list) -> tuple[list[float], np.ndarray]:
        scores = _scores(scorer, level, config, elements, ks, empty)
        return scores, (np.asarray(scores) - empty) / span

    scores, f = curve(order)
    abs_scores, abs_f = curve(abs_order) if mib else (scores, f)
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(random_draws):
        shuffled = list(pool)
        rng.shuffle(shuffled)
        draws.append(curve(shuffled))
    random_scores = np.mean([d[0] for d in draws], axis=0)
    random_f = np.stack([d[1] for d in draws])  # [draws, fractions]
    columns = {"fraction": fractions, "k": ks, "score": scores, "f": f}
    if mib:
        columns |= {"abs_score": abs_scores, "abs_f": abs_f}
    columns |= {
        "random_score": random_scores,
        "random_f": random_f.mean(axis=0),
        "random_f_sd": random_f.std(axis=0, ddof=1) if random_draws > 1 else np.nan,
    }
    table = pd.DataFrame(columns)
    nan = (float("nan"), float("nan"))
    areas = (lambda g: curve_areas(fractions, g)) if len(fractions) > 1 else (lambda g: nan)
    cpr, cmd = areas(f)[0], areas(abs_f)[1]
    random_areas = np.array([areas(g) for g in random_f])  # [draws, 2]
    sd = random_areas.std(axis=0, ddof=1) if random_draws > 1 else np.array(nan)
    return FaithfulnessCurve(
        table,
        level,
        full,
        empty,
        cpr,
        cmd,
        float(random_areas[:, 0].mean()),
        float(random_areas[:, 1].mean()),
        protocol=protocol,
        n_elements=len(pool),
        random_draws=random_draws,
        random_cpr_sd=float(sd[0]),
        random_cmd_sd=float(sd[1]),
    )
