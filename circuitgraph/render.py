"""Drawings of circuits: Graphviz DOT ranked by layer, and Venn / UpSet overlap figures.

Circuit diagrams put ``embed`` at the bottom and ``logits`` at the top (``rankdir=BT``); every
layer has one rank for its q/k/v inputs and one above it for its heads (in index order) followed
by its MLP. Figures use matplotlib's Agg canvas directly (no pyplot state), and every file is
written atomically: to a temporary file in the same folder, then renamed.
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import uuid
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitgraph.nodes import node_sort_key
from circuitgraph.setops import check_compatible, components, set_regions, sorted_elements

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.gridspec import SubplotSpec

    from circuitgraph.graph import Circuit

GRAPHVIZ_FORMATS = ("svg", "png", "pdf")
NODE_FILL = {"embed": "#d9d9d9", "head": "#9ecae1", "mlp": "#fdae6b", "logits": "#a1d99b"}
QKV_FILL = {"q": "#deebf7", "k": "#e5f5e0", "v": "#fee0d2"}
QKV_EDGE = {"q": "#2171b5", "k": "#238b45", "v": "#cb181d"}
EDGE_COLOUR = "#636363"


@contextmanager
def atomic_output(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it to ``path``.

    The parent folder is created if needed; on error the temporary file is removed and
    ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


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
            "tooltip": f"{u} -> {v}" + ("" if weight is None else f" ({float(value):.4g})"),
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


def _element_text(element: Any) -> str:
    return f"{element[0]}→{element[1]}" if isinstance(element, tuple) else str(element)


def _region_text(members: set[Any], max_names: int) -> str:
    if len(members) > max_names:
        return str(len(members))
    return "\n".join(_element_text(e) for e in sorted_elements(members))


def _draw_venn(ax: Axes, sets: dict[str, set[Any]], max_names: int) -> None:
    from matplotlib_venn import venn2, venn3

    draw = venn2 if len(sets) == 2 else venn3
    labels = [f"{name} ({len(s)})" for name, s in sets.items()]
    with warnings.catch_warnings():  # layout notes such as "Circle B has zero area"
        warnings.filterwarnings("ignore", module="matplotlib_venn")
        diagram = draw(list(sets.values()), set_labels=labels, ax=ax)
    for pattern, members in set_regions(sets).items():
        label = diagram.get_label_by_id("".join("1" if p else "0" for p in pattern))
        if label is not None:
            label.set_text(_region_text(members, max_names))
            label.set_fontsize(8 if len(members) <= max_names else 11)


def _draw_upset(
    fig: Figure, spec: SubplotSpec, sets: dict[str, set[Any]], max_names: int, title: str
) -> None:
    """UpSet-style plot: bars of exclusive intersection sizes over a membership dot matrix."""
    regions = sorted(set_regions(sets).items(), key=lambda r: (-len(r[1]), r[0]))
    grid = spec.subgridspec(2, 1, height_ratios=[3, max(1, len(sets)) * 0.35], hspace=0.05)
    bars, matrix = fig.add_subplot(grid[0]), fig.add_subplot(grid[1])
    x = list(range(len(regions)))
    sizes = [len(members) for _, members in regions]
    bars.bar(x, sizes, color="#4a4a4a")
    for i, (_, members) in enumerate(regions):
        bars.annotate(
            _region_text(members, max_names),
            (i, len(members)),
            ha="center",
            va="bottom",
            fontsize=6 if len(members) <= max_names else 8,
        )
    bars.set_xlim(-0.6, len(regions) - 0.4)
    bars.set_ylim(0, max(sizes, default=1) * 1.6 + 1)
    bars.set_xticks([])
    bars.set_ylabel("exclusive size")
    bars.set_title(title)
    names = list(sets)
    for i, (pattern, _) in enumerate(regions):
        members = [j for j, inside in enumerate(pattern) if inside]
        matrix.scatter([i] * len(names), range(len(names)), color="#d9d9d9", s=30)
        matrix.scatter([i] * len(members), members, color="black", s=30, zorder=3)
        matrix.plot([i, i], [min(members), max(members)], color="black", zorder=2)
    matrix.set_xlim(bars.get_xlim())
    matrix.set_ylim(len(names) - 0.5, -0.5)
    matrix.set_yticks(range(len(names)), [f"{n} ({len(sets[n])})" for n in names])
    matrix.set_xticks([])
    for side in ("top", "right", "bottom"):
        matrix.spines[side].set_visible(False)


def _draw_sets(
    fig: Figure, spec: SubplotSpec, sets: dict[str, set[Any]], max_names: int, title: str
) -> None:
    if len(sets) < 2:
        raise ValueError(f"need at least 2 circuits to compare, got {list(sets)}")
    if not any(sets.values()):
        ax = fig.add_subplot(spec)
        ax.text(0.5, 0.5, "all circuits empty", ha="center", va="center")
        ax.set_axis_off()
        ax.set_title(title)
    elif len(sets) <= 3:
        ax = fig.add_subplot(spec)
        _draw_venn(ax, sets, max_names)
        ax.set_title(title)
    else:
        _draw_upset(fig, spec, sets, max_names, title)


def new_figure(width: float, height: float) -> Figure:
    """A matplotlib Figure on an Agg canvas: no pyplot state, works headless."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height))
    FigureCanvasAgg(fig)
    return fig


