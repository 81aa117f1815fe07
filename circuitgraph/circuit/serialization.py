"""Circuits as JSON: the schema (version 1), writing, and reading with one clear error.

Node and edge names carry the standard attributes, so a file stores only the extras (scores,
effects). Reading checks the schema version, the config's fields and types, every edge's
shape, and that nodes and edges belong to the full graph (see ``nodes.check_structure``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitgraph.circuit.nodes import NODE_ATTRIBUTES, CircuitConfig, edge_sort_key, node_sort_key
from circuitgraph.circuit.provenance import upgrade_metadata
from circuitgraph.circuit.structure import check_structure, full_structure
from circuitgraph.options import Level, values

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Circuit

SCHEMA_VERSION = 1
LEVELS = values(Level)
EDGE_ATTRIBUTES = ("qkv",)


def _extras(attrs: Mapping[str, Any], standard: Iterable[str]) -> dict[str, Any]:
    return {key: value for key, value in attrs.items() if key not in standard}


def circuit_to_dict(circuit: Circuit) -> dict[str, Any]:
    """The JSON-friendly dict of a circuit (see ``Circuit.to_dict``)."""
    node_attrs = {n: _extras(d, NODE_ATTRIBUTES) for n, d in circuit.nodes(data=True)}
    return {
        "schema_version": SCHEMA_VERSION,
        "config": circuit.config.to_dict(),
        "level": circuit.level,
        "metadata": circuit.metadata,
        "nodes": sorted(circuit.nodes, key=node_sort_key),
        "node_attributes": {n: a for n, a in sorted(node_attrs.items()) if a},
        "edges": [
            [u, v, _extras(circuit.edges[u, v], EDGE_ATTRIBUTES)]
            for u, v in sorted(circuit.edges, key=edge_sort_key)
        ],
    }


def read_json(path: str | Path) -> Any:
    """The JSON data of a circuit file; ValueError naming the file for bytes that are not
    UTF-8 or text that is not JSON."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path}: not UTF-8 text (byte {error.start} is {error.object[error.start]:#x}); "
            "circuit files are JSON written by Circuit.to_json"
        ) from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error})") from error


def circuit_from_dict(cls: type, data: Any) -> Any:
    """A ``cls`` circuit from a ``to_dict`` dict (errors raised as they come; the caller
    names the source)."""
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")
    version = data.get("schema_version")
    if not isinstance(version, int):
        raise ValueError(f"missing or non-integer 'schema_version' (got {version!r})")
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"schema_version {version} is newer than this circuitgraph supports "
            f"({SCHEMA_VERSION}); upgrade circuitgraph"
        )
    if version < 1:
        raise ValueError(f"invalid schema_version {version}")
    missing = [k for k in ("config", "level", "metadata", "nodes", "edges") if k not in data]
    if missing:
        raise ValueError(f"missing keys {missing}")
    config = CircuitConfig.from_dict(data["config"])
    if not isinstance(data["metadata"], dict):
        raise ValueError(f"'metadata' must be an object, got {type(data['metadata']).__name__}")
    if data["level"] not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {data['level']!r}")
    full = full_structure(config)
    nodes = data["nodes"]
    edges = [_edge_entry(i, entry) for i, entry in enumerate(data["edges"])]
    check_structure(config, nodes, [(u, v) for u, v, _ in edges])
    metadata = upgrade_metadata(data["metadata"])  # files of older schemas read as today's
    circuit = cls(config=config, level=data["level"], metadata=metadata)
    node_attrs = data.get("node_attributes", {})
    circuit.add_nodes_from((n, {**node_attrs.get(n, {}), **full.nodes[n]}) for n in nodes)
    circuit.add_edges_from((u, v, {**attrs, **full.succ[u][v]}) for u, v, attrs in edges)
    return circuit


def _edge_entry(index: int, entry: Any) -> tuple[str, str, dict[str, Any]]:
    """One item of a file's ``edges`` list: ``[sender, receiver]`` or with an attribute dict."""
    shape_ok = isinstance(entry, list) and len(entry) in (2, 3)
    if shape_ok and all(isinstance(name, str) for name in entry[:2]):
        attrs = entry[2] if len(entry) == 3 else {}
        if isinstance(attrs, dict):
            return entry[0], entry[1], dict(attrs)
    raise ValueError(
        f"edge #{index} {entry!r} must be [sender, receiver] or [sender, receiver, {{attributes}}]"
    )
