"""Every supported model family passes the parity tests on tiny random weights.

Qwen2, Qwen3 (query/key norms), Mistral, Phi-3 and GPT-NeoX/Pythia (parallel attention and
MLP, 25 % rotary), built by transformers from a config: the full circuit is the model, a node
circuit is TransformerLens hook-based mean ablation, node and edge circuits agree, edge
pruning's fast path is the reference, and attribution is exact where the metric is linear.
Gemma-2 (post-norms, soft caps, sliding windows) passes them with its own head semantics.
"""

from __future__ import annotations

import pytest
import torch
from test_scorer import _circuit_logits, _hook_ablated_logits

import circuitgraph as cg
from circuitgraph.prune.attribution import attribute_edges
from circuitgraph.prune.node_forward import NodeForward
from circuitgraph.scoring.layout import NodeMasks

FAMILIES = ("qwen2", "qwen3", "mistral", "phi3", "pythia", "gemma2")


@pytest.fixture(scope="module", params=FAMILIES)
def model(request):
    return cg.load_model(f"random:{request.param}-tiny")


def _scorer(model, **kwargs) -> cg.Scorer:
    return cg.Scorer(model, cg.make_task("digits", model, n=4, seed=0), **kwargs)


@pytest.mark.parametrize("qkv", [True, False])
def test_full_circuit_reproduces_the_model(model, qkv):
    scorer = _scorer(model)
    with torch.no_grad():
        expected = model(scorer.task.clean_tokens)[:, -1]
    full = cg.full_circuit(model.cfg, qkv=qkv)
    edges = cg.Circuit.from_edges(model.cfg, list(full.edges), qkv=qkv)
    for circuit in (full, edges):
        assert (_circuit_logits(scorer, circuit) - expected).abs().max() < 1e-4


def test_node_circuit_equals_hook_mean_ablation_and_its_edge_circuit(model):
    scorer = _scorer(model)
    circuit = cg.Circuit.from_nodes(model.cfg, ["a0.1", "a1.0", "a1.3", "m1"])
    edges = cg.Circuit.from_edges(model.cfg, list(circuit.edges))
    assert scorer.score(edges) == pytest.approx(scorer.score(circuit), abs=1e-5)
    if scorer.components.attn_post_norm[0] is not None:
        return  # Gemma-2: see test_gemma2_heads_carry_their_run_s_norm_scale
    expected = _hook_ablated_logits(model, scorer.task, {(0, 1), (1, 0), (1, 3)}, {1})
    assert (_circuit_logits(scorer, circuit) - expected).abs().max() < 1e-4


def test_gemma2_heads_carry_their_run_s_norm_scale():
    """Gemma-2 normalises the sum of a layer's heads after attention. A head's write is its
    output times that RMS scale (and the norm's gain) of the run it comes from: the full
    circuit is the model, the empty circuit (resample ablation) is the corrupted run, and a
    node circuit is its edge circuit. Hook-based ablation of hook_z differs: it renormalises
    the mixed sum, so there an ablated head also changes the live heads' writes."""
    gemma = cg.load_model("random:gemma2-tiny")
    scorer = _scorer(gemma, ablation="resample")
    with torch.no_grad():
        corrupted = gemma(scorer.task.corrupted_tokens)[:, -1]
    empty = cg.Circuit.from_edges(gemma.cfg, [])
    assert (_circuit_logits(scorer, empty) - corrupted).abs().max() < 1e-4
    every_head = cg.Circuit.from_nodes(gemma.cfg, [f"a{L}.{h}" for L in (0, 1) for h in range(4)])
    mlps_only = cg.Circuit.from_nodes(gemma.cfg, ["m0", "m1"])
    assert scorer.score(every_head) != pytest.approx(scorer.score(mlps_only), abs=1e-3)
    hooks = _hook_ablated_logits(gemma, scorer.task, {(0, 1), (1, 0), (1, 3)}, {1})
    circuit = cg.Circuit.from_nodes(gemma.cfg, ["a0.1", "a1.0", "a1.3", "m1"])
    assert (_circuit_logits(_scorer(gemma), circuit) - hooks).abs().max() > 1e-4  # they differ


