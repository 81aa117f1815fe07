"""The shared ACDC reference case: a 2-layer model, its data, and the reference's two runs.

tests/data/acdc_reference/ holds a TransformerLens state dict (randomly initialised, seed 0),
32 clean and corrupted prompts, and what ArthurConmy/Automatic-Circuit-Discovery
(TLACDCExperiment, commit bc99ace8) did with them at tau = 0.01 and tau = -1: its visit
order, every effect, every decision, the edges it removed without a test, and its kept set.
Used by tests/test_acdc_reference.py and benchmarks/acdc_order.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

import circuitgraph as cg
from circuitgraph.models.loading import _bridge, toy_tokenizer
from circuitgraph.tasks.task import Task

DATA = Path(__file__).parent / "data" / "acdc_reference"
REFERENCE = json.loads((DATA / "acdc_reference_mlp2.json").read_text())
RUNS = {run["tau"]: run for run in REFERENCE["runs"]}


def _gpt2_from_state_dict(state: dict) -> torch.nn.Module:
    """The reference's HookedTransformer weights as a Hugging Face GPT-2 (Conv1D: [in, out])."""
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(
        vocab_size=100, n_positions=16, n_embd=64, n_layer=2, n_head=4, n_inner=256,
        activation_function="gelu", layer_norm_epsilon=1e-5, tie_word_embeddings=False,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
    )  # fmt: skip
    weights = {
        "transformer.wte.weight": state["embed.W_E"],
        "transformer.wpe.weight": state["pos_embed.W_pos"],
        "transformer.ln_f.weight": state["ln_final.w"],
        "transformer.ln_f.bias": state["ln_final.b"],
        "lm_head.weight": state["unembed.W_U"].T,
    }
    for layer in range(2):
        block, hf = f"blocks.{layer}.", f"transformer.h.{layer}."
        qkv = [state[f"{block}attn.W_{x}"].permute(1, 0, 2).reshape(64, 64) for x in "QKV"]
        weights |= {
            hf + "ln_1.weight": state[block + "ln1.w"],
            hf + "ln_1.bias": state[block + "ln1.b"],
            hf + "ln_2.weight": state[block + "ln2.w"],
            hf + "ln_2.bias": state[block + "ln2.b"],
            hf + "attn.c_attn.weight": torch.cat(qkv, dim=1),
            hf + "attn.c_attn.bias": torch.cat(
                [state[f"{block}attn.b_{x}"].flatten() for x in "QKV"]
            ),
            hf + "attn.c_proj.weight": state[block + "attn.W_O"].reshape(64, 64),
            hf + "attn.c_proj.bias": state[block + "attn.b_O"],
            hf + "mlp.c_fc.weight": state[block + "mlp.W_in"],
            hf + "mlp.c_fc.bias": state[block + "mlp.b_in"],
            hf + "mlp.c_proj.weight": state[block + "mlp.W_out"],
            hf + "mlp.c_proj.bias": state[block + "mlp.b_out"],
        }
    model = GPT2LMHeadModel(config)
    missing, unexpected = model.load_state_dict(weights, strict=False)
    assert not missing and not unexpected
    return model


def reference_scorer() -> cg.Scorer:
    """KL, resample ablation, noising: the reference's settings on its model and data."""
    model = _bridge("acdc-mlp2", _gpt2_from_state_dict(torch.load(DATA / "mlp2.pt")),
                    toy_tokenizer(), "cpu")  # fmt: skip
    model.cfg.default_prepend_bos = False
    data = torch.load(DATA / "data_n32_s8_v100_seed1.pt")
    n = data["clean"].shape[0]
    task = Task(
        name="acdc-reference", model_name=model.cfg.model_name, template="token ids",
        corruption="positions 1-3 resampled", seed=1,
        clean_tokens=data["clean"], corrupted_tokens=data["corrupt"],
        answer_ids=data["answers"], wrong_ids=data["wrong"], corrupted_answer_ids=data["wrong"],
        member_positions=torch.zeros(n, 0, dtype=torch.long),
        clean_prompts=[str(row.tolist()) for row in data["clean"]],
        corrupted_prompts=[str(row.tolist()) for row in data["corrupt"]],
        answers=[str(int(a)) for a in data["answers"]],
    )  # fmt: skip
    return cg.Scorer(model, task, metric="kl", ablation="resample")
