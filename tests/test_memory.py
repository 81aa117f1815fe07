"""Memory is estimated before anything is allocated, and a budget is met by chunking.

The full runs and the masked passes run over chunks of prompts and of variants (circuits)
when ``max_memory`` asks for it; the final residuals are concatenated, so every score, cache
and pruned circuit equals the unchunked one (to float rounding). A budget that even one
prompt at a time cannot meet is refused up front with one error.
"""

from __future__ import annotations

import dataclasses
import json
import random

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import circuitgraph as cg
from circuitgraph.cli import main
from circuitgraph.scoring.layout import NodeMasks
from circuitgraph.scoring.memory import GIB, Chunks, PassCost, check_memory, estimate_memory

# Prompts of different lengths (right-padded): each prompt's last position differs.
CLEAN = [
    "Here is a list : 3 , 4 , 5 , 6 ,",
    "Here is a list : 1 , 2 , 3 ,",
    "Here is a list : 5 , 6 , 7 ,",
    "Here is a list : 2 , 3 , 4 , 5 , 6 ,",
    "Here is a list : 4 , 5 , 6 ,",
]
CORRUPTED = [
    "Here is a list : 8 , 1 , 9 , 2 ,",
    "Here is a list : 7 , 5 , 9 ,",
    "Here is a list : 1 , 8 , 2 ,",
    "Here is a list : 9 , 1 , 7 , 3 , 8 ,",
    "Here is a list : 2 , 9 , 1 ,",
]
ANSWERS, WRONG = ["7", "4", "8", "7", "7"], ["6", "3", "7", "6", "6"]


def test_estimate_grows_with_prompts_and_counts_the_weights(toy):
    small = estimate_memory(toy, cg.make_task("digits", toy, n=4))
    large = estimate_memory(toy, cg.make_task("months", toy, n=32))
    parameters = sum(p.numel() * p.element_size() for p in toy.parameters())
    stacked = 3 * 4 * 4 * 128 * 32 * 4  # W_Q, W_K, W_V, W_O of 3 layers, stacked once more
    assert small.weights == large.weights == parameters + stacked
    assert large.caches > small.caches > 0
    assert small.total("edges") > small.total("nodes") > small.total("score") > small.weights
    assert small.budget is None and small.chunks(16) == Chunks(16, 4)  # no budget: one chunk


def test_scorer_refuses_a_budget_it_would_exceed(toy):
    task = cg.make_task("digits", toy, n=4)
    with pytest.raises(ValueError, match="exceeds max_memory 0.00 GiB: use fewer prompts"):
        cg.Scorer(toy, task, max_memory=1e-4)
    scorer = cg.Scorer(toy, task, max_memory=scorer_budget(toy, task, "nodes"))
    cg.prune_nodes(scorer, 0.8, progress=False)  # fits
    with pytest.raises(ValueError, match="estimated for edges"):
        cg.prune_edges(scorer.with_metric("kl"), 0.1, progress=False)


def scorer_budget(model, task, method: str) -> float:
    """A budget (GiB) that fits ``method`` but not edge pruning."""
    estimate = estimate_memory(model, task)
    assert estimate.total(method) < estimate.total("edges")
    return (estimate.total(method) + estimate.total("edges")) / 2 / GIB


def test_bad_budgets_are_clear_errors(toy):
    estimate = estimate_memory(toy, cg.make_task("digits", toy, n=2))
    for bad in (0, -1, True, "8"):
        with pytest.raises(ValueError, match="max_memory must be a positive number"):
            check_memory(estimate, bad)


def test_cli_records_the_estimate_and_honours_the_budget(tmp_path, capsys):
    argv = ["discover", "--model", "toy-seq", "--task", "digits", "--n", "6", "-q"]
    assert main([*argv, "--out", str(tmp_path), "--max-memory", "0.0001"]) == 2
    assert "exceeds max_memory" in capsys.readouterr().err and not (tmp_path / "toy-seq").exists()
    assert main([*argv, "--out", str(tmp_path), "--no-svg"]) == 0
    run = json.loads((tmp_path / "toy-seq" / "digits" / "nodes-0.8" / "run.json").read_text())
    assert set(run["memory_estimate_gib"]) == {"score", "nodes", "edges"}


