"""Bidirectional attention (compiled tracr models, encoders): the functional forward pass,
the fast edge engine and attribution honour ``cfg.attention_dir``.

The full circuit reproduces the model's own outputs at every position; a change at a later
position reaches earlier ones; fast edge pruning equals the reference on such models.
"""

from __future__ import annotations

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import circuitgraph as cg
from circuitgraph.scoring.components import ComponentModel
from circuitgraph.scoring.patching import sender_outputs

pytestmark = pytest.mark.filterwarnings("ignore::circuitgraph.UncertaintyWarning")

CONFIG = {
    "n_layers": 2, "d_model": 16, "d_head": 4, "n_heads": 2, "d_mlp": 32, "d_vocab": 7,
    "d_vocab_out": 5, "n_ctx": 6, "act_fn": "relu", "normalization_type": None,
}  # fmt: skip


def _native(direction: str, seed: int = 0):
    from transformer_lens.model_bridge.sources import native

    bridge = native.boot(CONFIG | {"attention_dir": direction, "seed": seed})
    return cg.load_model(bridge, name=f"native-{direction}-{seed}")


@pytest.fixture(scope="module")
def bidirectional():
    return _native("bidirectional")


def _tokens(seed: int, n: int = 6, p: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    clean, corrupted = (
        torch.randint(1, 7, (n, p), generator=g),
        torch.randint(1, 7, (n, p), generator=g),
    )
    clean[:, 0] = corrupted[:, 0] = 0  # a BOS-like first token
    return clean, corrupted


def test_full_circuit_equals_the_model_at_every_position(bidirectional):
    clean, corrupted = _tokens(0)
    task = cg.Task.from_tokens(bidirectional, clean, corrupted, positions="all")
    scorer = cg.Scorer(bidirectional, task, metric="kl", ablation="zero")
    with torch.no_grad():
        own = bidirectional(clean)[:, 1:].reshape(-1, CONFIG["d_vocab_out"])
    assert torch.allclose(scorer.clean_logits.float(), own, atol=1e-5)
    assert scorer.full_circuit_error < 1e-5


def test_a_causal_forward_pass_would_not_reproduce_it(bidirectional):
    """The check above can fail: the same weights under a causal mask give other outputs."""
    clean, _ = _tokens(0)
    both, forwards = ComponentModel(bidirectional), ComponentModel(bidirectional)
    forwards.causal = True
    assert not both.causal
    final = [sender_outputs(comp, clean)[1] for comp in (both, forwards)]
    assert not torch.allclose(final[0], final[1], atol=1e-3)


def test_a_later_change_reaches_earlier_positions(bidirectional):
    clean, _ = _tokens(1, n=1)
    changed = clean.clone()
    changed[0, -1] = (changed[0, -1] % 6) + 1
    with torch.no_grad():
        a, b = bidirectional(clean), bidirectional(changed)
    assert not torch.allclose(a[0, 1], b[0, 1], atol=1e-6)  # position 1 sees position 4


def test_padding_is_refused_with_bidirectional_attention(bidirectional):
    task = cg.Task.from_tokens(bidirectional, [[0, 1, 2, 3], [0, 1, 2]], [[0, 3, 3, 3], [0, 2, 2]])
    with pytest.raises(ValueError, match="both directions"):
        cg.Scorer(bidirectional, task, metric="kl")


@settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    seed=st.integers(0, 3),
    ablation=st.sampled_from(["zero", "resample", "mean"]),
    metric=st.sampled_from(["kl", "l2"]),
    tau=st.sampled_from([1e-4, 1e-3, 1e-2]),
    positions=st.sampled_from([None, "all"]),
)
def test_fast_edge_pruning_equals_the_reference(
    bidirectional, seed, ablation, metric, tau, positions
):
    clean, corrupted = _tokens(seed)
    task = cg.Task.from_tokens(bidirectional, clean, corrupted, positions=positions)
    scorer = cg.Scorer(bidirectional, task, metric=metric, ablation=ablation)
    reference = cg.prune_edges(scorer, tau, method="reference", progress=False)
    fast = cg.prune_edges(scorer, tau, window=3, progress=False)
    assert reference == fast
    effects = [row[2] for row in reference.metadata["tested"]]
    assert [row[2] for row in fast.metadata["tested"]] == pytest.approx(effects, abs=1e-6)


def test_attribution_reads_the_metric_s_positions(bidirectional):
    """EAP-IG scores on a bidirectional model with several read positions are finite and the
    exact single-edge effects they estimate rank the same top edge."""
    clean, corrupted = _tokens(2)
    task = cg.Task.from_tokens(bidirectional, clean, corrupted, positions="all")
    scorer = cg.Scorer(bidirectional, task, metric="l2", ablation="zero")
    scores = cg.attribute_edges(scorer, method="eap_ig", steps=8)
    assert all(torch.isfinite(torch.tensor(v)) for v in scores.values())
    full = cg.full_circuit(bidirectional.cfg)
    top = max(scores, key=lambda edge: scores[edge])
    exact = scorer.score(full - cg.Circuit.from_edges(bidirectional.cfg, [top]))
    assert exact > 0
