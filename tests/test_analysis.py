"""Analyses: attention roles, OV copy/successor scores, logit lens, patching, cross-task.

The OV and attention tests use tiny transformers models whose weights are written by hand so
that one head's OV circuit copies each digit, one maps digit i to digit i + 1, one head attends
to the previous token and one to the token two back (the previous member in "1 , 2 , 3 ,"); the
analyses must find exactly those heads. The Llama variant uses grouped-query attention and puts
the successor head on a query head whose key/value head index differs from ``head % groups``.
"""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest
import torch

import circuitgraph as cg
from circuitgraph import analysis as an
from circuitgraph.guards import UncertaintyError
from circuitgraph.models.loading import toy_tokenizer

D_MODEL, N_HEADS, D_HEAD = 64, 4, 16
SCALE = 10.0  # norm of a digit embedding / a position embedding
SHARP = 1.5  # query/key weight of the hand-built attention heads
DIGITS = [str(i) for i in range(10)]


def _boot(hf_model: torch.nn.Module, label: str) -> torch.nn.Module:
    from transformer_lens.model_bridge import TransformerBridge

    bridge = TransformerBridge.boot_transformers(
        label, hf_model=hf_model.eval(), tokenizer=toy_tokenizer(), device="cpu"
    )
    bridge.cfg.model_name = label
    bridge.cfg.default_prepend_bos = False
    bridge.circuitgraph_name = label
    bridge.circuitgraph_family = "toy"
    return bridge.eval()


def _digit_ids() -> list[int]:
    return toy_tokenizer().convert_tokens_to_ids(DIGITS)


def _shift(n_in: int, offset: int, out_rows: int, out_cols: int) -> torch.Tensor:
    """[out_rows, out_cols] matrix with 1 at (i, i + offset) for i < n_in."""
    matrix = torch.zeros(out_rows, out_cols)
    for i in range(n_in):
        if i + offset < out_cols:
            matrix[i, i + offset] = 1.0
    return matrix


@pytest.fixture(scope="module")
def hand_gpt2():
    """GPT-2: a0.1 previous token, a0.3 two tokens back, a1.0 copies, a1.2 is a successor."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(0)
    config = GPT2Config(
        n_layer=2,
        n_head=N_HEADS,
        n_embd=D_MODEL,
        n_inner=128,
        vocab_size=len(toy_tokenizer()),
        n_positions=64,
    )
    hf = GPT2LMHeadModel(config)
    designed = {}
    with torch.no_grad():
        wte, wpe = hf.transformer.wte.weight, hf.transformer.wpe.weight
        for i, token in enumerate(_digit_ids()):
            wte[token] = SCALE * torch.eye(D_MODEL)[i]
        wpe.zero_()
        wpe[:16, 32:48] = SCALE * torch.eye(16)
        attn0 = hf.transformer.h[0].attn.c_attn  # Conv1D [d_model, 3 * d_model]: q | k | v
        for head, offset in ((1, 1), (3, 2)):
            q = torch.zeros(D_MODEL, D_HEAD)
            k = torch.zeros(D_MODEL, D_HEAD)
            for p in range(offset, 16):
                q[32 + p, p] = SHARP  # query at position p looks for ...
                k[32 + p - offset, p] = SHARP  # ... the key at position p - offset
            attn0.weight[:, head * D_HEAD : (head + 1) * D_HEAD] = q
            attn0.weight[:, D_MODEL + head * D_HEAD : D_MODEL + (head + 1) * D_HEAD] = k
            attn0.bias[head * D_HEAD : (head + 1) * D_HEAD] = 0
            attn0.bias[D_MODEL + head * D_HEAD : D_MODEL + (head + 1) * D_HEAD] = 0
            designed[("W_Q", 0, head)], designed[("W_K", 0, head)] = q, k
        attn1 = hf.transformer.h[1].attn
        for head, offset in ((0, 0), (2, 1)):
            v = _shift(10, 0, D_MODEL, D_HEAD)
            o = _shift(10 - offset, offset, D_HEAD, D_MODEL)
            cols = slice(2 * D_MODEL + head * D_HEAD, 2 * D_MODEL + (head + 1) * D_HEAD)
            attn1.c_attn.weight[:, cols] = v
            attn1.c_attn.bias[cols] = 0
            attn1.c_proj.weight[head * D_HEAD : (head + 1) * D_HEAD] = o
            designed[("W_V", 1, head)], designed[("W_O", 1, head)] = v, o
    return _boot(hf, "hand-built-gpt2"), designed


@pytest.fixture(scope="module")
def hand_llama():
    """Llama with 2 key/value heads: a1.1 (kv head 0) is a successor, a1.2 (kv head 1) copies."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=D_MODEL,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=N_HEADS,
        num_key_value_heads=2,
        vocab_size=len(toy_tokenizer()),
        max_position_embeddings=64,
        tie_word_embeddings=True,
    )
    hf = LlamaForCausalLM(config)
    designed = {}
    with torch.no_grad():
        embed = hf.model.embed_tokens.weight
        for i, token in enumerate(_digit_ids()):
            embed[token] = SCALE * torch.eye(D_MODEL)[i]
        attn = hf.model.layers[1].self_attn  # nn.Linear weights are [out, in]
        # The two key/value heads store the digits in opposite orders, so a head that read
        # the other group's values would map digit i to 9 - i or i - 1 instead.
        reverse = torch.eye(D_HEAD)[:, list(range(9, -1, -1)) + list(range(10, D_HEAD))]
        for head, group, offset in ((1, 0, 1), (2, 1, 0)):
            v = _shift(10, 0, D_MODEL, D_HEAD)
            o = _shift(10 - offset, offset, D_HEAD, D_MODEL)
            if group == 1:
                v, o = v @ reverse, reverse.T @ o
            attn.v_proj.weight[group * D_HEAD : (group + 1) * D_HEAD] = v.T
            attn.o_proj.weight[:, head * D_HEAD : (head + 1) * D_HEAD] = o.T
            designed[("W_V", 1, group)], designed[("W_O", 1, head)] = v, o
    return _boot(hf, "hand-built-llama"), designed


