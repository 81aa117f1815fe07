"""``cg.load_model`` on models you built: a TransformerBridge, a transformers PreTrainedModel
with its tokenizer, and a local Hugging Face checkpoint folder, each end to end (a task, a
Scorer whose full circuit reproduces the model, node pruning); what cannot be computed
exactly is refused with one line that names it."""

from __future__ import annotations

import pytest
import torch

import circuitgraph as cg
from circuitgraph.models.loading import toy_tokenizer

pytestmark = pytest.mark.filterwarnings("ignore::circuitgraph.UncertaintyWarning")


def _hf_gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel

    tokenizer = toy_tokenizer()
    torch.manual_seed(0)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=64, n_embd=32, n_layer=2, n_head=4,
        initializer_range=0.2, bos_token_id=None, eos_token_id=None,
    )  # fmt: skip
    return GPT2LMHeadModel(config).eval(), tokenizer


def _end_to_end(model) -> None:
    task = cg.make_task("digits", model, n=8)
    scorer = cg.Scorer(model, task)
    assert scorer.full_circuit_error < 1e-4
    assert scorer.score(cg.full_circuit(model.cfg)) == pytest.approx(1.0, abs=1e-4)
    circuit = cg.prune_nodes(scorer, threshold=0.5, progress=False)
    assert circuit.metadata["score"] >= 0.5 and circuit.config.model_name == model.cfg.model_name


def test_a_pretrained_model_with_its_tokenizer():
    hf_model, tokenizer = _hf_gpt2()
    model = cg.load_model(hf_model, tokenizer=tokenizer, name="my-gpt2")
    assert model.cfg.model_name == model.circuitgraph_name == "my-gpt2"
    assert model.circuitgraph_family == "gpt2"
    _end_to_end(model)


def test_a_local_checkpoint_folder(tmp_path):
    hf_model, tokenizer = _hf_gpt2()
    hf_model.save_pretrained(tmp_path / "ckpt")
    tokenizer.save_pretrained(tmp_path / "ckpt")
    model = cg.load_model(str(tmp_path / "ckpt"))
    assert model.cfg.model_name == "ckpt"
    with torch.no_grad():
        tokens = torch.tensor([[3, 4, 5, 6]])
        assert torch.allclose(model(tokens), hf_model(tokens).logits, atol=1e-5)
    _end_to_end(model)


def test_a_bridge_you_booted_is_the_object_returned():
    from transformer_lens.model_bridge import TransformerBridge

    hf_model, tokenizer = _hf_gpt2()
    bridge = TransformerBridge.boot_transformers(
        "gpt2", hf_model=hf_model, tokenizer=tokenizer, device="cpu", dtype=torch.float32
    )
    model = cg.load_model(bridge, name="booted")
    assert model is bridge and model.cfg.model_name == "booted"
    _end_to_end(model)


def test_what_cannot_be_loaded_or_computed_is_refused():
    with pytest.raises(cg.ModelLoadError, match="cannot load a dict"):
        cg.load_model({"n_layers": 2})
    hf_model, tokenizer = _hf_gpt2()
    with pytest.raises(cg.ModelLoadError, match="device_map applies to models loaded by name"):
        cg.load_model(hf_model, device_map="auto")
    with pytest.raises(cg.ModelLoadError, match="apply to models you built"):
        cg.load_model("toy-seq", name="other")
    with pytest.raises(cg.ModelLoadError, match="needs its tokenizer: pass tokenizer="):
        cg.load_model(hf_model)  # TransformerLens would look for one on the hub


def test_a_checkpoint_folder_without_tokenizer_files_is_refused(tmp_path):
    hf_model, tokenizer = _hf_gpt2()
    hf_model.save_pretrained(tmp_path / "bare")
    with pytest.raises(cg.ModelLoadError, match="needs its tokenizer"):
        cg.load_model(tmp_path / "bare")
    model = cg.load_model(tmp_path / "bare", tokenizer=tokenizer, name="bare-with-tokenizer")
    assert model.cfg.model_name == "bare-with-tokenizer"
    model = cg.load_model(hf_model, tokenizer=tokenizer, name="sideways")
    model.cfg.attention_dir = "sideways"
    task = cg.make_task("digits", model, n=8)
    with pytest.raises(NotImplementedError, match="attention_dir='sideways'"):
        cg.Scorer(model, task)


def test_load_model_by_keyword_name_still_works():
    assert cg.load_model(name="toy-seq") is cg.load_model("toy-seq")
