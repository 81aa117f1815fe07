"""Activation patching of single heads at single positions, and cross-prompt replacement.

``head_position_patching`` builds the classic heat maps: *noising* runs the clean prompts and
replaces one head's ``hook_z`` at one position by its value on the corrupted prompt; *denoising*
runs the corrupted prompts and restores the clean value. Both report the logit difference
(answer - wrong, last position) normalised as ``(ld - ld_corrupt) / (ld_clean - ld_corrupt)``:
1 = clean behaviour, 0 = corrupted behaviour. Many (head, position) variants run in one batch.

``replace_head_activations`` swaps heads' activations between two prompt sets (e.g. digits into
number words, prompt for prompt) and shows how the top predictions change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import Tensor

from circuitgraph.analysis._common import (
    HeadRef,
    cached,
    check_same_model_tasks,
    check_task_model,
    device_of,
    last_logits,
    position_labels,
    resolve_heads,
    resolve_positions,
    token_str,
)
from circuitgraph.options import Direction, values

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model
    from circuitgraph.tasks.task import Task

__all__ = ["DIRECTIONS", "head_position_patching", "replace_head_activations"]

DIRECTIONS = values(Direction)


def _z_hook(layer: int) -> str:
    return f"blocks.{layer}.attn.hook_z"


def _patch_hook(
    n: int, slots: Tensor, positions: Tensor, heads: Tensor, source: Tensor
) -> Callable[..., Tensor]:
    """Hook writing ``source[:, pos, head]`` into variant ``slot`` of a [V * n, p, H, d] z.

    slots, positions, heads: [m] long (one entry per patched variant of this layer);
    source: [n, p, H, d_head].
    """

    def hook(z: Tensor, hook: Any = None) -> Tensor:
        z = z.clone()
        view = z.view(-1, n, *z.shape[1:])  # [V, n, p, H, d_head]
        view[slots, :, positions, heads] = source[:, positions, heads].transpose(0, 1)
        return z

    return hook


def _logit_diff(logits: Tensor, task: Task) -> Tensor:
    """logits [V * n, vocab] -> per-prompt logit difference [V, n] (answer - wrong)."""
    n = len(task)
    answer = task.answer_ids.repeat(logits.shape[0] // n)
    wrong = task.wrong_ids.repeat(logits.shape[0] // n)
    rows = torch.arange(logits.shape[0])
    return (logits[rows, answer] - logits[rows, wrong]).view(-1, n)


@torch.no_grad()
def _run_variants(
    model: Model,
    base: Tensor,
    source: dict[int, Tensor],
    variants: Sequence[tuple[HeadRef, int]],
    batch_size: int,
) -> Tensor:
    """Last-position logits [len(variants) * n, vocab], one patched (head, pos) per variant."""
    n = base.shape[0]
    per_chunk = max(1, batch_size // n)
    device = device_of(model)
    outputs = []
    for lo in range(0, len(variants), per_chunk):
        chunk = variants[lo : lo + per_chunk]
        hooks = []
        for layer in sorted({ref.layer for ref, _ in chunk}):
            picked = [(j, r.head, pos) for j, (r, pos) in enumerate(chunk) if r.layer == layer]
            slots, heads, positions = torch.tensor(picked, device=device).T
            hook = _patch_hook(n, slots, positions, heads, source[layer].to(device))
            hooks.append((_z_hook(layer), hook))
        outputs.append(last_logits(model, base.repeat(len(chunk), 1), hooks))
    return torch.cat(outputs)


@torch.no_grad()
def head_position_patching(
    model: Model,
    task: Task,
    heads: str | Iterable[str] | None = None,
    positions: int | Iterable[int] | None = None,
    directions: str | Sequence[str] = DIRECTIONS,
    batch_size: int = 1024,
) -> pd.DataFrame:
    """Noising and denoising effect of each head at each position (one row per combination).

    Columns: ``direction``, ``head``, ``layer``, ``head_index``, ``position``, ``token``
    (position label), ``logit_diff`` (raw, mean over prompts) and ``normalised`` (1 = clean,
    0 = corrupted; NaN when clean and corrupted logit differences coincide).
    ``batch_size`` bounds the rows of one forward pass (variants x prompts).
    """
    check_task_model(model, task)
    directions = [directions] if isinstance(directions, str) else list(directions)
    unknown = [d for d in directions if d not in DIRECTIONS]
    if unknown or not directions:
        raise ValueError(f"unknown direction(s) {unknown}; choose from {DIRECTIONS}")
    refs = resolve_heads(model.cfg, heads)
    chosen = resolve_positions(positions, task.seq_len)
    layers = sorted({ref.layer for ref in refs})
    names = [_z_hook(layer) for layer in layers]
    z = {
        "clean": cached(model, task.clean_tokens, names),
        "corrupted": cached(model, task.corrupted_tokens, names),
    }
    ld_clean = float(_logit_diff(last_logits(model, task.clean_tokens), task).mean())
    ld_corrupt = float(_logit_diff(last_logits(model, task.corrupted_tokens), task).mean())
    span = ld_clean - ld_corrupt
    labels = position_labels(model.tokenizer, task.clean_tokens, task.member_positions)
    variants = [(ref, pos) for ref in refs for pos in chosen]
    frames = []
    for direction in directions:
        base_name, source_name = ("clean", "corrupted")
        if direction == "denoising":
            base_name, source_name = source_name, base_name
        base = task.clean_tokens if base_name == "clean" else task.corrupted_tokens
        source = {layer: z[source_name][_z_hook(layer)] for layer in layers}
        logits = _run_variants(model, base, source, variants, batch_size)
        ld = _logit_diff(logits, task).mean(dim=1)  # [V]
        normalised = (ld - ld_corrupt) / span if span != 0 else torch.full_like(ld, float("nan"))
        frames.append(
            pd.DataFrame(
                {
                    "direction": direction,
                    "head": [ref.name for ref, _ in variants],
                    "layer": [ref.layer for ref, _ in variants],
                    "head_index": [ref.head for ref, _ in variants],
                    "position": [pos for _, pos in variants],
                    "token": [labels[pos] for _, pos in variants],
                    "logit_diff": ld.numpy(),
                    "normalised": normalised.numpy(),
                }
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table.attrs.update(clean_logit_diff=ld_clean, corrupted_logit_diff=ld_corrupt)
    return table


@torch.no_grad()
def replace_head_activations(
    model: Model,
    heads: str | Iterable[str],
    source_task: Any,
    target_task: Any,
    positions: int | Iterable[int] | None = None,
    k: int = 5,
) -> pd.DataFrame:
    """Run the target prompts with ``heads``' activations (``hook_z``) taken from the source
    prompts (prompt i from source prompt i, at ``positions``, default all; the first
    min(n_source, n_target) prompts); one row per prompt with the top-k tokens before and
    after and the probabilities of both tasks' answers.
    """
    check_task_model(model, source_task, "source task")
    check_task_model(model, target_task, "target task")
    check_same_model_tasks([source_task, target_task])
    if source_task.seq_len != target_task.seq_len:
        raise ValueError(
            f"source task {source_task.name!r} has {source_task.seq_len}-token prompts, "
            f"target task {target_task.name!r} {target_task.seq_len}: positions must line up"
        )
    refs = resolve_heads(model.cfg, heads)
    chosen = resolve_positions(positions, target_task.seq_len)
    n = min(len(source_task), len(target_task))
    target = target_task.clean_tokens[:n]
    layers = sorted({ref.layer for ref in refs})
    z = cached(model, source_task.clean_tokens[:n], [_z_hook(layer) for layer in layers])
    device = device_of(model)
    hooks = []
    for layer in layers:
        layer_heads = [ref.head for ref in refs if ref.layer == layer]
        pairs = [(h, p) for h in layer_heads for p in chosen]
        heads_t, pos_t = torch.tensor(pairs, device=device).T
        slots = torch.zeros_like(heads_t)
        hooks.append(
            (_z_hook(layer), _patch_hook(n, slots, pos_t, heads_t, z[_z_hook(layer)].to(device)))
        )
    before = last_logits(model, target).softmax(dim=-1)  # [n, vocab]
    after = last_logits(model, target, hooks).softmax(dim=-1)
    tok = model.tokenizer
    rows = torch.arange(n)
    answer, source_answer = target_task.answer_ids[:n], source_task.answer_ids[:n]
    top_before, top_after = before.topk(k).indices, after.topk(k).indices

    def names(ids: Tensor) -> list[str]:
        return [token_str(tok, t) for t in ids]

    return pd.DataFrame(
        {
            "prompt": target_task.clean_prompts[:n],
            "source_prompt": source_task.clean_prompts[:n],
            "answer": target_task.answers[:n],
            "source_answer": source_task.answers[:n],
            "top_before": [names(t) for t in top_before],
            "top_after": [names(t) for t in top_after],
            "top1_changed": (top_before[:, 0] != top_after[:, 0]).numpy(),
            "answer_prob_before": before[rows, answer].numpy(),
            "answer_prob_after": after[rows, answer].numpy(),
            "source_answer_prob_before": before[rows, source_answer].numpy(),
            "source_answer_prob_after": after[rows, source_answer].numpy(),
        }
    )