@pytest.fixture(params=["gpt2", "llama"])
def hand_built(request, hand_gpt2, hand_llama):
    return {"gpt2": hand_gpt2, "llama": hand_llama}[request.param]


def test_hand_written_weights_are_what_the_bridge_reads(hand_built):
    model, designed = hand_built
    for (name, layer, index), matrix in designed.items():
        torch.testing.assert_close(getattr(model, name)[layer, index].detach(), matrix)
    digit = _digit_ids()[3]
    torch.testing.assert_close(model.W_E[digit].detach(), SCALE * torch.eye(D_MODEL)[3])


@pytest.mark.parametrize("mlp0", [True, False])
def test_ov_scores_find_the_successor_and_the_copy_head(hand_built, mlp0):
    model, designed = hand_built
    successor, copier = ("a1.2", "a1.0") if ("W_Q", 0, 1) in designed else ("a1.1", "a1.2")
    table = an.ov_scores(model, "digits", k=1, mlp0=mlp0)
    assert len(table) == 2 * N_HEADS
    assert table.iloc[0]["head"] == successor
    assert table.iloc[0]["successor_score"] == 1.0
    assert table.iloc[0]["successor_mean_rank"] == 0.0
    by_head = table.set_index("head")
    assert by_head.loc[copier, "copy_score"] == 1.0
    assert by_head["copy_score"].idxmax() == copier
    others = by_head.drop(index=[successor, copier])
    assert (others["successor_score"] < 0.5).all() and (others["copy_score"] < 0.5).all()
    rows = an.ov_predictions(model, successor, "digits", k=3, mlp0=mlp0)
    assert rows.loc[3, "member"] == "3" and rows.loc[3, "top_tokens"][0] == "4"
    assert pd.isna(rows.loc[9, "successor"])  # digits do not wrap


def test_member_tokens_follow_the_task_spelling(hand_gpt2):
    model, _ = hand_gpt2
    members = an.member_tokens(model, "months")
    assert members.values[0] == "January" and len(members) == 12
    assert members.successors[-1] == 0  # months wrap
    assert an.member_tokens(model, "digits").successors[-1] == -1
    custom = an.member_tokens(model, ["3", "2", "1"])
    assert custom.ids.tolist() == toy_tokenizer().convert_tokens_to_ids(["3", "2", "1"])
    with pytest.raises(ValueError, match="unknown task"):
        an.member_tokens(model, "no_such_task")


