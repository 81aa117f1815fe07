"""``make_task``: build a seeded Task for a model's tokenizer, optionally filtered by the model."""

from __future__ import annotations

import math
import numbers
import random
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from circuitgraph.tasks.corruptions import (
    MIN_MEMBERS,
    Corruption,
    MemberSet,
    corrupt,
    parse_corruption,
)
from circuitgraph.tasks.custom import add_bos
from circuitgraph.tasks.filter import filter_task
from circuitgraph.tasks.sequences import (
    TASKS,
    Context,
    Family,
    TaskSpec,
    context_pool,
    get_spec,
    group_specs,
)
from circuitgraph.tasks.standard import STANDARD_TASKS, make_standard_task
from circuitgraph.tasks.task import Task
from circuitgraph.tasks.templates import TEMPLATES, PromptEncoder, Slot, tokenizer_label

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model


def model_family(model: Model) -> str:
    """The prompt-format family of a model: ``model.circuitgraph_family`` or ``"other"``."""
    return getattr(model, "circuitgraph_family", "other")


def list_tasks() -> list[str]:
    """Names of all tasks: the sequence tasks, then the standard ones (ioi, induction)."""
    return [*TASKS, *STANDARD_TASKS]


def _check_name(name: Any) -> None:
    """ValueError for an unknown task name, listing every known one."""
    if name not in TASKS and name not in STANDARD_TASKS:
        raise ValueError(f"unknown task {name!r}; known tasks: {', '.join(list_tasks())}")


def list_corruptions(task: str | None = None) -> list[str]:
    """Names of all corruptions, or of those that apply to ``task``."""
    if task is None:
        return [c.value for c in Corruption]
    _check_name(task)
    if task in STANDARD_TASKS:
        return list(STANDARD_TASKS[task].corruptions)
    k = get_spec(task).n_members
    return [c.value for c in Corruption if MIN_MEMBERS[c] <= k]


def list_templates(task: str) -> list[str]:
    """Template names that ``task`` accepts; the first is not necessarily the default."""
    _check_name(task)
    if task in STANDARD_TASKS:
        return list(STANDARD_TASKS[task].templates)
    return list(get_spec(task).templates)


@dataclass
class _Plan:
    """Tokenizer-dependent facts of one task: encoders (one per lead wording, all of one token
    length), usable members, start windows."""

    spec: TaskSpec
    encoders: list[PromptEncoder]
    members: MemberSet
    windows: list[int]

    @property
    def encoder(self) -> PromptEncoder:
        return self.encoders[0]


class RepeatedPromptsWarning(UserWarning):
    """``make_task`` was asked for more prompts than there are distinct ones."""


def _short(values: list[str], limit: int = 12) -> str:
    shown = ", ".join(repr(v) for v in values[:limit])
    return f"[{shown}, ... ({len(values)} in all)]" if len(values) > limit else f"[{shown}]"


def _plan(spec: TaskSpec, template: str, tokenizer: Any, toy: bool, k: int) -> _Plan:
    size = len(spec.values)
    if k + 1 > size:
        raise ValueError(f"task {spec.name!r} has {size} members; n_members must be < {size}")
    encoder = PromptEncoder(tokenizer, TEMPLATES[template].variants()[0], k, toy)
    good = set(encoder.choose_mode(Slot.MEMBER, spec.values))
    bad = [v for v in spec.values if v not in good]
    if bad and not spec.skip_multi_token:
        raise ValueError(
            f"task {spec.name!r}: members {_short(bad)} are not single tokens for "
            f"{tokenizer_label(tokenizer)} as template {template!r} uses them "
            f"({encoder.describe_forms(Slot.MEMBER)})"
        )
    valid = frozenset(i for i, v in enumerate(spec.values) if v in good)
    starts = range(size) if spec.cyclic else range(size - k)
    windows = [s for s in starts if all((s + j) % size in valid for j in range(k + 1))]
    if not windows:
        raise ValueError(
            f"task {spec.name!r}: no run of {k + 1} single-token members for "
            f"{tokenizer_label(tokenizer)}; multi-token members: {_short(bad)}"
        )
    sample = [spec.values[(windows[0] + j) % size] for j in range(k + 1)]
    encoders = _lead_encoders(encoder, TEMPLATES[template], tokenizer, toy, sample)
    return _Plan(spec, encoders, MemberSet(size, spec.cyclic, valid), windows)


def _lead_encoders(
    main: PromptEncoder, template: Any, tokenizer: Any, toy: bool, sample: list[str]
) -> list[PromptEncoder]:
    """Encoders of the template's lead wordings that tokenise cleanly (no unknown token, slot by
    slot, checked on the ``sample`` members) to the token length most of them share; the main
    wording's length wins ties."""
    if not template.leads:
        return [main]
    unk = getattr(tokenizer, "unk_token_id", None)
    by_length: dict[int, list[PromptEncoder]] = {}
    for variant in template.variants():
        encoder = PromptEncoder(tokenizer, variant, len(sample) - 1, toy)
        encoder.attach = dict(main.attach)
        try:
            ids = encoder.encode([], sample[:-1], sample[-1]).ids
        except ValueError:
            continue
        if unk is None or unk not in ids:
            by_length.setdefault(len(ids), []).append(encoder)
    if not by_length:
        return [main]
    groups = list(by_length.values())
    return max(groups, key=lambda g: (len(g), g[0].template == main.template))


