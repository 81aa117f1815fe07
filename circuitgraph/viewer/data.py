"""The page data of the viewer: circuits as plain JSON that the page's script draws.

One payload describes one or more circuits of the same model in one layout (union of their
nodes and edges): where every node sits, each edge's measured value (``effect`` from edge
pruning, else an attribution ``score``), each node's importance (from the node-pruning record)
and frequency (across resamples or levels), and which circuits hold each element, as the
exclusive regions of the set algebra (:func:`circuitgraph.circuit.setops.set_regions`).

Layout: layers bottom to top (``embed`` at the bottom, ``logits`` at the top), heads by index
with the layer's MLP half a row above them on the right, each head's q/k/v inputs as ports on
its lower edge (GQA k/v groups as ports below the group's heads), positions side by side.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from circuitgraph.circuit.graph import Circuit
from circuitgraph.circuit.nodes import edge_sort_key, node_sort_key
from circuitgraph.circuit.provenance import read_provenance
from circuitgraph.circuit.render import node_importance
from circuitgraph.circuit.setops import check_compatible, set_regions

__all__ = ["MODES", "TIE", "layout", "page_data"]

MODES = ("single", "compare", "levels")
TIE = 1e-5  # an edge whose effect is within TIE of tau is flagged as a tie
ROW, COL, BOX_H = 90.0, 56.0, 20.0  # layout units (the page scales them)
_STANDARD = {"kind", "layer", "head", "group", "qkv", "pos"}
_EDGE_STANDARD = {"qkv", "effect", "score"}


def _finite(value: Any) -> float | None:
    """``value`` as a float, or None when it is missing or not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def layout(config: Any, name: str, attrs: Mapping[str, Any]) -> tuple[float, float]:
    """(x, y) of a node in layout units; y grows downwards, so ``embed`` has the largest y."""
    n_heads = int(config.n_heads)
    kv = int(getattr(config, "n_key_value_heads", None) or n_heads)
    block = (n_heads + 1) * COL + 2 * COL  # one block per position
    offset = (attrs.get("pos") or 0) * block
    layer = int(attrs["layer"])
    row = max(54.0, min(ROW, ROW * 12 / max(1, int(config.n_layers))))  # deep models: flatter
    y = (int(config.n_layers) - layer) * row
    kind = attrs["kind"]
    if kind in ("embed", "logits"):
        return offset + n_heads * COL / 2, y
    if kind == "mlp":
        return offset + n_heads * COL + COL / 2, y - 0.45 * row
    if kind == "head":
        return offset + int(attrs["head"]) * COL, y
    port = {"q": -13.0, "k": 0.0, "v": 13.0}[attrs["qkv"]]
    if attrs.get("head") is not None:  # the head's own input
        return offset + int(attrs["head"]) * COL + port, y + BOX_H / 2
    per_group = n_heads // kv
    centre = (int(attrs["group"]) + 0.5) * per_group - 0.5  # mean head index of the group
    return offset + centre * COL + port / 2, y + BOX_H / 2 + 14


def _importance(circuit: Circuit) -> dict[str, dict[str, float | None]]:
    """Node -> its importance (``render.node_importance``: the drop from the circuit's score)
    and the score without it, when node pruning last tried removing it."""
    drops = node_importance(circuit)
    found: dict[str, dict[str, float | None]] = {}
    for record in circuit.metadata.get("kept") or []:
        if isinstance(record, Mapping) and "node" in record:
            name = str(record["node"])
            found[name] = {"without": _finite(record.get("score")), "importance": drops.get(name)}
    return found


def _tau(circuit: Circuit) -> float | None:
    parameters = circuit.metadata.get("parameters")
    return _finite(parameters.get("tau")) if isinstance(parameters, Mapping) else None


