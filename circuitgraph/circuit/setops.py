"""Set operations on circuits, elements shared by several circuits, and overlap tables.

Semantics (the same for the operators ``&``, ``|``, ``-``, ``^``, ``~`` on ``Circuit``):

* All operands node-level: the operation acts on node sets. ``embed`` and ``logits`` (at every
  position) belong to every node-level circuit and to every result. The result is node-level:
  the full graph restricted to the resulting nodes. Implied q/k/v inputs are *not* re-added, so
  under GQA ``A - B`` may keep a head whose shared k/v group node was removed together with a
  head of ``B``; ``Circuit.from_nodes(cfg, result)`` re-adds them, ``prune_dangling`` drops
  orphans.
* Otherwise the operation acts on edge sets (a node-level operand contributes all its edges) and
  the result is edge-level: the resulting edges and their endpoints.
* ``complement`` is taken inside the full graph: all other non-fixed nodes (plus embed and
  logits) for node-level, all other edges for edge-level.

With these definitions the Boolean-algebra laws hold exactly (e.g. ``A - B == A & ~B``).
Extra node and edge attributes (``effect``, ``score``, ...) come from the first operand that
holds the element. Circuits must share model signature and graph options, else ValueError.
"""

from __future__ import annotations

import copy
import math
import operator
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from itertools import combinations_with_replacement
from typing import TYPE_CHECKING, Any

import pandas as pd

from circuitgraph.circuit.nodes import CircuitConfig, NodeKind, edge_sort_key, node_sort_key
from circuitgraph.circuit.structure import full_structure
from circuitgraph.options import On, values

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Circuit

ON = values(On, exclude=(On.BOTH,))
Edge = tuple[str, str]


def check_compatible(circuits: Iterable[Circuit]) -> CircuitConfig:
    """The common config of ``circuits``; ValueError naming both models if they differ."""
    circuits = list(circuits)
    if not circuits:
        raise ValueError("need at least one circuit")
    first = circuits[0].config
    for other in (c.config for c in circuits[1:]):
        if other.signature != first.signature:
            raise ValueError(
                f"cannot combine circuits of different models: {first.describe()} and "
                f"{other.describe()}"
            )
        if other != first:
            raise ValueError(
                f"circuits of {first.describe()} have different graph options: "
                f"qkv={first.qkv}, positions={first.positions} vs "
                f"qkv={other.qkv}, positions={other.positions}"
            )
    return first


def _fixed(config: CircuitConfig) -> set[str]:
    nodes = full_structure(config).nodes
    return {n for n, d in nodes.items() if d["kind"] in (NodeKind.EMBED, NodeKind.LOGITS)}


def _elements(circuit: Circuit, level: str) -> set[Any]:
    if level == "node":
        return set(circuit.nodes) - _fixed(circuit.config)
    return set(circuit.edges)


def _combine(
    name: str, circuits: list[Circuit], combine: Callable[[list[set[Any]]], set[Any]]
) -> Circuit:
    config = check_compatible(circuits)
    level = "node" if all(c.level == "node" for c in circuits) else "edge"
    result = combine([_elements(c, level) for c in circuits])
    metadata = {"operation": name, "operands": [copy.deepcopy(c.metadata) for c in circuits]}
    assemble = type(circuits[0])._assemble
    if level == "node":
        return assemble(
            config, "node", nodes=result | _fixed(config), sources=circuits, metadata=metadata
        )
    return assemble(config, "edge", edges=result, sources=circuits, metadata=metadata)


def _binary(name: str, op: Callable[[set[Any], set[Any]], set[Any]]) -> Callable[..., Circuit]:
    def apply(a: Circuit, b: Circuit) -> Circuit:
        return _combine(name, [a, b], lambda sets: op(sets[0], sets[1]))

    apply.__name__ = name
    apply.__doc__ = f"The {name.replace('_', ' ')} of two circuits (see module docstring)."
    return apply


intersection = _binary("intersection", operator.and_)
union = _binary("union", operator.or_)
difference = _binary("difference", operator.sub)
symmetric_difference = _binary("symmetric_difference", operator.xor)


