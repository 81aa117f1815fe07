"""Tests for node naming and the Circuit DAG (circuitgraph.circuit.nodes, .graph)."""

from __future__ import annotations

import json
import types

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import circuitgraph as cg
import circuitgraph.circuit.graph
import circuitgraph.circuit.nodes
import circuitgraph.circuit.structure
from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.circuit.nodes import CircuitConfig, Node, NodeKind, node_sort_key, parse_node
from circuitgraph.circuit.structure import full_structure


def model_cfg(n_layers: int, n_heads: int, n_kv: int | None = None, name: str = "toy"):
    """A stand-in for a TransformerLens config."""
    return types.SimpleNamespace(
        n_layers=n_layers,
        n_heads=n_heads,
        n_key_value_heads=n_kv,
        model_name=name,
        d_model=16,
        d_head=4,
    )


GPT2 = model_cfg(12, 12, name="gpt2-small")
TINY = model_cfg(2, 2)
GQA = model_cfg(2, 4, 2, name="tiny-gqa")


def expected_edges(n_layers: int, n_heads: int, inputs_per_layer: int) -> int:
    """Sender-to-receiver edge count by the formula: each attention receiver of layer L reads
    embed and 13L-style earlier outputs, the MLP also reads the heads of its own layer."""
    total = 0
    for layer in range(n_layers):
        earlier = 1 + layer * (n_heads + 1)
        total += inputs_per_layer * earlier + earlier + n_heads
    return total + 1 + n_layers * (n_heads + 1)


# --- edge counts -------------------------------------------------------------------------


def test_gpt2_small_edge_counts():
    split = full_circuit(GPT2, qkv=True)
    plain = full_circuit(GPT2, qkv=False)
    assert len(split.sender_receiver_edges()) == 32491
    assert len(plain.sender_receiver_edges()) == 11611
    assert split.number_of_edges() - 32491 == 12 * 12 * 3  # internal q/k/v -> head edges
    assert plain.number_of_edges() == 11611
    assert expected_edges(12, 12, 36) == 32491 and expected_edges(12, 12, 12) == 11611
    assert len(split.heads()) == 144 and len(split.mlps()) == 12


def test_tiny_config_by_hand():
    """2 layers x 2 heads without Q/K/V split: every edge written out."""
    heads0, heads1 = ["a0.0", "a0.1"], ["a1.0", "a1.1"]
    edges = {("embed", h) for h in heads0}
    edges |= {(s, "m0") for s in ["embed", *heads0]}
    edges |= {(s, h) for s in ["embed", *heads0, "m0"] for h in heads1}
    edges |= {(s, "m1") for s in ["embed", *heads0, "m0", *heads1]}
    edges |= {(s, "logits") for s in ["embed", *heads0, "m0", *heads1, "m1"]}
    assert len(edges) == 2 + 3 + 8 + 6 + 7 == 26
    full = full_circuit(TINY, qkv=False)
    assert set(full.edges) == edges
    assert not full.has_edge("a0.0", "a0.1") and not full.has_edge("m1", "a1.0")

    split = full_circuit(TINY, qkv=True)
    assert len(split.sender_receiver_edges()) == 6 + 3 + 24 + 6 + 7 == 46
    assert split.number_of_edges() == 46 + 2 * 2 * 3
    assert {u for u, v in split.edges if v == "a1.0"} == {"a1.0.q", "a1.0.k", "a1.0.v"}
    assert split.has_edge("m0", "a1.1.v") and split.edges["m0", "a1.1.v"]["qkv"] == "v"


