"""One rule for uncertainty: when a spread or an interval means nothing, say so or refuse.

Used by :func:`~circuitgraph.evaluation.evaluate`, :func:`~circuitgraph.evaluation.stability`,
:func:`~circuitgraph.evaluation.faithfulness_curve`, ``compare_methods``, the controls and the
command line, so every one of them draws the line in the same place:

- one distinct prompt, or one resample: refused (:class:`UncertaintyError`) - an interval from
  it has zero width and a spread over it is no spread;
- fewer than :data:`MIN_PROMPTS` distinct prompts, or fewer resamples than the minimum of the
  use (:data:`MIN_RESAMPLES` for an interval, :data:`MIN_STABILITY_RESAMPLES` for stability,
  :data:`MIN_RANDOM_SETS` for a percentile against random sets): an :class:`UncertaintyWarning`,
  whose text the caller also records (``run.json``, the result's ``warnings``);
- held-out prompts that share an underlying sequence with the discovery prompts: refused.

Every interval is reported beside the number of distinct prompts it was computed from.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable

MIN_PROMPTS = 8  # distinct prompts below which an interval is flagged
MIN_RESAMPLES = 20  # bootstrap resamples below which an interval is flagged
MIN_STABILITY_RESAMPLES = 2  # rediscoveries below which a stability figure is refused
MIN_RANDOM_SETS = 20  # distinct random sets below which a percentile is refused


class UncertaintyWarning(UserWarning):
    """An interval or spread computed from too few prompts or resamples to mean much."""


class UncertaintyError(ValueError):
    """An interval or spread that would mean nothing (one prompt, one resample)."""


def _warn(message: str, stacklevel: int) -> list[str]:
    warnings.warn(message, UncertaintyWarning, stacklevel=stacklevel + 1)
    return [message]


def check_prompts(distinct: int, what: str, stacklevel: int = 2) -> list[str]:
    """Refuse one distinct prompt; warn below :data:`MIN_PROMPTS`. Returns the warnings given
    (to record with the result).

    >>> check_prompts(12, "the CI")
    []
    >>> check_prompts(1, "the CI")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    circuitgraph.guards.UncertaintyError: the CI needs at least 2 distinct prompts...
    """
    if distinct < 2:
        raise UncertaintyError(
            f"{what} needs at least 2 distinct prompts, got {distinct}: an interval over one "
            "prompt has no width; use more prompts (--n)"
        )
    if distinct < MIN_PROMPTS:
        return _warn(
            f"{what} comes from {distinct} distinct prompts (fewer than {MIN_PROMPTS}): it is "
            "wide and its coverage is not calibrated; use more prompts",
            stacklevel + 1,
        )
    return []


def check_sequences(sequences: int, distinct: int, what: str, stacklevel: int = 2) -> list[str]:
    """Warn when the distinct prompts show fewer than :data:`MIN_PROMPTS` underlying sequences
    (``Task.sequence_keys``): prompts of one sequence move together, so an interval over
    prompts is too narrow for the sequences it never saw (measured: 91 % coverage at 8 prompts
    of a 4-sequence task, against 95-97 % elsewhere). Returns the warnings given.

    >>> check_sequences(6, 6, "the CI")  # one prompt per sequence: the prompt rule applies
    []
    """
    if sequences < distinct and sequences < MIN_PROMPTS:
        return _warn(
            f"{what}: its {distinct} distinct prompts show only {sequences} underlying "
            "sequences (prompts of one sequence move together), so the interval may be too "
            "narrow for other sequences; use a task with more sequences",
            stacklevel + 1,
        )
    return []


def check_resamples(
    resamples: int, what: str, minimum: int = MIN_RESAMPLES, stacklevel: int = 2
) -> list[str]:
    """Refuse a single resample; warn below ``minimum``. Returns the warnings given."""
    if resamples < 2:
        raise UncertaintyError(
            f"{what} needs at least 2 resamples, got {resamples}: one resample has no spread"
        )
    if resamples < minimum:
        return _warn(
            f"{what} comes from {resamples} resamples (fewer than {minimum}): its spread is "
            "itself uncertain; use more resamples",
            stacklevel + 1,
        )
    return []


def check_random_sets(distinct_sets: int, what: str) -> None:
    """Refuse a percentile against fewer than :data:`MIN_RANDOM_SETS` distinct random sets:
    repeated draws of the same few sets are one comparison, not many."""
    if distinct_sets < MIN_RANDOM_SETS:
        raise UncertaintyError(
            f"{what} has only {distinct_sets} distinct random sets to compare with (need "
            f"{MIN_RANDOM_SETS}): a percentile over them means nothing; use a larger pool"
        )


def check_disjoint(discovery: Iterable[object], held_out: Iterable[object], what: str) -> None:
    """Refuse held-out items (prompts or underlying sequences) that the discovery also used."""
    shared = set(discovery) & set(held_out)
    if shared:
        example = sorted(map(str, shared))[0]
        raise UncertaintyError(
            f"{what}: {len(shared)} held-out prompts share their sequence with the discovery "
            f"prompts (e.g. {example!r}), so they are not held out; use another seed or "
            "Task.split"
        )
