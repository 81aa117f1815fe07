"""See and explore circuits: one offline HTML page per view, with d3 inline.

:func:`view` draws one circuit, compares several (coloured by membership: A only, B only,
shared, from the set algebra), or scrubs through levels (a threshold sweep, a stability run);
``Circuit.to_html`` and ``circuitgraph view`` call it. The page needs no network: d3 v7
(vendored, ISC licence), its script, its style and the data are all inline. See
``docs/viewer.md``.

>>> import types, tempfile, pathlib
>>> from circuitgraph.circuit.graph import Circuit
>>> cfg = types.SimpleNamespace(n_layers=2, n_heads=2, model_name="toy")
>>> c = Circuit.from_edges(cfg, [("embed", "a0.1.q", {"effect": 0.3}), ("a0.1", "logits")])
>>> path = view(c, pathlib.Path(tempfile.mkdtemp()) / "c.html")
>>> "circuit-data" in path.read_text()
True
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from circuitgraph.circuit.graph import Circuit
from circuitgraph.viewer.data import page_data
from circuitgraph.viewer.load import MAX_CIRCUITS, Loaded, load_paths, stability_levels
from circuitgraph.viewer.page import render_page, write_page

__all__ = ["page_data", "render_page", "to_html", "view", "write_folder_view"]


def _loaded(what: Any, levels: bool) -> Loaded:
    """Whatever ``view`` was given, as named circuits with their records."""
    if isinstance(what, Loaded):  # read from disk already (circuitgraph view)
        return what
    if isinstance(what, Circuit):
        return Loaded({_circuit_name(what): what})
    if isinstance(what, str | Path):
        return load_paths([what], levels=levels)
    if hasattr(what, "frequency") and callable(getattr(what, "consensus", None)):
        # a cg.stability result: every element any resample found, by frequency
        edge_frequency = getattr(what, "edge_frequency", None)
        return stability_levels(
            what.consensus(0.5),
            {str(k): float(v) for k, v in what.frequency.items()},
            {tuple(k): float(v) for k, v in edge_frequency.items()}
            if edge_frequency is not None and len(edge_frequency)
            else None,
        )
    if isinstance(what, Mapping):
        circuits = dict(what)
        bad = [str(k) for k, c in circuits.items() if not isinstance(c, Circuit)]
        if bad:
            raise TypeError(f"view() needs circuits as the mapping's values; not for {bad}")
        circuits = {str(k): c for k, c in circuits.items()}
    elif isinstance(what, Sequence) and all(isinstance(p, str | Path) for p in what):
        return load_paths(list(what), levels=levels)
    elif isinstance(what, Sequence) and all(isinstance(c, Circuit) for c in what):
        circuits = {}
        for i, c in enumerate(what):
            name = _circuit_name(c)
            circuits[name if name not in circuits else f"{name} ({i + 1})"] = c
    else:
        raise TypeError(
            f"view() takes a Circuit, a mapping name -> Circuit, a list of circuits, a "
            f"stability result or circuit files / results folders, not {type(what).__name__}"
        )
    if len(circuits) > MAX_CIRCUITS:
        raise ValueError(f"{len(circuits)} circuits: the viewer shows at most {MAX_CIRCUITS}")
    if len(circuits) == 1:
        return Loaded(circuits)
    return Loaded(circuits, mode="levels" if levels else "compare", level_name="level")


def _circuit_name(circuit: Circuit) -> str:
    meta = circuit.metadata
    parameters: Mapping[str, Any] = meta.get("parameters") or {}
    parameters = parameters if isinstance(parameters, Mapping) else {}
    value = parameters.get("tau", parameters.get("threshold"))
    parts = [meta.get("task"), meta.get("method"), value]
    return " ".join(str(p) for p in parts if p is not None) or "circuit"


def view(
    circuits: Any,
    path: str | Path | None = None,
    *,
    overwrite: bool = False,
    title: str | None = None,
    levels: bool = False,
    runs: Mapping[str, Mapping[str, Any] | None] | None = None,
    curve: Any = None,
    analyses: Mapping[str, Any] | None = None,
) -> Path:
    """Write an interactive, offline HTML view of ``circuits`` and return its path.

    ``circuits``: a Circuit; a mapping name -> Circuit or a list of circuits (compared, or with
    ``levels=True`` scrubbed through in order); a :func:`circuitgraph.stability` result; or
    circuit files / results folders. ``path``: the ``.html`` file (default: a new file in the
    temporary folder); an existing file is kept unless ``overwrite``. ``runs``: each circuit's
    ``run.json`` record for the provenance panel; ``curve``: a faithfulness curve
    (:func:`circuitgraph.faithfulness_curve`) linked to the top-k slider; ``analyses``: name ->
    per-head table (``cg.ov_scores(model, task)``, ``analysis.attention_scores(model, task)``)
    shown in the hover cards (read from a results folder's ``../analysis/`` when there).
    """
    loaded = _loaded(circuits, levels)
    if runs is not None:
        loaded.runs = {**loaded.runs, **{k: dict(v) if v else None for k, v in runs.items()}}
    try:
        data = page_data(
            loaded.circuits,
            loaded.mode,
            title=title,
            runs=loaded.runs,
            frequency=loaded.frequency,
            edge_frequency=loaded.edge_frequency,
            curve=curve,
            level_name=loaded.level_name,
            analyses=analyses if analyses is not None else loaded.analyses,
        )
    except ValueError as error:
        if "different models" in str(error) or "graph options" in str(error):
            raise ValueError(
                f"{error}: one view draws circuits of one model in one layout; view them separately"
            ) from error
        raise
    if path is None:
        with tempfile.NamedTemporaryFile(prefix="circuitgraph-", suffix=".html", delete=False) as f:
            path = f.name
        overwrite = True  # the file just made for it
    return write_page(path, data, overwrite=overwrite)


def to_html(circuit: Circuit, path: str | Path, *, overwrite: bool = False, **options: Any) -> Path:
    """Write ``circuit``'s interactive view to ``path`` (see :func:`view` for ``options``)."""
    return view(circuit, path, overwrite=overwrite, **options)


def write_folder_view(folder: str | Path, name: str | None = None) -> Path:
    """Write ``view.html`` into a results folder (run, sweep or stability) as it is being
    written; ``name`` names a single circuit (the folder may still have a temporary name)."""
    folder = Path(folder)
    loaded = load_paths([folder])
    if name is not None and len(loaded.circuits) == 1:
        ((old, circuit),) = loaded.circuits.items()
        loaded.circuits, loaded.runs = {name: circuit}, {name: loaded.runs.get(old)}
    return view(loaded, folder / "view.html")