def test_gqa_config():
    """4 query heads share 2 key/value heads: K/V inputs are per group."""
    full = full_circuit(GQA)
    assert len(full.sender_receiver_edges()) == 8 + 5 + 48 + 10 + 11 == 82
    assert full.number_of_edges() == 82 + 2 * 4 * 3
    assert "a0.g1.k" in full and "a0.1.k" not in full
    assert set(full.successors("a1.g0.v")) == {"a1.0", "a1.1"}
    assert set(full.successors("a1.g1.k")) == {"a1.2", "a1.3"}
    assert set(full.predecessors("a1.3")) == {"a1.3.q", "a1.g1.k", "a1.g1.v"}
    assert full.nodes["a0.g1.k"] == {
        "kind": "qkv",
        "layer": 0,
        "head": None,
        "group": 1,
        "qkv": "k",
        "pos": None,
    }
    smol = full_circuit(model_cfg(30, 9, 3, name="smollm2-135m"))
    assert len(smol.sender_receiver_edges()) == expected_edges(30, 9, 9 + 2 * 3) == 70651


def test_positions_replicate_graph_per_position():
    plain = full_circuit(GQA)
    positional = full_circuit(GQA, positions=[3, 0, 3])
    assert positional.config.positions == (0, 3)
    assert positional.number_of_edges() == 2 * plain.number_of_edges()
    assert {"embed@0", "embed@3", "logits@0", "logits@3"} <= set(positional)
    assert all(u.split("@")[1] == v.split("@")[1] for u, v in positional.edges)
    assert set(positional.predecessors("a1.2@3")) == {"a1.2.q@3", "a1.g1.k@3", "a1.g1.v@3"}
    assert positional.nodes["m1@3"]["pos"] == 3


# --- names -------------------------------------------------------------------------------


@pytest.mark.parametrize("cfg", [TINY, GQA])
@pytest.mark.parametrize("positions", [None, (0, 2)])
def test_every_name_parses_back_to_itself(cfg, positions):
    config = CircuitConfig.from_model_config(cfg, positions=positions)
    for name, attrs in full_structure(config).nodes.items():
        node = Node.parse(name, n_layers=config.n_layers)
        assert node.name == name and node.attrs() == attrs


def test_parse_rejects_non_canonical_names():
    for bad in ["a01.2", "a1", "a1.2.x", "a1.g0.q", "m", "embed@", "logit", "a1.2@-1", 3]:
        with pytest.raises(ValueError, match="node name"):
            parse_node(bad)
    assert parse_node("logits", 12).layer == 12
    assert parse_node("embed").kind == NodeKind.EMBED and parse_node("embed").layer == -1


def test_sort_is_numeric_and_layered():
    names = ["logits", "m10", "a10.0", "a2.11", "a2.3", "m2", "a2.3.q", "embed", "a2.g0.v"]
    assert sorted(names, key=node_sort_key) == [
        "embed",
        "a2.3.q",
        "a2.g0.v",
        "a2.3",
        "a2.11",
        "m2",
        "a10.0",
        "m10",
        "logits",
    ]
    circuit = Circuit.from_nodes(model_cfg(11, 12), ["a10.0", "a2.11", "a2.3", "m10", "m2"])
    assert circuit.heads() == ["a2.3", "a2.11", "a10.0"] and circuit.mlps() == ["m2", "m10"]


def test_circuit_config():
    config = CircuitConfig.from_model_config(model_cfg(2, 4, 4), qkv=False, positions=[1])
    assert config.n_key_value_heads is None and not config.gqa and config.positions == (1,)
    assert config.signature == ("toy", 2, 4, None, False)
    assert CircuitConfig.from_model_config(config, qkv=True).positions == (1,)
    assert CircuitConfig.from_dict(config.to_dict()) == config
    older = {k: v for k, v in config.to_dict().items() if k != "parallel"}  # before Pythia
    assert CircuitConfig.from_dict(older) == config
    gqa = CircuitConfig.from_model_config(GQA)
    assert gqa.input_name(1, 3, "k") == "a1.g1.k" and gqa.input_name(1, 3, "q") == "a1.3.q"
    assert list(gqa.heads_of_group(1)) == [2, 3]
    with pytest.raises(ValueError, match="must divide"):
        CircuitConfig("bad", 2, 4, 3)
    with pytest.raises(ValueError, match="positions"):
        CircuitConfig("bad", 2, 4, positions=(-1,))
    no_name = types.SimpleNamespace(n_layers=1, n_heads=1)
    assert CircuitConfig.from_model_config(no_name).model_name == "unknown"


