"""Memory of node pruning on a model of real size: measured peak against the estimate.

Loads the model, notes the resident memory (the baseline: Python, torch and the weights),
builds the Scorer (which estimates its memory first), node-prunes at ``--threshold`` with one
backward pass, and prints one markdown row: the estimate, the measured peak resident memory
of the process, the peak above the baseline, and the wall time of each stage. One run; the
peak is the kernel's ru_maxrss (Linux), so it includes allocator slack.

Usage: python benchmarks/memory.py [--model random:qwen2.5-0.5b] [--n 8] [--threads 2]
"""

from __future__ import annotations

import argparse
import time

import torch

import circuitgraph as cg
from circuitgraph.memory import GIB, peak_rss_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="random:qwen2.5-0.5b")
    parser.add_argument("--task", default="digits")
    parser.add_argument("--n", type=int, default=8)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-memory", type=float, default=8.0, help="GiB")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    model = cg.load_model(args.model)
    task = cg.make_task(args.task, model, n=args.n, seed=0)
    loaded, baseline = time.perf_counter() - began, peak_rss_bytes()
    scorer = cg.Scorer(model, task, max_memory=args.max_memory)
    cached = time.perf_counter() - began - loaded
    circuit = cg.prune_nodes(scorer, args.threshold, progress=False)
    pruned = time.perf_counter() - began - loaded - cached
    peak = peak_rss_bytes()
    print(
        "| model | n | estimate (nodes) | peak RSS | peak above baseline | load | caches "
        "| node pruning | heads + MLPs kept |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    print(
        f"| {args.model} | {len(task)} | {scorer.memory.total('nodes') / GIB:.2f} GiB "
        f"| {peak / GIB:.2f} GiB | {(peak - baseline) / GIB:.2f} GiB | {loaded:.0f} s "
        f"| {cached:.0f} s | {pruned:.0f} s | {len(circuit.heads())} + {len(circuit.mlps())} |"
    )


if __name__ == "__main__":
    main()
