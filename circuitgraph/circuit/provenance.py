"""Where a circuit came from: the one provenance schema of every discovery method.

:func:`provenance` builds the first keys of a discovered circuit's ``metadata``; prune_nodes,
prune_edges and attribution (:func:`~circuitgraph.prune.attribution.attribute_edges`, whose
scores hand it to ``Circuit.top_k`` and ``Circuit.threshold``) all call it, and the results
folder's ``run.json`` records the same keys (:func:`read_provenance`). The keys:

==================  ========================================================================
``method``          the discovery method: ``"nodes"``, ``"edges"`` or ``"attribution"``
``model``           the scorer's model name
``task``            the task's name
``n_prompts``       how many prompts the scorer measures
``metric``          the scorer's settings, as option values (see :mod:`circuitgraph.options`)
``ablation``
``normalise``
``direction``
``mean_reference``  the prompts whose corrupted runs gave the mean-ablation values
                    (``scorer.mean_reference``: task, template, corruption, seed, n_prompts,
                    n_distinct, sha256 of the corrupted prompts); None unless ablation is mean
``parameters``      the method's own arguments. nodes: threshold, relative, order, seed,
                    include_mlps, positions, batch_size, repeat; edges: tau, engine (``"fast"``
                    or ``"reference"``: the implementation, same decisions), order, window, qkv,
                    positions; attribution: estimator (``"eap"`` or ``"eap_ig"``), steps, qkv
``start``           the metadata of the circuit the method started from, less its per-step logs
                    (``removed``, ``kept``, ``tested``, ``untested``); None for the full graph
``prompts``         the discovery prompts in compact form: the task's ``seed``, ``template``
                    and ``corruption``; ``sequences`` and ``clean``, the sorted distinct
                    digests of its underlying sequences and of its clean prompts
                    (``Task.sequence_digests``, ``Task.prompt_digests``), which held-out
                    evaluation (``circuitgraph evaluate --held-out``) keeps clear of
==================  ========================================================================

What the method measured follows these keys (``score``, ``seconds``, its per-step logs, ...).

Files written before this schema load too (:func:`upgrade_metadata`, applied by
``Circuit.from_json``): ``"method": "prune_nodes"`` reads as ``"nodes"``, and edge pruning's
``"method": "edges"`` with the implementation in ``parameters["method"]`` reads as
``parameters["engine"]``, its metric, ablation and direction moved up from ``parameters``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from enum import Enum
from typing import TYPE_CHECKING, Any, cast

from circuitgraph.options import Engine, Method, parse_enum

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer

__all__ = ["LOGS", "PROVENANCE_KEYS", "provenance", "read_provenance", "upgrade_metadata"]

PROVENANCE_KEYS = (
    "method",
    "model",
    "task",
    "n_prompts",
    "metric",
    "ablation",
    "normalise",
    "direction",
    "mean_reference",
    "parameters",
    "start",
    "prompts",
)
LOGS = ("removed", "kept", "tested", "untested")  # per-step logs, left out of ``start``


def _plain(value: Any) -> Any:
    """An option member as its string value; anything else as it is."""
    return value.value if isinstance(value, Enum) else value


def _start(start: Any) -> dict[str, Any] | None:
    if start is None:
        return None
    metadata = getattr(start, "metadata", start)
    return {k: copy.deepcopy(v) for k, v in metadata.items() if k not in LOGS}


def provenance(
    method: str | Method, scorer: Scorer, parameters: Mapping[str, Any], start: Any = None
) -> dict[str, Any]:
    """The provenance keys (see the module docstring) of a circuit found by ``method`` with
    ``scorer`` (a :class:`~circuitgraph.scoring.scorer.Scorer`), the method's own
    ``parameters`` (option members become their values) and ``start`` (the circuit it started
    from, or its metadata; None for the full graph)."""
    return {
        "method": parse_enum(Method, method, "discovery method").value,
        "model": scorer.model_name,
        "task": scorer.task.name,
        "n_prompts": len(scorer.task),
        "metric": _plain(scorer.metric),
        "ablation": _plain(scorer.ablation),
        "normalise": _plain(scorer.normalise),
        "direction": _plain(scorer.direction),
        "mean_reference": copy.deepcopy(getattr(scorer, "mean_reference", None)),
        "parameters": {key: _plain(value) for key, value in parameters.items()},
        "start": _start(start),
        "prompts": _prompts(scorer.task),
    }


def _prompts(task: Any) -> dict[str, Any]:
    """The compact record of a scorer's prompts (the ``prompts`` key)."""

    def digests(name: str) -> list[str] | None:
        method = getattr(task, name, None)
        if not callable(method):
            return None
        return sorted({str(d) for d in cast("list[str]", method())})

    return {
        "seed": getattr(task, "seed", None),
        "template": getattr(task, "template", None),
        "corruption": getattr(task, "corruption", None),
        "sequences": digests("sequence_digests"),
        "clean": digests("prompt_digests"),
    }


def _old_edges(metadata: dict[str, Any]) -> bool:
    parameters = metadata.get("parameters")
    engines = {engine.value for engine in Engine}
    return (
        metadata.get("method") == Method.EDGES.value
        and isinstance(parameters, dict)
        and parameters.get("method") in engines
    )


def upgrade_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """``metadata`` in the current schema: old discovery metadata (``"method":
    "prune_nodes"``, or ``"edges"`` with ``parameters["method"]``) upgraded, missing
    provenance keys None; anything else returned as it is."""
    if metadata.get("method") == "prune_nodes":
        upgraded = {**metadata, "method": Method.NODES.value}
        parameters = upgraded.get("parameters")
        started = isinstance(parameters, dict) and bool(parameters.get("start"))
        upgraded.setdefault("start", {} if started else None)  # {}: some circuit, not recorded
    elif _old_edges(metadata):
        parameters = dict(metadata["parameters"])
        # the edge pruning's own settings (top-level ones came from its start circuit)
        own = ("metric", "ablation", "direction")
        moved = {k: parameters.pop(k) for k in own if k in parameters}
        engine = parameters.pop("method")
        parameters = {"tau": parameters.pop("tau", None), "engine": engine, **parameters}
        upgraded = {**metadata, **moved, "parameters": parameters}
        upgraded.setdefault("start", None)
    else:
        return metadata
    for key in PROVENANCE_KEYS:
        upgraded.setdefault(key, None)
    return upgraded


def read_provenance(metadata: Mapping[str, Any]) -> dict[str, Any]:
    """The provenance keys of a circuit's ``metadata`` (None where it has none, e.g. for the
    result of a set operation), whatever schema it was written in."""
    upgraded = upgrade_metadata(dict(metadata))
    return {key: copy.deepcopy(upgraded.get(key)) for key in PROVENANCE_KEYS}
