"""ROC and AUC of circuit discovery against a known ground-truth circuit (the ACDC paper's tables).

Elements follow ArthurConmy/Automatic-Circuit-Discovery (commit bc99ace8):

- ``level="edges"``: every edge of the full graph, the head-internal ``a.q -> a`` edges
  included. ``get_edge_stats`` (``acdc/acdc_utils.py`` l. 316-356) counts every edge but the
  ``PLACEHOLDER`` ones (``TLACDCCorrespondence.setup_from_model``): it counts each
  ``hook_q_input -> hook_q`` edge (our ``a.q -> a``) and all edges from ``embed`` and into
  ``logits``, so the GPT-2 small full graph has 32923 edges in both.
- ``level="nodes"``: heads and MLPs (``Circuit.components``). ACDC's ``get_node_stats``
  (l. 269-314) also counts q/k/v and embed/logits nodes; embed and logits are in every circuit,
  so we leave them out, with the q/k/v inputs.

Rules (``rule``), over the ROC points sorted by FPR with (0, 0) and (1, 1) added (as
``get_points``, ``notebooks/roc_plot_generator.py`` l. 853-930), after dropping each point
another beats with a lower FPR *and* a higher TPR (``discard_non_pareto_optimal``,
``notebooks/make_plotly_plots.py`` l. 201-209, applied before ``pessimistic_auc`` at l. 448-462;
points of nested circuits or of a score mapping never lose one):

- ``"pessimistic"``: ACDC's ``pessimistic_auc`` (``acdc/acdc_graphics.py`` l. 313-333), the
  area ``sum((1 - fpr[i]) * (tpr[i] - tpr[i-1]))`` under the lower-right staircase: between
  points the TPR stays at the lower value until the FPR reaches the next point. The paper's
  AUCs use it.
- ``"trapezoid"``: straight lines between points; for a score mapping it is the Mann-Whitney
  U / (positives x negatives), ties counted half.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from circuitgraph.circuit.graph import Circuit
from circuitgraph.circuit.nodes import CircuitConfig, NodeKind
from circuitgraph.circuit.setops import check_compatible
from circuitgraph.circuit.structure import full_structure

__all__ = ["LEVELS", "RULES", "RocCurve", "pruning_effects", "roc_area", "roc_auc"]

LEVELS = ("edges", "nodes")
RULES = ("pessimistic", "trapezoid")
Element = Any  # a node name (str) or a (sender, receiver) edge


@dataclass(frozen=True)
class RocCurve:
    """The AUC and the ROC points (FPR ascending, from (0, 0) to (1, 1)) it is the area under.

    ``n_positive``: candidate elements in the truth; ``n_negative``: the other candidates.
    """

    auc: float
    fpr: tuple[float, ...]
    tpr: tuple[float, ...]
    rule: str
    level: str
    n_positive: int
    n_negative: int


def roc_area(fpr: Iterable[float], tpr: Iterable[float], rule: str = "pessimistic") -> float:
    """Area under ROC points (endpoints added, dominated points dropped; see module docstring).

    >>> roc_area([0.25, 0.75], [0.25, 0.5]), roc_area([0.25, 0.75], [0.25, 0.5], "trapezoid")
    (0.25, 0.40625)
    """
    _check_choice("rule", rule, RULES)
    return _area(*_frontier(zip(fpr, tpr, strict=True)), rule)


def _area(x: np.ndarray, y: np.ndarray, rule: str) -> float:
    if rule == "pessimistic":
        return float(np.sum((1.0 - x[1:]) * np.diff(y)))
    return float(np.sum(np.diff(x) * (y[1:] + y[:-1]) / 2))


def roc_auc(
    results: Sequence[Circuit] | Mapping[Any, Any] | Circuit,
    truth: Circuit,
    *,
    level: str = "edges",
    rule: str = "pessimistic",
    candidates: Circuit | Iterable[Element] | None = None,
    absolute: bool = True,
    internal: bool = False,
) -> RocCurve:
    """ROC of a discovery method against the ground-truth circuit ``truth``.

    ``results`` is a family of predictions, one ROC point per circuit (a list of circuits, or a
    mapping whose values are circuits such as ``threshold_sweep``'s), or a score mapping
    (``{(sender, receiver): score}`` from ``attribute_edges``, or ``{name: score}`` for nodes):
    each distinct score is a threshold, one point (ties are one point). Higher scores mean more
    likely in the circuit; with ``absolute`` (as ``Circuit.threshold``) the ranking is by
    ``|score|``. Pass ``absolute=False`` for pruning effects (``pruning_effects(circuit)``): a
    negative effect means removing the edge helped. Unscored candidates rank last, except that
    an unscored head-internal edge ``a.q -> a`` takes the score at which ``Circuit.threshold``
    would add it (with its input), so nested threshold circuits and their scores give the same
    points. ``candidates`` (a circuit, e.g. the start of pruning, or elements; default: the full
    graph of ``truth.config``) are the elements ranked; predictions outside them are ignored.
    Positives: candidates in ``truth``; negatives: the other candidates. ``truth`` and circuits
    in ``results`` must be edge-level for ``level="edges"`` (a node-level circuit holds every
    edge among its nodes).

    ``internal``: also count the head-internal edges ``a.q -> a`` (as ACDC's ``get_edge_stats``
    does). Off by default: they are not sender-to-receiver edges but a convention of the
    representation. ACDC keeps ``a.q -> a`` for a head whose query input has no incoming edge
    (the query then reads ablated values); a circuitgraph circuit drops it. Counting them
    would score that convention, not the discovery: on tracr-reverse, ACDC's truth holds
    ``a0.0.q -> a0.0`` with no edge into ``a0.0.q``, so a circuit that finds all its 10
    sender-to-receiver edges scores AUC 0.875 with them and 1.000 without.

    >>> import types
    >>> cfg = types.SimpleNamespace(n_layers=2, n_heads=2, model_name="toy")
    >>> truth = Circuit.from_nodes(cfg, ["a0.0", "m1"], qkv=False)
    >>> scores = {"a0.0": 0.9, "a1.1": 0.7, "m1": 0.5, "a1.0": 0.2, "a0.1": 0.1, "m0": 0.0}
    >>> curve = roc_auc(scores, truth, level="nodes")
    >>> curve.auc, curve.tpr[:3], curve.n_positive, curve.n_negative
    (0.875, (0.0, 0.5, 0.5), 2, 4)
    """
    _check_choice("level", level, LEVELS)
    _check_choice("rule", rule, RULES)
    circuits = _circuits(results)
    others = [candidates] if isinstance(candidates, Circuit) else []
    config = check_compatible([truth, *(circuits or []), *others])
    for name, circuit in [("truth", truth), *(("a result", c) for c in circuits or [])]:
        _check_level(name, circuit, level)
    universe = _universe(config, level, candidates, internal)
    positives = _elements(truth, level)
    if level == "edges" and not internal:  # sender-to-receiver edges only
        positives -= _internal_edges(config)
    if outside := list(positives - universe):
        raise ValueError(f"truth has elements outside the candidates: {outside[:10]}")
    n_pos, n_neg = len(positives), len(universe) - len(positives)
    if n_pos == 0:
        what = "edges" if level == "edges" else "heads or MLPs"
        raise ValueError(f"the truth has no {what}: no positives, so the TPR and AUC are undefined")
    if n_neg == 0:
        raise ValueError(
            "the truth holds every candidate: no negatives, so FPR and AUC are undefined"
        )
    if circuits is None:
        scores = _scores(cast("Mapping[Any, Any]", results), config, level, absolute)
        counts = _score_counts(scores, universe, positives)
    else:
        found = [_elements(c, level) & universe for c in circuits]
        counts = [(len(f - positives), len(f & positives)) for f in found]
    x, y = _frontier((fp / n_neg, tp / n_pos) for fp, tp in counts)
    fpr, tpr = tuple(x.tolist()), tuple(y.tolist())
    return RocCurve(_area(x, y, rule), fpr, tpr, rule, level, n_pos, n_neg)


def pruning_effects(circuit: Circuit) -> dict[tuple[str, str], float]:
    """``{edge: effect}`` from a ``prune_edges`` result's ``metadata["tested"]`` (``[sender,
    receiver, effect, removed]`` rows; an edge tested twice keeps its last effect)."""
    if "tested" not in circuit.metadata:
        raise ValueError("circuit has no 'tested' metadata: pass a prune_edges result")
    return {(str(u), str(v)): float(effect) for u, v, effect, _ in circuit.metadata["tested"]}


def _circuits(results: Any) -> list[Circuit] | None:
    """The circuits in ``results``, or None for a score mapping."""
    if isinstance(results, Circuit):
        return [results]
    if isinstance(results, Mapping):
        values = list(results.values())
        if not values or not all(isinstance(v, Circuit) for v in values):
            return None
        results = values
    circuits = list(results)
    if not circuits:
        raise ValueError("results holds no circuits")
    if not all(isinstance(c, Circuit) for c in circuits):
        raise TypeError("results must be circuits or a mapping of elements to scores")
    return circuits


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")


def _check_level(name: str, circuit: Circuit, level: str) -> None:
    if level == "edges" and circuit.level == "node":
        raise ValueError(
            f"{name} is a node-level circuit, but level='edges': its edges are all edges among "
            "its nodes, not a found edge set. Use level='nodes', or build an edge-level circuit "
            "with Circuit.from_edges(circuit.config, circuit.edges) if you mean those edges"
        )


def _universe(
    config: CircuitConfig,
    level: str,
    candidates: Circuit | Iterable[Element] | None,
    internal: bool = True,
) -> set[Element]:
    full = full_structure(config)
    if level == "nodes":
        kinds = (NodeKind.HEAD, NodeKind.MLP)
        every: set[Element] = {n for n, d in full.nodes.items() if d["kind"] in kinds}
    else:
        every = {  # without internal: sender-to-receiver edges only (no q/k/v sender)
            (u, v)
            for u, targets in full.succ.items()
            for v in targets
            if internal or full.nodes[u]["kind"] != NodeKind.QKV
        }
    if candidates is None:
        return every
    if isinstance(candidates, Circuit):  # node-level: the edges among its nodes
        return _elements(candidates, level) & every
    chosen = {tuple(e) if isinstance(e, list) else e for e in candidates}
    bad = chosen - every
    if bad:
        raise ValueError(f"candidates not in the full graph at level={level!r}: {list(bad)[:10]}")
    return chosen


def _internal_edges(config: CircuitConfig) -> set[Element]:
    """The head-internal edges ``a.q -> a`` of the full graph."""
    full = full_structure(config)
    qkv = [u for u, d in full.nodes.items() if d["kind"] == NodeKind.QKV]
    return {(u, v) for u in qkv for v in full.succ[u]}


def _elements(circuit: Circuit, level: str) -> set[Element]:
    return set(circuit.components()) if level == "nodes" else {(u, v) for u, v in circuit.edges}


def _scores(
    mapping: Mapping[Any, Any], config: CircuitConfig, level: str, absolute: bool
) -> dict[Element, float]:
    """Validated scores, ``|score|`` with ``absolute``, with implied head-internal edges."""
    if not mapping:
        raise ValueError("the score mapping is empty")
    if level == "edges" and all(isinstance(k, str) for k in mapping):
        raise ValueError("node scores with level='edges': pass level='nodes'")
    if level == "nodes" and not all(isinstance(k, str) for k in mapping):
        raise ValueError("edge scores with level='nodes': pass level='edges'")
    every = _universe(config, level, None)
    bad = [k for k in mapping if k not in every]
    if bad:
        raise ValueError(
            f"scored names that are not {'heads or MLPs' if level == 'nodes' else 'edges'} of "
            f"the full graph of {config.describe()} (qkv={config.qkv}): {bad[:10]}"
        )
    scores = {k: abs(float(v)) if absolute else float(v) for k, v in mapping.items()}
    if any(math.isnan(v) for v in scores.values()):
        raise ValueError(f"NaN scores for {[k for k, v in scores.items() if math.isnan(v)][:10]}")
    if level == "edges":
        scores |= _implied(scores, config)
    return scores


def _implied(scores: dict[Element, float], config: CircuitConfig) -> dict[Element, float]:
    """Scores of unscored head-internal edges ``input -> head``: where ``Circuit.from_edges``
    adds them (the input is in, and the head: via its own inputs or outputs, for GQA k/v)."""
    full = full_structure(config)
    into: dict[str, float] = {}  # node -> the highest score of its incoming edges
    out: dict[str, float] = {}
    for (u, v), s in scores.items():
        into[v] = max(into.get(v, -math.inf), s)
        out[u] = max(out.get(u, -math.inf), s)
    own: dict[str, list[str]] = {}  # head -> its per-head inputs (q; k and v without GQA)
    for n, data in full.nodes.items():
        if data["kind"] == NodeKind.QKV and data["head"] is not None:
            own.setdefault(next(iter(full.succ[n])), []).append(n)
    implied = {}
    for n, data in full.nodes.items():
        for head in full.succ[n] if data["kind"] == NodeKind.QKV else ():
            if (n, head) not in scores:
                present = max(
                    out.get(head, -math.inf), *(into.get(i, -math.inf) for i in own[head])
                )
                implied[(n, head)] = min(into.get(n, -math.inf), present)
    return implied


def _score_counts(
    scores: dict[Element, float], universe: set[Element], positives: set[Element]
) -> list[tuple[int, int]]:
    """(false positives, true positives) at each distinct score, highest first."""
    elements = list(universe)
    values = np.array([scores.get(e, -math.inf) for e in elements], dtype=float)
    truth = np.array([e in positives for e in elements], dtype=bool)
    order = np.argsort(-values, kind="stable")
    values, truth = values[order], truth[order]
    last = np.append(values[1:] != values[:-1], True)  # the last element of each tie group
    tp, fp = np.cumsum(truth)[last], np.cumsum(~truth)[last]
    return list(zip(fp.tolist(), tp.tolist(), strict=True))


def _frontier(points: Iterable[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Distinct points with (0, 0) and (1, 1), sorted by (FPR, TPR), without those another
    point beats on both (lower FPR, higher TPR): ACDC's ``discard_non_pareto_optimal``."""
    ordered = sorted({(float(x), float(y)) for x, y in points} | {(0.0, 0.0), (1.0, 1.0)})
    kept, best, group_x, seen = [], -math.inf, None, -math.inf
    for x, y in ordered:
        if x != group_x:  # best: the highest TPR of the points with a lower FPR
            best, group_x = seen, x
        seen = max(seen, y)
        if y >= best:
            kept.append((x, y))
    if not all(0.0 <= v <= 1.0 for point in kept for v in point):
        raise ValueError(f"ROC points must lie in [0, 1] x [0, 1], got {kept}")
    return np.array([x for x, _ in kept]), np.array([y for _, y in kept])
