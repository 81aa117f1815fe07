"""Checks the commands run on their options before loading anything (torch included): task,
corruption and template names, task files, ``tracr:<program>`` models and model names, so a
typo costs a second, not a model load."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def check_task(args: argparse.Namespace) -> None:
    """Validate the task, corruption and template names (or the task file) before loading
    anything. With --task-file, ``args.task`` becomes the file's stem (the results folder)."""
    task_file = getattr(args, "task_file", None)
    if str(getattr(args, "model", "")).startswith("tracr:"):
        _tracr_task(args, task_file)
        return
    if getattr(args, "metric", "") is None:
        args.metric = "logit_diff"
    if (args.task is None) == (task_file is None):
        raise ValueError("give a built-in --task or your own --task-file (one of them)")
    if task_file is not None:
        if task_file.is_dir():
            raise ValueError(f"--task-file {task_file} is a folder, not a .csv or .jsonl file")
        if task_file.exists() and not task_file.is_file():
            raise ValueError(f"--task-file {task_file} is not a regular file (a pipe or device?)")
        if not task_file.is_file():
            raise ValueError(f"--task-file {task_file}: no such file")
        if task_file.suffix.lower() not in (".csv", ".jsonl"):
            raise ValueError(f"--task-file {task_file}: use a .csv or .jsonl file")
        args.task = task_file.stem
        return

    from circuitgraph.tasks import list_corruptions, list_templates

    templates = list_templates(args.task)  # ValueError naming the known tasks
    corruptions = list_corruptions(args.task)
    if args.corruption is None:
        args.corruption = corruptions[0]  # the task's default
    if args.corruption not in corruptions:
        raise ValueError(
            f"unknown corruption {args.corruption!r} for task {args.task!r}; "
            f"known: {', '.join(corruptions)}"
        )
    if args.template is not None and args.template not in templates:
        raise ValueError(
            f"unknown template {args.template!r} for task {args.task!r}; "
            f"known: {', '.join(templates)}"
        )


def _tracr_task(args: argparse.Namespace, task_file: object) -> None:
    """A ``tracr:<program>`` model of the ground-truth suite runs on its own stored task
    (``--task`` may name the program again), scored by its own metric unless --metric says
    otherwise."""
    # the suite's files read directly: importing the suite would load torch first
    data = Path(__file__).resolve().parent.parent / "data" / "tracr"
    known = sorted(p.stem for p in data.glob("*.json") if p.with_suffix(".npz").is_file())

    program = args.model.removeprefix("tracr:")
    if program not in known:
        raise ValueError(f"unknown ground-truth program {program!r}; known: {', '.join(known)}")
    if task_file is not None or args.task not in (None, program):
        raise ValueError(
            f"{args.model} runs on its own stored task: drop --task/--task-file (or pass "
            f"--task {program})"
        )
    args.task = program
    if getattr(args, "metric", "") is None:
        args.metric = json.loads((data / f"{program}.json").read_text())["metric"]


def check_model(name: str, device: str | None = "cpu", dtype: str = "float32") -> None:
    """ModelLoadError now for a model name, device (None: cpu) or dtype that cannot load
    (before any progress output)."""
    from circuitgraph.models.environment import resolve_device, resolve_dtype
    from circuitgraph.models.loading import (
        EMBEDDED_MODELS,
        ModelLoadError,
        check_hub_access,
        parse_random_name,
    )

    resolve_device("cpu" if device is None else device)
    resolve_dtype(dtype)
    if name in EMBEDDED_MODELS or name.startswith("tracr:"):  # tracr: checked by check_task
        return
    if name.startswith("random:"):
        parse_random_name(name)
        return
    from transformer_lens.supported_models import get_official_model_name

    try:
        official = get_official_model_name(name)
    except ValueError:
        raise ModelLoadError(
            f"unknown model {name!r}: not {', '.join(EMBEDDED_MODELS)}, a random:<preset> or a "
            "TransformerLens model name (see 'circuitgraph models')"
        ) from None
    check_hub_access(name, official)
