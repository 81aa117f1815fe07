"""Indirect object identification (IOI) on SmolLM2-135M, end to end, over prompt seeds.

For each seed: build ``ioi`` prompts (ABBA and BABA, ABC corruption), split them by clean
prompt into train and test, prune heads and MLPs on train to 80 % of the full model's logit
difference (mean ablation, backward, nested 0.97 -> 0.9 -> 0.8 unless ``--single``), prune
edges inside that circuit (KL from the full model, resample ablation, ``--tau``), score the
node circuit on the held-out prompts (95 % bootstrap CI), draw the edge circuit, and measure
every head's attention from each prompt's last real token to the indirect object (IO) and to
the two subject tokens (S1, S2), found by the answer and wrong token ids. Writes to
``--out/<model>/``: ``seeds.csv``, ``heads.csv`` (seed frequency), ``attention.csv`` (per seed
and head), ``attention_summary.csv`` (mean and sd over seeds, circuit heads), ``accuracy.csv``
(top-1 of the full model on ioi and induction, bootstrap CI), ``seed<k>/`` (circuits, SVG),
``summary.json`` and ``run.json``.

    python examples/ioi_smollm2.py --seeds 3 --n 32 --threads 1
    python examples/ioi_smollm2.py --model toy-seq --seeds 1 --n 8   # seconds
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import circuitgraph as cg
from circuitgraph.results import safe_name, versions, write_json

THRESHOLDS = (0.97, 0.9, 0.8)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="smollm2-135m")
    p.add_argument("--seeds", type=int, default=3, help="prompt seeds 0..S-1 (default 3)")
    p.add_argument("--n", type=int, default=32, help="prompts per seed, half held out")
    p.add_argument("--tau", type=float, default=0.01, help="edge pruning tolerance")
    p.add_argument("--edge-metric", default="logit_diff", choices=["logit_diff", "kl"])
    p.add_argument("--single", action="store_true", help="one backward pass to 0.8")
    p.add_argument("--accuracy-n", type=int, default=64, help="prompts for the accuracy table")
    p.add_argument("--late", type=float, default=0.5, help="name movers: layer >= late*layers")
    p.add_argument("--to-names", type=float, default=0.2, help="name movers: IO+S1+S2 attention")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--out", type=Path, default=Path("results/ioi"))
    return p


def name_positions(task: cg.Task) -> torch.Tensor:
    """[n, 3] positions of IO, S1, S2 in each clean prompt (from the answer/wrong ids)."""
    rows = []
    for i, last in enumerate(task.last_positions.tolist()):
        tokens = task.clean_tokens[i, : last + 1]
        io = (tokens == task.answer_ids[i]).nonzero().flatten().tolist()
        s = (tokens == task.wrong_ids[i]).nonzero().flatten().tolist()
        if len(io) != 1 or len(s) != 2:
            raise ValueError(f"prompt {i} has IO at {io} and S at {s}: {task.clean_prompts[i]!r}")
        rows.append([io[0], *s])
    return torch.tensor(rows)


@torch.no_grad()
def attention_to_names(model, task: cg.Task) -> pd.DataFrame:
    """Every head's mean attention from each prompt's last real token to IO, S1 and S2."""
    names = lambda name: name.endswith("attn.hook_pattern")  # noqa: E731
    _, cache = model.run_with_cache(task.clean_tokens, names_filter=names)
    where, rows = name_positions(task), torch.arange(len(task))
    last = task.last_positions
    frames = []
    for layer in range(model.cfg.n_layers):
        pattern = cache[f"blocks.{layer}.attn.hook_pattern"]  # [n, heads, query, key]
        at_last = pattern[rows, :, last]  # [n, heads, key]: each prompt's own last row
        assert torch.allclose(at_last.sum(-1), torch.ones(()), atol=1e-4)
        picked = at_last[rows[:, None], :, where].mean(0)  # [3, heads]
        frames.append(
            pd.DataFrame(picked.T.numpy(), columns=["io", "s1", "s2"]).assign(
                head=[f"a{layer}.{h}" for h in range(pattern.shape[1])], layer=layer
            )
        )
    table = pd.concat(frames, ignore_index=True)
    table["s"] = table["s1"] + table["s2"]
    table["io_minus_s"] = table["io"] - table["s"]
    return table[["head", "layer", "io", "s1", "s2", "s", "io_minus_s"]]


def one_seed(model, args, seed: int, folder: Path) -> tuple[dict, pd.DataFrame]:
    """Circuits, held-out score and attention table of one prompt seed."""
    folder.mkdir(parents=True, exist_ok=True)
    task = cg.make_task("ioi", model, n=args.n, seed=seed)
    train, test = task.split(test_fraction=0.5, seed=seed)
    scorer = cg.Scorer(model, train, metric="logit_diff", ablation="mean")
    began = time.perf_counter()
    if args.single:
        nodes = cg.prune_nodes(scorer, 0.8, order="backward", progress=False)
    else:
        sweep = cg.threshold_sweep(scorer, THRESHOLDS, nested=True, progress=False)
        nodes = sweep[min(THRESHOLDS)]
    node_seconds = time.perf_counter() - began
    resample = cg.Scorer(model, train, metric=args.edge_metric, ablation="resample")
    began = time.perf_counter()
    edges = cg.prune_edges(resample, tau=args.tau, start=nodes, progress=False)
    edge_seconds = time.perf_counter() - began
    held = cg.evaluate(cg.held_out_scorer(scorer, test), nodes, minimality=False)
    held_resample = cg.held_out_scorer(resample, test)
    held_edges = cg.evaluate(held_resample, edges, minimality=False).table
    # KL from the full model under resample ablation: is the node circuit KL-faithful?
    kl_nodes = cg.evaluate(held_resample, nodes, minimality=False).table.loc["kl"]
    nodes.to_json(folder / "nodes-0.8.json")
    edges.to_json(folder / f"edges-{args.tau:g}.json")
    edges.render(folder / f"edges-{args.tau:g}.svg")
    attention = attention_to_names(model, task).assign(seed=seed)
    attention["in_nodes"] = attention["head"].isin(nodes.heads())
    attention["in_edges"] = attention["head"].isin(edges.heads())
    ld, kl = held_edges.loc["normalised_logit_diff"], held_edges.loc["kl"]
    row = {
        "seed": seed, "train": len(train), "test": len(test), "tau": args.tau,
        "procedure": "single" if args.single else "nested 0.97-0.9-0.8",
        "node_heads": len(nodes.heads()), "node_mlps": len(nodes.mlps()),
        "node_score_train": nodes.metadata["score"],
        "node_held_out": held.score, "node_ci_low": held.ci[0], "node_ci_high": held.ci[1],
        "node_kl_held_out": kl_nodes["value"], "empty_kl_held_out": kl_nodes["empty"],
        "edge_metric": args.edge_metric, "edge_count": len(edges.sender_receiver_edges()),
        "edge_heads": len(edges.heads()), "edge_score_train": edges.metadata["score"],
        "edge_kl_held_out": kl["value"], "edge_kl_ci_low": kl["ci_low"],
        "edge_kl_ci_high": kl["ci_high"], "edge_logit_diff_held_out": ld["value"],
        "edge_logit_diff_ci_low": ld["ci_low"], "edge_logit_diff_ci_high": ld["ci_high"],
        "node_seconds": node_seconds, "edge_seconds": edge_seconds,
        "node_head_list": " ".join(nodes.heads()), "edge_head_list": " ".join(edges.heads()),
    }  # fmt: skip
    print(
        f"seed {seed}: {row['node_heads']} heads + {row['node_mlps']} MLPs, held-out "
        f"{held} ({node_seconds:.0f} s); {row['edge_count']} edges at tau {args.tau:g} "
        f"({edge_seconds:.0f} s), held-out {ld['value']:.3f} [{ld['ci_low']:.3f}, "
        f"{ld['ci_high']:.3f}]",
        flush=True,
    )
    return row, attention


def accuracy_table(model, n: int) -> pd.DataFrame:
    """Top-1 accuracy of the full model on ioi and induction, with a bootstrap CI."""
    rows = []
    for name in ("ioi", "induction"):
        scorer = cg.Scorer(model, cg.make_task(name, model, n=n, seed=0))
        result = cg.evaluate(scorer, cg.full_circuit(model.cfg), minimality=False)
        acc = result.table.loc["accuracy"]
        rows.append({"task": name, "n": n, "top1": acc["value"]} | dict(acc[["ci_low", "ci_high"]]))
    return pd.DataFrame(rows)


def run(args: argparse.Namespace) -> int:
    if args.threads:
        torch.set_num_threads(args.threads)
    began = time.perf_counter()
    out = args.out / safe_name(args.model)
    out.mkdir(parents=True, exist_ok=True)
    model = cg.load_model(args.model)
    accuracy = accuracy_table(model, args.accuracy_n)
    accuracy.to_csv(out / "accuracy.csv", index=False)
    rows, tables = [], []
    for seed in range(args.seeds):
        row, attention = one_seed(model, args, seed, out / f"seed{seed}")
        rows.append(row)
        tables.append(attention)
    seeds, attention = pd.DataFrame(rows), pd.concat(tables, ignore_index=True)
    seeds.to_csv(out / "seeds.csv", index=False)
    attention.to_csv(out / "attention.csv", index=False)

    in_circuit = attention[attention["in_nodes"] | attention["in_edges"]]
    heads = in_circuit.groupby("head").agg(
        layer=("layer", "first"), node_seeds=("in_nodes", "sum"), edge_seeds=("in_edges", "sum")
    )
    heads["frequency"] = heads["node_seeds"] / args.seeds
    heads = heads.sort_values(["node_seeds", "layer"], ascending=[False, True]).reset_index()
    heads.to_csv(out / "heads.csv", index=False)
    columns = ["io", "s1", "s2", "s", "io_minus_s"]
    stats = attention.groupby(["head", "layer"])[columns].agg(["mean", "std"])  # all seeds
    stats.columns = [f"{c}_{s}" for c, s in stats.columns]
    stats = stats.reset_index().sort_values("io_mean", ascending=False)
    stats.to_csv(out / "attention_all_heads.csv", index=False)
    circuit_heads = attention[attention["head"].isin(heads["head"])]
    summary = heads.merge(stats.drop(columns="layer"), on="head")
    late = summary["layer"] >= args.late * model.cfg.n_layers
    summary["name_mover_like"] = late & (summary["s_mean"] + summary["io_mean"] >= args.to_names)
    summary.to_csv(out / "attention_summary.csv", index=False)

    movers = summary.loc[summary["name_mover_like"], "head"].tolist()
    per_seed = circuit_heads[circuit_heads["head"].isin(movers)].groupby("seed")[columns].mean()
    result = {
        "seeds": args.seeds, "n": args.n, "tau": args.tau,
        "procedure": seeds["procedure"].iloc[0],
        "node_heads": [float(seeds["node_heads"].mean()), float(seeds["node_heads"].std())],
        "node_held_out": seeds[["seed", "node_held_out", "node_ci_low", "node_ci_high"]]
        .to_dict(orient="records"),
        "name_movers": movers,
        "name_movers_per_seed": per_seed.reset_index().to_dict(orient="records"),
        "name_movers_mean_sd": {c: [per_seed[c].mean(), per_seed[c].std()] for c in columns},
        "accuracy": accuracy.to_dict(orient="records"),
        "top_io_heads_all": stats.head(5).to_dict(orient="records"),
    }  # fmt: skip
    write_json(out / "summary.json", result)
    parameters = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    seconds = round(time.perf_counter() - began, 1)
    record = {"parameters": parameters, "versions": versions(), "seconds": seconds}
    write_json(out / "run.json", record)
    with pd.option_context("display.width", 200, "display.max_columns", 30):
        print(accuracy.round(3).to_string(index=False))
        print(seeds.drop(columns=["node_head_list", "edge_head_list"]).round(3).T.to_string())
        print(summary.round(3).to_string(index=False))
    print("all heads, most attention to IO:\n" + stats.head(5).round(3).to_string(index=False))
    print(f"name-mover-like heads: {movers}")
    for c in ("io", "s", "io_minus_s"):
        mean, sd = result["name_movers_mean_sd"][c]
        print(f"  attention to {c}: {mean:.3f} +- {sd:.3f} (mean +- sd over seeds)")
    print(f"wrote {out}/ in {seconds} s")
    assert np.isfinite(seeds["node_held_out"]).all()
    return 0


if __name__ == "__main__":
    raise SystemExit(run(parser().parse_args()))
