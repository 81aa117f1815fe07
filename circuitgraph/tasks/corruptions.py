"""Corrupted prompts, built from the members (never by editing prompt text).

Members are indices into a task's ordered value list. Every corruption returns the
corrupted members and their continuation, which never equals the clean answer:

=================  ==========================================  ======================
corruption         corrupted members (clean ``m1 m2 m3 m4``)   continuation
=================  ==========================================  ======================
rand_all           random values, not ending on a successor    successor of the last
                   pair (paper's corrupted set)
switch_last_two    ``m1 m2 m4 m3``                             successor of ``m3``
repeat_last_two    ``m1 m2 m4 m4``                             ``m4`` (repeat)
repeat_first_all   ``m1 m1 m1 m1``                             ``m1`` (repeat)
repeat_rand        ``x x x x`` for a random value ``x``        ``x`` (repeat)
permutation        a shuffle of the members, not ending on a   successor of the last
                   successor pair
=================  ==========================================  ======================
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from enum import Enum


class Corruption(str, Enum):
    """How the corrupted prompt set is made."""

    RAND_ALL = "rand_all"
    SWITCH_LAST_TWO = "switch_last_two"
    REPEAT_LAST_TWO = "repeat_last_two"
    REPEAT_FIRST_ALL = "repeat_first_all"
    REPEAT_RAND = "repeat_rand"
    PERMUTATION = "permutation"


MIN_MEMBERS: dict[Corruption, int] = {c: 2 for c in Corruption} | {Corruption.RAND_ALL: 1}
MAX_ATTEMPTS = 1000


def parse_corruption(name: str | Corruption) -> Corruption:
    """The corruption by name; ValueError listing the known ones otherwise."""
    try:
        return Corruption(name)
    except ValueError:
        known = ", ".join(c.value for c in Corruption)
        raise ValueError(f"unknown corruption {name!r}; known corruptions: {known}") from None


@dataclass(frozen=True)
class MemberSet:
    """The usable values of a task: ``size`` ordered values, the single-token ones ``valid``."""

    size: int
    cyclic: bool
    valid: frozenset[int]

    def succ(self, i: int) -> int | None:
        """The successor index of ``i``, or None when it is missing or not usable."""
        j = i + 1
        if j == self.size:
            if not self.cyclic:
                return None
            j = 0
        return j if j in self.valid else None


def _successor_pair(members: list[int], ms: MemberSet) -> bool:
    return len(members) >= 2 and members[-1] == ms.succ(members[-2])


def _propose(
    corruption: Corruption, members: list[int], ms: MemberSet, rng: random.Random
) -> tuple[list[int], int | None]:
    k = len(members)
    pool = sorted(ms.valid)
    if corruption is Corruption.RAND_ALL:
        ends = [i for i in pool if ms.succ(i) is not None]
        new = [rng.choice(pool) for _ in range(k - 1)] + [rng.choice(ends)]
        return new, None if _successor_pair(new, ms) else ms.succ(new[-1])
    if corruption is Corruption.SWITCH_LAST_TWO:
        new = members[:-2] + [members[-1], members[-2]]
        return new, ms.succ(new[-1])
    if corruption is Corruption.REPEAT_LAST_TWO:
        return members[:-2] + [members[-1]] * 2, members[-1]
    if corruption is Corruption.REPEAT_FIRST_ALL:
        return [members[0]] * k, members[0]
    if corruption is Corruption.REPEAT_RAND:
        x = rng.choice(pool)
        return [x] * k, x
    new = list(members)
    rng.shuffle(new)
    return new, None if _successor_pair(new, ms) else ms.succ(new[-1])


def corrupt(
    corruption: Corruption, members: list[int], answer: int, ms: MemberSet, rng: random.Random
) -> tuple[list[int], int]:
    """Corrupted members and their continuation (``!= answer``); resamples when needed."""
    if len(members) < MIN_MEMBERS[corruption]:
        raise ValueError(
            f"corruption {corruption.value!r} needs at least {MIN_MEMBERS[corruption]} "
            f"members, got {len(members)}"
        )
    for _ in range(MAX_ATTEMPTS):
        new, continuation = _propose(corruption, members, ms, rng)
        if continuation is not None and continuation != answer and new != members:
            return new, continuation
    raise ValueError(
        f"corruption {corruption.value!r} found no corrupted prompt whose continuation "
        f"differs from the answer in {MAX_ATTEMPTS} attempts (members {members})"
    )
