"""Tests for compare_methods and node pruning's repeat-until-stable option."""

from __future__ import annotations

import pytest

import circuitgraph as cg
from circuitgraph.evaluation.compare import compare_methods
from circuitgraph.evaluation.evaluate import without_components


@pytest.fixture(scope="module")
def halves(toy):
    task = cg.make_task("digits", toy, n=24, template="lists", seed=3)
    return task.split(0.5, seed=0)


def test_compare_methods(toy, halves, tmp_path) -> None:
    train, test = halves
    scorer = cg.Scorer(toy, train)
    result = compare_methods(scorer, held_out=test, resamples=200)
    table = result.table
    assert list(table.index) == ["nodes", "acdc", "eap", "eap_ig"]
    assert result.evaluated_on == "held-out"
    held = cg.held_out_scorer(scorer, test)  # the discovery prompts' mean-ablation values
    for method, circuit in result.circuits.items():
        row = table.loc[method]
        assert row["score"] == pytest.approx(held.score(circuit), abs=1e-5)
        assert row["ci_low"] <= row["score"] <= row["ci_high"]
        assert row["edges"] == len(circuit.sender_receiver_edges()) and row["seconds"] > 0
    assert result.circuits["nodes"].level == "node" and result.circuits["acdc"].level == "edge"
    # attribution circuits are size-matched to ACDC's
    assert table.loc["eap", "edges"] == table.loc["eap_ig", "edges"] == table.loc["acdc", "edges"]
    assert table.loc["eap_ig", "cpr"] > table.loc["eap_ig", "random_cpr"]
    result.plot(tmp_path / "methods.svg")
    assert (tmp_path / "methods.svg").stat().st_size > 0
    small = compare_methods(scorer, methods=["eap"], k=7, resamples=50)
    assert small.evaluated_on == "in-sample" and small.table.loc["eap", "edges"] == 7


def test_compare_methods_bad_input(toy, halves) -> None:
    train, _ = halves
    scorer = cg.Scorer(toy, train)
    with pytest.raises(ValueError, match="unknown methods \\['acdc2'\\]"):
        compare_methods(scorer, methods=["acdc2"])
    with pytest.raises(ValueError, match="needs a logit_diff scorer"):
        compare_methods(scorer.with_metric("kl"))
    foreign = cg.make_task("digits", cg.load_model("random:gpt2-tiny"), n=4)
    with pytest.raises(ValueError, match="built for model"):
        compare_methods(scorer, held_out=foreign, methods=["eap"])


def test_repeat_until_stable_is_a_fixed_point(toy) -> None:
    """One backward sweep is path-dependent; repeating it ends where no node can go alone."""
    scorer = cg.Scorer(toy, cg.make_task("digits", toy, n=24, template="lists", seed=3))
    once = cg.prune_nodes(scorer, threshold=0.6, progress=False)
    stable = cg.prune_nodes(scorer, threshold=0.6, progress=False, repeat=True)
    assert once.metadata["sweeps"] == 1 and stable.metadata["sweeps"] >= 2
    assert stable.metadata["parameters"]["repeat"] is True
    assert set(stable.heads() + stable.mlps()) < set(once.heads() + once.mlps())
    assert stable.metadata["score"] >= 0.6 - 1e-5
    for node in stable.heads() + stable.mlps():  # nothing left that could go alone
        assert scorer.score(without_components(stable, {node})) < 0.6
    single = cg.prune_nodes(scorer, threshold=0.6, progress=False, repeat=True, batch_size=1)
    assert single == stable  # batched tries decide as one-at-a-time ones
