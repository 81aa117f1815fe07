"""The edge progress bar's estimate: weighted by each layer's cost, not the average rate."""

from __future__ import annotations

import pytest

import circuitgraph as cg
from circuitgraph.prune.progress import MIN_MEASURED, EdgeProgress, depth, remaining_seconds
from circuitgraph.prune.schedule import edge_schedule
from circuitgraph.scoring.layout import Layout


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(progress: EdgeProgress, steps, clock: FakeClock, cost, stop_layer: int) -> float:
    """Test every edge of the layers above ``stop_layer`` at cost(layer) seconds each;
    returns the true time the remaining edges will take."""
    remaining = 0.0
    for step in steps:
        layer = step.receiver.layer
        for _ in step.senders:
            if layer > stop_layer:
                clock.now += cost(layer)
                progress.update(step)
            else:
                remaining += cost(layer)
    return remaining


@pytest.mark.parametrize("stop_layer", [2, 1, 0])
def test_estimate_is_exact_when_cost_grows_with_depth(toy, stop_layer):
    steps = edge_schedule(cg.full_circuit(toy.cfg, qkv=True), Layout.from_config(toy.cfg))
    L = toy.cfg.n_layers
    clock = FakeClock()
    with EdgeProgress(steps, L, "test", disable=True, clock=clock) as progress:
        truth = _run(progress, steps, clock, lambda layer: 0.01 * depth(layer, L), stop_layer)
        estimate = remaining_seconds(
            progress.left, progress.measured_edges, progress.measured_seconds, L
        )
        elapsed, done = clock.now, sum(progress.measured_edges.values())
    assert estimate == pytest.approx(truth)
    average_rate = elapsed / done * sum(progress.left.values())
    assert average_rate < 0.9 * truth  # tqdm's own estimate would be optimistic


def test_untested_edges_cost_nothing_and_no_estimate_before_enough_edges(toy):
    steps = edge_schedule(cg.full_circuit(toy.cfg, qkv=True), Layout.from_config(toy.cfg))
    clock = FakeClock()
    progress = EdgeProgress(steps, toy.cfg.n_layers, "test", disable=True, clock=clock)
    total = sum(progress.left.values())
    step = steps[0]
    clock.now = 5.0
    progress.update(step, 3, tested=False)
    assert progress.measured_edges[step.receiver.layer] == 0
    assert sum(progress.left.values()) == total - 3
    for _ in range(MIN_MEASURED - 1):
        clock.now += 1.0
        progress.update(step)
    left, edges, seconds = progress.left, progress.measured_edges, progress.measured_seconds
    assert remaining_seconds(left, edges, seconds, toy.cfg.n_layers) is None
    clock.now += 1.0
    progress.update(step)
    assert seconds[step.receiver.layer] == pytest.approx(MIN_MEASURED)  # the skip's 5 s left out
    assert remaining_seconds(left, edges, seconds, toy.cfg.n_layers) > 0
    progress.bar.close()


def test_pruning_with_the_bar_shown(toy, capsys):
    scorer = cg.Scorer(toy, cg.make_task("digits", toy, n=4), metric="kl")
    quiet = cg.prune_edges(scorer, tau=0.02, progress=False)
    shown = cg.prune_edges(scorer, tau=0.02, progress=True)
    assert shown == quiet
    assert "edges (fast)" in capsys.readouterr().err


def test_bar_shows_elapsed_and_estimate_as_tqdm_does(toy):
    """Issue 27: the bar read ``[00:03<, 00:16]`` (tqdm's postfix field adds ", ")."""
    import re

    steps = edge_schedule(cg.full_circuit(toy.cfg, qkv=True), Layout.from_config(toy.cfg))
    clock = FakeClock()
    with EdgeProgress(steps, toy.cfg.n_layers, "edges", clock=clock) as progress:
        assert str(progress.bar).endswith("<?]"), str(progress.bar)
        step = steps[0]
        for _ in range(MIN_MEASURED):
            clock.now += 1.0
            progress.update(step)
        shown = str(progress.bar)
    assert re.search(r"\[\d\d:\d\d<\d\d:\d\d\]$", shown), shown
    assert "<," not in shown