def test_previous_token_and_previous_member_heads_score_highest(hand_gpt2):
    model, _ = hand_gpt2
    task = cg.make_task("digits", model, n=6, seed=1)
    patterns = an.attention_patterns(model, task)
    scores = patterns.scores().set_index("head")
    assert scores["prev_token"].idxmax() == "a0.1"
    assert scores.loc["a0.1", "prev_token"] > 0.95
    assert scores["prev_member"].idxmax() == "a0.3"
    assert scores["member_offset"].idxmax() == "a0.3"
    assert scores.loc["a0.3", "prev_member"] > 0.95
    offsets = patterns.offsets(max_offset=3)
    best = offsets.loc[offsets.groupby("head")["weight"].idxmax()].set_index("head")["offset"]
    assert best["a0.1"] == 1 and best["a0.3"] == 2
    last = task.seq_len - 1
    rows = patterns.top_keys(prompt=0, queries=[last]).set_index("head")
    member = int(task.member_positions[0, -1])
    assert rows.loc["a0.1", "key_pos"] == last - 1
    assert rows.loc["a0.3", "key_pos"] == member - 1  # the comma after the previous member
    assert rows.loc["a0.3", "query"] == "," and rows.loc["a0.3", "key"] == ","
    by_member = patterns.top_keys(prompt=0, queries=[member]).set_index("head")
    shown = task.clean_prompts[0].split(" , ")
    assert by_member.loc["a0.3", "key"] == shown[-2].split()[-1]  # previous member's token
    mean = patterns.mean_table()
    assert set(mean.columns) >= {"head", "query_pos", "key_pos", "weight"}
    sums = mean.groupby(["head", "query_pos"])["weight"].sum()
    assert (sums - 1.0).abs().max() < 1e-5


def test_logit_lens_final_stage_equals_model_logits(tiny):
    task = cg.make_task("digits", tiny, n=4)
    lens = an.lens_logits(tiny, task.clean_tokens)
    assert lens.shape[:3] == (tiny.cfg.n_layers + 1, 4, task.seq_len)
    with torch.no_grad():
        logits = tiny(task.clean_tokens).float()
    torch.testing.assert_close(lens[-1], logits, atol=1e-4, rtol=1e-4)
    assert not torch.allclose(lens[0], logits, atol=1e-2)
    table = an.logit_lens(tiny, task, per_prompt=True)
    final = table[table["stage"] == tiny.cfg.n_layers - 1].sort_values("prompt")
    last = logits[:, -1]
    answer = last.gather(1, task.answer_ids[:, None])
    assert final["target_rank"].tolist() == (last > answer).sum(dim=1).tolist()
    summary = an.logit_lens(tiny, task, positions=None)
    assert len(summary) == (tiny.cfg.n_layers + 1) * task.seq_len
    assert summary["wrong_prob"].notna().sum() == tiny.cfg.n_layers + 1


def test_patching_with_own_activations_changes_nothing(tiny):
    task = cg.make_task("digits", tiny, n=4)
    same = dataclasses.replace(task, corrupted_tokens=task.clean_tokens)
    table = an.head_position_patching(tiny, same, heads=["a0.1", "a1.0"], positions=[-1, 5])
    clean = table.attrs["clean_logit_diff"]
    assert len(table) == 2 * 2 * 2
    assert torch.allclose(torch.tensor(table["logit_diff"].values), torch.tensor(clean), atol=1e-5)
    replaced = an.replace_head_activations(tiny, ["a0.1", "a1.3"], task, task)
    assert (replaced["top_before"] == replaced["top_after"]).all()
    assert not replaced["top1_changed"].any()
    diff = replaced["answer_prob_before"] - replaced["answer_prob_after"]
    assert diff.abs().max() < 1e-6


