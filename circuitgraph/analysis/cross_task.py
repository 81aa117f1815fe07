"""Cross-task comparisons: score each task's circuit on every other task, and test whether a
shared sub-circuit matters more than random sets of the same size.

The paper reports, on GPT-2 small, the digits circuit at 48 % on number words and the
number-words circuit at 87 % on digits; and how much removing shared heads hurts. Both numbers
come out of the same ``Scorer`` as the circuits themselves, so they are comparable.
"""

from __future__ import annotations

import itertools
import math
import random
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from circuitgraph.analysis._common import check_same_model_tasks, resolve_heads
from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.circuit.nodes import NodeKind, head_name, mlp_name, parse_node
from circuitgraph.guards import check_random_sets
from circuitgraph.scoring.layout import NodeMasks

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer

__all__ = [
    "POOLS",
    "SubcircuitAblation",
    "ablate_subcircuit",
    "cross_task_matrix",
    "subcircuit_controls",
]


def _check_scorers(scorers: Iterable[Scorer]) -> None:
    """ValueError unless every scorer (and its task) belongs to one model."""
    scorers = list(scorers)
    check_same_model_tasks([s.task for s in scorers])
    names = {str(s.model.cfg.model_name) for s in scorers}
    if len(names) > 1:
        listing = ", ".join(f"{s.task.name!r}: {s.model.cfg.model_name!r}" for s in scorers)
        raise ValueError(f"scorers use different models ({listing})")


def _check_circuit(label: str, circuit: Circuit, scorer: Scorer) -> None:
    config = circuit.config
    ours = str(scorer.model.cfg.model_name)
    if config.model_name not in ("unknown", ours):
        raise ValueError(
            f"circuit {label!r} was found on model {config.model_name!r}, "
            f"but the scorers use {ours!r}"
        )


def cross_task_matrix(
    circuits_by_task: Mapping[str, Circuit], scorers_by_task: Mapping[str, Scorer]
) -> pd.DataFrame:
    """Score the circuit found on task A on task B, for every pair.

    Rows (index ``circuit``) are the circuits, columns (``evaluated_on``) the scorers' tasks;
    entry [A, B] = ``scorers_by_task[B].score(circuits_by_task[A])``, so the diagonal is each
    circuit's own score. ``frame.stack()`` gives the tidy long form.
    """
    if not circuits_by_task or not scorers_by_task:
        raise ValueError("need at least one circuit and one scorer")
    _check_scorers(scorers_by_task.values())
    reference = next(iter(scorers_by_task.values()))
    for label, circuit in circuits_by_task.items():
        _check_circuit(label, circuit, reference)
    values = [
        [float(scorer.score(circuit)) for scorer in scorers_by_task.values()]
        for circuit in circuits_by_task.values()
    ]
    frame = pd.DataFrame(
        values,
        index=pd.Index(list(circuits_by_task), name="circuit"),
        columns=pd.Index(list(scorers_by_task), name="evaluated_on"),
    )
    return frame


@dataclass(frozen=True)
class SubcircuitAblation:
    """Score drop from removing ``nodes`` versus removing random sets of the same make-up.

    ``drop`` = full score - ablated score (for KL: ablated - full, so larger always means more
    damage). ``pool`` names where the random sets came from, ``pool_nodes`` lists it.
    ``random_sets`` are distinct; ``possible_sets`` is how many distinct sets the pool holds.
    ``percentile``: the share of random sets (in %) whose drop is below the target's
    (ties count half); near 100 means the set matters more than chance - than sets of the
    pool, so what it means depends on the pool (see :func:`ablate_subcircuit`).
    """

    nodes: list[str]
    full_score: float
    score: float
    drop: float
    random_sets: list[list[str]]
    random_scores: np.ndarray  # [n_random]
    random_drops: np.ndarray  # [n_random]
    percentile: float
    pool: str = "outside"
    pool_nodes: list[str] = field(default_factory=list)
    possible_sets: int = 0

    @property
    def distinct_sets(self) -> int:
        """How many distinct random sets the percentile is over."""
        return len({tuple(s) for s in self.random_sets})

    def table(self) -> pd.DataFrame:
        """One row per removed set: the target first, then the random ones."""
        sets = [self.nodes, *self.random_sets]
        return pd.DataFrame(
            {
                "set": ["target"] + ["random"] * len(self.random_sets),
                "index": [0, *range(len(self.random_sets))],
                "nodes": [" ".join(s) for s in sets],
                "n_nodes": [len(s) for s in sets],
                "score": [self.score, *self.random_scores.tolist()],
                "drop": [self.drop, *self.random_drops.tolist()],
            }
        )


