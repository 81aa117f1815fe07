"""examples/paper_workflow.py runs end to end on toy-seq and writes finite numbers."""

from __future__ import annotations

import json
import runpy
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "paper_workflow.py"


def test_paper_workflow_on_toy_seq(tmp_path):
    example = runpy.run_path(str(EXAMPLE))
    args = example["parser"]().parse_args(
        ["--model", "toy-seq", "--seeds", "2", "--n", "4", "--random-sets", "20"]
        + ["--threads", "1", "--out", str(tmp_path)]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # toy-seq has few distinct digit prompts
        assert example["run"](args) == 0
    out = tmp_path / "toy-seq"
    assert (out / "digits" / "nodes-0.8.json").exists()  # read by successor_heads.py
    for name in ("cross_task.svg", "shared_heads.svg", "run.json"):
        assert (out / name).stat().st_size > 0, name

    sizes = pd.read_csv(out / "sizes.csv")
    assert set(sizes["seed"]) == {0, 1}
    assert set(sizes["method"]) == {"nested", "single"}
    assert {"heads", "mlps", "score", "held_out", "ci_low", "ci_high"} <= set(sizes.columns)
    assert np.isfinite(sizes[["heads", "mlps", "score", "held_out"]].to_numpy()).all()
    assert (sizes["ci_low"] <= sizes["held_out"]).all()
    assert (sizes["held_out"] <= sizes["ci_high"]).all()
    summary = pd.read_csv(out / "sizes_summary.csv")
    assert {"heads_mean", "heads_std", "mlps_mean", "mlps_std", "held_out_mean"} <= set(
        summary.columns
    )
    assert len(summary) == 3 * 4  # 3 tasks x (3 nested thresholds + single pass)

    cross = pd.read_csv(out / "cross_task_summary.csv")
    assert len(cross) == 9
    assert np.isfinite(cross[["held_out_mean", "ci_low_mean", "ci_high_mean"]].to_numpy()).all()

    shared = pd.read_csv(out / "shared_heads.csv")
    assert {"threshold", "head", "seeds", "frequency"} <= set(shared.columns)
    assert ((shared["frequency"] > 0) & (shared["frequency"] <= 1)).all()

    controls = pd.read_csv(out / "controls.csv")
    assert set(controls["pool"]) <= {"outside", "circuit"}
    outside = controls[controls["pool"] == "outside"]
    # a percentile over fewer than 20 distinct random sets is refused, with the reason noted
    # (toy-seq's 12 heads hold 11 other single heads)
    measured = np.isfinite(outside[["drop", "percentile"]].to_numpy()).all(axis=1)
    assert measured.any() and (outside["distinct_sets"][measured] >= 20).all()
    assert outside["note"][~measured].str.contains("distinct random sets").all()
    assert json.loads((out / "summary.json").read_text())["seeds"] == 2
