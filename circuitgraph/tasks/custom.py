"""Tasks from the user's own prompts: Python lists, CSV or JSONL files.

Each row is a clean prompt, its corrupted prompt, the answer (the clean prompt's correct next
token) and a wrong answer for the logit difference (by default the corrupted prompt's answer).
Answers are given as text, the way :attr:`Task.answers` shows them (``" April"``, ``"7"``), and
must be one token for the model. A clean prompt and its corrupted prompt must have the same
token length (activations are patched position by position); different rows may differ in
length and are right-padded (see :mod:`circuitgraph.scoring.patching`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import torch

from circuitgraph.tasks.task import Task

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model

COLUMNS = ("clean", "corrupted", "answer")
OPTIONAL_COLUMNS = ("wrong", "corrupted_answer")


def model_name(model: Model) -> str:
    """The name a model's circuits and tasks carry ("" for a bare tokenizer holder)."""
    return str(getattr(getattr(model, "cfg", None), "model_name", "") or "")


def _rows(rows: Sequence[object], limit: int = 8) -> str:
    shown = ", ".join(str(r) for r in rows[:limit])
    return shown + (f" and {len(rows) - limit} more" if len(rows) > limit else "")


def _texts(name: str, values: Any, n: int | None, labels: list[str] | None) -> list[str]:
    """``values`` as a list of non-empty strings (ValueError naming the bad rows)."""
    if isinstance(values, str) or not isinstance(values, Sequence):
        raise TypeError(f"{name} must be a list of strings, got {type(values).__name__}")
    values = list(values)
    if n is not None and len(values) != n:
        raise ValueError(f"{name} has {len(values)} entries but clean has {n}: give one per row")
    bad = [i for i, v in enumerate(values) if not isinstance(v, str) or not v]
    if bad:
        where = _rows([labels[i] if labels else str(i) for i in bad])
        raise ValueError(f"{name} must be non-empty text; rows {where} are not")
    return values


def _refuse_unknown(
    column: str,
    texts: list[str],
    encode: Any,
    unknown_token: int,
    tokenizer: Any,
    labels: list[str],
) -> None:
    """ValueError naming the rows of ``column`` that hold the tokenizer's unknown token: the
    model would be scored on ``<unk>``, a token that stands for every word it does not know."""
    bad = [i for i, text in enumerate(texts) if unknown_token in encode(text)]
    if bad:
        unk = tokenizer.convert_ids_to_tokens(unknown_token)
        shown = "; ".join(f"row {labels[i]}: {texts[i]!r}" for i in bad[:5])
        raise ValueError(
            f"{column} of {len(bad)} rows hold words the model's tokenizer does not know "
            f"(they become {unk!r}): {shown}. Use words in the model's vocabulary "
            "(`circuitgraph tasks` lists the built-in ones) or another model"
        )