# --- construction ------------------------------------------------------------------------


def test_from_nodes_implies_inputs_and_fixed_nodes():
    circuit = Circuit.from_nodes(GQA, ["a1.3", "m0"])
    assert set(circuit) == {"embed", "logits", "m0", "a1.3", "a1.3.q", "a1.g1.k", "a1.g1.v"}
    assert circuit.level == "node"
    assert set(circuit.edges) == {
        (u, v) for u, v in full_circuit(GQA).edges if u in circuit and v in circuit
    }
    plain = Circuit.from_nodes(TINY, ["a1.0"], qkv=False)
    assert set(plain.edges) == {("embed", "a1.0"), ("a1.0", "logits"), ("embed", "logits")}
    scored = Circuit.from_nodes(TINY, {"a0.1": {"score": 0.25}})
    assert scored.nodes["a0.1"]["score"] == 0.25 and scored.nodes["a0.1"]["kind"] == "head"


def test_from_nodes_positions():
    circuit = Circuit.from_nodes(TINY, ["a0.1", "m1@1"], positions=[0, 1])
    assert {"a0.1@0", "a0.1@1", "a0.1.k@1", "m1@1", "embed@0", "logits@1"} <= set(circuit)
    assert "m1@0" not in circuit
    with pytest.raises(ValueError, match="a0.1@7"):
        Circuit.from_nodes(TINY, ["a0.1@7"], positions=[0, 1])


@pytest.mark.parametrize(
    ("cfg", "qkv", "bad"),
    [(TINY, True, ["a2.0", "a0.5", "x"]), (TINY, False, ["a0.0.q"]), (GQA, True, ["a0.0.k"])],
)
def test_from_nodes_rejects_unknown_names(cfg, qkv, bad):
    with pytest.raises(ValueError, match="unknown node names") as info:
        Circuit.from_nodes(cfg, ["a0.1", *bad], qkv=qkv)
    message = str(info.value)
    assert all(repr(name) in message for name in bad) and "'a0.1'" not in message
    assert "valid names look like" in message


def test_from_edges_validates_and_adds_internal_edges():
    circuit = Circuit.from_edges(TINY, [("embed", "a0.1.q"), ("a0.1", "logits", {"effect": -2})])
    assert circuit.level == "edge"
    assert set(circuit.edges) == {("embed", "a0.1.q"), ("a0.1.q", "a0.1"), ("a0.1", "logits")}
    assert circuit.edges["a0.1", "logits"]["effect"] == -2
    assert circuit.sender_receiver_edges() == [("embed", "a0.1.q"), ("a0.1", "logits")]
    with pytest.raises(ValueError, match=r"\('a1.0', 'a0.0.q'\)"):
        Circuit.from_edges(TINY, [("a1.0", "a0.0.q")])
    with pytest.raises(ValueError, match=r"\('a0.0', 'a0.1.q'\)"):
        Circuit.from_edges(TINY, [("a0.0", "a0.1.q")])  # same layer
    with pytest.raises(ValueError, match="'a9.9'"):
        Circuit.from_edges(TINY, [("a9.9", "logits")])


def test_from_edges_gqa_internal_edges_only_to_present_heads():
    circuit = Circuit.from_edges(GQA, [("a0.0", "a1.g1.k"), ("a1.3", "logits")])
    assert circuit.has_edge("a1.g1.k", "a1.3") and "a1.2" not in circuit


# --- queries, derived graphs -------------------------------------------------------------


def test_prune_dangling_by_hand():
    circuit = Circuit.from_edges(
        TINY,
        [
            ("embed", "a0.0.q"),
            ("a0.0", "m0"),
            ("m0", "logits"),
            ("a0.1", "m1"),
            ("embed", "a1.1.k"),
        ],
    )
    pruned = circuit.prune_dangling()
    assert set(pruned.edges) == {
        ("embed", "a0.0.q"),
        ("a0.0.q", "a0.0"),
        ("a0.0", "m0"),
        ("m0", "logits"),
    }
    assert pruned.config == circuit.config and pruned.level == "edge"
    assert circuit.has_edge("a0.1", "m1")  # the original is untouched


