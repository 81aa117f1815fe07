"""Successor heads on SmolLM2-135M: OV-circuit search and the attention of shared heads.

A successor head's OV circuit maps a sequence member to the next one ("4" -> "5", "March" ->
"April"); the paper found GPT-2's head 9.1 puts the next digit in its top 5 for 87 % of digits.
This script scores every head's OV circuit on each task's members, then looks at the attention
patterns of the heads the task circuits share. Writes to ``--out`` (default
``results/successor/<model>/``):

- ``ov_scores.csv``: copy and successor score of every head on every task (long form);
- ``successor_heads.csv``: successor score per head and task, best heads first;
- ``ov_scores-<task>.svg``: copy vs successor score of every head;
- ``ov_predictions.csv``: the best successor head's top tokens for every member;
- ``attention_scores.csv``: attention to earlier members, the previous token, ... of the
  shared heads on each task, and ``attention-<task>.svg``, their mean patterns;
- ``run.json``: parameters and versions.

The heads to look at: ``--heads``, or those shared by all ``--circuits`` (circuit JSON files,
e.g. ``results/paper/smollm2-135m/*/nodes-0.8.json`` from paper_workflow.py), or else the
``--top`` best successor heads.

    python examples/successor_heads.py [--model smollm2-135m] [--circuits FILES] [--out DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

import circuitgraph as cg
from circuitgraph.analysis import ov_predictions, plot_attention, plot_ov_scores
from circuitgraph.results import safe_name, versions, write_json

TASKS = ("digits", "number_words", "months")


def parser(model: str = "smollm2-135m") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=model, help=f"model name (default {model})")
    p.add_argument("--tasks", nargs="+", default=list(TASKS), help="tasks (default: three)")
    p.add_argument("--n", type=int, default=16, help="prompts for attention (default 16)")
    p.add_argument("--k", type=int, default=5, help="top-k for the OV scores (default 5)")
    p.add_argument("--heads", nargs="+", help="heads to look at, e.g. a9.1 a4.4")
    p.add_argument("--circuits", nargs="+", type=Path, help="use the heads shared by these")
    p.add_argument("--top", type=int, default=4, help="successor heads to look at (default 4)")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest when busy)")
    p.add_argument("--out", type=Path, default=Path("results/successor"), help="output folder")
    return p


def successor_search(model, args, out: Path) -> pd.DataFrame:
    """OV scores of every head on every task; returns the wide successor-score table."""
    tables = []
    for task in args.tasks:
        table = cg.ov_scores(model, task, k=args.k)
        plot_ov_scores(table, out / f"ov_scores-{task}.svg")
        tables.append(table)
    long = pd.concat(tables, ignore_index=True)
    long.to_csv(out / "ov_scores.csv", index=False)
    wide = long.pivot_table(index="head", columns="task", values="successor_score")
    wide = wide[[t for t in args.tasks]]
    wide["mean"] = wide.mean(axis=1)
    wide = wide.sort_values("mean", ascending=False)
    wide.to_csv(out / "successor_heads.csv")
    return wide


def chosen_heads(args, wide: pd.DataFrame) -> list[str]:
    if args.heads:
        return list(args.heads)
    if args.circuits:
        shared = cg.shared([cg.Circuit.from_json(path) for path in args.circuits])
        if shared.heads():
            return shared.heads()
        print("the circuits share no head: using the best successor heads")
    return list(wide.index[: args.top])


def attention(model, args, heads: list[str], out: Path) -> pd.DataFrame:
    """Attention scores and mean patterns of ``heads`` on each task."""
    tables = []
    for name in args.tasks:
        task = cg.make_task(name, model, n=args.n, seed=0)
        patterns = cg.attention_patterns(model, task, heads)
        plot_attention(patterns, out / f"attention-{name}.svg")
        tables.append(patterns.scores().assign(task=name))
    table = pd.concat(tables, ignore_index=True)
    table.to_csv(out / "attention_scores.csv", index=False)
    return table


def run(args: argparse.Namespace) -> int:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = args.out / safe_name(args.model)
    out.mkdir(parents=True, exist_ok=True)
    model = cg.load_model(args.model)

    wide = successor_search(model, args, out)
    print(f"successor score (next member in the OV top {args.k}), best heads first:")
    print((100 * wide.head(8)).round(0).to_string())
    best = str(wide.index[0])
    predictions = pd.concat([ov_predictions(model, best, t, k=args.k) for t in args.tasks])
    predictions.to_csv(out / "ov_predictions.csv", index=False)
    for row in predictions.head(3).itertuples():
        print(f"{best}: {row.member!r} -> {row.top_tokens}")

    heads = chosen_heads(args, wide)
    print(f"attention of {' '.join(heads)}:")
    table = attention(model, args, heads, out)
    columns = ["task", "head", "prev_member", "last_to_last_member", "last_to_members"]
    print(table[columns].round(2).to_string(index=False))

    record = {
        "parameters": vars(args),
        "heads": heads,
        "best_successor_head": best,
        "versions": versions(),
    }
    write_json(out / "run.json", record)
    print(f"wrote {out}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(parser().parse_args()))
