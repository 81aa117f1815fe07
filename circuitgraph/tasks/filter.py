"""The paper's filter: keep only the prompts the model itself gets right."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from circuitgraph.tasks.task import Task

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model


def probability_ratio_ok(logits: Tensor, answer_ids: Tensor, wrong_ids: Tensor) -> Tensor:
    """The paper's filter: top token is the answer and p(answer) > 2 p(wrong); [n] bool."""
    probs = torch.softmax(
        logits.to(torch.promote_types(logits.dtype, torch.float32)), dim=-1
    )  # [n, vocab]
    rows = torch.arange(len(answer_ids), device=answer_ids.device)
    top_ok = logits.argmax(dim=-1) == answer_ids
    return top_ok & (probs[rows, answer_ids] > 2 * probs[rows, wrong_ids])


def filter_task(task: Task, model: Model, batch_size: int = 32) -> Task:
    """Keep prompts whose top token is the answer and p(answer) > 2 p(wrong) (paper's rule)."""
    device = _device(model)
    keep = []
    with torch.no_grad():
        for lo in range(0, len(task), batch_size):
            out = model(task.clean_tokens[lo : lo + batch_size].to(device))
            last = task.last_positions[lo : lo + batch_size]  # each prompt's last real token
            logits = getattr(out, "logits", out).float().cpu()[torch.arange(len(last)), last]
            answers = task.answer_ids[lo : lo + batch_size]
            wrongs = task.wrong_ids[lo : lo + batch_size]
            keep.append(probability_ratio_ok(logits, answers, wrongs))
    mask = torch.cat(keep)
    if not mask.any():
        raise ValueError(
            f"filter kept none of the {len(task)} prompts of task {task.name!r}: the model's "
            "top token is never the answer with p(answer) > 2 p(wrong)"
        )
    return task.subset(mask)


def _device(model: Model) -> torch.device:
    cfg_device = getattr(getattr(model, "cfg", None), "device", None)
    if cfg_device is not None:
        return torch.device(cfg_device)
    if callable(getattr(model, "parameters", None)):
        for p in model.parameters():
            return p.device
    return torch.device("cpu")
