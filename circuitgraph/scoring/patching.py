"""The masked forward pass that runs any circuit, and the activations it patches in.

Every circuit is evaluated the same way: each receiver's input is the sum, over the senders
before it, of the sender's output *from this run* where the edge is live and of a *fixed*
value where it is not, plus the constant attention output biases. For noising (the default)
the fixed values are the ablated activations (mean, resample or zero) and the run starts from
the clean prompt; for denoising the masks are complemented, the run starts from the corrupted
prompt and the fixed values are the clean run's activations.

Shapes: V variants (circuits evaluated in one batch), n prompts, p positions, S senders,
d = d_model. Fixed values are [n or 1, p, S, d].

Prompts of different lengths are right-padded: causal attention keeps padding out of every
real position, and the metric reads each prompt's own last real position (``last`` [n], the
index of that position; None means the last position of the tensor for every prompt).
"""

from __future__ import annotations

import torch
from torch import Tensor

from circuitgraph.scoring.components import ComponentModel
from circuitgraph.scoring.layout import EdgeMasks, NodeMasks


def expand_positions(mask: Tensor, seq_len: int) -> Tensor:
    """[V, 1 | p, ...] -> [V, p, ...] (explicit, so no broadcast happens silently)."""
    if mask.shape[1] not in (1, seq_len):
        raise ValueError(f"mask has {mask.shape[1]} positions, prompts have {seq_len}")
    return mask.expand(mask.shape[0], seq_len, *mask.shape[2:])


def at_last(x: Tensor, last: Tensor | None, prompt_dim: int) -> Tensor:
    """``x`` at each prompt's last position: the position axis (``prompt_dim + 1``) goes.

    x [..., n, p, ...] with the prompt axis at ``prompt_dim``; last [n] or None (position -1).
    """
    position_dim = prompt_dim + 1
    if last is None:
        return x.select(position_dim, -1)
    view = [1] * x.dim()
    view[prompt_dim] = -1
    shape = list(x.shape)
    shape[position_dim] = 1
    index = last.view(view).expand(shape)
    return x.gather(position_dim, index).squeeze(position_dim)


