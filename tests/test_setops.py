"""Tests for set operations, shared elements and overlap tables (circuitgraph.circuit.setops)."""

from __future__ import annotations

import types

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.circuit.nodes import CircuitConfig
from circuitgraph.circuit.setops import (
    complement,
    components,
    heads_and_mlps,
    jaccard,
    overlap_table,
    set_regions,
    shared,
    upset_table,
)
from circuitgraph.circuit.structure import full_structure

CONFIGS = [
    CircuitConfig("tiny", 2, 2, qkv=False),
    CircuitConfig("tiny", 2, 3, qkv=True),
    CircuitConfig("tiny-gqa", 3, 4, 2, qkv=True),
    CircuitConfig("tiny", 2, 2, qkv=True, positions=(0, 1)),
]
TINY = CONFIGS[1]


@st.composite
def circuit_of(draw, config: CircuitConfig, level: str) -> Circuit:
    """A random node-level (from random nodes) or edge-level (from random edges) circuit."""
    full = full_structure(config)
    if level == "node":
        names = [n for n, d in full.nodes.items() if d["kind"] not in ("embed", "logits")]
        return Circuit.from_nodes(config, draw(st.sets(st.sampled_from(names))))
    edges = [(u, v) for u, targets in full.succ.items() for v in targets]
    return Circuit.from_edges(config, draw(st.sets(st.sampled_from(edges), max_size=30)))


@st.composite
def triples(draw) -> tuple[Circuit, Circuit, Circuit]:
    config = draw(st.sampled_from(CONFIGS))
    level = draw(st.sampled_from(["node", "edge"]))
    return tuple(draw(circuit_of(config, level)) for _ in range(3))


LAWS = settings(max_examples=50, deadline=None)


@LAWS
@given(triples())
def test_commutativity_and_associativity(abc):
    a, b, c = abc
    for op in ("__and__", "__or__", "__xor__"):
        assert getattr(a, op)(b) == getattr(b, op)(a)
        assert getattr(getattr(a, op)(b), op)(c) == getattr(a, op)(getattr(b, op)(c))


@LAWS
@given(triples())
def test_distributivity_idempotence_absorption(abc):
    a, b, c = abc
    assert a & (b | c) == (a & b) | (a & c)
    assert a | (b & c) == (a | b) & (a | c)
    assert a & a == a and a | a == a
    assert a | (a & b) == a and a & (a | b) == a


@LAWS
@given(triples())
def test_difference_complement_and_shared(abc):
    a, b, c = abc
    assert a - b == a & ~b
    assert a - b == a & b.complement()
    assert ~~a == a
    assert a ^ b == (a - b) | (b - a)
    assert a | ~a == full_circuit(a.config)
    assert set(a & ~a) <= {"embed", "logits", "embed@0", "embed@1", "logits@0", "logits@1"}
    assert shared([a, b, c], at_least=3) == a & b & c
    assert shared([a, b, c], at_least=1) == a | b | c
    assert shared({"a": a, "b": b, "c": c}, at_least=2) == (a & b) | (a & c) | (b & c)


@LAWS
@given(triples())
def test_results_are_dags_subgraphs_and_keep_level(abc):
    a, b, _ = abc
    full = full_circuit(a.config)
    for result in (a & b, a | b, a - b, a ^ b, ~a, shared([a, b], 1)):
        assert isinstance(result, Circuit) and nx.is_directed_acyclic_graph(result)
        assert result.is_subgraph_of(full) and result.level == a.level
        assert result.config == a.config
    assert (a & b).is_subgraph_of(a) and (a & b).is_subgraph_of(b)
    assert a.is_subgraph_of(a | b) and (a - b).is_subgraph_of(a)


def test_node_level_semantics_by_hand():
    a = Circuit.from_nodes(TINY, ["a0.0", "a1.2", "m0"])
    b = Circuit.from_nodes(TINY, ["a0.0", "m1"])
    both = a & b
    assert both.level == "node" and both.heads() == ["a0.0"] and both.mlps() == []
    assert set(both) == {"embed", "logits", "a0.0", "a0.0.q", "a0.0.k", "a0.0.v"}
    assert (a - b).heads() == ["a1.2"] and {"embed", "logits"} <= set(a - b)
    assert (a ^ b).mlps() == ["m0", "m1"]
    assert (~a).heads() == ["a0.1", "a0.2", "a1.0", "a1.1"]
    assert "a1.2.q" not in ~a and "embed" in ~a


def test_edge_level_semantics_and_mixed_levels():
    a = Circuit.from_edges(TINY, {("embed", "a0.0.q"): {"effect": 1.0}, ("a0.0", "m1"): {}})
    b = Circuit.from_edges(TINY, {("embed", "a0.0.q"): {"effect": 2.0}, ("m1", "logits"): {}})
    both = a & b
    assert set(both.edges) == {("embed", "a0.0.q"), ("a0.0.q", "a0.0")}
    assert both.edges["embed", "a0.0.q"]["effect"] == 1.0  # attributes from the left operand
    assert (b & a).edges["embed", "a0.0.q"]["effect"] == 2.0
    assert both.level == "edge" and both.metadata["operation"] == "intersection"
    node = Circuit.from_nodes(TINY, ["a0.0"])
    mixed = node & a
    assert mixed.level == "edge" and set(mixed.edges) == set(both.edges)
    assert len(complement(a).edges) == full_circuit(TINY).number_of_edges() - 3


