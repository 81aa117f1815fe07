"""The standard tasks: IOI and induction, on the toy and random models and on SmolLM2."""

from __future__ import annotations

import pytest
import torch

import circuitgraph as cg
from circuitgraph.cli import main


@pytest.mark.parametrize("name", ["toy-seq", "random:llama-tiny"])
def test_ioi_prompts_have_the_structure(name):
    model = cg.load_model(name)
    task = cg.make_task("ioi", model, n=8, seed=1)
    decode = model.tokenizer.decode
    for i in range(len(task)):
        io, s = decode([int(task.answer_ids[i])]), decode([int(task.wrong_ids[i])])
        clean, corrupted = task.clean_prompts[i], task.corrupted_prompts[i]
        assert clean.count(io) == 1 and clean.count(s) == 2  # the subject is repeated
        assert io not in corrupted and s not in corrupted  # abc: three other names
        first = clean.index(io) < clean.index(s)
        assert first == (i % 2 == 0)  # mixed: abba, baba, abba, ...
    assert torch.equal(task.clean_tokens.ne(task.corrupted_tokens).sum(dim=1), torch.full((8,), 3))
    assert cg.make_task("ioi", model, n=4, template="baba").template == "baba"


@pytest.mark.parametrize(("length", "repeated"), [(16, 15), (8, 4)])
def test_induction_repeats_the_first_tokens(toy, length, repeated):
    options = {} if (length, repeated) == (16, 15) else {"length": length, "repeated": repeated}
    task = cg.make_task("induction", toy, n=6, seed=2, **options)  # (16, 15): the defaults
    assert task.clean_tokens.shape == (6, length + repeated)
    first, second = task.clean_tokens[:, :length], task.clean_tokens[:, length:]
    assert torch.equal(second, first[:, :repeated])
    assert torch.equal(task.answer_ids, first[:, repeated])
    assert all(len(set(row.tolist())) == length for row in first)  # distinct words
    assert torch.equal(task.corrupted_tokens[:, :length], first)
    assert not (task.corrupted_tokens[:, length:, None] == first[:, None]).any()
    assert (task.wrong_ids != task.answer_ids).all()


def test_induction_options_are_checked(toy):
    with pytest.raises(ValueError, match=r"repeated \(8\) must be below length \(8\)"):
        cg.make_task("induction", toy, n=2, length=8, repeated=8)
    with pytest.raises(ValueError, match="no option 'lenght'; its options: .*'length'"):
        cg.make_task("induction", toy, n=2, lenght=8)
    with pytest.raises(ValueError, match="task 'digits' takes no option 'length'"):
        cg.make_task("digits", toy, n=2, length=8)


@pytest.mark.smollm2
def test_smollm2_does_induction(smollm2):
    """Issue 27: the induction task must test induction: SmolLM2 ranks the answer first on
    most prompts (0.84 of 192 measured; 0.19 with the old 8-then-4 prompts)."""
    task = cg.make_task("induction", smollm2, n=48, seed=0)
    with torch.no_grad():
        logits = smollm2(task.clean_tokens)[:, -1]
    assert (logits.argmax(-1) == task.answer_ids).float().mean() >= 0.7


def test_standard_tasks_list_their_templates_and_refuse_others(toy):
    assert {"ioi", "induction"} <= set(cg.list_tasks())
    assert cg.list_corruptions("ioi") == ["abc"] and "baba" in cg.list_templates("ioi")
    with pytest.raises(ValueError, match="unknown template 'poem' for task 'ioi'"):
        cg.make_task("ioi", toy, n=2, template="poem")
    with pytest.raises(ValueError, match="unknown corruption 'permutation' for task 'ioi'"):
        cg.make_task("ioi", toy, n=2, corruption="permutation")
    with pytest.raises(TypeError, match="whole number"):
        cg.make_task("induction", toy, n=2.5)


def test_cli_discovers_an_ioi_circuit(tmp_path, capsys):
    argv = ["discover", "--model", "toy-seq", "--task", "ioi", "--n", "8", "--threshold", "0.5"]
    assert main([*argv, "--out", str(tmp_path), "-q", "--no-svg"]) == 0, capsys.readouterr().err
    assert (tmp_path / "toy-seq" / "ioi" / "nodes-0.5" / "circuit.json").exists()


