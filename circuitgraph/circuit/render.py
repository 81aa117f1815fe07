"""Graphviz drawings of circuits: the static, citable picture (the viewer is the interactive one).

Circuit diagrams put ``embed`` at the bottom and ``logits`` at the top (``rankdir=BT``); every
layer has one rank for its q/k/v inputs and one above it for its heads (in index order) followed
by its MLP. Node circuits show the edges between their heads and MLPs, coloured by importance
(:func:`node_importance`); large circuits fold q/k/v inputs into their heads and draw only their
largest edges, with a note of the rest; a caption gives score, metric, ablation and size, and a
legend the colours. :func:`render_comparison` draws several circuits in one picture, coloured by
membership. Every file is written atomically: to a temporary file in the same folder, then
renamed.
"""

from __future__ import annotations

import functools
import math
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from circuitgraph.circuit.nodes import node_sort_key
from circuitgraph.files import atomic_output

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Circuit

GRAPHVIZ_FORMATS = ("svg", "png", "pdf")
NODE_FILL = {"embed": "#d9d9d9", "head": "#9ecae1", "mlp": "#fdae6b", "logits": "#a1d99b"}
# by a node's or an edge's "qkv" attribute (None: not a q/k/v input)
QKV_FILL: dict[str | None, str] = {"q": "#deebf7", "k": "#e5f5e0", "v": "#fee0d2"}
QKV_EDGE: dict[str | None, str] = {"q": "#2171b5", "k": "#238b45", "v": "#cb181d"}
EDGE_COLOUR = "#636363"
REGION_COLOURS = ("#2b83ba", "#d7191c", "#1a9641", "#fdae61", "#984ea3", "#a6611a")
REGION_SHARED = "#7b3294"
REGION_SOME = "#9e9e9e"
COLLAPSE_AT = 60  # more heads and MLPs than this (or 5x as many edges): fold q/k/v inputs
MAX_EDGES = 300  # draw at most this many edges, the largest first; note the rest
MAX_IMPLIED_EDGES = 100  # the same for a node circuit's edges (between its most important nodes)


