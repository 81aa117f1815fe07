"""The ``Task`` dataset: clean and corrupted prompts as token tensors."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model


def sequence_digest(key: str) -> str:
    """A 16-hex-digit digest of one sequence key (:meth:`Task.sequence_keys`).

    >>> sequence_digest("12 13 14 15 -> 16") == sequence_digest("12 13 14 15 -> 16")
    True
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]


def sequence_digests(prompts: Task | Iterable[str]) -> set[str]:
    """The digests a held-out prompt must not match: a Task's distinct sequence digests and
    clean-prompt digests (:meth:`Task.sequence_digests`, :meth:`Task.prompt_digests`), or
    the digests themselves if given digests (as a circuit's provenance records them)."""
    if isinstance(prompts, Task):
        return set(prompts.sequence_digests()) | set(prompts.prompt_digests())
    return {str(d) for d in prompts}


@dataclass(frozen=True, eq=False)
class Task:
    """Clean and corrupted prompts of one task, tokenised for one model.

    Row ``i`` of every tensor and list belongs to prompt ``i``. ``answer_ids`` is the
    next member, ``wrong_ids`` the last member shown (the paper's wrong answer for the
    logit difference), ``corrupted_answer_ids`` the continuation of the corrupted prompt
    (never equal to ``answer_ids``), ``member_positions`` the token positions of the shown
    members in the clean prompt.
    """

    name: str
    model_name: str
    template: str
    corruption: str
    seed: int
    clean_tokens: torch.Tensor  # [n, seq] long
    corrupted_tokens: torch.Tensor  # [n, seq] long
    answer_ids: torch.Tensor  # [n] long
    wrong_ids: torch.Tensor  # [n] long
    corrupted_answer_ids: torch.Tensor  # [n] long
    member_positions: torch.Tensor  # [n, n_members] long
    clean_prompts: list[str]
    corrupted_prompts: list[str]
    answers: list[str]
    # Real tokens per prompt [n] long, clean and corrupted alike, when prompts of different
    # lengths are right-padded to seq_len; None when every prompt fills seq_len.
    lengths: torch.Tensor | None = None
    bos: bool = False  # whether every prompt starts with the tokenizer's BOS token
    # For the prob_diff metric (greater-than): candidate answer tokens [n, K] long and their
    # signs [n, K] (+1 counts for the answer, -1 against, 0 padding); None for other tasks.
    prob_ids: torch.Tensor | None = None
    prob_signs: torch.Tensor | None = None
    # The position each row's metric reads [n] long (Task.from_tokens); None: each prompt's
    # last real token. Reading several positions of a prompt gives it one row per position,
    # grouped by prompt_ids [n] long (None: every row is its own prompt).
    read_positions: torch.Tensor | None = None
    prompt_ids: torch.Tensor | None = None
    # False for tasks from token ids without answers: only the KL and L2 metrics apply.
    has_answers: bool = True

    @classmethod
    def from_prompts(
        cls,
        model: Model,
        clean: Sequence[str],
        corrupted: Sequence[str],
        answers: Sequence[str],
        wrong: Sequence[str] | None = None,
        corrupted_answers: Sequence[str] | None = None,
        name: str = "custom",
        first_token: bool = False,
        prepend_bos: bool | None = None,
    ) -> Task:
        """A task from your own prompts, tokenised for ``model``.

        ``answers`` (the clean prompts' next tokens), ``wrong`` (the wrong answers of the logit
        difference; default: ``corrupted_answers``) and ``corrupted_answers`` are text as
        :attr:`answers` shows it, one token each (``first_token=True`` takes the first token of
        longer ones). A clean prompt and its corrupted prompt need the same token length; rows
        may differ (they are right-padded). ``prepend_bos`` as in ``make_task``. Every built-in
        task round-trips:
        ``Task.from_prompts(model, t.clean_prompts, t.corrupted_prompts, t.answers, wrong=...)``.
        """
        from circuitgraph.tasks.custom import task_from_prompts

        return task_from_prompts(
            model, clean, corrupted, answers, wrong, corrupted_answers, name, first_token,
            prepend_bos=prepend_bos,
        )  # fmt: skip

    @classmethod
    def from_tokens(
        cls,
        model: Model,
        clean: Any,
        corrupted: Any,
        answers: Any = None,
        wrong: Any = None,
        positions: str | Sequence[int] | None = None,
        name: str = "tokens",
        pad_id: int = 0,
    ) -> Task:
        """A task from token ids, for models without a tokenizer (compiled tracr models) or
        prompts you tokenised yourself.

        ``clean`` and ``corrupted``: integer tensors [n, p] or lists of id lists (rows may
        differ in length: they are right-padded with ``pad_id``; a clean prompt and its
        corrupted one have the same length). ``positions``: where the metric reads: None,
        each prompt's last token; ``"all"``, every position after the first (BOS, as in
        tracr and ACDC's tracr tasks); or a list of positions in every prompt (negative ones
        count back from its last token). Each read position becomes a row of the task, and
        every metric averages over a prompt's positions, then over prompts. ``answers`` and
        ``wrong`` (output-vocabulary ids, one per prompt or one per read position, [n] or
        [n, K]) are needed by the logit difference and accuracy; without them only
        ``metric="kl"`` and ``metric="l2"`` apply.

        >>> import types
        >>> model = types.SimpleNamespace(cfg=types.SimpleNamespace(
        ...     d_vocab=5, d_vocab_out=3, n_ctx=4, model_name="tiny"))
        >>> task = Task.from_tokens(model, [[0, 1, 2], [0, 2, 1]], [[0, 2, 2], [0, 1, 1]],
        ...                         positions="all")
        >>> len(task), task.read_positions.tolist(), task.n_distinct
        (4, [1, 2, 1, 2], 2)
        """
        from circuitgraph.tasks.tokens import task_from_tokens

        return task_from_tokens(model, clean, corrupted, answers, wrong, positions, name, pad_id)

    def with_bos(self, bos_id: int) -> Task:
        """This task with token ``bos_id`` before every clean and corrupted prompt (member
        positions and lengths move by one; the prompt texts stay as they are)."""
        if self.bos:
            return self
        column = torch.full((len(self), 1), bos_id, dtype=torch.long)
        return replace(
            self,
            clean_tokens=torch.cat([column, self.clean_tokens], dim=1),
            corrupted_tokens=torch.cat([column, self.corrupted_tokens], dim=1),
            member_positions=self.member_positions + 1,
            lengths=None if self.lengths is None else self.lengths + 1,
            read_positions=None if self.read_positions is None else self.read_positions + 1,
            bos=True,
        )

    def __len__(self) -> int:
        return self.clean_tokens.shape[0]

    @property
    def seq_len(self) -> int:
        """Token length of the (padded) prompt tensors."""
        return self.clean_tokens.shape[1]

    @property
    def ragged(self) -> bool:
        """Whether prompts differ in length (then they are right-padded)."""
        return self.lengths is not None and bool((self.lengths != self.seq_len).any())

    @property
    def last_positions(self) -> torch.Tensor:
        """The position each row's metric reads [n]: its prompt's last real token, or the
        position :meth:`from_tokens` gave it."""
        if self.read_positions is not None:
            return self.read_positions
        return self._last_real()

    def _last_real(self) -> torch.Tensor:
        if self.lengths is None:
            device = self.clean_tokens.device
            return torch.full((len(self),), self.seq_len - 1, dtype=torch.long, device=device)
        return self.lengths - 1

    @property
    def reads_last(self) -> bool:
        """Whether every row's metric reads the last position of the token tensors."""
        if self.read_positions is None:
            return not self.ragged
        return bool((self.read_positions == self.seq_len - 1).all())

    def row_weights(self) -> torch.Tensor | None:
        """Each row's weight in a metric's mean [n] (mean 1): prompts weigh the same however
        many positions they read. None when every prompt reads as many rows (equal weights).
        """
        if self.prompt_ids is None:
            return None
        _, inverse, counts = self.prompt_ids.unique(return_inverse=True, return_counts=True)
        if bool((counts == counts[0]).all()):
            return None
        weights = 1.0 / counts[inverse].double()
        return weights * (len(self) / weights.sum())

    def real_tokens(self) -> torch.Tensor:
        """Which positions hold a real token (not padding), bool [n, seq_len]."""
        return torch.arange(self.seq_len)[None] <= self._last_real()[:, None]

    @property
    def n_members(self) -> int:
        """Number of sequence members shown in each prompt."""
        return self.member_positions.shape[1]

    def subset(self, indices: Sequence[int] | torch.Tensor) -> Task:
        """A new Task with the prompts at ``indices`` (ints or a boolean mask)."""
        index = torch.as_tensor(indices)
        if index.dtype == torch.bool:
            index = index.nonzero().flatten()
        index = index.long().flatten()
        picked = index.tolist()
        changes: dict[str, object] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, torch.Tensor):
                changes[f.name] = value[index].clone()
            elif isinstance(value, list):
                changes[f.name] = [value[i] for i in picked]
        return replace(self, **changes)

    @property
    def n_distinct(self) -> int:
        """Number of distinct clean prompts."""
        return len(set(self.clean_prompts))

    def sequence_keys(self) -> list[str]:
        """Per prompt, the underlying sequence it shows, as a string: held-out prompts must not
        share one with the discovery prompts (:meth:`split`, ``held_out_scorer``).

        For tasks that show members (the sequence tasks): the token ids of the members at
        :attr:`member_positions` and of the answer, ``"12 13 14 15 -> 16"``. Two prompts that
        differ only in their wording around the members (the ``lists`` template's lead wordings
        "Here is a list:" / "This is a sequence:", or the context words of ``born_in_*``) show
        the same sequence and get the same key. Keys are exact for one tokenizer (the ids are
        the model's), and the same with or without a BOS token. For tasks without members
        (ioi, induction, greater_than_years, your own prompts): the clean prompt itself, so
        only identical prompts count as the same (ioi prompts with the same names in another
        sentence do not).

        >>> from types import SimpleNamespace
        >>> from circuitgraph.tasks import make_task
        >>> from circuitgraph.toy.vocabulary import build_toy_tokenizer
        >>> toy = SimpleNamespace(tokenizer=build_toy_tokenizer(), circuitgraph_family="toy")
        >>> task = make_task("digits", toy, n=12, template="lists")
        >>> task.n_distinct, len(set(task.sequence_keys()))  # 12 wordings of 6 sequences
        (12, 6)
        """
        if self.n_members == 0:
            return list(self.clean_prompts)
        members = self.clean_tokens.gather(1, self.member_positions)
        return [
            f"{' '.join(map(str, row))} -> {answer}"
            for row, answer in zip(members.tolist(), self.answer_ids.tolist(), strict=True)
        ]

    def sequence_digests(self) -> list[str]:
        """:meth:`sequence_keys` as short digests (:func:`sequence_digest`), one per prompt: the
        compact form a circuit's provenance records of its discovery prompts."""
        return [sequence_digest(key) for key in self.sequence_keys()]

    def prompt_digests(self) -> list[str]:
        """The clean prompts as digests, one per prompt (for a task without members, the same
        as :meth:`sequence_digests`). Recorded beside them, so prompts of your own (which
        have no members) are checked against a built-in task's prompts by string at least."""
        return [sequence_digest(prompt) for prompt in self.clean_prompts]

    @property
    def n_sequences(self) -> int:
        """Number of distinct underlying sequences (:meth:`sequence_keys`)."""
        return len(set(self.sequence_keys()))

    def split(self, test_fraction: float = 0.5, seed: int = 0) -> tuple[Task, Task]:
        """``(train, test)`` split by underlying sequence (:meth:`sequence_keys`): every prompt
        of one sequence (its copies and its other wordings) goes to the same side, so no test
        prompt shares a sequence with a training prompt.

        About ``test_fraction`` of the distinct sequences (at least one, and at least one left
        for training) go to ``test``, chosen by ``seed``; each side keeps the task's order.
        """
        if not 0.0 < float(test_fraction) < 1.0:
            raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction!r}")
        keys = self.sequence_keys()
        distinct = sorted(set(keys))
        if len(distinct) < 2:
            raise ValueError(
                f"task {self.name!r} has {len(distinct)} distinct sequence(s) "
                f"({self.n_distinct} distinct clean prompts); a split needs at least 2"
            )
        random.Random(seed).shuffle(distinct)
        k = min(max(round(test_fraction * len(distinct)), 1), len(distinct) - 1)
        test = set(distinct[:k])
        in_test = [key in test for key in keys]
        train = [i for i, t in enumerate(in_test) if not t]
        return self.subset(train), self.subset([i for i, t in enumerate(in_test) if t])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Task):
            return NotImplemented
        for f in fields(self):
            a, b = getattr(self, f.name), getattr(other, f.name)
            if isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor):
                same = a.shape == b.shape and torch.equal(a, b)
            else:
                same = (
                    not isinstance(a, torch.Tensor) and not isinstance(b, torch.Tensor) and a == b
                )
            if not same:
                return False
        return True

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        example = f", e.g. {self.clean_prompts[0]!r} -> {self.answers[0]!r}" if len(self) else ""
        return (
            f"Task({self.name!r}, n={len(self)}, seq_len={self.seq_len}, "
            f"template={self.template!r}, corruption={self.corruption!r}, seed={self.seed}, "
            f"model={self.model_name!r}{example})"
        )
