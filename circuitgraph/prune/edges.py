"""Edge pruning with ACDC semantics: remove one edge at a time and re-score.

Receivers are visited in reverse topological order and, for each, its incoming edges in a
fixed sender order (see :mod:`circuitgraph.prune.schedule`). Each edge is removed on top of
the current circuit and the circuit re-scored; the removal stands when the metric gets
worse by less than ``tau`` (the running score becomes the new one), otherwise the edge is
restored. Two implementations take exactly these decisions:

- ``method="reference"``: builds the candidate :class:`Circuit` and calls
  ``scorer.score`` for every tested edge (one full masked forward pass each): the oracle.
- ``method="fast"`` (default): caches every activation upstream of the receiver, recomputes
  only the heads and MLPs whose inputs change, and tests a window of candidate edges as one
  batch of speculative variants (see :mod:`circuitgraph.prune.incremental`).
"""

from __future__ import annotations

import math
import time

from tqdm.auto import tqdm

from circuitgraph.graph import Circuit, full_circuit
from circuitgraph.layout import EdgeMasks
from circuitgraph.masks import check_same_model, edge_masks
from circuitgraph.prune.incremental import IncrementalEvaluator
from circuitgraph.prune.schedule import Edge, Step, edge_schedule, set_edge

METHODS = ("fast", "reference")


def worsening(running: float, new: float, higher_is_better: bool) -> float:
    """How much worse ``new`` is than ``running`` (negative when it improved)."""
    return running - new if higher_is_better else new - running


def _start_circuit(scorer, start: Circuit | None, qkv: bool, positions: bool) -> Circuit:
    if start is None:
        seq = range(scorer.task.seq_len) if positions else None
        return full_circuit(scorer.model.cfg, qkv=qkv, positions=seq)
    if not isinstance(start, Circuit):
        raise TypeError(f"start must be a Circuit, got {type(start).__name__}")
    check_same_model(start, scorer.model.cfg)
    return start


def prune_edges(
    scorer,
    tau: float,
    metric: str | None = None,
    start: Circuit | None = None,
    qkv: bool = True,
    positions: bool = False,
    method: str = "fast",
    window: int = 16,
    progress: bool = True,
) -> Circuit:
    """Prune edges one at a time (ACDC); returns an edge-level circuit.

    Parameters
    ----------
    tau: an edge is removed when removing it makes the metric worse by less than ``tau``
        (``tau=0`` removes only edges whose removal helps; a huge ``tau`` removes all).
    metric: ``"kl"`` or ``"logit_diff"`` (default: the scorer's own metric).
    start: prune within this circuit's edges (e.g. a node-pruned circuit); its Q/K/V split and
        positions are used. Default: the full graph with ``qkv`` and ``positions``.
    method: ``"fast"`` or ``"reference"`` (identical decisions; the reference is the oracle).
    window: the most candidate edges the fast method tests in one batch (batches start at 2
        and double while the speculation holds, so a wrong guess wastes little).

    Every tested edge's effect (how much worse the metric got without it) is stored on kept
    edges as ``effect`` and for all tested edges in ``metadata["tested"]``. The result is
    ``prune_dangling()``-ed and its score re-measured from scratch (``metadata["score"]``) next
    to the running score (``metadata["running_score"]``).
    """
    if not isinstance(tau, int | float) or not math.isfinite(tau) or tau < 0:
        raise ValueError(f"tau must be a finite number >= 0, got {tau!r}")
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
    if not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    if metric is not None and metric != scorer.metric.value:
        scorer = scorer.with_metric(metric)
    circuit = _start_circuit(scorer, start, qkv, positions)
    steps = edge_schedule(circuit, scorer.layout)
    started = time.perf_counter()
    run = _prune_reference if method == "reference" else _prune_fast
    kept, tested, running, evaluations = run(scorer, circuit, steps, float(tau), window, progress)
    effects = {edge: {"effect": effect} for edge, effect, _ in tested if edge in kept}
    result = Circuit.from_edges(circuit.config, effects).prune_dangling()
    result.metadata = {
        **circuit.metadata,
        "method": "edges",
        "parameters": {
            "tau": float(tau),
            "metric": scorer.metric.value,
            "method": method,
            "window": window,
            "ablation": scorer.ablation.value,
            "direction": scorer.direction.value,
        },
        "task": scorer.task.name,
        "model": scorer.model_name,
        "tested": [[u, v, effect, removed] for (u, v), effect, removed in tested],
        "running_score": running,
        "score": scorer.score(result),
        "evaluations": evaluations,
        "seconds": time.perf_counter() - started,
    }
    return result


