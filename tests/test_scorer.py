"""The Scorer is exact: checked against the model's own logits and TransformerLens hooks."""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import circuitgraph as cg
from circuitgraph.scoring import components
from circuitgraph.scoring.metrics import kl_divergence
from circuitgraph.tasks import Task

SETTINGS = settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _task(model, n: int = 6, **kwargs) -> Task:
    return cg.make_task("digits", model, n=n, seed=0, **kwargs)


def _hook_ablated_logits(model, task: Task, heads: set, mlps: set) -> torch.Tensor:
    """Oracle: mean-ablate every head (hook_z) and MLP (hook_mlp_out) not kept, via TL hooks."""
    names = [f"blocks.{L}.attn.hook_z" for L in range(model.cfg.n_layers)]
    names += [f"blocks.{L}.hook_mlp_out" for L in range(model.cfg.n_layers)]
    with torch.no_grad():
        _, cache = model.run_with_cache(task.corrupted_tokens, names_filter=lambda n: n in names)
    hooks = []
    for L in range(model.cfg.n_layers):
        mean_z = cache[f"blocks.{L}.attn.hook_z"].mean(0, keepdim=True)  # [1, p, H, d_head]
        drop = [h for h in range(model.cfg.n_heads) if (L, h) not in heads]

        def patch_z(z, hook, mean_z=mean_z, drop=drop):
            z = z.clone()
            z[:, :, drop] = mean_z[:, :, drop]
            return z

        hooks.append((f"blocks.{L}.attn.hook_z", patch_z))
        if L not in mlps:
            mean_mlp = cache[f"blocks.{L}.hook_mlp_out"].mean(0, keepdim=True)
            hooks.append((f"blocks.{L}.hook_mlp_out", lambda x, hook, m=mean_mlp: m.expand_as(x)))
    with torch.no_grad():
        return model.run_with_hooks(task.clean_tokens, fwd_hooks=hooks)[:, -1]


def _circuit_logits(scorer: cg.Scorer, circuit: cg.Circuit) -> torch.Tensor:
    final = scorer.final_residuals(scorer.masks(circuit))[0]
    return scorer.components.unembed(final)


@pytest.mark.parametrize("qkv", [True, False])
def test_full_circuit_reproduces_model_logits(tiny, qkv):
    task = _task(tiny)
    scorer = cg.Scorer(tiny, task)
    full = cg.full_circuit(tiny.cfg, qkv=qkv)
    with torch.no_grad():
        expected = tiny(task.clean_tokens)[:, -1]
    assert (_circuit_logits(scorer, full) - expected).abs().max() < 1e-4
    edge_level = cg.Circuit.from_edges(tiny.cfg, list(full.edges()), qkv=qkv)
    assert (_circuit_logits(scorer, edge_level) - expected).abs().max() < 1e-4
    # Random models have tiny logit differences, so compare the raw values, not the ratio.
    for circuit in (full, edge_level):
        raw = scorer.evaluate(circuit)["logit_diff"]
        assert raw == pytest.approx(scorer.clean_logit_diff, abs=1e-5)


def test_toy_full_circuit_scores_one(toy):
    scorer = cg.Scorer(toy, _task(toy, n=16))
    full = cg.full_circuit(toy.cfg)
    assert scorer.score(full) == pytest.approx(1.0, abs=1e-5)
    details = scorer.evaluate(full)
    assert details["kl"] == pytest.approx(0.0, abs=1e-5)
    assert scorer.clean_logit_diff > 0


def test_empty_circuit_equals_fully_ablated_model(tiny):
    task = _task(tiny)
    scorer = cg.Scorer(tiny, task)
    empty = cg.Circuit.from_nodes(tiny.cfg, [])
    expected = _hook_ablated_logits(tiny, task, heads=set(), mlps=set())
    assert (_circuit_logits(scorer, empty) - expected).abs().max() < 1e-4
    no_edges = cg.Circuit.from_edges(tiny.cfg, [])
    assert (_circuit_logits(scorer, no_edges) - expected).abs().max() < 1e-4


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_node_circuits_match_transformer_lens_hooks(tiny, data):
    cfg = tiny.cfg
    heads = data.draw(
        st.sets(st.tuples(st.integers(0, cfg.n_layers - 1), st.integers(0, cfg.n_heads - 1)))
    )
    mlps = data.draw(st.sets(st.integers(0, cfg.n_layers - 1)))
    task = _task(tiny)
    scorer = cg.Scorer(tiny, task)
    names = [f"a{L}.{h}" for L, h in heads] + [f"m{L}" for L in mlps]
    circuit = cg.Circuit.from_nodes(cfg, names)
    expected = _hook_ablated_logits(tiny, task, heads, mlps)
    assert (_circuit_logits(scorer, circuit) - expected).abs().max() < 1e-4


