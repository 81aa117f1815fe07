"""Edge pruning: the fast path takes exactly the reference's decisions (ACDC semantics)."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import circuitgraph as cg
from circuitgraph.prune.edges import prune_edges

SETTINGS = settings(
    max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


def _scorer(model, metric: str, n: int = 4, **kwargs) -> cg.Scorer:
    return cg.Scorer(model, cg.make_task("digits", model, n=n, seed=1), metric=metric, **kwargs)


def _decisions(circuit: cg.Circuit) -> list[tuple[str, str, bool]]:
    return [(u, v, removed) for u, v, _, removed in circuit.metadata["tested"]]


def _random_start(data, model, qkv: bool, positions, max_edges: int = 60) -> cg.Circuit:
    full = cg.full_circuit(model.cfg, qkv=qkv, positions=positions)
    edges = full.sender_receiver_edges()
    picked = data.draw(
        st.lists(st.sampled_from(edges), min_size=1, max_size=max_edges, unique=True)
    )
    return cg.Circuit.from_edges(full.config, picked)


@SETTINGS
@given(
    data=st.data(),
    qkv=st.booleans(),
    metric=st.sampled_from(["kl", "logit_diff"]),
    tau_exponent=st.floats(-5, 0),
)
def test_fast_equals_reference(tiny, data, qkv, metric, tau_exponent):
    scorer = _scorer(tiny, metric)
    tau = 10**tau_exponent
    start = _random_start(data, tiny, qkv, None, max_edges=80)
    window = data.draw(st.integers(1, 5))
    reference = prune_edges(scorer, tau, start=start, method="reference", progress=False)
    fast = prune_edges(scorer, tau, start=start, window=window, progress=False)
    assert _decisions(fast) == _decisions(reference)
    assert set(fast.edges()) == set(reference.edges())
    assert fast.is_subgraph_of(start) or fast.number_of_edges() == 0


@SETTINGS
@given(data=st.data(), tau_exponent=st.floats(-4, -1))
def test_fast_equals_reference_with_positions(tiny, data, tau_exponent):
    scorer = _scorer(tiny, "kl")
    start = _random_start(data, tiny, True, range(scorer.task.seq_len), max_edges=50)
    reference = prune_edges(
        scorer, 10**tau_exponent, start=start, method="reference", progress=False
    )
    fast = prune_edges(scorer, 10**tau_exponent, start=start, progress=False)
    assert _decisions(fast) == _decisions(reference)
    assert set(fast.edges()) == set(reference.edges())


def test_full_graph_fast_equals_reference_on_toy(toy):
    scorer = _scorer(toy, "logit_diff", n=8)
    start = cg.Circuit.from_nodes(toy.cfg, ["a0.0", "a1.1", "a2.2", "a2.3", "m0", "m2"])
    reference = prune_edges(scorer, 0.01, start=start, method="reference", progress=False)
    fast = prune_edges(scorer, 0.01, start=start, progress=False)
    assert _decisions(fast) == _decisions(reference)
    assert fast == reference


def test_tau_zero_keeps_every_edge_whose_removal_hurts(toy):
    scorer = _scorer(toy, "kl", n=8)
    start = cg.Circuit.from_nodes(toy.cfg, ["a1.0", "a2.1", "m1", "m2"], qkv=False)
    result = prune_edges(scorer, 0.0, start=start, progress=False)
    for _, _, effect, removed in result.metadata["tested"]:
        assert removed == (effect < 0)
    assert result.number_of_edges() > 0


def test_edges_into_a_node_without_path_to_logits_change_nothing(toy):
    """A node none of whose outputs is in the circuit cannot move the score: the fast path
    skips it (no recomputation, no unembedding) and records an effect of exactly 0."""
    scorer = _scorer(toy, "kl", n=8)
    full = cg.full_circuit(toy.cfg)
    cut = [(u, v) for u, v in full.sender_receiver_edges() if u != "a1.2"]
    start = cg.Circuit.from_edges(toy.cfg, cut)
    fast = prune_edges(scorer, 0.01, start=start, progress=False)
    reference = prune_edges(scorer, 0.01, start=start, method="reference", progress=False)
    into = [row for row in fast.metadata["tested"] if row[1].startswith("a1.2.")]
    assert into and all(effect == 0.0 for _, _, effect, _ in into)
    again = {(u, v): effect for u, v, effect, _ in reference.metadata["tested"]}
    assert all(abs(again[u, v]) < 1e-6 for u, v, _, _ in into)  # from scratch: float noise
    assert _decisions(fast) == _decisions(reference)


def test_huge_tau_removes_everything(toy):
    scorer = _scorer(toy, "logit_diff", n=8)
    result = prune_edges(scorer, 1e9, qkv=False, progress=False)
    assert result.sender_receiver_edges() == []
    assert all(removed for *_, removed in result.metadata["tested"])


def test_result_is_subgraph_and_score_is_remeasured(toy):
    scorer = _scorer(toy, "logit_diff", n=8)
    start = cg.Circuit.from_nodes(toy.cfg, ["a0.1", "a1.0", "a1.2", "a2.0", "a2.3", "m0", "m1"])
    result = prune_edges(scorer, 0.02, start=start, progress=False)
    assert result.level == "edge"
    assert result.is_subgraph_of(start)
    assert result.metadata["score"] == pytest.approx(result.metadata["running_score"], abs=1e-4)
    assert result.metadata["score"] == pytest.approx(scorer.score(result), abs=1e-6)
    kept = set(result.sender_receiver_edges())
    effects = {(u, v): effect for u, v, effect, _ in result.metadata["tested"]}
    for edge in kept:
        assert result.edges[edge]["effect"] == effects[edge]


def test_denoising_fast_equals_reference(toy):
    scorer = _scorer(toy, "logit_diff", n=8, ablation="resample", direction="denoising")
    start = cg.Circuit.from_nodes(toy.cfg, ["a1.1", "a2.0", "a2.2", "m1", "m2"])
    reference = prune_edges(scorer, 0.02, start=start, method="reference", progress=False)
    fast = prune_edges(scorer, 0.02, start=start, progress=False)
    assert _decisions(fast) == _decisions(reference)


def test_bad_inputs(toy, tiny):
    scorer = _scorer(toy, "kl")
    for bad_tau in (True, "0.1", float("nan"), float("inf"), None):
        with pytest.raises(ValueError, match="tau must be a finite number"):
            prune_edges(scorer, bad_tau)
    with pytest.raises(ValueError, match="unknown order"):
        prune_edges(scorer, 0.1, order="random")
    with pytest.raises(ValueError, match="no token positions"):
        prune_edges(scorer, 0.1, order="acdc", positions=True)
    denoising = cg.Scorer(toy, scorer.task, metric="kl", ablation="resample", direction="denoising")
    with pytest.raises(ValueError, match="direction='noising'"):
        prune_edges(denoising, 0.1, order="acdc")
    with pytest.raises(ValueError, match="unknown method"):
        prune_edges(scorer, 0.1, method="magic")
    with pytest.raises(ValueError, match="unknown metric"):
        prune_edges(scorer, 0.1, metric="bleu")
    with pytest.raises(ValueError, match="circuit is for model"):
        prune_edges(scorer, 0.1, start=cg.full_circuit(tiny.cfg))


def test_negative_tau_keeps_everything_and_logs_every_single_edge_effect(toy):
    scorer = _scorer(toy, "kl", n=4)
    start = cg.Circuit.from_nodes(toy.cfg, ["a1.0", "a2.1", "m2"])
    result = prune_edges(scorer, -1.0, start=start, progress=False)
    tested = result.metadata["tested"]
    assert len(tested) == len(start.sender_receiver_edges())
    assert not any(removed for *_, removed in tested)
    for u, v, effect, _ in tested:  # each effect is that edge's alone, from the full start
        alone = scorer.score(cg.Circuit.from_edges(toy.cfg, set(start.edges) - {(u, v)},
                                                   internal=False))  # fmt: skip
        assert effect == pytest.approx(alone - scorer.score(start), abs=1e-5)


def test_start_without_a_head_internal_edge_is_honoured_by_both_methods(toy):
    """Issue 15, item 3: circuits from edge algebra may lack a head-internal edge; the reference
    used to re-add it silently (fast kept 49 edges, reference 52, effects off by up to 0.70)."""
    scorer = _scorer(toy, "kl", n=16, ablation="resample")
    full = cg.full_circuit(toy.cfg)
    start = full - cg.Circuit.from_edges(toy.cfg, [("embed", "a2.1.q")])
    start = start - cg.Circuit.from_edges(toy.cfg, [("a2.1.q", "a2.1")], internal=False)
    assert not start.has_edge("a2.1.q", "a2.1") and start.has_edge("a2.1.k", "a2.1")
    reference = prune_edges(scorer, 0.01, start=start, method="reference", progress=False)
    fast = prune_edges(scorer, 0.01, start=start, progress=False)
    effects = [[effect for _, _, effect, _ in c.metadata["tested"]] for c in (reference, fast)]
    assert effects[0] == pytest.approx(effects[1], abs=1e-5)
    assert _decisions(fast) == _decisions(reference)
    assert fast == reference
    assert not reference.has_edge("a2.1.q", "a2.1")
    # an edge into the cut-off query input cannot matter: its effect is exactly zero
    into_query = [e for u, v, e, _ in reference.metadata["tested"] if v == "a2.1.q"]
    assert into_query and all(effect == 0 for effect in into_query)


@SETTINGS
@given(
    data=st.data(),
    order=st.sampled_from(["canonical", "acdc"]),
    metric=st.sampled_from(["kl", "logit_diff"]),
    tau_exponent=st.floats(-4, -1),
)
def test_fast_equals_reference_from_set_algebra(tiny, data, order, metric, tau_exponent):
    """Start circuits drawn from edge set algebra (which can drop head-internal edges)."""
    scorer = _scorer(tiny, metric, ablation="resample")
    full = cg.full_circuit(tiny.cfg)
    edges = sorted(full.edges)
    cut = data.draw(st.lists(st.sampled_from(edges), min_size=1, max_size=30, unique=True))
    start = full - cg.Circuit.from_edges(tiny.cfg, cut, internal=False)
    kwargs = {"start": start, "order": order, "progress": False}
    reference = prune_edges(scorer, 10**tau_exponent, method="reference", **kwargs)
    fast = prune_edges(scorer, 10**tau_exponent, window=data.draw(st.integers(1, 5)), **kwargs)
    assert _decisions(fast) == _decisions(reference)
    assert fast.metadata["untested"] == reference.metadata["untested"]
    assert fast == reference


def test_acdc_order_tests_a_gqa_group_input_as_one_direct_edge():
    model = cg.load_model("random:llama-tiny")  # 4 query heads share 2 key/value heads
    scorer = _scorer(model, "kl", ablation="resample")
    result = prune_edges(scorer, -1.0, order="acdc", progress=False)
    effects: dict[str, set[float]] = {}
    rows = [(u, v, e) for u, v, e, _ in result.metadata["tested"] if u.endswith((".k", ".v"))]
    for u, v, effect in rows:
        if v.count(".") == 1:  # a direct edge: input -> head
            effects.setdefault(u, set()).add(effect)
    assert set(effects) == {f"a{L}.g{G}.{x}" for L in (0, 1) for G in (0, 1) for x in "kv"}
    assert all(len(values) == 1 for values in effects.values())  # one test for the group
    direct = [(u, v) for u, v, _ in rows if v.count(".") == 1 and u == "a1.g1.k"]
    assert direct == [("a1.g1.k", "a1.2"), ("a1.g1.k", "a1.3")]


REACTIVE = ("random:gpt2-tiny,init=200", "random:llama-tiny,n_layers=3,init=200")


@pytest.mark.parametrize("name", REACTIVE)
@pytest.mark.parametrize("ablation", ["resample", "mean"])
@pytest.mark.parametrize("tau", [1e-2, 1e-3])
def test_full_graph_fast_equals_reference_on_models_that_react(name, ablation, tau):
    """Models whose heads and MLPs matter keep some edges and drop others, so the guided
    speculation and the changed-position bookkeeping get both kinds of decision."""
    model = cg.load_model(name)
    scorer = _scorer(model, "kl", n=6, ablation=ablation)
    reference = prune_edges(scorer, tau, method="reference", progress=False)
    fast = prune_edges(scorer, tau, progress=False)
    decisions = _decisions(fast)
    assert decisions == _decisions(reference)
    assert 0 < sum(removed for *_, removed in decisions) < len(decisions)
    assert fast.metadata["evaluations"]["batches"] < len(decisions)


def test_unchanged_positions_are_those_before_the_first_difference(toy):
    from circuitgraph.prune.live import unchanged_positions

    resample = _scorer(toy, "kl", n=8, ablation="resample")
    differs = (resample.task.clean_tokens != resample.task.corrupted_tokens).any(dim=0)
    first = int(differs.int().argmax())
    assert first > 0 and unchanged_positions(resample) == first
    assert unchanged_positions(_scorer(toy, "kl", n=8, ablation="mean")) == 0


@SETTINGS
@given(data=st.data(), tau_exponent=st.floats(-4, -1), denoising=st.booleans())
def test_fast_equals_reference_with_resample_ablation(tiny, data, tau_exponent, denoising):
    direction = "denoising" if denoising else "noising"
    scorer = _scorer(tiny, "kl", ablation="resample", direction=direction)
    positions = data.draw(st.sampled_from([None, range(scorer.task.seq_len)]))
    start = _random_start(data, tiny, True, positions, max_edges=60)
    tau = 10**tau_exponent
    reference = prune_edges(scorer, tau, start=start, method="reference", progress=False)
    fast = prune_edges(scorer, tau, start=start, progress=False)
    assert _decisions(fast) == _decisions(reference)


def _sizer(window: int, fixed: float, per_variant: float, wrong_rate: float):
    from circuitgraph.prune.batching import BatchSizer

    sizer = BatchSizer(window)
    for variants in (1, 3, 5, 8, 2, 6):  # batches of several sizes, costed by the model
        sizer.spent(variants, fixed + per_variant * variants)
    for _ in range(200):
        sizer.observe(wrong=False)
    for _ in range(round(wrong_rate * 100)):  # wrong guesses spread over the last decisions
        sizer.observe(wrong=True)
        for _ in range(round(1 / wrong_rate) - 1):
            sizer.observe(wrong=False)
    return sizer


def test_batch_size_follows_the_cost_of_a_variant_and_the_rate_of_wrong_guesses():
    """The fitted fixed cost is the cost model's; batches shrink where variants are costly
    and guesses break, and take the whole window where guesses hold or variants are cheap."""
    costly = _sizer(16, fixed=0.01, per_variant=0.02, wrong_rate=0.2)
    assert costly.fixed_cost() == pytest.approx(0.5, rel=1e-6)
    assert costly.size() <= 3
    cheap = _sizer(16, fixed=0.05, per_variant=0.001, wrong_rate=0.2)
    assert cheap.fixed_cost() == pytest.approx(50, rel=1e-6)
    assert cheap.size() >= 12
    assert _sizer(16, fixed=0.01, per_variant=0.02, wrong_rate=0.01).size() == 16
    assert _sizer(4, fixed=0.05, per_variant=0.001, wrong_rate=0.01).size() == 4


def test_batch_sizer_falls_back_until_batches_of_several_sizes_are_costed():
    from circuitgraph.prune.batching import BatchSizer

    sizer = BatchSizer(16)
    assert sizer.fixed_cost() == BatchSizer.FIXED_COST
    for _ in range(5):
        sizer.spent(4, 0.1)
    assert sizer.fixed_cost() == BatchSizer.FIXED_COST
    sizer.spent(8, 0.1)  # a larger batch took no longer: variants cost nothing measurable
    assert sizer.size() == 16


def test_fast_edge_pruning_never_reads_the_clock_to_decide(tiny, monkeypatch):
    """Batch sizes come from counted costs, so two runs under clocks that disagree on what a
    batch costs (one where every variant takes a second, one where every batch does) batch,
    round and decide alike: the same effects to the last bit. A timed cost model let a
    decision within float rounding of tau differ between two runs of one command."""
    import time

    from circuitgraph.prune.incremental import IncrementalEvaluator

    scorer = _scorer(tiny, "kl", ablation="resample")
    evaluate, now = IncrementalEvaluator.evaluate, [0.0]
    monkeypatch.setattr(time, "perf_counter", lambda: now[0])
    runs = []
    for per_variant, per_batch in ((1.0, 0.0), (0.0, 1.0)):

        def slow(self, receiver, variants, per_variant=per_variant, per_batch=per_batch):
            now[0] += per_batch + per_variant * variants.n_variants
            return evaluate(self, receiver, variants)

        monkeypatch.setattr(IncrementalEvaluator, "evaluate", slow)
        runs.append(prune_edges(scorer, 1e-3, progress=False).metadata)
    assert runs[0]["tested"] == runs[1]["tested"]
    assert runs[0]["evaluations"] == runs[1]["evaluations"]


def test_counted_cost_grows_with_the_variants_of_a_batch(tiny):
    from circuitgraph.prune.batching import CostModel, Work
    from circuitgraph.prune.edges import _variants
    from circuitgraph.prune.incremental import IncrementalEvaluator
    from circuitgraph.prune.schedule import edge_schedule
    from circuitgraph.scoring.masks import edge_masks

    scorer = _scorer(tiny, "kl", ablation="resample")
    full = cg.full_circuit(tiny.cfg, qkv=True)
    dtype = scorer.components.dtype
    masks = edge_masks(full, scorer.layout, scorer.task.seq_len, scorer.device, dtype)
    step = next(s for s in edge_schedule(full, scorer.layout) if s.receiver.kind == "mlp")
    spent = []
    for removals in ([[0]], [[0], [1], [0, 1], [1, 2]]):
        evaluator = IncrementalEvaluator(scorer, masks)
        evaluator.evaluate(step.receiver, _variants(masks, step, removals))
        spent.append((evaluator.work.calls, evaluator.work.macs))
    (calls_one, macs_one), (calls_four, macs_four) = spent
    assert calls_one == calls_four > 0  # the same components, recomputed for more variants
    assert macs_four > 3 * macs_one
    cost = CostModel(batch=1.0, call=0.5, macs_per_second=100.0, weights_per_second=10.0)
    assert cost.seconds(Work(4, 300.0, 50.0)) == pytest.approx(1.0 + 2.0 + 3.0 + 5.0)