def _removable(cfg: Any, nodes: Iterable[str] | Circuit) -> tuple[list[str], list[str]]:
    """Validated (heads, mlps) to remove, from names or a circuit's heads and MLPs."""
    if isinstance(nodes, Circuit):
        names = nodes.components()
    else:
        names = [nodes] if isinstance(nodes, str) else list(nodes)
    heads, mlps = [], []
    for name in names:
        try:
            node = parse_node(name)
        except ValueError:
            raise ValueError(f"not a head or MLP name: {name!r} (e.g. a3.1, m2)") from None
        if node.pos is not None:
            raise ValueError(f"{name!r}: position-specific nodes cannot be removed here")
        if node.kind is NodeKind.HEAD:
            heads.append(resolve_heads(cfg, [name])[0].name)
        elif node.kind is NodeKind.MLP:
            if node.layer >= cfg.n_layers:
                last = cfg.n_layers - 1
                raise ValueError(f"unknown MLP {name!r}: the model has layers 0..{last}")
            mlps.append(name)
        else:
            raise ValueError(f"{name!r} is neither an attention head nor an MLP")
    heads, mlps = list(dict.fromkeys(heads)), list(dict.fromkeys(mlps))
    if not heads and not mlps:
        raise ValueError("no heads or MLPs to remove")
    return heads, mlps


def _without(cfg: Any, removed: set[str]) -> Circuit:
    everything = [head_name(L, h) for L in range(cfg.n_layers) for h in range(cfg.n_heads)]
    everything += [mlp_name(L) for L in range(cfg.n_layers)]
    return Circuit.from_nodes(cfg, [n for n in everything if n not in removed], qkv=False)


def _node_present(scorer: Scorer, circuit: Circuit) -> torch.Tensor:
    """The node mask ``present`` [1, P, S] of a node-level circuit."""
    masks = scorer.masks(circuit)
    assert isinstance(masks, NodeMasks)  # a node-level circuit
    return masks.present


POOLS = ("outside", "circuit")


def _draw_sets(
    pool_heads: list[str], pool_mlps: list[str], heads: int, mlps: int, n: int, seed: int
) -> tuple[list[list[str]], int]:
    """Up to ``n`` distinct random sets of ``heads`` heads and ``mlps`` MLPs from the pool
    (every possible one when the pool holds at most ``n``), and how many the pool holds."""
    possible = math.comb(len(pool_heads), heads) * math.comb(len(pool_mlps), mlps)
    rng = random.Random(seed)
    if possible <= 4 * n:  # few: enumerate them, then draw without repeats
        every = [
            sorted(h) + sorted(m)
            for h in itertools.combinations(pool_heads, heads)
            for m in itertools.combinations(pool_mlps, mlps)
        ]
        return (every if possible <= n else rng.sample(every, n)), possible
    sets: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()
    while len(sets) < n:  # many: seeded draws, a repeat drawn again
        drawn = sorted(rng.sample(pool_heads, heads)) + sorted(rng.sample(pool_mlps, mlps))
        if tuple(drawn) not in seen:
            seen.add(tuple(drawn))
            sets.append(drawn)
    return sets, possible


def _pools(
    cfg: Any, heads: list[str], mlps: list[str], pool: str | Iterable[str], circuit: Circuit | None
) -> tuple[str, list[str], list[str]]:
    """(pool name, heads, MLPs) random sets are drawn from; never a tested component."""
    removed = set(heads) | set(mlps)
    if isinstance(pool, str) and pool not in POOLS:
        raise ValueError(f"unknown pool {pool!r}; choose one of {POOLS} or pass names")
    if pool == "outside":
        names = [head_name(L, h) for L in range(cfg.n_layers) for h in range(cfg.n_heads)]
        names += [mlp_name(L) for L in range(cfg.n_layers)]
        label = "outside"
    elif pool == "circuit":
        if not isinstance(circuit, Circuit):
            raise ValueError(
                "pool='circuit' draws from a circuit's other components: pass circuit="
            )
        names, label = circuit.components(), "circuit"
    else:
        pool_heads, pool_mlps = _removable(cfg, pool)
        names, label = pool_heads + pool_mlps, "custom"
    names = [n for n in dict.fromkeys(names) if n not in removed]
    pool_heads = [n for n in names if parse_node(n).kind is NodeKind.HEAD]
    pool_mlps = [n for n in names if parse_node(n).kind is NodeKind.MLP]
    if len(pool_heads) < len(heads) or len(pool_mlps) < len(mlps):
        raise ValueError(
            f"pool {label!r} has {len(pool_heads)} heads and {len(pool_mlps)} MLPs besides the "
            f"tested ones; random sets need {len(heads)} heads and {len(mlps)} MLPs"
        )
    return label, pool_heads, pool_mlps


