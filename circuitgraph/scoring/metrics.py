"""Metrics on last-position logits: logit difference, its normalisations, KL, top-1 accuracy.

All functions take a leading variants axis V (several circuits evaluated in one batch) and
average over the n prompts, returning one value per variant.
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
    "logit_diff",
    "normalised",
    "parse_enum",
    "prob_diff",
]


def accumulating(x: Tensor) -> Tensor:
    """``x`` in at least float32: metrics of float16/bfloat16 models are accumulated there."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def logit_diff(pair_logits: Tensor) -> Tensor:
    """pair_logits [V, n, 2] (answer, wrong) -> mean logit difference [V]."""
    pair_logits = accumulating(pair_logits)
    return (pair_logits[..., 0] - pair_logits[..., 1]).mean(dim=-1)


def normalised(value: Tensor, clean: float, corrupt: float, how: Normalise) -> Tensor:
    """Logit difference as a fraction of the full model (1.0 = full model)."""
    if how is Normalise.FULL:
        return value / clean
    return (value - corrupt) / (clean - corrupt)


def kl_divergence(reference_logprobs: Tensor, logits: Tensor) -> Tensor:
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
    return torch.einsum("nk,vnk->vn", probs, gap).mean(dim=-1)


def prob_diff(logits: Tensor, ids: Tensor, signs: Tensor) -> Tensor:
    """Mean over prompts of sum_k sign_k p(id_k): logits [V, n, vocab], ids and signs [n, K]
    (+1 good, -1 bad, 0 padding) -> [V]. Greater-than's probability mass on later years
    minus the mass on the others."""
    probs = accumulating(logits).softmax(dim=-1)  # [V, n, vocab]
    picked = probs.gather(-1, ids[None].expand(probs.shape[0], -1, -1))  # [V, n, K]
    return (picked * signs[None].to(picked.dtype)).sum(dim=-1).mean(dim=-1)


def accuracy(logits: Tensor, answer_ids: Tensor) -> Tensor:
    """Fraction of prompts whose top token is the answer; logits [V, n, vocab] -> [V]."""
    return (logits.argmax(dim=-1) == answer_ids[None]).float().mean(dim=-1)
