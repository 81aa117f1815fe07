"""One provenance schema (circuitgraph.circuit.provenance): every discovery method records the
same keys, run.json records them too, and circuit files of the older schema still load."""

from __future__ import annotations

import json

import pandas as pd
import pytest

import circuitgraph as cg
from circuitgraph.circuit.provenance import PROVENANCE_KEYS, read_provenance
from circuitgraph.results import write_run


@pytest.fixture(scope="module")
def found(toy):
    scorer = cg.Scorer(toy, cg.make_task("digits", toy, n=8))
    nodes = cg.prune_nodes(scorer, 0.8, progress=False)
    kl = scorer.with_metric("kl")
    edges = cg.prune_edges(kl, 0.05, start=nodes, method="reference", progress=False)
    scores = cg.attribute_edges(scorer, method="eap_ig", steps=2)
    attribution = cg.full_circuit(toy.cfg).top_k(scores, 20)
    return {"nodes": nodes, "edges": edges, "attribution": attribution}


def test_every_discovery_method_records_the_same_provenance_keys(found):
    for method, circuit in found.items():
        meta = circuit.metadata
        assert set(PROVENANCE_KEYS) <= set(meta), method
        assert meta["method"] == method and meta["task"] == "digits" and meta["n_prompts"] == 8
        assert (meta["ablation"], meta["normalise"], meta["direction"]) == (
            "mean",
            "full",
            "noising",
        )
        assert read_provenance(meta) == {key: meta[key] for key in PROVENANCE_KEYS}
    nodes, edges = found["nodes"].metadata, found["edges"].metadata
    attribution = found["attribution"].metadata
    assert nodes["metric"] == "logit_diff" and edges["metric"] == "kl"
    assert edges["parameters"]["engine"] == "reference" and "method" not in edges["parameters"]
    assert attribution["parameters"] == {"estimator": "eap_ig", "steps": 2, "qkv": True}
    assert attribution["selection"] == {"top_k": 20} and attribution["start"] is None
    # edge pruning names the circuit it started from, without that circuit's logs
    assert edges["start"]["method"] == "nodes" and "removed" not in edges["start"]
    assert "removed" not in edges  # the node circuit's logs stay on the node circuit


def test_provenance_survives_json_and_goes_into_run_json(found, tmp_path):
    for circuit in found.values():
        assert cg.Circuit.from_dict(circuit.to_dict()).metadata == circuit.metadata
    circuit = found["edges"]
    write_run(tmp_path, circuit, pd.DataFrame(), {"subcommand": "test"}, svg=False)
    record = json.loads((tmp_path / "run.json").read_text())
    assert record["provenance"] == read_provenance(circuit.metadata)
    assert record["provenance"]["method"] == "edges" and record["subcommand"] == "test"


def _old_file(tmp_path, circuit, metadata) -> str:
    data = circuit.to_dict() | {"metadata": metadata}
    path = tmp_path / "old.json"
    path.write_text(json.dumps(data))
    return str(path)


def test_circuit_files_of_the_old_schema_load(toy, tmp_path):
    nodes = cg.Circuit.from_nodes(toy.cfg, ["a0.0", "m1"])
    old_nodes = {
        "method": "prune_nodes",
        "model": "toy-seq",
        "task": "digits",
        "n_prompts": 8,
        "metric": "logit_diff",
        "ablation": "mean",
        "direction": "noising",
        "parameters": {"threshold": 0.8, "order": "backward", "start": False},
        "removed": [{"node": "a0.1", "step": 0, "sweep": 1, "score": 0.9}],
        "score": 0.85,
    }
    loaded = cg.Circuit.from_json(_old_file(tmp_path, nodes, old_nodes))
    meta = loaded.metadata
    assert meta["method"] == "nodes" and meta["start"] is None and meta["normalise"] is None
    assert meta["removed"] == old_nodes["removed"] and meta["score"] == 0.85
    assert set(PROVENANCE_KEYS) <= set(meta)

    edges = cg.Circuit.from_edges(toy.cfg, [("embed", "logits")])
    old_edges = {
        **old_nodes,  # the old prune_edges copied its start circuit's metadata
        "method": "edges",
        "parameters": {
            "tau": 0.01,
            "metric": "kl",
            "method": "fast",
            "order": "canonical",
            "window": 16,
            "ablation": "mean",
            "direction": "noising",
        },
        "tested": [["embed", "logits", 0.5, False]],
        "untested": [],
    }
    meta = cg.Circuit.from_json(_old_file(tmp_path, edges, old_edges)).metadata
    assert meta["method"] == "edges" and meta["metric"] == "kl"
    assert meta["parameters"] == {"tau": 0.01, "engine": "fast", "order": "canonical", "window": 16}
    assert meta["tested"] == old_edges["tested"]
    assert read_provenance(old_edges)["parameters"]["engine"] == "fast"


def test_metadata_that_is_not_a_discovery_is_left_alone():
    empty = cg.Circuit.from_nodes(cg.CircuitConfig("m", 1, 1), []).to_dict()
    for metadata in ({}, {"operation": "union"}, {"method": "prune_edges", "params": {}}):
        assert cg.Circuit.from_dict(empty | {"metadata": metadata}).metadata == metadata
