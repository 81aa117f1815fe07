"""Models you built yourself, handed to circuitgraph: a ``TransformerBridge`` (from
``TransformerBridge.boot_transformers``, TransformerLens' native ``boot``, a compiled tracr
model), a Hugging Face ``PreTrainedModel`` (with its tokenizer), or a local Hugging Face
checkpoint directory.

Each comes back as the same kind of object the named models are: a bridge carrying
``circuitgraph_name``, ``circuitgraph_family`` and ``circuitgraph_prepend_bos``, every
parameter on one device in one supported dtype. What circuitgraph cannot compute exactly (an
attention variant or norm it does not model, weights split over devices) is refused here with
one line that names it: weights split over devices here, architecture details circuitgraph
does not model when a ``Scorer`` is built (its check of the full circuit against the model's
own logits catches anything else), never later as a wrong number.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from circuitgraph.models.environment import (
    ModelLoadError,
    offline_if,
    quiet_transformers,
    resolve_dtype,
)
from circuitgraph.models.placement import split_message

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model


# A checkpoint folder holds its tokenizer if it has one of these (AutoTokenizer otherwise
# builds an empty tokenizer from config.json alone).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")


def is_checkpoint_dir(source: object) -> bool:
    """Whether ``source`` names a local Hugging Face checkpoint (a folder with config.json)."""
    if not isinstance(source, (str, Path)) or not str(source):
        return False
    return (Path(source).expanduser() / "config.json").is_file()


def from_object(
    source: Any,
    name: str | None,
    device: str | None,
    dtype: str | torch.dtype | None,
    tokenizer: Any = None,
) -> Model:
    """A bridge ready for circuitgraph from ``source`` (a bridge, a PreTrainedModel or a
    checkpoint directory); ``device``/``dtype`` None keep where and what the weights are."""
    from transformer_lens.model_bridge import TransformerBridge

    if isinstance(source, TransformerBridge):
        if tokenizer is not None:
            raise ModelLoadError("tokenizer= applies to a PreTrainedModel, not to a bridge")
        bridge = source
    elif _is_pretrained(source):
        label = name or _hf_name(source)
        bridge = _wrap_pretrained(source, tokenizer, label)
    elif is_checkpoint_dir(source):
        bridge = _load_checkpoint(Path(source).expanduser(), tokenizer, name)
    else:
        raise ModelLoadError(
            f"cannot load a {type(source).__name__}: load_model takes a model name (see "
            "cg.list_models()), a local Hugging Face checkpoint folder (with config.json), a "
            "transformers PreTrainedModel with its tokenizer, or a TransformerLens "
            "TransformerBridge (e.g. from TransformerBridge.boot_transformers)"
        )
    return _prepare(bridge, name, device, dtype)


def _is_pretrained(source: Any) -> bool:
    try:
        from transformers import PreTrainedModel
    except ImportError:  # pragma: no cover - transformers is a dependency of TransformerLens
        return False
    return isinstance(source, PreTrainedModel)


def _hf_name(model: Any) -> str:
    config = getattr(model, "config", None)
    return str(
        getattr(config, "_name_or_path", "") or getattr(config, "model_type", "") or "custom"
    )


def _wrap_pretrained(hf_model: Any, tokenizer: Any, label: str) -> Model:
    """``TransformerBridge.boot_transformers`` around a model already in memory (offline: it
    needs nothing from the hub); an architecture TransformerLens has no adapter for is refused
    with its name."""
    from transformer_lens.model_bridge import TransformerBridge

    if tokenizer is None or not len(tokenizer):
        # TransformerLens would fetch a tokenizer named after the model from the hub
        raise ModelLoadError(
            f"{label!r} needs its tokenizer: pass tokenizer= (a transformers tokenizer whose "
            "ids are the model's vocabulary); tasks from token ids (Task.from_tokens) use "
            "no text, but the bridge needs one"
        )
    devices = sorted({str(p.device) for p in hf_model.parameters()})
    if len(devices) != 1 or devices == ["meta"]:
        raise ModelLoadError(split_message(f"the model {label!r}", devices))
    dtypes = {p.dtype for p in hf_model.parameters()}
    dtype = dtypes.pop() if len(dtypes) == 1 else torch.float32
    architecture = (getattr(hf_model.config, "architectures", None) or [type(hf_model).__name__])[0]
    try:
        with quiet_transformers(), offline_if(True):
            bridge = TransformerBridge.boot_transformers(
                label, hf_model=hf_model.eval(), tokenizer=tokenizer, device=devices[0], dtype=dtype
            )
    except Exception as error:
        raise ModelLoadError(
            f"TransformerLens cannot wrap {label!r} ({architecture}): {error}. circuitgraph "
            "runs the architectures TransformerLens' TransformerBridge supports"
        ) from error
    bridge.cfg.model_name = label
    return bridge


def _load_checkpoint(folder: Path, tokenizer: Any, name: str | None) -> Model:
    """A local checkpoint: AutoModelForCausalLM and (unless given) AutoTokenizer, offline."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    label = name or folder.resolve().name
    try:
        with quiet_transformers():
            hf_model = AutoModelForCausalLM.from_pretrained(
                folder, dtype=torch.float32, local_files_only=True
            )
    except Exception as error:
        raise ModelLoadError(
            f"could not load the checkpoint in {folder}: {type(error).__name__}: {error}"
        ) from error
    if tokenizer is None and any((folder / f).is_file() for f in TOKENIZER_FILES):
        try:
            tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
        except Exception:  # unreadable tokenizer files: refused below, naming the fix
            tokenizer = None
    return _wrap_pretrained(hf_model, tokenizer, label)


def _prepare(bridge: Model, name: str | None, device: str | None, dtype: Any) -> Model:
    """Name, place and check ``bridge`` the way named models are (see ``loading``)."""
    from circuitgraph.models.loading import _family_of, default_prepend_bos

    devices = sorted({str(p.device) for p in bridge.parameters()})
    if len(devices) != 1 or devices == ["meta"]:
        raise ModelLoadError(split_message("this model", devices))
    if device is not None:
        bridge.to(device)
    if dtype is not None:
        bridge.to(dtype=getattr(torch, resolve_dtype(dtype)))
    dtypes = sorted({str(p.dtype).removeprefix("torch.") for p in bridge.parameters()})
    if len(dtypes) != 1:
        raise ModelLoadError(f"the model has parameters in {dtypes}: pass dtype= to load_model")
    resolve_dtype(dtypes[0])  # a supported floating-point dtype, or ModelLoadError
    label = name or str(getattr(bridge.cfg, "model_name", "") or "custom")
    bridge.cfg.model_name = label
    bridge.cfg.device = str(next(bridge.parameters()).device)
    bridge.cfg.dtype = getattr(torch, dtypes[0])
    bridge.cfg.default_prepend_bos = False  # tasks add BOS themselves (see prepend_bos)
    bridge.circuitgraph_name = label
    bridge.circuitgraph_family = _family_of(bridge)
    bridge.circuitgraph_prepend_bos = default_prepend_bos(label, bridge)
    return bridge.eval()
