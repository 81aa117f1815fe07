"""Attention patterns of chosen heads over a task's prompts, and what they attend to.

The paper names heads by role: 4.4 and 1.5 "attend to earlier sequence members", 7.11 "moves
sequence information to the last token". These tables make such claims checkable: the mean
pattern per head, the key each query row attends to most (with token strings), and per-head
scores for previous-member, previous-token, offset and induction-style attention.

>>> import circuitgraph as cg
>>> model = cg.load_model("random:gpt2-tiny")
>>> task = cg.make_task("digits", model, n=4)
>>> patterns = attention_patterns(model, task, heads=["a1.0"])
>>> patterns.pattern.shape
torch.Size([1, 4, 13, 13])
>>> list(patterns.scores().columns[:4])
['head', 'layer', 'head_index', 'prev_member']
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
import torch
from torch import Tensor

from circuitgraph.analysis._common import (
    HeadRef,
    cached,
    check_task_model,
    position_labels,
    resolve_heads,
    resolve_positions,
    token_str,
)

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model
    from circuitgraph.tasks.task import Task

__all__ = [
    "AttentionPatterns",
    "attention_offsets",
    "attention_patterns",
    "attention_scores",
    "mean_attention",
    "top_keys",
]


@dataclass(frozen=True)
class AttentionPatterns:
    """Attention patterns of some heads on every prompt of a task.

    ``pattern`` [heads, n, query, key]: row ``q`` of prompt ``i`` of head ``heads[j]`` is
    ``pattern[j, i, q]`` (sums to 1 over keys ``<= q``). ``labels`` name each position for the
    mean pattern (a shared token, ``<m1>`` for a member, or ``<varies>``).
    """

    heads: list[HeadRef]
    pattern: Tensor  # [heads, n, q, k]
    tokens: Tensor  # [n, seq]
    member_positions: Tensor  # [n, n_members]
    labels: list[str]
    tokenizer: Any
    last_positions: Tensor | None = None  # [n] each prompt's last real token (None: seq - 1)

    @property
    def seq_len(self) -> int:
        return self.tokens.shape[1]

    def index(self, head: str | HeadRef) -> int:
        """Row of ``head`` in ``pattern``; ValueError if it was not computed."""
        name = head.name if isinstance(head, HeadRef) else head
        names = [h.name for h in self.heads]
        if name not in names:
            raise ValueError(f"head {name!r} is not among the computed heads {names}")
        return names.index(name)

    def matrix(self, head: str | HeadRef, prompt: int | None = None) -> tuple[Tensor, list[str]]:
        """The [q, k] pattern of ``head`` (mean over prompts, or one prompt) and position labels."""
        j = self.index(head)
        if prompt is None:
            return self.pattern[j].mean(dim=0), self.labels
        n = self.tokens.shape[0]
        if not -n <= prompt < n:
            raise ValueError(f"prompt {prompt} is outside the task's {n} prompts")
        labels = [token_str(self.tokenizer, t) for t in self.tokens[prompt]]
        return self.pattern[j, prompt], labels

    def mean_table(self, prompt: int | None = None) -> pd.DataFrame:
        """One row per head, query and key (k <= q): the mean weight over prompts (or the
        weight in one ``prompt``)."""
        qs, ks = torch.tril_indices(self.seq_len, self.seq_len)  # [pairs] each
        frames = []
        for ref in self.heads:
            matrix, labels = self.matrix(ref, prompt)
            frames.append(
                pd.DataFrame(
                    {
                        "head": ref.name,
                        "layer": ref.layer,
                        "head_index": ref.head,
                        "query_pos": qs.numpy(),
                        "query": [labels[q] for q in qs.tolist()],
                        "key_pos": ks.numpy(),
                        "key": [labels[k] for k in ks.tolist()],
                        "weight": matrix[qs, ks].double().numpy(),
                    }
                )
            )
        return pd.concat(frames, ignore_index=True)

    def top_keys(
        self, prompt: int | None = None, queries: int | Iterable[int] | None = None
    ) -> pd.DataFrame:
        """Per head and query row: the key with the highest weight (argmax of the row).

        With ``prompt`` the labels are that prompt's tokens ("for the row April, March is the
        highest key"); without, the mean pattern and position labels are used. ``runner_up``
        is the second key, to judge how clear the choice is.
        """
        rows = []
        chosen = resolve_positions(queries, self.seq_len)
        for ref in self.heads:
            matrix, labels = self.matrix(ref, prompt)
            for q in chosen:
                row = matrix[q, : q + 1]
                values, keys = row.topk(min(2, q + 1))
                second = (-1, "", 0.0)
                if q:
                    second = (int(keys[1]), labels[int(keys[1])], float(values[1]))
                k = int(keys[0])
                rows.append(
                    (ref.name, ref.layer, ref.head, q, labels[q], k, labels[k], float(values[0]))
                    + second
                )
        columns = ["head", "layer", "head_index", "query_pos", "query", "key_pos", "key"]
        columns += ["weight", "runner_up_pos", "runner_up", "runner_up_weight"]
        return pd.DataFrame(rows, columns=columns)

    def scores(self) -> pd.DataFrame:
        """Per head: mean attention mass on sequence-continuation patterns (higher = more).

        - ``prev_member``: from member i's position to member i-1's position;
        - ``last_to_last_member``: from the last position to the last member shown;
        - ``last_to_members``: from the last position to all members together;
        - ``prev_token``: from each position to the one before it;
        - ``member_offset``: from each position to the same slot one item earlier (offset =
          spacing of the members, 2 in ``"1 , 2 , 3 ,"``);
        - ``induction``: from each position q to the tokens right after earlier occurrences
          of q's token (averaged over positions whose token occurred before).
        """
        P = self.pattern  # [S, n, q, k]
        S, n, seq, _ = P.shape
        members = self.member_positions  # [n, m]
        rows = torch.arange(n)[:, None]
        out = pd.DataFrame(
            {
                "head": [h.name for h in self.heads],
                "layer": [h.layer for h in self.heads],
                "head_index": [h.head for h in self.heads],
            }
        )
        if members.shape[1] >= 2:
            to_prev = P[:, rows, members[:, 1:], members[:, :-1]]  # [S, n, m-1]
            out["prev_member"] = to_prev.mean(dim=(1, 2)).numpy()
        else:
            out["prev_member"] = float("nan")
        last = self.last_positions if self.last_positions is not None else seq - 1
        last = torch.as_tensor(last).expand(n)[:, None]  # [n, 1]: each prompt's own last row
        if members.shape[1]:
            to_last = P[:, rows[:, 0], last[:, 0], members[:, -1]]  # [S, n]
            out["last_to_last_member"] = to_last.mean(dim=1).numpy()
            out["last_to_members"] = P[:, rows, last, members].sum(dim=2).mean(dim=1).numpy()
        else:  # a task without sequence members (ioi, induction, your own)
            out["last_to_last_member"] = out["last_to_members"] = float("nan")
        out["prev_token"] = _offset_mass(P, 1).numpy()
        spacing = _member_spacing(members)
        out["member_offset"] = _offset_mass(P, spacing).numpy() if spacing else float("nan")
        out["induction"] = _induction_mass(P, self.tokens).numpy()
        return out

    def offsets(self, max_offset: int | None = None) -> pd.DataFrame:
        """Per head and offset d: mean weight from position q to q - d (over q >= d)."""
        top = self.seq_len - 1 if max_offset is None else min(max_offset, self.seq_len - 1)
        rows = []
        for d in range(top + 1):
            mass = _offset_mass(self.pattern, d)
            for ref, value in zip(self.heads, mass.tolist(), strict=True):
                rows.append((ref.name, ref.layer, ref.head, d, value))
        return pd.DataFrame(rows, columns=["head", "layer", "head_index", "offset", "weight"])

    def plot(self, path: str | Path, heads: Iterable[str] | None = None, **kwargs: Any) -> Path:
        """Heat maps of the mean pattern of ``heads`` (default: all computed) into ``path``."""
        from circuitgraph.analysis.plots import plot_attention

        return plot_attention(self, path, heads=heads, **kwargs)


def _offset_mass(P: Tensor, offset: int) -> Tensor:
    """P [S, n, q, k] -> mean over prompts and q >= offset of P[q, q - offset]; [S]."""
    seq = P.shape[-1]
    if offset >= seq:
        return torch.full((P.shape[0],), float("nan"))
    return P.diagonal(offset=-offset, dim1=-2, dim2=-1).mean(dim=(1, 2))


def _member_spacing(members: Tensor) -> int | None:
    """The constant distance between consecutive members, if there is one."""
    if members.shape[1] < 2:
        return None
    gaps = members[:, 1:] - members[:, :-1]
    return int(gaps[0, 0]) if bool((gaps == gaps[0, 0]).all()) else None


def _induction_mass(P: Tensor, tokens: Tensor) -> Tensor:
    """Mass from q on keys j + 1 where tokens[j] == tokens[q], j < q; [S] (NaN if none)."""
    n, seq = tokens.shape
    same = tokens[:, :, None] == tokens[:, None, :]  # [n, q, j]
    earlier = torch.ones(seq, seq, dtype=torch.bool).tril(diagonal=-1)  # j < q
    previous = same & earlier  # [n, q, j]
    target = torch.zeros(n, seq, seq, dtype=torch.bool)  # [n, q, k]: k = j + 1
    target[:, :, 1:] = previous[:, :, :-1]
    has = target.any(dim=-1)  # [n, q]
    if not bool(has.any()):
        return torch.full((P.shape[0],), float("nan"))
    mass = (P * target).sum(dim=-1)  # [S, n, q]
    return (mass * has).sum(dim=(1, 2)) / has.sum()


@torch.no_grad()
def attention_patterns(
    model: Model,
    task: Task,
    heads: str | Iterable[str] | None = None,
    corrupted: bool = False,
    batch_size: int = 32,
) -> AttentionPatterns:
    """Attention patterns of ``heads`` (default: all) on the task's clean (or corrupted) prompts."""
    check_task_model(model, task)
    refs = resolve_heads(model.cfg, heads)
    tokens = task.corrupted_tokens if corrupted else task.clean_tokens
    layers = sorted({ref.layer for ref in refs})
    names = [f"blocks.{layer}.attn.hook_pattern" for layer in layers]
    acts = cached(model, tokens, names, batch_size)  # name -> [n, H, q, k]
    pattern = torch.stack(
        [acts[f"blocks.{ref.layer}.attn.hook_pattern"][:, ref.head] for ref in refs]
    )
    labels = position_labels(model.tokenizer, tokens, task.member_positions)
    last = task.last_positions if task.ragged else None
    return AttentionPatterns(
        refs, pattern, tokens, task.member_positions, labels, model.tokenizer, last
    )