@torch.no_grad()
def sender_outputs(
    comp: ComponentModel, tokens: Tensor, last: Tensor | None = None, out: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Run the full model; return every sender's output [n, p, S, d] and final resid [n, d].

    The final residual is read at each prompt's last position (what the metrics use). The
    outputs are written into ``out`` [n, p, S, d] when given (e.g. a chunk of a larger cache).
    """
    layout = comp.layout
    n, p = tokens.shape
    outputs = out
    if outputs is None:
        outputs = torch.empty(
            n, p, layout.n_senders, comp.d_model, device=comp.device, dtype=comp.dtype
        )
    resid = comp.embed(tokens)  # [n, p, d]
    outputs[:, :, 0] = resid
    for layer in range(comp.n_layers):
        start = layout.senders_before_attention(layer)
        heads = comp.head_outputs(layer, comp.attention(layer, resid, None, None))  # [n,p,H,d]
        outputs[:, :, start : start + comp.n_heads] = heads
        before_attention = resid
        resid = resid + heads.sum(dim=2) + comp.b_O[layer]
        mlp_out = comp.mlp(layer, before_attention if comp.parallel else resid)
        outputs[:, :, layout.mlp_index(layer)] = mlp_out
        resid = resid + mlp_out
    return outputs, at_last(resid, last, 0)


def node_stage(
    comp: ComponentModel,
    stage: int,
    resid: Tensor,
    live: Tensor,
    fixed: Tensor,
    before_attention: Tensor | None = None,
) -> Tensor:
    """One stage of a node-level circuit: attention of layer L (stage 2L) or MLP L (2L + 1).

    resid [V, n, p, d] is the residual before the stage; live [V, 1, p, S, 1] is 1 where a
    sender outputs its value from this run and 0 where it outputs fixed [n, p, S, d]. With
    parallel attention and MLP, the MLP stage reads ``before_attention`` [V, n, p, d], the
    residual before stage 2L.
    """
    layout = comp.layout
    layer = stage // 2
    V, n, p, d = resid.shape
    flat = resid.reshape(V * n, p, d)
    if stage % 2:
        index = layout.mlp_index(layer)
        if comp.parallel:
            if before_attention is None:
                raise ValueError("parallel blocks: the MLP stage needs the pre-attention residual")
            flat = before_attention.reshape(V * n, p, d)
        out, keep = comp.mlp(layer, flat).reshape(V, n, p, d), live[:, :, :, index]
        return resid + (keep * out + (1 - keep) * fixed[None, :, :, index])
    first = layout.senders_before_attention(layer)
    index = slice(first, first + comp.n_heads)
    heads = comp.head_outputs(layer, comp.attention(layer, flat, None, None))
    keep = live[:, :, :, index]
    heads = keep * heads.reshape(V, n, p, comp.n_heads, d) + (1 - keep) * fixed[None, :, :, index]
    return resid + heads.sum(dim=3) + comp.b_O[layer]


def live_senders(masks: NodeMasks, seq_len: int) -> Tensor:
    """present [V, P, S] -> live [V, 1, p, S, 1], the layout :func:`node_stage` reads."""
    return expand_positions(masks.present, seq_len)[:, None, :, :, None]


@torch.no_grad()
def run_node_masks(
    comp: ComponentModel,
    tokens: Tensor,
    fixed: Tensor,
    masks: NodeMasks,
    last: Tensor | None = None,
) -> Tensor:
    """Node-level circuit forward; returns the final residual at the last position [V, n, d].

    A sender's output is its live value where present[v, pos, s] == 1, else fixed[..., s, :].
    """
    n, p = tokens.shape
    fixed = fixed.expand(n, p, *fixed.shape[2:])
    live = live_senders(masks, p)
    keep = live[:, :, :, 0]  # [V, 1, p, 1]
    resid = keep * comp.embed(tokens)[None] + (1 - keep) * fixed[None, :, :, 0]  # [V, n, p, d]
    before_attention = resid
    for stage in range(2 * comp.n_layers):
        if stage % 2 == 0:
            before_attention = resid
        resid = node_stage(comp, stage, resid, live, fixed, before_attention)
    return at_last(resid, last, 1)


def fixed_prefix_sums(comp: ComponentModel, fixed: Tensor, n: int) -> tuple[Tensor, Tensor]:
    """Cumulative sums that give every receiver's all-fixed input in O(1).

    Returns (fixed_prefix [n, p, S+1, d], bias_prefix [L+1, d]): the input of a receiver that
    reads the first k senders, with every edge absent, is fixed_prefix[:, :, k] + the
    attention biases of the layers before it.
    """
    _, p, S, d = fixed.shape
    fixed = fixed.expand(n, p, S, d)
    zeros = torch.zeros(n, p, 1, d, device=fixed.device, dtype=fixed.dtype)
    fixed_prefix = torch.cat([zeros, fixed.cumsum(dim=2)], dim=2)
    bias_prefix = torch.cat([torch.zeros_like(comp.b_O[:1]), comp.b_O.cumsum(dim=0)])
    return fixed_prefix, bias_prefix


def edge_forward(
    comp: ComponentModel,
    tokens: Tensor,
    fixed: Tensor,
    masks: EdgeMasks,
    input_shifts: dict[str, Tensor] | None = None,
    last: Tensor | None = None,
) -> tuple[Tensor, Tensor]:
    """Edge-level circuit forward.

    Receiver input = sum_s live_s * m[s, r] + fixed_s * (1 - m[s, r]) + attention biases,
    computed as (sum_s fixed_s + biases) + sum_s m[s, r] * (live_s - fixed_s).
    Returns the final residual at the last position [V, n, d] and every sender's
    live - fixed difference [V, n, p, S, d]. Differentiable in the masks. ``input_shifts``
    (zeros that require grad, keys ``attention.L`` [V, n, p, 3H, d], ``mlp.L`` [V, n, p, d]
    and ``logits`` [V, n, d]) are added to the receiver inputs, so their gradients are the
    gradients at each receiver's input (attribution patching).
    """
    shifts = input_shifts or {}
    layout = comp.layout
    n, p = tokens.shape
    V, H, S, d = masks.n_variants, comp.n_heads, layout.n_senders, comp.d_model
    fixed = fixed.expand(n, p, S, d)
    fixed_prefix, bias_prefix = fixed_prefix_sums(comp, fixed, n)
    delta = torch.zeros(V, n, p, S, d, device=fixed.device, dtype=fixed.dtype)  # live - fixed
    delta[:, :, :, 0] = comp.embed(tokens) - fixed[:, :, 0]

    def receiver_inputs(mask: Tensor, n_senders: int, bias: Tensor) -> Tensor:
        """mask [V, p, n_senders, (R)] -> inputs [V, n, p, (R), d]."""
        base = fixed_prefix[:, :, n_senders] + bias  # [n, p, d]
        live = delta[:, :, :, :n_senders]  # [V, n, p, s, d]
        if torch.is_grad_enabled():  # delta is written in place below: autograd needs a copy
            live = live.clone()
        if mask.dim() == 4:
            mixed = torch.einsum("vnpsd,vpsr->vnprd", live, mask)
            return base[None, :, :, None] + mixed
        return base[None] + torch.einsum("vnpsd,vps->vnpd", live, mask)

    for layer in range(comp.n_layers):
        start = layout.senders_before_attention(layer)
        attn_mask = expand_positions(masks.attention[layer], p)
        inputs = receiver_inputs(attn_mask, start, bias_prefix[layer])  # [V, n, p, 3H, d]
        if f"attention.{layer}" in shifts:
            inputs = inputs + shifts[f"attention.{layer}"]
        inputs = inputs.reshape(V * n, p, 3 * H, d)
        z = comp.attention(layer, inputs[:, :, :H], inputs[:, :, H : 2 * H], inputs[:, :, 2 * H :])
        heads = comp.head_outputs(layer, z).reshape(V, n, p, H, d)
        delta[:, :, :, start : start + H] = heads - fixed[None, :, :, start : start + H]
        mlp_mask = expand_positions(masks.mlp[layer], p)
        n_senders, bias = (
            layout.senders_before_mlp(layer),
            bias_prefix[layout.mlp_bias_index(layer)],
        )
        mlp_in = receiver_inputs(mlp_mask, n_senders, bias)  # [V, n, p, d]
        if f"mlp.{layer}" in shifts:
            mlp_in = mlp_in + shifts[f"mlp.{layer}"]
        mlp_out = comp.mlp(layer, mlp_in.reshape(V * n, p, d)).reshape(V, n, p, d)
        delta[:, :, :, start + H] = mlp_out - fixed[None, :, :, start + H]
    logits_mask = expand_positions(masks.logits, p)[:, -1]  # [V, S]
    base = at_last(fixed_prefix[:, :, S], last, 0) + bias_prefix[-1]  # [n, d]
    final = base[None] + torch.einsum("vnsd,vs->vnd", at_last(delta, last, 1), logits_mask)
    if "logits" in shifts:
        final = final + shifts["logits"]
    return final, delta


def run_edge_masks(
    comp: ComponentModel,
    tokens: Tensor,
    fixed: Tensor,
    masks: EdgeMasks,
    last: Tensor | None = None,
) -> Tensor:
    """Edge-level circuit forward; the final residual at the last position [V, n, d]."""
    with torch.no_grad():
        return edge_forward(comp, tokens, fixed, masks, last=last)[0]
