"""How many candidate edges each speculative batch of the fast edge pruning tests."""

from __future__ import annotations

import math


class BatchSizer:
    """How many candidates the next speculative batch tests: the size with the most expected
    decisions per second.

    Variant i of a batch yields a decision only if the guesses for the i candidates before it
    hold, so with a rate m of wrong guesses a batch of w yields (1 - (1 - m)^w) / m decisions
    on average. Its time is a fixed part plus a part per variant, fitted by least squares on
    the recent batches (recent ones weigh more: the cost changes with the receiver's layer).
    Where a variant is costly (wide models, large vocabularies) and guesses break (a low tau),
    the best batch is small; where guesses hold or variants are cheap, it is the whole
    window. The sizes depend on timings, so batch counts vary from run to run; the decisions
    never do.
    """

    DECAY = 0.9  # weight of the past in the running averages
    FIXED_COST = 2.0  # the fixed part over one variant's until the timings tell

    def __init__(self, window: int) -> None:
        self.window = window
        self.wrong_rate = 0.1
        self.sums = [0.0] * 5  # weight, V, t, V^2, V*t

    def observe(self, wrong: bool) -> None:
        """One decision whose guess was ``wrong`` or right."""
        self.wrong_rate = self.DECAY * self.wrong_rate + (1 - self.DECAY) * wrong

    def timed(self, variants: int, seconds: float) -> None:
        """One batch of ``variants`` variants took ``seconds``."""
        v = float(variants)
        sample = (1.0, v, seconds, v * v, v * seconds)
        self.sums = [self.DECAY * total + x for total, x in zip(self.sums, sample, strict=True)]

    def fixed_cost(self) -> float:
        """The fixed part of a batch's time in units of one variant's."""
        weight, v, t, vv, vt = self.sums
        spread = weight * vv - v * v
        if spread <= 1e-9 * max(weight * vv, 1e-12):  # every recent batch had one size
            return self.FIXED_COST
        per_variant = (weight * vt - v * t) / spread
        fixed = (t - per_variant * v) / weight
        if per_variant <= 0:
            return math.inf  # variants cost nothing measurable
        return max(fixed, 0.0) / per_variant

    def size(self) -> int:
        m, fixed = max(self.wrong_rate, 1e-3), self.fixed_cost()
        if math.isinf(fixed):
            return self.window

        def decisions_per_cost(w: int) -> float:
            return (1 - (1 - m) ** w) / m / (fixed + w)

        return max(range(1, self.window + 1), key=decisions_per_cost)
