"""A Scorer refuses models whose full circuit does not reproduce their own logits, and warns
when the model never predicts the task's answers (issue 27, item 1)."""

from __future__ import annotations

import warnings

import pytest
import torch

import circuitgraph as cg
from circuitgraph.models.loading import _bridge
from circuitgraph.scoring.checks import FullCircuitMismatch, check_full_circuit


def test_the_full_circuit_reproduces_the_model(toy, tiny):
    for model in (toy, tiny):
        scorer = cg.Scorer(model, cg.make_task("digits", model, n=4))
        assert scorer.full_circuit_error < 1e-5


def test_a_model_wrapped_twice_is_refused():
    """Re-running a notebook cell that boots the same Hugging Face Llama object gives a bridge
    whose own forward is right but whose weights circuitgraph would read wrongly (a GPT-2
    wrapped twice stays right)."""
    llama = cg.load_model("random:llama-tiny")
    hf_model = llama.original_model
    _bridge("twice", hf_model, llama.tokenizer, "cpu")
    twice = _bridge("twice", hf_model, llama.tokenizer, "cpu")
    task = cg.make_task("digits", twice, n=4)
    with pytest.raises(FullCircuitMismatch, match="does not reproduce twice's own logits"):
        cg.Scorer(twice, task)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_tolerance_depends_on_the_dtype(dtype):
    logits = torch.randn(3, 10, dtype=dtype) * 5
    assert check_full_circuit(logits, logits, dtype, "m") == 0.0
    off = logits.clone()
    off[1, 2] += 0.1 * logits.abs().max()
    with pytest.raises(FullCircuitMismatch, match=r"relative error 0\.1"):
        check_full_circuit(off, logits, dtype, "m")
    nan = logits.clone()
    nan[0, 0] = float("nan")
    with pytest.raises(FullCircuitMismatch):
        check_full_circuit(nan, logits, dtype, "m")


@pytest.mark.smollm2
def test_answers_without_their_leading_space_are_warned_about(smollm2):
    """SmolLM2 writes ' April'; 'April' is one token too, but never its prediction."""
    task = cg.make_task("months", smollm2, n=8)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cg.Scorer(smollm2, task)  # the built-in task: no warning
    wrong = [smollm2.tokenizer.decode([int(i)]).strip() for i in task.wrong_ids]
    bare = cg.Task.from_prompts(
        smollm2,
        task.clean_prompts,
        task.corrupted_prompts,
        answers=[a.strip() for a in task.answers],
        wrong=wrong,
    )
    with pytest.warns(UserWarning, match="no leading space") as caught:
        scorer = cg.Scorer(smollm2, bare)
    assert scorer.model_top1 < 0.05
    assert any("ranks the answer first on 0%" in str(w.message) for w in caught)


def test_an_attention_direction_we_do_not_model_is_refused(toy, monkeypatch):
    """Causal and bidirectional attention are modelled; anything else is refused by name."""
    monkeypatch.setattr(toy.cfg, "attention_dir", "sideways")
    task = cg.make_task("digits", toy, n=4)
    with pytest.raises(NotImplementedError, match="attention_dir='sideways'"):
        cg.Scorer(toy, task)


def test_a_wrongly_declared_attention_direction_is_caught(toy, monkeypatch):
    """A causal model that claims to be bidirectional: the full circuit (computed without the
    mask) does not reproduce the model's own logits, so nothing is scored."""
    monkeypatch.setattr(toy.cfg, "attention_dir", "bidirectional")
    task = cg.make_task("digits", toy, n=4)
    with pytest.raises(FullCircuitMismatch, match="does not reproduce"):
        cg.Scorer(toy, task)
