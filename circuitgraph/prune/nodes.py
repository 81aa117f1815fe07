"""Iterative node pruning: remove heads and MLPs while the circuit keeps its score.

The paper's algorithm (PAPER.md, "Node pruning"): try candidates in a fixed order and remove
one for good when the circuit without it still scores at least ``threshold`` of the full model.
Tries are evaluated speculatively in batches by :class:`Search`, each resuming the forward
pass where the candidate is first read (:class:`~circuitgraph.prune.node_forward.NodeForward`);
the decisions are those of trying one candidate at a time (``batch_size=1``, the oracle).
"""

from __future__ import annotations

import math
import time
import warnings
from typing import TYPE_CHECKING, Any

import torch
from tqdm.auto import tqdm

from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.circuit.nodes import CircuitConfig
from circuitgraph.circuit.provenance import provenance
from circuitgraph.options import Metric, NodeOrder, parse_enum, values
from circuitgraph.prune.node_forward import NodeForward, calibrate
from circuitgraph.prune.node_order import Candidate, sweeps
from circuitgraph.scoring.layout import NodeMasks
from circuitgraph.scoring.memory import check_memory

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer

__all__ = ["ORDERS", "Order", "prune_nodes"]

Order = NodeOrder  # the name before circuitgraph.options
ORDERS = values(NodeOrder)
CHECK_TOLERANCE = 1e-3  # running vs re-measured score; a larger gap means a bug
TOLERANCE = 1e-5  # scores this close to a bound count as meeting it (float noise)