@settings(
    max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), qkv=st.booleans())
def test_node_level_equals_edge_level_with_all_its_edges(tiny, data, qkv):
    cfg = tiny.cfg
    every = [f"a{L}.{h}" for L in range(cfg.n_layers) for h in range(cfg.n_heads)]
    every += [f"m{L}" for L in range(cfg.n_layers)]
    names = data.draw(st.lists(st.sampled_from(every), unique=True))
    scorer = cg.Scorer(tiny, _task(tiny))
    node_level = cg.Circuit.from_nodes(cfg, names, qkv=qkv)
    edge_level = cg.Circuit.from_edges(cfg, list(node_level.edges()), qkv=qkv)
    assert edge_level.level == "edge"
    node_value = scorer.evaluate(node_level)["logit_diff"]
    assert scorer.evaluate(edge_level)["logit_diff"] == pytest.approx(node_value, abs=1e-5)


def test_positional_full_and_empty(tiny):
    task = _task(tiny)
    scorer = cg.Scorer(tiny, task)
    positions = range(task.seq_len)
    full = cg.full_circuit(tiny.cfg, positions=positions)
    assert scorer.evaluate(full)["logit_diff"] == pytest.approx(scorer.clean_logit_diff, abs=1e-5)
    empty = cg.Circuit.from_nodes(tiny.cfg, [], positions=positions)
    empty_anywhere = cg.Circuit.from_nodes(tiny.cfg, [])
    assert scorer.evaluate(empty)["logit_diff"] == pytest.approx(
        scorer.evaluate(empty_anywhere)["logit_diff"], abs=1e-5
    )


def test_heads_kept_only_at_last_position_differ_from_everywhere(toy):
    task = _task(toy, n=16)
    scorer = cg.Scorer(toy, task)
    last = task.seq_len - 1
    heads = [f"a{L}.{h}" for L in range(toy.cfg.n_layers) for h in range(toy.cfg.n_heads)]
    mlps = [f"m{L}" for L in range(toy.cfg.n_layers)]
    everywhere = cg.Circuit.from_nodes(toy.cfg, heads + mlps, positions=range(task.seq_len))
    at_last = cg.Circuit.from_nodes(
        toy.cfg, [f"{n}@{last}" for n in heads] + mlps, positions=range(task.seq_len)
    )
    assert scorer.score(everywhere) == pytest.approx(1.0, abs=1e-5)
    assert scorer.score(at_last) != pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("ablation", ["mean", "resample", "zero"])
def test_ablations_and_normalisations(toy, ablation):
    task = _task(toy, n=16)
    scorer = cg.Scorer(toy, task, ablation=ablation, normalise="clean_corrupt")
    assert scorer.score(cg.full_circuit(toy.cfg)) == pytest.approx(1.0, abs=1e-5)
    if ablation == "resample":  # ablating everything with the corrupted run = corrupted model
        empty = cg.Circuit.from_edges(toy.cfg, [])
        assert scorer.score(empty) == pytest.approx(0.0, abs=1e-5)


def test_denoising_full_is_clean_and_empty_is_corrupt(toy):
    scorer = cg.Scorer(
        toy, _task(toy, n=16), ablation="resample", direction="denoising", normalise="clean_corrupt"
    )
    assert scorer.score(cg.full_circuit(toy.cfg)) == pytest.approx(1.0, abs=1e-5)
    assert scorer.score(cg.Circuit.from_nodes(toy.cfg, [])) == pytest.approx(0.0, abs=1e-5)
    assert scorer.score(cg.Circuit.from_edges(toy.cfg, [])) == pytest.approx(0.0, abs=1e-5)


def test_kl_and_accuracy_metrics(toy):
    task = _task(toy, n=16)
    kl = cg.Scorer(toy, task, metric="kl")
    assert kl.score(cg.full_circuit(toy.cfg)) == pytest.approx(0.0, abs=1e-5)
    assert kl.score(cg.Circuit.from_nodes(toy.cfg, [])) > 0.01
    acc = cg.Scorer(toy, task, metric="accuracy")
    assert acc.score(cg.full_circuit(toy.cfg)) == pytest.approx(1.0)


