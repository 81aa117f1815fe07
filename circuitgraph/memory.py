"""How much memory scoring and pruning a model on a task take, estimated before allocating.

The big tensors are the sender caches: every head's and MLP's output at every position of
every prompt, [n, p, S, d] (S senders, d = d_model), once for the clean run and once for the
ablation, and, while edge pruning, the incremental evaluator's per-sender state of the same
size plus a batch of variants. Node pruning only keeps residual streams [V, n, p, d].
The estimate is an upper bound of those tensors plus the weights, not of Python or library
overheads; ``benchmarks/memory.py`` compares it with the measured peak.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from circuitgraph.layout import Layout

GIB = 1024**3


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes of the weights, the Scorer's caches and the largest working tensors."""

    weights: int
    caches: int
    node_pruning: int
    edge_pruning: int

    def total(self, method: str = "nodes") -> int:
        """Peak bytes for ``method`` ("nodes", "edges" or "score")."""
        extra = {"nodes": self.node_pruning, "edges": self.edge_pruning, "score": 0}[method]
        return self.weights + self.caches + extra

    def describe(self, method: str = "nodes") -> str:
        return (
            f"{self.total(method) / GIB:.2f} GiB estimated for {method} (weights "
            f"{self.weights / GIB:.2f}, caches {self.caches / GIB:.2f}, working "
            f"{(self.total(method) - self.weights - self.caches) / GIB:.2f})"
        )


def estimate_memory(model: Any, task: Any, variants: int = 16) -> MemoryEstimate:
    """Estimate for scoring ``task`` on ``model``, with batches of ``variants`` circuits."""
    cfg = model.cfg
    layout = Layout.from_config(cfg)
    parameters = list(model.parameters())
    item = parameters[0].element_size() if parameters else 4
    weights = sum(p.numel() * p.element_size() for p in parameters)
    n, p, S, d = len(task), task.seq_len, layout.n_senders, cfg.d_model
    vocab = int(getattr(cfg, "d_vocab", 0) or 0)
    cache = n * p * S * d * item  # one [n, p, S, d] tensor
    # clean and corrupted sender outputs during the two full runs, plus log-probabilities
    caches = 2 * cache + n * vocab * 4
    logits = variants * n * vocab * 4  # a batch's float32 logits
    node_pruning = variants * n * p * d * item * 4 + logits  # residual streams
    # Edge pruning, an upper bound: the evaluator's per-sender state, the changed outputs of a
    # batch of variants (at most every sender), one layer's attention inputs.
    attention_inputs = variants * n * p * 3 * layout.n_heads * d * item
    edge_pruning = cache + variants * cache + attention_inputs + logits
    return MemoryEstimate(weights, caches, node_pruning, edge_pruning)


def check_memory(estimate: MemoryEstimate, max_memory: float | None, method: str = "nodes") -> None:
    """ValueError when ``estimate`` exceeds ``max_memory`` (bytes, or GiB when < 1024)."""
    if max_memory is None:
        return
    if isinstance(max_memory, bool) or not isinstance(max_memory, int | float) or max_memory <= 0:
        raise ValueError(f"max_memory must be a positive number, got {max_memory!r}")
    limit = max_memory * GIB if max_memory < 1024 else max_memory
    if estimate.total(method) > limit:
        raise ValueError(
            f"{estimate.describe(method)} exceeds max_memory {limit / GIB:.2f} GiB: use fewer "
            "prompts (n), shorter prompts, or a node circuit as the start of edge pruning"
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