def task_from_prompts(
    model: Model,
    clean: Sequence[str],
    corrupted: Sequence[str],
    answers: Sequence[str],
    wrong: Sequence[str] | None = None,
    corrupted_answers: Sequence[str] | None = None,
    name: str = "custom",
    first_token: bool = False,
    row_labels: list[str] | None = None,
    prepend_bos: bool | None = None,
) -> Task:
    """A :class:`Task` from prompt strings (see :meth:`Task.from_prompts`)."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"name must be a non-empty string, got {name!r}")
    clean = _texts("clean", clean, None, row_labels)
    if not clean:
        raise ValueError("clean is empty: give at least one prompt")
    n = len(clean)
    corrupted = _texts("corrupted", corrupted, n, row_labels)
    answers = _texts("answers", answers, n, row_labels)
    if corrupted_answers is not None:
        corrupted_answers = _texts("corrupted_answers", corrupted_answers, n, row_labels)
    if wrong is None:
        if corrupted_answers is None:
            raise ValueError(
                "give wrong (a wrong answer per row, for the logit difference) or "
                "corrupted_answers (then the corrupted prompt's answer is the wrong one)"
            )
        wrong = corrupted_answers
    wrong = _texts("wrong", wrong, n, row_labels)
    labels = row_labels or [str(i) for i in range(n)]
    tokenizer = model.tokenizer

    encoded: dict[str, list[int]] = {}  # each text tokenised once, for every check below

    def encode(text: str) -> list[int]:
        if text not in encoded:
            encoded[text] = list(tokenizer.encode(text, add_special_tokens=False))
        return encoded[text]

    def answer_ids(column: str, texts: list[str]) -> list[int]:
        ids = [encode(t) for t in texts]
        several = [i for i, t in enumerate(ids) if len(t) != 1]
        if several and not first_token:
            shown = "; ".join(
                f"row {labels[i]}: {texts[i]!r} -> {[tokenizer.decode([t]) for t in ids[i]]}"
                for i in several[:5]
            )
            raise ValueError(
                f"{column} must be single tokens for {model_name(model)!r}; "
                f"{len(several)} are not ({shown}). Pass first_token=True to use the first "
                "token of each"
            )
        empty = [labels[i] for i, t in enumerate(ids) if not t]
        if empty:
            raise ValueError(f"{column} of rows {_rows(empty)} tokenise to nothing")
        return [t[0] for t in ids]

    clean_ids, corrupted_ids = [encode(t) for t in clean], [encode(t) for t in corrupted]
    unknown_token = getattr(tokenizer, "unk_token_id", None)
    for column, texts in (("clean", clean), ("corrupted", corrupted), ("answers", answers),
                          ("wrong", wrong), ("corrupted_answers", corrupted_answers)):  # fmt: skip
        if texts is not None and unknown_token is not None:
            _refuse_unknown(column, texts, encode, unknown_token, tokenizer, labels)
    unequal = [i for i in range(n) if len(clean_ids[i]) != len(corrupted_ids[i])]
    if unequal:
        shown = ", ".join(
            f"{labels[i]} ({len(clean_ids[i])} vs {len(corrupted_ids[i])})" for i in unequal[:5]
        )
        raise ValueError(
            f"a clean prompt and its corrupted prompt must have the same token length "
            f"(activations are patched position by position); rows {shown} differ"
        )
    lengths = [len(ids) for ids in clean_ids]
    if min(lengths) == 0:
        raise ValueError(f"rows {_rows([labels[i] for i, k in enumerate(lengths) if k == 0])} "
                         "tokenise to no token")  # fmt: skip
    n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
    if isinstance(n_ctx, int) and max(lengths) > n_ctx:
        long = [labels[i] for i, k in enumerate(lengths) if k > n_ctx]
        raise ValueError(
            f"rows {_rows(long)} have more tokens than the model reads ({n_ctx}, n_ctx)"
        )
    answer, wrong_ids = answer_ids("answers", answers), answer_ids("wrong", wrong)
    same = [labels[i] for i in range(n) if answer[i] == wrong_ids[i]]
    if same:
        raise ValueError(
            f"rows {_rows(same)} have the same answer and wrong answer: their logit "
            "difference is always 0"
        )
    corrupted_answer = (
        answer_ids("corrupted_answers", corrupted_answers)
        if corrupted_answers is not None
        else wrong_ids
    )
    pad = next(
        (i for i in (tokenizer.pad_token_id, tokenizer.eos_token_id) if isinstance(i, int)), 0
    )
    width = max(lengths)

    def padded(rows: list[list[int]]) -> torch.Tensor:
        return torch.tensor([row + [pad] * (width - len(row)) for row in rows], dtype=torch.long)

    uniform = len(set(lengths)) == 1
    task = Task(
        name=name,
        model_name=model_name(model),
        template="custom",
        corruption="custom",
        seed=0,
        clean_tokens=padded(clean_ids),
        corrupted_tokens=padded(corrupted_ids),
        answer_ids=torch.tensor(answer, dtype=torch.long),
        wrong_ids=torch.tensor(wrong_ids, dtype=torch.long),
        corrupted_answer_ids=torch.tensor(corrupted_answer, dtype=torch.long),
        member_positions=torch.zeros(n, 0, dtype=torch.long),
        clean_prompts=clean,
        corrupted_prompts=corrupted,
        answers=[tokenizer.decode([a]) for a in answer] if first_token else answers,
        lengths=None if uniform else torch.tensor(lengths, dtype=torch.long),
    )
    return add_bos(task, model, prepend_bos)


def add_bos(task: Task, model: Model, prepend_bos: bool | None) -> Task:
    """``task`` with a BOS token first if ``prepend_bos`` (None: the model's default)."""
    if prepend_bos is None:
        prepend_bos = bool(getattr(model, "circuitgraph_prepend_bos", False))
    if not isinstance(prepend_bos, bool):
        raise TypeError(f"prepend_bos must be True, False or None, got {prepend_bos!r}")
    if not prepend_bos:
        return task
    bos_id = getattr(model.tokenizer, "bos_token_id", None)
    if bos_id is None:
        raise ValueError(
            f"prepend_bos=True but the tokenizer of {task.model_name!r} has no BOS token"
        )
    return task.with_bos(bos_id)


def file_checksum(path: str | Path) -> str:
    """SHA-256 of a file's bytes (recorded in run.json, so a run can be reproduced)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _read_records(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Rows of a CSV or JSONL file as dicts, with a label per row (its line in the file)."""
    if not path.exists():
        raise ValueError(f"{path}: no such file")
    if path.is_dir():
        raise ValueError(f"{path} is a folder, not a task file")
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {error.start} is {data[error.start]:#x})"
        ) from None
    if not text.strip():
        raise ValueError(f"{path} is empty: it needs a header and one row per prompt")
    suffix = path.suffix.lower()
    if suffix == ".jsonl":
        records, labels = [], []
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}, line {number}: expected a JSON object per line")
            records.append(record)
            labels.append(f"{path.name}:{number}")
        return records, labels
    if suffix == ".csv":
        reader = csv.DictReader(io.StringIO(text))
        records = [dict(row) for row in reader]
        # Line numbers: the header is line 1 (fields with newlines are rare in prompts).
        return records, [f"{path.name}:{i + 2}" for i in range(len(records))]
    raise ValueError(f"{path}: unknown task file type {suffix!r}; use .csv or .jsonl")


