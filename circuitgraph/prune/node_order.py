"""The order in which node pruning tries heads and MLPs: one sweep's candidates (backward,
forward or seeded random), and the sweeps of ``backward_forward`` and ``repeat``."""

from __future__ import annotations

import random
from dataclasses import dataclass, replace

from circuitgraph.options import NodeOrder


@dataclass(frozen=True)
class Candidate:
    """One thing to try removing: a head or MLP (at one position when position-wise)."""

    name: str
    sender: int  # index in the scorer's layout
    pos: int  # mask position (0 when position-free)
    stage: int  # 2L for a head of layer L, 2L + 1 for MLP L: where the forward pass reads it
    kind: str


def candidates_of_sweep(
    layout, include_mlps: bool, forward: bool, n_positions: int | None
) -> list[Candidate]:
    """Candidates of one sweep (see ``Order``); position-wise, each node's positions go last
    to first."""
    layers = range(layout.n_layers) if forward else reversed(range(layout.n_layers))
    nodes: list[Candidate] = []
    for L in layers:
        heads = [
            Candidate(f"a{L}.{h}", layout.head_index(L, h), 0, 2 * L, "head")
            for h in range(layout.n_heads)
        ]
        mlp = [Candidate(f"m{L}", layout.mlp_index(L), 0, 2 * L + 1, "mlp")] * include_mlps
        nodes += heads + mlp if forward else mlp + heads
    if n_positions is None:
        return nodes
    return [
        replace(c, name=f"{c.name}@{pos}", pos=pos)
        for c in nodes
        for pos in reversed(range(n_positions))
    ]


def sweeps(
    order: NodeOrder, layout, include_mlps: bool, n_positions: int | None, seed: int, repeat: bool
):
    """Yield the candidate list of each sweep; the caller stops after a sweep removes nothing
    (``backward_forward``, and any order with ``repeat``, sweep until then)."""
    backward = candidates_of_sweep(layout, include_mlps, False, n_positions)
    if order is not NodeOrder.BACKWARD_FORWARD:
        if order is NodeOrder.RANDOM:
            random.Random(seed).shuffle(backward)
        sweep = (
            candidates_of_sweep(layout, include_mlps, True, n_positions)
            if order is NodeOrder.FORWARD
            else backward
        )
        yield sweep
        while repeat:
            yield sweep
    else:
        forward = candidates_of_sweep(layout, include_mlps, True, n_positions)
        while True:
            yield backward
            yield forward
