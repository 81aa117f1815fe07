"""examples/ioi_smollm2.py runs end to end on toy-seq and writes finite numbers."""

from __future__ import annotations

import json
import runpy
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "ioi_smollm2.py"


def test_ioi_example_on_toy_seq(tmp_path):
    example = runpy.run_path(str(EXAMPLE))
    args = example["parser"]().parse_args(
        ["--model", "toy-seq", "--seeds", "2", "--n", "8", "--accuracy-n", "16"]
        + ["--threads", "1", "--out", str(tmp_path)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert example["run"](args) == 0
    out = tmp_path / "toy-seq"
    for seed in (0, 1):
        for name in ("nodes-0.8.json", "edges-0.01.json", "edges-0.01.svg"):
            assert (out / f"seed{seed}" / name).stat().st_size > 0, name

    seeds = pd.read_csv(out / "seeds.csv")
    assert list(seeds["seed"]) == [0, 1]
    numbers = ["node_heads", "node_score_train", "node_held_out", "node_ci_low", "node_ci_high"]
    numbers += ["node_kl_held_out", "edge_count", "edge_score_train", "edge_kl_held_out"]
    numbers += ["edge_logit_diff_held_out"]
    assert np.isfinite(seeds[numbers].to_numpy(dtype=float)).all()
    assert (seeds["node_ci_low"] <= seeds["node_held_out"]).all()
    assert (seeds["node_held_out"] <= seeds["node_ci_high"]).all()

    attention = pd.read_csv(out / "attention.csv")
    n_heads = 3 * 4  # toy-seq: 3 layers x 4 heads, every head in every seed
    assert len(attention) == 2 * n_heads
    values = attention[["io", "s1", "s2", "s"]].to_numpy()
    assert np.isfinite(values).all() and (values >= 0).all() and (values <= 1 + 1e-6).all()

    heads = pd.read_csv(out / "heads.csv")
    assert ((heads["frequency"] >= 0) & (heads["frequency"] <= 1)).all()
    summary = pd.read_csv(out / "attention_summary.csv")
    assert set(summary["head"]) == set(heads["head"])
    assert np.isfinite(summary[["io_mean", "s_mean"]].to_numpy()).all()

    accuracy = pd.read_csv(out / "accuracy.csv")
    assert list(accuracy["task"]) == ["ioi", "induction"]
    assert np.isfinite(accuracy[["top1", "ci_low", "ci_high"]].to_numpy()).all()
    assert json.loads((out / "summary.json").read_text())["seeds"] == 2
