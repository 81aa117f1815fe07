"""The paper's workflow (Lan, Torr, Barez 2024) on SmolLM2-135M, with uncertainty.

For each prompt seed and task (digits, number words, months): build filtered prompts (the
paper's rule: the model's top token is the answer and p(answer) > 2 p(wrong)), split them by
clean prompt into train and test, prune heads and MLPs on train at 97, 90 and 80 % of the
full model's logit difference (mean ablation, nested, backward), and score on test. Writes to
``--out`` (default ``results/paper/<model>/``):

- ``sizes.csv`` (one row per seed, task, threshold and method: heads, MLPs, in-sample and
  held-out score with its 95 % bootstrap CI) and ``sizes_summary.csv`` (mean and sd over
  seeds); ``single`` rows are one backward pass straight to the lowest threshold;
- ``shared_heads.csv``: per threshold, each head in the three-task intersection of some seed
  and in how many seeds; ``shared_heads.svg``;
- ``cross_task.csv`` (per seed: the lowest-threshold circuit of task A on held-out prompts of
  task B, with CI) and ``cross_task_summary.csv`` / ``.svg`` (mean, sd over seeds);
- ``controls.csv`` / ``controls_summary.csv``: removing the heads shared by all three tasks
  against random sets drawn from both pools (``outside``, ``circuit``), on held-out prompts;
- ``circuits/seed<k>/<task>-<method>-<t>.json``, every circuit; ``<task>/nodes-<t>.json``,
  the first seed's (the layout ``successor_heads.py`` and ``gpt2_small.py`` read);
- ``summary.json`` and ``run.json``.

    python examples/paper_workflow.py --seeds 5 --n 16 --threads 1
    python examples/paper_workflow.py --model toy-seq --seeds 2 --n 4   # seconds
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd

import circuitgraph as cg
from circuitgraph.analysis import ablate_subcircuit, plot_cross_task
from circuitgraph.analysis.cross_task import POOLS
from circuitgraph.figures import new_figure, save_figure
from circuitgraph.results import safe_name, versions, write_json

TASKS = ("digits", "number_words", "months")
THRESHOLDS = (0.97, 0.9, 0.8)


def parser(model: str = "smollm2-135m") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=model, help=f"model name (default {model})")
    p.add_argument("--seeds", type=int, default=5, help="prompt seeds 0..S-1 (default 5)")
    p.add_argument("--n", type=int, default=16, help="prompts per split side (default 16)")
    p.add_argument("--tasks", nargs="+", default=list(TASKS))
    p.add_argument("--thresholds", type=float, nargs="+", default=list(THRESHOLDS))
    p.add_argument("--random-sets", type=int, default=50, help="random sets per control pool")
    p.add_argument("--no-single", action="store_true", help="skip the single-pass comparison")
    p.add_argument("--threads", type=int, help="torch CPU threads (1 is fastest when busy)")
    p.add_argument("--out", type=Path, default=Path("results/paper"), help="output folder")
    return p


def split_task(model, name: str, n: int, seed: int):
    """Filtered prompts of ``name`` split by underlying sequence (no held-out prompt shows a
    training sequence in other words); at most ``n`` prompts a side."""
    task = cg.make_task(name, model, n=3 * n, seed=seed, filter=True)
    train, test = task.split(test_fraction=0.5, seed=seed)
    return train.subset(list(range(min(n, len(train))))), test.subset(
        list(range(min(n, len(test))))
    )


def held_row(circuit: cg.Circuit, held) -> dict:
    result = cg.evaluate(held, circuit, resamples=1000, minimality=False)
    return {"held_out": result.score, "ci_low": result.ci[0], "ci_high": result.ci[1]}


def control(scorer, heads: list[str], circuit, pool: str, n_random: int, seed: int) -> dict:
    """Remove ``heads`` against ``n_random`` distinct random sets from ``pool``; NaNs (and the
    reason) when the pool holds fewer heads than the tested set, or fewer than 20 distinct
    sets (a percentile over them is refused)."""
    try:
        r = ablate_subcircuit(scorer, heads, n_random, seed, pool=pool, circuit=circuit)
    except ValueError as error:
        return {"pool_size": np.nan, "drop": np.nan, "percentile": np.nan, "note": str(error)}
    return {
        "pool_size": len(r.pool_nodes),
        "distinct_sets": r.distinct_sets,
        "possible_sets": r.possible_sets,
        "drop": r.drop,
        "random_median": float(np.median(r.random_drops)),
        "random_p95": float(np.percentile(r.random_drops, 95)),
        "percentile": r.percentile,
    }


def one_seed(model, args, seed: int, folder: Path) -> dict[str, list[dict]]:
    """Circuits, held-out scores, cross-task scores and controls of one prompt seed."""
    rows: dict[str, list[dict]] = {"sizes": [], "cross": [], "controls": []}
    circuits, held = {}, {}
    lowest = min(args.thresholds)
    folder.mkdir(parents=True, exist_ok=True)
    for name in args.tasks:
        train, test = split_task(model, name, args.n, seed)
        scorer = cg.Scorer(model, train, metric="logit_diff", ablation="mean")
        held[name] = cg.held_out_scorer(scorer, test)
        began = time.perf_counter()
        sweep = cg.threshold_sweep(
            scorer, args.thresholds, nested=True, order="backward", progress=False
        )
        runs = {("nested", t): c for t, c in sweep.items()}
        seconds = {"nested": time.perf_counter() - began}
        if not args.no_single:
            began = time.perf_counter()
            runs["single", lowest] = cg.prune_nodes(scorer, lowest, progress=False)
            seconds["single"] = time.perf_counter() - began
        for (method, t), circuit in runs.items():
            circuit.to_json(folder / f"{name}-{method}-{t:g}.json")
            if seed == 0 and method == "nested":
                (folder.parent.parent / name).mkdir(exist_ok=True)
                circuit.to_json(folder.parent.parent / name / f"nodes-{t:g}.json")
            rows["sizes"].append(
                {"seed": seed, "task": name, "threshold": t, "method": method}
                | {"train": len(train), "test": len(test), "distinct": train.n_distinct}
                | {"heads": len(circuit.heads()), "mlps": len(circuit.mlps())}
                | {"score": circuit.metadata["score"], **held_row(circuit, held[name])}
                | {"seconds": seconds[method], "head_list": " ".join(circuit.heads())}
            )
        circuits[name] = sweep
        sizes = ", ".join(f"{t:g}: {len(c.heads())}+{len(c.mlps())}" for t, c in sweep.items())
        print(f"seed {seed} {name}: {sizes} ({sum(seconds.values()):.0f} s)", flush=True)
    at_lowest = {name: sweep[lowest] for name, sweep in circuits.items()}
    for a, circuit in at_lowest.items():
        for b, scorer in held.items():
            rows["cross"].append(
                {"seed": seed, "circuit": a, "evaluated_on": b} | held_row(circuit, scorer)
            )
    shared_heads = cg.shared(at_lowest).heads()
    for name, circuit in at_lowest.items():
        for pool in POOLS if shared_heads else ():
            rows["controls"].append(
                {"seed": seed, "task": name, "pool": pool, "shared": " ".join(shared_heads)}
                | control(held[name], shared_heads, circuit, pool, args.random_sets, seed)
            )
    rows["shared"] = [
        {"seed": seed, "threshold": t, "head": h}
        for t in args.thresholds
        for h in cg.shared({name: sweep[t] for name, sweep in circuits.items()}).heads()
    ]
    return rows


def mean_sd(frame: pd.DataFrame, by: list[str], columns: list[str]) -> pd.DataFrame:
    """Mean and sd (ddof 1) over seeds of ``columns`` for each ``by`` group."""
    stats = frame.groupby(by, sort=False)[columns].agg(["mean", "std", "count"])
    stats.columns = [f"{c}_{s}".replace("_count", "_seeds") for c, s in stats.columns]
    return stats.reset_index()


def plot_shared(shared: pd.DataFrame, seeds: int, path: Path) -> None:
    """Bar chart: in how many seeds each head is shared by all tasks, per threshold."""
    counts = shared.groupby(["head", "threshold"]).size().unstack(fill_value=0)
    counts = counts.loc[counts.sum(axis=1).sort_values(ascending=False).index]
    fig = new_figure(max(5.0, 0.35 * len(counts) + 2), 3.5)
    ax = fig.subplots()
    width = 0.8 / max(1, counts.shape[1])
    for i, t in enumerate(sorted(counts.columns, reverse=True)):
        ax.bar(np.arange(len(counts)) + i * width, counts[t], width, label=f"{t:g}")
    ax.set_xticks(np.arange(len(counts)) + 0.4 - width / 2, counts.index, rotation=60)
    ax.set_ylim(0, seeds)
    ax.set_ylabel(f"seeds (of {seeds})")
    ax.set_title("heads shared by all tasks")
    ax.legend(title="threshold")
    save_figure(fig, path)


def run(args: argparse.Namespace) -> int:
    """The whole workflow; returns an exit code."""
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    began = time.perf_counter()
    out = args.out / safe_name(args.model)
    out.mkdir(parents=True, exist_ok=True)
    model = cg.load_model(args.model)
    rows: dict[str, list[dict]] = {"sizes": [], "cross": [], "controls": [], "shared": []}
    for seed in range(args.seeds):
        for key, new in one_seed(model, args, seed, out / "circuits" / f"seed{seed}").items():
            rows[key] += new
    sizes, cross = pd.DataFrame(rows["sizes"]), pd.DataFrame(rows["cross"])
    controls, shared = pd.DataFrame(rows["controls"]), pd.DataFrame(rows["shared"])
    sizes.to_csv(out / "sizes.csv", index=False)
    cross.to_csv(out / "cross_task.csv", index=False)
    controls.to_csv(out / "controls.csv", index=False)

    by = ["task", "method", "threshold"]
    size_summary = mean_sd(sizes, by, ["heads", "mlps", "score", "held_out", "ci_low", "ci_high"])
    size_summary.to_csv(out / "sizes_summary.csv", index=False)
    cross_summary = mean_sd(cross, ["circuit", "evaluated_on"], ["held_out", "ci_low", "ci_high"])
    cross_summary.to_csv(out / "cross_task_summary.csv", index=False)
    matrix = cross_summary.pivot(index="circuit", columns="evaluated_on", values="held_out_mean")
    plot_cross_task(matrix.loc[args.tasks, args.tasks], out / "cross_task.svg")
    frequency = pd.DataFrame(columns=["threshold", "head", "seeds", "frequency"])
    if len(shared):
        frequency = shared.groupby(["threshold", "head"]).size().rename("seeds").reset_index()
        frequency["frequency"] = frequency["seeds"] / args.seeds
        frequency = frequency.sort_values(["threshold", "seeds", "head"], ascending=False)
        plot_shared(shared, args.seeds, out / "shared_heads.svg")
    frequency.to_csv(out / "shared_heads.csv", index=False)
    columns = ["drop", "random_median", "random_p95", "percentile", "pool_size"]
    control_summary = (
        mean_sd(controls, ["task", "pool"], columns) if len(controls) else pd.DataFrame()
    )
    control_summary.to_csv(out / "controls_summary.csv", index=False)
    n_shared = shared.groupby(["threshold", "seed"]).size() if len(shared) else pd.Series()
    summary = {
        "seeds": args.seeds,
        "shared_per_seed": {
            f"{t:g}": [int(n_shared.get((t, s), 0)) for s in range(args.seeds)]
            for t in args.thresholds
        },
        "sizes": size_summary.to_dict(orient="records"),
        "cross_task": cross_summary.to_dict(orient="records"),
        "controls": control_summary.to_dict(orient="records"),
    }
    write_json(out / "summary.json", summary)
    record = {
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "versions": versions(),
        "seconds": round(time.perf_counter() - began, 1),
    }
    write_json(out / "run.json", record)
    print(size_summary.round(3).to_string(index=False))
    print(cross_summary.round(3).to_string(index=False))
    print(frequency.to_string(index=False))
    if len(control_summary):
        print(control_summary.round(3).to_string(index=False))
    print(f"wrote {out}/ in {record['seconds']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(run(parser().parse_args()))
