"""Fit the constants of the fast edge pruning's batch cost model to measured batch times.

The fast path sizes its speculative batches from a cost it counts, not times
(``circuitgraph.prune.batching.CostModel``): seconds = batch + call * calls + macs / rate +
weights read / rate.
This script runs ``prune_edges(method="fast")`` on the benchmark models (digits, n=8, KL,
resample ablation), records for every batch what the evaluator counted (calls, multiply-adds,
weights read) and the wall time the batch took, and fits the four constants by least squares
on relative error (each batch weighs 1 / its time, so the many small batches count as much
as the few large ones). It prints the fit, the current constants, and per case the median
ratio of measured to predicted time under each (1 = a perfect fit).

Usage: python benchmarks/batch_costs.py [--threads 1] [--cases toy-seq,gpt2-2l,...]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import circuitgraph as cg
import circuitgraph.prune.edges as edges_module
from circuitgraph.prune.batching import BatchSizer, CostModel, Work

CASES = {
    "toy-seq": ("toy-seq", None, (0.01, 0.001)),
    "gpt2-2l": ("random:gpt2-tiny,n_layers=2,init=200", None, (0.01, 0.001)),
    "gpt2-4l": ("random:gpt2-tiny,n_layers=4,init=200", None, (0.01, 0.001)),
    "gpt2-small-2l": ("random:gpt2-small,n_layers=2,init=200", None, (0.01,)),
    "smollm2-nodes": ("smollm2-135m", 0.8, (0.01,)),  # inside its 0.8 node circuit
}


def batches_of(model_name: str, node_threshold: float | None, tau: float) -> list[tuple]:
    """(calls, macs, weights read, seconds) of every batch of one fast run."""
    model = cg.load_model(model_name)
    task = cg.make_task("digits", model, n=8, seed=0)
    scorer = cg.Scorer(model, task, metric="kl", ablation="resample")
    start = None
    if node_threshold is not None:
        nodes = scorer.with_metric("logit_diff")
        start = cg.prune_nodes(nodes, threshold=node_threshold, progress=False)
    samples: list[tuple] = []
    counted: list[tuple[int, float, float]] = []

    class Recording(BatchSizer):
        def size(self) -> int:
            self.began = time.perf_counter()
            return super().size()

        def spent(self, variants: int, cost: float) -> None:
            samples.append((*counted[-1], time.perf_counter() - self.began))
            super().spent(variants, cost)

    class Counting(CostModel):
        def seconds(self, work: Work) -> float:
            counted.append((work.calls, work.macs, work.weights))
            return super().seconds(work)

    original = edges_module.BatchSizer, edges_module.CostModel
    edges_module.BatchSizer, edges_module.CostModel = Recording, Counting
    try:
        cg.prune_edges(scorer, tau, start=start, method="fast", progress=False)  # warm-up
        samples.clear()
        cg.prune_edges(scorer, tau, start=start, method="fast", progress=False)
    finally:
        edges_module.BatchSizer, edges_module.CostModel = original
    return samples


def fit(samples: list[tuple]) -> CostModel:
    """Least squares on relative error: each batch's predicted / measured time ~ 1."""
    rows = torch.tensor([[1.0, *sample] for sample in samples], dtype=torch.float64)
    design, seconds = rows[:, :4], rows[:, 4]
    weights = 1.0 / seconds.clamp(min=1e-6)
    scale = design.abs().max(dim=0).values.clamp(min=1.0)  # columns of comparable size
    solution = torch.linalg.lstsq(
        design / scale * weights[:, None], (seconds * weights)[:, None]
    ).solution.flatten()
    batch, call, per_mac, per_weight = (solution / scale).clamp(min=1e-15).tolist()
    return CostModel(batch, call, 1.0 / per_mac, 1.0 / per_weight)


def median_ratio(samples: list[tuple], model: CostModel) -> float:
    return statistics.median(t / model.seconds(Work(c, m, w)) for c, m, w, t in samples)


def describe(model: CostModel) -> str:
    return (
        f"batch {model.batch:.2e} s, call {model.call:.2e} s, {model.macs_per_second:.2e} MAC/s, "
        f"{model.weights_per_second:.2e} weights read/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    per_case = {}
    for key in args.cases.split(","):
        model_name, node_threshold, taus = CASES[key]
        per_case[key] = [s for tau in taus for s in batches_of(model_name, node_threshold, tau)]
        print(f"{key}: {len(per_case[key])} batches", flush=True)
    everything = [s for samples in per_case.values() for s in samples]
    fitted = fit(everything)
    current = CostModel.for_device("cpu", args.threads)
    print(f"\nfit ({len(everything)} batches, {args.threads} thread(s)): {describe(fitted)}")
    print(f"current: {describe(current)}\n")
    print("| case | batches | measured / predicted, fit | measured / predicted, current |")
    print("|---|---|---|---|")
    for key, samples in per_case.items():
        print(
            f"| {key} | {len(samples)} | {median_ratio(samples, fitted):.2f} "
            f"| {median_ratio(samples, current):.2f} |"
        )


if __name__ == "__main__":
    main()