@torch.no_grad()
def ablate_subcircuit(
    scorer: Scorer,
    nodes: Iterable[str] | Circuit,
    n_random: int = 50,
    seed: int = 0,
    pool: str | Iterable[str] = "outside",
    circuit: Circuit | None = None,
    batch_size: int = 16,
) -> SubcircuitAblation:
    """Remove ``nodes`` (heads/MLPs, e.g. the heads shared by several tasks) from the full
    model and compare the score drop with ``n_random`` distinct random sets of as many heads
    and MLPs.

    Random sets come from a named ``pool`` and never contain a tested component:

    - ``"outside"`` (default): every head/MLP of the model outside ``nodes``. A high
      percentile says *these components matter* more than components picked at random; it
      says nothing about their being shared (most random components do little);
    - ``"circuit"``: the other components of ``circuit``. The stricter control: does the
      tested part matter more than the rest of the circuit? Small circuits hold few other
      sets (a 4-head circuit tested on 2 heads holds one other set);
    - an explicit list of names.

    The random sets are distinct (a pool that holds at most ``n_random`` gives every one of
    them once), so the percentile is over ``distinct_sets`` comparisons, and it is refused
    (:class:`~circuitgraph.guards.UncertaintyError`) over fewer than
    :data:`~circuitgraph.guards.MIN_RANDOM_SETS`: repeated draws of the same few
    sets are one comparison, not many. Removed components get the scorer's ablation values
    (mean ablation by default). :func:`subcircuit_controls` reports both pools.
    """
    if n_random < 1:
        raise ValueError(f"n_random must be >= 1, got {n_random}")
    cfg = scorer.model.cfg
    heads, mlps = _removable(cfg, nodes)
    removed = set(heads) | set(mlps)
    label, pool_heads, pool_mlps = _pools(cfg, heads, mlps, pool, circuit)
    random_sets, possible = _draw_sets(pool_heads, pool_mlps, len(heads), len(mlps), n_random, seed)
    check_random_sets(
        len(random_sets),
        f"pool {label!r} ({len(pool_heads)} heads, {len(pool_mlps)} MLPs; {possible} possible "
        f"sets of {len(heads)} heads and {len(mlps)} MLPs, n_random={n_random})",
    )
    full_score = scorer.score(full_circuit(cfg, qkv=False))
    circuits = [_without(cfg, removed)] + [_without(cfg, set(s)) for s in random_sets]
    present = torch.cat([_node_present(scorer, c) for c in circuits])  # [V, 1, senders]
    scores = torch.cat(
        [
            scorer.score_masks(NodeMasks(present[lo : lo + batch_size]))
            for lo in range(0, len(circuits), batch_size)
        ]
    ).numpy()
    sign = 1.0 if scorer.higher_is_better() else -1.0
    drops = sign * (full_score - scores)
    target, others = float(drops[0]), drops[1:]
    percentile = 100.0 * (np.sum(others < target) + 0.5 * np.sum(others == target)) / len(others)
    return SubcircuitAblation(
        nodes=heads + mlps,
        full_score=float(full_score),
        score=float(scores[0]),
        drop=target,
        random_sets=random_sets,
        random_scores=scores[1:],
        random_drops=others,
        percentile=float(percentile),
        pool=label,
        pool_nodes=pool_heads + pool_mlps,
        possible_sets=possible,
    )


def subcircuit_controls(
    scorer: Scorer,
    nodes: Iterable[str] | Circuit,
    circuit: Circuit,
    n_random: int = 50,
    seed: int = 0,
) -> pd.DataFrame:
    """:func:`ablate_subcircuit` against both pools, one row each: the pool's size, how many
    distinct random sets the percentile is over, the target's drop, the median and
    95th-percentile random drop, and the target's percentile. A pool too small to draw from
    (e.g. a circuit with fewer other components than the tested set), or holding fewer than
    :data:`~circuitgraph.guards.MIN_RANDOM_SETS` distinct sets, gives a row of NaN
    with the reason in ``note``, so the other pool still reports. Against ``"outside"`` a
    100th percentile means "these components matter", not "their sharing matters"; against
    ``"circuit"``, that they matter more than the circuit's other components."""
    rows = []
    for pool in POOLS:
        try:
            result = ablate_subcircuit(scorer, nodes, n_random, seed, pool=pool, circuit=circuit)
        except ValueError as error:
            if "pool" not in str(error):
                raise
            nan = float("nan")
            found = re.search(r"has only (\d+) distinct", str(error))
            rows.append({"pool": pool, "pool_size": nan,
                         "distinct_sets": int(found.group(1)) if found else 0, "drop": nan,
                         "random_median": nan, "random_p95": nan, "percentile": nan,
                         "note": str(error)})  # fmt: skip
            continue
        rows.append(
            {
                "pool": pool,
                "pool_size": len(result.pool_nodes),
                "distinct_sets": result.distinct_sets,
                "drop": result.drop,
                "random_median": float(np.median(result.random_drops)),
                "random_p95": float(np.percentile(result.random_drops, 95)),
                "percentile": result.percentile,
                "note": "",
            }
        )
    return pd.DataFrame(rows).set_index("pool")
