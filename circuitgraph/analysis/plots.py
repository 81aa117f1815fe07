"""Figures for the analyses, each drawn from the analysis result and written atomically.

Figures come from :func:`circuitgraph.figures.new_figure` (the Agg canvas, no pyplot global
state), so they work headless and in threads. The file format follows the suffix (``.png``,
``.svg``, ``.pdf``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from circuitgraph.figures import new_figure, save_figure

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "plot_attention",
    "plot_cross_task",
    "plot_logit_lens",
    "plot_ov_scores",
    "plot_patching",
]


def _grid(count: int, max_cols: int, size: float) -> tuple[Figure, list[Any]]:
    cols = max(1, min(max_cols, count))
    rows = math.ceil(count / cols)
    fig = new_figure(size * cols, size * rows, layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False).ravel().tolist()
    for ax in axes[count:]:
        ax.set_visible(False)
    return fig, axes[:count]


def plot_attention(
    patterns: Any,
    path: str | Path,
    heads: Iterable[str] | None = None,
    prompt: int | None = None,
    max_cols: int = 4,
) -> Path:
    """Heat maps (query rows x key columns) of the mean pattern of chosen heads.

    ``patterns`` is an ``AttentionPatterns``; ``prompt`` shows one prompt instead of the mean.
    """
    names = [h.name for h in patterns.heads] if heads is None else list(heads)
    if isinstance(heads, str):
        names = [heads]
    fig, axes = _grid(len(names), max_cols, 3.6)
    for ax, name in zip(axes, names, strict=True):
        matrix, labels = patterns.matrix(name, prompt)
        ax.imshow(matrix.numpy(), cmap="Blues", vmin=0.0, vmax=1.0)
        ticks = range(len(labels))
        ax.set_xticks(ticks, labels, rotation=90, fontsize=7)
        ax.set_yticks(ticks, labels, fontsize=7)
        ax.set_title(name)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
    return save_figure(fig, path)


def plot_logit_lens(
    table: pd.DataFrame, path: str | Path, positions: Iterable[int] | None = None
) -> Path:
    """Target rank by layer (log scale, one line per position) and target probability.

    ``table`` is the aggregated output of ``logit_lens``; default: the last position in it.
    """
    if table.empty:
        raise ValueError("empty logit-lens table")
    chosen = [int(table["position"].max())] if positions is None else list(positions)
    fig = new_figure(9, 3.6, layout="constrained")
    rank_ax, prob_ax = fig.subplots(1, 2)
    for pos in chosen:
        rows = cast(pd.DataFrame, table[table["position"] == pos]).sort_values("stage")
        if rows.empty:
            raise ValueError(f"position {pos} is not in the logit-lens table")
        label = f"pos {pos} -> {rows['target'].iloc[0]}"
        rank_ax.plot(rows["stage_name"], rows["target_rank"] + 1, marker="o", label=label)
        prob_ax.plot(rows["stage_name"], rows["target_prob"], marker="o", label=label)
        if rows["wrong_prob"].notna().any():
            wrong = "wrong (last member shown)"
            prob_ax.plot(rows["stage_name"], rows["wrong_prob"], ls="--", label=wrong)
    rank_ax.set_yscale("log")
    rank_ax.set_ylabel("rank of target (1 = top)")
    prob_ax.set_ylabel("probability")
    for ax in (rank_ax, prob_ax):
        ax.set_xlabel("residual stream after")
        ax.tick_params(axis="x", rotation=90)
        ax.legend(fontsize=7)
    return save_figure(fig, path)


def plot_patching(table: pd.DataFrame, path: str | Path, value: str = "normalised") -> Path:
    """One heat map per direction: heads (rows) x positions (columns) of ``value``."""
    if table.empty:
        raise ValueError("empty patching table")
    directions = list(dict.fromkeys(table["direction"]))
    fig, axes = _grid(len(directions), 2, 5.0)
    for ax, direction in zip(axes, directions, strict=True):
        part = cast(pd.DataFrame, table[table["direction"] == direction])
        grid = part.pivot_table(index=["layer", "head_index"], columns="position", values=value)
        heads = [f"a{layer}.{head}" for layer, head in grid.index]
        labels = part.drop_duplicates("position").set_index("position")["token"]
        center = 1.0 if direction == "noising" else 0.0
        spread = float(np.nanmax(np.abs(grid.to_numpy() - center))) if grid.size else 1.0
        spread = spread if math.isfinite(spread) and spread > 0 else 1.0
        image = ax.imshow(
            grid.to_numpy(), cmap="RdBu", vmin=center - spread, vmax=center + spread, aspect="auto"
        )
        ax.set_xticks(range(grid.shape[1]), [labels[p] for p in grid.columns], rotation=90)
        ax.set_yticks(range(len(heads)), heads, fontsize=6)
        ax.set_title(f"{direction} ({value})")
        fig.colorbar(image, ax=ax, shrink=0.8)
    return save_figure(fig, path)


def plot_cross_task(matrix: pd.DataFrame, path: str | Path) -> Path:
    """The cross-task score matrix as an annotated heat map (rows: circuit, columns: task)."""
    values = matrix.to_numpy(dtype=float)
    size = (1.2 * matrix.shape[1] + 2, 1.0 * matrix.shape[0] + 1.5)
    fig = new_figure(*size, layout="constrained")
    ax = fig.subplots()
    image = ax.imshow(values, cmap="viridis", vmin=min(0.0, np.nanmin(values)), vmax=1.0)
    for (i, j), v in np.ndenumerate(values):
        ax.text(j, i, f"{100 * v:.0f}%", ha="center", va="center", color="w", fontsize=8)
    ax.set_xticks(range(matrix.shape[1]), matrix.columns, rotation=45, ha="right")
    ax.set_yticks(range(matrix.shape[0]), matrix.index)
    ax.set_xlabel("evaluated on")
    ax.set_ylabel("circuit found on")
    fig.colorbar(image, ax=ax)
    return save_figure(fig, path)


def plot_ov_scores(table: pd.DataFrame, path: str | Path, top: int = 10) -> Path:
    """Copy vs successor score of every head; the ``top`` successor heads are labelled."""
    fig = new_figure(5, 4.5, layout="constrained")
    ax = fig.subplots()
    ax.scatter(table["copy_score"], table["successor_score"], s=12, alpha=0.6)
    best = table.sort_values("successor_score", ascending=False).head(top)
    for _, row in best.iterrows():
        ax.annotate(row["head"], (row["copy_score"], row["successor_score"]), fontsize=7)
    ax.set_xlabel("copy score")
    ax.set_ylabel("successor score")
    ax.set_xlim(-0.05, 1.05)
    ax.set_ylim(-0.05, 1.05)
    return save_figure(fig, path)