# --- chunking ---------------------------------------------------------------------------


def tightest(model, task) -> float:
    """The smallest budget (bytes) a Scorer accepts: one prompt at a time for edge circuits."""
    return float(estimate_memory(model, task).minimum("score"))


@pytest.fixture(scope="module")
def ragged(toy) -> cg.Task:
    return cg.Task.from_prompts(toy, CLEAN, CORRUPTED, ANSWERS, wrong=WRONG, name="ragged")


def _circuits(cfg) -> dict[str, cg.Circuit]:
    nodes = cg.Circuit.from_nodes(cfg, ["a0.1", "a1.3", "a1.0", "m1"])
    return {
        "full": cg.full_circuit(cfg),
        "nodes": nodes,
        "edges": cg.Circuit.from_edges(cfg, nodes.sender_receiver_edges()[::2]),
        "empty nodes": cg.Circuit.from_nodes(cfg, []),
        "empty edges": cg.Circuit.from_edges(cfg, []),
    }


@pytest.mark.parametrize(
    "name", ["toy-seq", "random:gemma2-tiny", "random:pythia-tiny", "random:llama-tiny"]
)
@pytest.mark.parametrize(
    "direction, ablation", [("noising", "mean"), ("noising", "resample"), ("denoising", "resample")]
)
def test_chunked_scores_equal_unchunked(name, direction, ablation):
    """Node, edge, full and empty circuits, every metric; Gemma-2 (frozen post-attention
    norm scales per prompt) and Pythia (parallel blocks) included."""
    model = cg.load_model(name)
    task = cg.make_task("digits", model, n=6, seed=0)
    options = {"direction": direction, "ablation": ablation}
    whole = cg.Scorer(model, task, **options)
    chunked = cg.Scorer(model, task, max_memory=tightest(model, task), **options)
    assert chunked.chunks(1, "edges") == Chunks(1, 1) and chunked.chunks(8).variants < 8
    assert torch.allclose(chunked.clean_outputs, whole.clean_outputs, atol=1e-6)
    assert torch.allclose(chunked.fixed, whole.fixed, atol=1e-6)
    if whole.frozen_scales is not None:  # Gemma-2: the scales are concatenated per chunk
        for layer, scale in whole.frozen_scales.items():
            assert torch.allclose(chunked.frozen_scales[layer], scale, atol=1e-6)
    for metric in ("logit_diff", "kl", "accuracy"):
        a, b = whole.with_metric(metric), chunked.with_metric(metric)
        # Logit differences agree to 1e-6; normalised by a random model's small clean logit
        # difference (0.01 for Gemma-2, whose heads' post-norm runs in float32) that grows.
        scale = abs(whole.clean_logit_diff) if metric == "logit_diff" else 1.0
        for label, circuit in _circuits(model.cfg).items():
            got, expected = b.score(circuit), a.score(circuit)
            assert got == pytest.approx(expected, abs=1e-6 / min(scale, 1.0)), (metric, label)
    full, empty = (_circuits(model.cfg)[k] for k in ("full", "empty edges"))
    a, b = whole.evaluate(empty), chunked.evaluate(empty)
    for key in ("logit_diff", "kl", "accuracy"):
        assert b[key] == pytest.approx(a[key], abs=1e-6), key
    assert chunked.score(full) == pytest.approx(1.0, abs=1e-4)


def test_chunked_scores_equal_unchunked_on_a_ragged_task(toy, ragged):
    """Prompts of different lengths: each chunk reads its own prompts' last positions."""
    assert ragged.ragged
    for ablation in ("mean", "resample"):
        whole = cg.Scorer(toy, ragged, ablation=ablation)
        chunked = cg.Scorer(toy, ragged, ablation=ablation, max_memory=tightest(toy, ragged))
        assert chunked.chunks(1, "edges") == Chunks(1, 1) and chunked.chunks(4).variants == 1
        for label, circuit in _circuits(toy.cfg).items():
            expected = whole.final_residuals(whole.masks(circuit))
            got = chunked.final_residuals(chunked.masks(circuit))
            assert torch.allclose(got, expected, atol=1e-5), label
            assert chunked.score(circuit) == pytest.approx(whole.score(circuit), abs=1e-6)


