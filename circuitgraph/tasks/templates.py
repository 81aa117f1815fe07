"""Prompt templates and their segment-wise tokenisation.

A prompt is ``lead + item * n_members + last``: every item shows one member ``{m}`` (and
maybe a context word ``{w}``), ``last`` ends right before the answer slot ``{a}``. Each
slot is tokenised on its own, so the position of every member is known by construction;
the concatenation is then checked against the tokenisation of the whole prompt.

A space before a slot either belongs to the slot's token (``" April"``, "attached") or is a
token of its own (SmolLM2 digits: ``" "`` then ``"3"``, "detached"); the choice is made
per tokenizer so that the most values are single tokens. In detached mode the prompt ends
with the space and the answer is the bare value.

For the word-level toy tokenizer the prompt is the words and punctuation of the template
joined by single spaces (``"Here is a list : January , February ,"``), which its decoder
reproduces exactly.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any


@dataclass(frozen=True)
class Template:
    """A prompt format: ``lead``, then ``item`` per shown member, then ``last``.

    ``leads``: other wordings of the lead; a task built with this template draws each
    prompt's lead from ``(lead, *leads)`` (those that tokenise to the same length, so every
    position still means the same thing across prompts).
    """

    name: str
    lead: str
    item: str
    last: str
    leads: tuple[str, ...] = ()

    def variants(self) -> list[Template]:
        """One fixed-lead template per lead wording, the main one first."""
        return [replace(self, lead=lead, leads=()) for lead in (self.lead, *self.leads)]


# Wordings of the list lead (the paper's "Here is a list:" and "Continue the sequence:" among
# them); prompts of one task use those of one token length.
LIST_LEADS = (
    "Here is a sequence:",
    "This is a list:",
    "Here is a series:",
    "Continue the list:",
    "Continue the sequence:",
    "Complete the list:",
    "Complete the sequence:",
    "Continue this list:",
    "Here is the list:",
    "Here is my list:",
    "This is the list:",
    "This is a sequence:",
    "Here is another list:",
    "Consider the list:",
    "Look at this list:",
    "Read the list:",
    "Finish the list:",
    "Extend the list:",
    "Here is the sequence:",
    "This is my list:",
    "Here is a short list:",
    "Here is an ordered list:",
    "Continue the series:",
    "Finish the sequence:",
    "Extend the sequence:",
    "Read this list:",
    "Take this list:",
    "See this list:",
    "Here is our list:",
    "Here is your list:",
)


def _among(verb: str) -> list[Template]:
    return [
        Template(verb, "", f" {{w}} {verb} in {{m}}.", f" {{w}} {verb} in {{a}}"),
        Template(f"{verb}_was", "", f" {{w}} was {verb} in {{m}}.", f" {{w}} was {verb} in {{a}}"),
    ]


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in [
        Template("list", "Here is a list:", " {m},", " {a}"),
        Template("lists", "Here is a list:", " {m},", " {a}", LIST_LEADS),
        Template("continue", "Continue the sequence:", " {m},", " {a}"),
        Template("comma", "", " {m},", " {a}"),
        Template("space", "", " {m}", " {a}"),
        Template("is", "", " {w} is {m}.", " {w} is {a}"),
        Template("war", "The war lasted from the year", " {w}{m}", " to the year {w}{a}"),
        *_among("born"),
        *_among("lost"),
        *_among("done"),
    ]
}


class Slot(str, Enum):
    """What a piece of a prompt is."""

    TEXT = "text"
    WORD = "w"
    MEMBER = "m"
    ANSWER = "a"


@dataclass(frozen=True)
class Piece:
    """One piece of a prompt skeleton; ``index`` numbers words/members in prompt order."""

    slot: Slot
    text: str = ""
    index: int = 0
    spaced: bool = False


_SLOT_RE = re.compile(r"(\{[wma]\})")
_TOY_WORD_RE = re.compile(r"\w+|[^\w\s]")


def skeleton(template: Template, n_members: int) -> list[Piece]:
    """The pieces of a prompt with ``n_members`` items, leading whitespace removed."""
    pieces: list[Piece] = []
    counters = {Slot.WORD: 0, Slot.MEMBER: 0, Slot.ANSWER: 0}
    for fmt in [template.lead, *[template.item] * n_members, template.last]:
        for part in _SLOT_RE.split(fmt):
            if part.startswith("{"):
                slot = Slot(part[1])
                spaced = bool(pieces) and pieces[-1].slot is Slot.TEXT
                spaced = spaced and pieces[-1].text.endswith(" ")
                if spaced:
                    pieces[-1] = Piece(Slot.TEXT, pieces[-1].text[:-1])
                pieces.append(Piece(slot, index=counters[slot], spaced=spaced))
                counters[slot] += 1
            elif part:
                pieces.append(Piece(Slot.TEXT, part))
    pieces = [p for p in pieces if p.slot is not Slot.TEXT or p.text]
    first = pieces[0]
    if first.slot is Slot.TEXT:
        pieces[0] = Piece(Slot.TEXT, first.text.lstrip())
    else:
        pieces[0] = Piece(first.slot, index=first.index, spaced=False)
    return [p for p in pieces if p.slot is not Slot.TEXT or p.text]


def tokenizer_label(tokenizer: Any) -> str:
    """A short name for error messages."""
    name = getattr(tokenizer, "name_or_path", "") or ""
    return f"{type(tokenizer).__name__}({name!r}, vocab {len(tokenizer)})"


@dataclass
class Encoded:
    """One tokenised prompt."""

    text: str
    ids: list[int]
    member_positions: list[int]
    answer_id: int


class PromptEncoder:
    """Tokenises prompts of one template for one tokenizer, slot by slot."""

    def __init__(self, tokenizer: Any, template: Template, n_members: int, toy: bool):
        self.tokenizer = tokenizer
        self.template = template
        self.toy = toy
        self.pieces = skeleton(template, n_members)
        self._cache: dict[str, list[int]] = {}
        self.attach = {Slot.WORD: True, Slot.MEMBER: True}

    def _ids(self, text: str) -> list[int]:
        if text not in self._cache:
            self._cache[text] = list(self.tokenizer.encode(text, add_special_tokens=False))
        return self._cache[text]

    def _single(self, text: str) -> int | None:
        ids = self._ids(text)
        unk = getattr(self.tokenizer, "unk_token_id", None)
        return ids[0] if len(ids) == 1 and ids[0] != unk else None

    def _forms(self, kind: Slot) -> set[bool]:
        """Whether slots of this kind occur spaced (True) and/or bare (False)."""
        kinds = {kind, Slot.ANSWER} if kind is Slot.MEMBER else {kind}
        return {p.spaced and not self.toy for p in self.pieces if p.slot in kinds}

    def _token(self, value: str, spaced: bool, attach: bool) -> int | None:
        if spaced and attach:
            return self._single(" " + value)
        if spaced and self._ids(" " + value) != self._ids(" ") + self._ids(value):
            return None
        if spaced and self._single(" ") is None:
            return None
        return self._single(value)

    def describe_forms(self, kind: Slot) -> str:
        """How slots of this kind appear in the prompt, for error messages."""
        names = {True: "after a space", False: "without a space before"}
        return " and ".join(names[s] for s in sorted(self._forms(kind), reverse=True))

    def choose_mode(self, kind: Slot, values: Sequence[str]) -> list[str]:
        """Fix attached/detached spaces for a slot kind; return the single-token values."""

        def valid(attach: bool) -> list[str]:
            forms = self._forms(kind)
            return [v for v in values if all(self._token(v, s, attach) for s in forms)]

        attached, detached = valid(True), valid(False)
        self.attach[kind] = len(attached) >= len(detached)
        return attached if self.attach[kind] else detached

    def answer_token(self, value: str) -> int:
        """The token id of ``value`` in the answer slot."""
        spaced = any(p.spaced and not self.toy for p in self.pieces if p.slot is Slot.ANSWER)
        token = self._token(value, spaced, self.attach[Slot.MEMBER])
        if token is None:
            raise ValueError(f"answer {value!r} is not a single token")
        return token

    def encode(self, words: Sequence[str], members: Sequence[str], answer: str) -> Encoded:
        """Tokenise one prompt; checks the result against whole-prompt tokenisation."""
        segments: list[str] = []
        ids: list[int] = []
        positions: list[int] = []
        for piece in self.pieces:
            if piece.slot is Slot.TEXT:
                parts = _TOY_WORD_RE.findall(piece.text) if self.toy else [piece.text]
            elif piece.slot is Slot.ANSWER:
                if piece.spaced and not self.toy and not self.attach[Slot.MEMBER]:
                    segments.append(" ")
                    ids += self._ids(" ")
                continue
            else:
                value = words[piece.index] if piece.slot is Slot.WORD else members[piece.index]
                kind = Slot.WORD if piece.slot is Slot.WORD else Slot.MEMBER
                if self.toy or not piece.spaced:
                    parts = [value]
                elif self.attach[kind]:
                    parts = [" " + value]
                else:
                    parts = [" ", value]
                if piece.slot is Slot.MEMBER:
                    positions.append(len(ids) + len(parts) - 1)
            for part in parts:
                segments.append(part)
                ids += self._ids(part)
        text = " ".join(segments) if self.toy else "".join(segments)
        full = list(self.tokenizer.encode(text, add_special_tokens=False))
        if full != ids:
            raise ValueError(
                f"template {self.template.name!r} does not tokenise slot by slot with "
                f"{tokenizer_label(self.tokenizer)}: {text!r} gives "
                f"{self.tokenizer.convert_ids_to_tokens(full)}, segments give "
                f"{self.tokenizer.convert_ids_to_tokens(ids)}"
            )
        return Encoded(text, ids, positions, self.answer_token(answer))
