"""Measurement: does discovery find the right circuit? ROC AUC against the known circuits of
the compiled tracr models of the ground-truth suite, for every method, under zero and
resample ablation.

    python benchmarks/ground_truth.py --threads 1
    python benchmarks/ground_truth.py --programs reverse proportion --ablations zero

For each program (``cg.ground_truth.list_ground_truth()``) the stored task reads every
position after BOS with the program's metric (KL for categorical outputs, ACDC's L2 for
numeric ones) and the methods run on it:

- ``edges`` and ``edges-acdc``: exact edge pruning (``prune_edges``) in the canonical and
  in ACDC's visit order, at every tau of a sweep (0 and ``--taus`` (12) values from 1e-6 to 10,
  geometric): one ROC point per tau, edge level;
- ``nodes``: node pruning with the same tau per removal (``prune_nodes(tau=)``), node level
  (heads and MLPs);
- ``eap`` and ``eap_ig``: attribution scores (``attribute_edges``) ranked by magnitude, edge
  level.

AUCs use ACDC's pessimistic staircase over Pareto-optimal points (``cg.roc_auc``, the rule of
the ACDC paper's tables) with the plain trapezoid beside it. Everything is computed exactly on
the stored inputs: no seed enters after the data were drawn, so the numbers do not move
between runs. Writes ``table.csv`` and ``table.md`` under ``--out`` (default
``results/ground_truth``) and prints the ACDC paper's four edge AUCs next to ours.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
import warnings
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import circuitgraph as cg
from circuitgraph.ground_truth import (
    acdc_circuit,
    inert_truth_edges,
    list_ground_truth,
    load_ground_truth,
    load_record,
)

METHODS = ("edges", "edges-acdc", "nodes", "eap", "eap_ig")
# The ACDC paper's edge AUCs (experiments/results/auc_tables.tex): zero and random ablation.
ACDC_PAPER = {
    ("reverse", "zero"): 1.000,
    ("reverse", "resample"): 0.200,
    ("proportion", "zero"): 1.000,
    ("proportion", "resample"): 0.600,
}


def taus(count: int) -> list[float]:
    """0 and ``count`` geometric values from 1e-6 to 10: the sweep behind one ROC curve."""
    return [0.0, *np.geomspace(1e-6, 10.0, count).tolist()]


@dataclass(frozen=True)
class Program:
    """One program of the suite, loaded once for all its rows."""

    name: str
    model: Any
    task: Any
    truth: Any
    acdc_truth: Any  # ACDC's hand-written truth (reverse and proportion), else None
    metric: str  # the record's: "kl" or "l2"


def load(name: str) -> Program:
    model, task, truth = load_ground_truth(name)
    metric = load_record(name)["metric"]
    return Program(name, model, task, truth, acdc_circuit(name, model.cfg), metric)


def n_inert(program: Program, ablation: str) -> int:
    """Truth sender-to-receiver edges whose removal alone changes nothing under ``ablation``:
    no method can find them on the stored inputs."""
    between = set(program.truth.sender_receiver_edges())
    return sum(edge in between for edge, _ in inert_truth_edges(program.name, ablation))


def run(program: Program, ablation: str, method: str, sweep: list[float], inert: int) -> dict:
    """One row of the table: the AUCs of ``method`` on ``program`` under ``ablation``."""
    scorer = cg.Scorer(program.model, program.task, metric=program.metric, ablation=ablation)
    began = time.perf_counter()
    level = "nodes" if method == "nodes" else "edges"
    if method in ("eap", "eap_ig"):
        results = cg.attribute_edges(scorer, method=method)
    elif method == "nodes":
        results = [cg.prune_nodes(scorer, tau=tau, progress=False) for tau in sweep]
    else:
        order = "acdc" if method == "edges-acdc" else "canonical"
        results = [cg.prune_edges(scorer, tau, order=order, progress=False) for tau in sweep]
    seconds = time.perf_counter() - began
    row = {"program": program.name, "ablation": ablation, "method": method, "level": level,
           "auc": math.nan, "auc_trapezoid": math.nan, "auc_acdc_truth": math.nan,
           "n_truth": len(program.truth.sender_receiver_edges()), "n_inert": inert,
           "n_candidates": math.nan, "metric": program.metric, "seconds": seconds}  # fmt: skip
    try:
        pessimistic = cg.roc_auc(results, program.truth, level=level)
    except ValueError as error:  # e.g. a truth holding every head and MLP: no negatives
        print(f"{program.name} {ablation} {method}: AUC undefined ({error})", flush=True)
        return row
    acdc = program.acdc_truth
    return row | {
        "auc": pessimistic.auc,
        "auc_trapezoid": cg.roc_auc(results, program.truth, level=level, rule="trapezoid").auc,
        "auc_acdc_truth": math.nan if acdc is None else cg.roc_auc(results, acdc, level=level).auc,
        "n_candidates": pessimistic.n_positive + pessimistic.n_negative,
    }


def cell(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def program_rows(table: pd.DataFrame, programs, ablations, methods) -> list[str]:
    """One markdown row per program: its truth edges (with how many are inert under each
    ablation) and candidates, then the AUC of each (ablation, method) column (node pruning's
    at node level)."""
    lines = []
    for program in programs:
        mine = table[table.program == program]
        edges = mine[mine.level == "edges"].iloc[0]
        inert = " / ".join(str(int(mine[mine.ablation == a].n_inert.iloc[0])) for a in ablations)
        cells = [
            cell(mine[(mine.ablation == a) & (mine.method == m)].auc.iloc[0])
            for a in ablations
            for m in methods
        ]
        lines.append(f"| {program} | {int(edges.n_truth)} ({inert}) | "
                     f"{int(edges.n_candidates)} | " + " | ".join(cells) + " |")  # fmt: skip
    return lines


def summary_rows(table: pd.DataFrame, ablations, methods) -> list[str]:
    """Per method and ablation: mean [min, max] AUC over the programs where it is defined."""
    lines = []
    for method in methods:
        cells = []
        for ablation in ablations:
            auc = table[(table.method == method) & (table.ablation == ablation)].auc.dropna()
            cells.append(f"{auc.mean():.3f} [{auc.min():.3f}, {auc.max():.3f}] ({len(auc)})")
        lines.append(f"| {method} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--programs", nargs="+", default=None, help="default: the whole suite")
    parser.add_argument("--ablations", nargs="+", default=["zero", "resample"])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--taus", type=int, default=12, help="tau values besides 0 (default 12)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--out", type=Path, default=Path("results/ground_truth"))
    parser.add_argument(
        "--reuse", action="store_true", help="rewrite table.md from --out's table.csv, no run"
    )
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    programs = args.programs or list_ground_truth()
    unknown = sorted(set(programs) - set(list_ground_truth()))
    if unknown:
        parser.error(f"unknown programs {unknown}; the suite has {list_ground_truth()}")
    sweep = taus(args.taus)
    rows = []
    if args.reuse:
        rows = pd.read_csv(args.out / "table.csv").to_dict("records")
        programs = [p for p in programs if p in {row["program"] for row in rows}]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", cg.UncertaintyWarning)  # a few distinct inputs each
        for name in [] if args.reuse else programs:
            program = load(name)
            for ablation in args.ablations:
                inert = n_inert(program, ablation)
                for method in args.methods:
                    row = run(program, ablation, method, sweep, inert)
                    rows.append(row)
                    print(f"{name:18s} {ablation:9s} {method:11s} AUC {row['auc']:.3f} "
                          f"(trapezoid {row['auc_trapezoid']:.3f}) {row['seconds']:.1f} s",
                          flush=True)  # fmt: skip
    table = pd.DataFrame(rows)
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "table.csv", index=False)
    header = [f"{a}: {m}" for a in args.ablations for m in args.methods]
    command = "python benchmarks/ground_truth.py " + shlex.join(
        sys.argv[1:] if argv is None else argv
    )
    lines = [
        f"<!-- {command.strip()} ({date.today()}, {len(sweep)} taus) -->",
        f"| program | truth edges (inert: {' / '.join(args.ablations)}) | candidates | "
        + " | ".join(header)
        + " |",
        "|---|---|---|" + "---|" * len(header),
        *program_rows(table, programs, args.ablations, args.methods),
        "",
        "| method | "
        + " | ".join(f"{a}: mean [min, max] (programs)" for a in args.ablations)
        + " |",
        "|---|" + "---|" * len(args.ablations),
        *summary_rows(table, args.ablations, args.methods),
        "",
        "| ACDC paper case (edges, ACDC order) | paper | ours, ACDC's truth "
        "| ours, compiler's truth |",
        "|---|---|---|---|",
    ]
    for (program, ablation), paper in ACDC_PAPER.items():
        match = table[(table.program == program) & (table.ablation == ablation)
                      & (table.method == "edges-acdc")]  # fmt: skip
        if not len(match):
            lines.append(f"| tracr-{program}, {ablation} | {paper:.3f} | not run | not run |")
            continue
        row = match.iloc[0]
        lines.append(f"| tracr-{program}, {ablation} | {paper:.3f} | {row.auc_acdc_truth:.3f} "
                     f"| {row.auc:.3f} |")  # fmt: skip
    (args.out / "table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
