"""Node pruning on SmolLM2-135M (digits): batched search against the one-at-a-time oracle.

Runs the nested threshold sweep 0.97 / 0.9 / 0.8 (backward order) twice in one process:
batched (``batch_size=8``: tries resume from the cached residual stream and are speculated in
windows) and one candidate at a time (``batch_size=1``: a full forward per try, the oracle).
Checks that both give the same circuits and prints markdown tables of wall time, work and
circuit sizes. ``--prefix K`` times both on only the first K candidates of the backward sweep
at threshold 0.8 (for slow machines); the batched nested sweep then still runs in full.

Usage: nice python benchmarks/node_pruning.py [--n 16] [--threads 1] [--prefix K]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

import circuitgraph as cg
from circuitgraph.prune import threshold_sweep
from circuitgraph.prune.nodes import Search, _candidates

THRESHOLDS = (0.97, 0.9, 0.8)


def sweep(scorer, batch_size: int) -> tuple[dict[float, cg.Circuit], dict[str, float]]:
    began = time.perf_counter()
    circuits = threshold_sweep(scorer, THRESHOLDS, batch_size=batch_size, progress=False)
    work = {key: sum(c.metadata[key] for c in circuits.values()) for key in _WORK}
    return circuits, {**work, "seconds": time.perf_counter() - began}


_WORK = ("tries", "evaluations", "batches", "layer_evaluations")


def prefix(scorer, batch_size: int, k: int) -> tuple[list[str], dict[str, float]]:
    """Try only the first ``k`` backward-order candidates at threshold 0.8."""
    began = time.perf_counter()
    present = torch.ones(1, scorer.layout.n_senders)
    search = Search(scorer, present, floor=0.8, max_drop=None, batch_size=batch_size)
    search.sweep(_candidates(scorer.layout, True, False, None)[:k])
    work = {key: getattr(search, key) for key in _WORK[:3]}
    work["layer_evaluations"] = search.layer_evaluations()
    removed = [r["node"] for r in search.removed]
    return removed, {**work, "seconds": time.perf_counter() - began}


def work_row(name: str, work: dict[str, float], baseline: dict[str, float]) -> str:
    return (
        f"| {name} | {work['seconds']:,.1f} | {baseline['seconds'] / work['seconds']:.2f}x "
        f"| {work['tries']:,} | {work['evaluations']:,} | {work['batches']:,} "
        f"| {work['layer_evaluations']:,.0f} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=16, help="prompts")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (shared CPU)")
    parser.add_argument("--prefix", type=int, default=0, help="time only K candidates")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = cg.load_model("smollm2-135m")
    task = cg.make_task("digits", model, n=args.n, seed=0)
    scorer = cg.Scorer(model, task)
    cfg = model.cfg
    print(
        f"smollm2-135m ({cfg.n_layers} layers x {cfg.n_heads} heads + MLPs), digits, "
        f"n={args.n}, seq_len={task.seq_len}, torch threads={args.threads}, "
        f"load average at start {os.getloadavg()[0]:.1f}\n"
    )
    batched_circuits, batched = sweep(scorer, 8)
    if args.prefix:
        scope = f"first {args.prefix} candidates of the backward sweep at 0.8"
        fast_removed, fast = prefix(scorer, 8, args.prefix)
        slow_removed, slow = prefix(scorer, 1, args.prefix)
        same = fast_removed == slow_removed
    else:
        scope = "nested sweep " + " / ".join(map(str, THRESHOLDS))
        fast = batched
        slow_circuits, slow = sweep(scorer, 1)
        same = all(batched_circuits[t] == slow_circuits[t] for t in THRESHOLDS)
    print(f"Timing on the {scope}; load average at end {os.getloadavg()[0]:.1f}\n")
    print("| run | wall s | speed-up | tries | circuits evaluated | batches | layer-evals |")
    print("|---|---|---|---|---|---|---|")
    print(work_row("one at a time (batch_size=1)", slow, slow))
    print(work_row("batched (batch_size=8)", fast, slow))
    print(f"\nSame decisions: {same}\n")
    print("| threshold | heads | MLPs | score | batched wall s |")
    print("|---|---|---|---|---|")
    for threshold, circuit in batched_circuits.items():
        meta = circuit.metadata
        print(
            f"| {threshold} | {len(circuit.heads())} | {len(circuit.mlps())} "
            f"| {meta['score']:.4f} | {meta['seconds']:.1f} |"
        )


if __name__ == "__main__":
    main()
