"""Tests for faithfulness curves: hand-computed areas, the pipeline on a fake scorer, and
attribution beating a random ranking on toy-seq."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

import circuitgraph as cg
from circuitgraph.evaluation.curves import curve_areas, faithfulness_curve, pruning_ranking


def test_areas_by_hand() -> None:
    cpr, cmd = curve_areas([0.1, 0.5, 1.0], [0.0, 0.5, 1.0])
    assert cpr == pytest.approx(0.4 * 0.25 + 0.5 * 0.75)  # 0.475
    assert cmd == pytest.approx(0.4 * 0.75 + 0.5 * 0.25)  # 0.425
    assert curve_areas([0.0, 1.0], [1.0, 1.0]) == pytest.approx((1.0, 0.0))
    cpr, cmd = curve_areas([0.2, 0.6], [1.5, 0.5])  # overshooting counts in CMD too
    assert cpr == pytest.approx(0.4) and cmd == pytest.approx(0.4 * 0.5)
    with pytest.raises(ValueError, match="strictly increasing"):
        curve_areas([0.5, 0.1], [0.0, 1.0])


class CountingScorer:
    """Fake scorer: the share of ``important`` heads in the circuit, plus ``offset``."""

    def __init__(self, cfg, important: set[str], offset: float = 0.0) -> None:
        self.model = SimpleNamespace(cfg=cfg)
        self.important, self.offset = important, offset

    def score(self, circuit) -> float:
        return self.offset + len(set(circuit.heads()) & self.important) / len(self.important)


def test_constructed_curve(toy) -> None:
    scorer = CountingScorer(toy.cfg, {"a0.0", "a0.1"}, offset=0.3)
    ranking = {"a0.0": 4.0, "a0.1": 3.0, "m0": 2.0, "m1": -1.0}
    curve = faithfulness_curve(scorer, ranking, fractions=(0.25, 0.5, 1.0))
    assert curve.table["k"].tolist() == [1, 2, 4]
    assert curve.table["f"].tolist() == pytest.approx([0.5, 1.0, 1.0])
    assert curve.full_score == pytest.approx(1.3) and curve.empty_score == pytest.approx(0.3)
    assert curve.cpr == pytest.approx(0.25 * 0.75 + 0.5 * 1.0)  # 0.6875
    assert curve.cmd == pytest.approx(0.25 * 0.25)  # 0.0625
    worst = faithfulness_curve(
        scorer, {k: -v for k, v in ranking.items()}, (0.25, 0.5, 1.0), absolute=False
    )
    assert worst.table["f"].tolist() == pytest.approx([0.0, 0.0, 1.0])
    assert worst.cpr == pytest.approx(0.25) and worst.cmd == pytest.approx(0.25 * 1.0 + 0.5 * 0.5)


@pytest.fixture(scope="module")
def scorer(toy):
    return cg.Scorer(toy, cg.make_task("digits", toy, n=24, template="lists", seed=2))


@pytest.mark.parametrize("method", ["eap_ig", "eap"])
def test_attribution_beats_random(scorer, method, tmp_path) -> None:
    curve = faithfulness_curve(scorer, cg.attribute_edges(scorer, method=method, steps=5))
    assert curve.level == "edge" and curve.table["k"].iloc[-1] == 262
    assert curve.table["f"].iloc[-1] == pytest.approx(1.0, abs=1e-5)
    assert curve.cpr > curve.random_cpr and curve.cmd < curve.random_cmd
    if method == "eap_ig":
        assert curve.cpr > curve.random_cpr + 0.2
        path = curve.plot(tmp_path / "curve.svg", label=method).figure
        assert (tmp_path / "curve.svg").stat().st_size > 0 and path is not None


def test_node_ranking_from_pruning(scorer) -> None:
    circuit = cg.prune_nodes(scorer, threshold=0.8, progress=False)
    ranking = pruning_ranking(circuit)
    kept = circuit.heads() + circuit.mlps()
    top = sorted(ranking, key=ranking.get, reverse=True)[: len(kept)]
    assert set(top) == set(kept) and len(ranking) == 15  # 12 heads + 3 MLPs
    curve = faithfulness_curve(scorer, ranking, fractions=(0.2, 0.5, 1.0))
    assert curve.level == "node" and curve.cpr > curve.random_cpr
    with pytest.raises(ValueError, match="prune_nodes result"):
        pruning_ranking(cg.full_circuit(scorer.model.cfg))


def test_bad_rankings(scorer) -> None:
    with pytest.raises(ValueError, match=r"not in toy-seq's graph, e.g. \[\('a9.0', 'logits'\)"):
        faithfulness_curve(scorer, {("a9.0", "logits"): 1.0, ("m2", "logits"): 0.5})
    with pytest.raises(ValueError, match="not in toy-seq's graph"):
        faithfulness_curve(scorer, {"a0.7": 1.0})
    with pytest.raises(ValueError, match="must all be node names or all"):
        faithfulness_curve(scorer, {"a0.0": 1.0, ("m2", "logits"): 0.5})
    with pytest.raises(ValueError, match="empty"):
        faithfulness_curve(scorer, {})
    with pytest.raises(ValueError, match="fractions must lie in"):
        faithfulness_curve(scorer, {"a0.0": 1.0}, fractions=(0.0, 1.0))
    with pytest.raises(ValueError, match="non-finite"):
        faithfulness_curve(scorer, {"a0.0": float("nan")})