def _bar(steps: list[Step], progress: bool, what: str):
    total = sum(len(step.senders) for step in steps)
    return tqdm(total=total, desc=what, unit="edge", disable=not progress, leave=False)


def _prune_reference(
    scorer, circuit: Circuit, steps: list[Step], tau: float, window: int, progress: bool
) -> tuple[set[Edge], list, float, dict]:
    """One full masked forward pass per tested edge, through the public Circuit API."""
    current = set(circuit.sender_receiver_edges())
    config = circuit.config
    running = scorer.score(Circuit.from_edges(config, current))
    better = scorer.higher_is_better()
    tested = []
    with _bar(steps, progress, "edges (reference)") as bar:
        for step in steps:
            for sender in step.senders:
                edge = (sender, step.receiver.name)
                trial = current - {edge}
                new = scorer.score(Circuit.from_edges(config, trial))
                effect = worsening(running, new, better)
                removed = effect < tau
                if removed:
                    current, running = trial, new
                tested.append((edge, effect, removed))
                bar.update()
    return current, tested, running, {"forward_passes": len(tested) + 1}


def _variants(masks: EdgeMasks, step: Step, candidates: list[int], cumulative: bool) -> EdgeMasks:
    """Copies of ``masks``: variant i removes candidate i (and, if cumulative, those before)."""
    V = len(candidates)
    variants = EdgeMasks(
        [m.expand(V, *m.shape[1:]).clone() for m in masks.attention],
        [m.expand(V, *m.shape[1:]).clone() for m in masks.mlp],
        masks.logits.expand(V, *masks.logits.shape[1:]).clone(),
    )
    for i in range(V):
        removed = candidates[: i + 1] if cumulative else [candidates[i]]
        set_edge(variants, step.receiver, [step.sender_indices[c] for c in removed], 0.0, i)
    return variants


def _prune_fast(
    scorer, circuit: Circuit, steps: list[Step], tau: float, window: int, progress: bool
) -> tuple[set[Edge], list, float, dict]:
    """Incremental evaluation with speculative batches; same decisions as the reference.

    Speculation: after a removal, assume the next edges go too (variant i removes the next
    i + 1 edges); after a kept edge, assume the next ones stay (variant i removes only edge
    i). The first decision that breaks the assumption ends the batch. Batches start at two
    candidates and double, up to ``window``, while the assumption holds.
    """
    masks = edge_masks(circuit, scorer.layout, scorer.task.seq_len)
    evaluator = IncrementalEvaluator(scorer, masks)
    better = scorer.higher_is_better()
    tested, batches, size = [], 0, min(2, window)
    removed_edges: set[Edge] = set()
    cumulative = True
    with _bar(steps, progress, "edges (fast)") as bar:
        for step in steps:
            index = 0
            while index < len(step.senders):
                candidates = list(range(index, min(index + size, len(step.senders))))
                variants = _variants(evaluator.masks, step, candidates, cumulative)
                scores, state = evaluator.evaluate(step.receiver, variants)
                batches += 1
                running, commit = evaluator.score, None
                for i, candidate in enumerate(candidates):
                    new = float(scores[i])
                    effect = worsening(running, new, better)
                    removed = effect < tau
                    edge = (step.senders[candidate], step.receiver.name)
                    tested.append((edge, effect, removed))
                    bar.update()
                    index = candidate + 1
                    if removed:
                        removed_edges.add(edge)
                        running, commit = new, i
                    if removed != cumulative:  # the speculation broke: later variants invalid
                        break
                if commit is not None:
                    evaluator.commit(state, commit, running)
                held = tested[-1][2] == cumulative
                size = min(2 * size, window) if held else min(2, window)
                cumulative = tested[-1][2]
    kept = set(circuit.sender_receiver_edges()) - removed_edges
    evaluations = {"batches": batches, "component_evaluations": evaluator.component_evaluations}
    return kept, tested, evaluator.score, evaluations
