"""Checks a :class:`~circuitgraph.scoring.scorer.Scorer` runs once, on the full model, before
it scores anything: numbers it cannot compute exactly are refused, not printed.

- The full circuit must reproduce the model's own logits. Our functional forward pass rebuilds
  the model from its weights; a detail it does not model (an architecture variant, a model
  wrapped twice by ``TransformerBridge.boot_transformers``) would otherwise make every circuit's
  score silently wrong.
- The answers should be tokens the model predicts: single tokens it never ranks first
  (``"April"`` where the model writes ``" April"``) give healthy-looking logit differences on
  tokens that do not matter, so they are warned about.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch
from torch import Tensor

from circuitgraph.scoring.memory import slices

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model

# Largest |full circuit - model| / max(1, max |model logit|) accepted, by the model's dtype.
TOLERANCE = {
    torch.float64: 1e-6,
    torch.float32: 1e-3,
    torch.bfloat16: 0.1,
    torch.float16: 0.05,
}
RARELY_TOP1 = 0.05  # the model ranks the answer first on fewer clean prompts than this: warn
CHECK_CHUNK = 8  # prompts per forward pass of the model's own check


class FullCircuitMismatch(ValueError):
    """The full circuit does not reproduce the model's own logits."""


def model_logits_at(model: Model, tokens: Tensor, positions: Tensor | None) -> Tensor:
    """The model's own logits [n, vocab] at one position per prompt (tokens [n, p], positions
    [n] on the tokens' device; None: the last), a few prompts at a time so the [chunk, p,
    vocab] logits stay small."""
    rows = []
    # The model's own code may make tensors without a device: they go where its inputs are.
    with torch.no_grad(), torch.device(tokens.device):
        for part in slices(len(tokens), CHECK_CHUNK):
            out = model(tokens[part])
            logits = getattr(out, "logits", out)  # [chunk, p, vocab]
            if positions is None:
                rows.append(logits[:, -1])
            else:
                index = torch.arange(len(logits), device=logits.device)
                rows.append(logits[index, positions[part].to(logits.device)])
    return torch.cat(rows)


def check_full_circuit(
    circuit_logits: Tensor, model_logits: Tensor, dtype: torch.dtype, model_name: str
) -> float:
    """Refuse (:class:`FullCircuitMismatch`) when the full circuit's logits [n, vocab] differ
    from the model's own beyond the dtype's tolerance; returns the relative error."""
    model_logits = model_logits.to(circuit_logits.device, torch.float64)
    error = (circuit_logits.to(torch.float64) - model_logits).abs().max()
    relative = float(error / model_logits.abs().max().clamp(min=1.0))
    tolerance = TOLERANCE.get(dtype, 1e-3)
    if not relative <= tolerance:  # also catches NaN
        raise FullCircuitMismatch(
            f"the full circuit does not reproduce {model_name or 'the model'}'s own logits "
            f"(relative error {relative:.3g}, tolerance {tolerance:g} in {str(dtype)[6:]}), so "
            "every circuit score would be wrong. Causes: a model wrapped twice (load it with "
            "cg.load_model, or boot a fresh Hugging Face model), or an architecture detail "
            "circuitgraph does not model"
        )
    return relative


def warn_if_rarely_predicted(
    model_logits: Tensor, answer_ids: Tensor, answers: list[str], model_name: str
) -> float:
    """Warn when the model's top token is the answer on almost no clean prompt; returns the
    top-1 accuracy (logits [n, vocab], answer_ids [n])."""
    top1 = float((model_logits.argmax(-1) == answer_ids.to(model_logits.device)).float().mean())
    if top1 < RARELY_TOP1 and not model_name.startswith("random:"):
        shown = ", ".join(repr(a) for a in dict.fromkeys(answers[:5]))
        hint = (
            " (they have no leading space: the model may write them with one, e.g. ' April')"
            if answers and not any(a.startswith(" ") for a in answers)
            else ""
        )
        warnings.warn(
            f"{model_name or 'the model'} ranks the answer first on {100 * top1:.0f}% of the "
            f"clean prompts: answers such as {shown} may not be what it predicts{hint}. Scores "
            "would measure tokens the model does not use; check the answers, or keep the prompts "
            "it gets right with make_task(..., filter=True) / --filter",
            UserWarning,
            stacklevel=3,
        )
    return top1