def test_a_batch_of_circuits_is_split_over_variants_and_prompts(toy):
    task = cg.make_task("digits", toy, n=6, seed=0)
    whole = cg.Scorer(toy, task)
    present = torch.ones(7, 1, whole.layout.n_senders)
    generator = torch.Generator().manual_seed(0)
    present[:, :, 1:] = torch.rand(7, 1, whole.layout.n_senders - 1, generator=generator) > 0.4
    expected = whole.score_masks(NodeMasks(present))
    estimate = whole.memory
    for chunks in (Chunks(3, 6), Chunks(1, 4), Chunks(1, 1)):  # a budget for exactly these
        budget = estimate.node_cost.bytes(chunks, 6)
        scorer = _with_budget(whole, budget)
        assert scorer.chunks(7) == chunks
        assert torch.allclose(scorer.score_masks(NodeMasks(present)), expected, atol=1e-6)


def _with_budget(scorer: cg.Scorer, budget: float) -> cg.Scorer:
    """``scorer`` (sharing its caches) whose masked passes use the chunks of ``budget`` bytes
    of working memory."""
    other = scorer.with_metric(scorer.metric.value)
    other.memory = dataclasses.replace(scorer.memory, budget=budget)
    return other


@pytest.fixture(scope="module")
def toy_scorer(toy) -> cg.Scorer:
    return cg.Scorer(toy, cg.make_task("digits", toy, n=5, seed=1))


