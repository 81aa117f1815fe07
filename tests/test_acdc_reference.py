"""order="acdc" reproduces the ACDC reference implementation exactly on a shared case
(see tests/acdc_case.py for what the case holds)."""

from __future__ import annotations

import pytest
from acdc_case import REFERENCE, RUNS, reference_scorer

import circuitgraph as cg


@pytest.fixture(scope="module")
def scorer() -> cg.Scorer:
    return reference_scorer()


def test_the_empty_circuit_has_the_reference_kl(scorer):
    empty = cg.Circuit.from_edges(scorer.model.cfg, [])
    assert scorer.score(empty) == pytest.approx(REFERENCE["kl_clean_vs_corrupted_plain_forward"],
                                                abs=1e-6)  # fmt: skip


def _name(u: str, v: str) -> str:
    return f"{u} -> {v}"


@pytest.mark.parametrize("method", ["fast", "reference"])
@pytest.mark.parametrize("tau", sorted(RUNS))
def test_reproduces_the_reference_run(scorer, tau, method):
    run = RUNS[tau]
    result = cg.prune_edges(scorer, tau, order="acdc", method=method, progress=False)
    tested, untested = result.metadata["tested"], result.metadata["untested"]

    # Visit sequence: tested edges in the reference's log order, with untested removals
    # standing exactly where the reference removed them.
    ours = [(_name(u, v), i) for i, (u, v, _, _) in enumerate(tested)]
    for u, v, at in reversed(untested):  # each goes before the test it preceded
        ours.insert(at, (_name(u, v), None))
    assert ours == [(s["edge"], s["test"]) for s in run["sequence"]]
    # Every effect to float32 precision, and every decision.
    by_test = {s["test"]: s for s in run["sequence"] if s["test"] is not None}
    for i, (_, _, effect, removed) in enumerate(tested):
        assert effect == pytest.approx(by_test[i]["effect"], abs=2e-7)
        assert removed == by_test[i]["removed"]
    assert len(tested) == run["n_tested"] and len(untested) == run["n_removed_untested"]
    # The kept set (before dangling edges are dropped) and its reduction to embed->logits paths.
    gone = {(u, v) for u, v, _, removed in tested if removed} | {(u, v) for u, v, _ in untested}
    kept = set(cg.full_circuit(scorer.model.cfg).edges) - gone
    assert sorted(_name(u, v) for u, v in kept) == sorted(
        run["kept_addition_edges"] + run["kept_direct_edges"]
    )
    assert sorted(_name(u, v) for u, v in result.sender_receiver_edges()) == sorted(
        run["kept_on_embed_to_logits_paths"]
    )
    assert result.metadata["score"] == pytest.approx(run["kl_final_circuit"], abs=1e-5)
