"""Memory is estimated before anything is allocated, and a budget is respected up front."""

from __future__ import annotations

import json

import pytest

import circuitgraph as cg
from circuitgraph.cli import main
from circuitgraph.memory import GIB, check_memory, estimate_memory


def test_estimate_grows_with_prompts_and_counts_the_weights(toy):
    small = estimate_memory(toy, cg.make_task("digits", toy, n=4))
    large = estimate_memory(toy, cg.make_task("months", toy, n=32))
    weights = sum(p.numel() * p.element_size() for p in toy.parameters())
    assert small.weights == large.weights == weights
    assert large.caches > small.caches > 0
    assert small.total("edges") > small.total("nodes") > small.total("score") > weights


def test_scorer_refuses_a_budget_it_would_exceed(toy):
    task = cg.make_task("digits", toy, n=4)
    with pytest.raises(ValueError, match="exceeds max_memory 0.00 GiB: use fewer prompts"):
        cg.Scorer(toy, task, max_memory=1e-4)
    scorer = cg.Scorer(toy, task, max_memory=scorer_budget(toy, task, "nodes"))
    cg.prune_nodes(scorer, 0.8, progress=False)  # fits
    with pytest.raises(ValueError, match="estimated for edges"):
        cg.prune_edges(scorer.with_metric("kl"), 0.1, progress=False)


def scorer_budget(model, task, method: str) -> float:
    """A budget (GiB) that fits ``method`` but not edge pruning."""
    estimate = estimate_memory(model, task)
    assert estimate.total(method) < estimate.total("edges")
    return (estimate.total(method) + estimate.total("edges")) / 2 / GIB


def test_bad_budgets_are_clear_errors(toy):
    estimate = estimate_memory(toy, cg.make_task("digits", toy, n=2))
    for bad in (0, -1, True, "8"):
        with pytest.raises(ValueError, match="max_memory must be a positive number"):
            check_memory(estimate, bad)


def test_cli_records_the_estimate_and_honours_the_budget(tmp_path, capsys):
    argv = ["discover", "--model", "toy-seq", "--task", "digits", "--n", "6", "-q"]
    assert main([*argv, "--out", str(tmp_path), "--max-memory", "0.0001"]) == 2
    assert "exceeds max_memory" in capsys.readouterr().err and not (tmp_path / "toy-seq").exists()
    assert main([*argv, "--out", str(tmp_path), "--no-svg"]) == 0
    run = json.loads((tmp_path / "toy-seq" / "digits" / "nodes-0.8" / "run.json").read_text())
    assert set(run["memory_estimate_gib"]) == {"score", "nodes", "edges"}
