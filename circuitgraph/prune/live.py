"""Which edges a masked forward pass actually reads: those from senders that a path of live
edges connects to ``embed`` (a node cut off from the input contributes its fixed value); and
which leading positions no circuit can change."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from circuitgraph.options import Ablation
from circuitgraph.scoring.layout import EdgeMasks, Layout

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer


def reachable(
    masks: EdgeMasks, layout: Layout, first: int = 0, known: Tensor | None = None
) -> Tensor:
    """Senders with a path from ``embed`` along live edges: bool [V, P, S].

    With ``first`` > 0, ``known`` [1 or V, P, S] holds the answer for the senders before
    layer ``first`` (masks that differ only from that layer on share it)."""
    V, P, S = masks.logits.shape
    H = layout.n_heads
    reach = torch.zeros(V, P, S, dtype=torch.bool, device=masks.logits.device)
    reach[:, :, 0] = True
    if first:
        assert known is not None, "first > 0 needs the known senders"
        before = layout.senders_before_attention(first)
        reach[:, :, :before] = known[:, :, :before]
    for layer in range(first, layout.n_layers):
        start = layout.senders_before_attention(layer)
        slots = (masks.attention[layer].bool() & reach[:, :, :start, None]).any(dim=2)  # [V,P,3H]
        reach[:, :, start : start + H] = slots.view(V, P, 3, H).any(dim=2)
        before_mlp = layout.senders_before_mlp(layer)
        reach[:, :, start + H] = (masks.mlp[layer].bool() & reach[:, :, :before_mlp]).any(dim=-1)
    return reach


def effective(
    masks: EdgeMasks,
    reach: Tensor,
    denoising: bool,
    first: int = 0,
    known: EdgeMasks | None = None,
) -> EdgeMasks:
    """Masks the forward pass reads: edges from unreachable senders are absent; complemented
    for denoising (where a circuit edge carries the clean value). With ``first`` > 0, the
    layers before ``first`` are ``known``'s (expanded to V variants, not copied)."""
    live = reach.to(masks.logits.dtype)
    result = EdgeMasks(
        [m * live[:, :, : m.shape[2], None] for m in masks.attention[first:]],
        [m * live[:, :, : m.shape[2]] for m in masks.mlp[first:]],
        masks.logits * live,
    )
    if denoising:
        result = result.complement()
    if not first:
        return result
    assert known is not None, "first > 0 needs the known masks"
    V = masks.logits.shape[0]
    return EdgeMasks(
        [m.expand(V, *m.shape[1:]) for m in known.attention[:first]] + result.attention,
        [m.expand(V, *m.shape[1:]) for m in known.mlp[:first]] + result.mlp,
        result.logits,
    )


def unchanged_positions(scorer: Scorer) -> int:
    """Leading positions no circuit can change: with resample ablation the fixed values are
    the other run's own activations, so before the first position where any clean and
    corrupted prompt differ both runs hold the same values (causal attention). 0 otherwise,
    and 0 with bidirectional attention (a later difference reaches every position)."""
    if scorer.ablation is not Ablation.RESAMPLE or not scorer.components.causal:
        return 0
    clean, corrupted = scorer.task.clean_tokens, scorer.task.corrupted_tokens  # [n, p]
    differs = (clean != corrupted).any(dim=0)  # [p]
    return int(differs.int().argmax()) if differs.any() else clean.shape[1]