def test_copy_keeps_config_level_and_independent_metadata():
    circuit = Circuit.from_nodes(TINY, ["a0.0"])
    circuit.metadata = {"task": "digits", "params": {"threshold": 0.8}}
    clone = circuit.copy()
    clone.metadata["params"]["threshold"] = 0.5
    assert clone == circuit and clone.level == "node" and clone.config == circuit.config
    assert circuit.metadata["params"]["threshold"] == 0.8


def test_networkx_algorithms_work():
    circuit = full_circuit(GQA)
    order = list(nx.topological_sort(circuit))
    assert order[0] == "embed" and order[-1] == "logits"
    assert nx.dag_longest_path_length(circuit) == 7  # embed q a0 m0 q a1 m1 logits
    assert nx.ancestors(circuit, "a0.0") == {"embed", "a0.0.q", "a0.g0.k", "a0.g0.v"}
    view = circuit.subgraph(["embed", "a0.0.q", "a0.0"])
    assert isinstance(view, Circuit) and view.config == circuit.config
    assert isinstance(circuit.reverse(copy=False), Circuit)
    reversed_copy = circuit.reverse()  # reversed edges are not a circuit's: a plain DiGraph
    assert type(reversed_copy) is nx.DiGraph and reversed_copy.has_edge("logits", "m1")


def test_is_subgraph_of_and_model_mixing():
    small, big = Circuit.from_nodes(TINY, ["a0.0"]), Circuit.from_nodes(TINY, ["a0.0", "m1"])
    assert small.is_subgraph_of(big) and not big.is_subgraph_of(small)
    other = Circuit.from_nodes(model_cfg(2, 2, name="other"), ["a0.0"])
    with pytest.raises(ValueError, match="'toy'.*'other'"):
        small.is_subgraph_of(other)
    with pytest.raises(ValueError, match="graph options"):
        small & Circuit.from_nodes(TINY, ["a0.0"], qkv=False)


def test_top_k_and_threshold():
    full = full_circuit(TINY, qkv=False)
    scores = {
        ("embed", "a0.0"): 0.5,
        ("a0.0", "logits"): -2.0,
        ("m0", "logits"): 0.5,
        ("embed", "m1"): 0.1,
    }
    top = full.top_k(scores, 2)
    assert set(top.edges) == {("a0.0", "logits"), ("embed", "a0.0")}  # tie: canonical order
    assert top.edges["a0.0", "logits"]["score"] == -2.0 and top.level == "edge"
    assert full.top_k(scores, 0).number_of_edges() == 0
    assert set(full.threshold(scores, 0.5).edges) == set(scores) - {("embed", "m1")}
    with pytest.raises(ValueError, match="a1.0"):
        full.top_k({("a1.0", "a0.0"): 1.0}, 1)


# --- JSON --------------------------------------------------------------------------------


def test_json_file_round_trip(tmp_path):
    circuit = Circuit.from_edges(
        GQA,
        {("embed", "a0.2.q"): {"effect": 0.5, "score": 1.0}, ("a0.2", "logits"): {}},
        positions=[0, 4],
    )
    circuit.nodes["a0.2@4"]["score"] = 0.3
    circuit.metadata = {"task": "digits", "method": "prune_edges", "params": {"tau": 0.01}}
    path = circuit.to_json(tmp_path / "sub" / "c.json")
    assert [p.name for p in path.parent.iterdir()] == ["c.json"]  # no temp files left
    loaded = Circuit.from_json(path)
    assert loaded.to_dict() == circuit.to_dict() and loaded == circuit
    assert dict(loaded.nodes(data=True)) == dict(circuit.nodes(data=True))
    assert list(loaded.edges(data=True)) == list(circuit.edges(data=True))
    assert loaded.level == "edge" and loaded.config == circuit.config
    assert json.loads(path.read_text())["schema_version"] == 1