@pytest.mark.smollm2
def test_smollm2_solves_ioi_and_induction(smollm2):
    ioi = cg.Scorer(smollm2, cg.make_task("ioi", smollm2, n=32, seed=0), metric="accuracy")
    assert ioi.task.ragged  # the templates differ in length: right-padded
    assert ioi.score(cg.full_circuit(smollm2.cfg)) >= 0.8 and ioi.clean_logit_diff > 2
    assert ioi.corrupt_logit_diff < 0.5 * ioi.clean_logit_diff  # abc removes the information
    induction = cg.Scorer(smollm2, cg.make_task("induction", smollm2, n=32, seed=0))
    assert induction.clean_logit_diff > 2 > induction.corrupt_logit_diff


@pytest.mark.parametrize("name", ["toy-seq", "random:llama-tiny"])
def test_greater_than_years_signs_mark_the_later_years(name):
    model = cg.load_model(name)
    task = cg.make_task("greater_than_years", model, n=6, seed=3)
    decode = model.tokenizer.decode
    for i, prompt in enumerate(task.clean_prompts):
        start = int(prompt.split("year ")[1].split(" to")[0].replace(" ", "")[-2:])
        values = [int(decode([int(t)])) for t in task.prob_ids[i]]
        two_digit = len(values) == 100
        later = [v > (start if two_digit else start // 10) for v in values]
        assert task.prob_signs[i].tolist() == [1 if x else -1 for x in later]
        assert two_digit or start % 10 == 9  # digit tokenizers: years ending in 9
        assert int(task.answer_ids[i]) in task.prob_ids[i][task.prob_signs[i] > 0]
    assert all("01 to the year" in p for p in task.corrupted_prompts)  # start year 1701


def test_prob_diff_needs_a_task_with_answer_sets(toy):
    digits = cg.make_task("digits", toy, n=4)
    with pytest.raises(ValueError, match="metric 'prob_diff' needs a task with good and bad"):
        cg.Scorer(toy, digits, metric="prob_diff")
    with pytest.raises(ValueError, match="prob_diff"):
        cg.Scorer(toy, digits).with_metric("prob_diff")
    task = cg.make_task("greater_than_years", toy, n=8)
    scorer = cg.Scorer(toy, task, metric="prob_diff")
    assert scorer.score(cg.full_circuit(toy.cfg)) == pytest.approx(1.0, abs=1e-5)
    assert scorer.clean_prob_diff > 0.5 > scorer.corrupt_prob_diff  # the toy model knows
    circuit = cg.prune_nodes(scorer, 0.8, progress=False)
    assert circuit.metadata["score"] >= 0.8 - 1e-4


@pytest.mark.smollm2
def test_smollm2_does_greater_than_on_digits(smollm2):
    task = cg.make_task("greater_than_years", smollm2, n=32, seed=0)
    scorer = cg.Scorer(smollm2, task, metric="prob_diff")
    assert task.prob_ids.shape == (32, 10)  # SmolLM2 splits numbers into digits
    assert scorer.clean_prob_diff > 0.5 and scorer.corrupt_prob_diff < 0


def test_analyses_accept_standard_and_mixed_length_tasks(toy):
    scores = cg.analysis.attention_scores(toy, cg.make_task("induction", toy, n=6))
    assert scores["last_to_members"].isna().all()  # no sequence members to attend to
    assert scores["induction"].notna().all() and scores["prev_token"].between(0, 1).all()
    mixed = cg.Task.from_prompts(
        toy, ["Here is a list : 1 , 2 ,", "Here is a list : 4 , 5 , 6 ,"],
        ["Here is a list : 8 , 3 ,", "Here is a list : 9 , 1 , 2 ,"], ["3", "7"], wrong=["2", "6"],
    )  # fmt: skip
    assert len(cg.analysis.attention_scores(toy, mixed)) == toy.cfg.n_layers * toy.cfg.n_heads
    with pytest.raises(ValueError, match="mixes prompt lengths: use prompts of one length"):
        cg.analysis.logit_lens(toy, mixed)


def test_unknown_task_names_list_the_standard_tasks_too(toy):
    with pytest.raises(
        ValueError, match="unknown task 'nope'; known tasks: digits.*ioi, induction"
    ):
        cg.make_task("nope", toy, n=2)
    with pytest.raises(ValueError, match="greater_than_years"):
        cg.list_templates("nope")