class Search:
    """The state of a pruning run: current circuit and score, removals, counters.

    Batched tries speculate: each try in a window assumes the predicted outcome of the tries
    before it (removed or kept), so every decision up to and including the first wrong
    prediction is the one-at-a-time decision; the rest of the window is re-evaluated.
    """

    def __init__(
        self, scorer: Scorer, present, floor: float, max_drop: float | None, batch_size: int
    ):
        self.scorer, self.present = scorer, present
        self.floor, self.max_drop = floor, max_drop
        # Tries in one batch: at most what fits the memory budget over every prompt (the
        # decisions are the same for every batch size).
        self.batch_size = min(batch_size, scorer.chunks(batch_size).variants)
        self.score = float(scorer.score_masks(NodeMasks(present[None]))[0])
        self.removed: list[dict[str, Any]] = []
        self.removed_candidates: list[Candidate] = []  # the same removals, in order
        self.kept: list[dict[str, Any]] = []  # refused removals: the score without the node
        self.tries = self.evaluations = self.batches = self.sweeps = 0
        self.bar: tqdm | None = None
        self.tried: set[str] = set()  # tried in an earlier sweep, so kept then
        self.accept_rate: dict[tuple[str, bool], float] = {}
        self.miss = 0.5  # running rate of wrong predictions
        self.forward = NodeForward(scorer, present) if batch_size > 1 else None
        self.overhead = calibrate(self.forward, self.batch_size) if self.forward else 0.0

    def layer_evaluations(self) -> float:
        """Work done in units of one layer for one circuit (a full forward is n_layers)."""
        n_layers = self.scorer.layout.n_layers
        if self.forward is None:
            return float((1 + self.evaluations) * n_layers)
        return n_layers + self.forward.layer_evaluations

    def passes(self, new: float) -> bool:
        if not self.scorer.higher_is_better():  # KL, L2: the rise of one removal, at most tau
            assert self.max_drop is not None, "lower-is-better metrics prune with tau"
            return new - self.score <= self.max_drop + TOLERANCE
        if new < self.floor - TOLERANCE:
            return False
        return self.max_drop is None or self.score - new <= self.max_drop + TOLERANCE

    def sweep(self, candidates: list[Candidate]) -> int:
        """Try every candidate still in the circuit once, in order; returns how many went."""
        todo = [c for c in candidates if self.present[c.pos, c.sender] > 0.5]
        self.sweeps += 1
        if self.bar is not None:
            self.bar.total += len(todo)
            self.bar.refresh()
        before, i = len(self.removed), 0
        while i < len(todo):
            i += self._batch(todo[i:]) if self.forward else self._single(todo[i])
        self.tried.update(c.name for c in todo)
        return len(self.removed) - before

    def _single(self, candidate: Candidate) -> int:
        """The oracle: score the circuit without ``candidate`` with the plain Scorer."""
        trial = self.present.clone()
        trial[candidate.pos, candidate.sender] = 0
        self.evaluations += 1
        self._decide(candidate, float(self.scorer.score_masks(NodeMasks(trial[None]))[0]))
        return 1

    def _decide(self, candidate: Candidate, new: float) -> bool:
        accepted = self.passes(new)
        record = {"node": candidate.name, "step": self.tries, "sweep": self.sweeps, "score": new}
        if not accepted:
            self.kept.append(record)
        if accepted:
            self.present[candidate.pos, candidate.sender] = 0
            self.score = new
            self.removed.append(record)
            self.removed_candidates.append(candidate)
            if self.forward:
                self.forward.invalidate(candidate.stage)
        self.tries += 1
        if self.bar is not None:
            size = int(self.present[:, 1:].sum())
            self.bar.set_postfix(size=size, score=f"{self.score:.4f}", refresh=False)
            self.bar.update(1)
        return accepted

    def _key(self, candidate: Candidate) -> tuple[str, bool]:
        return candidate.kind, candidate.pos == len(self.present) - 1

    def _guess(self, candidate: Candidate) -> bool:
        """Predict removal: kept before means kept again; else the recent rate for its kind."""
        if candidate.name in self.tried:
            return False
        return self.accept_rate.get(self._key(candidate), 0.5) > 0.5

    def _window(self) -> int:
        """Window maximising expected decisions per cost, (1 - q^W) / (1 - q) / (overhead + W)."""
        hit = 1 - self.miss
        decisions = [sum(hit**k for k in range(w)) for w in range(1, self.batch_size + 1)]
        rates = [d / (self.overhead + w) for w, d in enumerate(decisions, start=1)]
        return 1 + rates.index(max(rates))

    def _batch(self, todo: list[Candidate]) -> int:
        window = todo[: self._window()]
        guesses = [self._guess(c) for c in window]
        present = self.present[None].repeat(len(window), 1, 1)
        assumed: list[Candidate] = []
        starts = []
        for k, candidate in enumerate(window):
            for c in (*assumed, candidate):
                present[k, c.pos, c.sender] = 0
            starts.append(min(c.stage for c in (*assumed, candidate)))
            if guesses[k]:
                assumed.append(candidate)
        assert self.forward is not None  # batches run with a NodeForward
        final = self.forward.final(present, starts)
        scores = self.scorer.metric_from_final(final).tolist()
        self.evaluations += len(window)
        self.batches += 1
        for k, (candidate, guess) in enumerate(zip(window, guesses, strict=True)):
            accepted = self._decide(candidate, scores[k])
            if candidate.name not in self.tried:
                key = self._key(candidate)
                self.accept_rate[key] = 0.8 * self.accept_rate.get(key, 0.5) + 0.2 * accepted
            self.miss = 0.8 * self.miss + 0.2 * (accepted != guess)
            if accepted != guess:
                return k + 1
        return len(window)


