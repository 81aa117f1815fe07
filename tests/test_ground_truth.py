"""The ground-truth suite: tracr-compiled models whose circuits are known from the compiler.

Checks, for every shipped program: the TransformerLens bridge built from the stored weights
computes tracr's own outputs on every stored input; the truth is a valid DAG circuit of the
model; the truth derivation holds (the stored truth equals what the weights' sparsity says,
recomputed here without tracr, and ablating everything outside it changes no output, under
zero and resample ablation); for ACDC's two tasks, how the truth relates to ACDC's
hand-written one. Runs without tracr.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

import circuitgraph as cg
from circuitgraph.circuit.structure import full_structure
from circuitgraph.ground_truth import suite
from circuitgraph.ground_truth.suite import (
    acdc_circuit,
    inert_truth_edges,
    list_ground_truth,
    load_arrays,
    load_ground_truth,
    load_record,
    load_tracr_bridge,
    truth_circuit,
)

NAMES = list_ground_truth()
ATOL = 1e-5


@pytest.fixture(scope="module")
def loaded():
    cache: dict[str, tuple] = {}

    def get(name):
        if name not in cache:
            cache[name] = load_ground_truth(name)
        return cache[name]

    return get


def test_the_suite_ships_acdcs_tasks_and_at_least_ten_more():
    assert {"reverse", "proportion"} <= set(NAMES)
    assert len(NAMES) >= 12
    for name in NAMES:
        record = load_record(name)
        assert record["name"] == name and record["format_version"] == 1
        assert record["metric"] == ("kl" if record["output"]["kind"] == "categorical" else "l2")
        assert record["config"]["normalization_type"] is None
        assert record["config"]["attention_dir"] == (
            "causal" if record["compiler"]["causal"] else "bidirectional"
        )
    size = sum(p.stat().st_size for p in suite.DATA_DIR.iterdir())
    assert size < 3e6, f"the shipped tracr data take {size} bytes"


def test_unknown_names_are_refused_with_the_known_ones():
    with pytest.raises(ValueError, match="known: .*reverse"):
        load_record("no-such-program")


@pytest.mark.parametrize("name", NAMES)
def test_the_bridge_computes_tracrs_outputs_on_every_stored_input(name):
    model = load_tracr_bridge(name)
    record, arrays = load_record(name), load_arrays(name)
    assert model.cfg.model_name == f"tracr:{name}"
    for which in ("clean", "corrupted"):
        ids = torch.tensor(record["data"][which])
        with torch.no_grad():
            logits = model(ids)
        expected = torch.from_numpy(arrays[f"tracr_logits_{which}"])
        assert logits.shape == expected.shape == (*ids.shape, record["config"]["d_vocab_out"])
        torch.testing.assert_close(logits, expected, atol=ATOL, rtol=0)
        tracr_out = torch.from_numpy(arrays[f"tracr_unembedded_{which}"])[:, 1:]
        if record["output"]["kind"] == "numerical":
            torch.testing.assert_close(logits[:, 1:, 0], tracr_out.float(), atol=ATOL, rtol=0)
            continue
        # tracr's argmax, wherever it is decided (positions whose output is undefined, like
        # shift_by's first ones, give all-zero logits: a tie either side may break)
        top2 = expected[:, 1:].topk(min(2, expected.shape[-1]), dim=-1).values
        decided = (top2[..., 0] - top2[..., -1]) > 1e-3
        assert decided.float().mean() >= 0.5
        picked = logits[:, 1:].argmax(dim=-1)
        assert torch.equal(picked[decided], tracr_out.long()[decided])


@pytest.mark.parametrize("name", NAMES)
def test_the_truth_is_a_valid_dag_circuit_of_the_model(name, loaded):
    model, task, truth = loaded(name)
    record = load_record(name)
    assert truth == truth_circuit(name, model.cfg)
    assert truth.config.qkv and truth.config.model_name == model.cfg.model_name == f"tracr:{name}"
    assert truth.config.n_layers == record["config"]["n_layers"]
    assert nx.is_directed_acyclic_graph(truth)
    assert truth.prune_dangling() == truth  # every node on an embed -> logits path
    full = full_structure(truth.config)
    assert all(full.has_edge(u, v) for u, v in truth.edges)
    for node in truth.nodes:  # a q/k/v input is in the truth iff it feeds its head
        if truth.nodes[node]["kind"] == "qkv":
            assert truth.in_degree(node) > 0 and list(truth.successors(node)) == [
                node.rsplit(".", 1)[0]
            ]
    assert set(map(tuple, record["truth"]["edges"])) == set(truth.edges)
    # the task: every position after BOS of every stored input
    n, seq = np.asarray(record["data"]["clean"]).shape
    assert len(task) == n * (seq - 1) and task.seq_len == seq


def _weight_truth(arrays: dict[str, np.ndarray]) -> set[tuple[str, str]]:
    """The truth from the weights' sparsity alone, written independently of generate.py."""

    def rows(m):
        return set(np.flatnonzero(np.abs(m).sum(axis=1)).tolist())

    writes = {"embed": rows(arrays["W_E"].T) | rows(arrays["W_pos"].T)}
    reads, order = {}, {"embed": (-1, 0)}
    n_layers, n_heads = arrays["W_Q"].shape[:2]
    for layer in range(n_layers):
        for h in range(n_heads):
            q, k = arrays["W_Q"][layer, h], arrays["W_K"][layer, h]
            ov = arrays["W_V"][layer, h] @ arrays["W_O"][layer, h]
            head = f"a{layer}.{h}"
            if np.any(q @ k.T) or np.any(ov):
                writes[head], order[head] = rows(ov.T), (layer, 1)
                for x, m in (("q", q @ k.T), ("k", k @ q.T), ("v", ov)):
                    reads[f"{head}.{x}"] = (rows(m), (layer, 0))
        if np.any(arrays["W_in"][layer]):
            writes[f"m{layer}"], order[f"m{layer}"] = rows(arrays["W_out"][layer].T), (layer, 2)
            reads[f"m{layer}"] = (rows(arrays["W_in"][layer]), (layer, 2))
    reads["logits"] = (rows(arrays["W_U"]), (n_layers, 0))
    edges = set()
    for receiver, (read, at) in reads.items():
        senders = [s for s, w in writes.items() if w & read and order[s] < at]
        edges |= {(s, receiver) for s in senders}
        if senders and receiver.count(".") == 2:
            edges.add((receiver, receiver.rsplit(".", 1)[0]))
    return edges