NODES = ["a0.0", "a0.2", "a1.1", "a1.3", "a2.0", "a2.2", "m0", "m2"]


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    fraction=st.floats(0.0, 1.0),
    nodes=st.lists(st.sampled_from(NODES), unique=True),
    edge_seed=st.none() | st.integers(0, 2**16),
)
def test_the_chunk_size_never_changes_a_score(toy_scorer, fraction, nodes, edge_seed):
    """Any budget from one prompt at a time to every prompt at once; node circuits, and edge
    circuits made of a random share of a node circuit's edges."""
    cfg, estimate = toy_scorer.model.cfg, toy_scorer.memory
    circuit = cg.Circuit.from_nodes(cfg, nodes)
    level = "nodes" if edge_seed is None else "edges"
    if edge_seed is not None:
        edges = circuit.sender_receiver_edges()
        kept = random.Random(edge_seed).sample(edges, len(edges) // 2)
        circuit = cg.Circuit.from_edges(cfg, kept)
    cost = estimate.node_cost if level == "nodes" else estimate.edge_cost
    smallest, largest = cost.bytes(Chunks(1, 1), 5), cost.bytes(Chunks(1, 5), 5)
    scorer = _with_budget(toy_scorer, smallest + fraction * (largest - smallest))
    assert 1 <= scorer.chunks(1, level).prompts <= 5
    assert scorer.score(circuit) == pytest.approx(toy_scorer.score(circuit), abs=1e-6)


@pytest.mark.parametrize("name", ["toy-seq", "random:gemma2-tiny"])
@pytest.mark.parametrize("positions", [False, True])
def test_node_pruning_in_chunks_keeps_the_same_circuit(name, positions):
    model = cg.load_model(name)
    task = cg.make_task("digits", model, n=6, seed=0)
    threshold = 0.8 if name == "toy-seq" else 0.999  # random weights: keep something
    whole = cg.Scorer(model, task)
    chunked = cg.Scorer(model, task, max_memory=tightest(model, task))
    assert chunked.chunks(8).prompts < 6  # one circuit at a time, over a few prompts
    options = {"threshold": threshold, "positions": positions, "progress": False}
    expected = cg.prune_nodes(whole, **options)
    got = cg.prune_nodes(chunked, **options)
    assert got == expected and got.metadata["removed"] and got.metadata["kept"]
    assert got.metadata["score"] == pytest.approx(expected.metadata["score"], abs=1e-6)
    removed = [(r["node"], r["step"]) for r in got.metadata["removed"]]
    assert removed == [(r["node"], r["step"]) for r in expected.metadata["removed"]]
    scores = [r["score"] for r in got.metadata["removed"]]
    assert scores == pytest.approx([r["score"] for r in expected.metadata["removed"]], abs=1e-6)
    if positions:
        return
    if name == "toy-seq":  # denoising: the complemented masks, chunk by chunk
        kwargs = {"direction": "denoising", "ablation": "resample"}
        budget = tightest(model, task)
        denoised = cg.prune_nodes(cg.Scorer(model, task, max_memory=budget, **kwargs), **options)
        assert denoised == cg.prune_nodes(cg.Scorer(model, task, **kwargs), **options)
    # Chunks over variants only (every prompt at once, 3 tries per batch).
    budget = whole.memory.node_cost.bytes(Chunks(3, 6), 6)
    assert cg.prune_nodes(_with_budget(whole, budget), batch_size=8, **options) == expected


def test_frozen_scales_are_every_prompt_s_again_after_a_chunk_fails():
    gemma = cg.load_model("random:gemma2-tiny")
    task = cg.make_task("digits", gemma, n=6, seed=0)
    scorer = cg.Scorer(gemma, task, max_memory=tightest(gemma, task))
    wrong = NodeMasks(torch.ones(1, 2, scorer.layout.n_senders))  # 2 positions, not 1 or p
    with pytest.raises(ValueError, match="mask has 2 positions"):
        scorer.score_masks(wrong)
    assert scorer.components.frozen_scales is scorer.frozen_scales
    assert all(s.shape[0] == 6 for s in scorer.components.frozen_scales.values())


def test_a_budget_chunking_meets_now_runs_and_one_it_cannot_is_refused(toy):
    task = cg.make_task("digits", toy, n=6, seed=0)
    estimate = estimate_memory(toy, task)
    minimum = estimate.minimum("score")
    assert minimum < estimate.total("nodes")  # used to be refused: the unchunked total is larger
    scorer = cg.Scorer(toy, task, max_memory=float(minimum))
    assert scorer.memory.total("nodes") <= minimum < estimate.total("nodes")
    assert "in chunks of 1 variant x" in scorer.memory.describe("nodes")
    circuit = cg.prune_nodes(scorer, 0.8, progress=False)
    assert circuit.metadata["score"] >= 0.8
    with pytest.raises(
        ValueError, match="even one prompt at a time .* exceeds max_memory"
    ) as error:
        cg.Scorer(toy, task, max_memory=minimum - 1)
    assert "use fewer prompts" in str(error.value)


def test_the_chunk_plan(toy):
    cost = PassCost(row=10, prompt=5, metric=1)
    assert cost.plan(4, 6, None) == Chunks(4, 6)
    assert cost.plan(4, 6, 6 * (5 + 4 * 10)) == Chunks(4, 6)  # everything fits
    assert cost.plan(4, 6, 6 * (5 + 2 * 10)) == Chunks(2, 6)  # variants first
    assert cost.plan(4, 6, 3 * (5 + 10)) == Chunks(1, 3)  # then prompts
    assert cost.plan(4, 6, 14) is None  # not even one prompt
    assert PassCost(row=1, prompt=0, metric=10).plan(1, 6, 50) is None  # the metric: every prompt


def test_chunked_runs_make_tensors_on_the_model_device():
    """As tests/test_device.py: tensors made without the model's device land on meta."""
    model = cg.load_model("random:llama-tiny")
    task = cg.make_task("digits", model, n=4, seed=0)
    budget = tightest(model, task)
    with torch.device("meta"):
        scorer = cg.Scorer(model, task, max_memory=budget)
        score = scorer.score(cg.Circuit.from_nodes(model.cfg, ["a0.1", "m1"]))
        circuit = cg.prune_nodes(scorer, 0.5, progress=False)
    assert score == score and circuit.metadata["score"] == circuit.metadata["score"]


def test_a_budget_in_bytes_and_in_gib_gives_the_same_chunks(toy):
    task = cg.make_task("digits", toy, n=6, seed=0)
    in_bytes = cg.Scorer(toy, task, max_memory=tightest(toy, task))
    in_gib = cg.Scorer(toy, task, max_memory=tightest(toy, task) / GIB)
    assert in_bytes.chunks(8) == in_gib.chunks(8)
