"""roc_auc: ROC points and AUC of circuit discovery against a known ground truth (issue 25)."""

from __future__ import annotations

import math
import types

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import circuitgraph as cg
from circuitgraph.circuit.graph import Circuit
from circuitgraph.circuit.nodes import CircuitConfig
from circuitgraph.evaluation.roc import RocCurve, pruning_effects, roc_area, roc_auc

TOY = types.SimpleNamespace(n_layers=2, n_heads=3, model_name="toy")
CONFIGS = {
    "qkv": CircuitConfig("toy", n_layers=2, n_heads=2),
    "no_qkv": CircuitConfig("toy", n_layers=2, n_heads=2, qkv=False),
    "gqa": CircuitConfig("gqa", n_layers=2, n_heads=4, n_key_value_heads=2),
}
NODES = ["a0.0", "a0.1", "a0.2", "a1.0", "a1.1", "a1.2", "m0", "m1"]
TRUTH_NODES = ["a0.0", "a0.1", "a0.2", "a1.0"]  # 4 positives, 4 negatives


def _full(name: str) -> Circuit:
    return Circuit.full(CONFIGS[name])


def _edges(name: str) -> list[tuple[str, str]]:
    return _full(name).sender_receiver_edges()


def _edge_truth(name: str) -> Circuit:
    full = _full(name)
    edges = full.sender_receiver_edges()
    return Circuit.from_edges(full.config, edges[::3])


def _nodes_truth() -> Circuit:
    return Circuit.from_nodes(TOY, TRUTH_NODES, qkv=False)


@pytest.mark.parametrize("rule", ["pessimistic", "trapezoid"])
@pytest.mark.parametrize("level", ["nodes", "edges"])
def test_perfect_ranking_is_one_and_reversed_is_zero(rule, level):
    if level == "nodes":
        truth, elements = _nodes_truth(), NODES
        positive = set(TRUTH_NODES)
    else:
        truth, elements = _edge_truth("no_qkv"), _edges("no_qkv")
        positive = set(truth.edges)
    perfect = {e: 2.0 if e in positive else 1.0 for e in elements}
    reversed_ = {e: 1.0 if e in positive else 2.0 for e in elements}
    assert roc_auc(perfect, truth, level=level, rule=rule).auc == 1.0
    assert roc_auc(reversed_, truth, level=level, rule=rule).auc == 0.0


def test_three_nested_circuits_by_hand():
    truth = _nodes_truth()
    circuits = [
        Circuit.from_nodes(TOY, ["a0.0", "a0.1", "m0"], qkv=False),  # (1/4, 2/4)
        Circuit.from_nodes(TOY, ["a0.0", "a0.1", "a0.2", "m0", "m1"], qkv=False),  # (2/4, 3/4)
        Circuit.from_nodes(TOY, [*TRUTH_NODES, "m0", "m1", "a1.1"], qkv=False),  # (3/4, 1)
    ]
    pessimistic = roc_auc(circuits, truth, level="nodes")
    trapezoid = roc_auc(circuits, truth, level="nodes", rule="trapezoid")
    assert pessimistic.fpr == (0.0, 0.25, 0.5, 0.75, 1.0)
    assert pessimistic.tpr == (0.0, 0.5, 0.75, 1.0, 1.0)
    # slabs (1 - fpr) * rise: 0.75 * 0.5 + 0.5 * 0.25 + 0.25 * 0.25
    assert pessimistic.auc == pytest.approx(0.5625)
    # trapezoids of width 1/4: (0 + .5) / 2 + (.5 + .75) / 2 + (.75 + 1) / 2 + 1, times 1/4
    assert trapezoid.auc == pytest.approx(0.6875)
    assert pessimistic == RocCurve(0.5625, pessimistic.fpr, pessimistic.tpr, "pessimistic",
                                   "nodes", 4, 4)  # fmt: skip


