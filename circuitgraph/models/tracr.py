"""The compiled tracr models of the ground-truth suite, as models: the stored weights
(``circuitgraph/data/tracr/<name>.npz``, TransformerLens layout) in a TL-native
``TransformerBridge``, for ``cg.load_model("tracr:<name>")``. Their tasks and known circuits
are :mod:`circuitgraph.ground_truth`'s; the records (``<name>.json``) are read here because
they hold each model's config. Needs torch and TransformerLens only (no tracr).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "tracr"
TL_KEYS = ("W_E", "W_pos", "W_Q", "W_K", "W_V", "W_O", "b_Q", "b_K", "b_V", "b_O",
           "W_in", "b_in", "W_out", "b_out", "W_U")  # fmt: skip


def list_ground_truth() -> list[str]:
    """Names of the compiled programs that ship with the package (sorted)."""
    return sorted(p.stem for p in DATA_DIR.glob("*.json") if (DATA_DIR / f"{p.stem}.npz").exists())


def _check_name(name: str) -> str:
    if not isinstance(name, str) or name not in list_ground_truth():
        raise ValueError(f"unknown ground-truth program {name!r}; known: {list_ground_truth()}")
    return name


@functools.lru_cache(maxsize=64)
def _record(name: str) -> str:
    return (DATA_DIR / f"{_check_name(name)}.json").read_text()


def load_record(name: str) -> dict[str, Any]:
    """The JSON record of program ``name`` (a fresh copy each call)."""
    return json.loads(_record(name))


@functools.lru_cache(maxsize=64)
def _arrays(name: str) -> dict[str, np.ndarray]:
    with np.load(DATA_DIR / f"{_check_name(name)}.npz") as data:
        return {key: data[key] for key in data.files}


def load_arrays(name: str) -> dict[str, np.ndarray]:
    """The weights (TransformerLens names: W_E, W_Q [L, H, d_model, d_head], ...) and tracr's
    outputs (``tracr_logits_clean`` ...) of program ``name``; treat them as read-only."""
    return _arrays(name)


def _state_dict(arrays: dict[str, np.ndarray], cfg: Any) -> dict[str, torch.Tensor]:
    """The stored TransformerLens-layout weights as a TL-native ``NativeModel`` state dict."""
    t = {k: torch.from_numpy(np.array(arrays[k], dtype=np.float32)) for k in TL_KEYS}
    n_layers, n_heads, d_model, d_head = t["W_Q"].shape
    state = {"tok_embed.weight": t["W_E"], "pos.weight": t["W_pos"], "head.weight": t["W_U"].T}
    for layer in range(n_layers):
        prefix = f"layers.{layer}"
        for letter in "qkv":
            w = t[f"W_{letter.upper()}"][layer]  # [H, d_model, d_head]
            state[f"{prefix}.attn.{letter}.weight"] = w.permute(0, 2, 1).reshape(-1, d_model)
            state[f"{prefix}.attn.{letter}.bias"] = t[f"b_{letter.upper()}"][layer].reshape(-1)
        state[f"{prefix}.attn.o.weight"] = t["W_O"][layer].reshape(-1, d_model).T
        state[f"{prefix}.attn.o.bias"] = t["b_O"][layer]
        state[f"{prefix}.mlp.fc_in.weight"] = t["W_in"][layer].T
        state[f"{prefix}.mlp.fc_in.bias"] = t["b_in"][layer]
        state[f"{prefix}.mlp.fc_out.weight"] = t["W_out"][layer].T
        state[f"{prefix}.mlp.fc_out.bias"] = t["b_out"][layer]
    return {k: v.contiguous() for k, v in state.items()}


def load_tracr_bridge(name: str, device: str | torch.device | None = None) -> Model:
    """A TL-native ``TransformerBridge`` with the compiled weights of program ``name``
    (float32, no normalisation, ReLU MLPs, causal or bidirectional attention as compiled;
    ``cfg.model_name`` is ``"tracr:<name>"``). Its logits are tracr's output before the
    argmax: ``[batch, seq, d_vocab_out]`` (one column for a numeric output).

    >>> model = load_tracr_bridge("proportion")
    >>> tuple(model(torch.tensor([[0, 3, 2, 3]])).shape)
    (1, 4, 1)
    """
    from transformer_lens.config import TransformerBridgeConfig
    from transformer_lens.model_bridge.sources._bridge_builder import build_bridge_from_module
    from transformer_lens.model_bridge.sources.native import NativeModel

    record = load_record(name)
    label = f"tracr:{name}"
    cfg = TransformerBridgeConfig.from_dict(
        {**record["config"], "model_name": label, "init_weights": False, "seed": None}
    )
    native = NativeModel(cfg)
    missing, unexpected = native.load_state_dict(_state_dict(load_arrays(name), cfg), strict=False)
    if unexpected or missing:
        raise RuntimeError(f"tracr weights of {name!r} do not fit the native model: missing "
                           f"{missing}, unexpected {unexpected}")  # fmt: skip
    native = native.eval()
    if device is not None:
        native = native.to(device)
    bridge = build_bridge_from_module(
        native, architecture="TransformerLensNative", tl_config=cfg, model_name=label,
        dtype=torch.float32, device=device,
    )  # fmt: skip
    head = bridge.original_model.head
    bias = getattr(head, "bias", None)
    if isinstance(bias, torch.Tensor):  # tracr's unembedding has none
        with torch.no_grad():
            bias.zero_()
    bridge.cfg.model_name = label
    return bridge.eval()