def complement(circuit: Circuit) -> Circuit:
    """Everything of the full graph that is not in ``circuit`` (same level)."""
    config = circuit.config
    full = full_structure(config)
    metadata = {"operation": "complement", "operands": [copy.deepcopy(circuit.metadata)]}
    if circuit.level == "node":
        nodes = (set(full.nodes) - set(circuit.nodes)) | _fixed(config)
        return type(circuit)._assemble(config, "node", nodes=nodes, metadata=metadata)
    edges = {(u, v) for u, targets in full.succ.items() for v in targets}
    return type(circuit)._assemble(
        config, "edge", edges=edges - set(circuit.edges), metadata=metadata
    )


def shared(
    circuits: Iterable[Circuit] | Mapping[str, Circuit], at_least: int | None = None
) -> Circuit:
    """Nodes (all node-level) or edges (otherwise) present in at least ``at_least`` circuits.

    ``at_least=None`` means all of them (the intersection); ``at_least=1`` gives the union.
    """
    circuits = list(circuits.values() if isinstance(circuits, Mapping) else circuits)
    if not circuits:
        raise ValueError("shared() needs at least one circuit, got none")
    k = len(circuits) if at_least is None else at_least
    if isinstance(k, bool) or not isinstance(k, int):
        raise TypeError(f"at_least must be an integer, got {at_least!r}")
    if not 1 <= k <= len(circuits):
        raise ValueError(f"at_least must be in 1..{len(circuits)}, got {at_least}")

    def count(sets: list[set[Any]]) -> set[Any]:
        counts = Counter(e for s in sets for e in s)
        return {e for e, n in counts.items() if n >= k}

    result = _combine("shared", circuits, count)
    result.metadata["at_least"] = k
    return result


def _checked_scores(reference: Circuit, scores: Mapping[Edge, float]) -> dict[Edge, float]:
    bad = [e for e in scores if not reference.has_edge(*e)]
    if bad:
        raise ValueError(f"scored edges not in the reference circuit: {bad[:20]}")
    nan = [e for e, s in scores.items() if math.isnan(s)]
    if nan:
        raise ValueError(f"NaN scores for edges {nan[:20]}")
    return {(e[0], e[1]): float(s) for e, s in scores.items()}  # as plain tuples


def _select(
    reference: Circuit,
    scores: Mapping[Edge, float],
    kept: dict[Edge, float],
    selection: dict[str, Any],
) -> Circuit:
    """The circuit of the ``kept`` edges; its metadata: the scores' own where they have it
    (attribution's provenance, which names its start), else the reference's, and
    ``selection``."""
    edges = {e: {**reference.edges[e], "score": s} for e, s in kept.items()}
    circuit = type(reference).from_edges(reference.config, edges)
    metadata = getattr(scores, "metadata", None) or reference.metadata
    circuit.metadata = {**copy.deepcopy(metadata), "selection": selection}
    return circuit


def top_k(reference: Circuit, scores: Mapping[Edge, float], k: int) -> Circuit:
    """Edge-level circuit of the ``k`` scored edges of ``reference`` (e.g. the full circuit)
    with the largest ``|score|``, ties broken by canonical order. Scores become the ``score``
    edge attribute; head-internal edges are added as in ``Circuit.from_edges``."""
    if k < 0:
        raise ValueError(f"k must be >= 0, got {k}")
    items = _checked_scores(reference, scores).items()
    ranked = sorted(items, key=lambda item: (-abs(item[1]), edge_sort_key(item[0])))
    return _select(reference, scores, dict(ranked[:k]), {"top_k": k})


def threshold(reference: Circuit, scores: Mapping[Edge, float], tau: float) -> Circuit:
    """Edge-level circuit of the scored edges of ``reference`` with ``|score| >= tau``."""
    kept = {e: s for e, s in _checked_scores(reference, scores).items() if abs(s) >= tau}
    return _select(reference, scores, kept, {"threshold": tau})


