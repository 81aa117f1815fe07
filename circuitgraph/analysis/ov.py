"""OV-circuit scores: which heads copy a sequence member, and which map it to its successor.

Following the paper (and Gould et al.'s successor heads): embed each member token, optionally
pass it through MLP0 (``resid = embed + mlp0(embed)``, the "effective embedding"), then through
one head's OV circuit (``ln1`` -> ``W_V`` of its key/value head (+ ``b_V``) -> ``W_O``) and the
unembedding (final norm + ``W_U``, via ``ComponentModel.unembed``). A head *copies* when the
member's own token is in the top k of the resulting logits, and is a *successor head* when the
next member is. The layer-wide output bias ``b_O`` is left out: it belongs to no single head.

Member tokens are spelled as the task's prompts spell them for this model's family (SmolLM2
words carry a leading space, its digits do not; the toy tokenizer uses bare words), by reusing
the prompt encoder of ``circuitgraph.tasks``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import pandas as pd
import torch
from torch import Tensor

from circuitgraph.analysis._common import HeadRef, resolve_heads, token_str
from circuitgraph.scoring.components import ComponentModel
from circuitgraph.tasks import TASKS, TEMPLATES, Family, model_family
from circuitgraph.tasks.templates import PromptEncoder, Slot

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model
    from circuitgraph.tasks.task import Task

__all__ = ["MemberTokens", "member_tokens", "ov_logits", "ov_predictions", "ov_scores"]


@dataclass(frozen=True)
class MemberTokens:
    """Ordered sequence members that are single tokens, and their successor pairs.

    ``successors[i]`` is the index (into ``values``) of the member after ``values[i]``, or -1
    when it has none (end of a non-cyclic list, or the next value is not a single token).
    """

    name: str
    values: list[str]
    ids: Tensor  # [m] long
    successors: Tensor  # [m] long, -1 = none

    def __len__(self) -> int:
        return len(self.values)


def member_tokens(
    model: Model,
    task: str | Task | Sequence[str] = "digits",
    template: str | None = None,
    cyclic: bool | None = None,
) -> MemberTokens:
    """Token ids of a task's ordered members as its prompts spell them for ``model``.

    ``task`` is a task name (``"months"``), a ``Task`` (its name and template are used) or an
    explicit ordered list of values (``cyclic`` then defaults to False). Values that are not a
    single token are dropped; successor pairs only join consecutive values that both survive.
    """
    try:
        family = Family(model_family(model))
    except ValueError:
        family = Family.OTHER
    if isinstance(task, str):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; known tasks: {', '.join(TASKS)}")
        spec = TASKS[task]
        name, values = task, list(spec.values)
        wrap = spec.cyclic if cyclic is None else cyclic
        template = template or spec.default_template(family)
    elif hasattr(task, "clean_tokens"):
        task = cast("Task", task)  # a Task (or one alike)
        if task.name not in TASKS:
            raise ValueError(f"task {task.name!r} has no registered member list; pass the values")
        spec = TASKS[task.name]
        name, values = task.name, list(spec.values)
        wrap = spec.cyclic if cyclic is None else cyclic
        template = template or task.template
    else:
        values = [str(v) for v in cast("Sequence[str]", task)]  # the explicit values
        name, wrap = "custom", bool(cyclic)
        template = template or "list"
    if template not in TEMPLATES:
        raise ValueError(f"unknown template {template!r}; known: {', '.join(TEMPLATES)}")
    encoder = PromptEncoder(model.tokenizer, TEMPLATES[template], 1, family is Family.TOY)
    good = set(encoder.choose_mode(Slot.MEMBER, values))
    kept = [i for i, value in enumerate(values) if value in good]
    if len(kept) < 2:
        raise ValueError(
            f"task {name!r}: fewer than two members are single tokens for this tokenizer"
        )
    index = {original: new for new, original in enumerate(kept)}
    size = len(values)
    successors = []
    for original in kept:
        nxt = original + 1 if original + 1 < size else (0 if wrap else None)
        successors.append(index.get(nxt, -1) if nxt is not None else -1)
    ids = [encoder.answer_token(values[i]) for i in kept]
    return MemberTokens(
        name,
        [values[i] for i in kept],
        torch.tensor(ids, dtype=torch.long),
        torch.tensor(successors, dtype=torch.long),
    )


@torch.no_grad()
def _effective_embedding(comp: ComponentModel, ids: Tensor, mlp0: bool) -> Tensor:
    """ids [m] -> token embedding (+ MLP0 of it) [m, d_model]; no position embedding."""
    device = comp.W_U.device
    embed = comp.model.embed(ids[None].to(device))[0].float()  # [m, d_model]
    if mlp0:
        embed = embed + comp.mlp(0, embed[None])[0]
    return embed


@torch.no_grad()
def _layer_ov_logits(comp: ComponentModel, resid: Tensor, layer: int, heads: list[int]) -> Tensor:
    """resid [m, d_model] through the OV circuits of ``heads`` of ``layer`` -> [h, m, vocab]."""
    normed = comp.ln1[layer](resid[None])[0]  # [m, d_model]
    kv = torch.tensor(heads) // comp.group_size  # key/value head of each query head
    v = torch.einsum("md,hde->hme", normed, comp.W_V[layer][kv]) + comp.b_V[layer][kv][:, None]
    out = torch.einsum("hme,hed->hmd", v, comp.W_O[layer][heads])  # [h, m, d_model]
    h, m, d = out.shape
    return comp.unembed(out.reshape(h * m, d)).reshape(h, m, -1)


def _pessimistic_rank(logits: Tensor, targets: Tensor) -> Tensor:
    """Rank (0 = top) of ``targets`` [..., ] in logits [..., vocab]; ties count against it."""
    target = logits.gather(-1, targets[..., None])  # [..., 1]
    return (logits >= target).sum(dim=-1) - 1


@torch.no_grad()
def ov_logits(
    model: Model, ids: Tensor, heads: str | Iterable[str] | None = None, mlp0: bool = True
) -> tuple[list[HeadRef], Tensor]:
    """Logits [heads, m, vocab] of token ids [m] sent through each head's OV circuit."""
    comp = ComponentModel(model)
    refs = resolve_heads(model.cfg, heads)
    resid = _effective_embedding(comp, ids, mlp0)
    out = torch.empty(len(refs), len(ids), comp.W_U.shape[1])
    for layer in sorted({r.layer for r in refs}):
        slots = [j for j, r in enumerate(refs) if r.layer == layer]
        out[slots] = _layer_ov_logits(comp, resid, layer, [refs[j].head for j in slots]).cpu()
    return refs, out