def test_acdc_pessimistic_auc_asserts():
    """The checks under ``pessimistic_auc`` in ACDC's acdc/acdc_graphics.py (l. 329-333)."""
    assert roc_area([0, 1], [0, 1]) == 0.0
    assert roc_area([0, 0.5, 1], [0, 0.5, 1]) == 0.5**2
    assert roc_area([0, 0.25, 1], [0, 0.25, 1]) == 0.25 * 0.75
    assert roc_area([0, 0.25, 0.5, 1], [0, 0.25, 0.5, 1]) == 5 / 16
    assert roc_area([0, 0.25, 0.75, 1], [0, 0.25, 0.5, 1]) == 4 / 16
    assert roc_area([0, 0.5, 1], [0, 0.5, 1], "trapezoid") == 0.5


def test_dominated_points_are_dropped_as_in_acdc():
    truth = _nodes_truth()
    good = Circuit.from_nodes(TOY, ["a0.0", "a0.1", "a0.2", "m0"], qkv=False)  # (1/4, 3/4)
    worse = Circuit.from_nodes(TOY, ["a0.0", "a0.1", "m0", "m1"], qkv=False)  # (2/4, 2/4)
    curve = roc_auc([worse, good], truth, level="nodes")
    assert list(zip(curve.fpr, curve.tpr, strict=True)) == [(0, 0), (0.25, 0.75), (1, 1)]
    assert curve.auc == pytest.approx(0.75 * 0.75)


def test_ties_are_one_point():
    curve = roc_auc(dict.fromkeys(NODES, 1.0), _nodes_truth(), level="nodes")
    assert (curve.fpr, curve.tpr, curve.auc) == ((0.0, 1.0), (0.0, 1.0), 0.0)
    assert (
        roc_auc(dict.fromkeys(NODES, 1.0), _nodes_truth(), level="nodes", rule="trapezoid").auc
        == 0.5
    )


def test_edges_count_head_internal_edges_like_acdc():
    gpt2 = types.SimpleNamespace(n_layers=12, n_heads=12, model_name="gpt2-small")
    truth = Circuit.from_edges(gpt2, [("embed", "a0.0.q"), ("a0.0", "logits")])
    curve = roc_auc([truth], truth, internal=True)
    assert curve.n_positive == 3  # with the internal edge a0.0.q -> a0.0
    assert curve.n_positive + curve.n_negative == 32923  # ACDC's GPT-2 small edge count
    assert curve.auc == 1.0
    plain = roc_auc([truth], truth)  # sender-to-receiver edges only: 32923 - 3 * 144
    assert (plain.n_positive, plain.n_positive + plain.n_negative) == (2, 32923 - 3 * 144)


def test_internal_edges_score_a_convention_not_the_discovery():
    """ACDC's truth may hold ``a.q -> a`` with no edge into ``a.q``; our circuits drop such an
    edge, so counting internal edges scores a complete discovery below 1."""
    cfg = CONFIGS["qkv"]
    found = Circuit.from_edges(cfg, [("embed", "a0.1.v"), ("a0.1", "logits")])
    truth = found.copy()
    truth.add_edge("a0.1.q", "a0.1")  # ACDC's convention: q computed from ablated inputs
    assert roc_auc([found], truth).auc == 1.0
    assert roc_auc([found], truth, internal=True).auc < 1.0


def test_node_level_counts_heads_and_mlps_of_edge_circuits():
    cfg = CONFIGS["qkv"]
    truth = Circuit.from_edges(cfg, [("embed", "a0.1.v"), ("a0.1", "m1"), ("m1", "logits")])
    curve = roc_auc([truth], truth, level="nodes")
    assert (curve.n_positive, curve.n_negative, curve.auc) == (2, 4, 1.0)


def test_circuit_mapping_and_single_circuit_are_families():
    truth = _nodes_truth()
    a = Circuit.from_nodes(TOY, ["a0.0", "m0"], qkv=False)
    b = Circuit.from_nodes(TOY, ["a0.0", "a0.1", "a0.2", "m0"], qkv=False)
    assert roc_auc({0.1: a, 0.01: b}, truth, level="nodes") == roc_auc([b, a], truth, level="nodes")
    assert roc_auc(a, truth, level="nodes") == roc_auc([a], truth, level="nodes")


