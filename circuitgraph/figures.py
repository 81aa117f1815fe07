"""The one matplotlib convention: every figure comes from :func:`new_figure` (an Agg canvas,
no pyplot state, works headless) and leaves through :func:`save_figure` (atomic, format from the
suffix). Also the Venn / UpSet overlap figures of circuits.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from circuitgraph.circuit.setops import check_compatible, components, set_regions, sorted_elements
from circuitgraph.files import atomic_output

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure
    from matplotlib.gridspec import SubplotSpec

    from circuitgraph.circuit.graph import Circuit


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
        # (matplotlib-venn takes lists; its annotations ask for tuples of exactly 2 or 3)
        diagram = draw(list(sets.values()), set_labels=labels, ax=ax)  # pyright: ignore[reportArgumentType]
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


def new_figure(
    width: float,
    height: float,
    layout: Literal["constrained", "compressed", "tight"] | None = None,
) -> Figure:
    """A matplotlib Figure on an Agg canvas: no pyplot state, works headless and in threads.

    Every circuitgraph figure starts here and leaves through :func:`save_figure`; a function
    that draws into a caller's ``ax`` uses that instead and never touches pyplot.

    >>> new_figure(4, 3, layout="constrained").get_size_inches().tolist()
    [4.0, 3.0]
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout=layout)
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
