"""examples/task_accuracy.py reads each prompt's own last real token and writes only under
results/ (issue 27: it read position -1 of right-padded prompts, so SmolLM2's IOI top-1 came
out 0.28 instead of 0.94, and wrote task_accuracy.csv into the repository root)."""

from __future__ import annotations

import runpy
from pathlib import Path

import pandas as pd
import torch

import circuitgraph as cg

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "task_accuracy.py"


def test_logits_come_from_each_prompts_last_real_token(toy):
    script = runpy.run_path(str(SCRIPT))
    task = cg.Task.from_prompts(
        toy, ["1 2 3", "4 5 6 7 8"], ["4 5 6", "1 2 3 4 5"], ["4", "9"], wrong=["3", "8"]
    )
    assert task.ragged
    logits = script["last_token_logits"](toy, task)
    for i in range(len(task)):
        alone = toy(task.clean_tokens[i : i + 1, : int(task.last_positions[i]) + 1])[0, -1]
        torch.testing.assert_close(logits[i], alone.float(), atol=1e-4, rtol=1e-4)


def test_writes_its_table_under_results_with_cis_and_never_overwrites(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    main = runpy.run_path(str(SCRIPT))["main"]
    argv = ["--model", "toy-seq", "--n", "4", "--resamples", "50"]
    assert main(argv) == 0
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert written == ["results", "results/task_accuracy.csv", "results/task_accuracy.md"]
    table = pd.read_csv(tmp_path / "results" / "task_accuracy.csv").set_index("task")
    digits = table.loc["digits"]
    assert digits["n"] == 4 and digits["top1_low"] <= digits["top1"] <= digits["top1_high"]
    assert digits["logit_diff_low"] <= digits["logit_diff"] <= digits["logit_diff_high"]
    assert "| digits | 4 |" in (tmp_path / "results" / "task_accuracy.md").read_text()
    before = (tmp_path / "results" / "task_accuracy.csv").read_bytes()
    assert main(argv) == 2  # exists: refused without --overwrite
    assert (tmp_path / "results" / "task_accuracy.csv").read_bytes() == before