def load_task(
    path: str | Path,
    model: Model,
    name: str | None = None,
    first_token: bool = False,
    prepend_bos: bool | None = None,
) -> Task:
    """A :class:`Task` from a CSV or JSONL file with columns ``clean``, ``corrupted``,
    ``answer`` and optionally ``wrong`` and ``corrupted_answer``.

    ValueError names the file and the row for a missing column, an empty file, a value that
    is not text, undecodable bytes or a multi-token answer. The task is named after the file.
    """
    path = Path(path)
    records, labels = _read_records(path)
    if not records:
        raise ValueError(f"{path} has a header but no rows")
    present = set().union(*(r.keys() for r in records))
    missing = [c for c in COLUMNS if c not in present]
    if not missing and not present & set(OPTIONAL_COLUMNS):
        missing = ["wrong or corrupted_answer"]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {missing}; a task file needs {list(COLUMNS)} "
            f"(optional: {list(OPTIONAL_COLUMNS)}), found {sorted(str(c) for c in present)}"
        )
    columns: dict[str, list[str] | None] = {}
    for column in COLUMNS + OPTIONAL_COLUMNS:
        if column not in present:
            columns[column] = None
            continue
        values = [r.get(column) for r in records]
        bad = [labels[i] for i, v in enumerate(values) if not isinstance(v, str) or not v]
        if bad:
            example = values[[labels.index(b) for b in bad][0]]
            raise ValueError(
                f"{path}: column {column!r} must be non-empty text; rows {_rows(bad)} are not "
                f"(e.g. {example!r})"
            )
        columns[column] = cast("list[str]", values)  # every value is text (checked above)
    clean, corrupted, answer = columns["clean"], columns["corrupted"], columns["answer"]
    assert clean is not None and corrupted is not None and answer is not None  # required
    return task_from_prompts(
        model,
        clean,
        corrupted,
        answer,
        wrong=columns["wrong"],
        corrupted_answers=columns["corrupted_answer"],
        name=name or path.stem,
        first_token=first_token,
        row_labels=labels,
        prepend_bos=prepend_bos,
    )
