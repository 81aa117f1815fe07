"""Shared pieces of the ``circuitgraph`` commands: parser, options, set-up, logging, timing."""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from circuitgraph.cli._arguments import (
    MAX_PROMPTS,
    device_map,
    folder_name,
    memory_size,
    prompt_count,
    seed,
)

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model
    from circuitgraph.scoring.memory import MemoryEstimate
    from circuitgraph.tasks.task import Task

PROG = "circuitgraph"


class UsageError(Exception):
    """A bad command line; reported as one ``circuitgraph: error:`` line, exit code 2."""


class Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors raise :class:`UsageError` instead of printing usage."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def add_model_task(parser: argparse.ArgumentParser, n: int = 32) -> None:
    """--model, --task, --n, --seed, --corruption, --template, --filter, --device."""
    group = parser.add_argument_group("model and task")
    group.add_argument(
        "--model",
        required=True,
        help="toy-seq, smollm2-135m, random:<preset> or a TransformerLens name",
    )
    group.add_argument("--task", help="task name (see 'circuitgraph tasks')")
    group.add_argument(
        "--task-file",
        type=Path,
        help="your own task instead: a CSV or JSONL file with columns clean, corrupted, answer "
        "and wrong and/or corrupted_answer (all its rows are used; --n, --corruption and "
        "--template apply to built-in tasks)",
    )
    group.add_argument(
        "--n", type=prompt_count, default=n, help=f"prompts (default {n}, at most {MAX_PROMPTS:,})"
    )
    group.add_argument(
        "--seed", type=seed, default=0, help="seed of the prompts and of --order random (default 0)"
    )
    group.add_argument(
        "--corruption",
        help="corruption of the prompts (default: the task's first, e.g. rand_all; ioi: abc)",
    )
    group.add_argument("--template", help="prompt template (default: the task's own)")
    group.add_argument(
        "--filter",
        action="store_true",
        help="keep only prompts the model gets right (p(answer) > 2 p(wrong))",
    )
    group.add_argument("--device", help="torch device: cpu, cuda, cuda:<index>, mps (default cpu)")
    group.add_argument(
        "--device-map",
        type=device_map,
        help="instead of --device, a Hugging Face device map for from_pretrained: auto, "
        'balanced, sequential, a device, or JSON such as \'{"": "cuda:1"}\' (hub models, '
        "toy-seq, smollm2-135m); the whole model must land on one device",
    )
    group.add_argument(
        "--prepend-bos",
        action=argparse.BooleanOptionalAction,
        help="start every prompt with the BOS token (default: the model family's, yes for "
        "GPT-2 and Pythia hub models as in TransformerLens, no otherwise)",
    )
    group.add_argument(
        "--max-memory",
        type=memory_size,
        help="memory budget: a number of GiB (8) or a size with a unit (512MiB, 8GiB, 8GB); "
        "caches and masked passes run over chunks of prompts and circuits that fit it; refused "
        "up front if even one prompt at a time does not. Without it a run whose estimate "
        "exceeds the memory available is refused",
    )
    group.add_argument(
        "--dtype",
        default="float32",
        help="weights and activations: float32 (default), float64, bfloat16 or float16 "
        "(metrics are accumulated in float32 at least)",
    )


def add_output(parser: argparse.ArgumentParser) -> None:
    """--out and --overwrite (see :func:`prepare_output`)."""
    parser.add_argument(
        "--out",
        type=folder_name,
        default="results",
        help="results folder: writes <out>/<model>/<task>/<run>/ (default: results)",
    )
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing run folder of the same name (default: refuse)",
    )


def prepare_output(args: argparse.Namespace, target: Path) -> None:
    """Fail now, before any work, if ``target`` cannot be written or already exists (unless
    --overwrite). Pass ``overwrite=args.overwrite`` to ``atomic_folder`` as well."""
    from circuitgraph.results import check_new, check_writable

    check_writable(target)
    check_new(target, args.overwrite)


@dataclass
class Clock:
    """Wall-clock timings of named stages, and the start time."""

    started: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())
    timings: dict[str, float] = field(default_factory=dict)
    _begin: float = field(default_factory=time.perf_counter)

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        begin = time.perf_counter()
        try:
            yield
        finally:
            self.timings[name] = round(time.perf_counter() - begin, 3)

    def record(self) -> dict[str, Any]:
        return {
            "started": self.started,
            "finished": datetime.now(timezone.utc).isoformat(),
            "timings_s": {**self.timings, "total": round(time.perf_counter() - self._begin, 3)},
        }


def log(args: argparse.Namespace, message: str) -> None:
    """A progress message on stderr (silent with --quiet)."""
    if not args.quiet:
        print(f"{PROG}: {message}", file=sys.stderr, flush=True)


def score_meaning(args: argparse.Namespace) -> str:
    """What the printed metrics of a circuit mean for these options (everything outside the
    circuit ablated; the metric pruned on is printed first)."""
    if getattr(args, "normalise", "full") == "clean_corrupt":
        normalised = "scaled so 1 = the full model and 0 = the model on corrupted prompts"
    else:
        normalised = "as a fraction of the full model's (1 = as good as it)"
    lines = [
        "normalised logit diff: the logit difference (answer minus the last member shown) "
        f"with only the circuit, {normalised}; logit diff: the same, unscaled",
        "kl: KL divergence of the circuit's next-token distribution from the full model's "
        "(0 = the same); top-1 accuracy: share of prompts whose top token is the answer",
    ]
    if str(getattr(args, "model", "")).startswith("tracr:") or getattr(args, "metric", "") == "l2":
        lines.append(
            "l2: squared distance of the circuit's outputs from the full model's, averaged over "
            "the positions read (0 = the same); tasks without answers have no logit diff"
        )
    if getattr(args, "metric", None) == "prob_diff":
        lines.append(
            "normalised prob diff: probability of the good answers minus the bad ones, "
            f"{normalised}"
        )
    return "\n".join(lines)