def test_patching_one_head_matches_a_manual_hook(hand_gpt2):
    model, _ = hand_gpt2
    task = cg.make_task("digits", model, n=4, seed=2)
    where = {"heads": ["a0.1", "a1.2"], "positions": [7, -1]}
    small = an.head_position_patching(model, task, **where, batch_size=8)
    big = an.head_position_patching(model, task, **where, batch_size=4096)
    torch.testing.assert_close(
        torch.tensor(small["logit_diff"].values), torch.tensor(big["logit_diff"].values)
    )
    _, cache = model.run_with_cache(task.corrupted_tokens, names_filter="blocks.1.attn.hook_z")
    source = cache["blocks.1.attn.hook_z"]

    def patch(z, hook):
        z = z.clone()
        z[:, 7, 2] = source[:, 7, 2]
        return z

    with torch.no_grad():
        logits = model.run_with_hooks(
            task.clean_tokens, fwd_hooks=[("blocks.1.attn.hook_z", patch)]
        )
    rows = torch.arange(len(task))
    last = logits[:, -1]
    manual = (last[rows, task.answer_ids] - last[rows, task.wrong_ids]).mean()
    row = small.query("direction == 'noising' and head == 'a1.2' and position == 7")
    assert row["logit_diff"].item() == pytest.approx(float(manual), abs=1e-5)
    assert small["logit_diff"].std() > 0  # patching does change something


def test_replace_head_activations_moves_digits_into_number_words(hand_gpt2):
    model, _ = hand_gpt2
    digits = cg.make_task("digits", model, n=4)
    words = cg.make_task("number_words", model, n=4)
    table = an.replace_head_activations(model, ["a0.1", "a0.3", "a1.2"], digits, words, k=3)
    assert len(table) == 4 and len(table["top_after"][0]) == 3
    assert (table["source_answer"] == digits.answers).all()
    assert table["source_answer_prob_after"].ne(table["source_answer_prob_before"]).any()


def test_cross_task_diagonal_is_each_circuits_own_score():
    model = cg.load_model("random:gpt2-tiny")
    tasks = {name: cg.make_task(name, model, n=4) for name in ("digits", "months")}
    scorers = {name: cg.Scorer(model, task) for name, task in tasks.items()}
    circuits = {
        "digits": cg.Circuit.from_nodes(model.cfg, ["a0.0", "a1.1", "m0", "m1"]),
        "months": cg.Circuit.from_nodes(model.cfg, ["a0.2", "a1.3", "m1"]),
    }
    matrix = an.cross_task_matrix(circuits, scorers)
    assert list(matrix.index) == list(matrix.columns) == ["digits", "months"]
    for a in circuits:
        for b in scorers:
            assert matrix.loc[a, b] == pytest.approx(scorers[b].score(circuits[a]), abs=1e-6)
    assert matrix.loc["digits", "digits"] != pytest.approx(matrix.loc["months", "digits"])

    # 7 other heads x 1 other MLP: 7 possible sets, too few for a percentile
    with pytest.raises(UncertaintyError, match="only 7 distinct random sets"):
        an.ablate_subcircuit(scorers["digits"], ["a1.1", "m1"], n_random=50, seed=3)
    wide = cg.load_model("random:gpt2-tiny,n_heads=8")  # 16 heads: C(14, 2) = 91 possible sets
    scorer = cg.Scorer(wide, cg.make_task("digits", wide, n=4))
    tested = ["a1.1", "a0.2", "m1"]
    result = an.ablate_subcircuit(scorer, tested, n_random=20, seed=3)
    again = an.ablate_subcircuit(scorer, tested, n_random=20, seed=3)
    assert result.random_sets == again.random_sets and result.percentile == again.percentile
    kept = [f"a{L}.{h}" for L in range(2) for h in range(8) if (L, h) not in ((1, 1), (0, 2))]
    kept += ["m0"]
    expected = scorer.score(cg.Circuit.from_nodes(wide.cfg, kept, qkv=False))
    assert result.score == pytest.approx(expected, abs=1e-5)
    assert result.drop == pytest.approx(result.full_score - expected, abs=1e-5)
    assert all(sum(n.startswith("m") for n in s) == 1 for s in result.random_sets)
    assert 0.0 <= result.percentile <= 100.0 and len(result.table()) == 21
    assert all(not set(tested) & set(s) for s in result.random_sets)
    assert result.pool == "outside" and set(result.pool_nodes) == set(kept)
    assert result.distinct_sets == 20 and result.possible_sets == 91


