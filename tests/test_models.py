"""Model loading: embedded models offline, random presets, clear errors for the rest."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest
import torch

import circuitgraph as cg
from circuitgraph.files import remove_stale, shared_mode
from circuitgraph.models import loading as models
from circuitgraph.models.loading import cache_dir, parse_random_name


def test_toy_model_loads_and_is_cached(toy):
    assert cg.load_model("toy-seq") is toy
    assert toy.circuitgraph_family == "toy"
    assert toy.cfg.n_layers >= 2


def test_toy_model_solves_its_tasks(toy):
    task = cg.make_task("months", toy, n=32, seed=123)
    with torch.no_grad():
        top = toy(task.clean_tokens)[:, -1].argmax(dim=-1)
    assert (top == task.answer_ids).float().mean() >= 0.95


def test_random_presets_are_seeded():
    a = cg.load_model("random:gpt2-tiny,seed=1")
    b = cg.load_model("random:gpt2-tiny,seed=2")
    assert a.cfg.n_layers == 2
    assert not torch.equal(a.W_Q, b.W_Q)
    three = cg.load_model("random:llama-tiny,n_layers=3")
    assert three.cfg.n_layers == 3 and three.cfg.n_key_value_heads == 2
    # init: the weights' standard deviation in thousandths; 20 is transformers' default
    default, same = cg.load_model("random:gpt2-tiny"), cg.load_model("random:gpt2-tiny,init=20")
    assert torch.equal(default.W_Q, same.W_Q)
    wide = cg.load_model("random:gpt2-tiny,init=200")
    assert 5 < float(wide.W_Q.std() / default.W_Q.std()) < 20


@pytest.mark.parametrize(
    "name, message",
    [
        ("random:gpt2-tiny,n_heads=0", "n_heads=0 .* must be at least 1"),
        ("random:gpt2-tiny,n_layers=0", "n_layers=0 .* must be at least 1"),
        ("random:llama-tiny,n_ctx=0", "n_ctx=0 .* must be at least 1"),
        ("random:llama-tiny,init=0", "init=0 .* must be at least 1"),
        ("random:gpt2-tiny,n_heads=3", "d_model=64 .* not a multiple of n_heads=3"),
        ("random:llama-tiny,n_key_value_heads=3", "not a multiple of n_key_value_heads=3"),
        ("random:gpt5", "unknown random preset 'gpt5'"),
        ("random:gpt2-tiny,n_layers=x", "expected key=<integer>"),
        ("random:gpt2-tiny,colour=3", "unknown override 'colour'"),
        ("no-such-model", "unknown model 'no-such-model'.*toy-seq"),
        ("", "non-empty"),
    ],
)
def test_bad_names_are_clear_errors(name, message):
    with pytest.raises(cg.ModelLoadError, match=message):
        parse_random_name(name) if name.startswith("random:") else cg.load_model(name)


def test_hub_model_offline_names_the_model_and_alternatives(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(cg.ModelLoadError, match="'gpt2-small'.*offline: toy-seq, smollm2-135m"):
        cg.load_model("gpt2-small")


def _no_hub_download(*args, **kwargs):
    raise AssertionError("tried the hub although it is known to be unreachable")


@pytest.mark.parametrize("offline", [True, False])
def test_hub_model_fails_at_once_without_the_hub(monkeypatch, offline):
    """HF_HUB_OFFLINE set or not: no retries when the weights are not cached and the hub is
    unreachable."""
    from transformer_lens.model_bridge import TransformerBridge

    monkeypatch.setattr(models, "hub_offline", lambda: offline)
    monkeypatch.setattr(models, "hub_reachable", lambda: False)
    monkeypatch.setattr(models, "in_hub_cache", lambda repo: False)
    monkeypatch.setattr(TransformerBridge, "boot_transformers", _no_hub_download)
    reason = "HF_HUB_OFFLINE is set" if offline else "huggingface.co is not reachable"
    began = time.perf_counter()
    with pytest.raises(cg.ModelLoadError, match=f"'pythia-70m'.*{reason}.*offline: toy-seq"):
        cg.load_model("pythia-70m")
    assert time.perf_counter() - began < 1.0


def test_loading_prints_nothing(capfd):
    """No "Loading weights" bars or config notices from transformers (issue 16)."""
    models._load_model.cache_clear()
    for name in ("toy-seq", "random:gpt2-tiny", "random:llama-tiny,seed=5"):
        cg.load_model(name)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_cache_folders_are_group_readable(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "umask", lambda mask=0: 0o022)  # os.umask is process-wide: fake it
    folder = tmp_path / "cache"
    folder.mkdir(mode=0o700)
    shared_mode(folder)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755


def test_stale_conversion_folders_are_removed(tmp_path):
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    stale = tmp_path / f".smollm2-{int(dead.stdout)}-abc"
    live = tmp_path / f".smollm2-{os.getpid()}-abc"
    old_style = tmp_path / ".smollm2-k3j_x9q2"  # made by mkdtemp before pids were in names
    for folder in (stale, live, old_style):
        folder.mkdir()
    os.utime(old_style, (0, 0))
    assert sorted(remove_stale(tmp_path, ".smollm2-")) == sorted([stale, old_style])
    assert [p.name for p in tmp_path.iterdir()] == [live.name]


@pytest.mark.smollm2
def test_smollm2_logits_match_transformers(smollm2):
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(
        cache_dir() / "smollm2-135m", dtype=torch.float32
    ).eval()
    tokens = smollm2.to_tokens("Here is a list: January, February, March,")
    with torch.no_grad():
        ours = smollm2(tokens).log_softmax(dim=-1)
        theirs = reference(tokens).logits.log_softmax(dim=-1)
    assert (ours - theirs).abs().max() < 1e-3
    assert smollm2.tokenizer.decode(ours[0, -1].argmax()) == " April"
    assert smollm2.cfg.n_heads == 9 and smollm2.cfg.n_key_value_heads == 3


@pytest.mark.smollm2
def test_smollm2_full_circuit_is_exact(smollm2):
    task = cg.make_task("digits", smollm2, n=4, seed=0)
    scorer = cg.Scorer(smollm2, task)
    full = cg.full_circuit(smollm2.cfg)
    final = scorer.final_residuals(scorer.masks(full))[0]
    with torch.no_grad():
        expected = smollm2(task.clean_tokens)[:, -1]
    assert (scorer.components.unembed(final) - expected).abs().max() < 1e-3
    assert scorer.score(full) == pytest.approx(1.0, abs=1e-4)
    assert scorer.clean_logit_diff > 1.0


def test_bos_default_per_family():
    """GPT-2 and Pythia hub models start tasks with BOS (TransformerLens's default, used by the
    paper's GPT-2 results); the toy model, SmolLM2, Llama-style models and random weights not."""
    from circuitgraph.models.loading import default_prepend_bos

    gpt2, pythia = cg.load_model("random:gpt2-tiny"), cg.load_model("random:pythia-tiny")
    qwen = cg.load_model("random:qwen2-tiny")
    assert default_prepend_bos("gpt2-small", gpt2) and default_prepend_bos("pythia-70m", pythia)
    assert not default_prepend_bos("Qwen/Qwen2.5-0.5B", qwen)
    assert not any(default_prepend_bos(n, gpt2) for n in ("random:gpt2-tiny", "toy-seq"))
    assert gpt2.circuitgraph_prepend_bos is False  # loaded as random weights


def test_prepend_bos_overrides_the_default():
    model = cg.load_model("random:gpt2-tiny")
    plain = cg.make_task("digits", model, n=4, seed=0)
    with_bos = cg.make_task("digits", model, n=4, seed=0, prepend_bos=True)
    bos = model.tokenizer.bos_token_id
    assert not plain.bos and with_bos.bos and (with_bos.clean_tokens[:, 0] == bos).all()
    assert torch.equal(with_bos.clean_tokens[:, 1:], plain.clean_tokens)
    assert torch.equal(with_bos.member_positions, plain.member_positions + 1)
    ioi = cg.make_task("ioi", model, n=4, prepend_bos=True)
    assert (ioi.corrupted_tokens[:, 0] == bos).all()
    mixed = cg.Task.from_prompts(
        model, ["Here is a list : 1 , 2 ,", "Here is a list : 4 , 5 , 6 ,"],
        ["Here is a list : 8 , 3 ,", "Here is a list : 9 , 1 , 2 ,"], ["3", "7"],
        wrong=["2", "6"], prepend_bos=True,
    )  # fmt: skip
    assert mixed.lengths.tolist() == [10, 12]  # 9 and 11 tokens, each after BOS
    assert (mixed.clean_tokens[:, 0] == bos).all()
    with pytest.raises(TypeError, match="prepend_bos"):
        cg.make_task("digits", model, n=2, prepend_bos="yes")
