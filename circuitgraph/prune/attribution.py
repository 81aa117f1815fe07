"""Attribution patching: estimate every edge's effect from gradients in a few passes.

Removing edge (s -> r) changes r's input by s's live - fixed difference (delta_s). To first
order the metric then moves by delta_s . G_r, where G_r is the metric's gradient at r's input.
Both come from one forward and one backward pass over the circuit (the clean and corrupted
runs are already cached by the scorer):

- ``"eap"``: G_r at the full circuit (Syed et al.'s edge attribution patching).
- ``"eap_ig"``: G_r averaged over ``steps`` circuits interpolated between the fully ablated
  circuit and the full one (every edge carries alpha * live + (1 - alpha) * fixed), the
  integrated-gradients refinement of Hanna et al. (who interpolate the input embeddings; we
  interpolate the edges, which is the same path for the embedding edges). delta_s is always
  taken from the full circuit.

Both are exact for a metric linear in the receiver's input. Scores rank edges; they are not a
verdict: compare with :func:`prune_edges` using :func:`compare_with_pruned`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.circuit.provenance import provenance
from circuitgraph.circuit.setops import overlap_table
from circuitgraph.options import Direction, Estimator, parse_enum, values
from circuitgraph.prune.schedule import Edge, edge_schedule
from circuitgraph.scoring.layout import EdgeMasks
from circuitgraph.scoring.masks import check_same_model, edge_masks
from circuitgraph.scoring.patching import at_last, edge_forward

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer

METHODS = values(Estimator)


class EdgeScores(dict):
    """{(sender, receiver): score} with the ``metadata`` (provenance: ``"method":
    "attribution"``, see :mod:`circuitgraph.circuit.provenance`) that ``Circuit.top_k`` and
    ``Circuit.threshold`` give the circuits they select."""

    metadata: dict[str, Any]

    def __init__(self, scores: dict[Edge, float], metadata: dict[str, Any]) -> None:
        super().__init__(scores)
        self.metadata = metadata


def _scaled(masks: EdgeMasks, alpha: float, denoising: bool) -> EdgeMasks:
    scaled = EdgeMasks(
        [m * alpha for m in masks.attention], [m * alpha for m in masks.mlp], masks.logits * alpha
    )
    return scaled.complement() if denoising else scaled


def _input_gradients(scorer: Scorer, masks: EdgeMasks, alphas: list[float]) -> tuple[dict, Tensor]:
    """Mean receiver-input gradients over ``alphas`` and the full circuit's delta [n,p,S,d]."""
    comp, n = scorer.components, len(scorer.task)
    p, H, d = scorer.task.seq_len, comp.n_heads, comp.d_model
    denoising = scorer.direction is Direction.DENOISING
    shapes: dict[str, tuple[int, ...]] = {
        f"attention.{L}": (1, n, p, 3 * H, d) for L in range(comp.n_layers)
    }
    shapes |= {f"mlp.{L}": (1, n, p, d) for L in range(comp.n_layers)}
    shapes["logits"] = (1, n, d)
    device = comp.device
    # gradients are summed in at least float32 (half-precision models included)
    total = {key: torch.zeros(shape, device=device) for key, shape in shapes.items()}
    for alpha in alphas:
        shifts = {
            key: torch.zeros(shape, device=device, dtype=comp.dtype, requires_grad=True)
            for key, shape in shapes.items()
        }
        engine = _scaled(masks, alpha, denoising)
        final, _ = edge_forward(
            comp, scorer.run_tokens, scorer.fixed, engine, shifts, last=scorer.last
        )
        value = scorer.differentiable_metric(final)[0]
        grads = torch.autograd.grad(value, list(shifts.values()), allow_unused=True)
        for key, grad in zip(shifts, grads, strict=True):
            if grad is not None:
                total[key] += grad / len(alphas)
    with torch.no_grad():
        engine = _scaled(masks, 1.0, denoising)
        _, delta = edge_forward(comp, scorer.run_tokens, scorer.fixed, engine, last=scorer.last)
    return total, delta[0]


def attribute_edges(
    scorer: Scorer,
    method: str | Estimator = "eap",
    steps: int = 5,
    start: Circuit | None = None,
    qkv: bool = True,
) -> EdgeScores:
    """Estimated worsening of the metric when each edge of ``start`` is removed alone.

    Returns {(sender, receiver): score} for every sender -> receiver edge of ``start``
    (default: the full graph with ``qkv``), higher = more important: a dict whose
    ``metadata`` (the provenance, with ``method`` recorded as ``parameters["estimator"]``)
    the circuits of ``Circuit.top_k(scores, k)`` and ``Circuit.threshold`` carry.
    """
    began = time.perf_counter()
    estimator = parse_enum(Estimator, method, "attribution method")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    circuit = full_circuit(scorer.model.cfg, qkv=qkv) if start is None else start
    check_same_model(circuit, scorer.model.cfg)
    masks = edge_masks(
        circuit, scorer.layout, scorer.task.seq_len, scorer.device, scorer.components.dtype
    )
    alphas = [1.0] if estimator is Estimator.EAP else [(i + 0.5) / steps for i in range(steps)]
    with torch.enable_grad():
        grads, delta = _input_gradients(scorer, masks, alphas)
    # Removing an edge lowers its mask (noising) or raises it (denoising) by one.
    direction = -1.0 if scorer.direction is Direction.NOISING else 1.0
    sign = -direction if scorer.higher_is_better() else direction
    scores: dict[Edge, float] = {}
    for step in edge_schedule(circuit, scorer.layout):
        receiver = step.receiver
        pos = slice(None) if receiver.pos is None else receiver.pos
        for sender, index in zip(step.senders, step.sender_indices, strict=True):
            if receiver.kind == "logits":  # the metric reads one position per row
                # (position-wise circuits: the last, and check_aligned made it every row's)
                read = receiver.pos in (None, scorer.task.seq_len - 1)
                at = at_last(delta[:, :, index], scorer.last, 0)  # [n, d]
                value = (at * grads["logits"][0]).sum() if read else 0.0
            elif receiver.kind == "mlp":
                grad = grads[f"mlp.{receiver.layer}"][0]  # [n, p, d]
                value = (delta[:, pos, index] * grad[:, pos]).sum()
            else:
                grad = grads[f"attention.{receiver.layer}"][0][:, :, list(receiver.slots)]
                value = (delta[:, pos, index, None] * grad[:, pos]).sum()
            scores[(sender, receiver.name)] = sign * float(value)
    parameters = {"estimator": estimator, "steps": steps, "qkv": circuit.config.qkv}
    metadata = provenance("attribution", scorer, parameters, start)
    return EdgeScores(scores, metadata | {"seconds": time.perf_counter() - began})


def compare_with_pruned(attributed: Circuit, pruned: Circuit):
    """Overlap (sizes, intersection, Jaccard) of an attribution-selected and a pruned circuit,
    on nodes and on edges (a pandas DataFrame)."""
    return overlap_table({"attribution": attributed, "pruned": pruned}, on="both")
