"""The field's standard tasks: indirect object identification (IOI) and induction.

Both build their prompts as text and tokenise them with :func:`task_from_prompts`, so they
follow the same rules as your own tasks (single-token answers, equal clean/corrupted token
lengths per row, right padding where rows differ).

- ``ioi`` (Wang et al. 2022): "Then, Mary and John went to the store. John gave a drink to" ->
  " Mary". Templates ``abba`` (the indirect object first) and ``baba`` (the subject first),
  mixed half and half by ``template="mixed"`` (the default). Names are those that are single
  tokens for the model. Wrong answer: the subject. Corruption ``abc``: the same sentence with
  three other, distinct names (so no name repeats and the task's information is gone).
  Toy-tokenizer models get a toy wording from their small vocabulary.
- ``induction``: ``length`` random common words, then their first ``repeated`` again; the
  answer is the word that followed the last one in the first copy. Wrong answer: another word
  of the sequence. Corruption ``rand_second``: the second copy replaced by other random words.
  The words are single tokens drawn from the tokenizer's ``common`` lowest ids (BPE numbers
  its merges roughly by frequency, so those are common words; rare sub-words such as
  " Necess" are hard to copy even for induction heads). With the defaults (16 words, 15
  repeated) SmolLM2-135M ranks the answer first on 0.84 of 192 prompts (95 % bootstrap CI
  0.79-0.89); eight words with four repeated gave 0.19.
- ``greater_than_years`` (Hanna et al. 2023): "The war lasted from the year 1732 to the year
  17" -> any year after 1732. Metric ``prob_diff``: the probability of the years after YY
  minus that of the others (``task.prob_ids``/``prob_signs``). Where the tokenizer has one
  token per two-digit year (GPT-2, the toy model), the candidates are 00-99 and YY runs over
  02-98. Where it splits numbers into digits (SmolLM2, Llama), the next token is the tens
  digit alone, so YY ends in 9 (09, 19, ..., 89): every year after 17Y9 has a tens digit above
  Y and every other year one at most Y, and the candidates are the ten digits. Corruption
  ``01``: the start year 1701 (Hanna et al.'s), which no longer tells the answer apart.
"""

from __future__ import annotations

import inspect
import random
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import torch

from circuitgraph.tasks.custom import model_name, task_from_prompts
from circuitgraph.tasks.sequences import wordlists
from circuitgraph.tasks.task import Task

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model

# Names: the shipped list (data/wordlists.json) less those that are also common words.
NOT_NAMES = frozenset(
    {"April", "Diamond", "Hunter", "Madison", "Morgan", "Rose", "Van", "Victoria"}
)
PLACES = ("store", "garden", "school", "park", "office", "house", "station", "river")
OBJECTS = ("drink", "book", "ring", "bone", "basket", "necklace", "snack", "apple")
ENGLISH = (
    "Then, {A} and {B} went to the {place}. {S} gave a {object} to",
    "When {A} and {B} got a {object} at the {place}, {S} decided to give it to",
    "After {A} and {B} went to the {place}, {S} gave a {object} to",
    "While {A} and {B} were working at the {place}, {S} gave a {object} to",
)
TOY = ("{A} , {B} . {S} was in the {place} to",)
TOY_PLACES = ["House", "Lake", "Hill", "Road", "Ocean"]


@dataclass(frozen=True)
class StandardTask:
    """A standard task: its templates and corruptions, and how to build it."""

    templates: tuple[str, ...]
    corruptions: tuple[str, ...]
    build: Callable[..., Task]


def _single_token_names(model: Model, toy: bool) -> list[str]:
    """Names that are one token where the prompts use them (after a space, except toy)."""
    tokenizer, names = model.tokenizer, []
    vocab: dict[str, int] = tokenizer.get_vocab() if toy else {}
    for name in (n for n in wordlists()["names"] if n not in NOT_NAMES):
        if toy:
            ok = name in vocab
        else:
            ok = len(tokenizer.encode(" " + name, add_special_tokens=False)) == 1
        if ok:
            names.append(name)
    if len(names) < 5:
        raise ValueError(
            f"ioi needs at least 5 names that are single tokens for {model_name(model)!r}; "
            f"found {names}"
        )
    return names


