"""Models in float64, bfloat16 and float16: circuits stay exact and metrics accumulate in
float32 at least. float64 checks the arithmetic: the full circuit is the model to 1e-10."""

from __future__ import annotations

import json

import pytest
import torch

import circuitgraph as cg
from circuitgraph.cli import main


def _setup(dtype: str) -> tuple[cg.Scorer, cg.Circuit]:
    model = cg.load_model("toy-seq", dtype=dtype)
    scorer = cg.Scorer(model, cg.make_task("digits", model, n=6, seed=0))
    return scorer, cg.Circuit.from_nodes(model.cfg, ["a0.1", "a2.2", "m1", "m2"])


def test_float64_full_circuit_is_the_model_and_agrees_with_float32():
    scorer, circuit = _setup("float64")
    model = scorer.model
    assert {p.dtype for p in model.parameters()} == {torch.float64}
    assert model.cfg.dtype == torch.float64 and scorer.fixed.dtype == torch.float64
    with torch.no_grad():
        expected = model(scorer.task.clean_tokens)[:, -1]
    final = scorer.final_residuals(scorer.masks(cg.full_circuit(model.cfg)))[0]
    assert (scorer.components.unembed(final) - expected).abs().max() < 1e-10
    single, single_circuit = _setup("float32")
    for metric in ("logit_diff", "kl", "accuracy"):
        ours = scorer.with_metric(metric).score(circuit)
        assert ours == pytest.approx(single.with_metric(metric).score(single_circuit), abs=1e-4)


@pytest.mark.parametrize("dtype", ["float64", "bfloat16", "float16"])
def test_pruning_is_exact_in_every_dtype(dtype):
    scorer, circuit = _setup(dtype)
    kl = scorer.with_metric("kl")
    reference = cg.prune_edges(kl, 0.01, start=circuit, method="reference", progress=False)
    assert reference == cg.prune_edges(kl, 0.01, start=circuit, progress=False)
    nodes = cg.prune_nodes(scorer, 0.8, progress=False)
    assert nodes == cg.prune_nodes(scorer, 0.8, batch_size=1, progress=False)
    full = cg.full_circuit(scorer.model.cfg)
    assert set(cg.attribute_edges(scorer)) == set(full.sender_receiver_edges())


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_half_precision_metrics_accumulate_in_float32(dtype):
    scorer, circuit = _setup(dtype)
    assert scorer.fixed.dtype == getattr(torch, dtype)
    assert scorer.clean_logprobs.dtype == torch.float32
    assert scorer.score(cg.full_circuit(scorer.model.cfg)) == pytest.approx(1.0, abs=1e-3)
    single, single_circuit = _setup("float32")
    assert scorer.score(circuit) == pytest.approx(single.score(single_circuit), abs=0.05)


def test_unknown_dtype_is_one_clear_error(tmp_path, capsys):
    with pytest.raises(cg.ModelLoadError, match="unsupported dtype 'int8'"):
        cg.load_model("toy-seq", dtype="int8")
    argv = ["discover", "--model", "toy-seq", "--task", "digits", "--out", str(tmp_path), "-q"]
    assert main([*argv, "--dtype", "float8"]) == 2
    assert "unsupported dtype 'float8'" in capsys.readouterr().err
    assert main([*argv, "--dtype", "float64", "--n", "6", "--no-svg"]) == 0
    run = json.loads((tmp_path / "toy-seq" / "digits" / "nodes-0.8" / "run.json").read_text())
    assert run["model"]["dtype"] == "float64"