def test_subcircuit_controls_use_named_pools():
    model = cg.load_model("random:gpt2-tiny,n_heads=8")  # 16 heads, 2 MLPs
    scorer = cg.Scorer(model, cg.make_task("digits", model, n=4))
    others = ["a0.0", "a0.3", "a0.4", "a0.5", "a0.6", "a1.2", "a1.4", "a1.5", "m0"]
    circuit = cg.Circuit.from_nodes(model.cfg, ["a0.1", "a1.1", "m1", *others])
    tested = ["a0.1", "a1.1", "m1"]
    inside = an.ablate_subcircuit(scorer, tested, n_random=20, pool="circuit", circuit=circuit)
    assert inside.pool == "circuit" and sorted(inside.pool_nodes) == sorted(others)
    for s in inside.random_sets:
        assert set(s) <= set(others) and "m0" in s and len(s) == 3
    # C(8 heads, 2) x 1 MLP = 28 possible sets: 20 of them, no set twice
    assert inside.possible_sets == 28 and inside.distinct_sets == 20 == len(inside.random_sets)
    every = an.ablate_subcircuit(scorer, tested, n_random=30, pool="circuit", circuit=circuit)
    assert every.distinct_sets == 28 == len(every.random_sets)  # a pool of 28: each once
    pool = ["a0.1", *[f"a1.{h}" for h in range(2, 8)], *[f"a0.{h}" for h in range(2, 8)]]
    custom = an.ablate_subcircuit(scorer, ["a0.1", "a1.1"], n_random=20, pool=pool)
    assert custom.pool == "custom" and custom.pool_nodes == pool[1:]
    assert all(set(s) <= set(pool[1:]) for s in custom.random_sets)
    table = an.subcircuit_controls(scorer, tested, circuit, n_random=20)
    assert list(table.index) == ["outside", "circuit"]
    assert table.loc["outside", "pool_size"] == 15 and table.loc["circuit", "pool_size"] == 9
    assert (
        table.loc["circuit", "distinct_sets"] == 20 and table.loc["outside", "distinct_sets"] == 20
    )
    assert table["drop"].nunique() == 1  # the same target in both rows
    with pytest.raises(ValueError, match="pass circuit="):
        an.ablate_subcircuit(scorer, tested, pool="circuit")
    with pytest.raises(ValueError, match="pool 'circuit' has 6 heads and 0 MLPs"):
        an.ablate_subcircuit(
            scorer,
            ["a0.0", "a0.1", "m0"],
            pool="circuit",
            circuit=circuit.copy() - cg.Circuit.from_nodes(model.cfg, ["a0.3", "a1.2", "m1"]),
        )
    with pytest.raises(ValueError, match="unknown pool 'everything'"):
        an.ablate_subcircuit(scorer, tested, pool="everything")


def test_bad_inputs_are_named():
    gpt2, llama = cg.load_model("random:gpt2-tiny"), cg.load_model("random:llama-tiny")
    task = cg.make_task("digits", gpt2, n=2)
    other = cg.make_task("digits", llama, n=2)
    with pytest.raises(ValueError, match="unknown head 'a99.0'"):
        an.attention_patterns(gpt2, task, heads=["a99.0"])
    with pytest.raises(ValueError, match="'m1' is not an attention head"):
        an.ov_scores(gpt2, "digits", heads=["m1"])
    with pytest.raises(ValueError, match="not a head name"):
        an.head_position_patching(gpt2, task, heads=["head3"])
    with pytest.raises(ValueError, match="position 40 is outside the prompt"):
        an.head_position_patching(gpt2, task, heads=["a0.0"], positions=[40])
    with pytest.raises(ValueError, match="position -14 is outside the prompt"):
        an.attention_patterns(gpt2, task).top_keys(queries=[-14])
    with pytest.raises(ValueError, match="outside the prompt"):
        an.logit_lens(gpt2, task, positions=[task.seq_len])
    with pytest.raises(ValueError, match="built for model"):
        an.attention_patterns(gpt2, other)
    with pytest.raises(ValueError, match="built for model"):
        an.replace_head_activations(gpt2, ["a0.0"], other, task)
    scorers = {"gpt2": cg.Scorer(gpt2, task), "llama": cg.Scorer(llama, other)}
    circuits = {"gpt2": cg.full_circuit(gpt2.cfg)}
    with pytest.raises(ValueError, match="different models"):
        an.cross_task_matrix(circuits, scorers)
    with pytest.raises(ValueError, match="found on model"):
        an.cross_task_matrix({"llama": cg.full_circuit(llama.cfg)}, {"gpt2": scorers["gpt2"]})
    with pytest.raises(ValueError, match="unknown MLP 'm7'"):
        an.ablate_subcircuit(scorers["gpt2"], ["m7"])
    with pytest.raises(ValueError, match="unknown direction"):
        an.head_position_patching(gpt2, task, heads=["a0.0"], directions="sideways")