def mean_attention(
    model: Model, task: Task, heads: str | Iterable[str] | None = None, prompt: int | None = None
) -> pd.DataFrame:
    """Tidy mean attention pattern: one row per head, query and key (see ``mean_table``)."""
    return attention_patterns(model, task, heads).mean_table(prompt)


def top_keys(
    model: Model,
    task: Task,
    heads: str | Iterable[str] | None = None,
    prompt: int | None = None,
    queries: int | Iterable[int] | None = None,
) -> pd.DataFrame:
    """For each head and query row, the most-attended key with token strings."""
    return attention_patterns(model, task, heads).top_keys(prompt, queries)


def attention_scores(
    model: Model, task: Task, heads: str | Iterable[str] | None = None, sort_by: str | None = None
) -> pd.DataFrame:
    """Per-head previous-member / previous-token / induction scores (see ``scores``)."""
    table = attention_patterns(model, task, heads).scores()
    if sort_by is None:
        return table
    if sort_by not in table.columns[3:]:
        raise ValueError(f"cannot sort by {sort_by!r}; choose one of {list(table.columns[3:])}")
    return table.sort_values(sort_by, ascending=False, ignore_index=True)


def attention_offsets(
    model: Model,
    task: Task,
    heads: str | Iterable[str] | None = None,
    max_offset: int | None = None,
) -> pd.DataFrame:
    """Per head and relative offset: mean attention weight from q to q - offset."""
    return attention_patterns(model, task, heads).offsets(max_offset)
