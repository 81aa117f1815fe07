"""How well a model continues each task: top-1 accuracy and mean logit difference.

Prints a markdown table (one row per task that can be built for the model's tokenizer) and
writes it to ``--out`` as CSV. Tasks whose members are not single tokens are listed with the
reason.

    python examples/task_accuracy.py [--model smollm2-135m] [--n 32] [--out task_accuracy.csv]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd
import torch

import circuitgraph as cg


def accuracy_table(model, n: int, seed: int) -> pd.DataFrame:
    rows = []
    for name in cg.list_tasks():
        try:
            task = cg.make_task(name, model, n=n, seed=seed)
        except ValueError as error:
            rows.append({"task": name, "n": 0, "note": str(error).split(";")[0][:80]})
            continue
        with torch.no_grad():
            logits = model(task.clean_tokens)[:, -1]  # [n, vocab]
        rows_index = torch.arange(len(task))
        diff = logits[rows_index, task.answer_ids] - logits[rows_index, task.wrong_ids]
        rows.append(
            {
                "task": name,
                "n": len(task),
                "top1": float((logits.argmax(-1) == task.answer_ids).float().mean()),
                "logit_diff": float(diff.mean()),
                "example": f"{task.clean_prompts[0]!r} -> {task.answers[0]!r}",
            }
        )
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """A markdown table (pandas' own needs the optional ``tabulate`` package)."""

    def cell(value) -> str:
        if isinstance(value, float):
            return "" if value != value else f"{value:.2f}"
        return str(value)

    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in table.itertuples(False)]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--n", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("task_accuracy.csv"))
    args = parser.parse_args()
    table = accuracy_table(cg.load_model(args.model), args.n, args.seed)
    table.to_csv(args.out, index=False)
    print(markdown(table.drop(columns=["example"], errors="ignore")))


if __name__ == "__main__":
    main()
