"""How many candidate edges each speculative batch of the fast edge pruning tests."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# Fitted by benchmarks/batch_costs.py on 1,830 batches (1 CPU thread, 5 models from toy-seq to
# SmolLM2-135M): measured / predicted time has a median of 0.85 to 1.18 per model. Reading the
# weights (about 19 GB/s) does not speed up with threads; the arithmetic does.
CPU_BATCH, CPU_CALL, CPU_MACS, CPU_WEIGHTS = 4.4e-4, 1.9e-4, 3.6e10, 4.7e9
# Not fitted (no accelerator here): Python and launches cost what they cost on a CPU, the
# arithmetic and memory are about a thousand and a hundred times faster.
ACCELERATOR_MACS, ACCELERATOR_WEIGHTS = 3.6e13, 4.7e11


@dataclass
class Work:
    """What the fast path's evaluator computed (see :class:`CostModel`): calls of a head
    group, MLP, input correction or unembedding, their multiply-adds and the weights they
    read (a product with few rows costs the reading of its weights)."""

    calls: int = 0
    macs: float = 0.0
    weights: float = 0.0

    def spend(self, macs: float, weights: float) -> None:
        """One call of ``macs`` multiply-adds reading ``weights`` weights."""
        self.calls += 1
        self.macs += macs
        self.weights += weights

    def since(self, earlier: Work) -> Work:
        """The work done after ``earlier`` (a copy taken then) up to now."""
        return Work(
            self.calls - earlier.calls, self.macs - earlier.macs, self.weights - earlier.weights
        )

    def copy(self) -> Work:
        return replace(self)


@dataclass(frozen=True)
class CostModel:
    """A batch's cost in estimated seconds, from what it computed (counted by the evaluator):
    a fixed part per batch (masks, reachability, bookkeeping), one per call (a head group,
    MLP, input correction or unembedding: a few dozen torch operations), the multiply-adds
    and the weights read (a product of few rows costs the reading of its weights). Counted,
    not timed: with a clock, batch sizes would follow the machine's load, and with them the
    float rounding of the batched arithmetic, so a decision within rounding of tau could
    differ between two runs of the same command. (The CPU's thread count scales the
    arithmetic rate, so runs with other thread counts may batch differently.)

    Only the ratios of the constants matter (see ``CPU_BATCH``).
    """

    batch: float  # seconds per batch
    call: float  # seconds per call
    macs_per_second: float
    weights_per_second: float  # read from memory

    @classmethod
    def for_device(cls, device_type: str, threads: int = 1) -> CostModel:
        """The constants for a torch device type (cpu running ``threads`` threads, or an
        accelerator)."""
        if device_type != "cpu":
            return cls(CPU_BATCH, CPU_CALL, ACCELERATOR_MACS, ACCELERATOR_WEIGHTS)
        return cls(CPU_BATCH, CPU_CALL, CPU_MACS * threads, CPU_WEIGHTS)

    def seconds(self, work: Work) -> float:
        return (
            self.batch
            + self.call * work.calls
            + work.macs / self.macs_per_second
            + work.weights / self.weights_per_second
        )


class BatchSizer:
    """How many candidates the next speculative batch tests: the size with the most expected
    decisions per second.

    Variant i of a batch yields a decision only if the guesses for the i candidates before it
    hold, so with a rate m of wrong guesses a batch of w yields (1 - (1 - m)^w) / m decisions
    on average. Its time is a fixed part plus a part per variant, fitted by least squares on
    the recent batches (recent ones weigh more: the cost changes with the receiver's layer),
    in the units of :class:`CostModel`.
    Where a variant is costly (wide models, large vocabularies) and guesses break (a low tau),
    the best batch is small; where guesses hold or variants are cheap, it is the whole
    window. The sizes depend only on the run's own decisions and counted costs, so two runs
    of the same command batch, round and decide alike.
    """

    DECAY = 0.9  # weight of the past in the running averages
    FIXED_COST = 2.0  # the fixed part over one variant's until the costs tell

    def __init__(self, window: int) -> None:
        self.window = window
        self.wrong_rate = 0.1
        self.sums = [0.0] * 5  # weight, V, t, V^2, V*t

    def observe(self, wrong: bool) -> None:
        """One decision whose guess was ``wrong`` or right."""
        self.wrong_rate = self.DECAY * self.wrong_rate + (1 - self.DECAY) * wrong

    def spent(self, variants: int, cost: float) -> None:
        """One batch of ``variants`` variants cost ``cost``."""
        v = float(variants)
        sample = (1.0, v, cost, v * v, v * cost)
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