@pytest.mark.parametrize("order", ["canonical", "acdc"])
def test_edge_pruning_fast_equals_reference(model, order):
    scorer = _scorer(model, metric="kl", ablation="resample")
    kwargs = {"order": order, "progress": False}
    reference = cg.prune_edges(scorer, 1e-4, method="reference", **kwargs)
    fast = cg.prune_edges(scorer, 1e-4, **kwargs)
    decisions = [[(u, v, r) for u, v, _, r in c.metadata["tested"]] for c in (reference, fast)]
    assert decisions[0] == decisions[1] and fast == reference


def test_attribution_is_exact_where_the_metric_is_linear(model):
    scorer = _scorer(model)
    scorer.components.ln_final = torch.nn.Identity()  # logit difference, linear in the logits
    scorer.components.final_softcap = None  # (Gemma-2 soft-caps them)
    full = cg.full_circuit(model.cfg)
    scores = attribute_edges(scorer, method="eap")
    base = scorer.score(full)
    for edge in [e for e in full.sender_receiver_edges() if e[1] == "logits"]:
        without = cg.Circuit.from_edges(model.cfg, set(full.edges) - {edge}, internal=False)
        assert scores[edge] == pytest.approx(base - scorer.score(without), abs=1e-4)


def test_parallel_blocks_have_no_edges_from_a_layer_s_heads_to_its_mlp():
    pythia = cg.load_model("random:pythia-tiny")
    full = cg.full_circuit(pythia.cfg)
    assert full.config.parallel
    assert not any(full.has_edge(f"a{L}.{h}", f"m{L}") for L in range(2) for h in range(4))
    assert full.has_edge("a0.1", "m1") and full.has_edge("embed", "m0")
    sequential = cg.full_circuit(cg.load_model("random:gpt2-tiny").cfg)
    assert sequential.number_of_edges() - full.number_of_edges() == 2 * 4
    assert cg.Circuit.from_dict(full.to_dict()) == full


@pytest.mark.parametrize("direction", ["noising", "denoising"])
def test_resumable_node_forward_handles_parallel_blocks(direction):
    """Node pruning resumes at a layer's MLP: with parallel blocks it must read the residual
    before that layer's attention."""
    pythia = cg.load_model("random:pythia-tiny")
    scorer = _scorer(pythia, ablation="resample", direction=direction)
    layout, generator = scorer.layout, torch.Generator().manual_seed(0)
    present = (torch.rand(1, layout.n_senders, generator=generator) < 0.7).float()
    present[:, 0] = 1
    forward = NodeForward(scorer, present.clone())
    starts = [1, 2, 3, 0, 3, 1]
    variants = present[None].repeat(len(starts), 1, 1)
    for v, stage in enumerate(starts):
        first = 1 + (stage // 2) * (layout.n_heads + 1) + (stage % 2) * layout.n_heads
        variants[v, :, first:] = (torch.rand(1, layout.n_senders - first) < 0.5).float()
    expected = scorer.score_masks(NodeMasks(variants))
    got = scorer.metric_from_final(forward.final(variants, starts))
    assert torch.allclose(got, expected, atol=1e-5, rtol=1e-5)
    batched = cg.prune_nodes(scorer, 0.8, batch_size=6, progress=False)
    assert batched == cg.prune_nodes(scorer, 0.8, batch_size=1, progress=False)


def test_an_unsupported_block_gets_one_clear_error():
    gemma = cg.load_model("random:gemma2-tiny")
    original = gemma.blocks[0].ln1_post._original_component
    gemma.blocks[0].ln1_post._original_component = torch.nn.LayerNorm(gemma.cfg.d_model)
    try:
        with pytest.raises(NotImplementedError, match="post-attention norm other than RMSNorm"):
            cg.Scorer(gemma, cg.make_task("digits", gemma, n=4))
    finally:
        gemma.blocks[0].ln1_post._original_component = original