def test_gqa_difference_keeps_exact_node_sets():
    config = CONFIGS[2]
    a = Circuit.from_nodes(config, ["a1.0", "a1.1"])
    b = Circuit.from_nodes(config, ["a1.1"])
    assert (a - b).heads() == ["a1.0"] and "a1.g0.k" not in (a - b)
    assert "a1.g0.k" in Circuit.from_nodes(config, a - b)  # re-closing adds it back


def test_mixing_models_raises_naming_both():
    a = Circuit.from_nodes(TINY, ["a0.0"])
    other = Circuit.from_nodes(
        types.SimpleNamespace(n_layers=2, n_heads=3, model_name="gpt2"), ["a0.0"]
    )
    for op in (
        lambda: a & other,
        lambda: a | other,
        lambda: a - other,
        lambda: a ^ other,
        lambda: shared([a, other]),
        lambda: overlap_table({"x": a, "y": other}),
    ):
        with pytest.raises(ValueError, match="'tiny'.*'gpt2'"):
            op()
    with pytest.raises(ValueError, match="at_least"):
        shared([a, a], at_least=3)
    with pytest.raises(TypeError):
        a & 3  # noqa: B018


def test_overlap_table_shape_and_values():
    a = Circuit.from_nodes(TINY, ["a0.0", "a0.1", "m0"])
    b = Circuit.from_nodes(TINY, ["a0.1", "m0", "a1.2"])
    c = Circuit.from_nodes(TINY, [])
    table = overlap_table({"a": a, "b": b, "c": c}, on="both")
    assert list(table.columns) == [
        "on",
        "a",
        "b",
        "size_a",
        "size_b",
        "intersection",
        "union",
        "jaccard",
    ]
    assert len(table) == 2 * 6  # pairs with repetition of 3 circuits, for nodes and edges
    row = table[(table.on == "nodes") & (table.a == "a") & (table.b == "b")].iloc[0]
    assert (row.size_a, row.size_b, row.intersection, row.union) == (3, 3, 2, 4)
    assert row.jaccard == 0.5
    diag = table[(table.on == "nodes") & (table.a == "c") & (table.b == "c")].iloc[0]
    assert diag.size_a == 0 and diag.jaccard == 1.0  # two empty circuits are identical
    edges = table[(table.on == "edges") & (table.a == "a") & (table.b == "a")].iloc[0]
    assert edges.size_a == len(a.sender_receiver_edges()) and edges.jaccard == 1.0
    with pytest.raises(ValueError, match="on must be"):
        overlap_table({"a": a}, on="heads")


def test_jaccard_is_one_for_two_empty_sets_here_and_in_stability():
    from circuitgraph.evaluation import jaccard as exported
    from circuitgraph.evaluation.stability import jaccard as used_by_stability

    assert jaccard(set(), set()) == 1.0 and jaccard({"m0"}, set()) == 0.0
    assert jaccard({"a0.0", "m0"}, {"m0", "a1.1"}) == pytest.approx(1 / 3)
    assert used_by_stability is jaccard is exported  # one definition
    assert used_by_stability(set(), set()) == 1.0


def test_heads_and_mlps_drops_the_qkv_split_and_keeps_the_metadata():
    with_qkv = Circuit.from_nodes(TINY, ["a0.0", "m1"], qkv=True)
    with_qkv.metadata = {"task": "digits"}
    plain = heads_and_mlps(with_qkv)
    assert not plain.config.qkv and plain.components() == ["a0.0", "m1"]
    assert plain.metadata == with_qkv.metadata and plain.metadata is not with_qkv.metadata
    assert components(plain) == components(with_qkv) == set(with_qkv.components())


def test_components_count_heads_and_mlps_only():
    a = Circuit.from_nodes(TINY, ["a0.0", "m1"])
    assert components(a, "nodes") == {"a0.0", "m1"}
    assert ("a0.0.q", "a0.0") not in components(a, "edges")
    assert ("embed", "a0.0.q") in components(a, "edges")


def test_upset_table_and_regions():
    named = {
        name: Circuit.from_nodes(TINY, heads)
        for name, heads in {
            "w": ["a0.0", "a0.1"],
            "x": ["a0.0"],
            "y": ["a0.0", "m1"],
            "z": ["a1.2"],
        }.items()
    }
    table = upset_table(named)
    assert list(table.columns) == ["w", "x", "y", "z", "size", "members"]
    assert table["size"].sum() == 4 and sorted(table["size"]) == [1, 1, 1, 1]
    everywhere = table[table.w & table.x & table.y].iloc[0]
    assert everywhere.members == ["a0.0"] and not everywhere.z
    regions = set_regions({"p": {1, 2}, "q": {2, 3}})
    assert regions == {(True, False): {1}, (True, True): {2}, (False, True): {3}}
