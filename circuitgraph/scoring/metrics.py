"""Metrics on the logits each row reads: logit difference, its normalisations, KL, top-1
accuracy, probability difference and L2.

All functions take a leading variants axis V (several circuits evaluated in one batch) and
average over the n rows, returning one value per variant. ``weights`` [n] (mean 1; None:
equal) weigh the rows, so that a prompt read at several positions counts once
(:meth:`~circuitgraph.tasks.task.Task.row_weights`).
"""

from __future__ import annotations

import torch
from torch import Tensor

from circuitgraph.options import Metric, Normalise, parse_enum

__all__ = [
    "Metric",
    "Normalise",
    "accumulating",
    "accuracy",
    "kl_divergence",
    "l2_distance",
    "squared_distance",
    "logit_diff",
    "normalised",
    "parse_enum",
    "prob_diff",
]


def accumulating(x: Tensor) -> Tensor:
    """``x`` in at least float32: metrics of float16/bfloat16 models are accumulated there."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def row_mean(values: Tensor, weights: Tensor | None = None) -> Tensor:
    """values [V, n] -> their mean over rows [V], weighted by ``weights`` [n] (mean 1)."""
    if weights is None:
        return values.mean(dim=-1)
    if weights.shape != values.shape[-1:]:
        raise ValueError(f"{tuple(weights.shape)} row weights for {values.shape[-1]} rows")
    return (values * weights.to(values.dtype)).mean(dim=-1)


def logit_diff(pair_logits: Tensor, weights: Tensor | None = None) -> Tensor:
    """pair_logits [V, n, 2] (answer, wrong) -> mean logit difference [V]."""
    pair_logits = accumulating(pair_logits)
    return row_mean(pair_logits[..., 0] - pair_logits[..., 1], weights)


def normalised(value: Tensor, clean: float, corrupt: float, how: Normalise) -> Tensor:
    """Logit difference as a fraction of the full model (1.0 = full model)."""
    if how is Normalise.FULL:
        return value / clean
    return (value - corrupt) / (clean - corrupt)


def kl_divergence(
    reference_logprobs: Tensor, logits: Tensor, weights: Tensor | None = None
) -> Tensor:
    """KL(reference || circuit), reference [n, vocab], logits [V, n, vocab] -> [V].

    Sums p * (log p - log q) term by term (not p.log p - p.z + logsumexp z, which loses
    float32 precision to cancellation); p is exponentiated once, not once per variant, and
    without autograd the gap log p - log q is formed in place.
    """
    logprobs = accumulating(logits).log_softmax(dim=-1)  # [V, n, vocab]
    reference_logprobs = accumulating(reference_logprobs)
    probs = reference_logprobs.exp()  # [n, vocab]
    if logprobs.requires_grad:
        gap = reference_logprobs.expand_as(logprobs) - logprobs
    else:
        gap = logprobs.neg_().add_(reference_logprobs.expand_as(logprobs))
    return row_mean(torch.einsum("nk,vnk->vn", probs, gap), weights)


def squared_distance(reference_logits: Tensor, logits: Tensor) -> Tensor:
    """Per row, the squared distance of the outputs from the full model's: reference
    [n, vocab], logits [V, n, vocab] -> [V, n] (in at least float32)."""
    gap = accumulating(logits) - accumulating(reference_logits)[None]
    return gap.pow(2).sum(dim=-1)


def l2_distance(reference_logits: Tensor, logits: Tensor, weights: Tensor | None = None) -> Tensor:
    """Mean squared distance of the outputs from the full model's: reference [n, vocab],
    logits [V, n, vocab] -> [V] (0.0 = full model). ACDC's metric for compiled tracr models
    with numeric outputs (``d_vocab_out = 1``), where KL is always 0 and logit differences
    do not exist: the sum over the output dimensions of the squared difference, averaged
    over the rows (a prompt's read positions, then prompts)."""
    return row_mean(squared_distance(reference_logits, logits), weights)


def prob_diff(logits: Tensor, ids: Tensor, signs: Tensor, weights: Tensor | None = None) -> Tensor:
    """Mean over prompts of sum_k sign_k p(id_k): logits [V, n, vocab], ids and signs [n, K]
    (+1 good, -1 bad, 0 padding) -> [V]. Greater-than's probability mass on later years
    minus the mass on the others."""
    probs = accumulating(logits).softmax(dim=-1)  # [V, n, vocab]
    picked = probs.gather(-1, ids[None].expand(probs.shape[0], -1, -1))  # [V, n, K]
    return row_mean((picked * signs[None].to(picked.dtype)).sum(dim=-1), weights)


def accuracy(logits: Tensor, answer_ids: Tensor, weights: Tensor | None = None) -> Tensor:
    """Fraction of prompts whose top token is the answer; logits [V, n, vocab] -> [V]."""
    return row_mean((logits.argmax(dim=-1) == answer_ids[None]).float(), weights)
