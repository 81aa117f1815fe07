"""Logit lens: read the residual stream after each layer through the final norm and unembedding.

Stage ``-1`` is the embedding (``blocks.0.hook_resid_pre``: token + position embedding), stage
``L`` the residual after block ``L`` (``blocks.L.hook_resid_post``). Each is decoded with the
model's own final normalisation (LayerNorm or RMSNorm, ``ComponentModel.unembed``), so the last
stage reproduces the model's logits exactly. The target at position ``p`` is the next prompt
token, and the task's answer at the last position; the paper reads the last position, where the
top token switches from the last member shown ("4") to the answer ("5").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

import pandas as pd
import torch
from torch import Tensor

from circuitgraph.analysis._common import (
    cached,
    check_task_model,
    device_of,
    position_labels,
    resolve_positions,
    token_str,
)
from circuitgraph.scoring.components import ComponentModel

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model
    from circuitgraph.tasks.task import Task

__all__ = ["lens_logits", "logit_lens", "stage_hooks"]


def stage_hooks(n_layers: int) -> list[str]:
    """Hook names of the lens stages: embedding, then every block's output."""
    return ["blocks.0.hook_resid_pre"] + [f"blocks.{L}.hook_resid_post" for L in range(n_layers)]


@torch.no_grad()
def lens_logits(
    model: Model,
    tokens: Tensor,
    positions: int | Iterable[int] | None = None,
    batch_size: int = 32,
) -> Tensor:
    """Logit-lens logits [stages, n, positions, vocab] (stage 0 = embedding).

    Memory grows with vocab x positions x stages: pass ``positions`` for large models.
    """
    comp = ComponentModel(model)
    chosen = resolve_positions(positions, tokens.shape[1])
    hooks = stage_hooks(comp.n_layers)
    resid = cached(model, tokens, hooks, batch_size)
    stacked = torch.stack([resid[h][:, chosen] for h in hooks])  # [stages, n, P, d]
    S, n, P, d = stacked.shape
    flat = stacked.reshape(S * n * P, d).to(device_of(model))
    return comp.unembed(flat).float().cpu().reshape(S, n, P, -1)


@torch.no_grad()
def logit_lens(
    model: Model,
    task: Task,
    positions: int | Iterable[int] | None = -1,
    corrupted: bool = False,
    per_prompt: bool = False,
    batch_size: int = 16,
) -> pd.DataFrame:
    """Rank and probability of the target and the top token at every stage and position.

    One row per (stage, position), averaged over prompts (``per_prompt=True``: one row per
    prompt, stage and position instead); ranks count the tokens with a strictly higher logit.
    Columns: ``stage`` (-1 = embedding), ``stage_name``, ``position``, ``token``, ``target``,
    ``target_rank`` (mean; 0 = top), ``target_median_rank``, ``target_prob``, ``accuracy``
    (top token == target), ``top_token`` (most frequent top token), ``top_prob`` and, at the
    last clean position, ``wrong_rank``/``wrong_prob`` of the task's wrong answer (the last
    member shown; NaN elsewhere). ``positions=None`` means every position.
    """
    check_task_model(model, task)
    if task.ragged:
        raise ValueError(
            f"logit_lens reads every prompt at the same positions; task {task.name!r} mixes "
            "prompt lengths: use prompts of one length (e.g. one template)"
        )
    comp = ComponentModel(model)
    tokens = task.corrupted_tokens if corrupted else task.clean_tokens
    answers = task.corrupted_answer_ids if corrupted else task.answer_ids
    n, seq = tokens.shape
    chosen = resolve_positions(positions, seq)
    targets = torch.cat([tokens[:, 1:], answers[:, None]], dim=1)[:, chosen]  # [n, P]
    wrong = task.wrong_ids
    hooks = stage_hooks(comp.n_layers)
    labels = position_labels(model.tokenizer, tokens, task.member_positions)
    target_labels = labels[1:] + ["<answer>"]
    tok = model.tokenizer
    nan = float("nan")
    records = []
    for lo in range(0, n, batch_size):
        resid = cached(model, tokens[lo : lo + batch_size], hooks, batch_size)
        tgt = targets[lo : lo + batch_size]  # [b, P]
        for stage, hook in enumerate(hooks):
            x = resid[hook][:, chosen]  # [b, P, d]
            b, P, d = x.shape
            logits = comp.unembed(x.reshape(b * P, d).to(device_of(model))).float().cpu()
            logits = logits.reshape(b, P, -1)
            probs = logits.softmax(dim=-1)
            rank = (logits > logits.gather(-1, tgt[..., None])).sum(dim=-1)  # [b, P]
            p_target = probs.gather(-1, tgt[..., None])[..., 0]
            top_prob, top = probs.max(dim=-1)
            w = wrong[lo : lo + batch_size, None].expand(b, P)
            w_rank = (logits > logits.gather(-1, w[..., None])).sum(dim=-1)
            w_prob = probs.gather(-1, w[..., None])[..., 0]
            for i in range(b):
                for j, pos in enumerate(chosen):
                    last = pos == seq - 1 and not corrupted
                    records.append(
                        {
                            "prompt": lo + i,
                            "stage": stage - 1,
                            "stage_name": "embed" if stage == 0 else f"L{stage - 1}",
                            "position": pos,
                            "token": labels[pos],
                            "target": target_labels[pos],
                            "target_token": token_str(tok, tgt[i, j]),
                            "target_rank": int(rank[i, j]),
                            "target_prob": float(p_target[i, j]),
                            "top_token": token_str(tok, top[i, j]),
                            "top_prob": float(top_prob[i, j]),
                            "correct": bool(top[i, j] == tgt[i, j]),
                            "wrong_rank": float(w_rank[i, j]) if last else nan,
                            "wrong_prob": float(w_prob[i, j]) if last else nan,
                        }
                    )
    frame = pd.DataFrame(records)
    if per_prompt:
        return frame
    keys = ["stage", "stage_name", "position", "token", "target"]
    grouped = frame.groupby(keys, sort=True)
    summary = grouped.agg(
        target_rank=("target_rank", "mean"),
        target_median_rank=("target_rank", "median"),
        target_prob=("target_prob", "mean"),
        accuracy=("correct", "mean"),
        top_token=("top_token", lambda s: s.value_counts().index[0]),
        top_prob=("top_prob", "mean"),
        wrong_rank=("wrong_rank", "mean"),
        wrong_prob=("wrong_prob", "mean"),
    )
    return summary.reset_index().sort_values(["position", "stage"], ignore_index=True)