def figure_format(path: str | Path) -> str:
    """The matplotlib format of ``path``'s suffix; ValueError naming the usable ones if none.

    >>> figure_format("venn.SVG")
    'svg'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    formats = FigureCanvasAgg.get_supported_filetypes()
    fmt = Path(path).suffix.lstrip(".").lower()
    if fmt not in formats:
        shown = "no suffix" if not fmt else f"format {fmt!r}"
        raise ValueError(
            f"cannot draw {path}: {shown} is not a figure format; use .svg, .png or .pdf "
            f"(or {', '.join(sorted(set(formats) - {'svg', 'png', 'pdf'}))})"
        )
    return fmt


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


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write ``fig`` atomically in the format of the path's suffix (ValueError if unknown)."""
    path = Path(path)
    fmt = figure_format(path)
    with atomic_output(path) as tmp:
        fig.savefig(tmp, format=fmt, bbox_inches="tight", dpi=120)
    return path


def _sets(named: Mapping[str, Circuit], on: str) -> dict[str, set[Any]]:
    check_compatible(named.values())
    return {name: components(circuit, on) for name, circuit in named.items()}


def venn(
    named: Mapping[str, Circuit],
    path: str | Path,
    on: str = "nodes",
    *,
    max_names: int = 8,
    title: str | None = None,
) -> Path:
    """Venn diagram (2 or 3 circuits) or UpSet-style plot (4+) of heads and MLPs
    (``on="nodes"``) or sender-to-receiver edges (``on="edges"``); regions holding at most
    ``max_names`` elements list them by name. Format from the suffix (svg, png, pdf)."""
    sets = _sets(named, on)
    fig = new_figure(6 if len(sets) <= 3 else max(6.0, 2 + 0.45 * len(set_regions(sets))), 5)
    _draw_sets(fig, fig.add_gridspec(1, 1)[0], sets, max_names, title or f"shared {on}")
    return save_figure(fig, path)


def venn_grid(
    circuits_by_threshold_by_task: Mapping[float, Mapping[str, Circuit]],
    path: str | Path,
    on: str = "nodes",
    *,
    max_names: int = 8,
) -> Path:
    """One row per threshold (in the given order), each a Venn / UpSet of the tasks' circuits."""
    rows = list(circuits_by_threshold_by_task.items())
    if not rows:
        raise ValueError("venn_grid needs at least one threshold")
    fig = new_figure(7, 4.5 * len(rows))
    grid = fig.add_gridspec(len(rows), 1, hspace=0.35)
    for i, (threshold, named) in enumerate(rows):
        _draw_sets(fig, grid[i], _sets(named, on), max_names, f"threshold {threshold}: {on}")
    return save_figure(fig, path)
