"""``Scorer``: the measuring instrument. ``score(circuit)`` runs a circuit and returns a number.

A Scorer holds one model, one task and the caches that never change while pruning: the
clean and corrupted runs' sender outputs and the ablation values. Every circuit is then one
masked forward pass (see :mod:`~circuitgraph.scoring.patching`); several circuits can be scored
in one batch with :meth:`Scorer.score_masks`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from circuitgraph.options import Ablation, Direction, Metric, Normalise, parse_enum
from circuitgraph.scoring.ablation import check_mean_over, mean_over_real_tokens, mean_reference
from circuitgraph.scoring.checks import (
    check_full_circuit,
    model_logits_at,
    warn_if_rarely_predicted,
)
from circuitgraph.scoring.components import ComponentModel
from circuitgraph.scoring.layout import EdgeMasks, Layout, NodeMasks
from circuitgraph.scoring.masks import (
    check_same_model,
    circuit_masks,
    complement_masks,
    select_variants,
)
from circuitgraph.scoring.memory import Chunks, check_memory, estimate_memory, slices
from circuitgraph.scoring.metrics import (
    accumulating,
    accuracy,
    kl_divergence,
    l2_distance,
    logit_diff,
    normalised,
    prob_diff,
)
from circuitgraph.scoring.patching import run_edge_masks, run_node_masks, sender_outputs

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Circuit
    from circuitgraph.models.model_type import Model
    from circuitgraph.tasks.task import Task

__all__ = ["Ablation", "Direction", "Metric", "Normalise", "Scorer"]


def _model_name(model: Model) -> str:
    return getattr(model, "circuitgraph_name", None) or getattr(model.cfg, "model_name", "")


class Scorer:
    """Score circuits of ``model`` on ``task``.

    Parameters
    ----------
    metric: ``"logit_diff"`` (score = normalised logit difference, 1.0 = full model),
        ``"kl"`` (score = KL divergence from the full model, 0.0 = full model),
        ``"accuracy"`` (top-1 accuracy of the answer) or ``"prob_diff"`` (probability on the
        task's good answers minus its bad ones, normalised like the logit difference; tasks
        with ``prob_ids`` such as greater_than_years) or ``"l2"`` (squared distance of the
        outputs from the full model's, 0.0 = full model: ACDC's metric for compiled tracr
        models with numeric outputs). Each row's metric reads one position (each prompt's
        last real token, or those of ``Task.from_tokens(positions=)``); a prompt read at
        several positions counts once.
    ablation: ``"mean"``, ``"resample"`` or ``"zero"`` values for what is not in the circuit.
    mean_over: the prompts whose corrupted runs give the ``"mean"`` ablation values (their
        per-position mean). None: this task's own corrupted prompts (the discovery prompts
        when discovering). A Task, e.g. the discovery task when scoring held-out prompts
        (:func:`~circuitgraph.evaluation.held_out_scorer` passes it), so that a circuit keeps
        the ablation values it was found with instead of means over a few new prompts; built
        for the same model, with the same BOS setting and prompts at least as long.
        ``scorer.mean_reference`` records which set was used (task, template, corruption,
        seed, prompts, distinct prompts, a digest of the corrupted prompts; None unless
        ``ablation="mean"``) and discovery copies it into the circuit's provenance.
    normalise: ``"full"`` (ablated / clean) or ``"clean_corrupt"``.
    direction: ``"noising"`` or ``"denoising"`` (denoising needs ``ablation="resample"``:
        the baseline is the corrupted run itself).
    max_memory: a budget (GiB, or bytes when >= 1024). The full runs and the masked passes
        run over chunks of prompts and variants small enough for the estimate
        (``scorer.memory``, see :mod:`circuitgraph.scoring.memory`) to fit it, which never changes a
        score; ValueError before anything is allocated if even one prompt at a time does not
        fit. prune_nodes and prune_edges check their own share against it as well (edge
        pruning's evaluator is not chunked). None: everything in one chunk.

    Examples
    --------
    >>> import circuitgraph as cg
    >>> model = cg.load_model("toy-seq")
    >>> scorer = cg.Scorer(model, cg.make_task("digits", model, n=8))
    >>> round(scorer.score(cg.full_circuit(model.cfg)), 4)
    1.0
    """

    def __init__(
        self,
        model: Model,
        task: Task,
        metric: str = "logit_diff",
        ablation: str = "mean",
        normalise: str = "full",
        direction: str = "noising",
        max_memory: float | None = None,
        mean_over: Task | None = None,
    ) -> None:
        self.metric = parse_enum(Metric, metric, "metric")
        self.ablation = parse_enum(Ablation, ablation, "ablation")
        self.normalise = parse_enum(Normalise, normalise, "normalisation")
        self.direction = parse_enum(Direction, direction, "direction")
        if self.direction is Direction.DENOISING and self.ablation is not Ablation.RESAMPLE:
            raise ValueError(
                "denoising restores clean values into the corrupted run: use ablation='resample'"
            )
        task_model = getattr(task, "model_name", "")
        if task_model and task_model != getattr(model.cfg, "model_name", task_model):
            raise ValueError(
                f"task {task.name!r} was built for model {task_model!r}, not "
                f"{model.cfg.model_name!r}"
            )
        self.model, self.task = model, task
        self.mean_task = check_mean_over(mean_over, task, self.ablation, model)
        self.mean_reference = None if self.mean_task is None else mean_reference(self.mean_task)
        self._check_metric(self.metric)  # before the model runs
        # Estimated before anything is allocated; pruning checks its own share against it too.
        self.memory = estimate_memory(model, task, max_memory=max_memory)
        self.max_memory = max_memory
        check_memory(self.memory, max_memory, "score")
        with torch.no_grad():
            self._cache_runs(model, task)

    def _cache_runs(self, model: Model, task: Task) -> None:
        """Clean and corrupted runs of the full model, and the ablation values."""
        self.model_name = _model_name(model)
        self.components = ComponentModel(model)
        self.layout = Layout.from_config(model.cfg)
        device = self.device = self.components.device  # tokens and caches live with the model
        clean_tokens, corrupted_tokens = (
            t.to(device) for t in (task.clean_tokens, task.corrupted_tokens)
        )
        self.answer_ids = task.answer_ids.to(device)  # [n]
        # The position each row's metric reads [n]: its prompt's last real token (prompts of
        # different lengths are right-padded) or one Task.from_tokens chose; None: the last.
        self.last = None if task.reads_last else task.last_positions.to(device)
        if task.ragged and not self.components.causal:
            raise ValueError(
                f"task {task.name!r} mixes prompt lengths, but {self.model_name!r} attends in "
                "both directions, so right padding would reach the real tokens: use prompts "
                "of one length with this model"
            )
        weights = task.row_weights()  # prompts weigh the same however many positions they read
        self.row_weights = None if weights is None else weights.to(device)
        clean_outputs, clean_final, clean_scales = self._full_run(clean_tokens)
        corrupt_outputs, corrupt_final, corrupt_scales = self._full_run(corrupted_tokens)
        # Post-attention norms (Gemma-2): masked runs use the scales of the run's full pass.
        self.frozen_scales = None  # layer -> [n, p, 1]; components hold a chunk's while it runs
        if clean_scales:
            self.frozen_scales = (
                clean_scales if self.direction is Direction.NOISING else corrupt_scales
            )
            self.components.frozen_scales = self.frozen_scales
        self.clean_outputs = clean_outputs  # [n, p, S, d]
        self.corrupt_final = corrupt_final  # [n, d]
        self.ablated = {  # [n or 1, p, S, d]
            Ablation.MEAN: lambda: self._mean_values(corrupt_outputs, task),
            Ablation.RESAMPLE: lambda: corrupt_outputs,
            Ablation.ZERO: lambda: torch.zeros_like(corrupt_outputs[:1]),
        }[self.ablation]()
        if self.direction is Direction.NOISING:
            self.run_tokens, self.fixed = clean_tokens, self.ablated
        else:
            self.run_tokens, self.fixed = corrupted_tokens, clean_outputs
        wrong_ids = task.wrong_ids.to(device)
        self.answer_pairs = torch.stack([self.answer_ids, wrong_ids], dim=-1)  # [n, 2]
        self.clean_logit_diff = self.corrupt_logit_diff = float("nan")  # without answers
        if task.has_answers:
            self.clean_logit_diff = float(self._raw_logit_diff(clean_final[None])[0])
            self.corrupt_logit_diff = float(self._raw_logit_diff(corrupt_final[None])[0])
        clean_logits = accumulating(self.components.unembed(clean_final))  # [n, vocab]
        own_logits = model_logits_at(model, clean_tokens, self.last)  # [n, vocab]
        self.full_circuit_error = check_full_circuit(
            clean_logits, own_logits, self.components.dtype, self.model_name
        )
        self.model_top1 = float("nan")
        if task.has_answers:
            self.model_top1 = warn_if_rarely_predicted(
                own_logits, self.answer_ids, list(task.answers), self.model_name
            )
        self.clean_logits = clean_logits  # [n, vocab], the L2 metric's reference
        self.clean_logprobs = clean_logits.log_softmax(-1)
        if task.prob_ids is not None:
            assert task.prob_signs is not None  # a task sets both or neither
            self.prob_ids, self.prob_signs = task.prob_ids.to(device), task.prob_signs.to(device)
            self.clean_prob_diff = float(self._raw_prob_diff(clean_final[None])[0])
            self.corrupt_prob_diff = float(self._raw_prob_diff(corrupt_final[None])[0])

    def _full_run(
        self, tokens: Tensor, last_positions: Tensor | None = None
    ) -> tuple[Tensor, Tensor, dict[int, Tensor]]:
        """Full run over chunks of prompts into one [n, p, S, d] cache; returns it, the final
        residuals [n, d] and the post-attention norm scales (layer -> [n, p, 1], Gemma-2).
        ``last_positions`` [n]: of other prompts than the task's (default: the task's)."""
        comp, (n, p) = self.components, tokens.shape
        outputs = torch.empty(
            n, p, self.layout.n_senders, comp.d_model, device=self.device, dtype=comp.dtype
        )
        finals, scales = [], {}
        lasts = self.last if last_positions is None else last_positions
        for rows in slices(n, self.chunks(1).prompts):
            last = None if lasts is None else lasts[rows]
            finals.append(sender_outputs(comp, tokens[rows], last, out=outputs[rows])[1])
            for layer, scale in comp.recorded_scales.items():
                scales.setdefault(layer, []).append(scale)
        return outputs, torch.cat(finals), {k: torch.cat(v) for k, v in scales.items()}

    def _mean_values(self, corrupt_outputs: Tensor, task: Task) -> Tensor:
        """The mean-ablation values [1, p, S, d]: over this task's corrupted runs, or over
        those of ``mean_over`` (one more full run, cut to this task's positions)."""
        reference = self.mean_task
        if reference is None or reference is task:
            return mean_over_real_tokens(corrupt_outputs, task, self.device)
        last = None if not reference.ragged else reference.last_positions.to(self.device)
        outputs = self._full_run(reference.corrupted_tokens.to(self.device), last)[0]
        means = mean_over_real_tokens(outputs, reference, self.device)
        return means[:, : task.seq_len].contiguous()

    def chunks(self, n_variants: int, level: str = "nodes") -> Chunks:
        """How many of ``n_variants`` circuits and of the prompts a masked pass at ``level``
        ("nodes" or "edges") runs at once: all of them without ``max_memory``, else the
        largest chunks whose working tensors fit it (see :mod:`circuitgraph.scoring.memory`)."""
        return self.memory.chunks(n_variants, level)

    @contextmanager
    def on_prompts(self, rows: slice) -> Iterator[tuple[Tensor, Tensor, Tensor | None]]:
        """The run's tokens [c, p], fixed values [c or 1, p, S, d] and last positions [c] (or
        None) of prompts ``rows``; while the block runs, the model's frozen post-attention
        norm scales (Gemma-2) are those prompts' too."""
        comp, previous = self.components, self.components.frozen_scales
        if self.frozen_scales is not None:
            comp.frozen_scales = {layer: s[rows] for layer, s in self.frozen_scales.items()}
        try:
            fixed = self.fixed if self.fixed.shape[0] == 1 else self.fixed[rows]
            yield self.run_tokens[rows], fixed, None if self.last is None else self.last[rows]
        finally:
            comp.frozen_scales = previous

    def __repr__(self) -> str:
        return (
            f"Scorer(model={self.model_name!r}, task={self.task.name!r}, n={len(self.task)}, "
            f"metric={self.metric.value!r}, ablation={self.ablation.value!r}, "
            f"direction={self.direction.value!r})"
        )

    def _raw_logit_diff(self, final: Tensor) -> Tensor:
        """final [V, n, d] -> mean logit difference [V]."""
        V, n, d = final.shape
        ids = self.answer_pairs[None].expand(V, n, 2).reshape(V * n, 2)
        pair = self.components.unembed(final.reshape(V * n, d), ids).reshape(V, n, 2)
        return logit_diff(pair, self.row_weights)

    def _raw_prob_diff(self, final: Tensor) -> Tensor:
        """final [V, n, d] -> mean probability difference [V]."""
        V, n, d = final.shape
        logits = self.components.unembed(final.reshape(V * n, d)).reshape(V, n, -1)
        return prob_diff(logits, self.prob_ids, self.prob_signs, self.row_weights)

    def final_residuals(self, masks: NodeMasks | EdgeMasks) -> Tensor:
        """Run the masked forward pass; final residual at the last position [V, n, d].

        Runs over chunks of variants and prompts (see :meth:`chunks`), concatenated."""
        if self.direction is Direction.DENOISING:
            masks = complement_masks(masks)
        nodes = isinstance(masks, NodeMasks)
        chunks = self.chunks(masks.n_variants, "nodes" if nodes else "edges")
        parts = []
        for variants in slices(masks.n_variants, chunks.variants):
            subset, rows = select_variants(masks, variants), []
            for prompts in slices(self.run_tokens.shape[0], chunks.prompts):
                with self.on_prompts(prompts) as (tokens, fixed, last):
                    if isinstance(subset, NodeMasks):
                        rows.append(run_node_masks(self.components, tokens, fixed, subset, last))
                    else:
                        rows.append(run_edge_masks(self.components, tokens, fixed, subset, last))
            parts.append(torch.cat(rows, dim=1))
        return torch.cat(parts)

    @torch.no_grad()
    def metric_from_final(self, final: Tensor) -> Tensor:
        """Score per variant [V] from final residuals [V, n, d] (only what the metric needs)."""
        return self.differentiable_metric(final)

    def differentiable_metric(self, final: Tensor) -> Tensor:
        """:meth:`metric_from_final` without ``no_grad`` (for attribution patching)."""
        if self.metric is Metric.LOGIT_DIFF:
            value = self._raw_logit_diff(final)
            return normalised(value, self.clean_logit_diff, self.corrupt_logit_diff, self.normalise)
        if self.metric is Metric.PROB_DIFF:
            value = self._raw_prob_diff(final)
            return normalised(value, self.clean_prob_diff, self.corrupt_prob_diff, self.normalise)
        V, n, d = final.shape
        logits = self.components.unembed(final.reshape(V * n, d)).reshape(V, n, -1)
        if self.metric is Metric.KL:
            return kl_divergence(self.clean_logprobs, logits, self.row_weights)
        if self.metric is Metric.L2:
            return l2_distance(self.clean_logits, logits, self.row_weights)
        return accuracy(logits, self.answer_ids, self.row_weights)

    def score_masks(self, masks: NodeMasks | EdgeMasks) -> Tensor:
        """Scores [V] of a batch of circuits given as masks (in chunks of variants, see
        :meth:`chunks`)."""
        level = "nodes" if isinstance(masks, NodeMasks) else "edges"
        size = self.chunks(masks.n_variants, level).variants
        return torch.cat(
            [
                self.metric_from_final(self.final_residuals(select_variants(masks, variants)))
                for variants in slices(masks.n_variants, size)
            ]
        )

    def masks(self, circuit: Circuit) -> NodeMasks | EdgeMasks:
        """Dense masks of ``circuit`` (checks it is valid and belongs to this scorer's model)."""
        check_same_model(circuit, self.model.cfg)
        circuit.validate()
        if circuit.config.positions is not None:
            self.check_aligned()
        return circuit_masks(
            circuit, self.layout, self.task.seq_len, self.device, self.components.dtype
        )

    def score(self, circuit: Circuit) -> float:
        """Score of one circuit (see the class docstring for what the number means)."""
        return float(self.score_masks(self.masks(circuit))[0])

    @torch.no_grad()
    def evaluate(self, circuit: Circuit) -> dict[str, float]:
        """Every metric for one circuit: normalised and raw logit difference, KL, accuracy
        and L2 (the answer metrics are NaN for a task without answers; L2 is there only where
        :attr:`reports_l2`)."""
        final = self.final_residuals(self.masks(circuit))
        V, n, d = final.shape
        logits = self.components.unembed(final.reshape(V * n, d)).reshape(V, n, -1)
        values = {
            "score": float(self.metric_from_final(final)[0]),
            "logit_diff": float("nan"),
            "normalised_logit_diff": float("nan"),
            "kl": float(kl_divergence(self.clean_logprobs, logits, self.row_weights)[0]),
            "accuracy": float("nan"),
        }
        if self.reports_l2:
            values["l2"] = float(l2_distance(self.clean_logits, logits, self.row_weights)[0])
        if self.task.has_answers:
            raw = self._raw_logit_diff(final)
            values["logit_diff"] = float(raw[0])
            values["normalised_logit_diff"] = float(
                normalised(raw, self.clean_logit_diff, self.corrupt_logit_diff, self.normalise)[0]
            )
            values["accuracy"] = float(accuracy(logits, self.answer_ids, self.row_weights)[0])
        return values

    def _check_metric(self, metric: Metric) -> Metric:
        needs_answers = (Metric.LOGIT_DIFF, Metric.ACCURACY, Metric.PROB_DIFF)
        if metric in needs_answers and not self.task.has_answers:
            raise ValueError(
                f"metric {metric.value!r} needs answers, and task {self.task.name!r} has none "
                "(Task.from_tokens without answers=): use metric='kl' or 'l2', or give "
                "answers= and wrong="
            )
        if metric is Metric.PROB_DIFF and self.task.prob_ids is None:
            raise ValueError(
                f"metric 'prob_diff' needs a task with good and bad answer tokens (e.g. "
                f"greater_than_years); task {self.task.name!r} has none: use logit_diff"
            )
        return metric

    def check_aligned(self) -> None:
        """ValueError unless every prompt has the same length and the metric reads the last
        position (position-wise circuits need token positions that mean the same thing in
        every prompt, and they read the logits at the last position)."""
        if not self.task.reads_last and not self.task.ragged:
            raise ValueError(
                f"task {self.task.name!r} reads its metric at other positions than the last: "
                "position-wise circuits read the logits at the last position only; drop "
                "positions=True, or build the task with positions=None"
            )
        if self.task.ragged:
            assert self.task.lengths is not None  # ragged: some prompts are shorter
            lengths = sorted({int(x) for x in self.task.lengths})
            raise ValueError(
                f"task {self.task.name!r} mixes prompt lengths {lengths}: position-wise circuits "
                "need prompts of one length; drop positions=True or use prompts of equal length"
            )

    def with_metric(self, metric: str) -> Scorer:
        """The same scorer (sharing its caches) reporting another metric."""
        other = copy.copy(self)
        other.metric = self._check_metric(parse_enum(Metric, metric, "metric"))
        return other

    @property
    def reports_l2(self) -> bool:
        """Whether L2 is reported beside the other metrics: when it is the metric, or the task
        has no answers (compiled tracr models). On a language model's whole vocabulary it is
        a large number that says little, so it is left out there."""
        return self.metric is Metric.L2 or not self.task.has_answers

    def higher_is_better(self) -> bool:
        """Whether a higher score is closer to the full model (not for KL and L2)."""
        return self.metric not in (Metric.KL, Metric.L2)
