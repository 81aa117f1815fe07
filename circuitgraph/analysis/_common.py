"""Helpers shared by the analyses: head names, positions, model/task checks, labels, figures.

Every analysis validates its inputs here, so a wrong head name, a position outside the prompt
or a task built for another model fails the same way everywhere (``ValueError`` naming the
problem) before any forward pass runs.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from circuitgraph.circuit.nodes import NodeKind, head_name, parse_node

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model
    from circuitgraph.tasks.task import Task

_HEAD_FORM = "expected a{L}.{H}, e.g. a0.1"


@dataclass(frozen=True, order=True)
class HeadRef:
    """One attention head of a model (validated against its config)."""

    layer: int
    head: int

    @property
    def name(self) -> str:
        """Canonical node name, e.g. ``a9.1``."""
        return head_name(self.layer, self.head)


def model_label(model: Model) -> str:
    """The name a model was loaded by (for error messages and task checks)."""
    return getattr(model, "circuitgraph_name", None) or str(getattr(model.cfg, "model_name", ""))


def resolve_heads(cfg: Any, heads: str | Iterable[str] | None) -> list[HeadRef]:
    """Head names -> validated ``HeadRef`` list (None: every head, in layer order).

    >>> import types
    >>> cfg = types.SimpleNamespace(n_layers=2, n_heads=3, model_name="m")
    >>> [h.name for h in resolve_heads(cfg, ["a1.2", "a0.0"])]
    ['a1.2', 'a0.0']
    >>> resolve_heads(cfg, ["a9.0"])
    Traceback (most recent call last):
    ...
    ValueError: unknown head 'a9.0': model 'm' has layers 0..1 and heads 0..2
    """
    n_layers, n_heads = int(cfg.n_layers), int(cfg.n_heads)
    if heads is None:
        return [HeadRef(layer, head) for layer in range(n_layers) for head in range(n_heads)]
    if isinstance(heads, str):
        heads = [heads]
    refs: list[HeadRef] = []
    for name in heads:
        try:
            node = parse_node(name)
        except ValueError:
            raise ValueError(f"not a head name: {name!r} ({_HEAD_FORM})") from None
        if node.kind is not NodeKind.HEAD or node.pos is not None:
            raise ValueError(f"{name!r} is not an attention head ({_HEAD_FORM})")
        assert node.layer is not None and node.head is not None  # a head has both
        if not (node.layer < n_layers and node.head < n_heads):
            raise ValueError(
                f"unknown head {name!r}: model {getattr(cfg, 'model_name', '?')!r} has layers "
                f"0..{n_layers - 1} and heads 0..{n_heads - 1}"
            )
        ref = HeadRef(node.layer, node.head)
        if ref not in refs:
            refs.append(ref)
    if not refs:
        raise ValueError("no heads given")
    return refs


def resolve_positions(positions: int | Iterable[int] | None, seq_len: int) -> list[int]:
    """Token positions (negative ones count from the end) -> sorted distinct positions.

    >>> resolve_positions([-1, 0], 5)
    [0, 4]
    >>> resolve_positions([7], 5)
    Traceback (most recent call last):
    ...
    ValueError: position 7 is outside the prompt of 5 tokens (use 0..4 or -5..-1)
    """
    if positions is None:
        return list(range(seq_len))
    if isinstance(positions, int):
        positions = [positions]
    chosen: set[int] = set()
    for raw in positions:
        try:
            pos = operator.index(raw)
        except TypeError:
            raise ValueError(f"position {raw!r} is not an integer") from None
        if isinstance(raw, bool):
            raise ValueError(f"position {raw!r} is not an integer")
        if not -seq_len <= pos < seq_len:
            raise ValueError(
                f"position {pos} is outside the prompt of {seq_len} tokens "
                f"(use 0..{seq_len - 1} or -{seq_len}..-1)"
            )
        chosen.add(pos % seq_len)
    if not chosen:
        raise ValueError("no positions given")
    return sorted(chosen)


def check_task_model(model: Model, task: Task, role: str = "task") -> None:
    """ValueError when ``task`` was tokenised for another model than ``model``."""
    built_for = getattr(task, "model_name", "")
    ours = str(getattr(model.cfg, "model_name", ""))
    if built_for and ours and built_for != ours:
        raise ValueError(
            f"{role} {task.name!r} was built for model {built_for!r}, not {ours!r}: "
            "make the task with the same model"
        )
    vocab = int(model.cfg.d_vocab)
    if int(task.clean_tokens.max()) >= vocab:
        raise ValueError(f"{role} {task.name!r} has token ids beyond the model's vocabulary")


def check_same_model_tasks(tasks: Sequence[Task]) -> None:
    """ValueError when the tasks were not all built for one model."""
    names = {getattr(task, "model_name", "") for task in tasks} - {""}
    if len(names) > 1:
        listing = ", ".join(f"{t.name!r}: {t.model_name!r}" for t in tasks)
        raise ValueError(f"tasks come from different models ({listing})")


def device_of(model: Model) -> torch.device:
    """Where the model's weights live."""
    return next(model.parameters()).device


def token_str(tokenizer: Any, token_id: int | Tensor) -> str:
    """Readable text of one token id (``" April"`` keeps its leading space)."""
    return tokenizer.decode([int(token_id)])


def position_labels(tokenizer: Any, tokens: Tensor, member_positions: Tensor) -> list[str]:
    """One label per position of a prompt set [n, seq]: the token when every prompt shares it,
    ``<m1>`` for the second sequence member, otherwise ``<varies>``."""
    members = {}
    if member_positions.numel() and bool((member_positions == member_positions[:1]).all()):
        members = {int(p): i for i, p in enumerate(member_positions[0])}
    labels = []
    for pos in range(tokens.shape[1]):
        column = tokens[:, pos]
        if bool((column == column[0]).all()):
            labels.append(token_str(tokenizer, column[0]))
        elif pos in members:
            labels.append(f"<m{members[pos]}>")
        else:
            labels.append("<varies>")
    return labels


@torch.no_grad()
def cached(
    model: Model, tokens: Tensor, names: Sequence[str], batch_size: int = 32
) -> dict[str, Tensor]:
    """Run ``tokens`` [n, seq] in batches and return the named hook activations (on CPU)."""
    device = device_of(model)
    wanted = set(names)
    parts: dict[str, list[Tensor]] = {name: [] for name in names}
    for lo in range(0, tokens.shape[0], batch_size):
        batch = tokens[lo : lo + batch_size].to(device)
        _, cache = model.run_with_cache(
            batch, names_filter=lambda name: name in wanted, logits_to_keep=1
        )
        for name in names:
            parts[name].append(cache[name].detach().float().cpu())
    return {name: torch.cat(chunks) for name, chunks in parts.items()}


@torch.no_grad()
def last_logits(
    model: Model,
    tokens: Tensor,
    hooks: Sequence[tuple[str, Callable[..., Any]]] = (),
) -> Tensor:
    """Logits at the last position [batch, vocab], with optional forward hooks."""
    tokens = tokens.to(device_of(model))
    logits = model.run_with_hooks(tokens, fwd_hooks=list(hooks), logits_to_keep=1)
    return logits[:, -1].float().cpu()
