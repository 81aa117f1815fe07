"""The circuit DAG: a ``networkx.DiGraph`` over canonical node names, tied to a model config.

A node-level circuit (from node pruning) is the full graph restricted to its nodes; an
edge-level circuit keeps only its edges (and their endpoints). Node naming and the full graph
structure live in ``circuit.nodes``; set operations in ``circuit.setops``; drawing in
``circuit.render``.
"""

from __future__ import annotations

import copy as _copy
import importlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, cast

import networkx as nx

from circuitgraph.circuit.nodes import CircuitConfig, Node, NodeKind, edge_sort_key, node_sort_key
from circuitgraph.circuit.render import render as render_circuit
from circuitgraph.circuit.render import to_dot as circuit_to_dot
from circuitgraph.circuit.serialization import (
    LEVELS,
    SCHEMA_VERSION,
    circuit_from_dict,
    circuit_to_dict,
    read_json,
)
from circuitgraph.circuit.setops import (
    check_compatible,
    complement,
    difference,
    intersection,
    symmetric_difference,
    threshold,
    top_k,
    union,
)
from circuitgraph.circuit.structure import (
    check_edges,
    full_structure,
    internal_edges,
    resolve_names,
)
from circuitgraph.circuit.subgraph import FullGraphSubgraph
from circuitgraph.files import atomic_output, json_default

__all__ = ["SCHEMA_VERSION", "Circuit", "CircuitConfig", "Edge", "full_circuit"]

Edge = tuple[str, str]


def _operator(function: Any) -> Any:
    """A binary dunder delegating to a ``circuit.setops`` function."""

    def method(self: Circuit, other: object) -> Circuit:
        if not isinstance(other, Circuit):
            return NotImplemented
        return function(self, other)

    method.__name__ = function.__name__
    return method


