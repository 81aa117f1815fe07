"""Task specifications: the ordered member lists, context words and the task registry."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data"

DIGITS = tuple(str(i) for i in range(10))
NUMBER_WORDS = ("one", "two", "three", "four", "five", "six")
NUMBER_WORDS += ("seven", "eight", "nine", "ten", "eleven", "twelve")
MONTHS = ("January", "February", "March", "April", "May", "June")
MONTHS += ("July", "August", "September", "October", "November", "December")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
LETTERS = tuple(chr(c) for c in range(ord("A"), ord("Z") + 1))
ROMAN = ("I", "II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X")
ROMAN += ("XI", "XII", "XIII", "XIV", "XV", "XVI", "XVII", "XVIII", "XIX", "XX")
ONE_TO_TWELVE = tuple(str(i) for i in range(1, 13))
TWO_DIGITS = tuple(f"{i:02d}" for i in range(100))
CENTURIES = tuple(str(c) for c in range(11, 18))


class Family(str, Enum):
    """Model family, read from ``model.circuitgraph_family``; it picks the prompt format."""

    TOY = "toy"
    LLAMA = "llama"
    GPT2 = "gpt2"
    OTHER = "other"


class Context(str, Enum):
    """Where the context words ``{w}`` of a template come from."""

    NONE = "none"
    NAMES = "names"
    LOST = "lost"
    DONE = "done"
    CENTURY = "century"


@cache
def wordlists() -> dict[str, tuple[str, ...]]:
    """The shipped name and object lists (``data/wordlists.json``)."""
    with open(DATA_DIR / "wordlists.json", encoding="utf-8") as f:
        raw = json.load(f)
    return {key: tuple(values) for key, values in raw.items()}


def context_pool(context: Context) -> tuple[str, ...]:
    """All candidate context words of one kind, before tokenizer filtering."""
    if context is Context.NONE:
        return ()
    if context is Context.CENTURY:
        return CENTURIES
    return wordlists()[context.value]


_SEQUENCE_TEMPLATES = ("list", "lists", "continue", "comma", "space")
_SEQUENCE_DEFAULTS = {
    Family.LLAMA: "lists",
    Family.GPT2: "space",
    Family.OTHER: "space",
    Family.TOY: "list",
}


@dataclass(frozen=True)
class TaskSpec:
    """What a task shows: members in successor order, the template choices, the context.

    ``values[i + 1]`` is the successor of ``values[i]`` (wrapping when ``cyclic``).
    ``skip_multi_token``: members that are not single tokens are left out of every
    prompt instead of raising. ``group``: tasks of one group draw the same context words
    and start indices prompt for prompt for the same seed (paired comparisons).
    """

    name: str
    values: tuple[str, ...]
    templates: tuple[str, ...] = _SEQUENCE_TEMPLATES
    defaults: dict[Family, str] = field(default_factory=lambda: dict(_SEQUENCE_DEFAULTS))
    context: Context = Context.NONE
    cyclic: bool = False
    n_members: int = 4
    fixed_members: bool = False
    skip_multi_token: bool = False
    group: str | None = None
    doc: str = ""

    def default_template(self, family: Family) -> str:
        """The template used when ``make_task`` gets ``template=None``."""
        return self.defaults.get(family, self.templates[0])


def _among(verb: str, values: tuple[str, ...], variant: str, context: Context) -> TaskSpec:
    return TaskSpec(
        name=f"{verb}_in_{variant}",
        values=values,
        templates=(verb, f"{verb}_was"),
        defaults={},
        context=context,
        skip_multi_token=True,
        group=f"{verb}_in",
        doc=f"'{{W1}} {verb} in {{S1}}. ... {{W5}} {verb} in' with {variant.replace('_', ' ')}",
    )


def _registry() -> dict[str, TaskSpec]:
    specs = [
        TaskSpec("digits", DIGITS, doc="digits 0-9 increasing"),
        TaskSpec("number_words", NUMBER_WORDS, doc="one .. twelve"),
        TaskSpec("months", MONTHS, cyclic=True, doc="January .. December, wrapping"),
        TaskSpec("days", DAYS, cyclic=True, doc="Monday .. Sunday, wrapping"),
        TaskSpec("letters", LETTERS, doc="capital letters A-Z"),
        TaskSpec(
            "roman",
            ROMAN,
            skip_multi_token=True,
            doc="roman numerals I .. XX; windows with a multi-token numeral are skipped",
        ),
        TaskSpec("decreasing", DIGITS[::-1], doc="digits 9-0 counting down"),
        TaskSpec("decreasing_words", NUMBER_WORDS[::-1], doc="twelve .. one counting down"),
        TaskSpec(
            "greater_than",
            TWO_DIGITS,
            templates=("war",),
            defaults={},
            context=Context.CENTURY,
            n_members=1,
            fixed_members=True,
            doc="'The war lasted from the year 1732 to the year 17' -> '33' (YY+1)",
        ),
        TaskSpec(
            "names_digits",
            ONE_TO_TWELVE[:9],
            templates=("is",),
            defaults={},
            context=Context.NAMES,
            doc="'Adam is 1. Bob is 2. Claire is 3. Dave is' -> 4",
        ),
    ]
    for verb, context in (("born", Context.NAMES), ("lost", Context.LOST), ("done", Context.DONE)):
        specs += [
            _among(verb, NUMBER_WORDS, "number_words", context),
            _among(verb, MONTHS, "months", context),
            _among(verb, ONE_TO_TWELVE, "digits", context),
        ]
    return {spec.name: spec for spec in specs}


TASKS: dict[str, TaskSpec] = _registry()


def get_spec(name: str) -> TaskSpec:
    """The spec of a task by name; ValueError listing the known tasks otherwise."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[name]


def group_specs(spec: TaskSpec) -> list[TaskSpec]:
    """The tasks paired with ``spec`` (itself included), in registry order."""
    if spec.group is None:
        return [spec]
    return [other for other in TASKS.values() if other.group == spec.group]