def test_unembedding_in_slices_equals_one_matmul(tiny, monkeypatch):
    monkeypatch.setattr(components, "UNEMBED_CHUNK", 7)  # many slices, a ragged last one
    comp = components.ComponentModel(tiny)
    resid = torch.randn(5, comp.d_model, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        sliced = comp.unembed(resid)
    whole = comp.unembed(resid.clone().requires_grad_())  # autograd: one matmul
    assert sliced.shape == whole.shape
    assert (sliced - whole.detach()).abs().max() < 1e-5


def test_kl_divergence_matches_float64_definition_with_and_without_autograd():
    generator = torch.Generator().manual_seed(0)
    reference = (3 * torch.randn(4, 500, generator=generator)).log_softmax(dim=-1)  # [n, vocab]
    logits = reference[None] + 0.3 * torch.randn(3, 4, 500, generator=generator)  # [V, n, vocab]
    exact = reference.double().exp() * (reference.double() - logits.double().log_softmax(-1))
    exact = exact.sum(dim=-1).mean(dim=-1)
    with torch.no_grad():
        in_place = kl_divergence(reference, logits.clone())
    with_grad = kl_divergence(reference, logits.clone().requires_grad_())
    assert torch.allclose(in_place.double(), exact, atol=1e-6)
    assert torch.allclose(with_grad.detach().double(), exact, atol=1e-6)


def test_bad_inputs_are_clear_errors(toy, tiny):
    task = _task(toy)
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        cg.Scorer(toy, task, metric="bleu")
    with pytest.raises(ValueError, match="unknown ablation"):
        cg.Scorer(toy, task, ablation="gaussian")
    with pytest.raises(ValueError, match="denoising"):
        cg.Scorer(toy, task, direction="denoising")
    scorer = cg.Scorer(toy, task)
    with pytest.raises(ValueError, match="circuit is for model"):
        scorer.score(cg.full_circuit(tiny.cfg))
    with pytest.raises(ValueError, match="built for model"):
        cg.Scorer(tiny, task)


def test_heads_sharing_a_key_value_slot_equal_heads_with_their_own_copy():
    """ComponentModel.attention(kv_slots=...) computes a shared key/value input once; the
    result equals passing each head its own copy of it (grouped-query attention)."""
    from circuitgraph.scoring.components import ComponentModel

    model = cg.load_model("random:llama-tiny,init=200")  # 4 heads, 2 key/value groups
    comp = ComponentModel(model)
    generator = torch.Generator().manual_seed(0)
    batch, pos, d = 3, 5, comp.d_model
    heads = [0, 1, 3]
    q_in = torch.randn(batch, pos, len(heads), d, generator=generator)
    shared = torch.randn(batch, pos, 2, d, generator=generator)  # group 0, group 1
    kv_slots = [0, 0, 1]
    with torch.no_grad():
        together = comp.attention(0, q_in, shared, shared * 0.5, heads=heads, kv_slots=kv_slots)
        copies = shared[:, :, kv_slots]
        apart = comp.attention(0, q_in, copies, copies * 0.5, heads=heads)
    torch.testing.assert_close(together, apart, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="kv_slots"):
        comp.attention(0, q_in, shared, shared, heads=heads, kv_slots=[0, 0])


@pytest.mark.parametrize("name", ["random:llama-tiny,init=200", "random:qwen3-tiny,init=200"])
@pytest.mark.parametrize("kv_slots", [None, [0, 0, 1]])
@pytest.mark.parametrize("prefix", [1, 4])
def test_keys_and_values_of_leading_positions_can_be_passed_in(name, kv_slots, prefix):
    """attention(kv_prefix=key_values(...)) over the leading positions equals computing the
    keys and values of every position (rotary, key norm, grouped-query slots)."""
    from circuitgraph.scoring.components import ComponentModel

    comp = ComponentModel(cg.load_model(name))
    generator = torch.Generator().manual_seed(1)
    batch, pos, d = 3, 6, comp.d_model
    heads = [0, 1, 3]
    slots = 2 if kv_slots else len(heads)
    q_in = torch.randn(batch, 2, len(heads), d, generator=generator)  # the last 2 queries
    k_in = torch.randn(batch, pos, slots, d, generator=generator)
    v_in = torch.randn(batch, pos, slots, d, generator=generator)
    with torch.no_grad():
        whole = comp.attention(0, q_in, k_in, v_in, heads=heads, kv_slots=kv_slots)
        before = comp.key_values(0, k_in[:, :prefix], v_in[:, :prefix], heads, kv_slots)
        split = comp.attention(
            0, q_in, k_in[:, prefix:], v_in[:, prefix:], heads, kv_slots, kv_prefix=before
        )
    torch.testing.assert_close(split, whole, rtol=1e-5, atol=1e-6)
