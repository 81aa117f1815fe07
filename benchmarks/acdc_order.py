"""ACDC order: the fast path against the one-forward-per-edge reference, both in full.

``prune_edges(order="acdc")`` with ``method="fast"`` and ``method="reference"`` on each case,
alternating, ``--repeats`` times (default 3). Prints one markdown table with the median wall
time of each, the speed-up as median (min-max over the repeats, each repeat's reference time
over its fast time), the edges tested and removed without a test, and whether the two
methods took identical decisions and kept identical edges in every repeat.

Cases: the shared ACDC reference case (2 layers, 32 prompts; tests/data/acdc_reference) at
tau 0.01 and -1; toy-seq digits (n=8, KL, resample) on the full graph at tau 0.01 and 0.001;
a random 4-layer GPT-2 (8 heads, d_model 128) on digits (n=8) at tau 1e-5.

Usage: python benchmarks/acdc_order.py [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

import circuitgraph as cg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from acdc_case import reference_scorer  # noqa: E402


def _scorer(model_name: str) -> cg.Scorer:
    model = cg.load_model(model_name)
    task = cg.make_task("digits", model, n=8, seed=0)
    return cg.Scorer(model, task, metric="kl", ablation="resample")


def measure(name: str, scorer: cg.Scorer, tau: float, repeats: int) -> str:
    seconds: dict[str, list[float]] = {"fast": [], "reference": []}
    results: dict[str, list[cg.Circuit]] = {"fast": [], "reference": []}
    for _ in range(repeats):
        for method in ("fast", "reference"):
            started = time.perf_counter()
            circuit = cg.prune_edges(scorer, tau, order="acdc", method=method, progress=False)
            seconds[method].append(time.perf_counter() - started)
            results[method].append(circuit)
    ratios = [r / f for r, f in zip(seconds["reference"], seconds["fast"], strict=True)]
    decisions = [[(u, v, removed) for u, v, _, removed in c.metadata["tested"]] for c in
                 results["fast"] + results["reference"]]  # fmt: skip
    identical = all(d == decisions[0] for d in decisions) and all(
        c == results["fast"][0] for c in results["reference"]
    )
    first = results["fast"][0].metadata
    return (
        f"| {name} | {tau:g} | {len(first['tested'])} | {len(first['untested'])} "
        f"| {statistics.median(seconds['reference']):.2f} s "
        f"| {statistics.median(seconds['fast']):.2f} s "
        f"| {statistics.median(ratios):.1f}x ({min(ratios):.1f}-{max(ratios):.1f}) "
        f"| {'yes' if identical else 'NO'} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        "| case | tau | edges tested | removed untested | reference | fast "
        "| speed-up median (min-max) | identical |"
    )
    print("|---|---|---|---|---|---|---|---|")
    cases = [
        ("ACDC reference case (mlp2)", reference_scorer, (0.01, -1.0)),
        ("toy-seq digits, full graph", lambda: _scorer("toy-seq"), (0.01, 0.001)),
        (
            "random GPT-2, 4 layers x 8 heads",
            lambda: _scorer("random:gpt2-tiny,n_layers=4,n_heads=8,d_model=128,d_mlp=512"),
            (1e-5,),
        ),
    ]
    for name, make_scorer, taus in cases:
        scorer = make_scorer()
        for tau in taus:
            print(measure(name, scorer, tau, args.repeats), flush=True)


if __name__ == "__main__":
    main()
