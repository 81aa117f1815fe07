"""Benchmark and measurement: ``cg.stability`` of node pruning, time and memory against one
discovery, with held-out faithfulness.

    python benchmarks/stability.py --model smollm2-135m --task digits --n 32 --resamples 5

The task's distinct clean prompts are split in half (seeded): discovery runs on the first half
(once, then on ``--resamples`` resamples), the second half is held out. Prints one discovery's
time, the stability run's time and ratio, peak memory, circuit sizes as mean +- sd, mean
pairwise Jaccard, the most frequent heads and the held-out score of every run and of the
0.5-consensus with 95 % bootstrap CIs.
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch

import circuitgraph as cg
from circuitgraph.evaluation import evaluate, held_out_scorer, stability


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="digits")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--resamples", type=int, default=5)
    parser.add_argument("--method", choices=("bootstrap", "seeds"), default="bootstrap")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--save", help="write the results as JSON here")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    model = cg.load_model(args.model)
    task = cg.make_task(args.task, model, n=args.n, seed=args.seed)
    train, test = task.split(0.5, seed=args.seed)
    scorer = cg.Scorer(model, train)
    held = held_out_scorer(scorer, test)

    def discover(t):
        return cg.prune_nodes(cg.Scorer(model, t), args.threshold, progress=False)

    began = time.perf_counter()
    once = discover(train)
    one = time.perf_counter() - began
    once_eval = evaluate(held, once, minimality=False)
    result = stability(
        train
        if args.method == "bootstrap"
        else (lambda s: cg.make_task(args.task, model, n=args.n // 2, seed=s)),
        discover,
        resamples=args.resamples,
        seed=args.seed,
        method=args.method,
        held_out=held,
    )
    peak_mib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    summary = result.summary()
    out = {
        "args": vars(args),
        "train_prompts": len(train),
        "train_distinct": train.n_distinct,
        "test_prompts": len(test),
        "one_discovery_s": one,
        "stability_s": result.seconds,
        "ratio": result.seconds / one,
        "peak_rss_mib": peak_mib,
        "single": {
            "heads": len(once.heads()),
            "mlps": len(once.mlps()),
            "in_sample": once.metadata["score"],
            "held_out": once_eval.score,
            "ci": once_eval.ci,
        },
        "summary": summary,
        "runs": result.runs.to_dict(orient="records"),
        "frequency": result.frequency.to_dict(),
        "consensus_held_out": result.evaluation.score,
        "consensus_ci": result.evaluation.ci,
        "consensus_heads": result.consensus(0.5).heads(),
    }
    print(json.dumps(out, indent=2, default=float))
    if args.save:
        with open(args.save, "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2, default=float)


if __name__ == "__main__":
    main()
