"""Tasks from token ids (:meth:`Task.from_tokens`), for models without a tokenizer (compiled
tracr models) or prompts you tokenised yourself, and metrics read at chosen positions.

A task reads one position per row. Reading several positions of a prompt (``positions=``)
gives that prompt one row per position, all of them running the same tokens: the patching
engines then need nothing new, and every metric averages over a prompt's positions first and
over prompts second (``Task.prompt_ids`` groups the rows; see :meth:`Task.row_weights`).
The rows of one prompt share its text, so the bootstrap and the held-out split treat them
as one prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from circuitgraph.tasks.custom import model_name
from circuitgraph.tasks.task import Task

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model

Positions = str | Sequence[int] | None


def _rows_of_ids(label: str, values: Any) -> list[list[int]]:
    """Integer rows from a [n, p] tensor or a list of lists (rows may differ in length)."""
    if isinstance(values, torch.Tensor):
        if values.dim() != 2 or values.dtype.is_floating_point or values.dtype == torch.bool:
            raise ValueError(f"{label} must be an integer tensor [n, p], got {values.dtype} "
                             f"{tuple(values.shape)}")  # fmt: skip
        return values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) or not values:
        raise ValueError(f"{label} must be token ids: an integer tensor [n, p] or lists of ints")
    rows = []
    for i, row in enumerate(values):
        if isinstance(row, torch.Tensor):
            row = row.tolist()
        if isinstance(row, (str, bytes)) or not isinstance(row, Sequence) or not row:
            raise ValueError(f"{label} row {i} must be a non-empty list of token ids")
        if not all(isinstance(t, int) and not isinstance(t, bool) for t in row):
            raise ValueError(f"{label} row {i} holds something other than integer token ids")
        rows.append(list(row))
    return rows


def _check_range(label: str, rows: list[list[int]], size: int, what: str) -> None:
    bad = [(i, t) for i, row in enumerate(rows) for t in row if not 0 <= t < size]
    if bad:
        i, t = bad[0]
        raise ValueError(f"{label} row {i} has id {t}, outside the model's {what} [0, {size})")


def read_positions(positions: Positions, lengths: list[int]) -> list[list[int]]:
    """Per prompt, the positions its metric reads: None: its last real token; ``"all"``:
    every position after the first (the BOS position, as in tracr and ACDC); a list: those
    positions in every prompt (negative ones count back from its last real token).

    >>> read_positions("all", [4, 3]), read_positions([-1, 1], [4, 3])
    ([[1, 2, 3], [1, 2]], [[3, 1], [2, 1]])
    """
    if positions is None:
        return [[k - 1] for k in lengths]
    if isinstance(positions, str):
        if positions != "all":
            raise ValueError(f"positions must be None, 'all' or a list of ints, got {positions!r}")
        short = [i for i, k in enumerate(lengths) if k < 2]
        if short:
            raise ValueError(f"positions='all' reads after the first (BOS) position; prompt "
                             f"{short[0]} has only {lengths[short[0]]} token")  # fmt: skip
        return [list(range(1, k)) for k in lengths]
    if isinstance(positions, (bytes, torch.Tensor)) or not isinstance(positions, Sequence):
        raise ValueError(f"positions must be None, 'all' or a list of ints, got {positions!r}")
    wanted = list(positions)
    if not wanted or not all(isinstance(p, int) and not isinstance(p, bool) for p in wanted):
        raise ValueError(f"positions must be a non-empty list of ints, got {positions!r}")
    if len(set(wanted)) != len(wanted):
        raise ValueError(f"positions {wanted} repeat a position")
    out = []
    for i, k in enumerate(lengths):
        row = [p if p >= 0 else k + p for p in wanted]
        if not all(0 <= p < k for p in row):
            raise ValueError(f"positions {wanted} do not all exist in prompt {i} ({k} tokens)")
        out.append(row)
    return out


def _per_read(label: str, values: Any, reads: list[list[int]]) -> list[int]:
    """One answer id per read row from [n] (one position per prompt) or [n, K] values."""
    if isinstance(values, torch.Tensor):
        values = values.tolist()
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence):
        raise ValueError(f"{label} must be token ids, one per prompt or per read position")
    if len(values) != len(reads):
        raise ValueError(f"{label} has {len(values)} rows for {len(reads)} prompts")
    out = []
    for i, (value, positions) in enumerate(zip(values, reads, strict=True)):
        row = [value] if isinstance(value, int) else list(value)
        if len(row) != len(positions) or not all(isinstance(t, int) for t in row):
            raise ValueError(
                f"{label} row {i} needs {len(positions)} integer id(s), one per read position"
            )
        out.extend(row)
    return out


def task_from_tokens(
    model: Model,
    clean: Any,
    corrupted: Any,
    answers: Any = None,
    wrong: Any = None,
    positions: Positions = None,
    name: str = "tokens",
    pad_id: int = 0,
) -> Task:
    """A :class:`Task` from token ids; see :meth:`Task.from_tokens`."""
    clean_rows, corrupted_rows = _rows_of_ids("clean", clean), _rows_of_ids("corrupted", corrupted)
    n = len(clean_rows)
    if len(corrupted_rows) != n:
        raise ValueError(f"{n} clean prompts but {len(corrupted_rows)} corrupted ones")
    cfg = getattr(model, "cfg", None)
    d_vocab = int(getattr(cfg, "d_vocab", 0) or 0)
    d_vocab_out = int(getattr(cfg, "d_vocab_out", 0) or 0)
    if d_vocab_out <= 0:
        d_vocab_out = d_vocab
    for label, rows in (("clean", clean_rows), ("corrupted", corrupted_rows)):
        if d_vocab:
            _check_range(label, rows, d_vocab, "vocabulary")
    unequal = [i for i in range(n) if len(clean_rows[i]) != len(corrupted_rows[i])]
    if unequal:
        raise ValueError(f"a clean prompt and its corrupted prompt must have the same length "
                         f"(activations are patched position by position); rows {unequal[:5]} "
                         "differ")  # fmt: skip
    lengths = [len(row) for row in clean_rows]
    n_ctx = getattr(cfg, "n_ctx", None)
    if isinstance(n_ctx, int) and max(lengths) > n_ctx:
        raise ValueError(f"prompts of {max(lengths)} tokens are longer than the model reads "
                         f"({n_ctx}, n_ctx)")  # fmt: skip
    reads = read_positions(positions, lengths)
    has_answers = answers is not None
    if has_answers != (wrong is not None):
        raise ValueError(
            "give answers and wrong together (the logit difference needs both), or neither "
            "(then only the KL and L2 metrics apply)"
        )
    if has_answers:
        answer_ids, wrong_ids = (
            _per_read("answers", answers, reads),
            _per_read("wrong", wrong, reads),
        )
        if d_vocab_out:
            _check_range("answers", [answer_ids], d_vocab_out, "output vocabulary")
            _check_range("wrong", [wrong_ids], d_vocab_out, "output vocabulary")
        same = [i for i, (a, w) in enumerate(zip(answer_ids, wrong_ids, strict=True)) if a == w]
        if same:
            raise ValueError(f"read rows {same[:5]} have the same answer and wrong answer: their "
                             "logit difference is always 0")  # fmt: skip
    prompt_of = [i for i, row in enumerate(reads) for _ in row]
    width = max(lengths)

    def padded(rows: list[list[int]]) -> torch.Tensor:
        return torch.tensor(
            [rows[i] + [pad_id] * (width - len(rows[i])) for i in prompt_of], dtype=torch.long
        )

    def text(row: list[int]) -> str:
        return " ".join(map(str, row))

    rows = len(prompt_of)
    zeros = torch.zeros(rows, dtype=torch.long)
    ragged = len(set(lengths)) > 1
    return Task(
        name=name,
        model_name=model_name(model),
        template="tokens",
        corruption="custom",
        seed=0,
        clean_tokens=padded(clean_rows),
        corrupted_tokens=padded(corrupted_rows),
        answer_ids=torch.tensor(answer_ids) if has_answers else zeros,
        wrong_ids=torch.tensor(wrong_ids) if has_answers else zeros,
        corrupted_answer_ids=torch.tensor(wrong_ids) if has_answers else zeros,
        member_positions=torch.zeros(rows, 0, dtype=torch.long),
        clean_prompts=[text(clean_rows[i]) for i in prompt_of],
        corrupted_prompts=[text(corrupted_rows[i]) for i in prompt_of],
        answers=[str(a) for a in answer_ids] if has_answers else [""] * rows,
        lengths=torch.tensor([lengths[i] for i in prompt_of]) if ragged else None,
        read_positions=torch.tensor([p for row in reads for p in row], dtype=torch.long),
        prompt_ids=torch.tensor(prompt_of, dtype=torch.long),
        has_answers=has_answers,
    )