def _context_words(plan: _Plan, k: int) -> tuple[list[str], int]:
    """Single-token context words that are no task word of the group; how many a prompt needs."""
    spec = plan.spec
    if spec.context is Context.NONE:
        return [], 0
    pool = list(context_pool(spec.context))
    if spec.context is not Context.CENTURY:
        task_words = {v.lower() for other in group_specs(spec) for v in other.values}
        pool = [w for w in pool if w.lower() not in task_words]
    words = plan.encoder.choose_mode(Slot.WORD, pool)
    need = 1 if spec.context is Context.CENTURY else k + 1
    if len(words) < need:
        raise ValueError(
            f"task {spec.name!r}: only {len(words)} {spec.context.value} words are single "
            f"tokens for {tokenizer_label(plan.encoder.tokenizer)}; need {need}"
        )
    return words, need


def _check_count(n: Any) -> None:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"n must be a whole number of prompts (an int), got {n!r}")
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")


def _resolve(
    name: str, model: Model, n: int, template: str | None, n_members: int | None
) -> tuple[TaskSpec, Family, str, int]:
    spec = get_spec(name)
    _check_count(n)
    raw_family = model_family(model)
    try:
        family = Family(raw_family)
    except ValueError:
        known = ", ".join(f.value for f in Family)
        raise ValueError(f"unknown model family {raw_family!r}; known: {known}") from None
    chosen = template or spec.default_template(family)
    if chosen not in spec.templates:
        raise ValueError(
            f"unknown template {chosen!r} for task {name!r}; known: {', '.join(spec.templates)}"
        )
    k = spec.n_members if n_members is None else n_members
    if k < 1 or (spec.fixed_members and k != spec.n_members):
        allowed = spec.n_members if spec.fixed_members else ">= 1"
        raise ValueError(f"n_members for task {name!r} must be {allowed}, got {k}")
    return spec, family, chosen, k


@dataclass(frozen=True)
class _Draw:
    """What one clean prompt shows: start index, lead wording (encoder index), context words."""

    start: int
    lead: int
    context: tuple[str, ...]


def distinct_count(n_windows: int, n_leads: int, n_words: int, need: int) -> int:
    """How many distinct clean prompts exist: starts x lead wordings x ordered context words."""
    return n_windows * n_leads * math.perm(n_words, need)


def _shared_draws(
    spec: TaskSpec, windows: list[int], n_leads: int, words: list[str], need: int, n: int, seed: int
) -> list[_Draw]:
    """``n`` distinct draws (repeating only when fewer exist), starts balanced in shuffled
    blocks of all windows.

    Seeded by the group, so paired tasks draw the same starts and words prompt for prompt.
    """
    shared = random.Random(f"{spec.group or spec.name}|{len(windows)}|{n_leads}|{need}|{seed}")
    total = distinct_count(len(windows), n_leads, len(words), need)
    if n > total:
        warnings.warn(
            f"task {spec.name!r} has {total} distinct prompts for this tokenizer and template; "
            f"{n} requested, so {n - total} are repeats",
            RepeatedPromptsWarning,
            stacklevel=3,
        )
    if need == 0:  # every (start, lead) pair once per round of len(windows) * n_leads
        leads = {s: shared.sample(range(n_leads), n_leads) for s in windows}
        draws: list[_Draw] = []
        while len(draws) < n:
            for r in range(n_leads):
                block = list(windows)
                shared.shuffle(block)
                draws += [_Draw(s, leads[s][r], ()) for s in block]
        return draws[:n]
    draws, seen = [], set()
    while len(draws) < n:
        block = list(windows)
        shared.shuffle(block)
        for start in block:
            while True:
                draw = _Draw(start, shared.randrange(n_leads), tuple(shared.sample(words, need)))
                if draw not in seen or len(seen) >= total:
                    break
            seen.add(draw)
            draws.append(draw)
    return draws[:n]


