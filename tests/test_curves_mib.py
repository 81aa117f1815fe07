"""faithfulness_curve(..., protocol="mib") reproduces MIB's circuit-localisation protocol
(issue 27), node rankings follow pruning's recorded drops, the random baseline is a mean of
draws, and compare_methods computes its curves on the held-out prompts, node and edge apart.

MIB's protocol, from ``evaluate_area_under_curve`` (MIB_circuit_track/evaluation.py of the MIB
code) and its results table (CPR from the run with ``absolute=False``, CMD from the run with
``absolute=True``), written out here independently of circuitgraph's implementation:

    baseline  = mean metric of the clean model
    corrupted = mean metric of the empty circuit, everything patched from the counterfactual
    N         = len(graph.edges)                       # the full edge graph
    for pct in (.001, .002, .005, .01, .02, .05, .1, .2, .5, 1):
        k = int(pct * N)                               # floor
        f = (metric(top k edges) - corrupted) / (baseline - corrupted)
    area_under  = sum (x2 - x1) * (f1 + f2) / 2        # x = pct, linear
    area_from_1 = sum (x2 - x1) * (|1 - f1| + |1 - f2|) / 2
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pytest

import circuitgraph as cg
from circuitgraph.evaluation.compare import compare_methods
from circuitgraph.evaluation.curves import curve_areas, faithfulness_curve, pruning_ranking

PERCENTAGES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1)


def mib_reference(
    model, task, scores: dict, absolute: bool
) -> tuple[list[int], list, float, float]:
    """(ks, faithfulnesses, area_under, area_from_1) as MIB computes them."""
    patching = cg.Scorer(model, task, ablation="resample", direction="noising")
    full = cg.full_circuit(model.cfg, qkv=True)
    edges = list(full.sender_receiver_edges())
    assert set(scores) == set(edges)  # the ranking scores every edge of the graph
    n = len(edges)

    def metric(kept) -> float:  # mean logit difference over the prompts
        return patching.evaluate(cg.Circuit.from_edges(full.config, kept))["logit_diff"]

    baseline = patching.evaluate(full)["logit_diff"]
    corrupted = metric([])
    ranked = sorted(edges, key=lambda e: -abs(scores[e]) if absolute else -scores[e])
    ks = [int(pct * n) for pct in PERCENTAGES]
    f = [(metric(ranked[:k]) - corrupted) / (baseline - corrupted) for k in ks]
    area_under = area_from_1 = 0.0
    for i in range(len(f) - 1):
        width = PERCENTAGES[i + 1] - PERCENTAGES[i]
        area_under += width * (f[i] + f[i + 1]) / 2
        area_from_1 += width * (abs(1 - f[i]) + abs(1 - f[i + 1])) / 2
    return ks, f, area_under, area_from_1


@pytest.fixture(scope="module")
def digits(toy):
    return cg.make_task("digits", toy, n=12, template="lists", seed=2)


def test_mib_protocol_equals_mibs_own_formulas(toy, digits) -> None:
    scorer = cg.Scorer(toy, digits)  # mean ablation: the protocol patches counterfactuals anyway
    scores = cg.attribute_edges(scorer, method="eap")
    assert any(v < 0 for v in scores.values())  # signed and absolute rankings differ
    ks, f_signed, cpr, _ = mib_reference(toy, digits, scores, absolute=False)
    _, f_abs, _, cmd = mib_reference(toy, digits, scores, absolute=True)
    curve = faithfulness_curve(scorer, scores, protocol="mib")
    assert curve.protocol == "mib" and curve.n_elements == 262 and ks[:3] == [0, 0, 1]
    assert curve.table["k"].tolist() == ks
    assert curve.table["f"].to_numpy() == pytest.approx(f_signed, abs=1e-4)
    assert curve.table["abs_f"].to_numpy() == pytest.approx(f_abs, abs=1e-4)
    assert curve.cpr == pytest.approx(cpr, abs=1e-4)
    assert curve.cmd == pytest.approx(cmd, abs=1e-4)
    default = faithfulness_curve(scorer, scores)  # the default protocol differs
    assert default.table["k"].tolist()[:3] == [1, 1, 2]
    assert default.cpr != pytest.approx(curve.cpr, abs=1e-3)


class CountingScorer:
    """Fake scorer: the share of ``important`` heads in the circuit."""

    def __init__(self, cfg, important: set[str]) -> None:
        self.model = SimpleNamespace(cfg=cfg)
        self.important = important

    def score(self, circuit) -> float:
        return len(set(circuit.heads()) & self.important) / len(self.important)


def test_random_baseline_is_a_mean_of_draws(toy) -> None:
    scorer = CountingScorer(toy.cfg, {"a0.0", "a1.1", "a2.2"})
    ranking = {f"a{L}.{h}": float(L * 4 + h) for L in range(3) for h in range(4)}
    fractions = (0.25, 0.5, 0.75, 1.0)
    one = faithfulness_curve(scorer, ranking, fractions, seed=3, random_draws=1)
    many = faithfulness_curve(scorer, ranking, fractions, seed=3, random_draws=8)
    assert one.random_draws == 1 and math.isnan(one.random_cpr_sd)
    assert many.random_draws == 8 and many.random_cpr_sd > 0
    assert (many.table["random_f_sd"] > 0).any()
    # the area is linear in f: the mean of the draws' CPRs is the CPR of the mean curve
    assert many.random_cpr == pytest.approx(curve_areas(fractions, many.table["random_f"])[0])
    # eight draws of a 12-head order: about 3/12 of the important heads per quarter
    assert many.table["random_f"].to_numpy() == pytest.approx([0.25, 0.5, 0.75, 1.0], abs=0.2)
    with pytest.raises(ValueError, match="random_draws must be an integer >= 1"):
        faithfulness_curve(scorer, ranking, fractions, random_draws=0)


def test_node_ranking_orders_kept_nodes_by_their_recorded_drop(toy) -> None:
    circuit = cg.Circuit.from_nodes(toy.cfg, ["a0.0", "a0.1", "a1.0", "a1.1"])
    circuit.metadata = {
        "start_score": 1.0,
        "removed": [
            {"node": "a2.0", "step": 0, "sweep": 1, "score": 0.95},
            {"node": "a2.1", "step": 2, "sweep": 1, "score": 0.9},
        ],
        "kept": [  # the score without the node at its refused try
            {"node": "a0.0", "step": 1, "sweep": 1, "score": 0.5},  # drop 0.45, then
            {"node": "a0.1", "step": 3, "sweep": 1, "score": 0.85},  # drop 0.05
            {"node": "a0.0", "step": 4, "sweep": 2, "score": 0.3},  # drop 0.6 (its last)
        ],
        "undone": [{"node": "a1.1", "step": 5, "sweep": 2, "score": 0.8}],  # drop 0.1
    }
    ranking = pruning_ranking(circuit)
    order = sorted(ranking, key=ranking.get, reverse=True)
    # kept by drop (a1.0 never tried), then removed from the last removed to the first
    assert order == ["a0.0", "a1.1", "a0.1", "a1.0", "a2.1", "a2.0"]
    # a real run: replay its log step by step
    scorer = cg.Scorer(toy, cg.make_task("digits", toy, n=8, template="lists"))
    pruned = cg.prune_nodes(scorer, 0.7, repeat=True, progress=False)
    meta = pruned.metadata
    accepted = [(r["step"], True, r) for r in meta["removed"] + meta["undone"]]
    events = sorted(accepted + [(r["step"], False, r) for r in meta["kept"]], key=lambda e: e[0])
    running, drops = meta["start_score"], {}
    for _, went, record in events:
        if not went or record in meta["undone"]:
            drops[record["node"]] = running - record["score"]
        if went:
            running = record["score"]
    ranking = pruning_ranking(pruned)
    kept = sorted(pruned.components(), key=ranking.get, reverse=True)
    assert set(kept) <= set(drops) and len(kept) >= 2
    assert [drops[n] for n in kept] == sorted((drops[n] for n in kept), reverse=True)


def test_compare_methods_curves_on_held_out_prompts_node_and_edge_apart(toy, tmp_path) -> None:
    task = cg.make_task("digits", toy, n=24, template="lists", seed=3)
    train, test = task.split(0.5, seed=0)
    scorer = cg.Scorer(toy, train)
    result = compare_methods(scorer, held_out=test, methods=["nodes", "eap"], resamples=50)
    assert result.evaluated_on == "held-out"
    assert result.table["level"].to_dict() == {"nodes": "node", "eap": "edge"}
    assert list(result.curve_table("edge").index) == ["eap"]
    held = cg.held_out_scorer(scorer, test)
    ranking = cg.attribute_edges(scorer, method="eap", steps=5)
    expected = faithfulness_curve(held, ranking)
    curve = result.curves["eap"]
    assert curve.cpr == pytest.approx(expected.cpr, abs=1e-6)
    assert result.table.loc["eap", "cpr"] == pytest.approx(expected.cpr, abs=1e-6)
    in_sample = faithfulness_curve(scorer, ranking)
    assert not np.allclose(curve.table["f"], in_sample.table["f"])  # not the training prompts
    node_curve = result.curves["nodes"]
    assert node_curve.level == "node" and node_curve.table["k"].iloc[-1] == 15
    fig = result.plot(tmp_path / "methods.svg")
    assert len(fig.axes) == 3  # sizes, node curves, edge curves
    with pytest.raises(ValueError, match="level must be"):
        result.curve_table("neuron")