def components(circuit: Circuit, on: str = "nodes") -> set[Any]:
    """What overlap counts: head and MLP names (``on="nodes"``; not q/k/v, embed, logits) or
    sender-to-receiver edges (``on="edges"``; head-internal edges excluded)."""
    if on == "nodes":
        return set(circuit.components())
    if on == "edges":
        return set(circuit.sender_receiver_edges())
    raise ValueError(f"on must be one of {ON}, got {on!r}")


def jaccard(a: set[Any], b: set[Any]) -> float:
    """|a & b| / |a | b|, and 1.0 for two empty sets (two empty circuits are identical).

    >>> jaccard({"a0.0", "m0"}, {"m0"}), jaccard(set(), set())
    (0.5, 1.0)
    """
    union_ = a | b
    return len(a & b) / len(union_) if union_ else 1.0


def heads_and_mlps(circuit: Circuit) -> Circuit:
    """A node-level circuit without the Q/K/V split holding the same heads and MLPs (its own
    copy of the metadata), so node sets found with and without the split compare."""
    result = type(circuit).from_nodes(circuit.config, circuit.components(), qkv=False)
    result.metadata = copy.deepcopy(circuit.metadata)
    return result


def set_regions(sets: Mapping[str, set[Any]]) -> dict[tuple[bool, ...], set[Any]]:
    """Exclusive regions of a Venn / UpSet diagram: membership pattern -> elements in exactly
    those sets (patterns in the order of ``sets``; empty regions omitted)."""
    regions: dict[tuple[bool, ...], set[Any]] = {}
    for element in set().union(*sets.values()):
        pattern = tuple(element in s for s in sets.values())
        regions.setdefault(pattern, set()).add(element)
    return regions


def sorted_elements(elements: Iterable[Any]) -> list[Any]:
    """Node names or (sender, receiver) edges in canonical order."""

    def key(element: Any) -> tuple[Any, ...]:
        if isinstance(element, tuple):
            return tuple(node_sort_key(n) for n in element)
        return node_sort_key(element)

    return sorted(elements, key=key)


def _on_values(on: str) -> tuple[str, ...]:
    if on == "both":
        return ON
    if on not in ON:
        raise ValueError(f"on must be 'nodes', 'edges' or 'both', got {on!r}")
    return (on,)


def overlap_table(named_circuits: Mapping[str, Circuit], on: str = "nodes") -> pd.DataFrame:
    """Tidy overlap table: one row per unordered pair of circuits, including each circuit with
    itself (its size row), per ``on`` value ("nodes", "edges" or "both").

    Columns: ``on, a, b, size_a, size_b, intersection, union, jaccard`` (see ``jaccard``: 1.0
    when both are empty). Counts follow ``components``.
    """
    check_compatible(named_circuits.values())
    rows = []
    for what in _on_values(on):
        sets = {name: components(c, what) for name, c in named_circuits.items()}
        for a, b in combinations_with_replacement(sets, 2):
            inter, union_ = len(sets[a] & sets[b]), len(sets[a] | sets[b])
            rows.append(
                {
                    "on": what,
                    "a": a,
                    "b": b,
                    "size_a": len(sets[a]),
                    "size_b": len(sets[b]),
                    "intersection": inter,
                    "union": union_,
                    "jaccard": jaccard(sets[a], sets[b]),
                }
            )
    columns = ["on", "a", "b", "size_a", "size_b", "intersection", "union", "jaccard"]
    return pd.DataFrame(rows, columns=columns)


def upset_table(named_circuits: Mapping[str, Circuit], on: str = "nodes") -> pd.DataFrame:
    """UpSet-style table: one row per non-empty exclusive intersection, with a boolean column
    per circuit, ``size`` and the sorted ``members``; largest first."""
    check_compatible(named_circuits.values())
    sets = {name: components(c, on) for name, c in named_circuits.items()}
    rows = [
        {
            **dict(zip(sets, pattern, strict=True)),
            "size": len(members),
            "members": sorted_elements(members),
        }
        for pattern, members in set_regions(sets).items()
    ]
    table = pd.DataFrame(rows, columns=[*sets, "size", "members"])
    order = sorted(range(len(rows)), key=lambda i: (-rows[i]["size"], str(rows[i]["members"])))
    return table.iloc[order].reset_index(drop=True)
