"""Held-out prompts are held out by underlying sequence, not only by prompt string.

"Here is a list: 1, 2, 3, 4," and "This is a sequence: 1, 2, 3, 4," are two clean prompts but
one sequence: a circuit found on the first has seen the second's answer. Every held-out check
(:meth:`~circuitgraph.tasks.task.Task.split`, ``held_out_scorer``, ``stability``,
``compare_methods``, ``circuitgraph evaluate --held-out``) compares
:meth:`~circuitgraph.tasks.task.Task.sequence_keys` (as digests, the form a circuit's
provenance records) and refuses an overlap with
:func:`~circuitgraph.guards.check_disjoint`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from circuitgraph.guards import check_disjoint
from circuitgraph.tasks.task import sequence_digests

if TYPE_CHECKING:
    from circuitgraph.tasks.task import Task

__all__ = ["check_held_out", "outside"]


def _shared(task: Task, discovery: Task | Iterable[str]) -> list[bool]:
    """Per row of ``task``: does the ``discovery`` side show its sequence or its prompt?"""
    seen = sequence_digests(discovery)
    rows = zip(task.sequence_digests(), task.prompt_digests(), strict=True)
    return [sequence in seen or prompt in seen for sequence, prompt in rows]


def outside(task: Task, discovery: Task | Iterable[str]) -> list[int]:
    """Rows of ``task`` whose sequence (and clean prompt) the ``discovery`` prompts (a Task, or
    the digests a circuit's provenance records) do not show."""
    return [i for i, shared in enumerate(_shared(task, discovery)) if not shared]


def check_held_out(discovery: Task | Iterable[str], held_out: Task, what: str) -> None:
    """Refuse (:class:`~circuitgraph.guards.UncertaintyError`) ``held_out`` prompts
    that share an underlying sequence (or are identical) with the ``discovery`` prompts (a
    Task, or the digests a circuit's provenance records); the message names one of them."""
    prompts = held_out.clean_prompts
    shared = [p for p, s in zip(prompts, _shared(held_out, discovery), strict=True) if s]
    check_disjoint(shared, prompts, what)
