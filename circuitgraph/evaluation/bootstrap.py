"""Per-prompt metric values and a cluster bootstrap over prompts.

A circuit is run once (one masked forward pass over all prompts); every metric is kept per
prompt, and a confidence interval comes from re-weighting those values: a resample is a
vector of counts over the distinct clean prompts (copies of one prompt move together), so
1,000 resamples cost a [1000, n] matrix product, not 1,000 forward passes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from circuitgraph.options import Metric, Normalise

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer

METRICS = ("normalised_logit_diff", "logit_diff", "kl", "accuracy")


def check_resamples(resamples: object, what: str = "resamples") -> int:
    """``resamples`` as a positive int; ValueError otherwise."""
    if isinstance(resamples, bool) or not isinstance(resamples, int) or resamples < 1:
        raise ValueError(f"{what} must be an integer >= 1, got {resamples!r}")
    return resamples


def check_confidence(confidence: float) -> float:
    """``confidence`` (the level of a confidence interval) as a float in (0, 1)."""
    try:
        value = float(confidence)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(confidence, bool) or not 0.0 < value < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    return value


@dataclass(frozen=True)
class PromptValues:
    """Metric values of V circuits on each of n prompts, and the references they are
    normalised by. Arrays are [V, n] (``clean`` and ``corrupt`` are [n])."""

    logit_diff: np.ndarray  # [V, n] answer - wrong logit
    kl: np.ndarray  # [V, n] KL(full model || circuit) at the last position
    accuracy: np.ndarray  # [V, n] 1.0 where the top token is the answer
    clean: np.ndarray  # [n] the full model's logit difference
    corrupt: np.ndarray | None  # [n] the corrupted run's (only for clean_corrupt)
    normalise: Normalise

    def statistic(self, name: str, weights: np.ndarray) -> np.ndarray:
        """Metric ``name`` under prompt ``weights`` [R, n] -> [V, R]: weighted means, and for
        the normalised logit difference the ratio of weighted means (as the Scorer does)."""
        total = weights.sum(axis=1)  # [R]
        if name == "normalised_logit_diff":
            value = self.logit_diff @ weights.T  # [V, R]
            clean = weights @ self.clean  # [R]
            if self.normalise is Normalise.FULL:
                return value / clean
            corrupt = weights @ self.corrupt
            return (value - corrupt) / (clean - corrupt)
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}; choose one of {METRICS}")
        return (getattr(self, name) @ weights.T) / total

    def point(self, name: str) -> np.ndarray:
        """Metric ``name`` over all prompts [V] (equal weights: the Scorer's number)."""
        return self.statistic(name, np.ones((1, self.logit_diff.shape[1])))[:, 0]


def metric_name(scorer: Scorer) -> str:
    """The PromptValues name of the scorer's own metric."""
    return {
        Metric.LOGIT_DIFF: "normalised_logit_diff",
        Metric.KL: "kl",
        Metric.ACCURACY: "accuracy",
    }[scorer.metric]


def _pair_logit_diff(scorer: Scorer, final: Tensor) -> Tensor:
    """final [V, n, d] -> answer - wrong logit [V, n]."""
    V, n, d = final.shape
    ids = scorer.answer_pairs[None].expand(V, n, 2).reshape(V * n, 2)
    pair = scorer.components.unembed(final.reshape(V * n, d), ids).reshape(V, n, 2)
    return pair[..., 0] - pair[..., 1]


@torch.no_grad()
def prompt_values(scorer: Scorer, masks) -> PromptValues:
    """Run the circuits in ``masks`` once and keep every metric per prompt."""
    final = scorer.final_residuals(masks)  # [V, n, d]
    V, n, d = final.shape
    logit_diff = _pair_logit_diff(scorer, final)
    logprobs = scorer.components.unembed(final.reshape(V * n, d)).reshape(V, n, -1)
    top1 = (logprobs.argmax(dim=-1) == scorer.answer_ids[None]).float()
    logprobs = logprobs.log_softmax(dim=-1)  # [V, n, vocab]
    reference = scorer.clean_logprobs  # [n, vocab]
    kl = torch.einsum("nk,vnk->vn", reference.exp(), reference[None] - logprobs)
    rows = torch.arange(n, device=final.device)
    answers, wrongs = scorer.answer_pairs[:, 0], scorer.answer_pairs[:, 1]
    clean = reference[rows, answers] - reference[rows, wrongs]  # log-softmax gaps = logit gaps
    corrupt = None
    if scorer.normalise is Normalise.CLEAN_CORRUPT:
        corrupt = _pair_logit_diff(scorer, scorer.corrupt_final[None])[0].double().cpu().numpy()
    return PromptValues(
        logit_diff=logit_diff.double().cpu().numpy(),
        kl=kl.double().cpu().numpy(),
        accuracy=top1.double().cpu().numpy(),
        clean=clean.double().cpu().numpy(),
        corrupt=corrupt,
        normalise=scorer.normalise,
    )


def prompt_groups(prompts: list[str]) -> np.ndarray:
    """Index of each row's distinct prompt [n] (the bootstrap's unit)."""
    index: dict[str, int] = {}
    return np.array([index.setdefault(p, len(index)) for p in prompts])


def bootstrap_weights(groups: np.ndarray, resamples: int, seed: int) -> np.ndarray:
    """[resamples, n] row weights: distinct prompts drawn with replacement, each draw
    counting every row of that prompt."""
    n_groups = int(groups.max()) + 1
    rng = np.random.default_rng(seed)
    counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=resamples)
    return counts[:, groups].astype(np.float64)


def interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile ``confidence`` interval of bootstrap ``samples`` [R] (NaNs, from a zero
    denominator, are dropped)."""
    finite = samples[np.isfinite(samples)]
    if not len(finite):
        return float("nan"), float("nan")
    tail = 50.0 * (1.0 - confidence)
    low, high = np.percentile(finite, [tail, 100.0 - tail])
    return float(low), float(high)