def build_ioi(
    model: Model, n: int, seed: int, template: str = "mixed", corruption: str = "abc"
) -> Task:
    """``n`` IOI prompts (see the module docstring)."""
    toy = getattr(model, "circuitgraph_family", "") == "toy"
    names = _single_token_names(model, toy)
    sentences, places = (TOY, TOY_PLACES) if toy else (ENGLISH, PLACES)
    space = "" if toy else " "
    rng = random.Random(seed)
    clean, corrupted, answers, wrong = [], [], [], []
    for i in range(n):
        order = template if template != "mixed" else ("abba", "baba")[i % 2]
        io, s, c1, c2, c3 = rng.sample(names, 5)
        sentence, place, obj = rng.choice(sentences), rng.choice(places), rng.choice(OBJECTS)
        first, second = (io, s) if order == "abba" else (s, io)
        words = {"place": place, "object": obj}
        text = sentence.format(A=first, B=second, S=s, **words)
        clean.append(text)
        corrupted.append(sentence.format(A=c1, B=c2, S=c3, **words))
        answers.append(space + io)
        wrong.append(space + s)
    task = task_from_prompts(
        model, clean, corrupted, answers, wrong=wrong, name="ioi", prepend_bos=False
    )  # make_task adds the BOS token
    return _named(task, template, corruption, seed)


def _plain_tokens(model: Model) -> list[int]:
    """Token ids of ordinary words (no special, byte or punctuation tokens)."""
    tokenizer = model.tokenizer
    special = set(getattr(tokenizer, "all_special_ids", []))
    words, spaced = [], []
    for token, index in tokenizer.get_vocab().items():
        text = tokenizer.convert_tokens_to_string([token])
        if index not in special and text.strip().isalpha() and len(text.strip()) > 1:
            words.append(index)
            if text.startswith(" "):
                spaced.append(index)
    # Sub-word tokenizers: whole words (a leading space), so the prompt reads as words.
    return sorted(spaced or words)


def build_induction(
    model: Model,
    n: int,
    seed: int,
    template: str = "repeat",
    corruption: str = "rand_second",
    length: int = 16,
    repeated: int = 15,
    common: int = 5000,
) -> Task:
    """``n`` induction prompts: ``length`` random common words, then their first
    ``repeated``; the answer is word ``repeated`` of the first copy."""
    for option, value in (("length", length), ("repeated", repeated), ("common", common)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"induction's {option} must be a positive integer, got {value!r}")
    if repeated >= length:
        raise ValueError(
            f"induction's repeated ({repeated}) must be below length ({length}): the answer is "
            "the word after the repeated ones in the first copy"
        )
    pool = _plain_tokens(model)[:common]
    if len(pool) < 2 * length:
        raise ValueError(
            f"induction needs {2 * length} plain tokens; the tokenizer has {len(pool)}"
        )
    generator = random.Random(seed)
    rows = []
    for _ in range(n):
        first = generator.sample(pool, length)
        other = generator.sample([t for t in pool if t not in first], repeated)
        clean = first + first[:repeated]
        corrupted = first + other
        answer = first[repeated]
        wrong = generator.choice([t for t in first if t != answer and t != first[repeated - 1]])
        rows.append((clean, corrupted, answer, wrong))
    decode = model.tokenizer.decode
    clean, corrupted, answer, wrong = (list(column) for column in zip(*rows, strict=True))
    n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
    if isinstance(n_ctx, int) and len(clean[0]) > n_ctx:
        raise ValueError(f"induction prompts have {len(clean[0])} tokens; the model reads {n_ctx}")
    task = Task(
        name="induction",
        model_name=model_name(model),
        template=template,
        corruption=corruption,
        seed=seed,
        clean_tokens=torch.tensor(clean, dtype=torch.long),
        corrupted_tokens=torch.tensor(corrupted, dtype=torch.long),
        answer_ids=torch.tensor(answer, dtype=torch.long),
        wrong_ids=torch.tensor(wrong, dtype=torch.long),
        corrupted_answer_ids=torch.tensor(wrong, dtype=torch.long),
        member_positions=torch.zeros(n, 0, dtype=torch.long),
        clean_prompts=[decode(row) for row in clean],
        corrupted_prompts=[decode(row) for row in corrupted],
        answers=[decode([a]) for a in answer],
    )
    return task


NOUNS = ("war", "strike", "trip", "project", "reign", "drought")