def _summary(name: str, circuit: Circuit, run: Mapping[str, Any] | None) -> dict[str, Any]:
    """What the provenance panel shows of one circuit: how it was found and how well it does."""
    meta = circuit.metadata
    prov = read_provenance(meta)
    parameters = prov.get("parameters") or {}
    run = run or {}
    result: Mapping[str, Any] = run["result"] if isinstance(run.get("result"), Mapping) else {}
    ci = next(
        (result[k] for k in ("score_ci", "ci", "consensus_ci") if k in result),
        meta.get("ci", meta.get("score_ci")),
    )
    timings: Mapping[str, Any] = (
        run["timings_s"] if isinstance(run.get("timings_s"), Mapping) else {}
    )
    facts = {
        "model": prov.get("model") or circuit.config.model_name,
        "task": prov.get("task"),
        "method": prov.get("method") or meta.get("operation"),
        "metric": prov.get("metric"),
        "ablation": prov.get("ablation"),
        "tau": parameters.get("tau"),
        "threshold": parameters.get("threshold", meta.get("threshold")),
        "score": result.get("score", result.get("consensus_score", meta.get("score"))),
        "score_ci": ci,
        "n_prompts": prov.get("n_prompts"),
        "seconds": timings.get("total", meta.get("seconds")),
        "started": run.get("started"),
        "command": run.get("command"),
    }
    if "frequency_at_least" in meta:  # a stability level: the score is the consensus's
        facts = {"frequency": f">= {meta['frequency_at_least']:.3g}"} | facts
        facts["consensus(0.5) score"] = facts.pop("score", None)
        facts["consensus(0.5) CI"] = facts.pop("score_ci", None)
    return {
        "name": name,
        "level": circuit.level,
        "n_nodes": circuit.number_of_nodes(),
        "n_edges": circuit.number_of_edges(),
        "heads": len(circuit.heads()),
        "mlps": len(circuit.mlps()),
        "tau": _tau(circuit),
        "facts": _plain({k: v for k, v in facts.items() if v is not None}),
    }


_SKIP_COLUMNS = {"head", "node", "name", "layer", "head_index", "task"}


def _analysis_rows(table: Any) -> dict[str, dict[str, Any]]:
    """An analysis table (a DataFrame such as ``cg.ov_scores``'s, a list of row dicts with a
    ``head`` column, or a mapping node -> values) as node -> {column: value}."""
    if isinstance(table, Mapping):
        return {str(k): dict(v) for k, v in table.items() if isinstance(v, Mapping)}
    rows = table.to_dict(orient="records") if hasattr(table, "to_dict") else list(table)
    found: dict[str, dict[str, Any]] = {}
    for row in rows:
        name = next((row[k] for k in ("head", "node", "name") if k in row), None)
        if name is not None:
            found[str(name)] = {k: v for k, v in row.items() if k not in _SKIP_COLUMNS}
    return found


def _curve(curve: Any) -> list[list[float]] | None:
    """A faithfulness curve as ``[[k, score], ...]`` (a FaithfulnessCurve or pairs)."""
    if curve is None:
        return None
    table = getattr(curve, "table", None)
    pairs = zip(table["k"], table["score"], strict=True) if table is not None else curve
    points = [[_finite(k), _finite(s)] for k, s in pairs]
    return [[k, s] for k, s in points if k is not None and s is not None]


