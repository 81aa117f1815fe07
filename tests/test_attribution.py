"""Attribution patching: exact where the metric is linear in the masks; a sane ranking else."""

from __future__ import annotations

import pytest
import torch

import circuitgraph as cg
from circuitgraph.prune.attribution import attribute_edges, compare_with_pruned
from circuitgraph.prune.edges import prune_edges


def _linear_scorer(model) -> cg.Scorer:
    """Logit difference with the final norm removed: linear in the edges into ``logits``."""
    scorer = cg.Scorer(model, cg.make_task("digits", model, n=4, seed=0))
    scorer.components.ln_final = torch.nn.Identity()
    return scorer


@pytest.mark.parametrize("method", ["eap", "eap_ig"])
def test_linear_case_equals_exact_effects(tiny, method):
    scorer = _linear_scorer(tiny)
    full = cg.full_circuit(tiny.cfg)
    edges = full.sender_receiver_edges()
    scores = attribute_edges(scorer, method=method, steps=3)
    assert set(scores) == set(edges)
    base = scorer.score(full)
    for edge in [e for e in edges if e[1] == "logits"]:
        without = cg.Circuit.from_edges(tiny.cfg, [e for e in edges if e != edge])
        assert scores[edge] == pytest.approx(base - scorer.score(without), abs=1e-4)


def test_attribution_selects_circuits_comparable_with_pruning(toy):
    scorer = cg.Scorer(toy, cg.make_task("digits", toy, n=8, seed=0))
    full = cg.full_circuit(toy.cfg, qkv=False)
    scores = attribute_edges(scorer, method="eap_ig", steps=4, qkv=False)
    selected = full.top_k(scores, 20)
    assert len(selected.sender_receiver_edges()) == 20
    pruned = prune_edges(scorer, 0.02, qkv=False, progress=False)
    table = compare_with_pruned(selected, pruned)
    assert set(table["on"]) == {"nodes", "edges"}
    assert (table["jaccard"].dropna().between(0, 1)).all()


def test_bad_inputs(toy, tiny):
    scorer = cg.Scorer(toy, cg.make_task("digits", toy, n=4, seed=0))
    with pytest.raises(ValueError, match="unknown attribution method"):
        attribute_edges(scorer, method="saliency")
    with pytest.raises(ValueError, match="steps"):
        attribute_edges(scorer, method="eap_ig", steps=0)
    with pytest.raises(ValueError, match="circuit is for model"):
        attribute_edges(scorer, start=cg.full_circuit(tiny.cfg))
