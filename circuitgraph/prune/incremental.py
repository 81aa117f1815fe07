"""Fast, exact re-scoring of a circuit after changing the edges into one receiver.

Edge pruning changes the edges into one receiver at a time. Nothing upstream of that receiver
changes, so every sender's cached output still serves there; downstream, only the nodes whose
inputs actually change (a changed mask entry, or a live edge from a node that changed) are
recomputed, one head at a time where possible. Several candidate circuits (variants) are
evaluated in one batch. The arithmetic is that of :func:`circuitgraph.patching.edge_forward`
restricted to what changes, so decisions match the reference implementation.

Shapes: V variants, n prompts, p positions, P mask positions (1 or p), S senders, d d_model.
"""

from __future__ import annotations

import torch
from torch import Tensor

from circuitgraph.layout import EdgeMasks, Layout
from circuitgraph.patching import _expand_positions, edge_forward, fixed_prefix_sums
from circuitgraph.prune.schedule import Receiver


def reachable(masks: EdgeMasks, layout: Layout) -> Tensor:
    """Senders with a path from ``embed`` along live edges: bool [V, P, S]."""
    V, P, S = masks.logits.shape
    H = layout.n_heads
    reach = torch.zeros(V, P, S, dtype=torch.bool)
    reach[:, :, 0] = True
    for layer in range(layout.n_layers):
        start = layout.senders_before_attention(layer)
        slots = (masks.attention[layer].bool() & reach[:, :, :start, None]).any(dim=2)  # [V,P,3H]
        reach[:, :, start : start + H] = slots.view(V, P, 3, H).any(dim=2)
        reach[:, :, start + H] = (masks.mlp[layer].bool() & reach[:, :, : start + H]).any(dim=-1)
    return reach


def effective(masks: EdgeMasks, reach: Tensor, denoising: bool) -> EdgeMasks:
    """Masks the forward pass reads: edges from unreachable senders are absent; complemented
    for denoising (where a circuit edge carries the clean value)."""
    live = reach.float()
    result = EdgeMasks(
        [m * live[:, :, : m.shape[2], None] for m in masks.attention],
        [m * live[:, :, : m.shape[2]] for m in masks.mlp],
        masks.logits * live,
    )
    return result.complement() if denoising else result


