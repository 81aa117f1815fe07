"""Tests for circuitgraph.evaluation: bootstrap CIs, evaluate, held-out scorers."""

from __future__ import annotations

import numpy as np
import pytest

import circuitgraph as cg
from circuitgraph.evaluation import evaluate, held_out_scorer
from circuitgraph.evaluation.bootstrap import bootstrap_weights, prompt_groups
from circuitgraph.evaluation.evaluate import without_components
from circuitgraph.guards import UncertaintyError


@pytest.fixture(scope="module")
def digits(toy):
    task = cg.make_task("digits", toy, n=24, template="lists", seed=1)
    scorer = cg.Scorer(toy, task)
    circuit = cg.prune_nodes(scorer, threshold=0.8, progress=False)
    return scorer, circuit


def test_bootstrap_moves_copies_of_a_prompt_together() -> None:
    groups = prompt_groups(["a", "b", "a", "c", "b"])
    assert groups.tolist() == [0, 1, 0, 2, 1]
    weights = bootstrap_weights(groups, 500, seed=3)
    assert weights.shape == (500, 5)
    assert np.array_equal(weights[:, 0], weights[:, 2]) and np.array_equal(
        weights[:, 1], weights[:, 4]
    )
    assert np.allclose(weights[:, [0, 1, 3]].sum(axis=1), 3)  # 3 distinct prompts drawn


def test_evaluate_matches_the_scorer(digits) -> None:
    scorer, circuit = digits
    result = evaluate(scorer, circuit, resamples=500)
    expected = scorer.evaluate(circuit)
    assert result.metric == "normalised_logit_diff"
    assert result.score == pytest.approx(scorer.score(circuit), abs=1e-5)
    for name in ("normalised_logit_diff", "logit_diff", "kl", "accuracy"):
        assert result.table.loc[name, "value"] == pytest.approx(expected[name], abs=1e-4)
        low, high = result.table.loc[name, ["ci_low", "ci_high"]]
        assert low <= result.table.loc[name, "value"] + 1e-9 <= high + 2e-9
    assert result.ci[0] < result.score < result.ci[1]  # prompts differ, so the CI has width
    assert result.samples.shape == (500,) and result.n_distinct == 24
    assert result.completeness == pytest.approx(scorer.score(~circuit), abs=1e-5)
    assert result.table.loc["normalised_logit_diff", "full_model"] == 1.0
    assert result.table.loc["kl", "empty"] > result.table.loc["kl", "value"]
    # minimality: the drop of each component is the score lost when it alone goes
    assert set(result.minimality.index) == set(circuit.heads() + circuit.mlps())
    top = result.minimality.index[0]
    alone = scorer.score(without_components(circuit, {top}))
    assert result.minimality.iloc[0] == pytest.approx(result.score - alone, abs=1e-5)


def test_evaluate_costs_one_forward_pass(digits, monkeypatch) -> None:
    scorer, circuit = digits
    calls = []
    original = scorer.final_residuals
    monkeypatch.setattr(scorer, "final_residuals", lambda m: calls.append(1) or original(m))
    evaluate(scorer, circuit, resamples=1000, minimality=False)
    assert len(calls) == 1  # circuit, complement and empty circuit in one batch


def test_full_circuit_and_other_metrics(toy, digits) -> None:
    scorer, _ = digits
    full = cg.full_circuit(toy.cfg)
    result = evaluate(scorer, full, resamples=200, minimality=False)
    assert result.score == pytest.approx(1.0, abs=1e-5)
    assert result.ci[1] - result.ci[0] < 1e-5  # the ratio is 1 under every resample
    kl = evaluate(scorer.with_metric("kl"), full, resamples=200, minimality=False)
    assert kl.metric == "kl" and kl.score == pytest.approx(0.0, abs=1e-5)
    task = scorer.task
    both = cg.Scorer(toy, task, normalise="clean_corrupt")
    empty = cg.Circuit.from_nodes(toy.cfg, [])
    assert evaluate(both, empty, resamples=50, minimality=False).score == pytest.approx(
        both.score(empty), abs=1e-5
    )


def test_edge_circuit(digits) -> None:
    scorer, circuit = digits
    kl = scorer.with_metric("kl")
    edges = cg.prune_edges(kl, tau=0.02, start=circuit, progress=False)
    result = evaluate(kl, edges, resamples=200)
    assert result.score == pytest.approx(kl.score(edges), abs=1e-5)
    assert result.completeness == pytest.approx(kl.score(~edges), abs=1e-5)
    assert (result.minimality >= -1e-6).any()


def test_held_out_scorer(toy, digits) -> None:
    full, circuit = digits
    train, test = full.task.split(0.5, seed=0)
    scorer = cg.Scorer(toy, train)
    held = held_out_scorer(scorer, test)
    assert held.task is test and held.metric == scorer.metric and held.ablation == scorer.ablation
    assert not set(held.task.clean_prompts) & set(train.clean_prompts)
    assert not set(held.task.sequence_keys()) & set(train.sequence_keys())
    with pytest.raises(UncertaintyError, match="share their sequence"):
        held_out_scorer(full, test)  # test is part of full's prompts
    assert evaluate(held, circuit, resamples=100, minimality=False).n_prompts == len(test)
    other = cg.load_model("random:gpt2-tiny")
    foreign = cg.make_task("digits", other, n=4)
    with pytest.raises(ValueError, match="built for model .*gpt2-tiny"):
        held_out_scorer(scorer, foreign)


def test_bad_inputs(digits) -> None:
    scorer, circuit = digits
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="resamples must be an integer >= 1"):
            evaluate(scorer, circuit, resamples=bad)
    with pytest.raises(ValueError, match="confidence must be in"):
        evaluate(scorer, circuit, confidence=1.5)
    with pytest.raises(TypeError, match="must be a Circuit"):
        evaluate(scorer, {"a0.0"})


def test_old_argument_order_warns_and_gives_the_same_result(digits) -> None:
    scorer, circuit = digits
    new = evaluate(scorer, circuit, resamples=100, minimality=False)
    with pytest.warns(FutureWarning, match=r"evaluate\(scorer, circuit\)") as caught:
        old = evaluate(circuit, scorer, resamples=100, minimality=False)
    assert caught[0].filename == __file__  # points at the caller
    assert (old.score, old.ci, old.completeness) == (new.score, new.ci, new.completeness)
    assert old.table.equals(new.table)


def test_level_is_the_old_name_of_confidence(digits) -> None:
    scorer, circuit = digits
    new = evaluate(scorer, circuit, resamples=100, confidence=0.9, minimality=False)
    with pytest.warns(DeprecationWarning, match="confidence="):
        old = evaluate(scorer, circuit, resamples=100, level=0.9, minimality=False)
    assert old.ci == new.ci and old.confidence == 0.9 and "90% CI" in str(old)
    with pytest.warns(DeprecationWarning, match="Evaluation.confidence"):
        assert old.level == 0.9
    with pytest.raises(TypeError, match="granularity"):
        evaluate(scorer, circuit, level="node")