def _year_candidates(tokenizer: Any, prefix: str, space: str) -> tuple[list[int], bool]:
    """Candidate tokens after ``prefix`` and whether they are two-digit years (else digits)."""
    base = tokenizer.encode(prefix, add_special_tokens=False)
    extra = [tokenizer.encode(f"{prefix}{space}{e:02d}", add_special_tokens=False)[len(base) :]
             for e in range(100)]  # fmt: skip
    if all(len(x) == 1 for x in extra) and len({x[0] for x in extra}) == 100:
        return [x[0] for x in extra], True
    digits = [
        tokenizer.encode(f"{prefix}{d}", add_special_tokens=False)[len(base) :] for d in range(10)
    ]
    if all(len(x) == 1 for x in digits) and len({x[0] for x in digits}) == 10:
        return [x[0] for x in digits], False
    raise ValueError(
        "greater_than_years needs years that are one token each (00-99) or digits that are one "
        "token each after the century; this tokenizer has neither"
    )


def build_greater_than_years(
    model: Model, n: int, seed: int, template: str = "war", corruption: str = "01"
) -> Task:
    """``n`` greater-than prompts with the prob_diff metric (see the module docstring)."""
    toy = getattr(model, "circuitgraph_family", "") == "toy"
    space, nouns = (" ", NOUNS[:1]) if toy else ("", NOUNS)
    tokenizer, rng = model.tokenizer, random.Random(seed)
    candidates, two_digit = _year_candidates(tokenizer, "The war lasted from the year 17", space)
    starts = list(range(2, 99)) if two_digit else list(range(9, 90, 10))
    clean, corrupted, answers, wrong, signs = [], [], [], [], []
    for _ in range(n):
        noun, century, start = rng.choice(nouns), rng.randrange(11, 18), rng.choice(starts)
        text = "The {noun} lasted from the year {c}{s}{yy} to the year {c}"
        clean.append(text.format(noun=noun, c=century, s=space, yy=f"{start:02d}"))
        corrupted.append(text.format(noun=noun, c=century, s=space, yy="01"))
        bound = start if two_digit else start // 10  # candidates above it mean a later year
        answers.append(tokenizer.decode([candidates[bound + 1]]))
        wrong.append(tokenizer.decode([candidates[bound]]))
        signs.append([1 if value > bound else -1 for value in range(len(candidates))])
    task = task_from_prompts(
        model, clean, corrupted, answers, wrong=wrong, name="greater_than_years",
        prepend_bos=False,
    )  # fmt: skip
    ids = torch.tensor(candidates, dtype=torch.long).expand(n, -1).clone()
    task = replace(task, prob_ids=ids, prob_signs=torch.tensor(signs, dtype=torch.long))
    return _named(task, template, corruption, seed)


def _named(task: Task, template: str, corruption: str, seed: int) -> Task:
    return replace(task, template=template, corruption=corruption, seed=seed)


STANDARD_TASKS: dict[str, StandardTask] = {
    "ioi": StandardTask(("mixed", "abba", "baba"), ("abc",), build_ioi),
    "induction": StandardTask(("repeat",), ("rand_second",), build_induction),
    "greater_than_years": StandardTask(("war",), ("01",), build_greater_than_years),
}


def make_standard_task(
    name: str,
    model: Model,
    n: int,
    seed: int,
    template: str | None,
    corruption: str | None,
    **options: Any,
) -> Task:
    """Build standard task ``name``; ValueError for a template or corruption it lacks (None:
    its first corruption)."""
    spec = STANDARD_TASKS[name]
    template = template or spec.templates[0]
    if template not in spec.templates:
        raise ValueError(
            f"unknown template {template!r} for task {name!r}; known: {spec.templates}"
        )
    corruption = corruption or spec.corruptions[0]
    if corruption not in spec.corruptions:
        raise ValueError(
            f"unknown corruption {corruption!r} for task {name!r}; known: {spec.corruptions}"
        )
    known = [
        p for p in inspect.signature(spec.build).parameters
        if p not in ("model", "n", "seed", "template", "corruption")
    ]  # fmt: skip
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ValueError(
            f"task {name!r} has no option {unknown[0]!r}; its options: {known or 'none'}"
        )
    return spec.build(model, n, seed, template, corruption, **options)