@torch.no_grad()
def ov_scores(
    model: Model,
    task: str | Task | Sequence[str] = "digits",
    heads: str | Iterable[str] | None = None,
    k: int = 5,
    mlp0: bool = True,
    template: str | None = None,
    cyclic: bool | None = None,
) -> pd.DataFrame:
    """Copy and successor scores of every head (or ``heads``), ranked successor heads first.

    Columns: ``copy_score`` (fraction of members whose own token is in the top ``k``),
    ``successor_score`` (fraction of members with a successor whose successor token is in the
    top ``k``), the mean ranks of both (0 = top token, over the whole vocabulary; ties count
    against the target, so a head that writes nothing scores 0), and ``rank`` (1 = strongest
    successor head).
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    members = member_tokens(model, task, template, cyclic)
    comp = ComponentModel(model)
    refs = resolve_heads(model.cfg, heads)
    resid = _effective_embedding(comp, members.ids, mlp0)
    has_next = members.successors >= 0
    ids = members.ids.to(comp.W_U.device)
    next_ids = ids[members.successors.clamp(min=0)]
    copy_rank = torch.empty(len(refs), len(members))
    next_rank = torch.empty(len(refs), len(members))
    for layer in sorted({r.layer for r in refs}):
        slots = [j for j, r in enumerate(refs) if r.layer == layer]
        logits = _layer_ov_logits(comp, resid, layer, [refs[j].head for j in slots])
        h = len(slots)
        copy_rank[slots] = _pessimistic_rank(logits, ids.expand(h, -1)).float().cpu()
        next_rank[slots] = _pessimistic_rank(logits, next_ids.expand(h, -1)).float().cpu()
    next_rank = next_rank[:, has_next]
    table = pd.DataFrame(
        {
            "head": [r.name for r in refs],
            "layer": [r.layer for r in refs],
            "head_index": [r.head for r in refs],
            "task": members.name,
            "copy_score": (copy_rank < k).float().mean(dim=1).numpy(),
            "successor_score": (next_rank < k).float().mean(dim=1).numpy(),
            "copy_mean_rank": copy_rank.mean(dim=1).numpy(),
            "successor_mean_rank": next_rank.mean(dim=1).numpy(),
        }
    )
    table = table.sort_values(
        ["successor_score", "successor_mean_rank"], ascending=[False, True], ignore_index=True
    )
    table["rank"] = range(1, len(table) + 1)
    return table


@torch.no_grad()
def ov_predictions(
    model: Model,
    head: str,
    task: str | Task | Sequence[str] = "digits",
    k: int = 5,
    mlp0: bool = True,
    template: str | None = None,
    cyclic: bool | None = None,
) -> pd.DataFrame:
    """One head's OV circuit member by member: its top-k tokens and where copy/successor rank.

    E.g. a successor head maps ``"4"`` to top tokens ``["5", "6", ...]``.
    """
    members = member_tokens(model, task, template, cyclic)
    refs, logits = ov_logits(model, members.ids, [head], mlp0)
    logits = logits[0]  # [m, vocab]
    top = logits.topk(k, dim=-1).indices  # [m, k]
    copy_rank = _pessimistic_rank(logits, members.ids)
    next_ids = members.ids[members.successors.clamp(min=0)]
    next_rank = _pessimistic_rank(logits, next_ids)
    rows = []
    for i, value in enumerate(members.values):
        nxt = int(members.successors[i])
        rows.append(
            {
                "head": refs[0].name,
                "member": value,
                "successor": members.values[nxt] if nxt >= 0 else None,
                "top_tokens": [token_str(model.tokenizer, t) for t in top[i]],
                "copy_rank": int(copy_rank[i]),
                "successor_rank": int(next_rank[i]) if nxt >= 0 else None,
            }
        )
    return pd.DataFrame(rows)
