"""Tests for the ``evaluate`` and ``stability`` commands (toy-seq, seconds)."""

from __future__ import annotations

import json

import pandas as pd

from circuitgraph.cli import main

TASK = ["--model", "toy-seq", "--task", "digits", "--template", "lists", "-q"]


def test_evaluate_and_stability_write_folders(tmp_path, capsys) -> None:
    out = str(tmp_path)
    # 4 prompts show 4 of toy-seq's 6 digit sequences: 2 are left to hold out
    assert main(["discover", *TASK, "--n", "4", "--out", out, "--no-svg"]) == 0
    circuit = tmp_path / "toy-seq" / "digits" / "nodes-0.8" / "circuit.json"
    code = main(["evaluate", str(circuit), *TASK, "--n", "16", "--held-out", "--out", out])
    assert code == 0
    folder = tmp_path / "toy-seq" / "digits" / "evaluate-nodes-0.8-held-out"
    table = pd.read_csv(folder / "evaluation.csv", index_col=0)
    assert {"normalised_logit_diff", "kl", "accuracy"} <= set(table.index)
    record = json.loads((folder / "run.json").read_text())
    assert record["held_out"] and record["result"]["ci"][0] <= record["result"]["score"]
    assert record["held_out_from"] == "the circuit's provenance"
    assert record["discovery_sequences"] == 4 and record["evaluated_sequences"] == 2
    assert record["evaluated_prompts"] == 16  # --n prompts, not --n minus the overlap
    code = main(["stability", *TASK, "--n", "24", "--resamples", "2", "--out", out])
    assert code == 0
    folder = tmp_path / "toy-seq" / "digits" / "stability-nodes-0.8-bootstrap-2"
    assert len(pd.read_csv(folder / "runs.csv")) == 2 and (folder / "consensus.json").exists()
    assert "consensus(0.5) held out" in capsys.readouterr().out


def test_bad_arguments_exit_2(tmp_path, capsys) -> None:
    assert main(["stability", *TASK, "--resamples", "0", "--out", str(tmp_path)]) == 2
    assert "error" in capsys.readouterr().err
    missing = str(tmp_path / "nope.json")
    assert main(["evaluate", missing, *TASK, "--out", str(tmp_path)]) == 2
