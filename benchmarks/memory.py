"""Memory of node pruning on a model of real size, without and with a budget that chunks it.

For each budget (``--budgets``: ``none``, ``tight`` = the smallest budget the Scorer accepts,
one prompt at a time for an edge circuit, or a number of GiB) a fresh Python process loads
the model, notes its resident memory (the baseline: Python, torch and the weights), builds
the Scorer (which estimates its memory first and picks its chunks), node-prunes at
``--threshold`` and prints one markdown row: the budget, the chunks, the estimate, the
measured peak resident memory, the peak above the baseline, the wall time of each stage and
the circuit found (equal for every budget: chunking never changes a score). One run per
budget; the peak is the kernel's ru_maxrss (Linux), so it includes allocator slack.

Usage: python benchmarks/memory.py [--model random:qwen2.5-0.5b] [--n 8] [--threads 2]
    [--budgets none,tight]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import torch

import circuitgraph as cg
from circuitgraph.scoring.memory import GIB, estimate_memory, peak_rss_bytes

HEADER = (
    "| model | n | budget | chunks (8 tries) | estimate (nodes) | peak RSS | peak above baseline "
    "| load | caches | node pruning | heads + MLPs kept |\n" + "|---" * 11 + "|"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random:qwen2.5-0.5b")
    parser.add_argument("--task", default="digits")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--budgets", default="none,tight", help="none, tight or GiB, by commas")
    parser.add_argument("--budget", help=argparse.SUPPRESS)  # one budget, in this process
    args = parser.parse_args()
    if args.budget is not None:
        run(args)
        return
    print(HEADER, flush=True)
    options = ["--model", args.model, "--task", args.task, "--n", str(args.n)]
    options += ["--threshold", str(args.threshold), "--threads", str(args.threads)]
    for budget in args.budgets.split(","):  # a fresh process each: ru_maxrss only grows
        subprocess.run([sys.executable, __file__, *options, "--budget", budget], check=True)


def run(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    model = cg.load_model(args.model)
    task = cg.make_task(args.task, model, n=args.n, seed=0)
    loaded, baseline = time.perf_counter() - began, peak_rss_bytes()
    budget = None if args.budget == "none" else args.budget
    if budget == "tight":
        budget = estimate_memory(model, task).minimum("score") / GIB
    budget = None if budget is None else float(budget)
    scorer = cg.Scorer(model, task, max_memory=budget)
    cached = time.perf_counter() - began - loaded
    circuit = cg.prune_nodes(scorer, args.threshold, progress=False)
    pruned = time.perf_counter() - began - loaded - cached
    peak = peak_rss_bytes()
    chunks = scorer.chunks(8)
    label = "none" if budget is None else f"{args.budget} ({budget:.2f} GiB)"
    print(
        f"| {args.model} | {len(task)} | {label} | {chunks.variants} x {chunks.prompts} "
        f"| {scorer.memory.total('nodes') / GIB:.2f} GiB "
        f"| {peak / GIB:.2f} GiB | {(peak - baseline) / GIB:.2f} GiB | {loaded:.0f} s "
        f"| {cached:.0f} s | {pruned:.0f} s | {len(circuit.heads())} + {len(circuit.mlps())} |",
        flush=True,
    )


if __name__ == "__main__":
    main()