def page_data(
    circuits: Mapping[str, Circuit],
    mode: str = "single",
    *,
    title: str | None = None,
    runs: Mapping[str, Mapping[str, Any] | None] | None = None,
    frequency: Mapping[str, float] | None = None,
    edge_frequency: Mapping[tuple[str, str], float] | None = None,
    curve: Any = None,
    level_name: str = "level",
    analyses: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The JSON payload of a page showing ``circuits`` (name -> circuit, in order).

    ``mode``: ``"single"`` (one circuit), ``"compare"`` (coloured by membership) or
    ``"levels"`` (a scrubber over the circuits in order, e.g. thresholds, named by
    ``level_name``). ``runs``: each circuit's ``run.json`` record; ``frequency`` /
    ``edge_frequency``: inclusion frequencies (e.g. from :func:`circuitgraph.stability`);
    ``curve``: a faithfulness curve linked to the top-k slider; ``analyses``: name -> table
    of per-head results (``cg.ov_scores``, ``analysis.attention_scores``) for the hover cards.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if not circuits:
        raise ValueError("nothing to show: give at least one circuit")
    names = list(circuits)
    config = check_compatible(circuits.values())  # one model: else a ValueError naming both
    runs = runs or {}
    node_regions = set_regions({n: set(c.nodes) for n, c in circuits.items()})
    edge_regions = set_regions({n: set(c.edges) for n, c in circuits.items()})
    node_mask = {e: _mask(p) for p, elements in node_regions.items() for e in elements}
    edge_mask = {e: _mask(p) for p, elements in edge_regions.items() for e in elements}
    importance: dict[str, dict[str, float | None]] = {}
    for circuit in reversed(list(circuits.values())):  # the first circuit's record wins
        importance |= _importance(circuit)
    n_levels = len(names)
    tables = {name: _analysis_rows(table) for name, table in (analyses or {}).items()}

    nodes, index = [], {}
    for name in sorted(node_mask, key=node_sort_key):
        holder = next(c for c in circuits.values() if name in c)
        attrs = holder.nodes[name]
        x, y = layout(config, name, attrs)
        freq = frequency.get(name) if frequency is not None else None
        if freq is None and mode == "levels":
            freq = bin(node_mask[name]).count("1") / n_levels
        extra = {k: v for k, v in attrs.items() if k not in _STANDARD}
        record = importance.get(name, {})
        entry = {
            "id": name,
            "kind": attrs["kind"],
            "layer": attrs["layer"],
            "head": attrs.get("head"),
            "group": attrs.get("group"),
            "qkv": attrs.get("qkv"),
            "pos": attrs.get("pos"),
            "x": round(x, 2),
            "y": round(y, 2),
            "m": node_mask[name],
            "imp": record.get("importance"),
            "without": record.get("without"),
            "freq": _finite(freq),
            "extra": _plain(extra) if extra else None,
            "analyses": _plain({k: t[name] for k, t in tables.items() if name in t}) or None,
        }
        index[name] = len(nodes)
        nodes.append({k: v for k, v in entry.items() if v is not None or k in ("m",)})

    edges = []
    for u, v in sorted(edge_mask, key=edge_sort_key):
        holder = next(c for c in circuits.values() if c.has_edge(u, v))
        attrs = holder.edges[u, v]
        value = _finite(attrs.get("effect", attrs.get("score")))
        freq = edge_frequency.get((u, v)) if edge_frequency is not None else None
        if freq is None and mode == "levels":
            freq = bin(edge_mask[u, v]).count("1") / n_levels
        extra = {k: val for k, val in attrs.items() if k not in _EDGE_STANDARD}
        row: list[Any] = [index[u], index[v], value, edge_mask[u, v], _finite(freq)]
        if extra:
            row.append(_plain(extra))
        edges.append(row)

    values = [e[2] for e in edges if e[2] is not None]
    kind = next(
        (
            k
            for c in circuits.values()
            for _, _, d in c.edges(data=True)
            for k in ("effect", "score")
            if k in d
        ),
        None,
    )
    return {
        "schema": 1,
        "title": title or _title(circuits, mode),
        "mode": mode,
        "level_name": level_name,
        "model": {
            "name": config.model_name,
            "n_layers": config.n_layers,
            "n_heads": config.n_heads,
            "n_key_value_heads": config.n_key_value_heads,
            "qkv": config.qkv,
            "positions": list(config.positions) if config.positions is not None else None,
        },
        "value_kind": kind if values else None,
        "tie": TIE,
        "circuits": [_summary(n, c, runs.get(n)) for n, c in circuits.items()],
        "nodes": nodes,
        "edges": edges,
        "curve": _curve(curve),
    }


def _mask(pattern: Sequence[bool]) -> int:
    """A membership pattern as a bit mask (bit i: in the i-th circuit)."""
    return sum(1 << i for i, inside in enumerate(pattern) if inside)


def _plain(value: Any) -> Any:
    """JSON-safe: non-finite floats become None, containers are walked, others as strings."""
    if isinstance(value, bool) or value is None or isinstance(value, str | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_plain(v) for v in value]
    if hasattr(value, "tolist"):
        return _plain(value.tolist())
    return str(value)


def _title(circuits: Mapping[str, Circuit], mode: str) -> str:
    first = next(iter(circuits.values()))
    meta = first.metadata
    parts = [first.config.model_name, meta.get("task"), meta.get("method")]
    if mode != "single":
        parts = [first.config.model_name, " vs ".join(circuits) if mode == "compare" else None]
    return " · ".join(str(p) for p in parts if p) or "circuit"