def _quote(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
    return f'"{escaped}"'


def _attrs(**values: Any) -> str:
    return "[" + ", ".join(f"{k}={_quote(str(v))}" for k, v in values.items()) + "]"


def _label(name: str, attrs: Mapping[str, Any]) -> str:
    label = name.split("@")[0]
    if attrs.get("kind") == "qkv":
        label = f"{label.rsplit('.', 1)[0]} {attrs['qkv'].upper()}"
    return label if attrs.get("pos") is None else f"{label}\n@{attrs['pos']}"


def _weight(attrs: Mapping[str, Any]) -> float | None:
    value = attrs.get("effect", attrs.get("score"))
    if value is None or not math.isfinite(float(value)):
        return None
    return abs(float(value))


def node_importance(circuit: Circuit) -> dict[str, float]:
    """Head/MLP -> how much the circuit's score drops without it: the score minus the score
    node pruning measured when it last tried removing it (``metadata["kept"]``)."""
    score = circuit.metadata.get("score")
    found = {}
    for record in circuit.metadata.get("kept") or []:
        if isinstance(record, Mapping) and score is not None and record.get("score") is not None:
            drop = float(score) - float(record["score"])
            if math.isfinite(drop):
                found[str(record["node"])] = drop
    return found


def _owner(circuit: Circuit, name: str) -> list[str]:
    """The heads a node stands for once q/k/v inputs fold into their heads."""
    if circuit.nodes[name]["kind"] != "qkv":
        return [name]
    return [v for v in circuit.successors(name) if circuit.nodes[v]["kind"] == "head"]


def collapsed_edges(circuit: Circuit) -> dict[tuple[str, str], dict[str, Any]]:
    """Edges between components (embed, heads, MLPs, logits) with q/k/v inputs folded into
    their heads: the largest ``|effect|`` (or ``|score|``) of the merged edges, and which
    inputs (``qkv``: "q", "kv", ...) they reached."""
    merged: dict[tuple[str, str], dict[str, Any]] = {}
    for u, v, attrs in circuit.edges(data=True):
        if circuit.nodes[u]["kind"] == "qkv":
            continue  # inside a head
        for head in _owner(circuit, v):
            entry = merged.setdefault((u, head), {"qkv": "", "weight": None, "value": None})
            if attrs.get("qkv") and attrs["qkv"] not in entry["qkv"]:
                entry["qkv"] = "".join(sorted(entry["qkv"] + attrs["qkv"], key="qkv".index))
            weight = _weight(attrs)
            if weight is not None and (entry["weight"] is None or weight > entry["weight"]):
                entry["weight"], entry["value"] = weight, attrs.get("effect", attrs.get("score"))
    return merged


def _ranks(circuit: Circuit, with_inputs: bool = True) -> list[list[str]]:
    """Nodes grouped into ranks from embed up to logits, each in left-to-right order."""
    ranks: dict[tuple[int, int], list[str]] = {}
    for name, attrs in circuit.nodes(data=True):
        if not with_inputs and attrs["kind"] == "qkv":
            continue
        key = (attrs["layer"], 0 if attrs["kind"] == "qkv" else 1)
        ranks.setdefault(key, []).append(name)

    def by_position(name: str) -> tuple[Any, ...]:
        pos = circuit.nodes[name].get("pos")
        return (-1 if pos is None else pos, node_sort_key(name))

    return [sorted(ranks[key], key=by_position) for key in sorted(ranks)]


def caption(circuit: Circuit) -> str:
    """One line: score (with its CI where evaluated), metric, ablation and size."""
    meta = circuit.metadata
    parts = []
    if meta.get("score") is not None:
        text = f"score {float(meta['score']):.3f}"
        ci = meta.get("score_ci", meta.get("ci"))
        if isinstance(ci, list | tuple) and len(ci) == 2:
            text += f" (95 % CI {float(ci[0]):.3f}-{float(ci[1]):.3f})"
        parts.append(text)
    parts += [f"{k} {meta[k]}" for k in ("metric", "ablation") if meta.get(k)]
    edges = len(circuit.sender_receiver_edges())
    parts.append(f"{len(circuit.heads())} heads, {len(circuit.mlps())} MLPs, {edges} edges")
    return " · ".join(parts)


def _legend(rows: list[tuple[str, str]], lines: list[str]) -> str:
    """An HTML-like Graphviz label: text lines, then colour swatches with their meaning."""
    cells = "".join(f'<TD BGCOLOR="{colour}">  </TD><TD>{text} </TD>' for colour, text in rows)
    text = "".join(f'<TR><TD COLSPAN="{2 * max(1, len(rows))}">{t}</TD></TR>' for t in lines)
    swatches = f"<TR>{cells}</TR>" if rows else ""
    return f'<<TABLE BORDER="0" CELLSPACING="2" CELLPADDING="1">{text}{swatches}</TABLE>>'


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _importance_fill(value: float, top: float) -> str:
    """White to dark orange with importance (YlOrRd-like)."""
    t = max(0.0, min(1.0, value / top)) if top > 0 else 0.0
    low, high = (255, 237, 160), (227, 74, 51)
    return "#" + "".join(f"{round(a + (b - a) * t):02x}" for a, b in zip(low, high, strict=True))


def to_dot(
    circuit: Circuit,
    edges: bool | None = None,
    collapse: bool | None = None,
    max_edges: int | Literal["auto"] | None = "auto",
    membership: Mapping[str, Any] | None = None,
) -> str:
    """Graphviz DOT source: ranked by layer, coloured by node kind (or by importance, for
    node-pruned circuits) and by q/k/v edge, edge width proportional to ``|effect|`` (or
    ``|score|``) when present; head-internal edges are dashed. A caption gives the score,
    metric, ablation and size, and a legend the colours.

    ``edges=None`` draws every edge of edge-level circuits, and the edges between the heads
    and MLPs of node-level circuits (q/k/v folded into their heads). ``collapse=None`` folds
    q/k/v inputs into their heads when the circuit is large (over ``COLLAPSE_AT`` components or
    edges); only the ``max_edges`` largest edges are drawn (``"auto"``: ``MAX_EDGES``, or
    ``MAX_IMPLIED_EDGES`` between the most important nodes of a node circuit; None: all), with
    a note of how many are hidden.
    ``membership`` (element -> region colour and name, from :func:`comparison_dot`) colours
    nodes and edges by the circuits that hold them.
    """
    draw_edges = True if edges is None else edges
    big = len(circuit.components()) > COLLAPSE_AT or circuit.number_of_edges() > COLLAPSE_AT * 5
    implied = edges is None and circuit.level == "node"  # all its later nodes are linked
    folded = (implied or big) if collapse is None else collapse
    meta = circuit.metadata
    title = " · ".join(
        str(part)
        for part in (circuit.config.model_name, meta.get("task"), meta.get("method"))
        if part
    )
    title += f" · {circuit.level}-level"
    drawn: dict[tuple[str, str], dict[str, Any]]
    if not draw_edges:
        drawn = {}
    elif folded:
        drawn = collapsed_edges(circuit)
    else:
        drawn = {
            (u, v): {
                "qkv": a.get("qkv") or "",
                "weight": _weight(a),
                "value": a.get("effect", a.get("score")),
            }
            for u, v, a in circuit.edges(data=True)
        }
    if membership is not None:  # a union of node circuits links nodes no one circuit links
        drawn = {e: d for e, d in drawn.items() if e in membership["edges"]}
    importance = node_importance(circuit)
    hidden = 0
    if max_edges == "auto":
        max_edges = MAX_IMPLIED_EDGES if implied else MAX_EDGES
    if max_edges is not None and len(drawn) > max_edges:

        def strength(edge: tuple[str, str]) -> float:
            weight = drawn[edge]["weight"]
            if weight is not None:
                return weight
            return sum(abs(importance.get(n, 0.0)) for n in edge)

        keep = sorted(drawn, key=strength, reverse=True)[:max_edges]
        hidden = len(drawn) - len(keep)
        drawn = {e: drawn[e] for e in keep}
    notes = [_html(title), _html(caption(circuit))]
    if hidden:
        notes.append(
            f"top {len(drawn)} edges shown, {hidden} more hidden (by |effect| or importance)"
        )
    if folded and draw_edges:
        notes.append("Q/K/V inputs folded into their heads")
    rows = [(NODE_FILL["head"], "head"), (NODE_FILL["mlp"], "MLP")]
    top_importance = max((abs(v) for v in importance.values()), default=0.0)
    if importance and membership is None:
        rows = [
            (_importance_fill(0, 1), "low importance"),
            (_importance_fill(1, 1), f"high ({top_importance:.3g} score drop)"),
        ]
    if not folded and draw_edges and membership is None:
        rows += [(QKV_EDGE["q"], "to Q"), (QKV_EDGE["k"], "to K"), (QKV_EDGE["v"], "to V")]
    if membership is not None:
        rows = list(membership["legend"])
    graph = _attrs(
        rankdir="BT", newrank="true", nodesep=0.2, ranksep=0.45, labelloc="b", fontname="Helvetica"
    )
    lines = [
        "digraph circuit {",
        f"  graph {graph};",
        f"  graph [label={_legend(rows, notes)}];",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=10];',
        "  edge [arrowsize=0.5];",
    ]
    ranks = _ranks(circuit, with_inputs=draw_edges and not folded)
    for rank in ranks:
        lines.append("  { rank=same;")
        for name in rank:
            attrs = circuit.nodes[name]
            fill = QKV_FILL.get(attrs.get("qkv")) or NODE_FILL.get(attrs["kind"], "white")
            if name in importance and membership is None:
                fill = _importance_fill(importance[name], top_importance)
            if membership is not None and name in membership["nodes"]:
                fill = membership["nodes"][name]
            lines.append(f"    {_quote(name)} {_attrs(label=_label(name, attrs), fillcolor=fill)};")
        if len(rank) > 1:
            lines.append("    " + " -> ".join(map(_quote, rank)) + " [style=invis];")
        lines.append("  }")
    for lower, upper in zip(ranks, ranks[1:], strict=False):
        lines.append(f"  {_quote(lower[0])} -> {_quote(upper[0])} [style=invis, weight=0];")
    top = max((d["weight"] for d in drawn.values() if d["weight"] is not None), default=0.0)
    for (u, v), entry in drawn.items():
        weight, value = entry["weight"], entry["value"]
        colour = QKV_EDGE.get(entry["qkv"], EDGE_COLOUR) if len(entry["qkv"]) <= 1 else EDGE_COLOUR
        if membership is not None:
            colour = membership["edges"].get((u, v), colour)
        style = {
            "color": colour,
            "penwidth": f"{0.5 + 4.5 * weight / top:.2f}" if weight is not None and top else 1,
            "tooltip": f"{u} -> {v}"
            + ("" if weight is None or value is None else f" ({float(value):.4g})"),
        }
        if circuit.nodes[u].get("kind") == "qkv":
            style["style"] = "dashed"
        lines.append(f"  {_quote(u)} -> {_quote(v)} {_attrs(**style)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def comparison_dot(circuits: Mapping[str, Circuit], **options: Any) -> str:
    """One drawing of two or more circuits of one model, nodes and edges coloured by the
    circuits that hold them (A only, B only, shared: the set algebra's exclusive regions)."""
    from circuitgraph.circuit.setops import check_compatible, set_regions, union

    if len(circuits) < 2:
        raise ValueError(f"a comparison needs at least 2 circuits, got {len(circuits)}")
    check_compatible(circuits.values())
    names = list(circuits)
    if len({c.level for c in circuits.values()}) > 1:
        raise ValueError("compare circuits of one level (all node-level or all edge-level)")
    combined = functools.reduce(union, circuits.values())
    combined.metadata = {"task": " vs ".join(names)}
    colours = {}
    legend = []
    for pattern, colour in _region_colours(len(names)).items():
        label = _region_name(pattern, names)
        colours[pattern] = colour
        legend.append((colour, label))
    regions = set_regions({n: set(c.nodes) for n, c in circuits.items()})
    nodes = {e: colours.get(p, REGION_SOME) for p, es in regions.items() for e in es}
    edge_sets = {
        n: set(collapsed_edges(c)) if combined.level == "node" else set(c.edges)
        for n, c in circuits.items()
    }
    edge_regions = set_regions(edge_sets)
    edges = {e: colours.get(p, REGION_SOME) for p, es in edge_regions.items() for e in es}
    if len(names) > 2:
        legend.append((REGION_SOME, "in some"))
    return to_dot(
        combined, membership={"nodes": nodes, "edges": edges, "legend": legend}, **options
    )


def _region_colours(n: int) -> dict[tuple[bool, ...], str]:
    """Membership pattern -> colour: one per circuit alone, one for all of them."""
    found = {
        tuple(i == j for j in range(n)): REGION_COLOURS[i % len(REGION_COLOURS)] for i in range(n)
    }
    found[(True,) * n] = REGION_SHARED
    return found


def _region_name(pattern: tuple[bool, ...], names: list[str]) -> str:
    if all(pattern):
        return "shared"
    return " + ".join(n for n, inside in zip(names, pattern, strict=True) if inside) + " only"


def render(
    circuit: Circuit,
    path: str | Path,
    format: str | None = None,
    edges: bool | None = None,
    **options: Any,
) -> Path:
    """Draw ``circuit`` with Graphviz ``dot`` to svg, png or pdf (format from the suffix unless
    given; ``.dot`` writes the DOT source). RuntimeError if ``dot`` is missing or fails.
    ``edges`` and ``options`` (collapse, max_edges) as in :func:`to_dot`."""
    return _draw(to_dot(circuit, edges=edges, **options), path, format)


def render_comparison(
    circuits: Mapping[str, Circuit], path: str | Path, format: str | None = None, **options: Any
) -> Path:
    """One Graphviz drawing of several circuits coloured by membership (see
    :func:`comparison_dot`), written like :func:`render`."""
    return _draw(comparison_dot(circuits, **options), path, format)


def _draw(source: str, path: str | Path, format: str | None) -> Path:
    path = Path(path)
    fmt = graphviz_format(path, format)
    if fmt == "dot":
        with atomic_output(path) as tmp:
            tmp.write_text(source, encoding="utf-8")
        return path
    executable = shutil.which("dot")
    if executable is None:
        raise RuntimeError(
            "Graphviz 'dot' executable not found on PATH; install the Debian package graphviz "
            "(apt-get install graphviz) or your platform's Graphviz"
        )
    with atomic_output(path) as tmp:
        result = subprocess.run(
            [executable, f"-T{fmt}", "-o", str(tmp)], input=source.encode(), capture_output=True
        )
        if result.returncode != 0:
            raise RuntimeError(f"dot failed for {path}: {result.stderr.decode(errors='replace')}")
    return path


def graphviz_format(path: str | Path, format: str | None = None) -> str:
    """The Graphviz output format of ``path`` (``dot`` for DOT source); ValueError if none.

    >>> graphviz_format("c.png"), graphviz_format("c.gv")
    ('png', 'dot')
    """
    fmt = (format or Path(path).suffix.lstrip(".")).lower()
    if fmt in ("dot", "gv"):
        return "dot"
    if fmt not in GRAPHVIZ_FORMATS:
        shown = "no suffix" if not fmt else f"format {fmt!r}"
        raise ValueError(f"cannot render {path}: {shown}; use .svg, .png, .pdf or .dot")
    return fmt
