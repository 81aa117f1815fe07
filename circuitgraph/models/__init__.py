"""Model loading: TransformerLens names, the embedded models, random presets, placement on
devices, and the machine they run on (devices, dtypes, the Hugging Face hub)."""

from circuitgraph.models.environment import ModelLoadError, model_device
from circuitgraph.models.loading import (
    RANDOM_PRESETS,
    TOY_DIR,
    list_models,
    load_model,
    smollm2_gguf_path,
)

__all__ = [
    "RANDOM_PRESETS",
    "TOY_DIR",
    "ModelLoadError",
    "list_models",
    "load_model",
    "model_device",
    "smollm2_gguf_path",
]
