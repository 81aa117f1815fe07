"""Train ``toy-seq``: a small GPT-2-style model on every toy-format sequence task.

Deterministic (seeded data and initialisation, single-threaded training). The weights
(``model.safetensors``, ``config.json``) and the word-level tokenizer are written to
``circuitgraph/data/``; ``python -m circuitgraph.toy train`` reproduces them.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import TYPE_CHECKING, cast

import torch

from circuitgraph.models.loading import TOY_DIR
from circuitgraph.tasks import list_tasks, make_task
from circuitgraph.toy.vocabulary import build_toy_tokenizer, save_toy_tokenizer

if TYPE_CHECKING:
    from transformers import GPT2LMHeadModel

    from circuitgraph.models.model_type import Model

EVAL_SEED = 10_000  # held-out prompts are generated from seeds the training never uses


@dataclass(frozen=True)
class ToyTrainingConfig:
    n_layers: int = 3
    n_heads: int = 4
    d_model: int = 128
    d_mlp: int = 512
    n_ctx: int = 32
    steps: int = 3000
    batch_size: int = 64
    learning_rate: float = 3e-3
    prompts_per_task: int = 400
    member_counts: tuple[int, ...] = (3, 4, 5)
    seed: int = 0


def toy_stand_in() -> Model:
    """What ``make_task`` needs of a model, for building the toy training data."""
    # A stand-in, not a model: make_task reads only these two (it filters nothing here).
    stand_in = SimpleNamespace(tokenizer=build_toy_tokenizer(), circuitgraph_family="toy")
    return cast("Model", stand_in)


def training_examples(config: ToyTrainingConfig) -> list[tuple[list[int], list[int]]]:
    """(token ids of prompt + answer, positions whose next token is a member) per example."""
    stand_in = toy_stand_in()
    examples = []
    for task_index, name in enumerate(list_tasks()):
        counts = [k for k in config.member_counts if _accepts(name, k)] or [None]
        n = config.prompts_per_task * len(config.member_counts) // len(counts)  # equal shares
        for k in counts:
            seed = config.seed * 1000 + task_index
            task = make_task(name, stand_in, n=n, n_members=k, seed=seed)
            full = torch.cat([task.clean_tokens, task.answer_ids[:, None]], dim=1)
            for row, members in zip(full.tolist(), task.member_positions.tolist(), strict=True):
                targets = [p - 1 for p in members[1:]] + [len(row) - 2]
                examples.append((row, targets))
    return examples


def _accepts(name: str, n_members: int) -> bool:
    """Whether task ``name`` can show ``n_members`` members (some tasks fix the count)."""
    try:
        make_task(name, toy_stand_in(), n=1, n_members=n_members)
    except ValueError:
        return False
    return True


def _batches(examples, config: ToyTrainingConfig, pad_id: int):
    rng = random.Random(config.seed)
    while True:
        batch = rng.sample(examples, config.batch_size)
        width = max(len(row) for row, _ in batch)
        tokens = torch.full((len(batch), width), pad_id)
        labels = torch.full((len(batch), width), -100)
        for i, (row, targets) in enumerate(batch):
            tokens[i, : len(row)] = torch.tensor(row)
            for position in targets:
                labels[i, position] = row[position + 1]
        yield tokens, labels


DEFAULT_OUT = Path("results") / "toy-seq"


def check_out_dir(out_dir: Path, overwrite: bool = False) -> Path:
    """ValueError for a folder the training must not write: inside the installed package
    (the shipped toy model that every example and test uses) or one that exists already."""
    out_dir = Path(out_dir)
    package = TOY_DIR.resolve().parent.parent
    if out_dir.resolve().is_relative_to(package):
        raise ValueError(
            f"--out {out_dir} is inside the circuitgraph package: training never replaces the "
            "shipped toy model; write elsewhere (default results/toy-seq)"
        )
    if out_dir.exists() and not overwrite:
        raise ValueError(f"--out {out_dir} already exists; pass --overwrite to replace it")
    return out_dir


def train(
    config: ToyTrainingConfig = ToyTrainingConfig(),
    out_dir: Path = DEFAULT_OUT,
    overwrite: bool = False,
) -> dict:
    """Train, evaluate on held-out prompts, save atomically into ``out_dir`` (weights, the
    tokenizer and ``training.json``); returns the accuracy table."""
    out_dir = check_out_dir(out_dir, overwrite)
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(config.seed)
    torch.set_num_threads(1)
    tokenizer = build_toy_tokenizer()
    bos_id, pad_id = tokenizer.bos_token_id, tokenizer.pad_token_id
    assert isinstance(bos_id, int) and isinstance(pad_id, int)  # the toy tokenizer has both
    model_config = GPT2Config(
        n_layer=config.n_layers,
        n_head=config.n_heads,
        n_embd=config.d_model,
        n_inner=config.d_mlp,
        vocab_size=len(tokenizer),
        n_positions=config.n_ctx,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=bos_id,
        eos_token_id=bos_id,
        pad_token_id=pad_id,
    )
    model = GPT2LMHeadModel(model_config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.learning_rate, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(
        optimiser, max_lr=config.learning_rate, total_steps=config.steps, pct_start=0.1
    )
    examples = training_examples(config)
    batches = _batches(examples, config, pad_id)
    started = time.perf_counter()
    model.train()
    for step in range(config.steps):
        tokens, labels = next(batches)
        logits = model(tokens).logits  # [batch, pos, vocab]
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1), labels.flatten())
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 500 == 0 or step == config.steps - 1:
            print(f"step {step:5d}  loss {loss.item():.4f}")
    model.eval()
    accuracy = held_out_accuracy(model)
    _save(model, out_dir, config, accuracy, time.perf_counter() - started)
    return accuracy


@torch.no_grad()
def held_out_accuracy(model: GPT2LMHeadModel, n: int = 200) -> dict[str, float]:
    """Top-1 accuracy of the answer per task, on prompts from unseen seeds."""
    stand_in = toy_stand_in()
    table = {}
    for name in list_tasks():
        task = make_task(name, stand_in, n=n, seed=EVAL_SEED)
        logits = model(task.clean_tokens).logits[:, -1]
        table[name] = float((logits.argmax(dim=-1) == task.answer_ids).float().mean())
    return table


def _save(
    model: GPT2LMHeadModel, out_dir: Path, config: ToyTrainingConfig, accuracy: dict, seconds: float
):
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".toy-", dir=out_dir.parent))
    try:
        model.save_pretrained(tmp)
        record = {"config": asdict(config), "held_out_accuracy": accuracy, "seconds": seconds}
        (tmp / "training.json").write_text(json.dumps(record, indent=2) + "\n")
        save_toy_tokenizer(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
