"""``circuitgraph analyse``: OV scores, attention patterns and the logit lens of a model."""

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
    prepare_output,
)

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Circuit

HELP = """\
Analyse the heads of a model on a task and write <out>/<model>/<task>/analysis/ with
  ov_scores.csv/.svg     copy and successor score of every head's OV circuit
  ov_predictions.csv     the chosen heads' OV circuits member by member (top-k tokens)
  attention_scores.csv   every head's attention to earlier members, previous token, ...
  attention.csv/.svg     the chosen heads' mean attention patterns (query x key)
  attention_top_keys.csv the most-attended key of every query row of the chosen heads
  logit_lens.csv/.svg    rank and probability of the answer after every layer
  run.json               parameters, versions, timings
Chosen heads: --heads, else the heads of --circuit, else the --top best successor heads.
"""


def add_parsers(sub: Any) -> None:
    """Register ``analyse``."""
    p = sub.add_parser(
        "analyse",
        aliases=["analyze"],
        help="OV scores, attention patterns and logit lens of a model on a task",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_task(p)
    p.add_argument("--heads", nargs="+", metavar="HEAD", help="heads to look at, e.g. a9.1 a4.4")
    p.add_argument("--circuit", type=Path, help="look at the heads of this circuit.json")
    p.add_argument("--top", type=positive_int, default=6, help="successor heads to pick (6)")
    p.add_argument("--k", type=positive_int, default=5, help="top-k of the OV scores (5)")
    p.add_argument("--format", choices=("svg", "png", "pdf"), default="svg", help="plot format")
    p.add_argument("--tag", help="suffix for the folder name (analysis-<tag>)")
    add_output(p)
    p.set_defaults(func=run_analyse)


def _chosen_heads(args: argparse.Namespace, circuit: Circuit | None, ov: Any) -> list[str]:
    if args.heads:
        return list(args.heads)
    if circuit is not None:
        if not circuit.heads():
            raise ValueError(f"{args.circuit} has no heads; pass --heads")
        return [h.split("@")[0] for h in dict.fromkeys(circuit.heads())]
    return ov["head"].head(args.top).tolist()


def run_analyse(args: argparse.Namespace) -> int:
    from tqdm.auto import tqdm

    from circuitgraph import analysis
    from circuitgraph.analysis._common import resolve_heads
    from circuitgraph.cli._circuits import load_circuit
    from circuitgraph.results import (
        atomic_folder,
        result_dir,
        safe_name,
        versions,
        write_json,
    )
    from circuitgraph.scoring.masks import check_same_model

    check_task(args)
    if args.task_file is not None:
        raise ValueError(
            "analyse runs the sequence-task analyses (OV successor scores, attention to the "
            "members): use a built-in --task; for your own prompts use discover and evaluate"
        )
    check_model(args.model, args.device, args.dtype)
    if args.heads and args.circuit:
        raise ValueError("give --heads or --circuit, not both")
    circuit = None if args.circuit is None else load_circuit(args.circuit)
    run = "analysis" + (f"-{safe_name(args.tag)}" if args.tag else "")
    target = result_dir(args.out, args.model, args.task, run)
    prepare_output(args, target)

    clock = Clock()
    setup = load(args, clock)
    model, task, fmt = setup.model, setup.task, args.format
    if circuit is not None:
        check_same_model(circuit, model.cfg)  # a circuit of another model is refused
    if args.heads:
        resolve_heads(model.cfg, args.heads)  # a bad name fails before any analysis runs
    steps = tqdm(total=4, desc="analyse", unit="step", disable=args.quiet)
    with steps, atomic_folder(target, overwrite=args.overwrite) as tmp:
        steps.set_postfix_str("OV scores")
        with clock.stage("ov_scores"):
            ov = analysis.ov_scores(model, task, k=args.k)
            heads = _chosen_heads(args, circuit, ov)
            predictions = [analysis.ov_predictions(model, h, task, k=args.k) for h in heads]
        ov.to_csv(tmp / "ov_scores.csv", index=False)
        _concat(predictions, heads).to_csv(tmp / "ov_predictions.csv", index=False)
        analysis.plot_ov_scores(ov, tmp / f"ov_scores.{fmt}")
        steps.update()
        steps.set_postfix_str("attention")
        with clock.stage("attention"):
            analysis.attention_scores(model, task).to_csv(tmp / "attention_scores.csv", index=False)
            patterns = analysis.attention_patterns(model, task, heads)
            patterns.mean_table().to_csv(tmp / "attention.csv", index=False)
            patterns.top_keys().to_csv(tmp / "attention_top_keys.csv", index=False)
        steps.update()
        patterns.plot(tmp / f"attention.{fmt}")
        steps.update()
        steps.set_postfix_str("logit lens")
        with clock.stage("logit_lens"):
            lens = analysis.logit_lens(model, task)
        lens.to_csv(tmp / "logit_lens.csv", index=False)
        analysis.plot_logit_lens(lens, tmp / f"logit_lens.{fmt}")
        steps.update()
        record = {
            "command": command_line(args.argv),
            "argv": args.argv,
            "subcommand": "analyse",
            "parameters": {k: v for k, v in vars(args).items() if k not in ("func", "argv")},
            **setup.record,
            "heads": heads,
            "top_successor_heads": ov["head"].head(args.top).tolist(),
            "versions": versions(),
        }
        write_json(tmp / "run.json", record | clock.record())
    best = ov.iloc[0]
    print(
        f"strongest successor head: {best['head']} (successor score "
        f"{best['successor_score']:.2f}, copy score {best['copy_score']:.2f})"
    )
    print(f"heads analysed: {' '.join(heads)}")
    print(f"wrote {target}/")
    return 0


def _concat(frames: list[Any], heads: list[str]) -> Any:
    import pandas as pd

    tables = []
    for head, frame in zip(heads, frames, strict=True):
        tables.append(frame if "head" in frame.columns else frame.assign(head=head))
    return pd.concat(tables, ignore_index=True)