def _check_arguments(
    scorer: Scorer, threshold: float, relative: float | None, tau: float | None, batch_size: int
) -> None:
    if not scorer.higher_is_better():
        if tau is None:
            raise ValueError(
                f"with metric {scorer.metric.value!r} (0 = the full model, lower is better) "
                "prune_nodes removes a node when the metric rises by at most tau: pass tau= "
                "(e.g. 0.01), or use metric 'logit_diff' with threshold="
            )
        if relative is not None:
            raise ValueError(f"relative applies to higher-is-better metrics, not to "
                             f"{scorer.metric.value!r}: pass tau= only")  # fmt: skip
        if isinstance(tau, bool) or not isinstance(tau, int | float) or not tau >= 0:
            raise ValueError(f"tau must be a number >= 0, got {tau!r}")
    elif tau is not None:
        raise ValueError(
            f"tau applies to the lower-is-better metrics kl and l2; with {scorer.metric.value!r} "
            "use threshold= (and relative=)"
        )
    for name, value in (("threshold", threshold), ("relative", relative)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise TypeError(
                f"{name} must be a number in [0, 1], got {value!r} ({type(value).__name__})"
            )
        if value is not None and not 0.0 <= value <= 1.0:
            raise ValueError(
                f"{name} must be in [0, 1] (a fraction of the full model), got {value}"
            )
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")


def _start_present(
    scorer: Scorer, start: Circuit | None, positions: bool
) -> tuple[torch.Tensor, bool]:
    """The start circuit as a present mask [P, S] (P = 1, or seq_len position-wise) and its
    Q/K/V setting; ValueError for a circuit of another model, edge-level or partly positional."""
    seq_len = scorer.task.seq_len
    if start is None:
        P = seq_len if positions else 1
        return torch.ones(
            P, scorer.layout.n_senders, device=scorer.device, dtype=scorer.components.dtype
        ), True
    if not isinstance(start, Circuit) or start.level != "node":
        raise ValueError("start must be a node-level Circuit (e.g. from prune_nodes)")
    ours = CircuitConfig.from_model(scorer.model.cfg).model_name
    theirs = start.config.model_name
    if "unknown" not in (ours, theirs) and ours != theirs:
        raise ValueError(f"start circuit is for model {theirs!r}, the scorer's model is {ours!r}")
    listed = start.config.positions
    if listed is not None and not positions:
        raise ValueError("start circuit is position-wise: pass positions=True")
    if listed is not None and listed != tuple(range(seq_len)):
        raise ValueError(f"position-wise start must list every position 0..{seq_len - 1}")
    masks = scorer.masks(start)  # checks the model shape
    assert isinstance(masks, NodeMasks)  # start is node-level (checked above)
    present = masks.present[0].clone()
    if positions:
        present = present.expand(seq_len, -1).clone()
    return present, start.config.qkv


def _result(scorer: Scorer, present: torch.Tensor, qkv: bool, positions: bool) -> Circuit:
    names = scorer.layout.sender_names()
    kept = (present[:, 1:] > 0.5).nonzero().tolist()
    if positions:
        nodes = [f"{names[s + 1]}@{p}" for p, s in kept]
        return Circuit.from_nodes(scorer.model.cfg, nodes, qkv=qkv, positions=range(len(present)))
    return Circuit.from_nodes(scorer.model.cfg, [names[s + 1] for _, s in kept], qkv=qkv)


def prune_nodes(
    scorer: Scorer,
    threshold: float = 0.8,
    relative: float | None = None,
    order: str | NodeOrder = "backward",
    seed: int | None = None,
    include_mlps: bool = True,
    start: Circuit | None = None,
    positions: bool = False,
    batch_size: int = 8,
    progress: bool = True,
    repeat: bool = False,
    tau: float | None = None,
) -> Circuit:
    """Remove heads (and MLPs) one at a time while the circuit keeps its score.

    A candidate is removed for good when the circuit without it scores at least
    ``threshold`` times the full model's score and, if ``relative`` is set, drops at most
    ``relative`` (same units) below the current score. Scores within ``TOLERANCE`` of a
    bound count as meeting it, so float noise cannot flip a tie: ``threshold=1`` keeps exactly
    the nodes whose removal leaves the circuit measurably worse than the full model, and
    ``threshold=0`` removes whatever keeps the score non-negative.

    Parameters
    ----------
    scorer: a ``Scorer``. With ``"logit_diff"``, ``"accuracy"`` or ``"prob_diff"`` the
        bounds are ``threshold`` and ``relative``; with ``"kl"`` or ``"l2"`` (0 = the full
        model) a candidate goes when the metric rises by at most ``tau`` (node-level ACDC;
        ``threshold`` is then not used).
    order: ``"backward"``, ``"forward"``, ``"backward_forward"`` (sweeps until one removes
        nothing: a fixed point) or ``"random"`` (seeded; ``seed=None`` means 0).
    start: node-level circuit to prune further (default: the full model).
    positions: prune (node, position) pairs over every prompt position; each node's positions
        are tried last to first, within the node order above.
    batch_size: most tries evaluated in one batch; 1 runs the plain one-at-a-time loop.
    repeat: repeat the order's sweep until one removes nothing (the paper's loop: a removal
        can make an earlier-kept node removable). A single sweep is path-dependent; the
        repeated one ends at a circuit none of whose nodes can go alone.

    Returns
    -------
    A node-level ``Circuit`` whose metadata records its provenance (``"method": "nodes"``,
    the scorer's settings and the parameters: see :mod:`circuitgraph.circuit.provenance`),
    every removal (``{"node", "step", "sweep", "score"}``, score after the removal) and
    ``"score"``, the result re-measured with ``scorer.score``.

    Examples
    --------
    >>> import circuitgraph as cg
    >>> model = cg.load_model("toy-seq")
    >>> scorer = cg.Scorer(model, cg.make_task("digits", model, n=8))
    >>> circuit = prune_nodes(scorer, threshold=0.8, progress=False)
    >>> circuit.metadata["score"] >= 0.8, len(circuit.heads()) < 12
    (True, True)
    """
    began = time.perf_counter()
    _check_arguments(scorer, threshold, relative, tau, batch_size)
    check_memory(scorer.memory, scorer.max_memory, "nodes")
    if positions:
        scorer.check_aligned()  # before any work: positions must mean the same in every prompt
    order = parse_enum(NodeOrder, order, "order")
    seed = 0 if seed is None and order is NodeOrder.RANDOM else seed
    present, qkv = _start_present(scorer, start, positions)
    start_size = int(present[:, 1:].sum())
    reference = 1.0
    if scorer.metric is Metric.ACCURACY:
        reference = scorer.score(full_circuit(scorer.model.cfg, qkv=False))
    search = Search(
        scorer,
        present.to(scorer.fixed.device, copy=True),
        floor=threshold * reference,
        max_drop=tau if tau is not None else None if relative is None else relative * reference,
        batch_size=batch_size,
    )
    start_score = search.score
    n_positions = scorer.task.seq_len if positions else None
    with tqdm(total=0, desc=f"prune_nodes ({order.value})", disable=not progress) as bar:
        search.bar = bar
        for sweep in sweeps(order, scorer.layout, include_mlps, n_positions, seed or 0, repeat):
            if not search.sweep(sweep):
                break
    running_score = search.score  # before any undo
    # kl and l2 bound each removal (tau), not the circuit: nothing to meet
    bound = min(search.floor, start_score) if scorer.higher_is_better() else -math.inf
    result, score, undone = _meet_threshold(scorer, search, bound, qkv, positions)
    if not undone and abs(score - running_score) > CHECK_TOLERANCE:
        warnings.warn(
            f"re-measured score {score:.6f} differs from the running score {search.score:.6f}",
            RuntimeWarning,
            stacklevel=2,
        )
    result.metadata = {
        **provenance("nodes", scorer, _parameters(locals()), start),
        "reference": reference,
        "start_score": start_score,
        "start_size": start_size,
        "removed": search.removed,
        "kept": search.kept,
        "sweeps": search.sweeps,
        "tries": search.tries,
        "evaluations": search.evaluations,
        "batches": search.batches,
        "layer_evaluations": search.layer_evaluations(),
        "seconds": time.perf_counter() - began,
        "running_score": running_score,
        "undone": undone,
        "score": score,
    }
    return result


def _meet_threshold(
    scorer: Scorer, search: Search, bound: float, qkv: bool, positions: bool
) -> tuple[Circuit, float, list[dict[str, Any]]]:
    """The result re-measured from scratch, with the last removals undone while it scores
    below ``bound``: the search counts scores within ``TOLERANCE`` of the threshold as meeting
    it (ties), but the circuit returned meets the threshold as re-measured. ``bound`` is the
    threshold, or the start circuit's own score where that is lower (float noise of the full
    circuit at ``threshold=1``). Returns the circuit, its score and the undone removals."""
    undone: list[dict[str, Any]] = []
    while True:
        result = _result(scorer, search.present.cpu(), qkv, positions)
        score = scorer.score(result)
        if score >= bound or not search.removed:
            return result, score, undone
        candidate = search.removed_candidates.pop()
        undone.append(search.removed.pop())
        search.present[candidate.pos, candidate.sender] = 1


def _parameters(arguments: dict[str, Any]) -> dict[str, Any]:
    names = ("threshold", "relative", "order", "seed", "include_mlps", "positions", "batch_size")
    return {name: arguments[name] for name in (*names, "repeat", "tau")}
