"""``circuitgraph evaluate``: a circuit file's faithfulness with bootstrap CIs, completeness
and minimality, in-sample or on held-out prompts; writes a results folder."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitgraph.cli._arguments import positive_int
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
from circuitgraph.options import Ablation, values

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Circuit
    from circuitgraph.models.model_type import Model
    from circuitgraph.tasks.task import Task


def add_parsers(sub: Any) -> None:
    p = sub.add_parser(
        "evaluate",
        help="faithfulness of a circuit file with bootstrap CIs (optionally held out)",
        description="Score a circuit with 95%% bootstrap CIs over prompts (normalised logit "
        "difference, KL, top-1), its completeness and its minimality. With --held-out the "
        "prompts are new ones: --n prompts drawn with seed --seed + 1 that share no underlying "
        "sequence with the discovery prompts (those the circuit's provenance records; for a "
        "circuit that records none, the task built with --n and --seed, as discover builds "
        "it); with --task-file, --held-out checks that the file's prompts are held out so.",
    )
    p.add_argument("circuit", type=Path, help="circuit.json (from discover or sweep)")
    add_model_task(p)
    p.add_argument("--held-out", action="store_true", help="score on prompts discovery never saw")
    p.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamples")
    p.add_argument("--ablation", choices=values(Ablation), default="mean")
    add_output(p)
    p.set_defaults(func=run_evaluate)


def discovery_sequences(
    circuit: Circuit, task: Task, args: argparse.Namespace
) -> tuple[set[str], str, int]:
    """(digests of the circuit's discovery sequences and clean prompts, where they come from,
    how many sequences): those its provenance records, else (a built-in task only) those of
    ``task``, the task built with --n and --seed as discover builds it."""
    prompts = circuit.metadata.get("prompts") or {}
    sequences = prompts.get("sequences")
    if sequences is not None:
        digests = set(sequences) | set(prompts.get("clean") or ())
        return digests, "the circuit's provenance", len(set(sequences))
    if args.task_file is not None:
        raise ValueError(
            f"--held-out with --task-file checks the file's prompts against the discovery "
            f"prompts the circuit records, and {args.circuit} records none (a circuit from a "
            "set operation, or an older file); evaluate without --held-out"
        )
    digests = set(task.sequence_digests()) | set(task.prompt_digests())
    return digests, "--task, --n and --seed (the circuit records none)", task.n_sequences


def held_out_task(model: Model, discovery: set[str], args: argparse.Namespace) -> Task:
    """--n prompts drawn with seed + 1 whose sequence is not among ``discovery`` (digests);
    larger draws until --n are found or the task has no more."""
    import warnings

    from circuitgraph.evaluation.held_out import check_held_out, outside
    from circuitgraph.tasks import RepeatedPromptsWarning, filter_task, make_task

    for factor in (1, 2, 4, 8, 16):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RepeatedPromptsWarning)
            fresh = make_task(
                args.task,
                model,
                n=factor * args.n,
                corruption=args.corruption,
                seed=args.seed + 1,
                template=args.template,
                prepend_bos=args.prepend_bos,
            )
        if args.filter:
            fresh = filter_task(fresh, model)
        keep = outside(fresh, discovery)
        if len(keep) >= args.n:
            break
    if not keep:  # every sequence was a discovery one: refused, naming one
        check_held_out(discovery, fresh, f"--held-out on task {args.task!r}")
        raise ValueError(f"no held-out prompt of task {args.task!r} is left after --filter")
    return fresh.subset(keep[: args.n])


def mean_reference_task(
    circuit: Circuit, model: Model, task: Task, args: argparse.Namespace
) -> Task | None:
    """With --held-out and mean ablation, the prompts whose means the circuit was found with:
    those its provenance names (``mean_reference``), rebuilt from its task, template,
    corruption, seed and number of prompts and checked by their digest; ``task`` (built with
    --n and --seed as discover builds it) for a circuit that names none. None when they cannot
    be rebuilt (e.g. a filtered discovery): the held-out prompts' own means are then used, and
    evaluate warns that they are not the circuit's."""
    import warnings

    from circuitgraph.scoring.ablation import mean_reference
    from circuitgraph.tasks import make_task

    if not args.held_out or args.ablation != "mean" or args.task_file is not None:
        return None
    recorded = circuit.metadata.get("mean_reference")
    if recorded is None or recorded == mean_reference(task):
        return task
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # e.g. repeated prompts: the discovery was warned
            rebuilt = make_task(
                recorded["task"],
                model,
                n=recorded["n_prompts"],
                corruption=recorded["corruption"],
                seed=recorded["seed"],
                template=recorded["template"],
                prepend_bos=args.prepend_bos,
            )
    except (KeyError, TypeError, ValueError):
        return None
    return rebuilt if mean_reference(rebuilt) == recorded else None


def run_evaluate(args: argparse.Namespace) -> int:
    from circuitgraph.cli._circuits import check_circuit_file, load_circuit
    from circuitgraph.evaluation import evaluate
    from circuitgraph.results import atomic_folder, result_dir, versions, write_json
    from circuitgraph.scoring.scorer import Scorer

    check_circuit_file(args.circuit)
    check_task(args)
    check_model(args.model, args.device, args.dtype)
    run = f"evaluate-{args.circuit.resolve().parent.name}" + ("-held-out" if args.held_out else "")
    target = result_dir(args.out, args.model, args.task, run)
    prepare_output(args, target)
    circuit = load_circuit(args.circuit)
    clock = Clock()
    setup = load(args, clock)
    task, held_record = setup.task, {}
    if args.held_out:
        from circuitgraph.evaluation.held_out import check_held_out

        discovery, source, n_sequences = discovery_sequences(circuit, setup.task, args)
        if args.task_file is None:
            task = held_out_task(setup.model, discovery, args)
        check_held_out(discovery, task, f"--held-out ({args.circuit})")
        held_record = {
            "held_out_from": source,
            "discovery_sequences": n_sequences,
            "evaluated_sequences": task.n_sequences,
        }
    log(args, f"evaluating on {len(task)} prompts ({task.n_distinct} distinct)")
    with clock.stage("evaluate"):
        reference = mean_reference_task(circuit, setup.model, setup.task, args)
        scorer = Scorer(setup.model, task, ablation=args.ablation, mean_over=reference)
        result = evaluate(scorer, circuit, args.resamples, args.seed)
    record = {
        "command": command_line(args.argv),
        "argv": args.argv,
        "subcommand": "evaluate",
        "circuit": str(args.circuit),
        "held_out": args.held_out,
        **setup.record,
        "evaluated_prompts": len(task),
        "evaluated_distinct": task.n_distinct,
        **held_record,
        "versions": versions(),
        "result": {
            "score": result.score,
            "ci": list(result.ci),
            "completeness": result.completeness,
            "completeness_ci": list(result.completeness_ci),
            "n_distinct": result.n_distinct,
            "resamples": args.resamples,
            "mean_reference": scorer.mean_reference,
        },
        "warnings": result.warnings,
    }
    with atomic_folder(target, overwrite=args.overwrite) as tmp:
        result.table.to_csv(tmp / "evaluation.csv")
        result.minimality.to_csv(tmp / "minimality.csv")
        write_json(tmp / "run.json", record | clock.record())
    low, high = result.ci
    print(
        f"{result.metric} {result.score:.3f} (95 % CI {low:.3f}-{high:.3f}, "
        f"{result.n_distinct} prompts), completeness {result.completeness:.3f}"
    )
    print(target)
    return 0
