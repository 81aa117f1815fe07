"""Fast, exact re-scoring of a circuit after changing the edges into one receiver.

Edge pruning changes the edges into one receiver at a time. Nothing upstream of that receiver
changes, so every sender's cached output still serves there; downstream, only the nodes whose
inputs actually change (a changed mask entry, or a live edge from a node that changed) and
that still have a live path to the logits are recomputed, one head at a time where possible,
and only at the last position when that is all the metric can see of them (see
``_what_matters``). A variant whose logits read nothing that changed keeps the current score
without being unembedded. Several candidate circuits (variants) are evaluated in one batch.

Every receiver's input in the current circuit is cached (in float64, so thousands of commits
do not drift), and a variant's input is the cached one plus the change of its few changed
mask entries and changed senders: O(changed senders) per input, not O(all senders).
With resample ablation, the positions before the first token where any clean and corrupted
prompt differ hold the same activations in both runs, so no circuit changes them there:
outputs are recomputed only from that position on (see ``live.unchanged_positions``).
The arithmetic is that of :func:`circuitgraph.scoring.patching.edge_forward` restricted to what
changes, so decisions match the reference implementation.

Shapes: V variants, n prompts, p positions, q positions recomputed (the last q), P mask
positions (1 or p), S senders, d d_model, k receiver slots.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from circuitgraph.options import Direction, Metric
from circuitgraph.prune.batching import Work
from circuitgraph.prune.live import effective, reachable, unchanged_positions
from circuitgraph.prune.schedule import Receiver
from circuitgraph.scoring.layout import EdgeMasks
from circuitgraph.scoring.patching import at_last, edge_forward, expand_positions, fixed_prefix_sums

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer


class _Changes:
    """The senders whose outputs differ in some variant, as recorded while evaluating:
    blocks of (sender indices, diff [V, n, q, k, d] = new output - cached delta - fixed at
    the last q positions; earlier positions are unchanged)."""

    def __init__(self) -> None:
        self.blocks: list[tuple[list[int], Tensor]] = []

    @property
    def senders(self) -> list[int]:
        return [s for indices, _ in self.blocks for s in indices]

    def __bool__(self) -> bool:
        return bool(self.blocks)

    def pick(self, variant: int) -> _Changes:
        """The changes of one variant (V = 1)."""
        one = _Changes()
        one.blocks = [(indices, diff[variant : variant + 1]) for indices, diff in self.blocks]
        return one


class IncrementalEvaluator:
    """Holds the current circuit's masks and activations; scores variants of it quickly."""

    def __init__(self, scorer: Scorer, masks: EdgeMasks) -> None:
        self.scorer = scorer
        self.comp, self.layout = scorer.components, scorer.layout
        self.denoising = scorer.direction is Direction.DENOISING
        n, p = scorer.run_tokens.shape
        self.n, self.p = n, p
        # Positions from which outputs can change (earlier ones hold the same values in both
        # runs); the last position always counts.
        self.changing = p - min(unchanged_positions(scorer), p - 1)
        self.fixed = scorer.fixed.expand(n, p, self.layout.n_senders, self.comp.d_model)
        self.fixed_prefix, self.bias_prefix = fixed_prefix_sums(self.comp, self.fixed, n)
        self.masks = masks
        self.reach = reachable(masks, self.layout)  # [1, P, S]
        self.engine_masks = effective(masks, self.reach, self.denoising)
        self.last = scorer.last  # each prompt's last real position [n], or None (all at -1)
        with torch.no_grad():
            final, delta = edge_forward(
                self.comp, scorer.run_tokens, self.fixed, self.engine_masks, last=self.last
            )
        self.delta = delta[0]  # [n, p, S, d] live - fixed of the current circuit
        self.accumulate = torch.float32 if self.fixed.device.type == "mps" else torch.float64
        self.final = final[0].to(self.accumulate)  # [n, d]
        self.inputs = self._current_inputs()  # the master copy, accumulation dtype
        self.inputs_read = [x.to(self.comp.dtype) for x in self.inputs]  # what variants read
        self.score = float(scorer.metric_from_final(final)[0])
        self.component_evaluations = 0  # heads and MLPs recomputed, for benchmarks
        # What the batches computed, counted rather than timed so that batch sizes (and the
        # float rounding that comes with them) never depend on the clock.
        self.work = Work()
        self.d_mlp = int(getattr(scorer.model.cfg, "d_mlp", None) or 4 * self.comp.d_model)
        full_vocabulary = scorer.metric in (Metric.KL, Metric.ACCURACY, Metric.L2)
        self.logits_read = self.comp.W_U.shape[1] if full_vocabulary else 2  # per prompt

    def _current_inputs(self) -> list[Tensor]:
        """Every receiver's input in the current circuit: per layer, the attention slots then
        the MLP, [n, p, 3H + 1, d] (accumulation dtype)."""
        layout, engine, p = self.layout, self.engine_masks, self.p
        inputs = []
        for layer in range(layout.n_layers):
            start = layout.senders_before_attention(layer)
            before_mlp = layout.senders_before_mlp(layer)
            attention = expand_positions(engine.attention[layer], p)[0]  # [p, start, 3H]
            mlp = expand_positions(engine.mlp[layer], p)[0]  # [p, before_mlp]
            attention_in = torch.einsum("npsd,psr->nprd", self.delta[:, :, :start], attention)
            attention_base = self.fixed_prefix[:, :, start] + self.bias_prefix[layer]  # [n, p, d]
            mlp_in = torch.einsum("npsd,ps->npd", self.delta[:, :, :before_mlp], mlp)
            mlp_base = (
                self.fixed_prefix[:, :, before_mlp] + self.bias_prefix[layout.mlp_bias_index(layer)]
            )
            layer_inputs = torch.cat(
                [attention_in + attention_base[:, :, None], (mlp_in + mlp_base)[:, :, None]], dim=2
            )
            inputs.append(layer_inputs.to(self.accumulate))
        return inputs

    def _correct(
        self, cached: Tensor, new: Tensor, old: Tensor, changes: _Changes, q: int
    ) -> Tensor:
        """Inputs [V, n, q, k, d] (``cached``'s dtype) of k receiver slots at the last q
        positions, in every variant.

        cached [n, p, k, d]: their inputs in the current circuit; new [V, P, s, k] and old
        [1, P, s, k]: their masks in the variants and now. A variant's input is the cached one
        plus (new - old) * delta over the senders whose mask entries differ, plus new * diff
        over the senders whose output changed, in ``cached``'s dtype: variants read the cached
        inputs in the model's dtype, commits update the float64 master copy.
        """
        new = expand_positions(new, self.p)[:, -q:]
        old = expand_positions(old, self.p)[:, -q:]
        V = new.shape[0]
        inputs = cached[None, :, -q:].expand(V, *cached.shape[:1], q, *cached.shape[2:]).clone()
        moved = new - old  # [V, q, s, k]
        rows = (moved != 0).any(dim=3).any(dim=1).any(dim=0).nonzero().flatten()
        read = sum(len(indices) for indices, _ in changes.blocks)
        self.work.spend(inputs.numel() * (1 + len(rows) + read), 0)
        if len(rows):
            delta = self.delta[:, -q:, rows]  # [n, q, rows, d]
            inputs += torch.einsum("npsd,vpsk->vnpkd", delta, moved[:, :, rows])
        for indices, diff in changes.blocks:
            if indices[-1] >= new.shape[2]:  # blocks come in sender order: the rest are later
                break
            m = min(q, diff.shape[2])
            inputs[:, :, -m:] += torch.einsum(
                "vnpsd,vpsk->vnpkd", diff[:, :, -m:], new[:, -m:, indices]
            )
        return inputs

    def _changed_positions(self, new: Tensor, old: Tensor, changes: _Changes) -> Tensor:
        """Per receiver slot of masks [V or 1, P, s, k], how many trailing positions of its
        input change, [k] (0: none): all that can change where a mask entry differs, and
        those of each changed sender it reads along a live edge."""
        q = (new != old).flatten(0, 2).any(dim=0).long() * self.changing  # [k]
        for indices, diff in changes.blocks:
            if indices[-1] >= new.shape[2]:  # blocks come in sender order
                break
            reads = (new[:, :, indices] != 0).flatten(0, 2).any(dim=0)
            q = torch.maximum(q, reads.long() * diff.shape[2])
        return q

    def _what_matters(self, engine: EdgeMasks, first: int) -> tuple[Tensor, Tensor]:
        """Which senders of layer ``first`` on have outputs that can reach the metric:
        (anywhere, before the last position), bool [S] each, over every variant (the earlier
        senders are never recomputed: not set).

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
        for layer in reversed(range(first, layout.n_layers)):
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
        V, H, d, n = variants.n_variants, layout.n_heads, comp.d_model, self.n
        # Nothing before the receiver's layer changes: reuse what is known there.
        first = layout.n_layers if receiver.kind == "logits" else receiver.layer
        reach = reachable(variants, layout, first, self.reach)
        engine = effective(variants, reach, self.denoising, first, self.engine_masks)
        changes = _Changes()
        # Denoising can turn edges on, so there every output may matter everywhere.
        if self.denoising:
            matters = needs_all = torch.ones(
                layout.n_senders, dtype=torch.bool, device=self.fixed.device
            )
        else:
            matters, needs_all = self._what_matters(engine, first)
            if self.last is not None:  # prompts of several lengths: the metric reads several
                needs_all = matters  # positions, so what matters is needed at all of them

        def record(indices: list[int], out: Tensor) -> None:
            """out [V, n, q, k, d]: the senders' new outputs at the last q positions (the
            earlier positions either cannot change or are never read again)."""
            q = out.shape[2]
            fixed, delta = self.fixed[None, :, -q:, indices], self.delta[None, :, -q:, indices]
            changes.blocks.append((indices, out - fixed - delta))

        def needed(sender: int) -> int:
            """How many trailing positions of ``sender``'s output the metric can see."""
            return self.changing if needs_all[sender] else 1

        def same_kv(mask: Tensor, old: Tensor, a: int, b: int) -> bool:
            """Whether heads a and b read the same key and value inputs: same group, and the
            same edges into them now and in every variant."""
            if a // comp.group_size != b // comp.group_size:
                return False
            return all(
                torch.equal(m[..., offset + a], m[..., offset + b])
                for m in (mask, old)
                for offset in (H, 2 * H)
            )

        def recompute_heads(layer: int, heads: list[int], mask: Tensor, q: int, kv_q: int) -> None:
            """Heads' outputs at the last q positions, their key/value inputs changing at the
            last kv_q positions."""
            start, k = layout.senders_before_attention(layer), len(heads)
            cached, old = self.inputs_read[layer], self.engine_masks.attention[layer]
            q_in = self._correct(cached[:, :, heads], mask[..., heads], old[..., heads], changes, q)
            # Heads of one key/value group whose key and value inputs have the same edges
            # (a group's input nodes under grouped-query attention) share one computation.
            shared, kv_slots = [], []
            for h in heads:
                same = next((i for i, r in enumerate(shared) if same_kv(mask, old, r, h)), None)
                if same is None:
                    shared.append(h)
                    same = len(shared) - 1
                kv_slots.append(same)
            u, slots = len(shared), (kv_slots if len(shared) < k else None)
            kv = [H + h for h in shared] + [2 * H + h for h in shared]
            # Keys and values before the last kv_q positions are the current circuit's in
            # every variant: computed once for the n prompts, not for each variant.
            kv_q = max(kv_q, 1)
            kv_in = self._correct(cached[:, :, kv], mask[..., kv], old[..., kv], changes, kv_q)
            prefix = None
            if kv_q < self.p:
                before = cached[:, : self.p - kv_q, kv]  # [n, p - kv_q, 2u, d]
                keys, values = comp.key_values(
                    layer, before[:, :, :u], before[:, :, u:], heads, slots
                )
                prefix = keys.repeat(V, 1, 1, 1), values.repeat(V, 1, 1, 1)
            z = comp.attention(
                layer,
                q_in.reshape(V * n, q, k, d),
                kv_in[:, :, :, :u].reshape(V * n, kv_q, u, d),
                kv_in[:, :, :, u:].reshape(V * n, kv_q, u, d),
                heads=heads,
                kv_slots=slots,
                kv_prefix=prefix,
            )
            out = comp.head_outputs(layer, z, heads).reshape(V, n, q, k, d)
            record([start + h for h in heads], out)
            # multiply-adds: the query, key and value projections (the shared prefix once),
            # scores and mixing over p keys, the output projection
            projected = V * n * (q * k + 2 * kv_q * u) + n * 2 * u * (self.p - kv_q)
            attended, output = 2 * V * n * q * k * self.p, V * n * q * k * d
            weights = (k + 2 * u) * d * comp.d_head + k * comp.d_head * d
            self.work.spend(comp.d_head * (d * projected + attended + output), weights)
            self.component_evaluations += k * V

        # Each changed output is recomputed at the positions where it changes (its inputs'
        # changed positions; causal attention carries a key/value change only forwards,
        # bidirectional attention everywhere) and the metric can see it.
        for layer in range(first, layout.n_layers):
            start = layout.senders_before_attention(layer)
            if not (receiver.kind == "mlp" and layer == receiver.layer):
                new, old = engine.attention[layer], self.engine_masks.attention[layer]
                slot_q = self._changed_positions(new, old, changes).tolist()  # q, k, v slots
                kv_q = [max(slot_q[H + h], slot_q[2 * H + h]) for h in range(H)]
                groups: dict[int, list[int]] = {}
                for h in range(H):
                    # causal: a key/value change at the last kv_q positions moves the outputs
                    # there; bidirectional: every query reads it, so it moves every position
                    carried = kv_q[h] if comp.causal or not kv_q[h] else self.p
                    q = min(max(slot_q[h], carried), needed(start + h))
                    if q and matters[start + h]:
                        groups.setdefault(q, []).append(h)
                for q, heads in sorted(groups.items(), reverse=True):
                    recompute_heads(layer, heads, new, q, max(kv_q[h] for h in heads))
            if receiver.kind != "logits":
                new, old = engine.mlp[layer][..., None], self.engine_masks.mlp[layer][..., None]
                index = layout.mlp_index(layer)
                q = min(int(self._changed_positions(new, old, changes)[0]), needed(index))
                if q and matters[index]:
                    cached = self.inputs_read[layer][:, :, 3 * H :]  # [n, p, 1, d]
                    mlp_in = self._correct(cached, new, old, changes, q)
                    out = comp.mlp(layer, mlp_in.reshape(V * n, q, d))
                    self.work.spend(3 * V * n * q * d * self.d_mlp, 3 * d * self.d_mlp)
                    record([index], out.reshape(V, n, q, 1, d))
                    self.component_evaluations += V
        final = self._final(engine.logits, changes)
        # A variant whose final residual reads no changed sender and whose logits edges are
        # unchanged scores what the current circuit scores: skip its unembedding.
        current = self.engine_masks.logits.expand_as(engine.logits)
        moved = (engine.logits != current).flatten(1).any(dim=1)
        if changes:
            moved |= (engine.logits[:, :, changes.senders] != 0).flatten(1).any(dim=1)
        scores = torch.full((V,), self.score, device=final.device, dtype=torch.float64)
        final[~moved] = self.final
        if moved.any():
            final_moved = final[moved].to(comp.dtype)
            moved_n = final_moved.shape[0] * n
            self.work.spend(moved_n * self.logits_read * d, self.logits_read * d)
            scores[moved] = self.scorer.metric_from_final(final_moved).double()
        state = {"masks": variants, "reach": reach, "engine": engine, "first": first}
        return scores, {**state, "changes": changes, "final": final}

    def _final(self, logits_mask: Tensor, changes: _Changes) -> Tensor:
        """Final residual at the last position [V, n, d] (accumulation dtype): the current
        one plus the changes of the logits' mask entries and of the changed senders."""
        new = expand_positions(logits_mask, self.p)[:, -1]  # [V, S]
        old = expand_positions(self.engine_masks.logits, self.p)[:, -1]  # [1, S]
        V = new.shape[0]
        final = self.final[None].expand(V, *self.final.shape).clone()
        moved = new - old
        rows = (moved != 0).any(dim=0).nonzero().flatten()
        if len(rows):
            last_delta = at_last(self.delta[:, :, rows], self.last, 0)  # [n, rows, d]
            final += torch.einsum("nsd,vs->vnd", last_delta, moved[:, rows])
        for indices, diff in changes.blocks:
            final += torch.einsum("vnsd,vs->vnd", self._diff_at_last(diff), new[:, indices])
        return final

    def _diff_at_last(self, diff: Tensor) -> Tensor:
        """diff [V, n, q, k, d] of the last q positions -> at each prompt's last real
        position [V, n, k, d] (zero where that position lies before them: unchanged)."""
        if self.last is None:
            return diff[:, :, -1]
        q = diff.shape[2]
        index = self.last - (self.p - q)  # [n] position within the last q
        inside = (index >= 0).to(diff.dtype)[None, :, None, None]
        picked = (
            index.clamp(min=0).view(1, -1, 1, 1, 1).expand(diff.shape[0], -1, 1, *diff.shape[3:])
        )
        return diff.gather(2, picked).squeeze(2) * inside

    def _update_inputs(self, engine: EdgeMasks, changes: _Changes, first: int = 0) -> None:
        """Bring the cached receiver inputs to the circuit of ``engine`` (one variant) whose
        senders moved by ``changes`` (of that variant) and masks changed from layer ``first``
        on; only slots whose input changes are touched. Runs before ``delta`` takes the
        changes."""
        H = self.layout.n_heads
        for layer in range(first, self.layout.n_layers):
            cached = self.inputs[layer]
            pairs = (
                (engine.attention[layer], self.engine_masks.attention[layer], 0),
                (engine.mlp[layer][..., None], self.engine_masks.mlp[layer][..., None], 3 * H),
            )
            for new, old, offset in pairs:
                slots = self._changed_positions(new, old, changes).nonzero().flatten()
                if not len(slots):
                    continue
                columns = (slots + offset).tolist()
                updated = self._correct(
                    cached[:, :, columns], new[..., slots], old[..., slots], changes, self.p
                )
                cached[:, :, columns] = updated[0]
                self.inputs_read[layer][:, :, columns] = updated[0].to(self.comp.dtype)

    def adopt_unread(self, masks: EdgeMasks) -> None:
        """Adopt ``masks`` (one variant) without recomputing anything: only valid when the
        changed edges lead into receivers that nothing reads (ACDC's untested removals while
        noising), so no output that reaches the metric changes and the score stays."""
        self.reach = reachable(masks, self.layout)
        engine = effective(masks, self.reach, self.denoising)
        self._update_inputs(engine, _Changes())
        self.masks, self.engine_masks = masks, engine

    def commit(self, state: dict, variant: int, score: float) -> None:
        """Adopt variant ``variant`` of an :meth:`evaluate` call as the current circuit."""
        pick = slice(variant, variant + 1)

        def one(source: EdgeMasks) -> EdgeMasks:
            return EdgeMasks(
                [m[pick].clone() for m in source.attention],
                [m[pick].clone() for m in source.mlp],
                source.logits[pick].clone(),
            )

        engine, changes = one(state["engine"]), state["changes"].pick(variant)
        self._update_inputs(engine, changes, state["first"])
        self.reach = state["reach"][pick].clone()
        self.masks, self.engine_masks = one(state["masks"]), engine
        for indices, diff in changes.blocks:
            q = diff.shape[2]
            self.delta[:, -q:, indices] += diff[0]
        self.final = state["final"][variant]
        self.score = score
