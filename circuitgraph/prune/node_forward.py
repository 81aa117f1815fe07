"""Node-level circuit forward that resumes at any stage, for node pruning.

Removing a node changes nothing before the stage that reads it (2L: attention of layer L,
2L + 1: MLP L), so a try starts from the current circuit's cached residual stream there:
trying a late-layer node costs a few layers. The arithmetic is
:func:`circuitgraph.scoring.patching.node_stage`, shared with the Scorer, and it runs over the
Scorer's chunks of variants and prompts (:meth:`~circuitgraph.scoring.scorer.Scorer.chunks`).
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from circuitgraph.options import Direction
from circuitgraph.scoring.layout import NodeMasks
from circuitgraph.scoring.masks import complement_masks
from circuitgraph.scoring.memory import slices
from circuitgraph.scoring.patching import at_last, live_senders, node_stage

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer


class NodeForward:
    """``patching.run_node_masks`` resumable at any stage.

    ``present`` [P, S] is the search's current circuit, shared and updated in place.
    """

    def __init__(self, scorer: Scorer, present: Tensor) -> None:
        self.scorer = scorer
        self.comp, self.layout, self.present = scorer.components, scorer.layout, present
        self.denoising = scorer.direction is Direction.DENOISING
        n, p = scorer.run_tokens.shape
        self.n = n
        self.fixed = scorer.fixed.expand(n, p, self.layout.n_senders, self.comp.d_model)
        self.states = [self.comp.embed(scorer.run_tokens)]  # residual before each stage
        self.last = scorer.last  # each prompt's last real position [n], or None
        self.n_stages = 2 * self.comp.n_layers
        self.layer_evaluations = 0.0  # variants x layers computed (a full forward: n_layers)

    def live(self, present: Tensor) -> Tensor:
        """present [V, P, S] (1 = in the circuit) -> [V, 1, p, S, 1] (1 = the run's own value)."""
        masks = NodeMasks(present)
        if self.denoising:
            masks = complement_masks(masks)
        return live_senders(masks, self.fixed.shape[1])

    @torch.no_grad()
    def stage(
        self,
        stage: int,
        resid: Tensor,
        live: Tensor,
        before_attention: Tensor | None = None,
        rows: slice = slice(None),
    ) -> Tensor:
        """Apply one stage to resid [V, c, p, d], the prompts ``rows`` (an MLP stage of a
        parallel block also reads ``before_attention``, the residual before stage 2L). Call it
        inside ``scorer.on_prompts(rows)`` when ``rows`` are not every prompt."""
        self.layer_evaluations += resid.shape[0] * resid.shape[1] / self.n / 2
        return node_stage(self.comp, stage, resid, live, self.fixed[rows], before_attention)

    def base_state(self, stage: int) -> Tensor:
        """The current circuit's residual before ``stage`` [n, p, d], extending the cache
        (over the scorer's chunks of prompts)."""
        if len(self.states) <= stage:
            live = self.live(self.present[None])
            chunk = self.scorer.chunks(1).prompts
            while len(self.states) <= stage:
                k = len(self.states) - 1
                state = torch.empty_like(self.states[k])
                for rows in slices(self.n, chunk):
                    before = self.states[k - 1][None, rows] if k % 2 else None
                    with self.scorer.on_prompts(rows):
                        resid = self.states[k][None, rows]
                        state[rows] = self.stage(k, resid, live, before, rows)[0]
                self.states.append(state)
        return self.states[stage]

    def invalidate(self, stage: int) -> None:
        """The node read at ``stage`` changed: forget the cached states after it."""
        del self.states[stage + 1 :]

    def final(self, present: Tensor, starts: list[int]) -> Tensor:
        """Final residuals [V, n, d] of circuits present [V, P, S] that equal the current circuit
        before their stage ``starts[v]``; each variant joins the batch at its start stage.
        Runs over the scorer's chunks of variants and prompts, concatenated."""
        self.base_state(max(starts))  # every prompt's states, before any chunk runs
        chunks = self.scorer.chunks(len(starts))
        parts = []
        for variants in slices(len(starts), chunks.variants):
            chunk_present, chunk_starts = present[variants], starts[variants]
            parts.append(
                torch.cat(
                    [
                        self._final(chunk_present, chunk_starts, prompts)
                        for prompts in slices(self.n, chunks.prompts)
                    ],
                    dim=1,
                )
            )
        return torch.cat(parts)

    def _final(self, present: Tensor, starts: list[int], prompts: slice) -> Tensor:
        """:meth:`final` of the prompts ``prompts`` [V, c, d]."""
        live, rows, resid, before = self.live(present), [], None, None
        with self.scorer.on_prompts(prompts) as (_, _, last):
            for stage in range(min(starts), self.n_stages):
                joining = [v for v, s in enumerate(starts) if s == stage]
                if joining:
                    base = self.base_state(stage)[prompts]
                    new = base[None].expand(len(joining), *base.shape)
                    resid = new if resid is None else torch.cat([resid, new])
                    if stage % 2:  # joining at an MLP: the residual before attention is the base's
                        pre = self.base_state(stage - 1)[prompts]
                        pre = pre[None].expand(len(joining), *base.shape)
                        before = pre if before is None else torch.cat([before, pre])
                    rows += joining
                    active = live[rows]
                assert resid is not None  # every variant joins at min(starts) or later
                if stage % 2 == 0:
                    before = resid
                resid = self.stage(stage, resid, active, before, prompts)
        assert resid is not None  # starts is not empty
        inverse = torch.empty(len(rows), dtype=torch.long, device=resid.device)
        inverse[rows] = torch.arange(len(rows), device=resid.device)
        return at_last(resid, last, 1)[inverse]


def calibrate(forward: NodeForward, batch_size: int) -> float:
    """Fixed cost of a batch in units of one variant's cost (time = a + b V; returns a / b).

    Runs ``batch_size`` variants over every prompt: callers keep it within the chunks."""
    if batch_size < 2:
        return 0.0
    state, times = forward.base_state(0), {}
    for V in (1, batch_size) * 3:
        live = forward.live(forward.present[None].expand(V, -1, -1))
        start = state[None].expand(V, *state.shape)
        begin = time.perf_counter()
        forward.stage(1, forward.stage(0, start, live), live, start)
        times[V] = min(times.get(V, math.inf), time.perf_counter() - begin)
    per_variant = max((times[batch_size] - times[1]) / (batch_size - 1), 1e-9)
    return min(max(times[1] / per_variant - 1, 0.0), 64.0)
