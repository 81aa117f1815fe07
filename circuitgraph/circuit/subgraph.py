"""A ``networkx.DiGraph`` that only takes nodes and edges of its model's full graph.

networkx's mutators accept any node or edge; a circuit must stay a sub-DAG of the full graph
of its ``CircuitConfig`` (``self.graph["config"]``), with the standard node attributes, or
scoring, saving and drawing would silently misread it. Every mutator here checks first and
changes nothing when one item is bad.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import networkx as nx

from circuitgraph.circuit.nodes import NODE_ATTRIBUTES, node_sort_key
from circuitgraph.circuit.structure import FullStructure, full_structure

Edge = tuple[str, str]


class FullGraphSubgraph(nx.DiGraph):
    """Base of :class:`circuitgraph.Circuit`: validated ``add_*`` methods and ``validate()``."""

    def _full(self) -> FullStructure:
        if "config" not in self.graph:
            raise ValueError(
                "this Circuit has no config: build circuits with Circuit.full, "
                "Circuit.from_nodes or Circuit.from_edges"
            )
        return full_structure(self.graph["config"])

    def _checked_nodes(self, names: list[Any]) -> FullStructure:
        full = self._full()
        bad = [n for n in names if not isinstance(n, str) or n not in full.nodes]
        if bad:
            config = self.graph["config"]
            raise ValueError(
                f"{bad[:10]} are not nodes of the full graph of {config.describe()} "
                f"(qkv={config.qkv}); valid names look like {config.example_names()}"
            )
        return full

    def _checked_edges(self, edges: list[Edge]) -> FullStructure:
        full = self._full()
        self._checked_nodes([n for edge in edges for n in edge])
        bad = [(u, v) for u, v in edges if not full.has_edge(u, v)]
        if bad:
            config = self.graph["config"]
            raise ValueError(
                f"edges {bad[:10]} are not in the full graph of {config.describe()} "
                f"(qkv={config.qkv}): edges go from a sender output to a later receiver "
                "input. Build circuits with Circuit.from_edges / from_nodes and combine them "
                "with the set operators (&, |, -, ^, ~)"
            )
        return full

    def add_node(self, node_for_adding: str, **attr: Any) -> None:
        """Add a node of the full graph (its standard attributes are set from its name)."""
        full = self._checked_nodes([node_for_adding])
        super().add_node(node_for_adding, **{**attr, **full.nodes[node_for_adding]})

    def add_nodes_from(self, nodes_for_adding: Iterable[Any], **attr: Any) -> None:
        """Add nodes of the full graph (names, or (name, attributes) pairs)."""
        items = [n if isinstance(n, tuple) else (n, {}) for n in nodes_for_adding]
        full = self._checked_nodes([n for n, _ in items])
        super().add_nodes_from((n, {**attr, **d, **full.nodes[n]}) for n, d in items)

    def add_edge(self, u_of_edge: str, v_of_edge: str, **attr: Any) -> None:
        """Add an edge of the full graph (and its endpoints)."""
        self.add_edges_from([(u_of_edge, v_of_edge)], **attr)

    def add_edges_from(self, ebunch_to_add: Iterable[Any], **attr: Any) -> None:
        """Add edges of the full graph, ``(u, v)`` or ``(u, v, attributes)``: all or none."""
        items = [(e[0], e[1], e[2] if len(e) > 2 else {}) for e in ebunch_to_add]
        full = self._checked_edges([(u, v) for u, v, _ in items])
        new = {n for u, v, _ in items for n in (u, v) if n not in self.nodes}
        super().add_nodes_from((n, dict(full.nodes[n])) for n in sorted(new, key=node_sort_key))
        super().add_edges_from((u, v, {**attr, **d, **full.succ[u][v]}) for u, v, d in items)

    def add_weighted_edges_from(self, ebunch_to_add: Iterable[Any], weight: str = "weight",
                                **attr: Any) -> None:  # fmt: skip
        self.add_edges_from(((u, v, {weight: w}) for u, v, w in ebunch_to_add), **attr)

    def reverse(self, copy: bool = True) -> nx.DiGraph:
        """The reversed graph: a read-only view (``copy=False``) or a plain ``nx.DiGraph``,
        since reversed edges are not a circuit's."""
        if not copy:
            return super().reverse(copy=False)
        return nx.DiGraph(self).reverse(copy=True)

    def validate(self) -> None:
        """ValueError unless every node and edge belongs to the model's full graph with its
        standard attributes (scoring, saving and drawing call this)."""
        full = self._checked_edges(list(self.edges))
        self._checked_nodes(list(self.nodes))
        wrong = [
            n
            for n, attrs in self.nodes(data=True)
            if any(attrs.get(key) != value for key, value in full.nodes[n].items())
        ]
        if wrong:
            raise ValueError(
                f"nodes {wrong[:10]} have altered standard attributes ({NODE_ATTRIBUTES})"
            )
