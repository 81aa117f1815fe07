"""``circuitgraph tasks``: the tasks that can be run, their templates and corruptions."""

from __future__ import annotations

import argparse
from typing import Any

from circuitgraph.cli._checks import check_model
from circuitgraph.cli._common import log, quiet_libraries


def add_parsers(sub: Any) -> None:
    """Register ``tasks``."""
    p = sub.add_parser("tasks", help="list the tasks, their templates and corruptions")
    p.add_argument("names", nargs="*", help="only these tasks")
    p.add_argument("--model", help="also show an example prompt of each task for this model")
    p.set_defaults(func=run_tasks)


def template_text(name: str) -> str:
    """A template as text with two members shown, e.g. ``Here is a list: {m}, {m}, ... {a}``."""
    from circuitgraph.tasks import TEMPLATES

    t = TEMPLATES[name]
    return f"{t.lead}{t.item}{t.item} ...{t.last}".strip()


def run_tasks(args: argparse.Namespace) -> int:
    from circuitgraph.tasks import TASKS
    from circuitgraph.tasks.sequences import get_spec
    from circuitgraph.tasks.standard import STANDARD_TASKS

    if args.model:
        check_model(args.model)  # before printing anything
    standard = (
        [n for n in args.names if n in STANDARD_TASKS] if args.names else list(STANDARD_TASKS)
    )
    names = [n for n in args.names if n not in STANDARD_TASKS]
    specs = [get_spec(name) for name in names] if args.names else list(TASKS.values())
    if specs:
        _sequence_tasks(args, specs)
    if standard:
        print("\nstandard tasks (their own templates and corruptions):")
        for name in standard:
            task = STANDARD_TASKS[name]
            print(f"  {name:<19}templates: {', '.join(task.templates)}; "
                  f"corruptions: {', '.join(task.corruptions)}")  # fmt: skip
    return 0


def _sequence_tasks(args: argparse.Namespace, specs: list[Any]) -> None:
    from circuitgraph.tasks import list_corruptions
    from circuitgraph.tasks.sequences import Family

    width = max(len(s.name) for s in specs) + 2
    print(f"{'task':<{width}}members  templates (default for llama/toy first)")
    used: list[str] = []
    for spec in specs:
        default = spec.default_template(Family.LLAMA)
        ordered = [default, *(t for t in spec.templates if t != default)]
        used += [t for t in ordered if t not in used]
        print(f"{spec.name:<{width}}{spec.n_members:<9}{', '.join(ordered)}")
        print(f"{'':<{width}}{'':<9}{spec.doc}")
    print("\ntemplates ({m}: a member, {w}: a context word, {a}: the answer):")
    for name in used:
        print(f"  {name:<10}{template_text(name)}")
    print(f"\ncorruptions: {', '.join(list_corruptions())}")
    if args.model:
        _examples(args, specs)


def _examples(args: argparse.Namespace, specs: list[Any]) -> None:
    from circuitgraph.models.loading import load_model
    from circuitgraph.tasks import make_task

    if args.quiet:
        quiet_libraries()
    log(args, f"loading model {args.model}")
    model = load_model(args.model)
    print(f"\nexamples for {args.model} (clean prompt -> answer | corrupted prompt):")
    for spec in specs:
        try:
            task = make_task(spec.name, model, n=1)
        except ValueError as error:
            print(f"  {spec.name}: not available ({error})")
            continue
        print(
            f"  {spec.name} [{task.template}]: {task.clean_prompts[0]!r} -> "
            f"{task.answers[0]!r} | {task.corrupted_prompts[0]!r}"
        )
