"""Seeded random models of known shapes, one per supported architecture family.

``random:<preset>[,key=value...]`` builds a transformers model from a config with random
weights (no download), so every family can be tested offline: the tiny presets for the test
suite, and presets with the real shapes of the models researchers use (GPT-2 small, SmolLM2,
Pythia-70M, Qwen2.5-0.5B) for memory and speed measurements.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from circuitgraph.models.environment import ModelLoadError

# Families buildable as random models, and whether circuitgraph can decompose them.
ARCHITECTURES = ("gpt2", "llama", "qwen2", "qwen3", "mistral", "phi3", "pythia", "gemma2")
ROTARY = ("llama", "qwen2", "qwen3", "mistral", "phi3", "pythia", "gemma2")


@dataclass(frozen=True)
class RandomPreset:
    """Shape of a random model of one architecture family (see :data:`ARCHITECTURES`)."""

    architecture: str
    n_layers: int
    n_heads: int
    d_model: int
    d_mlp: int
    n_key_value_heads: int | None = None
    vocab_size: int | None = None  # None: the toy tokenizer's vocabulary
    n_ctx: int = 128
    # Standard deviation of the random weights, in thousandths (transformers' default 0.02).
    # Larger values make heads and MLPs matter more (at 0.02 a tiny model is close to its
    # embeddings alone), which gives pruning benchmarks circuits worth finding.
    init: int = 20


def _tiny(architecture: str, kv: int | None = 2) -> RandomPreset:
    return RandomPreset(architecture, 2, 4, 64, 128, n_key_value_heads=kv)


RANDOM_PRESETS: dict[str, RandomPreset] = {
    "gpt2-tiny": RandomPreset("gpt2", n_layers=2, n_heads=4, d_model=64, d_mlp=256),
    "llama-tiny": _tiny("llama"),
    "qwen2-tiny": _tiny("qwen2"),
    "qwen3-tiny": _tiny("qwen3"),
    "mistral-tiny": _tiny("mistral"),
    "phi3-tiny": _tiny("phi3"),
    "pythia-tiny": _tiny("pythia", kv=None),
    "gemma2-tiny": _tiny("gemma2"),
    "gpt2-small": RandomPreset(
        "gpt2", n_layers=12, n_heads=12, d_model=768, d_mlp=3072, vocab_size=50257
    ),
    "smollm2-135m": RandomPreset(
        "llama", 30, 9, 576, 1536, n_key_value_heads=3, vocab_size=49152, n_ctx=512
    ),
    "pythia-70m": RandomPreset("pythia", 6, 8, 512, 2048, vocab_size=50304, n_ctx=2048),
    "qwen2.5-0.5b": RandomPreset(
        "qwen2", 24, 14, 896, 4864, n_key_value_heads=2, vocab_size=151936, n_ctx=2048
    ),
    "gemma-2-2b": RandomPreset(
        "gemma2", 26, 8, 2304, 9216, n_key_value_heads=4, vocab_size=256000, n_ctx=2048
    ),
}


def parse_random_name(name: str) -> tuple[RandomPreset, int]:
    """``random:<preset>[,key=value...]`` -> (preset with overrides, seed)."""
    spec = name.removeprefix("random:")
    preset_name, *overrides = spec.split(",")
    if preset_name not in RANDOM_PRESETS:
        raise ModelLoadError(
            f"unknown random preset {preset_name!r}; known: {', '.join(RANDOM_PRESETS)}"
        )
    preset = RANDOM_PRESETS[preset_name]
    fields = dict(preset.__dict__)
    seed = 0
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            raise ModelLoadError(f"bad override {item!r} in {name!r}: expected key=<integer>")
        if key == "seed":
            seed = int(value)
        elif key in fields and key != "architecture":
            fields[key] = int(value)
        else:
            allowed = sorted(k for k in fields if k != "architecture") + ["seed"]
            raise ModelLoadError(f"unknown override {key!r} in {name!r}; allowed: {allowed}")
    preset = RandomPreset(**fields)
    _check_preset(name, preset)
    return preset, seed


def _check_preset(name: str, preset: RandomPreset) -> None:
    """ModelLoadError for shapes that cannot make a model (zero sizes, uneven head splits)."""
    for key in ("n_layers", "n_heads", "d_model", "d_mlp", "n_ctx", "n_key_value_heads", "init"):
        value = getattr(preset, key)
        if value is not None and value < 1:
            raise ModelLoadError(f"{key}={value} in {name!r}: must be at least 1")
    if preset.vocab_size is not None and preset.vocab_size < 2:
        raise ModelLoadError(f"vocab_size={preset.vocab_size} in {name!r}: must be at least 2")
    if preset.d_model % preset.n_heads:
        raise ModelLoadError(
            f"d_model={preset.d_model} in {name!r} is not a multiple of n_heads={preset.n_heads}"
        )
    kv = preset.n_key_value_heads
    if kv is not None and preset.n_heads % kv:
        raise ModelLoadError(
            f"n_heads={preset.n_heads} in {name!r} is not a multiple of n_key_value_heads={kv}"
        )
    if preset.architecture in ROTARY and (preset.d_model // preset.n_heads) % 2:
        raise ModelLoadError(
            f"d_model / n_heads = {preset.d_model // preset.n_heads} in {name!r}: rotary "
            "embeddings need an even head size"
        )


def build_hf_model(preset: RandomPreset, vocab: int, special_ids: dict) -> torch.nn.Module:
    """A transformers causal LM of ``preset``'s family and shape, with random weights (seed the
    global generator first)."""
    import transformers

    if preset.architecture == "gpt2":
        config = transformers.GPT2Config(
            n_layer=preset.n_layers,
            n_head=preset.n_heads,
            n_embd=preset.d_model,
            n_inner=preset.d_mlp,
            vocab_size=vocab,
            n_positions=preset.n_ctx,
            initializer_range=preset.init / 1000,
            **special_ids,
        )
        return transformers.GPT2LMHeadModel(config)
    if preset.architecture == "pythia":  # GPT-NeoX: parallel attention + MLP, 25 % rotary
        config = transformers.GPTNeoXConfig(
            hidden_size=preset.d_model,
            intermediate_size=preset.d_mlp,
            num_hidden_layers=preset.n_layers,
            num_attention_heads=preset.n_heads,
            vocab_size=vocab,
            max_position_embeddings=preset.n_ctx,
            # transformers pops rotary_pct from **kwargs; its dataclass signature omits it
            rotary_pct=0.25,  # pyright: ignore[reportCallIssue]
            use_parallel_residual=True,
            initializer_range=preset.init / 1000,
            **special_ids,
        )
        return transformers.GPTNeoXForCausalLM(config)
    classes = {
        "llama": ("LlamaConfig", "LlamaForCausalLM"),
        "qwen2": ("Qwen2Config", "Qwen2ForCausalLM"),
        "qwen3": ("Qwen3Config", "Qwen3ForCausalLM"),
        "mistral": ("MistralConfig", "MistralForCausalLM"),
        "phi3": ("Phi3Config", "Phi3ForCausalLM"),
        "gemma2": ("Gemma2Config", "Gemma2ForCausalLM"),
    }
    config_class, model_class = (getattr(transformers, c) for c in classes[preset.architecture])
    config = config_class(
        hidden_size=preset.d_model,
        intermediate_size=preset.d_mlp,
        num_hidden_layers=preset.n_layers,
        num_attention_heads=preset.n_heads,
        num_key_value_heads=preset.n_key_value_heads or preset.n_heads,
        head_dim=preset.d_model // preset.n_heads,
        vocab_size=vocab,
        max_position_embeddings=preset.n_ctx,
        tie_word_embeddings=True,
        initializer_range=preset.init / 1000,
        **special_ids,
    )
    return model_class(config)
