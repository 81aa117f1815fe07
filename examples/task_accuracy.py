"""How well a model continues each task: top-1 accuracy and logit difference, with 95 % CIs.

For every task that can be built for the model's tokenizer: the share of prompts whose top
token (read at each prompt's own last real token: shorter prompts are right-padded) is the
answer, with a 95 % Wilson score interval over the distinct prompts (a bootstrap of 64 correct
answers out of 64 would claim [1, 1]), and the mean logit of the answer minus that of the wrong
answer (the last member shown), with a 95 % bootstrap CI over the distinct prompts (copies of
a prompt move together), and the number of prompts. Tasks whose members are not single tokens
are listed with the reason. Prints a markdown table and writes it to ``<out>.csv`` and ``<out>.md``
(default ``results/task_accuracy``).

    python examples/task_accuracy.py [--model smollm2-135m] [--n 64] [--seed 0]
        [--resamples 1000] [--out results/task_accuracy] [--overwrite] [--threads N]
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import torch

import circuitgraph as cg
from circuitgraph.evaluation.bootstrap import bootstrap_weights, interval, prompt_groups

BATCH = 16  # prompts per forward pass (the logits of every position are [batch, seq, vocab])


@torch.no_grad()
def last_token_logits(model, task: cg.Task) -> torch.Tensor:
    """Logits [n, vocab] at each prompt's last real token (not position -1 of padding)."""
    last = task.last_positions
    parts = []
    for start in range(0, len(task), BATCH):
        logits = model(task.clean_tokens[start : start + BATCH].to(model.cfg.device))
        rows = torch.arange(logits.shape[0])
        parts.append(logits[rows, last[start : start + BATCH].to(logits.device)].float().cpu())
    return torch.cat(parts)


def with_ci(values: np.ndarray, groups: np.ndarray, resamples: int, seed: int) -> tuple:
    """Mean of per-prompt ``values`` and its 95 % bootstrap interval over distinct prompts."""
    weights = bootstrap_weights(groups, resamples, seed)  # [R, n]
    low, high = interval(weights @ values / weights.sum(axis=1), 0.95)
    return float(values.mean()), low, high


def wilson(values: np.ndarray, groups: np.ndarray, z: float = 1.959964) -> tuple:
    """Share of distinct prompts whose ``values`` is 1, and its 95 % Wilson score interval
    (copies of a prompt count once: they always agree)."""
    per_prompt = np.bincount(groups, weights=values) / np.bincount(groups)  # [distinct]
    n, share = len(per_prompt), float(per_prompt.mean())
    centre = (share + z**2 / (2 * n)) / (1 + z**2 / n)
    half = z * np.sqrt(share * (1 - share) / n + z**2 / (4 * n**2)) / (1 + z**2 / n)
    return share, max(0.0, min(share, centre - half)), min(1.0, max(share, centre + half))


def short_reason(error: ValueError) -> str:
    """Why a task cannot be built, in a table cell: the member list and tokenizer cut short."""
    text = str(error).split(";")[0]
    text = re.sub(r"\[('[^']*', '[^']*'), .*?\]", r"[\1, ...]", text)
    return re.sub(r" for \w+\(.*?\)", "", text)


def accuracy_table(model, n: int, seed: int, resamples: int) -> pd.DataFrame:
    rows = []
    for name in cg.list_tasks():
        try:
            task = cg.make_task(name, model, n=n, seed=seed)
        except ValueError as error:
            rows.append({"task": name, "n": 0, "note": short_reason(error)})
            continue
        logits = last_token_logits(model, task)
        index = torch.arange(len(task))
        top1 = (logits.argmax(-1) == task.answer_ids).double().numpy()
        diff = (logits[index, task.answer_ids] - logits[index, task.wrong_ids]).double().numpy()
        groups = prompt_groups(task.clean_prompts)
        acc, acc_low, acc_high = wilson(top1, groups)
        ld, ld_low, ld_high = with_ci(diff, groups, resamples, seed)
        rows.append(
            {
                "task": name,
                "n": len(task),
                "distinct": int(task.n_distinct),
                "top1": acc,
                "top1_low": acc_low,
                "top1_high": acc_high,
                "logit_diff": ld,
                "logit_diff_low": ld_low,
                "logit_diff_high": ld_high,
                "example": f"{task.clean_prompts[0]!r} -> {task.answers[0]!r}",
            }
        )
    return pd.DataFrame(rows).astype({"distinct": "Int64"})


def markdown(table: pd.DataFrame) -> str:
    """The table in markdown: n, distinct prompts, top-1 and logit difference with their CIs."""
    lines = [
        "| task | n | distinct | top-1 [95 % CI] | logit diff [95 % CI] | note |",
        "|---|---|---|---|---|---|",
    ]
    for row in table.to_dict("records"):
        if row["n"] == 0:
            lines.append(f"| {row['task']} | 0 | | | | {row['note']} |")
            continue
        top1 = f"{row['top1']:.3f} [{row['top1_low']:.3f}, {row['top1_high']:.3f}]"
        diff = (
            f"{row['logit_diff']:.2f} [{row['logit_diff_low']:.2f}, {row['logit_diff_high']:.2f}]"
        )
        lines.append(f"| {row['task']} | {row['n']} | {row['distinct']} | {top1} | {diff} | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=64, help="prompts per task (default 64)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results/task_accuracy"),
        help="writes <out>.csv and <out>.md (default results/task_accuracy)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing files")
    parser.add_argument("--threads", type=int, help="CPU threads for torch")
    args = parser.parse_args(argv)
    paths = [args.out.with_suffix(".csv"), args.out.with_suffix(".md")]
    existing = [str(p) for p in paths if p.exists()]
    if existing and not args.overwrite:
        print(f"task_accuracy: {', '.join(existing)} exists; pass --overwrite", file=sys.stderr)
        return 2
    if args.threads:
        torch.set_num_threads(args.threads)
    table = accuracy_table(cg.load_model(args.model), args.n, args.seed, args.resamples)
    text = markdown(table)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(paths[0], index=False)
    paths[1].write_text(text + "\n", encoding="utf-8")
    print(text)
    print(f"wrote {paths[0]} and {paths[1]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