def test_candidates_restrict_the_negatives():
    truth = _nodes_truth()
    start = Circuit.from_nodes(TOY, [*TRUTH_NODES, "m0", "m1"], qkv=False)
    found = Circuit.from_nodes(TOY, ["a0.0", "a1.2"], qkv=False)  # a1.2: not a candidate
    curve = roc_auc([found], truth, level="nodes", candidates=start)
    assert (curve.n_positive, curve.n_negative) == (4, 2)
    assert (0.0, 0.25) in zip(curve.fpr, curve.tpr, strict=True)
    by_name = roc_auc([found], truth, level="nodes", candidates=[*TRUTH_NODES, "m0", "m1"])
    assert by_name == curve


def test_pruning_effects_read_the_tested_log():
    cfg = CONFIGS["no_qkv"]
    truth = Circuit.from_edges(cfg, [("a1.0", "logits"), ("embed", "a0.0")])
    pruned = Circuit.from_edges(cfg, [("a1.0", "logits")])
    pruned.metadata["tested"] = [
        ["a1.0", "logits", 0.5, False],
        ["a1.1", "logits", -0.9, True],
        ["embed", "a0.0", 0.1, True],
    ]
    effects = pruning_effects(pruned)
    assert effects[("a1.1", "logits")] == -0.9
    signed = roc_auc(effects, truth, absolute=False, rule="trapezoid")
    assert signed.auc == 1.0  # -0.9 ranks below 0.1; the untested edges rank last
    assert roc_auc(effects, truth, rule="trapezoid").auc < 1.0  # |-0.9| ranks it second
    with pytest.raises(ValueError, match="prune_edges result"):
        pruning_effects(truth)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: roc_auc([_nodes_truth()], _nodes_truth(), level="edges"), "node-level circuit"),
        (lambda: roc_auc({"a0.0": 1.0}, _edge_truth("qkv")), "node scores with level='edges'"),
        (lambda: roc_auc({("embed", "m0"): 1.0}, _nodes_truth(), level="nodes"), "pass level"),
        (lambda: roc_auc({("m1", "m0"): 1.0}, _edge_truth("no_qkv")), "not edges of the full"),
        (lambda: roc_auc({("embed", "a0.0.q"): 1.0}, _edge_truth("no_qkv")), "qkv=False"),
        (lambda: roc_auc({"a9.0": 1.0}, _nodes_truth(), level="nodes"), "not heads or MLPs"),
        (lambda: roc_auc({"m0": math.nan}, _nodes_truth(), level="nodes"), "NaN"),
        (lambda: roc_auc({}, _nodes_truth(), level="nodes"), "empty"),
        (lambda: roc_auc([], _nodes_truth(), level="nodes"), "no circuits"),
        (lambda: roc_auc([_full("qkv")], _nodes_truth(), level="nodes"), "different models"),
        (lambda: roc_auc([_full("no_qkv")], _full("qkv"), level="nodes"), "graph options"),
        (lambda: roc_auc({"m0": 1.0}, Circuit.from_nodes(TOY, []), level="nodes"), "no positives"),
        (lambda: roc_auc({"m0": 1.0}, Circuit.full(TOY), level="nodes"), "no negatives"),
        (lambda: roc_auc({"m0": 1.0}, _nodes_truth(), level="heads"), "level must be"),
        (lambda: roc_auc({"m0": 1.0}, _nodes_truth(), level="nodes", rule="x"), "rule must be"),
        (
            lambda: roc_auc([_nodes_truth()], _nodes_truth(), level="nodes", candidates=["m0"]),
            "outside the candidates",
        ),
    ],
)
def test_clear_errors(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_results_of_another_kind_are_a_type_error():
    with pytest.raises(TypeError, match="circuits or a mapping"):
        roc_auc([{"m0": 1.0}], _nodes_truth(), level="nodes")  # type: ignore[list-item]


# --- properties -------------------------------------------------------------------------

SCORE = st.integers(-4, 4)  # few values: plenty of ties


@st.composite
def edge_scores(draw, name: str):
    edges = _edges(name)
    chosen = draw(st.lists(st.sampled_from(edges), min_size=1, unique=True))
    return {e: float(draw(SCORE)) for e in chosen}


@settings(max_examples=40, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(CONFIGS)))
def test_nested_threshold_circuits_match_their_scores(data, name):
    scores = data.draw(edge_scores(name))
    full, truth = _full(name), _edge_truth(name)
    circuits = [full.threshold(scores, tau) for tau in {abs(s) for s in scores.values()}]
    for rule in ("pessimistic", "trapezoid"):
        from_circuits = roc_auc(circuits, truth, rule=rule)
        from_scores = roc_auc(scores, truth, rule=rule)
        assert (from_circuits.fpr, from_circuits.tpr) == (from_scores.fpr, from_scores.tpr)
        assert from_circuits.auc == from_scores.auc