def _write(tmp_path, data) -> str:
    path = tmp_path / "bad.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data))
    return str(path)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(schema_version=2), "newer"),
        (lambda d: d.pop("schema_version"), "schema_version"),
        (lambda d: d.pop("edges"), "missing keys"),
        (lambda d: d["config"].pop("n_heads"), "missing keys"),
        (lambda d: d.update(level="heads"), "level"),
        (lambda d: d["nodes"].append("a7.0"), "unknown nodes.*a7.0"),
        (lambda d: d["edges"].append(["logits", "embed", {}]), "cycle: (logits|embed) ->"),
        (lambda d: d["edges"].append(["embed", "a0.0", {}]), r"not in the full graph"),
        (lambda d: d["edges"].append(["embed", "m1", {}]), "missing from 'nodes'"),
    ],
)
def test_json_errors_name_file_and_problem(tmp_path, edit, message):
    data = Circuit.from_nodes(TINY, ["a0.0"]).to_dict()
    edit(data)
    path = _write(tmp_path, data)
    with pytest.raises(ValueError, match=message) as info:
        Circuit.from_json(path)
    assert str(info.value).startswith(path)


def test_malformed_json(tmp_path):
    path = _write(tmp_path, '{"schema_version": 1, "nodes": [')
    with pytest.raises(ValueError, match="not valid JSON"):
        Circuit.from_json(path)
    with pytest.raises(ValueError, match="expected a JSON object"):
        Circuit.from_json(_write(tmp_path, "[1, 2]"))


CONFIGS = [
    CircuitConfig("tiny", 2, 2, qkv=False),
    CircuitConfig("tiny", 2, 3, qkv=True),
    CircuitConfig("tiny-gqa", 3, 4, 2, qkv=True),
    CircuitConfig("tiny", 2, 2, qkv=True, positions=(0, 1)),
]
FLOATS = st.floats(allow_nan=False, allow_infinity=False, width=32)


@st.composite
def attributed_circuits(draw):
    config = draw(st.sampled_from(CONFIGS))
    full = full_structure(config)
    edges = [(u, v) for u, targets in full.succ.items() for v in targets]
    chosen = draw(st.lists(st.sampled_from(edges), max_size=25, unique=True))
    circuit = Circuit.from_edges(config, {e: {"effect": draw(FLOATS)} for e in chosen})
    if draw(st.booleans()):
        circuit = circuit.prune_dangling()
    for node in circuit:
        if draw(st.booleans()):
            circuit.nodes[node]["score"] = draw(FLOATS)
    circuit.metadata = draw(st.dictionaries(st.text(max_size=5), FLOATS | st.text(), max_size=3))
    circuit.level = draw(st.sampled_from(["node", "edge"]))
    return circuit


@settings(max_examples=60, deadline=None)
@given(attributed_circuits())
def test_json_round_trip_is_identity(circuit):
    loaded = Circuit.from_dict(json.loads(json.dumps(circuit.to_dict())))
    assert loaded.to_dict() == circuit.to_dict()
    assert dict(loaded.nodes(data=True)) == dict(circuit.nodes(data=True))
    assert {(u, v): d for u, v, d in loaded.edges(data=True)} == {
        (u, v): d for u, v, d in circuit.edges(data=True)
    }
    assert (loaded.level, loaded.metadata, loaded.config) == (
        circuit.level,
        circuit.metadata,
        circuit.config,
    )


