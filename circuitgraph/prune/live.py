"""Which edges a masked forward pass actually reads: those from senders that a path of live
edges connects to ``embed`` (a node cut off from the input contributes its fixed value)."""

from __future__ import annotations

import torch
from torch import Tensor

from circuitgraph.layout import EdgeMasks, Layout


def reachable(masks: EdgeMasks, layout: Layout) -> Tensor:
    """Senders with a path from ``embed`` along live edges: bool [V, P, S]."""
    V, P, S = masks.logits.shape
    H = layout.n_heads
    reach = torch.zeros(V, P, S, dtype=torch.bool, device=masks.logits.device)
    reach[:, :, 0] = True
    for layer in range(layout.n_layers):
        start = layout.senders_before_attention(layer)
        slots = (masks.attention[layer].bool() & reach[:, :, :start, None]).any(dim=2)  # [V,P,3H]
        reach[:, :, start : start + H] = slots.view(V, P, 3, H).any(dim=2)
        before_mlp = layout.senders_before_mlp(layer)
        reach[:, :, start + H] = (masks.mlp[layer].bool() & reach[:, :, :before_mlp]).any(dim=-1)
    return reach


def effective(masks: EdgeMasks, reach: Tensor, denoising: bool) -> EdgeMasks:
    """Masks the forward pass reads: edges from unreachable senders are absent; complemented
    for denoising (where a circuit edge carries the clean value)."""
    live = reach.to(masks.logits.dtype)
    result = EdgeMasks(
        [m * live[:, :, : m.shape[2], None] for m in masks.attention],
        [m * live[:, :, : m.shape[2]] for m in masks.mlp],
        masks.logits * live,
    )
    return result.complement() if denoising else result