@pytest.mark.parametrize("name", NAMES)
def test_the_truth_is_what_the_weights_sparsity_says(name):
    record = load_record(name)
    assert record["truth"]["method"] == "compiler-craft-model"
    assert record["truth"]["cross_check"]["weights_equal"]
    assert set(map(tuple, record["truth"]["edges"])) == _weight_truth(load_arrays(name))


@pytest.mark.parametrize("name", NAMES)
def test_ablating_everything_outside_the_truth_changes_no_output(name, loaded):
    model, task, truth = loaded(name)
    metric = load_record(name)["metric"]
    full = cg.full_circuit(model.cfg, qkv=True)
    logit_edges = [(u, v) for u, v in truth.edges if v == "logits"]
    for ablation in ("zero", "resample"):
        scorer = cg.Scorer(model, task, metric=metric, ablation=ablation)
        assert scorer.score(full) == pytest.approx(0.0, abs=ATOL)
        assert scorer.score(truth) == pytest.approx(scorer.score(full), abs=ATOL)
        if ablation == "zero":  # and the metric does see ablations: cut the truth's output
            cut = truth.copy()
            cut.remove_edges_from(logit_edges)
            assert scorer.score(cut) > 1e-3


def test_reverse_is_acdcs_truth_plus_three_edges_inert_under_zero_ablation():
    record = load_record("reverse")
    ours, acdc = set(map(tuple, record["truth"]["edges"])), set(map(tuple, record["acdc"]["edges"]))
    assert acdc <= ours
    # the uniform selector of length (its query and key) and the BOS fallback of the flip's
    # query: tracr wires them, ACDC's run (zero ablation) found them unneeded, and so do we
    extra = {("embed", "a0.0.q"), ("embed", "a0.0.k"), ("embed", "a3.0.q")}
    assert ours - acdc == extra
    inert = {edge for edge, _ in inert_truth_edges("reverse", "zero")}
    assert extra <= inert
    assert inert - extra == {("a0.0.q", "a0.0"), ("a0.0.k", "a0.0")}  # their internal edges
    assert acdc_circuit("reverse") is not None and acdc_circuit("hist") is None


