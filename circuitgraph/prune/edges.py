"""Edge pruning with ACDC semantics: remove one edge at a time and re-score.

Receivers are visited in reverse topological order and, for each, its incoming edges in a
fixed sender order (see :mod:`circuitgraph.prune.schedule`). Each edge is removed on top of
the current circuit and the circuit re-scored; the removal stands when the metric gets
worse by less than ``tau`` (the running score becomes the new one), otherwise the edge is
restored. Two implementations take exactly these decisions:

- ``method="reference"`` (the engine; ``"engine"`` in the metadata): builds the candidate
  :class:`Circuit` and calls ``scorer.score`` for every tested edge (one full masked forward
  pass each): the oracle.
- ``method="fast"`` (the default engine): caches every activation upstream of the receiver,
  recomputes only the heads and MLPs whose inputs change, and tests a window of candidate
  edges as one batch of speculative variants (see :mod:`circuitgraph.prune.incremental`).

``order="acdc"`` follows the ACDC reference implementation's visit order, tests its Q/K/V
direct edges and removes untested the edges into receivers nothing reads any more, so it
reproduces the reference's result (see :mod:`circuitgraph.prune.schedule`).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch

from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.circuit.provenance import provenance
from circuitgraph.options import Direction, EdgeOrder, Engine, Metric, parse_enum, values
from circuitgraph.prune.batching import BatchSizer, CostModel
from circuitgraph.prune.incremental import IncrementalEvaluator
from circuitgraph.prune.progress import EdgeProgress
from circuitgraph.prune.schedule import Edge, Guard, Step, acdc_schedule, edge_schedule
from circuitgraph.scoring.layout import EdgeMasks
from circuitgraph.scoring.masks import check_same_model, edge_masks
from circuitgraph.scoring.memory import check_memory

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer

METHODS = values(Engine)  # prune_edges(method=...): the engine
ORDERS = values(EdgeOrder)


def worsening(running: float, new: float, higher_is_better: bool) -> float:
    """How much worse ``new`` is than ``running`` (negative when it improved)."""
    return running - new if higher_is_better else new - running


def _start_circuit(scorer: Scorer, start: Circuit | None, qkv: bool, positions: bool) -> Circuit:
    if start is None:
        seq = range(scorer.task.seq_len) if positions else None
        return full_circuit(scorer.model.cfg, qkv=qkv, positions=seq)
    if not isinstance(start, Circuit):
        raise TypeError(f"start must be a Circuit, got {type(start).__name__}")
    check_same_model(start, scorer.model.cfg)
    return start


def check_tau(tau: object) -> float:
    """``tau`` as a float; ValueError for booleans, non-numbers, NaN and infinities."""
    if isinstance(tau, bool) or not isinstance(tau, int | float) or not math.isfinite(tau):
        raise ValueError(
            f"tau must be a finite number, got {tau!r} (a negative tau removes nothing and "
            "records every single-edge effect)"
        )
    return float(tau)


def prune_edges(
    scorer: Scorer,
    tau: float,
    metric: str | None = None,
    start: Circuit | None = None,
    qkv: bool = True,
    positions: bool = False,
    method: str | Engine = "fast",
    order: str | EdgeOrder = "canonical",
    window: int = 16,
    progress: bool = True,
) -> Circuit:
    """Prune edges one at a time (ACDC); returns an edge-level circuit.

    Parameters
    ----------
    tau: an edge is removed when removing it makes the metric worse by less than ``tau``
        (``tau=0`` removes only edges whose removal helps; a huge ``tau`` removes all; a
        negative ``tau`` removes nothing and so records every single-edge effect).
    metric: ``"kl"`` or ``"logit_diff"`` (default: the scorer's own metric).
    start: prune within this circuit's edges (e.g. a node-pruned circuit); its Q/K/V split and
        positions are used. Default: the full graph with ``qkv`` and ``positions``.
    method: the engine, ``"fast"`` or ``"reference"`` (identical decisions; the reference is
        the oracle); recorded as ``metadata["parameters"]["engine"]``.
    order: ``"canonical"`` (receivers in reverse canonical order, latest senders first) or
        ``"acdc"`` (the ACDC reference implementation's order, with its Q/K/V direct edges
        and its untested removals; position-free circuits and noising only). ACDC's result
        depends on the order, so only ``"acdc"`` reproduces published ACDC circuits.
    window: the most candidate edges the fast method tests in one batch (each batch takes
        the size with the most expected decisions per second, given the evaluator's counted
        costs and this run's rate of wrong guesses: see ``BatchSizer``).

    Every tested edge's effect (how much worse the metric got without it) is stored on kept
    edges as ``effect`` and for all tested edges in ``metadata["tested"]`` (``[sender,
    receiver, effect, removed]`` in visit order); edges removed without a test are in
    ``metadata["untested"]`` (``[sender, receiver, number of tested entries before it]``).
    The result is ``prune_dangling()``-ed and its score re-measured from scratch
    (``metadata["score"]``) next to the running score (``metadata["running_score"]``).
    """
    tau = check_tau(tau)
    engine = parse_enum(Engine, method, "method")
    order = parse_enum(EdgeOrder, order, "order")
    if isinstance(window, bool) or not isinstance(window, int) or window < 1:
        raise ValueError(f"window must be a positive integer, got {window!r}")
    if metric is not None and parse_enum(Metric, metric, "metric") is not scorer.metric:
        scorer = scorer.with_metric(metric)
    if order is EdgeOrder.ACDC and scorer.direction is not Direction.NOISING:
        raise ValueError(
            "order='acdc' follows the ACDC reference, which patches corrupted values into the "
            "clean run: use direction='noising', or the canonical order for denoising"
        )
    check_memory(scorer.memory, scorer.max_memory, "edges")
    circuit = _start_circuit(scorer, start, qkv, positions)
    if circuit.config.positions is not None:
        scorer.check_aligned()  # before any work: positions must mean the same in every prompt
    steps = (acdc_schedule if order is EdgeOrder.ACDC else edge_schedule)(circuit, scorer.layout)
    started = time.perf_counter()
    record = _Record(circuit)
    run = _prune_reference if engine is Engine.REFERENCE else _prune_fast
    running, evaluations = run(scorer, circuit, steps, tau, window, progress, record)
    kept: dict[Edge, dict] = {edge: {} for edge in record.present}
    for edge, effect, _ in record.tested:
        if edge in kept:
            kept[edge] = {"effect": effect}
    result = Circuit.from_edges(circuit.config, kept, internal=False).prune_dangling()
    parameters = {
        "tau": tau,
        "engine": engine,
        "order": order,
        "window": window,
        "qkv": circuit.config.qkv,
        "positions": circuit.config.positions is not None,
    }
    result.metadata = {
        **provenance("edges", scorer, parameters, start),
        "tested": [[u, v, effect, removed] for (u, v), effect, removed in record.tested],
        "untested": [[u, v, at] for (u, v), at in record.untested],
        "running_score": running,
        "score": scorer.score(result),
        "evaluations": evaluations,
        "seconds": time.perf_counter() - started,
    }
    return result


class _Record:
    """The current circuit's edges and the log of decisions, shared by both methods."""

    def __init__(self, circuit: Circuit) -> None:
        self.present: set[Edge] = set(circuit.edges)
        self.out_degree = Counter(u for u, _ in self.present)
        self.tested: list[tuple[Edge, float, bool]] = []
        self.untested: list[tuple[Edge, int]] = []

    def _remove(self, edges: Iterable[Edge]) -> None:
        for edge in edges:
            if edge in self.present:
                self.present.remove(edge)
                self.out_degree[edge[0]] -= 1

    def allows(self, guard: Guard | None) -> bool:
        """Whether a step with ``guard`` is tested (see :class:`Guard`)."""
        if guard is None:
            return True
        return any(self.out_degree[n] > 0 for n in guard.outputs) or any(
            edge in self.present for edge in guard.edges
        )

    def skip(self, step: Step, candidates: Iterable[int]) -> bool:
        """Remove ``candidates`` of ``step`` without a test; whether any edge was present."""
        edges = [e for c in candidates for e in step.edges_of(c) if e in self.present]
        self.untested += [(edge, len(self.tested)) for edge in edges]
        self._remove(edges)
        return bool(edges)

    def log(self, step: Step, candidate: int, effect: float, removed: bool) -> None:
        edges = step.edges_of(candidate)
        self.tested += [(edge, effect, removed) for edge in edges]
        if removed:
            self._remove(edges)


def _bar(scorer: Scorer, steps: list[Step], progress: bool, what: str) -> EdgeProgress:
    return EdgeProgress(steps, scorer.layout.n_layers, what, disable=not progress)


def _prune_reference(
    scorer: Scorer,
    circuit: Circuit,
    steps: list[Step],
    tau: float,
    window: int,
    progress: bool,
    record: _Record,
) -> tuple[float, dict]:
    """One full masked forward pass per tested edge, through the public Circuit API."""
    config = circuit.config
    passes = 0

    def score(edges: set[Edge]) -> float:
        nonlocal passes
        passes += 1
        return scorer.score(Circuit.from_edges(config, edges, internal=False))

    running = score(record.present)
    better = scorer.higher_is_better()
    with _bar(scorer, steps, progress, "edges (reference)") as bar:
        for step in steps:
            if not record.allows(step.guard):
                record.skip(step, range(len(step.senders)))  # nothing reads the receiver
                bar.update(step, len(step.senders), tested=False)
                continue
            for candidate in range(len(step.senders)):
                if not record.allows(step.guard_of(candidate)):
                    record.skip(step, [candidate])
                    bar.update(step, tested=False)
                    continue
                new = score(record.present - set(step.edges_of(candidate)))
                effect = worsening(running, new, better)
                removed = effect < tau
                record.log(step, candidate, effect, removed)
                bar.update(step)
                if removed:
                    running = new
    return running, {"forward_passes": passes}


def _variants(masks: EdgeMasks, step: Step, removals: list[list[int]]) -> EdgeMasks:
    """Copies of ``masks``: variant i removes the candidates ``removals[i]``."""
    V = len(removals)
    variants = EdgeMasks(
        [m.expand(V, *m.shape[1:]).clone() for m in masks.attention],
        [m.expand(V, *m.shape[1:]).clone() for m in masks.mlp],
        masks.logits.expand(V, *masks.logits.shape[1:]).clone(),
    )
    for i, removed in enumerate(removals):
        step.switch_off(variants, removed, i)
    return variants


def _prune_fast(
    scorer: Scorer,
    circuit: Circuit,
    steps: list[Step],
    tau: float,
    window: int,
    progress: bool,
    record: _Record,
) -> tuple[float, dict]:
    """Incremental evaluation with speculative batches; same decisions as the reference.

    Speculation: a batch tests a window of the receiver's next candidate edges, variant i
    removing candidate i on top of the guessed decisions for the candidates before it. The
    guess for a candidate is its latest measured effect against tau (every variant measures
    one, valid or not: removing the edge from a circuit that differs by a guess or two), and
    without one, the last decision taken (a removal is usually followed by more). The first
    decision that differs from its guess ends the batch: the later variants were built on a
    wrong guess. :class:`BatchSizer` sizes each batch, up to ``window``.
    """
    masks = edge_masks(
        circuit, scorer.layout, scorer.task.seq_len, scorer.device, scorer.components.dtype
    )
    evaluator = IncrementalEvaluator(scorer, masks)
    better = scorer.higher_is_better()
    batches, sizer = 0, BatchSizer(window)
    cost = CostModel.for_device(scorer.device.type, torch.get_num_threads())
    last_removed = True
    with _bar(scorer, steps, progress, "edges (fast)") as bar:
        for step in steps:
            if not record.allows(step.guard):
                everything = list(range(len(step.senders)))
                if record.skip(step, everything):  # nothing reads the receiver: score stays
                    evaluator.adopt_unread(_variants(evaluator.masks, step, [everything]))
                bar.update(step, len(step.senders), tested=False)
                continue
            estimates: dict[int, float] = {}  # candidate -> latest effect measured
            index = 0
            while index < len(step.senders):
                if not record.allows(step.guard_of(index)):
                    if record.skip(step, [index]):
                        evaluator.adopt_unread(_variants(evaluator.masks, step, [[index]]))
                    bar.update(step, tested=False)
                    index += 1
                    continue
                size = sizer.size()
                candidates = [index]  # a window of consecutive candidates that are tested
                while (
                    len(candidates) < size
                    and candidates[-1] + 1 < len(step.senders)
                    and record.allows(step.guard_of(candidates[-1] + 1))
                ):
                    candidates.append(candidates[-1] + 1)
                guesses = [
                    estimates[c] < tau if c in estimates else last_removed for c in candidates
                ]
                removals = [
                    [c for c, guess in zip(candidates[:i], guesses, strict=False) if guess] + [c]
                    for i, c in enumerate(candidates)
                ]
                before = evaluator.work.copy()
                variants = _variants(evaluator.masks, step, removals)
                scores, state = evaluator.evaluate(step.receiver, variants)
                batches += 1
                values = scores.tolist()
                base = evaluator.score  # each variant's effect against its own base
                for candidate, guess, score in zip(candidates, guesses, values, strict=True):
                    estimates[candidate] = worsening(base, score, better)
                    if guess:
                        base = score
                running, commit = evaluator.score, None
                for i, candidate in enumerate(candidates):
                    new = values[i]
                    effect = worsening(running, new, better)
                    removed = effect < tau
                    record.log(step, candidate, effect, removed)
                    bar.update(step)
                    index = candidate + 1
                    if removed:
                        running, commit = new, i
                    sizer.observe(wrong=removed != guesses[i])
                    if removed != guesses[i]:  # a wrong guess: later variants are invalid
                        break
                if commit is not None:
                    evaluator.commit(state, commit, running)
                sizer.spent(len(candidates), cost.seconds(evaluator.work.since(before)))
                last_removed = removed
    evaluations = {"batches": batches, "component_evaluations": evaluator.component_evaluations}
    return evaluator.score, evaluations
