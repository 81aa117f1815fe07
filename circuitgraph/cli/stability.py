"""``circuitgraph stability``: rediscover a circuit on resampled prompt sets; writes inclusion
frequencies, pairwise Jaccard, per-run sizes and held-out scores, and the consensus circuit."""

from __future__ import annotations

import argparse
import contextlib
from typing import Any

from circuitgraph.cli._arguments import fraction, positive_int
from circuitgraph.cli._checks import check_model, check_task
from circuitgraph.cli._common import (
    Clock,
    add_model_task,
    add_output,
    command_line,
    load,
    log,
    prepare_output,
)
from circuitgraph.options import Method, Sampling, values


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "stability",
        help="rediscover a circuit on resampled prompt sets; frequencies, Jaccard, held-out CIs",
        description="Split the task's distinct sequences in half (every wording of one "
        "sequence on one side); run discovery on --resamples resamples of the first half "
        "(bootstrap) or on tasks built with other seeds less the second half's sequences "
        "(seeds); evaluate every circuit and the 0.5-consensus on the second half.",
    )
    add_model_task(p)
    p.add_argument(
        "--method", choices=values(Method, exclude=(Method.ATTRIBUTION,)), default="nodes"
    )
    p.add_argument("--threshold", type=fraction, default=0.8, help="node pruning threshold")
    p.add_argument("--tau", type=float, default=0.01, help="edge pruning tau (KL)")
    p.add_argument("--resamples", type=positive_int, default=5)
    p.add_argument("--sampling", choices=values(Sampling), default="bootstrap")
    p.add_argument(
        "--cluster",
        help="run the discoveries on Dask: 'local' (a cluster of --workers processes here) or "
        "a scheduler address tcp://host:8786 (default: one after another in this process)",
    )
    p.add_argument(
        "--workers", type=positive_int, default=2, help="processes of --cluster local (default 2)"
    )
    add_output(p)
    p.set_defaults(func=run_stability)


def run_stability(args: argparse.Namespace) -> int:
    from circuitgraph.evaluation import held_out_scorer, stability
    from circuitgraph.evaluation.held_out import outside
    from circuitgraph.guards import MIN_STABILITY_RESAMPLES, check_resamples
    from circuitgraph.parallel import check_cluster, connect
    from circuitgraph.prune.discovery import Discovery
    from circuitgraph.results import atomic_folder, result_dir, versions, write_json
    from circuitgraph.scoring.scorer import Scorer
    from circuitgraph.tasks import make_task
    from circuitgraph.viewer import write_folder_view

    # one resample has no spread: refused before anything is loaded or written
    check_resamples(args.resamples, "stability (--resamples)", MIN_STABILITY_RESAMPLES)
    check_task(args)
    if args.sampling == "seeds" and args.task_file is not None:
        raise ValueError(
            "--sampling seeds draws new prompts of a built-in task; with --task-file use "
            "--sampling bootstrap (resamples of your rows)"
        )
    check_model(args.model, args.device, args.dtype)
    check_cluster(args.cluster)
    value = args.threshold if args.method == "nodes" else args.tau
    run = f"stability-{args.method}-{value:g}-{args.sampling}-{args.resamples}"
    target = result_dir(args.out, args.model, args.task, run)
    prepare_output(args, target)
    clock = Clock()
    setup = load(args, clock)
    model = setup.model
    train, test = setup.task.split(0.5, seed=args.seed)

    discover = Discovery(
        args.model, args.method, args.threshold, args.tau, args.device, args.dtype,
        threads=1 if args.cluster else None,  # one torch thread per worker process
    )  # fmt: skip

    def seeded(seed: int):
        task = make_task(
            args.task,
            model,
            n=args.n,
            corruption=args.corruption,
            seed=seed,
            template=args.template,
            prepend_bos=args.prepend_bos,
        )
        return task.subset(outside(task, test))  # no held-out sequence, in any wording

    log(args, f"{args.resamples} x {args.method} discovery on {len(train)} prompts")
    client = None if args.cluster is None else connect(args.cluster, args.workers)
    with clock.stage("stability"), client or contextlib.nullcontext():
        result = stability(
            train if args.sampling == "bootstrap" else seeded,
            discover,
            resamples=args.resamples,
            seed=args.seed,
            method=args.sampling,
            held_out=held_out_scorer(Scorer(model, train), test),
            client=client,
        )
    assert result.evaluation is not None  # held_out was given
    consensus = result.consensus(0.5)
    summary = result.summary()
    low, high = result.evaluation.ci
    record = {
        "command": command_line(args.argv),
        "argv": args.argv,
        "subcommand": "stability",
        **setup.record,
        "train_prompts": len(train),
        "test_prompts": len(test),
        "versions": versions(),
        "result": summary
        | {
            "consensus_score": result.evaluation.score,
            "consensus_ci": list(result.evaluation.ci),
            "consensus_n_distinct": result.evaluation.n_distinct,
        },
        "warnings": result.warnings,
    }
    with atomic_folder(target, overwrite=args.overwrite) as tmp:
        result.frequency.rename_axis("node").to_csv(tmp / "frequency.csv")
        if len(result.edge_frequency):
            edges = result.edge_frequency.rename_axis(["sender", "receiver"])
            edges.to_csv(tmp / "edge_frequency.csv")
        result.jaccard.to_csv(tmp / "jaccard.csv", index=False)
        result.runs.to_csv(tmp / "runs.csv", index=False)
        consensus.to_json(tmp / "consensus.json")
        write_json(tmp / "run.json", record | clock.record())
        write_folder_view(tmp)  # every node any resample found, a scrubber over frequency
    print(
        f"heads {summary['heads_mean']:.1f} +- {summary['heads_sd']:.1f}, mean Jaccard "
        f"{summary['jaccard_nodes_mean']:.2f}; consensus(0.5) held out "
        f"{result.evaluation.score:.3f} (95 % CI {low:.3f}-{high:.3f}, "
        f"{result.evaluation.n_distinct} prompts)"
    )
    print(target)
    print(f"  explore: {target / 'view.html'} (open it in a browser)")
    return 0