def test_proportion_is_acdcs_truth():
    record = load_record("proportion")
    assert set(map(tuple, record["truth"]["edges"])) == set(map(tuple, record["acdc"]["edges"]))
    # tracr declares BOS in the value space of the aggregate but never reads it
    assert record["truth"]["cross_check"]["declared_extra"] == [["embed", "a1.0.v"]]
    assert inert_truth_edges("proportion", "zero") == []


def test_discover_takes_a_suite_model_by_name(tmp_path):
    """`circuitgraph discover --model tracr:reverse` runs on the program's own task and metric
    and keeps exactly the 10 sender-to-receiver edges of ACDC's truth (zero ablation)."""
    from circuitgraph.cli import main

    out = tmp_path / "results"
    argv = ["discover", "--model", "tracr:reverse", "--method", "edges", "--tau", "0.01",
            "--ablation", "zero", "--out", str(out), "--quiet", "--no-svg"]  # fmt: skip
    assert main(argv) == 0
    found = cg.Circuit.from_json(out / "tracr-reverse" / "reverse" / "edges-0.01" / "circuit.json")
    acdc = suite.acdc_circuit("reverse", found.config)
    assert acdc is not None
    assert set(found.sender_receiver_edges()) == set(acdc.sender_receiver_edges())
    assert found.metadata["metric"] == "kl"
    refused = ["discover", "--model", "tracr:reverse", "--task", "digits", "--out", str(out)]
    assert main(refused) == 2


@pytest.mark.parametrize("name", ["reverse", "proportion", "hist", "sort_unique", "prev_token"])
@pytest.mark.parametrize("ablation", ["zero", "resample"])
def test_edge_pruning_finds_exactly_the_truth_edges_that_matter(name, ablation):
    """Discovery recovers the known circuit: at a small tau, exact edge pruning keeps every
    truth edge whose removal changes the outputs and no edge outside the truth; it misses only
    the inert ones (removing them alone changes nothing on these inputs)."""
    model, task, truth = load_ground_truth(name)
    scorer = cg.Scorer(model, task, metric=suite.load_record(name)["metric"], ablation=ablation)
    found = cg.prune_edges(scorer, 1e-6, order="acdc", progress=False)
    inert = {edge for edge, _ in suite.inert_truth_edges(name, ablation)}
    wanted = set(truth.sender_receiver_edges()) - inert
    assert set(found.sender_receiver_edges()) == wanted
    curve = cg.roc_auc([found], truth)
    assert curve.auc == pytest.approx(len(wanted) / len(truth.sender_receiver_edges()))


def test_the_example_compares_a_discovered_circuit_with_the_truth(tmp_path, monkeypatch, capsys):
    """examples/ground_truth.py runs as written: it draws found vs truth and prints the AUC."""
    import runpy
    from pathlib import Path

    example = Path(__file__).resolve().parent.parent / "examples" / "ground_truth.py"
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(example), run_name="__main__")
    printed = capsys.readouterr().out
    assert "missed [('embed', 'a0.0.q'), ('embed', 'a0.0.k'), ('embed', 'a3.0.q')]" in printed
    assert "extra []" in printed and "edge ROC AUC" in printed
    for name in ("reverse.svg", "reverse.html"):
        assert (tmp_path / "results" / "ground_truth" / name).stat().st_size > 0
