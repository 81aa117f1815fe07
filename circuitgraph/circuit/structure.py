"""The full graph of a model: every node and edge a circuit may hold, and checks of names.

``full_structure(config)`` lists the nodes and edges for a ``CircuitConfig`` (cached):
edges run from a sender output to every later receiver input, plus each head's internal
edges from its q/k/v inputs (see ``circuitgraph.circuit.nodes`` for the naming). The checks turn
names or edges from users and files into one clear ValueError.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import networkx as nx

from circuitgraph.circuit.nodes import (
    QKV,
    CircuitConfig,
    Node,
    NodeKind,
    logits_name,
    node_sort_key,
)


@dataclass(frozen=True)
class FullStructure:
    """The full graph of a config as plain dicts; shared and cached, so treat as read-only."""

    nodes: dict[str, dict[str, Any]]
    succ: dict[str, dict[str, dict[str, Any]]]

    def has_edge(self, sender: str, receiver: str) -> bool:
        """Whether ``sender -> receiver`` is an edge of the full graph."""
        return receiver in self.succ.get(sender, {})

    @property
    def n_edges(self) -> int:
        """Number of edges, head-internal ones included."""
        return sum(len(targets) for targets in self.succ.values())


def _layer_nodes(config: CircuitConfig, layer: int, pos: int | None) -> list[Node]:
    """Receiver inputs of attention in ``layer`` (q/k/v nodes, or the heads without split)."""
    if not config.qkv:
        return [Node(NodeKind.HEAD, layer, head=h, pos=pos) for h in range(config.n_heads)]
    nodes = [Node(NodeKind.QKV, layer, head=h, qkv="q", pos=pos) for h in range(config.n_heads)]
    kv_heads = config.n_key_value_heads
    if kv_heads is not None:  # config.gqa
        groups = range(kv_heads)
        return nodes + [
            Node(NodeKind.QKV, layer, group=g, qkv=x, pos=pos) for g in groups for x in "kv"
        ]
    return nodes + [
        Node(NodeKind.QKV, layer, head=h, qkv=x, pos=pos)
        for h in range(config.n_heads)
        for x in "kv"
    ]


@lru_cache(maxsize=16)
def full_structure(config: CircuitConfig) -> FullStructure:
    """Nodes (name -> attributes) and edges (sender -> receiver -> attributes) of the full graph.

    >>> full = full_structure(CircuitConfig("toy", n_layers=2, n_heads=2, qkv=False))
    >>> full.n_edges
    26
    """
    nodes: dict[str, dict[str, Any]] = {}
    succ: dict[str, dict[str, dict[str, Any]]] = {}

    def add_edge(sender: str, receiver: str, attrs: dict[str, Any]) -> None:
        succ.setdefault(sender, {})[receiver] = attrs

    for pos in config.positions or (None,):
        senders = [Node(NodeKind.EMBED, -1, pos=pos)]
        for layer in range(config.n_layers):
            heads = [Node(NodeKind.HEAD, layer, head=h, pos=pos) for h in range(config.n_heads)]
            for receiver in _layer_nodes(config, layer, pos):
                attrs = {"qkv": receiver.qkv} if receiver.qkv else {}
                for sender in senders:
                    add_edge(sender.name, receiver.name, dict(attrs))
            for h, head in enumerate(heads) if config.qkv else ():
                for x in QKV:
                    add_edge(config.input_name(layer, h, x, pos), head.name, {"qkv": x})
            mlp = Node(NodeKind.MLP, layer, pos=pos)
            for sender in senders if config.parallel else senders + heads:
                add_edge(sender.name, mlp.name, {})
            senders = senders + heads + [mlp]
        for sender in senders:
            add_edge(sender.name, logits_name(pos), {})
        for node in senders:
            nodes[node.name] = node.attrs()
        for layer in range(config.n_layers if config.qkv else 0):
            for node in _layer_nodes(config, layer, pos):
                nodes[node.name] = node.attrs()
        nodes[logits_name(pos)] = Node(NodeKind.LOGITS, config.n_layers, pos=pos).attrs()
    ordered = {name: nodes[name] for name in sorted(nodes, key=node_sort_key)}
    return FullStructure(ordered, {u: succ[u] for u in sorted(succ, key=node_sort_key)})


def resolve_names(config: CircuitConfig, names: Iterable[str]) -> dict[str, list[str]]:
    """Map each name to full-graph names; without ``@P`` a name in a positional config means
    every position. ValueError lists the unknown names and what valid names look like."""
    full = full_structure(config)
    resolved: dict[str, list[str]] = {}
    for name in names:
        expand = config.positions and isinstance(name, str) and "@" not in name
        resolved[name] = [f"{name}@{p}" for p in config.positions or ()] if expand else [name]
    bad = [name for name, found in resolved.items() if any(n not in full.nodes for n in found)]
    if bad:
        raise ValueError(
            f"unknown node names for {config.describe()} (qkv={config.qkv}): {bad}; "
            f"valid names look like {config.example_names()}"
        )
    return resolved


def check_edges(config: CircuitConfig, edges: Iterable[tuple[str, str]]) -> None:
    """ValueError naming the edges (between known nodes) that are not in the full graph."""
    full = full_structure(config)
    bad = [(u, v) for u, v in edges if not full.has_edge(u, v)]
    if bad:
        raise ValueError(
            f"edges not in the full graph of {config.describe()} (qkv={config.qkv}): "
            f"{bad[:20]}; edges go from a sender output to a later receiver input"
        )


def check_structure(
    config: CircuitConfig, nodes: Iterable[str], edges: Iterable[tuple[str, str]]
) -> None:
    """ValueError unless ``nodes`` are known, ``edges`` are acyclic, join listed nodes and are
    edges of the full graph (used when reading files)."""
    nodes, edges = list(nodes), list(edges)
    unknown = [n for n in nodes if n not in full_structure(config).nodes]
    if unknown:
        raise ValueError(f"unknown nodes for {config.describe()}: {unknown[:20]}")
    graph = nx.DiGraph(edges)
    if not nx.is_directed_acyclic_graph(graph):
        cycle = [u for u, _ in nx.find_cycle(graph)]
        raise ValueError(f"edges contain a cycle: {' -> '.join(cycle + cycle[:1])}")
    stray = sorted(set(graph) - set(nodes))
    if stray:
        raise ValueError(f"edge endpoints missing from 'nodes': {stray[:20]}")
    check_edges(config, edges)


def internal_edges(config: CircuitConfig, nodes: Iterable[str]) -> set[tuple[str, str]]:
    """Head-internal edges implied by ``nodes``: each q/k/v input to its own head, and a GQA
    k/v group node to those heads of its group that are present (directly or via their q)."""
    full = full_structure(config)
    nodes = list(nodes)
    inputs = [n for n in nodes if full.nodes[n]["kind"] == NodeKind.QKV]
    heads = {n for n in nodes if full.nodes[n]["kind"] == NodeKind.HEAD}
    heads |= {v for n in inputs if full.nodes[n]["head"] is not None for v in full.succ[n]}
    return {(n, v) for n in inputs for v in full.succ[n] if v in heads}
