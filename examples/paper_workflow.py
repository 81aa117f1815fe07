"""The paper's workflow (Lan, Torr, Barez 2024) on SmolLM2-135M: shared sequence circuits.

For each task (digits, number words, months) prune heads and MLPs at 97, 90 and 80 % of the
full model's logit difference, nested (each level pruned from the one above), then compare the
tasks level by level. Writes to ``--out`` (default ``results/paper/<model>/``):

- ``<task>/nodes-<t>.json`` and ``.svg``: every circuit, as JSON and as a Graphviz drawing;
- ``<task>/threshold_table.csv``: which heads and MLPs each level keeps (heads vs threshold);
- ``heads_vs_threshold.csv``: per task and level the heads, MLPs and score;
- ``overlap-<t>.csv``, ``venn-<t>.svg``: pairwise overlaps and a Venn diagram per level,
  ``venn_grid.svg`` all levels in one figure;
- ``shared-<t>.json``: the intersection of the three circuits at each level;
- ``cross_task.csv`` and ``.svg``: each task's lowest-level circuit scored on every task;
- ``run.json``: parameters, versions and timings.

On 2 CPU cores n = 16-24 prompts take a few minutes per task; ``--n 4 --tasks digits
--thresholds 0.8`` is a quick smoke test.

    python examples/paper_workflow.py [--model smollm2-135m] [--n 24] [--out results/paper]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd

import circuitgraph as cg
from circuitgraph.analysis import plot_cross_task
from circuitgraph.results import safe_name, versions, write_json

TASKS = ("digits", "number_words", "months")
THRESHOLDS = (0.97, 0.9, 0.8)


def parser(model: str = "smollm2-135m") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=model, help=f"model name (default {model})")
    p.add_argument("--n", type=int, default=24, help="prompts per task (default 24)")
    p.add_argument("--seed", type=int, default=0, help="seed of the prompts (default 0)")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), help="tasks to compare")
    p.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest when busy)")
    p.add_argument("--no-svg", action="store_true", help="skip the Graphviz drawings")
    p.add_argument("--out", type=Path, default=Path("results/paper"), help="output folder")
    return p


def find_circuits(model, args, out: Path) -> tuple[dict, dict, dict]:
    """Nested node circuits per task and threshold; returns (circuits[t][task], scorers,
    timings)."""
    circuits: dict[float, dict[str, cg.Circuit]] = {t: {} for t in args.thresholds}
    scorers, timings = {}, {}
    for task_name in args.tasks:
        print(f"== {task_name}")
        begin = time.perf_counter()
        task = cg.make_task(task_name, model, n=args.n, seed=args.seed)
        print(f"   e.g. {task.clean_prompts[0]!r} -> {task.answers[0]!r}")
        scorer = scorers[task_name] = cg.Scorer(model, task, metric="logit_diff", ablation="mean")
        by_threshold = cg.threshold_sweep(scorer, args.thresholds, nested=True, order="backward")
        folder = out / task_name
        folder.mkdir(parents=True, exist_ok=True)
        for threshold, circuit in by_threshold.items():
            circuits[threshold][task_name] = circuit
            circuit.to_json(folder / f"nodes-{threshold:g}.json")
            if not args.no_svg:
                circuit.render(folder / f"nodes-{threshold:g}.svg")
            print(
                f"   {threshold:g}: {len(circuit.heads())} heads, {len(circuit.mlps())} MLPs, "
                f"score {circuit.metadata['score']:.3f}: {' '.join(circuit.heads())}"
            )
        cg.threshold_table(by_threshold, mlps=True).to_csv(folder / "threshold_table.csv")
        timings[task_name] = round(time.perf_counter() - begin, 1)
    return circuits, scorers, timings


def heads_vs_threshold(circuits: dict[float, dict[str, cg.Circuit]]) -> pd.DataFrame:
    """One row per task and threshold: sizes, score and the heads and MLPs kept."""
    rows = [
        {
            "task": task,
            "threshold": threshold,
            "n_heads": len(circuit.heads()),
            "n_mlps": len(circuit.mlps()),
            "score": circuit.metadata.get("score"),
            "heads": " ".join(circuit.heads()),
            "mlps": " ".join(circuit.mlps()),
        }
        for threshold, named in circuits.items()
        for task, circuit in named.items()
    ]
    return pd.DataFrame(rows).sort_values(["task", "threshold"], ascending=[True, False])


def compare_levels(circuits: dict[float, dict[str, cg.Circuit]], out: Path) -> None:
    """Overlap table, intersection and Venn diagram per threshold, and one grid of all."""
    for threshold, named in circuits.items():
        cg.overlap_table(named).to_csv(out / f"overlap-{threshold:g}.csv", index=False)
        shared = cg.shared(named)
        shared.to_json(out / f"shared-{threshold:g}.json")
        union = cg.shared(named, at_least=1)
        print(
            f"{threshold:g}: shared by all {len(named)} tasks: {' '.join(shared.heads())} "
            f"({len(shared.heads())} of {len(union.heads())} heads in the union)"
        )
        if len(named) >= 2:
            cg.venn(named, out / f"venn-{threshold:g}.svg", title=f"threshold {threshold:g}")
    if all(len(named) >= 2 for named in circuits.values()):
        cg.venn_grid(circuits, out / "venn_grid.svg")


def run(args: argparse.Namespace) -> int:
    """The whole workflow; returns an exit code."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    begin = time.perf_counter()
    out = args.out / safe_name(args.model)
    out.mkdir(parents=True, exist_ok=True)
    model = cg.load_model(args.model)
    circuits, scorers, timings = find_circuits(model, args, out)

    table = heads_vs_threshold(circuits)
    table.to_csv(out / "heads_vs_threshold.csv", index=False)
    print(table.drop(columns=["heads", "mlps"]).to_string(index=False))
    compare_levels(circuits, out)

    lowest = circuits[min(circuits)]
    matrix = cg.cross_task_matrix(lowest, scorers)
    matrix.to_csv(out / "cross_task.csv")
    plot_cross_task(matrix, out / "cross_task.svg")
    print(f"cross-task scores at {min(circuits):g} (rows: circuit, columns: evaluated on):")
    print((100 * matrix).round(1).to_string())

    record = {
        "parameters": {k: v for k, v in vars(args).items()},
        "versions": versions(),
        "timings_s": {**timings, "total": round(time.perf_counter() - begin, 1)},
    }
    write_json(out / "run.json", record)
    print(f"wrote {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(parser().parse_args()))