@settings(max_examples=40, deadline=None)
@given(data=st.data(), name=st.sampled_from(sorted(CONFIGS)), absolute=st.booleans())
def test_auc_is_invariant_to_monotone_transforms(data, name, absolute):
    scores, truth = data.draw(edge_scores(name)), _edge_truth(name)
    # odd and increasing: keeps the order of the scores and of their magnitudes
    transformed = {e: s**3 * 5 for e, s in scores.items()}
    for rule in ("pessimistic", "trapezoid"):
        a = roc_auc(scores, truth, rule=rule, absolute=absolute)
        b = roc_auc(transformed, truth, rule=rule, absolute=absolute)
        assert a == b
        assert 0.0 <= a.auc <= 1.0
        assert a.fpr[0] == a.tpr[0] == 0.0 and a.fpr[-1] == a.tpr[-1] == 1.0


@settings(max_examples=60, deadline=None)
@given(
    scores=st.dictionaries(
        st.sampled_from(NODES), st.floats(-1e6, 1e6, allow_nan=False), min_size=1
    ),
    truth_nodes=st.lists(st.sampled_from(NODES), min_size=1, max_size=7, unique=True),
)
def test_trapezoid_is_the_mann_whitney_statistic(scores, truth_nodes):
    truth = Circuit.from_nodes(TOY, truth_nodes, qkv=False)
    ranked = {n: abs(scores[n]) if n in scores else -math.inf for n in NODES}  # unscored: last
    pos = [ranked[n] for n in NODES if n in truth_nodes]
    neg = [ranked[n] for n in NODES if n not in truth_nodes]
    u = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    trapezoid = roc_auc(scores, truth, level="nodes", rule="trapezoid")
    pessimistic = roc_auc(scores, truth, level="nodes")
    assert trapezoid.auc == pytest.approx(u / (len(pos) * len(neg)), abs=1e-12)
    assert 0.0 <= pessimistic.auc <= trapezoid.auc + 1e-12 <= 1.0 + 1e-12
    assert list(trapezoid.fpr) == sorted(trapezoid.fpr)


@settings(max_examples=80, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 8), st.integers(0, 8)), max_size=8))
def test_pessimistic_is_the_area_under_the_best_tpr_so_far(grid):
    """ACDC's rule on any point cloud: the area under f(x) = max{tpr_i : fpr_i <= x}."""
    points = [(a / 8, b / 8) for a, b in grid] + [(0.0, 0.0), (1.0, 1.0)]
    xs = sorted({x for x, _ in points})
    best = [max(y for x, y in points if x <= cut) for cut in xs]
    expected = sum(f * (b - a) for f, a, b in zip(best, xs, xs[1:], strict=False))
    fpr, tpr = [x for x, _ in points], [y for _, y in points]
    assert roc_area(fpr, tpr) == pytest.approx(expected)
    assert roc_area(fpr, tpr) <= roc_area(fpr, tpr, "trapezoid") + 1e-12


def test_positional_circuits():
    cfg = CircuitConfig("toy", n_layers=1, n_heads=1, qkv=False, positions=(0, 1))
    truth = Circuit.from_edges(cfg, [("embed", "a0.0"), ("a0.0", "logits")])  # both positions
    scores = {("embed@1", "a0.0@1"): 1.0, ("a0.0@1", "logits@1"): 1.0, ("m0@0", "logits@0"): 0.5}
    curve = roc_auc(scores, truth, rule="trapezoid")
    assert (curve.n_positive, curve.n_negative) == (4, 8)  # 6 edges per position
    assert curve.tpr[:2] == (0.0, 0.5) and curve.fpr[:2] == (0.0, 0.0)


def test_public_api():
    assert cg.roc_auc is roc_auc and cg.RocCurve is RocCurve
