"""Node circuits at several thresholds: nested (each pruned from the last) or independent."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from circuitgraph.circuit.graph import Circuit
from circuitgraph.prune.nodes import prune_nodes

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer


def threshold_sweep(
    scorer: Scorer, thresholds, nested: bool = True, client: Any = None, **kwargs: Any
) -> dict[float, Circuit]:
    """Prune at each threshold, highest first; with ``nested`` each circuit is pruned from the
    previous one, so lower thresholds give sub-circuits of higher ones.

    Other keyword arguments go to :func:`prune_nodes` (``start`` seeds the first run only
    when nested, every run otherwise). With a Dask ``client`` (see
    :func:`circuitgraph.parallel.connect`) the thresholds of an independent sweep
    (``nested=False``) are pruned on its workers, with the serial results; a nested sweep is
    sequential by construction.
    """
    ordered = sorted({float(t) for t in thresholds}, reverse=True)
    if client is not None:
        if nested:
            raise ValueError(
                "a nested sweep prunes each threshold from the last one's circuit, so it runs "
                "in order: pass nested=False to spread the thresholds over a cluster"
            )
        from circuitgraph.parallel import call, run_many
        from circuitgraph.prune.discovery import Discovery

        runs = [(Discovery.like(scorer, threshold=t, prune=kwargs), scorer.task) for t in ordered]
        return dict(zip(ordered, run_many(call, runs, client), strict=True))
    circuits: dict[float, Circuit] = {}
    start = kwargs.pop("start", None)
    for threshold in ordered:
        circuit = prune_nodes(scorer, threshold, start=start, **kwargs)
        circuits[threshold] = circuit
        if nested:
            start = circuit
    return circuits
