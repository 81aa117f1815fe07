"""How much memory scoring and pruning a model on a task take, estimated before allocating,
and the chunks that keep a run under a budget.

The big tensors are the sender caches: every head's and MLP's output at every position of
every prompt, [n, p, S, d] (S senders, d = d_model), once for the clean run and once for the
ablation, and, while edge pruning, the incremental evaluator's per-sender state of the same
size plus a batch of variants. A masked forward pass (scoring circuits, node pruning) needs
working tensors for every (variant, prompt) pair it runs at once: residual streams, every
head's write [p, H, d], attention scores, MLP activations; an edge-level pass also every
sender's live - fixed difference [p, S, d]. Those passes, and the two full runs that fill
the caches, run over chunks of prompts and of variants and concatenate the final residuals,
so chunking never changes a score. With a budget (``max_memory``) the chunks are the largest
that fit it: every prompt with as many variants as fit, else one variant at a time over as
many prompts as fit; without one, everything runs in one chunk (see :meth:`Scorer.chunks`).
Edge pruning's incremental evaluator is not chunked.

The estimate is an approximate upper bound of those tensors plus the weights, not of Python or
library overheads; ``benchmarks/memory.py`` compares it with the measured peak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from circuitgraph.scoring.layout import Layout

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model
    from circuitgraph.tasks.task import Task

GIB = 1024**3


@dataclass(frozen=True)
class Chunks:
    """How many variants (circuits) and prompts one masked forward pass runs at once."""

    variants: int
    prompts: int


@dataclass(frozen=True)
class PassCost:
    """Working bytes of a masked forward pass: ``row`` for each (variant, prompt) pair run at
    once, ``prompt`` for each prompt whatever the variants, and ``metric`` for each (variant,
    prompt) pair of the metric, which reads a chunk of variants over every prompt at once."""

    row: int
    prompt: int
    metric: int

    def bytes(self, chunks: Chunks, n: int) -> int:
        """Peak working bytes of a pass in ``chunks`` on a task of ``n`` prompts."""
        passes = chunks.prompts * (self.prompt + chunks.variants * self.row)
        return max(passes, chunks.variants * n * self.metric)

    def plan(self, variants: int, n: int, budget: float | None) -> Chunks | None:
        """The largest chunks of ``variants`` x ``n`` whose working bytes fit ``budget`` (None:
        no budget, one chunk); None when one variant of one prompt does not fit."""
        whole = Chunks(variants, n)
        if budget is None or self.bytes(whole, n) <= budget:
            return whole
        fit = (budget / n - self.prompt) // self.row  # variants over every prompt
        if self.metric:
            fit = min(fit, budget // (n * self.metric))
        if fit >= 1:
            return Chunks(int(min(fit, variants)), n)
        if n * self.metric > budget:  # the metric of one variant needs every prompt at once
            return None
        fit = budget // (self.prompt + self.row)  # prompts of one variant
        return Chunks(1, int(min(fit, n))) if fit >= 1 else None


def slices(total: int, size: int) -> list[slice]:
    """``range(total)`` in consecutive slices of at most ``size``."""
    size = max(int(size), 1)
    return [slice(start, min(start + size, total)) for start in range(0, total, size)]


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of the weights, the Scorer's caches and the largest working tensors.

    ``weights`` counts the parameters and ComponentModel's stacked copy of the attention
    weights. ``node_pruning`` and ``scoring`` are the working bytes at the chunks a budget
    allows (``budget``: bytes left for chunked working tensors once the weights, caches and
    node pruning's states are counted; None without a budget, then everything runs in one
    chunk); ``edge_pruning`` is not chunked.
    """

    weights: int
    caches: int
    node_pruning: int
    edge_pruning: int
    scoring: int = 0
    n: int = 1
    variants: int = 16
    budget: float | None = None
    node_cost: PassCost = PassCost(0, 0, 0)
    edge_cost: PassCost = PassCost(0, 0, 0)
    node_states: int = 0  # node pruning's residual streams before every stage, not chunked

    def chunks(self, variants: int, level: str = "nodes") -> Chunks:
        """Chunks of a masked pass of ``variants`` circuits at ``level`` ("nodes" or "edges")
        that fit the budget (one variant of one prompt when even that does not)."""
        cost = self.node_cost if level == "nodes" else self.edge_cost
        return cost.plan(variants, self.n, self.budget) or Chunks(1, 1)

    def total(self, method: str = "nodes") -> int:
        """Peak bytes for ``method`` ("nodes", "edges" or "score") at the chosen chunks."""
        extra = {"nodes": self.node_pruning, "edges": self.edge_pruning, "score": self.scoring}
        return self.weights + self.caches + extra[method]

    def minimum(self, method: str = "nodes") -> int:
        """Peak bytes for ``method`` in the smallest chunks (one variant of one prompt, and
        node pruning's states): what no smaller budget can run. Edge pruning is not chunked:
        its total."""
        if method == "edges":
            return self.total("edges")
        one = Chunks(1, 1)
        working = self.node_cost.bytes(one, self.n)
        if method == "score":  # a circuit may be edge-level
            working = max(working, self.edge_cost.bytes(one, self.n))
        return self.weights + self.caches + self.node_states + working

    def describe(self, method: str = "nodes") -> str:
        text = (
            f"{self.total(method) / GIB:.2f} GiB estimated for {method} (weights "
            f"{self.weights / GIB:.2f}, caches {self.caches / GIB:.2f}, working "
            f"{(self.total(method) - self.weights - self.caches) / GIB:.2f}"
        )
        if method != "edges":
            variants = self.variants if method == "nodes" else 1
            chunks = self.chunks(variants, "nodes" if method == "nodes" else "edges")
            if chunks != Chunks(variants, self.n):
                v, p = chunks.variants, chunks.prompts
                text += f"; in chunks of {v} variant{'s' * (v > 1)} x {p} prompt{'s' * (p > 1)}"
        return text + ")"