class Circuit(FullGraphSubgraph):
    """A circuit: a DAG of canonical node names that carries its ``CircuitConfig``.

    ``config``, ``level`` ("node" or "edge") and ``metadata`` (JSON-serialisable dict: task,
    method, parameters, score, ...) live in ``self.graph`` so networkx copies and views keep
    them. Node attributes: kind, layer, head, group, qkv, pos (see ``circuit.nodes``); edge
    attributes: ``qkv`` on edges into and out of q/k/v inputs, optional ``effect`` and ``score``.

    Set operators ``&``, ``|``, ``-``, ``^`` and ``~`` (complement in the full graph) work on
    node sets when both operands are node-level and on edge sets otherwise; see
    ``circuit.setops``. ``==`` compares config, node set and edge set (not attributes).

    >>> import types
    >>> cfg = types.SimpleNamespace(n_layers=2, n_heads=2, model_name="toy")
    >>> c = Circuit.from_nodes(cfg, ["a1.0"], qkv=False)
    >>> sorted(c.nodes, key=node_sort_key)
    ['embed', 'a1.0', 'logits']
    >>> c.heads(), c.number_of_edges()
    (['a1.0'], 3)
    """

    __hash__ = None  # type: ignore[assignment]

    def __init__(
        self,
        incoming_graph_data: Any = None,
        *,
        config: CircuitConfig | None = None,
        level: str = "edge",
        metadata: dict[str, Any] | None = None,
        **attr: Any,
    ) -> None:
        super().__init__(None, **attr)
        if config is not None:
            self.graph["config"] = config
        self.level = level
        self.graph["metadata"] = {} if metadata is None else metadata
        if incoming_graph_data is not None:  # after the config: every edge is checked
            nx.convert.to_networkx_graph(incoming_graph_data, create_using=self)

    @property
    def config(self) -> CircuitConfig:
        """The model signature and graph options (qkv split, positions)."""
        if "config" not in self.graph:
            raise AttributeError("circuit has no config; use Circuit.full/from_nodes/from_edges")
        return self.graph["config"]

    @property
    def level(self) -> str:
        """ "node" (full graph restricted to the nodes) or "edge" (only the listed edges)."""
        return self.graph["level"]

    @level.setter
    def level(self, value: str) -> None:
        if value not in LEVELS:
            raise ValueError(f"level must be one of {LEVELS}, got {value!r}")
        self.graph["level"] = value

    @property
    def metadata(self) -> dict[str, Any]:
        """JSON-serialisable facts about how the circuit was made."""
        return self.graph["metadata"]

    @metadata.setter
    def metadata(self, value: dict[str, Any]) -> None:
        self.graph["metadata"] = value

    # --- construction -------------------------------------------------------------------

    @classmethod
    def _assemble(
        cls,
        config: CircuitConfig,
        level: str,
        nodes: Iterable[str] = (),
        edges: Iterable[Edge] = (),
        sources: Iterable[nx.DiGraph] = (),
        metadata: dict[str, Any] | None = None,
    ) -> Circuit:
        """Build a circuit from valid names: node-level takes the induced subgraph of the full
        graph on ``nodes``; edge-level takes ``edges`` and their endpoints. Extra attributes
        (effect, score, ...) come from the first of ``sources`` holding the node or edge."""
        full = full_structure(config)
        sources = list(sources)
        if level == "node":
            node_set = set(nodes)
            edges = [(u, v) for u in full.succ if u in node_set for v in full.succ[u]]
            edges = [(u, v) for u, v in edges if v in node_set]
        else:
            edges = sorted(edges, key=edge_sort_key)
            node_set = {u for u, _ in edges} | {v for _, v in edges}
        circuit = cls(config=config, level=level, metadata=metadata)
        for name in sorted(node_set, key=node_sort_key):
            extra = next((s.nodes[name] for s in sources if name in s), {})
            circuit.add_node(name, **{**extra, **full.nodes[name]})
        for u, v in edges:
            extra = next((s.edges[u, v] for s in sources if s.has_edge(u, v)), {})
            circuit.add_edge(u, v, **{**extra, **full.succ[u][v]})
        return circuit

    @classmethod
    def full(
        cls, cfg: Any, qkv: bool | None = None, positions: Iterable[int] | None = None
    ) -> Circuit:
        """The full graph of a model (node-level). ``cfg`` is a TransformerLens-style config or
        a CircuitConfig; ``qkv=None`` means True (or the CircuitConfig's own setting)."""
        config = CircuitConfig.from_model(cfg, qkv=qkv, positions=positions)
        return cls._assemble(config, "node", full_structure(config).nodes)

    @classmethod
    def from_nodes(
        cls,
        cfg: Any,
        nodes: Iterable[str] | Mapping[str, Mapping[str, Any]],
        qkv: bool | None = None,
        positions: Iterable[int] | None = None,
    ) -> Circuit:
        """Node-level circuit: the full graph restricted to ``nodes``.

        ``embed`` and ``logits`` (at every position) are always included, and with the Q/K/V
        split a head brings its q input and the k/v inputs it reads (group nodes under GQA).
        q/k/v names may also stand alone. Without ``@P`` a name means every position of a
        positional config. A mapping from names to attribute dicts (e.g. node scores) stores
        those attributes.
        """
        config = CircuitConfig.from_model(cfg, qkv=qkv, positions=positions)
        attrs = nodes if isinstance(nodes, Mapping) else {}
        resolved = resolve_names(config, list(nodes))
        wanted = {name for names in resolved.values() for name in names}
        for name in list(wanted):
            node = Node.parse(name)
            if node.kind == NodeKind.HEAD and config.qkv:
                assert node.layer is not None and node.head is not None  # a head has both
                wanted.update(config.input_name(node.layer, node.head, x, node.pos) for x in "qkv")
        fixed = [n for n, d in full_structure(config).nodes.items() if d["kind"] in _FIXED_KINDS]
        source = nx.DiGraph()
        source.add_nodes_from(
            (n, dict(attrs[k])) for k, ns in resolved.items() if k in attrs for n in ns
        )
        return cls._assemble(config, "node", wanted | set(fixed), sources=[source])

    @classmethod
    def from_edges(
        cls,
        cfg: Any,
        edges: Iterable[Edge | tuple[str, str, Mapping[str, Any]]]
        | Mapping[Edge, Mapping[str, Any]],
        qkv: bool | None = None,
        positions: Iterable[int] | None = None,
        *,
        internal: bool = True,
    ) -> Circuit:
        """Edge-level circuit from ``(sender, receiver)`` or ``(sender, receiver, attrs)``
        tuples (or a mapping edge -> attrs). Edges between unsuffixed names mean every position.

        With ``internal=True`` each q/k/v input present gets its head-internal edge to its own
        head, and a GQA k/v group node to those heads of its group already in the circuit.
        """
        config = CircuitConfig.from_model(cfg, qkv=qkv, positions=positions)
        items: list[tuple[Edge, Mapping[str, Any]]] = (
            # (a Mapping that is also the Iterable of the annotation is the mapping form)
            list(cast("Mapping[Edge, Mapping[str, Any]]", edges).items())
            if isinstance(edges, Mapping)
            else [((e[0], e[1]), e[2] if len(e) > 2 else {}) for e in edges]
        )
        resolved = resolve_names(config, {n for (u, v), _ in items for n in (u, v)})
        mixed = [(u, v) for (u, v), _ in items if len(resolved[u]) != len(resolved[v])]
        if mixed:
            raise ValueError(f"edges mixing names with and without @P: {mixed[:20]}")
        source = nx.DiGraph()
        for (u, v), attrs in items:
            for su, sv in zip(resolved[u], resolved[v], strict=True):
                source.add_edge(su, sv, **attrs)
        check_edges(config, source.edges)
        edge_set = set(source.edges)
        if internal:
            edge_set |= internal_edges(config, source)
        return cls._assemble(config, "edge", edges=edge_set, sources=[source])

    def top_k(self, scores: Mapping[Edge, float], k: int) -> Circuit:
        """The ``k`` highest-``|score|`` edges of this circuit (see ``setops.top_k``)."""
        return top_k(self, scores, k)

    def threshold(self, scores: Mapping[Edge, float], tau: float) -> Circuit:
        """The edges of this circuit with ``|score| >= tau`` (see ``setops.threshold``)."""
        return threshold(self, scores, tau)

    # --- queries and derived graphs ------------------------------------------------------

    def _of_kind(self, kind: NodeKind) -> list[str]:
        names = [n for n, d in self.nodes(data=True) if d.get("kind") == kind]
        return sorted(names, key=node_sort_key)

    def heads(self) -> list[str]:
        """Head output nodes, sorted by layer then head (then position)."""
        return self._of_kind(NodeKind.HEAD)

    def mlps(self) -> list[str]:
        """MLP nodes, sorted by layer (then position)."""
        return self._of_kind(NodeKind.MLP)

    def components(self) -> list[str]:
        """Heads, then MLPs: what the circuit is made of (not q/k/v inputs, embed, logits).
        The one definition; ``setops.components(circuit)`` is the same as a set."""
        return self.heads() + self.mlps()

    def sender_receiver_edges(self) -> list[Edge]:
        """Edges from a sender output to a receiver input, excluding head-internal edges."""
        edges = [(u, v) for u, v in self.edges if self.nodes[u].get("kind") != NodeKind.QKV]
        return sorted(edges, key=edge_sort_key)

    def prune_dangling(self) -> Circuit:
        """A new circuit without the nodes and edges that lie on no ``embed -> logits`` path.

        A node stays iff it is reachable from some embed node and reaches some logits node;
        the kept nodes then all lie on such paths, so one pass already is the fixed point.
        """
        kinds = nx.get_node_attributes(self, "kind")
        sources = [n for n, k in kinds.items() if k == NodeKind.EMBED]
        sinks = [n for n, k in kinds.items() if k == NodeKind.LOGITS]
        forward = set(sources).union(*(nx.descendants(self, s) for s in sources))
        backward = set(sinks).union(*(nx.ancestors(self, s) for s in sinks))
        return self.subgraph(forward & backward).copy()

    def copy(self, as_view: bool = False) -> Circuit:
        """A copy keeping config and level, with its own copy of the metadata."""
        circuit = super().copy(as_view=as_view)
        if not as_view:
            circuit.metadata = _copy.deepcopy(self.metadata)
        return circuit

    def is_subgraph_of(self, other: Circuit) -> bool:
        """Whether every node and edge of this circuit is in ``other`` (same model)."""
        check_compatible([self, other])
        return set(self.nodes) <= set(other.nodes) and all(other.has_edge(*e) for e in self.edges)

    def complement(self) -> Circuit:
        """Everything of the full graph not in this circuit (see ``circuit.setops``)."""
        return complement(self)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Circuit):
            return NotImplemented
        return (
            self.graph.get("config") == other.graph.get("config")
            and set(self.nodes) == set(other.nodes)
            and set(self.edges) == set(other.edges)
        )

    __and__ = _operator(intersection)
    __or__ = _operator(union)
    __sub__ = _operator(difference)
    __xor__ = _operator(symmetric_difference)

    def __invert__(self) -> Circuit:
        return complement(self)

    def __str__(self) -> str:
        model = getattr(self.graph.get("config"), "model_name", "no config")
        return (
            f"Circuit({model}, level={self.level}, {len(self.heads())} heads, "
            f"{len(self.mlps())} MLPs, {len(self.sender_receiver_edges())} edges)"
        )

    # --- files and drawings --------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (``schema_version`` 1); names carry the standard attributes, so
        only extra node and edge attributes are stored."""
        self.validate()
        return circuit_to_dict(self)

    @classmethod
    def from_dict(cls, data: Any, source: str = "circuit data") -> Circuit:
        """Inverse of ``to_dict``; raises ValueError naming ``source`` and the problem."""
        try:
            return circuit_from_dict(cls, data)
        except (ValueError, TypeError, KeyError, AttributeError, IndexError) as error:
            raise ValueError(f"{source}: {error}") from error

    def to_json(self, path: str | Path) -> Path:
        """Write ``to_dict()`` as JSON atomically (temp file in the same folder, then rename)."""
        text = json.dumps(self.to_dict(), indent=1, default=json_default)
        path = Path(path)
        with atomic_output(path) as tmp:
            tmp.write_text(text + "\n", encoding="utf-8")
        return path

    @classmethod
    def from_json(cls, path: str | Path) -> Circuit:
        """Read a file written by ``to_json``; ValueError names the file and the problem."""
        return cls.from_dict(read_json(path), source=str(path))

    def to_dot(self, edges: bool | None = None, **options: Any) -> str:
        """Graphviz DOT source, one rank per layer; ``options`` (``collapse``, ``max_edges``)
        as in ``circuitgraph.circuit.render.to_dot``."""
        self.validate()
        return circuit_to_dot(self, edges=edges, **options)

    def render(
        self,
        path: str | Path,
        format: str | None = None,
        edges: bool | None = None,
        **options: Any,
    ) -> Path:
        """Draw with Graphviz to svg/png/pdf (from the suffix); see ``circuit.render``."""
        self.validate()
        return render_circuit(self, path, format=format, edges=edges, **options)

    def to_html(self, path: str | Path, *, overwrite: bool = False, **options: Any) -> Path:
        """An interactive, offline HTML view of this circuit (see ``circuitgraph.viewer.view``;
        the viewer layer sits above this one, so it is imported by name when called)."""
        self.validate()
        viewer = importlib.import_module("circuitgraph.viewer")
        return viewer.to_html(self, path, overwrite=overwrite, **options)


_FIXED_KINDS = (NodeKind.EMBED, NodeKind.LOGITS)


def full_circuit(
    cfg: Any, qkv: bool | None = None, positions: Iterable[int] | None = None
) -> Circuit:
    """The full graph of a model as a node-level ``Circuit`` (see ``Circuit.full``).

    >>> import types
    >>> gpt2 = types.SimpleNamespace(n_layers=12, n_heads=12, model_name="gpt2-small")
    >>> len(full_circuit(gpt2).sender_receiver_edges())
    32491
    """
    return Circuit.full(cfg, qkv=qkv, positions=positions)
