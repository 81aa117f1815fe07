"""Drawings of circuits: Graphviz DOT ranked by layer, and Venn / UpSet overlap figures.

Circuit diagrams put ``embed`` at the bottom and ``logits`` at the top (``rankdir=BT``); every
layer has one rank for its q/k/v inputs and one above it for its heads (in index order) followed
by its MLP. Figures use matplotlib's Agg canvas directly (no pyplot state), and every file is
written atomically: to a temporary file in the same folder, then renamed.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

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


def to_dot(circuit: Circuit, edges: bool | None = None) -> str:
    """Graphviz DOT source: ranked by layer, coloured by node kind and by q/k/v edge, edge
    width proportional to ``|effect|`` (or ``|score|``) when present; head-internal edges are
    dashed.

    ``edges=None`` draws the edges of edge-level circuits only: a node-level circuit links every
    node to every later one, so its picture is its heads and MLPs ranked by layer (drawing its
    thousands of implied edges would be a hairball that takes Graphviz minutes).
    """
    draw_edges = circuit.level == "edge" if edges is None else edges
    meta = circuit.metadata
    title = " · ".join(
        str(part)
        for part in (
            circuit.config.model_name,
            meta.get("task"),
            meta.get("method"),
            f"{circuit.level}-level" + ("" if draw_edges else " (all later nodes linked)"),
        )
        if part
    )
    graph = _attrs(
        rankdir="BT",
        newrank="true",
        nodesep=0.2,
        ranksep=0.45,
        label=title,
        labelloc="t",
        fontname="Helvetica",
    )
    lines = [
        "digraph circuit {",
        f"  graph {graph};",
        '  node [shape=box, style="rounded,filled", fontname=Helvetica, fontsize=10];',
        "  edge [arrowsize=0.5];",
    ]
    ranks = _ranks(circuit, with_inputs=draw_edges)
    for rank in ranks:
        lines.append("  { rank=same;")
        for name in rank:
            attrs = circuit.nodes[name]
            fill = QKV_FILL.get(attrs.get("qkv")) or NODE_FILL.get(attrs["kind"], "white")
            lines.append(f"    {_quote(name)} {_attrs(label=_label(name, attrs), fillcolor=fill)};")
        if len(rank) > 1:
            lines.append("    " + " -> ".join(map(_quote, rank)) + " [style=invis];")
        lines.append("  }")
    for lower, upper in zip(ranks, ranks[1:], strict=False):
        lines.append(f"  {_quote(lower[0])} -> {_quote(upper[0])} [style=invis, weight=0];")
    weights = {(u, v): _weight(d) for u, v, d in circuit.edges(data=True)}
    top = max((w for w in weights.values() if w is not None), default=0.0)
    for u, v, attrs in circuit.edges(data=True) if draw_edges else ():
        weight = weights[u, v]
        value = attrs.get("effect", attrs.get("score"))
        style = {
            "color": QKV_EDGE.get(attrs.get("qkv"), EDGE_COLOUR),
            "penwidth": f"{0.5 + 4.5 * weight / top:.2f}" if weight is not None and top else 1,
            "tooltip": f"{u} -> {v}"
            + ("" if weight is None or value is None else f" ({float(value):.4g})"),
        }
        if circuit.nodes[u].get("kind") == "qkv":
            style["style"] = "dashed"
        lines.append(f"  {_quote(u)} -> {_quote(v)} {_attrs(**style)};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(
    circuit: Circuit, path: str | Path, format: str | None = None, edges: bool | None = None
) -> Path:
    """Draw ``circuit`` with Graphviz ``dot`` to svg, png or pdf (format from the suffix unless
    given; ``.dot`` writes the DOT source). RuntimeError if ``dot`` is missing or fails.
    ``edges`` as in :func:`to_dot`."""
    path = Path(path)
    fmt = graphviz_format(path, format)
    source = to_dot(circuit, edges=edges)
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