def budget_bytes(max_memory: float | None) -> float | None:
    """``max_memory`` in bytes (GiB when < 1024); ValueError unless a positive number."""
    if max_memory is None:
        return None
    if isinstance(max_memory, bool) or not isinstance(max_memory, int | float) or max_memory <= 0:
        raise ValueError(f"max_memory must be a positive number, got {max_memory!r}")
    return max_memory * GIB if max_memory < 1024 else float(max_memory)


def available_bytes(device: torch.device | str) -> int | None:
    """Memory free for a new allocation on ``device``: CUDA's free memory, or on the CPU
    Linux's MemAvailable (within the cgroup's limit when one is set); None when unknown."""
    device = torch.device(device)
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        free = int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return None
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as limit_file:
            limit = limit_file.read().strip()
        with open("/sys/fs/cgroup/memory.current", encoding="ascii") as current_file:
            current = int(current_file.read())
        if limit != "max":
            free = min(free, int(limit) - current)
    except (OSError, ValueError):
        pass
    return free


def pass_costs(model: Model, seq_len: int) -> tuple[PassCost, PassCost]:
    """Working bytes of a node-level and of an edge-level masked pass on prompts of
    ``seq_len`` tokens (see :class:`PassCost`)."""
    cfg = model.cfg
    layout = Layout.from_config(cfg)
    parameters = list(model.parameters())
    item = parameters[0].element_size() if parameters else 4
    p, S, d, H = seq_len, layout.n_senders, cfg.d_model, layout.n_heads
    d_mlp = int(getattr(cfg, "d_mlp", None) or 4 * d)
    vocab = int(getattr(cfg, "d_vocab", 0) or 0)
    # Largest of: every head's write [p, H, d] with its ablated mix (4 alive at once), the
    # attention scores [H, p, p] and q/k/v, a gated MLP's activations; plus the residuals.
    stage = max(4 * H * d, 3 * H * p + 6 * d, 3 * d_mlp + 4 * d)
    metric = 3 * vocab * 4  # float32 logits, their log-softmax and a copy (KL, accuracy)
    node = PassCost(row=p * item * (stage + 4 * d), prompt=2 * p * d * item, metric=metric)
    # An edge pass adds every sender's live - fixed [p, S, d] (and einsum's copy of it), the
    # receivers' inputs [p, 3H, d], and per prompt the fixed values' prefix sums [p, S + 1, d].
    edge_stage = max(10 * H * d, 3 * H * p + 6 * d, 3 * d_mlp + 4 * d)
    edge = PassCost(
        row=p * item * (2 * S * d + edge_stage + 4 * d),
        prompt=2 * p * (S + 1) * d * item,
        metric=metric,
    )
    return node, edge


