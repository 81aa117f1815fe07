"""Tests for stability: frequencies, Jaccard, consensus, held-out evaluation."""

from __future__ import annotations

import pytest

import circuitgraph as cg
from circuitgraph.evaluation import held_out_scorer
from circuitgraph.evaluation.stability import jaccard, stability


@pytest.fixture(scope="module")
def split(toy):
    task = cg.make_task("months", toy, n=36, template="lists", seed=4)
    return task.split(0.5, seed=0)


def nodes(toy):
    return lambda task: cg.prune_nodes(cg.Scorer(toy, task), threshold=0.8, progress=False)


def test_identical_prompt_sets_give_frequency_one(toy, split) -> None:
    train, _ = split
    result = stability(lambda seed: train, nodes(toy), resamples=3, method="seeds")
    circuit = result.circuits[0]
    assert all(c == circuit for c in result.circuits)
    assert set(result.frequency.index) == set(circuit.heads() + circuit.mlps())
    assert (result.frequency == 1.0).all()
    assert len(result.jaccard) == 3 and (result.jaccard["nodes"] == 1.0).all()
    assert result.consensus(1.0) == circuit and result.consensus(0.5) == circuit
    summary = result.summary()
    assert summary["heads_sd"] == 0.0 and summary["jaccard_nodes_mean"] == 1.0


def test_bootstrap_with_held_out(toy, split) -> None:
    train, test = split
    held = held_out_scorer(cg.Scorer(toy, train), test)
    result = stability(
        train, nodes(toy), resamples=4, seed=1, held_out=held, evaluate_resamples=200
    )
    runs = result.runs
    assert len(result.circuits) == 4 and len(runs) == 4
    assert (runs["n_prompts"] == len(train)).all()
    assert (runs["n_distinct"] <= train.n_distinct).all() and runs[
        "n_distinct"
    ].min() < train.n_distinct
    assert ((runs["ci_low"] <= runs["held_out"]) & (runs["held_out"] <= runs["ci_high"])).all()
    for circuit, row in zip(result.circuits, runs.itertuples(), strict=True):
        assert row.held_out == pytest.approx(held.score(circuit), abs=1e-5)
    counts = {
        n: sum(n in c.heads() + c.mlps() for c in result.circuits) / 4
        for n in result.frequency.index
    }
    assert result.frequency.to_dict() == pytest.approx(counts)
    strict, loose = result.consensus(1.0), result.consensus(0.25)
    assert set(strict.heads()) <= set(loose.heads())
    assert set(loose.heads() + loose.mlps()) == set(result.frequency.index)
    assert result.evaluation is not None and result.evaluation.n_prompts == len(test)
    assert result.evaluation.score == pytest.approx(held.score(result.consensus(0.5)), abs=1e-5)
    again = stability(train, nodes(toy), resamples=4, seed=1)
    assert all(a == b for a, b in zip(again.circuits, result.circuits, strict=True))  # seeded


def test_edge_level_and_seeds(toy) -> None:
    def top_edges(task):
        scorer = cg.Scorer(toy, task)
        return cg.full_circuit(toy.cfg).top_k(cg.attribute_edges(scorer, "eap"), 20)

    task = cg.make_task("digits", toy, n=6, seed=0)
    result = stability(task, top_edges, resamples=3, seed=0, method="seeds", model=toy)
    assert len(result.edge_frequency) >= 20 and result.edge_frequency.max() == 1.0
    assert result.jaccard["edges"].between(0, 1).all()
    consensus = result.consensus(1.0)
    assert consensus.level == "edge"
    assert set(consensus.sender_receiver_edges()) == {
        e for e, f in result.edge_frequency.items() if f == 1.0
    }


def test_jaccard_and_bad_inputs(toy, split) -> None:
    assert jaccard({1, 2}, {2, 3}) == pytest.approx(1 / 3) and jaccard(set(), set()) == 1.0
    train, _ = split
    with pytest.raises(ValueError, match="resamples must be an integer >= 1"):
        stability(train, nodes(toy), resamples=0)
    with pytest.raises(ValueError, match="unknown method 'jackknife'"):
        stability(train, nodes(toy), method="jackknife")
    with pytest.raises(ValueError, match="pass model="):
        stability(train, nodes(toy), resamples=2, method="seeds")
    with pytest.raises(TypeError, match="not a Circuit"):
        stability(train, lambda t: {"a0.0"}, resamples=2)
    result = stability(train, nodes(toy), resamples=2)
    with pytest.raises(ValueError, match="q must be in"):
        result.consensus(0.0)