def make_task(
    name: str,
    model: Model,
    n: int = 64,
    corruption: str | Corruption | None = None,
    seed: int = 0,
    template: str | None = None,
    filter: bool = False,
    n_members: int | None = None,
    prepend_bos: bool | None = None,
    **options: Any,
) -> Task:
    """Generate ``n`` clean prompts of task ``name`` and their corrupted twins.

    Only ``model.tokenizer`` and ``model_family(model)`` are read, and ``model(tokens)``
    when ``filter`` is set. The clean prompts are distinct while distinct ones remain
    (start x lead wording x context words; a :class:`RepeatedPromptsWarning` says how many
    exist when ``n`` is larger). Start values cycle through every usable start in shuffled
    blocks (balanced); the ``lists`` template (SmolLM2's default) varies the lead wording
    ("Here is a list:", "This is a sequence:", ...) among wordings of one token length.
    Tasks of one group (``born_in_*``, ``lost_in_*``, ``done_in_*``) get the same context
    words and starts prompt for prompt for the same seed.
    With ``filter=True`` only prompts whose top token is the answer and with
    p(answer) > 2 p(wrong) are kept, so the Task may hold fewer than ``n`` prompts.
    ``options`` go to a standard task's builder (``induction``: ``length``, ``repeated``,
    ``common``; see :mod:`circuitgraph.tasks.standard`); the sequence tasks take none.
    ``corruption`` None is the task's own default: ``rand_all`` for the sequence tasks, the
    first of :func:`list_corruptions` (``name``) for the standard ones.
    ``prepend_bos`` puts the tokenizer's BOS token first; None means the model's default
    (``model.circuitgraph_prepend_bos``: GPT-2 and Pythia yes, as TransformerLens does).

    >>> from types import SimpleNamespace
    >>> from circuitgraph.toy.vocabulary import build_toy_tokenizer
    >>> toy = SimpleNamespace(tokenizer=build_toy_tokenizer(), circuitgraph_family="toy")
    >>> task = make_task("months", toy, n=2, seed=1)
    >>> task.clean_prompts[0], task.answers[0]
    ('Here is a list : January , February , March , April ,', 'May')
    """
    _check_name(name)
    if name in STANDARD_TASKS:
        if n_members is not None:
            raise ValueError(
                f"task {name!r} shows no sequence members: n_members applies to the sequence "
                "tasks (see list_tasks())"
            )
        _check_count(n)
        chosen = None if corruption is None else str(getattr(corruption, "value", corruption))
        task = make_standard_task(name, model, n, seed, template, chosen, **options)
        task = add_bos(task, model, prepend_bos)
        return filter_task(task, model) if filter else task
    if options:
        raise ValueError(f"task {name!r} takes no option {sorted(options)[0]!r}")
    spec, family, template_name, k = _resolve(name, model, n, template, n_members)
    corruption = parse_corruption("rand_all" if corruption is None else corruption)
    if k < MIN_MEMBERS[corruption]:
        raise ValueError(
            f"corruption {corruption.value!r} needs at least {MIN_MEMBERS[corruption]} "
            f"members; task {name!r} shows {k}"
        )
    toy = family is Family.TOY
    plan = _plan(spec, template_name, model.tokenizer, toy, k)
    windows = set(plan.windows)
    for other in group_specs(spec):
        if other is not spec:
            windows &= set(_plan(other, template_name, model.tokenizer, toy, k).windows)
    if not windows:
        raise ValueError(f"task {name!r}: no start value is usable by every paired task")
    words, need = _context_words(plan, k)

    draws = _shared_draws(spec, sorted(windows), len(plan.encoders), words, need, n, seed)
    rng = random.Random(f"{spec.name}|{corruption.value}|{k}|{seed}")
    size, values = len(spec.values), spec.values
    clean, corrupted, wrong = [], [], []
    for draw in draws:
        encoder = plan.encoders[draw.lead]
        ctx = list(draw.context) * (k + 1) if spec.context is Context.CENTURY else draw.context
        members = [(draw.start + j) % size for j in range(k)]
        answer = (draw.start + k) % size
        bad_members, continuation = corrupt(corruption, members, answer, plan.members, rng)
        clean.append(encoder.encode(ctx, [values[i] for i in members], values[answer]))
        shown = [values[i] for i in bad_members]
        corrupted.append(encoder.encode(ctx, shown, values[continuation]))
        wrong.append(encoder.answer_token(values[members[-1]]))
    lengths = {len(e.ids) for e in clean + corrupted}
    if len(lengths) != 1:
        raise ValueError(f"task {name!r}: prompts tokenise to different lengths {lengths}")
    (seq_len,) = lengths
    n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
    if isinstance(n_ctx, int) and seq_len > n_ctx:
        raise ValueError(
            f"task {name!r} has prompts of {seq_len} tokens but the model reads at most {n_ctx} "
            "(n_ctx): use a model with a longer context"
        )

    tokenizer = model.tokenizer
    task = Task(
        name=name,
        model_name=str(getattr(getattr(model, "cfg", None), "model_name", "") or ""),
        template=template_name,
        corruption=corruption.value,
        seed=seed,
        clean_tokens=torch.tensor([e.ids for e in clean], dtype=torch.long),
        corrupted_tokens=torch.tensor([e.ids for e in corrupted], dtype=torch.long),
        answer_ids=torch.tensor([e.answer_id for e in clean], dtype=torch.long),
        wrong_ids=torch.tensor(wrong, dtype=torch.long),
        corrupted_answer_ids=torch.tensor([e.answer_id for e in corrupted], dtype=torch.long),
        member_positions=torch.tensor([e.member_positions for e in clean], dtype=torch.long),
        clean_prompts=[e.text for e in clean],
        corrupted_prompts=[e.text for e in corrupted],
        answers=[tokenizer.decode([e.answer_id]) for e in clean],
    )
    task = add_bos(task, model, prepend_bos)
    return filter_task(task, model) if filter else task