class IncrementalEvaluator:
    """Holds the current circuit's masks and activations; scores variants of it quickly."""

    def __init__(self, scorer, masks: EdgeMasks) -> None:
        from circuitgraph.scorer import Direction

        self.scorer = scorer
        self.comp, self.layout = scorer.components, scorer.layout
        self.denoising = scorer.direction is Direction.DENOISING
        n, p = scorer.run_tokens.shape
        self.n, self.p = n, p
        self.fixed = scorer.fixed.expand(n, p, self.layout.n_senders, self.comp.d_model)
        self.fixed_prefix, self.bias_prefix = fixed_prefix_sums(self.comp, self.fixed, n)
        self.masks = masks
        self.engine_masks = effective(masks, reachable(masks, self.layout), self.denoising)
        with torch.no_grad():
            final, delta = edge_forward(self.comp, scorer.run_tokens, self.fixed, self.engine_masks)
        self.final, self.delta = final[0], delta[0]  # [n, d], [n, p, S, d]
        self.score = float(scorer.metric_from_final(final)[0])
        self.component_evaluations = 0  # heads and MLPs recomputed, for benchmarks

    def _mix(
        self, mask: Tensor, n_senders: int, bias: Tensor, changed: list[int], diff: Tensor | None
    ) -> Tensor:
        """Receiver inputs [V, n, p, (R), d] for mask [V, P, n_senders, (R)]."""
        mask = _expand_positions(mask, self.p)
        base = self.fixed_prefix[:, :, n_senders] + bias  # [n, p, d]
        cached = self.delta[:, :, :n_senders]  # [n, p, s, d]
        grouped = mask.dim() == 4
        pattern = "npsd,vpsr->vnprd" if grouped else "npsd,vps->vnpd"
        inputs = torch.einsum(pattern, cached, mask)
        inside = [i for i, s in enumerate(changed) if s < n_senders]
        if inside:
            index = [changed[i] for i in inside]
            correction = "vnpsd,vpsr->vnprd" if grouped else "vnpsd,vps->vnpd"
            inputs = inputs + torch.einsum(correction, diff[:, :, :, inside], mask[:, :, index])
        return inputs + (base[None, :, :, None] if grouped else base[None])

    @torch.no_grad()
    def evaluate(self, receiver: Receiver, variants: EdgeMasks) -> tuple[Tensor, dict]:
        """Scores [V] of ``variants`` (which differ from the current masks only at edges into
        ``receiver``), plus what :meth:`commit` needs to adopt one of them."""
        layout, comp = self.layout, self.comp
        V, H, d = variants.n_variants, layout.n_heads, comp.d_model
        reach = reachable(variants, layout)
        engine = effective(variants, reach, self.denoising)
        changed: list[int] = []  # senders whose output differs in some variant
        diff: Tensor | None = None  # [V, n, p, len(changed), d] new - cached delta

        def record(indices: list[int], new_delta: Tensor) -> None:
            nonlocal diff
            step = new_delta - self.delta[None, :, :, indices]
            changed.extend(indices)
            diff = step if diff is None else torch.cat([diff, step], dim=3)

        def affected(new: Tensor, old: Tensor) -> Tensor:
            """Receiver slots whose inputs change, bool [R], for masks [V or 1, P, s, R]:
            a mask entry differs, or a live edge comes from a sender whose output changed."""
            slots = (new != old).flatten(0, 2).any(dim=0)
            reads = [s for s in changed if s < new.shape[2]]
            if reads:
                slots |= (new[:, :, reads] != 0).flatten(0, 2).any(dim=0)
            return slots

        first = layout.n_layers if receiver.kind == "logits" else receiver.layer
        for layer in range(first, layout.n_layers):
            start = layout.senders_before_attention(layer)
            if not (receiver.kind == "mlp" and layer == receiver.layer):
                new, old = engine.attention[layer], self.engine_masks.attention[layer]
                slots = affected(new, old).view(3, H).any(dim=0)
                heads = slots.nonzero().flatten().tolist()
                if heads:
                    columns = heads + [H + h for h in heads] + [2 * H + h for h in heads]
                    inputs = self._mix(
                        new[..., columns], start, self.bias_prefix[layer], changed, diff
                    )  # [V, n, p, 3k, d]
                    k = len(heads)
                    inputs = inputs.reshape(V * self.n, self.p, 3 * k, d)
                    z = comp.attention(
                        layer,
                        inputs[:, :, :k],
                        inputs[:, :, k : 2 * k],
                        inputs[:, :, 2 * k :],
                        heads=heads,
                    )
                    out = comp.head_outputs(layer, z, heads).reshape(V, self.n, self.p, k, d)
                    indices = [start + h for h in heads]
                    record(indices, out - self.fixed[None, :, :, indices])
                    self.component_evaluations += k * V
            if receiver.kind != "logits":
                new, old = engine.mlp[layer], self.engine_masks.mlp[layer]
                if affected(new[..., None], old[..., None]).any():
                    mlp_in = self._mix(new, start + H, self.bias_prefix[layer + 1], changed, diff)
                    out = comp.mlp(layer, mlp_in.reshape(V * self.n, self.p, d))
                    index = layout.mlp_index(layer)
                    new_delta = (
                        out.reshape(V, self.n, self.p, 1, d) - self.fixed[None, :, :, [index]]
                    )
                    record([index], new_delta)
                    self.component_evaluations += V
        final = self._final(engine.logits, changed, diff)
        scores = self.scorer.metric_from_final(final)
        return scores, {
            "masks": variants,
            "engine": engine,
            "changed": changed,
            "diff": diff,
            "final": final,
        }

    def _final(self, logits_mask: Tensor, changed: list[int], diff: Tensor | None) -> Tensor:
        """Final residual at the last position [V, n, d]."""
        mask = _expand_positions(logits_mask, self.p)[:, -1]  # [V, S]
        S = mask.shape[1]
        base = self.fixed_prefix[:, -1, S] + self.bias_prefix[-1]  # [n, d]
        final = base[None] + torch.einsum("nsd,vs->vnd", self.delta[:, -1], mask)
        if changed:
            final = final + torch.einsum("vnsd,vs->vnd", diff[:, :, -1], mask[:, changed])
        return final

    def commit(self, state: dict, variant: int, score: float) -> None:
        """Adopt variant ``variant`` of an :meth:`evaluate` call as the current circuit."""
        pick = slice(variant, variant + 1)
        for name in ("masks", "engine"):
            source = state[name]
            setattr(
                self,
                "masks" if name == "masks" else "engine_masks",
                EdgeMasks(
                    [m[pick].clone() for m in source.attention],
                    [m[pick].clone() for m in source.mlp],
                    source.logits[pick].clone(),
                ),
            )
        if state["changed"]:
            self.delta[:, :, state["changed"]] += state["diff"][variant]
        self.final = state["final"][variant]
        self.score = score
