"""``Model``: the type of the models circuitgraph works with, for annotations.

Every model :func:`~circuitgraph.models.load_model` returns is a TransformerLens
``TransformerBridge``; ``Model`` names that type without importing TransformerLens (nor
torch) at run time. Import it under ``if TYPE_CHECKING:`` in modules that must stay light
to import (``circuitgraph.circuit``, the CLI): importing this module runs
``circuitgraph.models``, which imports torch.

The bridge's typed members (``cfg``, ``W_Q`` ... ``W_U``, ``parameters()``, ``to_tokens``,
``run_with_cache``) are checked; the bridge resolves its components (``blocks``, ``embed``,
``ln_final`` ...) through ``__getattr__``, so those are ``Any`` to a type checker.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeAlias

if TYPE_CHECKING:
    from transformer_lens.model_bridge import TransformerBridge

Model: TypeAlias = "TransformerBridge"

__all__ = ["Model"]