def estimate_memory(
    model: Model, task: Task, variants: int = 16, max_memory: float | None = None
) -> MemoryEstimate:
    """Estimate for scoring ``task`` on ``model``, with batches of ``variants`` circuits,
    chunked to fit ``max_memory`` (GiB, or bytes when >= 1024; None: one chunk)."""
    cfg = model.cfg
    layout = Layout.from_config(cfg)
    parameters = list(model.parameters())
    item = parameters[0].element_size() if parameters else 4
    n, p, S, d = len(task), task.seq_len, layout.n_senders, cfg.d_model
    # The parameters, and the copy of every layer's W_Q, W_K, W_V, W_O stacked [L, ...] by
    # ComponentModel.
    H, G, d_head = layout.n_heads, layout.n_kv_heads, cfg.d_head
    stacked = layout.n_layers * (2 * H + 2 * G) * d * d_head * item
    weights = sum(p.numel() * p.element_size() for p in parameters) + stacked
    vocab = int(getattr(cfg, "d_vocab", 0) or 0)
    cache = n * p * S * d * item  # one [n, p, S, d] tensor
    # clean and corrupted sender outputs during the two full runs, plus log-probabilities
    caches = 2 * cache + n * vocab * 4
    node_cost, edge_cost = pass_costs(model, p)
    # Node pruning keeps the current circuit's residual before every stage [n, p, d].
    states = (2 * layout.n_layers + 1) * n * p * d * item
    limit = budget_bytes(max_memory)
    budget = None if limit is None else limit - weights - caches - states
    estimate = MemoryEstimate(
        weights, caches, 0, 0, n=n, variants=variants, budget=budget,
        node_cost=node_cost, edge_cost=edge_cost, node_states=states,
    )  # fmt: skip
    node_pruning = states + node_cost.bytes(estimate.chunks(variants, "nodes"), n)
    scoring = edge_cost.bytes(estimate.chunks(1, "edges"), n)
    # Edge pruning, an upper bound: the evaluator's per-sender state, its cache of every
    # receiver's input (a float64 master copy and one in the model's dtype, [n, p, 3H + 1, d]
    # per layer), the changed outputs of a batch of variants (at most every sender), one
    # layer's attention inputs.
    logits = variants * n * vocab * 4  # a batch's float32 logits
    attention_inputs = variants * n * p * 3 * layout.n_heads * d * item
    receiver_inputs = layout.n_layers * n * p * (3 * H + 1) * d * (8 + item)
    edge_pruning = cache + receiver_inputs + variants * cache + attention_inputs + logits
    return MemoryEstimate(
        weights, caches, node_pruning, edge_pruning, scoring, n, variants, budget,
        node_cost, edge_cost, states,
    )  # fmt: skip


def check_memory(estimate: MemoryEstimate, max_memory: float | None, method: str = "nodes") -> None:
    """ValueError when ``max_memory`` (bytes, or GiB when < 1024) is below what ``method``
    needs in the smallest chunks (edge pruning: its whole estimate)."""
    limit = budget_bytes(max_memory)
    if limit is None or estimate.minimum(method) <= limit:
        return
    if method == "edges":
        raise ValueError(
            f"{estimate.describe(method)} exceeds max_memory {limit / GIB:.2f} GiB: use fewer "
            "prompts (n), shorter prompts, or a node circuit as the start of edge pruning"
        )
    raise ValueError(
        f"{estimate.minimum(method) / GIB:.2f} GiB estimated for {method} even one prompt at a "
        f"time (weights {estimate.weights / GIB:.2f}, caches {estimate.caches / GIB:.2f}) "
        f"exceeds max_memory {limit / GIB:.2f} GiB: use fewer prompts (n) or shorter prompts, "
        "or a larger budget"
    )


def peak_rss_bytes() -> int:
    """This process's peak resident memory (Linux ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def cuda_peak_bytes(device: torch.device | str) -> int | None:
    """Peak CUDA memory allocated on ``device`` (None off CUDA)."""
    device = torch.device(device)
    if device.type != "cuda":
        return None
    return int(torch.cuda.max_memory_allocated(device))
