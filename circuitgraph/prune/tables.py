"""Tables and plots over node-pruning runs: thresholds, random orders, score against size."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.circuit.nodes import node_sort_key
from circuitgraph.figures import new_figure, save_figure
from circuitgraph.prune.nodes import prune_nodes

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer

__all__ = ["order_frequency", "plot_score_vs_size", "threshold_changes", "threshold_table"]


def _components(circuit: Circuit, mlps: bool) -> list[str]:
    return circuit.components() if mlps else circuit.heads()


def _by_threshold(circuits: Mapping[float, Circuit]) -> list[tuple[float, Circuit]]:
    if not circuits:
        raise ValueError("no circuits given")
    return sorted(circuits.items(), key=lambda item: item[0], reverse=True)


def threshold_table(circuits_by_threshold: Mapping[float, Circuit], mlps: bool = False):
    """Membership table: thresholds as rows (highest first), heads (and MLPs) as columns.

    Columns are every component in any of the circuits, in canonical order; see
    :func:`threshold_changes` for what differs from the highest threshold.

    >>> import types
    >>> cfg = types.SimpleNamespace(n_layers=1, n_heads=2, model_name="toy")
    >>> table = threshold_table({0.9: Circuit.from_nodes(cfg, ["a0.0", "a0.1"]),
    ...                          0.8: Circuit.from_nodes(cfg, ["a0.1"])})
    >>> table.to_dict("index")
    {0.9: {'a0.0': True, 'a0.1': True}, 0.8: {'a0.0': False, 'a0.1': True}}
    """
    rows = _by_threshold(circuits_by_threshold)
    names = sorted({n for _, c in rows for n in _components(c, mlps)}, key=node_sort_key)
    data = [[name in set(_components(c, mlps)) for name in names] for _, c in rows]
    index = pd.Index([t for t, _ in rows], name="threshold")
    return pd.DataFrame(data, index=index, columns=pd.Index(names, name="node"), dtype=bool)


def threshold_changes(
    circuits_by_threshold: Mapping[float, Circuit], mlps: bool = False
) -> pd.DataFrame:
    """Per threshold: sizes, score, and the heads (and MLPs) shared with / dropped from /
    added to the circuit of the highest threshold."""
    rows = _by_threshold(circuits_by_threshold)
    top = set(_components(rows[0][1], mlps))
    records = []
    for threshold, circuit in rows:
        members = set(_components(circuit, mlps))
        records.append(
            {
                "threshold": threshold,
                "n_heads": len(circuit.heads()),
                "n_mlps": len(circuit.mlps()),
                "score": circuit.metadata.get("score"),
                "shared": len(members & top),
                "dropped": sorted(top - members, key=node_sort_key),
                "added": sorted(members - top, key=node_sort_key),
            }
        )
    return pd.DataFrame.from_records(records, index="threshold")


def order_frequency(
    scorer: Scorer,
    n_orders: int = 10,
    threshold: float = 0.8,
    seed: int = 0,
    progress: bool = True,
    **kwargs: Any,
) -> pd.DataFrame:
    """How often each head and MLP stays in the circuit over ``n_orders`` random orders.

    Each run is ``prune_nodes(scorer, threshold, order="random", seed=s, **kwargs)`` with
    seeds drawn from ``seed``. Rows: every component of the model (position-wise names with
    ``positions=True``), in canonical order; columns kind, layer, head, count, frequency.
    ``attrs["sizes"]`` lists each run's number of kept components.
    """
    if n_orders < 1:
        raise ValueError(f"n_orders must be >= 1, got {n_orders}")
    seeds = np.random.SeedSequence(seed).generate_state(n_orders).tolist()
    positions = range(scorer.task.seq_len) if kwargs.get("positions") else None
    full = full_circuit(scorer.model.cfg, qkv=False, positions=positions)
    names = full.components() if kwargs.get("include_mlps", True) else full.heads()
    names = sorted(names, key=node_sort_key)
    counts = dict.fromkeys(names, 0)
    sizes = []
    for run_seed in tqdm(seeds, desc="random orders", disable=not progress):
        circuit = prune_nodes(
            scorer, threshold, order="random", seed=run_seed, progress=False, **kwargs
        )
        kept = [n for n in circuit.components() if n in counts]
        sizes.append(len(kept))
        for name in kept:
            counts[name] += 1
    table = pd.DataFrame(
        {
            "kind": [full.nodes[n]["kind"] for n in names],
            "layer": [full.nodes[n]["layer"] for n in names],
            "head": [full.nodes[n].get("head") for n in names],
            "count": [counts[n] for n in names],
            "frequency": [counts[n] / n_orders for n in names],
        },
        index=pd.Index(names, name="node"),
    )
    table.attrs["sizes"] = sizes
    table.attrs["seeds"] = seeds
    return table


def plot_score_vs_size(
    circuits_by_threshold: Mapping[float, Circuit], path: str | Path, scorer: Scorer | None = None
) -> Path:
    """Plot each circuit's score against its size (heads + MLPs), labelled by threshold.

    Scores come from ``metadata["score"]`` (set by prune_nodes) or, if given, ``scorer``.
    The file (any matplotlib format, from the suffix) is written atomically.
    """

    rows = _by_threshold(circuits_by_threshold)
    sizes = [len(c.heads()) + len(c.mlps()) for _, c in rows]
    scores = []
    for threshold, circuit in rows:
        score = circuit.metadata.get("score")
        if score is None:
            if scorer is None:
                raise ValueError(f"circuit at threshold {threshold} has no score: pass scorer=")
            score = scorer.score(circuit)
        scores.append(score)
    fig = new_figure(5, 3.5)
    ax = fig.add_subplot()
    ax.plot(sizes, scores, marker="o")
    for (threshold, _), x, y in zip(rows, sizes, scores, strict=True):
        ax.annotate(f"{threshold:g}", (x, y), textcoords="offset points", xytext=(4, 4))
    ax.set_xlabel("circuit size (heads + MLPs)")
    ax.set_ylabel("score (fraction of full model)")
    ax.grid(alpha=0.3)
    return save_figure(fig, path)
