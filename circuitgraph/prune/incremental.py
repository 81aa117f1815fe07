"""Fast, exact re-scoring of a circuit after changing the edges into one receiver.

Edge pruning changes the edges into one receiver at a time. Nothing upstream of that receiver
changes, so every sender's cached output still serves there; downstream, only the nodes whose
inputs actually change (a changed mask entry, or a live edge from a node that changed) and
that still have a live path to the logits are recomputed, one head at a time where possible,
and only at the last position when that is all the metric can see of them (see
``_what_matters``). A variant whose logits read nothing that changed keeps the current score
without being unembedded. Several candidate circuits (variants) are evaluated in one batch.
The arithmetic is that of :func:`circuitgraph.patching.edge_forward` restricted to what
changes, so decisions match the reference implementation.

Shapes: V variants, n prompts, p positions, P mask positions (1 or p), S senders, d d_model.
"""

from __future__ import annotations

import torch
from torch import Tensor

from circuitgraph.layout import EdgeMasks, Layout
from circuitgraph.patching import at_last, edge_forward, expand_positions, fixed_prefix_sums
from circuitgraph.prune.schedule import Receiver


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
        self.last = scorer.last  # each prompt's last real position [n], or None (all at -1)
        with torch.no_grad():
            final, delta = edge_forward(
                self.comp, scorer.run_tokens, self.fixed, self.engine_masks, last=self.last
            )
        self.final, self.delta = final[0], delta[0]  # [n, d], [n, p, S, d]
        self.score = float(scorer.metric_from_final(final)[0])
        self.component_evaluations = 0  # heads and MLPs recomputed, for benchmarks

    def _mix(
        self,
        mask: Tensor,
        n_senders: int,
        bias: Tensor,
        changed: list[int],
        diff: Tensor | None,
        last_only: bool = False,
    ) -> Tensor:
        """Receiver inputs [V, n, p, (R), d] for mask [V, P, n_senders, (R)] (p = 1 with
        ``last_only``: the last position alone)."""
        mask = expand_positions(mask, self.p)
        base = self.fixed_prefix[:, :, n_senders] + bias  # [n, p, d]
        cached = self.delta[:, :, :n_senders]  # [n, p, s, d]
        if last_only:
            mask, base, cached = mask[:, -1:], base[:, -1:], cached[:, -1:]
            diff = None if diff is None else diff[:, :, -1:]
        grouped = mask.dim() == 4
        pattern = "npsd,vpsr->vnprd" if grouped else "npsd,vps->vnpd"
        inputs = torch.einsum(pattern, cached, mask)
        inside = [i for i, s in enumerate(changed) if s < n_senders]
        if inside:
            index = [changed[i] for i in inside]
            correction = "vnpsd,vpsr->vnprd" if grouped else "vnpsd,vps->vnpd"
            inputs = inputs + torch.einsum(correction, diff[:, :, :, inside], mask[:, :, index])
        return inputs + (base[None, :, :, None] if grouped else base[None])

    def _what_matters(self, engine: EdgeMasks) -> tuple[Tensor, Tensor]:
        """Which senders' outputs can reach the metric: (anywhere, before the last position),
        bool [S] each, over every variant.

        A sender matters if a live edge leads from it to ``logits`` (directly or through
        senders that matter); the others cannot move the score, so they are not recomputed.
        The metric reads the last position, where a head's query and an MLP read only that
        position but keys and values are read at every position. So a sender matters at
        earlier positions only if it feeds the key/value input of a head that matters, or
        the query or MLP input of a sender that matters there.
        """
        layout, H = self.layout, self.layout.n_heads
        matters = (engine.logits != 0).flatten(0, 1).any(dim=0)  # [S]
        everywhere = torch.zeros_like(matters)
        for layer in reversed(range(layout.n_layers)):
            start, mlp = layout.senders_before_attention(layer), layout.mlp_index(layer)
            if matters[mlp]:
                readers = (engine.mlp[layer] != 0).flatten(0, 1).any(dim=0)  # [before_mlp]
                matters[: len(readers)] |= readers
                if everywhere[mlp]:
                    everywhere[: len(readers)] |= readers
            heads = matters[start : start + H]
            if not heads.any():
                continue
            live = (engine.attention[layer] != 0).flatten(0, 1).any(dim=0).view(start, 3, H)
            matters[:start] |= live[:, :, heads].flatten(1).any(dim=1)
            everywhere[:start] |= live[:, 1:, heads].flatten(1).any(dim=1)
            queried = heads & everywhere[start : start + H]
            everywhere[:start] |= live[:, 0, queried].any(dim=1)
        return matters, everywhere

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
        # Denoising can turn edges on, so there every output may matter everywhere.
        if self.denoising:
            matters = needs_all = torch.ones(
                layout.n_senders, dtype=torch.bool, device=self.fixed.device
            )
        else:
            matters, needs_all = self._what_matters(engine)
            if self.last is not None:  # prompts of several lengths: the metric reads several
                needs_all = matters  # positions, so what matters is needed at all of them

        def record(indices: list[int], out: Tensor, last_only: bool) -> None:
            """out [V, n, p or 1, k, d]: the senders' new outputs (last position only: the
            earlier positions of their cached outputs are never read again)."""
            nonlocal diff
            q = out.shape[2]
            step = out - self.fixed[None, :, -q:, indices] - self.delta[None, :, -q:, indices]
            if last_only:
                padded = out.new_zeros(V, self.n, self.p, len(indices), d)
                padded[:, :, -1:] = step
                step = padded
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

        def recompute_heads(layer: int, heads: list[int], mask: Tensor, last_only: bool) -> None:
            start, k = layout.senders_before_attention(layer), len(heads)
            bias = self.bias_prefix[layer]
            q_in = self._mix(mask[..., heads], start, bias, changed, diff, last_only)
            kv_columns = [H + h for h in heads] + [2 * H + h for h in heads]
            kv_in = self._mix(mask[..., kv_columns], start, bias, changed, diff)
            q = q_in.shape[2]
            z = comp.attention(
                layer,
                q_in.reshape(V * self.n, q, k, d),
                kv_in[:, :, :, :k].reshape(V * self.n, self.p, k, d),
                kv_in[:, :, :, k:].reshape(V * self.n, self.p, k, d),
                heads=heads,
            )
            out = comp.head_outputs(layer, z, heads).reshape(V, self.n, q, k, d)
            record([start + h for h in heads], out, last_only)
            self.component_evaluations += k * V

        first = layout.n_layers if receiver.kind == "logits" else receiver.layer
        for layer in range(first, layout.n_layers):
            start = layout.senders_before_attention(layer)
            if not (receiver.kind == "mlp" and layer == receiver.layer):
                new, old = engine.attention[layer], self.engine_masks.attention[layer]
                slots = affected(new, old).view(3, H).any(dim=0)
                heads = [h for h in slots.nonzero().flatten().tolist() if matters[start + h]]
                everywhere = [h for h in heads if needs_all[start + h]]
                last = [h for h in heads if not needs_all[start + h]]
                for group, last_only in ((everywhere, False), (last, True)):
                    if group:
                        recompute_heads(layer, group, new, last_only)
            if receiver.kind != "logits":
                new, old = engine.mlp[layer], self.engine_masks.mlp[layer]
                index = layout.mlp_index(layer)
                if matters[index] and affected(new[..., None], old[..., None]).any():
                    last_only = not bool(needs_all[index])
                    bias = self.bias_prefix[layout.mlp_bias_index(layer)]
                    before_mlp = layout.senders_before_mlp(layer)
                    mlp_in = self._mix(new, before_mlp, bias, changed, diff, last_only)
                    q = mlp_in.shape[2]
                    out = comp.mlp(layer, mlp_in.reshape(V * self.n, q, d))
                    record([index], out.reshape(V, self.n, q, 1, d), last_only)
                    self.component_evaluations += V
        final = self._final(engine.logits, changed, diff)
        # A variant whose final residual reads no changed sender and whose logits edges are
        # unchanged scores what the current circuit scores: skip its unembedding.
        current = self.engine_masks.logits.expand_as(engine.logits)
        moved = (engine.logits != current).flatten(1).any(dim=1)
        if changed:
            moved |= (engine.logits[:, :, changed] != 0).flatten(1).any(dim=1)
        scores = torch.full((V,), self.score, device=final.device, dtype=torch.float64)
        final[~moved] = self.final
        if moved.any():
            scores[moved] = self.scorer.metric_from_final(final[moved]).double()
        return scores, {
            "masks": variants,
            "engine": engine,
            "changed": changed,
            "diff": diff,
            "final": final,
        }

    def _final(self, logits_mask: Tensor, changed: list[int], diff: Tensor | None) -> Tensor:
        """Final residual at the last position [V, n, d]."""
        mask = expand_positions(logits_mask, self.p)[:, -1]  # [V, S]
        S = mask.shape[1]
        base = at_last(self.fixed_prefix[:, :, S], self.last, 0) + self.bias_prefix[-1]  # [n, d]
        final = base[None] + torch.einsum("nsd,vs->vnd", at_last(self.delta, self.last, 0), mask)
        if changed:
            last_diff = at_last(diff, self.last, 1)  # [V, n, changed, d]
            final = final + torch.einsum("vnsd,vs->vnd", last_diff, mask[:, changed])
        return final

    def adopt_unread(self, masks: EdgeMasks) -> None:
        """Adopt ``masks`` (one variant) without recomputing anything: only valid when the
        changed edges lead into receivers that nothing reads (ACDC's untested removals while
        noising), so no output that reaches the metric changes and the score stays."""
        self.masks = masks
        self.engine_masks = effective(masks, reachable(masks, self.layout), self.denoising)

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
