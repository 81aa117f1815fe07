"""Where mean-ablation values come from: a stated set of prompts (the discovery prompts by
default, or ``Scorer(mean_over=task)``), identified so a circuit records it and a held-out
evaluation can reuse it, and the per-position mean over the prompts' real tokens."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from circuitgraph.options import Ablation

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model
    from circuitgraph.tasks.task import Task


def mean_reference(task: Task) -> dict[str, object]:
    """What identifies a set of prompts whose corrupted runs give mean-ablation values: the
    task's name, template, corruption and seed, its prompts and distinct prompts, and the first
    16 hex digits of the SHA-256 of its corrupted prompts (two splits of one task differ)."""
    digest = hashlib.sha256("\n".join(task.corrupted_prompts).encode()).hexdigest()[:16]
    return {
        "task": task.name,
        "template": task.template,
        "corruption": task.corruption,
        "seed": task.seed,
        "n_prompts": len(task),
        "n_distinct": task.n_distinct,
        "sha256": digest,
    }


def check_mean_over(
    mean_over: Task | None, task: Task, ablation: Ablation, model: Model
) -> Task | None:
    """The task whose corrupted runs give the mean-ablation values (None unless
    ``ablation`` is mean); ValueError if ``mean_over`` cannot serve ``task``."""
    if mean_over is None:
        return task if ablation is Ablation.MEAN else None
    if ablation is not Ablation.MEAN:
        raise ValueError(
            f"mean_over gives the values of ablation='mean', but this scorer's ablation is "
            f"{ablation.value!r}: drop mean_over or use ablation='mean'"
        )
    if not all(hasattr(mean_over, a) for a in ("corrupted_tokens", "corrupted_prompts", "bos")):
        raise TypeError(f"mean_over must be a Task or None, got {type(mean_over).__name__}")
    theirs = getattr(mean_over, "model_name", "")
    if theirs and theirs != getattr(model.cfg, "model_name", theirs):
        raise ValueError(
            f"mean_over task {mean_over.name!r} was built for model {theirs!r}, not "
            f"{model.cfg.model_name!r}"
        )
    if mean_over.bos != task.bos or mean_over.seq_len < task.seq_len:
        raise ValueError(
            f"mean_over task {mean_over.name!r} ({mean_over.seq_len} tokens, BOS "
            f"{mean_over.bos}) cannot give mean values at every position of task "
            f"{task.name!r} ({task.seq_len} tokens, BOS {task.bos}): build both the same way"
        )
    return mean_over


def mean_over_real_tokens(outputs: Tensor, task: Task, device: torch.device) -> Tensor:
    """Per-position mean [1, p, S, d] of outputs [n, p, S, d] over the prompts that really
    have a token there (right padding is left out), each prompt counted once however many
    positions it reads (:meth:`~circuitgraph.tasks.task.Task.row_weights`)."""
    weights = task.row_weights()
    if not task.ragged and weights is None:
        return outputs.mean(dim=0, keepdim=True)
    real = task.real_tokens().to(device=device, dtype=outputs.dtype)  # [n, p]
    if weights is not None:
        real = real * weights.to(device=device, dtype=outputs.dtype)[:, None]
    total = torch.einsum("npsd,np->psd", outputs, real)
    return (total / real.sum(dim=0).clamp(min=1)[:, None, None])[None]
