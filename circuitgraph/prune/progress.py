"""Edge pruning's progress bar, with a time estimate weighted by the cost of each layer.

Testing an edge costs a re-run of what lies downstream of its receiver, so edges into the
last layers are cheap and edges into the first layers dear: tqdm's own estimate (the average
rate so far) is wildly optimistic early in a run. Receivers are visited from the last layer
down, and the layers already visited have been pruned, so what a change must re-run grows
about linearly with the number of layers after the receiver. The estimate is therefore:
edges still to test in each layer x the measured time per edge of the layer being pruned
now, scaled by ``depth(layer) / depth(current layer)``, where ``depth`` counts the layers
after a receiver (plus one for the logits). It is recomputed from the latest measurements
after every update.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence

from tqdm.auto import tqdm

from circuitgraph.prune.schedule import Step

MIN_MEASURED = 8  # edges of a layer measured before its own rate is trusted


def depth(layer: int, n_layers: int) -> int:
    """Layers a change at ``layer`` re-runs, plus one (logits: layer n_layers, depth 1)."""
    return n_layers + 1 - layer


def remaining_seconds(
    left: dict[int, int],
    measured_edges: dict[int, int],
    measured_seconds: dict[int, float],
    n_layers: int,
) -> float | None:
    """Estimated seconds for the edges still to test.

    left: edges still to test per receiver layer; measured_edges / measured_seconds: what was
    tested so far per layer, and how long it took. The rate comes from the lowest (latest)
    layer with at least :data:`MIN_MEASURED` edges measured; None before any has.
    """
    trusted = [layer for layer, count in measured_edges.items() if count >= MIN_MEASURED]
    if not trusted:
        return None
    reference = min(trusted)
    per_edge = measured_seconds[reference] / measured_edges[reference]
    scale = per_edge / depth(reference, n_layers)
    return sum(count * scale * depth(layer, n_layers) for layer, count in left.items())


def bar_format(eta: str) -> str:
    """The bar's tqdm format with ``eta`` (our estimate) after the elapsed time, as tqdm's own
    ``[elapsed<remaining]``. (tqdm's ``{postfix}`` field would prefix it with ", ".)

    >>> bar_format("00:16")
    '{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<00:16]'
    """
    return "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<" + eta + "]"


class EdgeProgress:
    """A tqdm bar over the edges of ``steps`` whose estimate is :func:`remaining_seconds`."""

    def __init__(
        self,
        steps: Sequence[Step],
        n_layers: int,
        what: str,
        disable: bool = False,
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.n_layers, self.clock = n_layers, clock
        self.left: Counter[int] = Counter()
        for step in steps:
            self.left[step.receiver.layer] += len(step.senders)
        self.measured_edges: Counter[int] = Counter()
        self.measured_seconds: dict[int, float] = {}
        self.bar = tqdm(
            total=sum(self.left.values()),
            desc=what,
            unit="edge",
            disable=disable,
            leave=False,
            bar_format=bar_format("?"),
        )
        self.since = clock()

    def update(self, step: Step, count: int = 1, tested: bool = True) -> None:
        """``count`` edges of ``step`` are decided; ``tested``: the time since the last
        update was spent testing them (untested removals cost nothing)."""
        now = self.clock()
        layer = step.receiver.layer
        self.left[layer] -= count
        if tested:
            self.measured_edges[layer] += count
            self.measured_seconds[layer] = self.measured_seconds.get(layer, 0.0) + (
                now - self.since
            )
        self.since = now
        if not self.bar.disable:  # the estimate is only for the bar (one per decided edge)
            estimate = remaining_seconds(
                self.left, self.measured_edges, self.measured_seconds, self.n_layers
            )
            eta = "?" if estimate is None else tqdm.format_interval(estimate)
            self.bar.bar_format = bar_format(eta)
        self.bar.update(count)

    def __enter__(self) -> EdgeProgress:
        return self

    def __exit__(self, *exc) -> None:
        self.bar.close()