@settings(max_examples=60, deadline=None)
@given(attributed_circuits())
def test_prune_dangling_is_idempotent_and_leaves_only_paths(circuit):
    pruned = circuit.prune_dangling()
    assert pruned.prune_dangling().to_dict() == pruned.to_dict()
    assert pruned.is_subgraph_of(circuit)
    sources = [n for n in circuit if circuit.nodes[n]["kind"] == "embed"]
    sinks = [n for n in circuit if circuit.nodes[n]["kind"] == "logits"]

    def on_path(graph, node):
        reached = any(s == node or nx.has_path(graph, s, node) for s in sources if s in graph)
        return reached and any(
            t == node or nx.has_path(graph, node, t) for t in sinks if t in graph
        )

    assert all(on_path(pruned, n) for n in pruned)
    assert all(on_path(pruned, u) and on_path(pruned, v) for u, v in pruned.edges)
    assert {n for n in circuit if on_path(circuit, n)} == set(pruned)


# --- circuits stay valid (issue 15, item 4) ---------------------------------------------


def _toy_config():
    return types.SimpleNamespace(n_layers=3, n_heads=2, model_name="toy")


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda c: c.add_edge("a2.0", "a0.0.q"), "not in the full graph"),  # a back edge
        (lambda c: c.add_edge("a0.0", "a0.0"), "not in the full graph"),  # a self-loop
        (lambda c: c.add_node("x"), "not nodes of the full graph"),
        (lambda c: c.add_nodes_from(["m0", ("a9.9", {})]), "not nodes of the full graph"),
        (lambda c: c.add_edges_from([("embed", "m1"), ("m1", "m0")]), "not in the full graph"),
        (lambda c: c.add_weighted_edges_from([("m2", "m1", 1.0)]), "not in the full graph"),
    ],
)
def test_mutators_refuse_what_is_not_in_the_full_graph_and_change_nothing(mutate, message):
    circuit = Circuit.from_edges(_toy_config(), [("embed", "m0"), ("m0", "logits")])
    before = (set(circuit.nodes), set(circuit.edges))
    with pytest.raises(ValueError, match=message):
        mutate(circuit)
    assert (set(circuit.nodes), set(circuit.edges)) == before
    circuit.validate()


def test_valid_mutations_get_the_standard_attributes():
    circuit = Circuit.from_edges(_toy_config(), [("embed", "m0")])
    circuit.add_edge("m0", "a1.1.q", note="mine")
    circuit.add_node("a2.0")
    assert circuit.nodes["a1.1.q"]["kind"] == "qkv" and circuit.nodes["a2.0"]["head"] == 0
    assert circuit.edges["m0", "a1.1.q"] == {"note": "mine", "qkv": "q"}
    assert Circuit.from_dict(circuit.to_dict()) == circuit


def test_a_circuit_without_config_refuses_edges():
    with pytest.raises(ValueError, match="no config"):
        Circuit().add_edge("embed", "m0")


def test_altered_attributes_cannot_be_saved_drawn_or_scored(toy):
    circuit = cg.full_circuit(toy.cfg)
    circuit.nodes["a0.0"]["kind"] = "mlp"
    scorer = cg.Scorer(toy, cg.make_task("digits", toy, n=4))
    for action in (circuit.to_dict, circuit.to_dot, lambda: scorer.score(circuit)):
        with pytest.raises(ValueError, match="altered standard attributes"):
            action()


# --- model identity is checked everywhere (issue 15, item 5) ---------------------------


def test_a_circuit_of_another_model_with_the_same_shape_is_refused(toy):
    twin = cg.load_model("random:gpt2-tiny,n_layers=3")
    assert (twin.cfg.n_layers, twin.cfg.n_heads) == (toy.cfg.n_layers, toy.cfg.n_heads)
    scorer = cg.Scorer(twin, cg.make_task("digits", twin, n=4))
    circuit = cg.full_circuit(toy.cfg)
    with pytest.raises(ValueError, match="circuit is for model 'toy-seq'"):
        scorer.score(circuit)
    with pytest.raises(ValueError, match="circuit is for model 'toy-seq'"):
        cg.prune_edges(scorer, 0.1, start=circuit, progress=False)
    with pytest.raises(ValueError, match="circuit is for model 'toy-seq'"):
        cg.attribute_edges(scorer, start=circuit)