def command_line(argv: list[str]) -> str:
    return shlex.join([PROG, *argv])


def quiet_libraries() -> None:
    """Turn off the progress bars of transformers and the Hugging Face hub."""
    import os

    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    try:
        from transformers.utils import logging as hf_logging
    except ImportError:
        return
    hf_logging.disable_progress_bar()


def check_context(args: argparse.Namespace, model: Model, task: Task) -> None:
    """ValueError if the prompts are longer than the model's context window."""
    n_ctx = getattr(model.cfg, "n_ctx", None)
    if n_ctx is not None and task.seq_len > n_ctx:
        raise ValueError(
            f"task {args.task!r} has prompts of {task.seq_len} tokens but model "
            f"{args.model!r} reads at most {n_ctx} (n_ctx); use a model with a longer context"
        )


def check_available(args: argparse.Namespace, task: Task, memory: MemoryEstimate) -> None:
    """ValueError, before any pruning, when a run without --max-memory is estimated to need
    more memory than the device has available: suggest a budget that chunks it, or fewer
    prompts when even one prompt at a time would not fit."""
    from circuitgraph.scoring.memory import GIB, available_bytes

    full_graph_edges = getattr(args, "method", None) == "edges" and args.threshold is None
    method = "edges" if full_graph_edges else "nodes"
    available = available_bytes(args.device)
    if available is None or memory.total(method) <= available:
        return
    need = (
        f"{len(task)} prompts of {task.seq_len} tokens need about "
        f"{memory.total(method) / GIB:.1f} GiB ({method}), more than the "
        f"{available / GIB:.1f} GiB available on {args.device}"
    )
    budget = math.floor(0.8 * available / GIB * 10) / 10
    if method == "nodes" and memory.minimum(method) <= 0.8 * available and budget > 0:
        raise ValueError(f"{need}: pass --max-memory {budget:g}GiB to run in chunks that fit")
    fewer = "fewer rows in --task-file" if getattr(args, "task_file", None) else "a smaller --n"
    raise ValueError(f"{need}: use {fewer}, or a machine with more memory")


@dataclass
class Setup:
    """A loaded model and task (and the record of how they were made)."""

    model: Model
    task: Task
    record: dict[str, Any]


def load(args: argparse.Namespace, clock: Clock) -> Setup:
    """Load ``args.model`` and build ``args.task`` for it, timing both."""
    import torch

    from circuitgraph.models.loading import load_model, model_device
    from circuitgraph.tasks import filter_task, load_task, make_task
    from circuitgraph.tasks.custom import file_checksum

    if args.quiet:
        quiet_libraries()
    torch.manual_seed(args.seed)
    placement = getattr(args, "device_map", None)
    requested = args.device or ("cpu" if placement is None else None)
    where = requested if placement is None else f"device map {placement}"
    log(args, f"loading model {args.model} on {where}")
    with clock.stage("load_model"):
        model = load_model(args.model, device=args.device, dtype=args.dtype, device_map=placement)
    # Whatever placed it, the model is on one device: later loads (e.g. workers) use that.
    args.device = model_device(model)
    task_file = getattr(args, "task_file", None)
    log(
        args,
        f"building task {args.task}" + ("" if task_file else f" (n={args.n}, seed={args.seed})"),
    )
    with clock.stage("make_task"):
        if args.model.startswith("tracr:"):
            from circuitgraph.ground_truth.suite import make_ground_truth_task

            task = make_ground_truth_task(model, args.task)
        elif task_file is not None:
            task = load_task(task_file, model, prepend_bos=args.prepend_bos)
        else:
            task = make_task(
                args.task,
                model,
                n=args.n,
                corruption=args.corruption,
                seed=args.seed,
                template=args.template,
                prepend_bos=args.prepend_bos,
            )
        check_context(args, model, task)
        if args.filter:
            task = filter_task(task, model)
    if len(task) == 0:
        raise ValueError(f"no prompt of task {args.task!r} is left after --filter")
    from circuitgraph.scoring.memory import check_memory, estimate_memory

    memory = estimate_memory(model, task, max_memory=args.max_memory)
    log(args, f"memory: {memory.describe('nodes')}; edges {memory.total('edges') / 2**30:.2f} GiB")
    check_memory(memory, args.max_memory, "score")
    if args.max_memory is None:
        check_available(args, task, memory)
    cfg = model.cfg
    record = {
        "model": {
            "name": args.model,
            "model_name": str(cfg.model_name),
            "n_layers": int(cfg.n_layers),
            "n_heads": int(cfg.n_heads),
            "device": model_device(model),
            "device_requested": requested,
            "dtype": args.dtype,
        }
        | ({} if placement is None else {"device_map": placement}),
        "task": {
            "name": task.name,
            "n_requested": args.n,
            "n_prompts": len(task),
            "template": task.template,
            "corruption": task.corruption,
            "seed": task.seed,
            "filter": args.filter,
            "seq_len": task.seq_len,
            "prepend_bos": task.bos,
            "example_clean": task.clean_prompts[0],
            "example_corrupted": task.corrupted_prompts[0],
            "example_answer": task.answers[0],
        },
        "memory_estimate_gib": {
            m: round(memory.total(m) / 2**30, 3) for m in ("score", "nodes", "edges")
        },
    }
    if task_file is not None:  # what a rerun needs: the file and its exact bytes
        record["task"] |= {"file": str(task_file.resolve()), "sha256": file_checksum(task_file)}
    return Setup(model, task, record)
