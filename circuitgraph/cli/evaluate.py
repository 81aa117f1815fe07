"""``circuitgraph evaluate``: a circuit file's faithfulness with bootstrap CIs, completeness
and minimality, in-sample or on held-out prompts; writes a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitgraph.cli._common import (
    Clock,
    add_model_task,
    add_output,
    check_model,
    check_task,
    command_line,
    load,
    log,
    positive_int,
    prepare_output,
)
from circuitgraph.options import Ablation, values

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model
    from circuitgraph.tasks.task import Task


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="faithfulness of a circuit file with bootstrap CIs (optionally held out)",
        description="Score a circuit with 95%% bootstrap CIs over prompts (normalised logit "
        "difference, KL, top-1), its completeness and its minimality. With --held-out the "
        "prompts are new ones: drawn with seed --seed + 1, minus every clean prompt of the "
        "discovery set (the task built with --n and --seed, as discover builds it).",
    )
    p.add_argument("circuit", type=Path, help="circuit.json (from discover or sweep)")
    add_model_task(p)
    p.add_argument("--held-out", action="store_true", help="score on prompts discovery never saw")
    p.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples")
    p.add_argument("--ablation", choices=values(Ablation), default="mean")
    add_output(p)
    p.set_defaults(func=run_evaluate)


def held_out_task(model: Model, task: Task, args: argparse.Namespace) -> Task:
    """Prompts drawn with seed + 1 that are not clean prompts of ``task``."""
    from circuitgraph.tasks import make_task

    fresh = make_task(
        args.task,
        model,
        n=args.n,
        corruption=args.corruption,
        seed=args.seed + 1,
        template=args.template,
        prepend_bos=args.prepend_bos,
    )
    seen = set(task.clean_prompts)
    keep = [i for i, p in enumerate(fresh.clean_prompts) if p not in seen]
    if not keep:
        raise ValueError(
            f"task {args.task!r} has no prompt outside the discovery set; lower --n or use "
            "another template"
        )
    return fresh.subset(keep)


def run_evaluate(args: argparse.Namespace) -> int:
    from circuitgraph.cli._circuits import check_circuit_file, load_circuit
    from circuitgraph.evaluation import evaluate
    from circuitgraph.results import atomic_folder, result_dir, versions, write_json
    from circuitgraph.scoring.scorer import Scorer

    check_circuit_file(args.circuit)
    check_task(args)
    if args.held_out and args.task_file is not None:
        raise ValueError(
            "--held-out draws new prompts of a built-in task; for your own prompts pass the "
            "held-out ones as their own --task-file"
        )
    check_model(args.model, args.device, args.dtype)
    run = f"evaluate-{args.circuit.resolve().parent.name}" + ("-held-out" if args.held_out else "")
    target = result_dir(args.out, args.model, args.task, run)
    prepare_output(args, target)
    circuit = load_circuit(args.circuit)
    clock = Clock()
    setup = load(args, clock)
    task = held_out_task(setup.model, setup.task, args) if args.held_out else setup.task
    log(args, f"evaluating on {len(task)} prompts ({task.n_distinct} distinct)")
    with clock.stage("evaluate"):
        result = evaluate(
            Scorer(setup.model, task, ablation=args.ablation), circuit, args.resamples, args.seed
        )
    record = {
        "command": command_line(args.argv),
        "argv": args.argv,
        "subcommand": "evaluate",
        "circuit": str(args.circuit),
        "held_out": args.held_out,
        **setup.record,
        "evaluated_prompts": len(task),
        "evaluated_distinct": task.n_distinct,
        "versions": versions(),
        "result": {
            "score": result.score,
            "ci": list(result.ci),
            "completeness": result.completeness,
            "completeness_ci": list(result.completeness_ci),
            "resamples": args.resamples,
        },
    }
    with atomic_folder(target, overwrite=args.overwrite) as tmp:
        result.table.to_csv(tmp / "evaluation.csv")
        result.minimality.to_csv(tmp / "minimality.csv")
        write_json(tmp / "run.json", record | clock.record())
    low, high = result.ci
    print(
        f"{result.metric} {result.score:.3f} [{low:.3f}, {high:.3f}] (95% CI over "
        f"{task.n_distinct} distinct prompts), completeness {result.completeness:.3f}"
    )
    print(target)
    return 0