def test_plots_are_written_atomically(tmp_path, hand_gpt2):
    model, _ = hand_gpt2
    task = cg.make_task("digits", model, n=3)
    patterns = an.attention_patterns(model, task, heads=["a0.1", "a0.3"])
    outputs = [
        patterns.plot(tmp_path / "attention.png"),
        an.plot_attention(patterns, tmp_path / "one.svg", heads=["a0.3"], prompt=0),
        an.plot_logit_lens(an.logit_lens(model, task), tmp_path / "lens.png"),
        an.plot_patching(
            an.head_position_patching(model, task, heads=["a1.2"], positions=[-1, -2]),
            tmp_path / "patching.png",
        ),
        an.plot_ov_scores(an.ov_scores(model, "digits"), tmp_path / "ov.png"),
        an.plot_cross_task(
            pd.DataFrame([[1.0, 0.4], [0.9, 1.0]], index=["a", "b"], columns=["a", "b"]),
            tmp_path / "cross.pdf",
        ),
    ]
    for path in outputs:
        assert path.stat().st_size > 1000
    assert (tmp_path / "attention.png").read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in outputs)
    with pytest.raises(ValueError, match="not among the computed heads"):
        patterns.plot(tmp_path / "missing.png", heads=["a1.0"])
    assert not (tmp_path / "missing.png").exists()


def test_subcircuit_controls_report_a_pool_too_small_to_draw_from():
    model = cg.load_model("random:gpt2-tiny,n_heads=8")
    scorer = cg.Scorer(model, cg.make_task("digits", model, n=4))
    circuit = cg.Circuit.from_nodes(model.cfg, ["a0.0", "a0.1", "m0"])
    table = an.subcircuit_controls(scorer, ["a0.0", "a0.1"], circuit, n_random=20)
    assert table.loc["outside", "note"] == "" and table.loc["outside", "percentile"] >= 0
    assert math.isnan(table.loc["circuit", "percentile"])
    assert "pool 'circuit' has 0 heads" in table.loc["circuit", "note"]


def test_a_percentile_over_too_few_distinct_sets_is_refused():
    """Issue 27: a circuit of 4 heads tested on 2 holds one other set, so "100th percentile
    over 50 draws" was one comparison repeated 50 times."""
    model = cg.load_model("random:gpt2-tiny,n_heads=8")
    scorer = cg.Scorer(model, cg.make_task("digits", model, n=4))
    circuit = cg.Circuit.from_nodes(model.cfg, ["a0.0", "a0.1", "a1.0", "a1.1"])
    with pytest.raises(UncertaintyError, match="only 1 distinct random sets"):
        an.ablate_subcircuit(scorer, ["a0.0", "a0.1"], pool="circuit", circuit=circuit)
    with pytest.raises(UncertaintyError, match="only 19 distinct"):  # n_random below 20
        an.ablate_subcircuit(scorer, ["a0.0", "a0.1"], n_random=19)
    table = an.subcircuit_controls(scorer, ["a0.0", "a0.1"], circuit)
    assert table.loc["circuit", "distinct_sets"] == 1
    assert (
        math.isnan(table.loc["circuit", "percentile"]) and "only 1" in table.loc["circuit", "note"]
    )
    assert table.loc["outside", "distinct_sets"] == 50 and table.loc["outside", "percentile"] >= 0
