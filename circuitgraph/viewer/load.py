"""What the viewer can show, read from disk: circuit files and results folders.

A circuit file (``circuit.json``) or a run folder (with ``circuit.json`` and ``run.json``) is
one circuit; a ``sweep`` folder is its thresholds as levels; a ``stability`` folder is every
node (or edge) any resample found, with its frequency, as levels of frequency. Every error
names the path and says what to give instead.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from circuitgraph.circuit.graph import Circuit
from circuitgraph.circuit.serialization import read_json

__all__ = ["Loaded", "MAX_CIRCUITS", "load_path", "load_paths", "stability_levels"]

MAX_CIRCUITS = 30  # membership is a bit mask in the page's script
WHAT = (
    "give a circuit.json written by circuitgraph, or a results folder (discover, sweep, stability)"
)


@dataclass
class Loaded:
    """Circuits (name -> circuit, in order) with their run records and frequencies."""

    circuits: dict[str, Circuit]
    runs: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    mode: str = "single"
    level_name: str = "level"
    frequency: dict[str, float] | None = None
    edge_frequency: dict[tuple[str, str], float] | None = None
    analyses: dict[str, list[dict[str, Any]]] | None = None


ANALYSES = {"OV": "ov_scores.csv", "attention": "attention_scores.csv"}


def _analyses(folder: Path) -> dict[str, list[dict[str, Any]]] | None:
    """The per-head tables ``circuitgraph analyse`` wrote for this model and task (the
    ``analysis`` folder beside the run folder), if it ran."""
    found = {}
    for name, file in ANALYSES.items():
        path = folder.parent / "analysis" / file
        if path.is_file():
            with path.open(newline="", encoding="utf-8") as handle:
                found[name] = [
                    {k: _value(v) for k, v in row.items()} for row in csv.DictReader(handle)
                ]
    return found or None


def _value(text: str) -> Any:
    try:
        return float(text)
    except ValueError:
        return text


def _run(folder: Path) -> dict[str, Any] | None:
    path = folder / "run.json"
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return None
    return record if isinstance(record, dict) else None


def _circuit(path: Path) -> Circuit:
    data = read_json(path)
    if not isinstance(data, dict) or "schema_version" not in data:
        shown = "a JSON object" if isinstance(data, dict) else f"JSON {type(data).__name__}"
        raise ValueError(f"{path} is not a circuit file ({shown} without schema_version); {WHAT}")
    return Circuit.from_dict(data, source=str(path))


def _name(circuit: Circuit, path: Path) -> str:
    task = circuit.metadata.get("task")
    folder = path.parent.name if path.name == "circuit.json" else path.stem
    return f"{task}/{folder}" if task and folder and folder != task else str(task or folder)


def _frequencies(path: Path, columns: int) -> dict[Any, float]:
    """A frequency CSV of circuitgraph's stability command: name(s), then the frequency."""
    found: dict[Any, float] = {}
    with path.open(newline="", encoding="utf-8") as file:
        for i, row in enumerate(csv.reader(file)):
            if i == 0 or not row:
                continue
            key = row[0] if columns == 1 else tuple(row[:columns])
            found[key] = float(row[columns])
    return found


def stability_levels(
    consensus: Circuit,
    frequency: dict[str, float],
    edge_frequency: dict[tuple[str, str], float] | None = None,
) -> Loaded:
    """Levels ``frequency >= q`` for every distinct frequency q (ascending): what any resample
    found, down to what all of them found, each element with its frequency."""
    config = consensus.config
    by_edges = bool(edge_frequency)
    found: dict[Any, float] = dict(edge_frequency) if by_edges else dict(frequency)  # type: ignore[arg-type]
    levels = sorted({f for f in found.values() if f > 0})[-MAX_CIRCUITS:]
    circuits: dict[str, Circuit] = {}
    for q in levels:
        kept = [e for e, f in found.items() if f >= q - 1e-12]
        circuit = Circuit.from_edges(config, kept) if by_edges else Circuit.from_nodes(config, kept)
        circuit.metadata = {**consensus.metadata, "frequency_at_least": q}
        circuits[f"≥ {q:.2g}"] = circuit
    if not circuits:
        raise ValueError("no node or edge was found by any resample: nothing to show")
    return Loaded(
        circuits,
        mode="levels",
        level_name="frequency",
        frequency=frequency,
        edge_frequency=edge_frequency,
    )


def load_path(path: str | Path) -> Loaded:
    """One input: a circuit file, a run folder, a sweep folder or a stability folder."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no such file or folder: {path}; {WHAT}")
    if path.is_file():
        if path.suffix.lower() != ".json":
            raise ValueError(f"{path} is not a JSON file; {WHAT}")
        circuit = _circuit(path)
        name = _name(circuit, path)
        run = _run(path.parent) if path.name == "circuit.json" else None
        analyses = _analyses(path.parent) if path.name == "circuit.json" else None
        return Loaded({name: circuit}, {name: run}, analyses=analyses)
    if (path / "circuit.json").is_file():
        return load_path(path / "circuit.json")
    if (path / "consensus.json").is_file() and (path / "frequency.csv").is_file():
        loaded = stability_levels(
            _circuit(path / "consensus.json"),
            _frequencies(path / "frequency.csv", 1),
            _frequencies(path / "edge_frequency.csv", 2)
            if (path / "edge_frequency.csv").is_file()
            else None,
        )
        run = _run(path)
        loaded.runs = dict.fromkeys(loaded.circuits, run)
        return loaded
    levels = sorted(
        (p for p in path.iterdir() if (p / "circuit.json").is_file()),
        key=lambda p: _number(p.name),
        reverse=True,
    )
    if not levels:
        raise ValueError(f"{path} holds no circuit.json (nor a sweep or stability run); {WHAT}")
    circuits = {p.name: _circuit(p / "circuit.json") for p in levels[:MAX_CIRCUITS]}
    runs = {p.name: _run(p) for p in levels[:MAX_CIRCUITS]}
    return Loaded(circuits, runs, mode="levels", level_name="threshold")


def _number(name: str) -> float:
    """The threshold in a folder name such as ``nodes-0.8`` (sweep levels sort by it)."""
    match = re.search(r"(\d+(?:\.\d+)?(?:e-?\d+)?)", name)
    return float(match.group(1)) if match else 0.0


def load_paths(paths: Sequence[str | Path], levels: bool = False) -> Loaded:
    """Several inputs: one is shown as it is; more are compared (or, with ``levels``, scrubbed
    through in the order given)."""
    if not paths:
        raise ValueError(f"nothing to show; {WHAT}")
    if len(paths) == 1:
        return load_path(paths[0])
    loaded = [load_path(p) for p in paths]
    circuits: dict[str, Circuit] = {}
    runs: dict[str, dict[str, Any] | None] = {}
    for path, one in zip(paths, loaded, strict=True):
        if len(one.circuits) != 1:
            raise ValueError(
                f"{path} holds {len(one.circuits)} circuits (a sweep or stability folder): "
                "view it alone, or give one of its circuit.json files to compare"
            )
        (name, circuit), run = next(iter(one.circuits.items())), next(iter(one.runs.values()))
        name = _unique(name, circuits, Path(path))
        circuits[name], runs[name] = circuit, run
    if len(circuits) > MAX_CIRCUITS:
        raise ValueError(f"{len(circuits)} circuits: the viewer shows at most {MAX_CIRCUITS}")
    return Loaded(circuits, runs, mode="levels" if levels else "compare", level_name="circuit")


def _unique(name: str, taken: dict[str, Circuit], path: Path) -> str:
    parts = [p for p in path.resolve().parts[:-1] if p != "/"]
    candidate, depth = name, 1
    while candidate in taken and depth <= len(parts):
        candidate = "/".join(parts[-depth:])
        depth += 1
    while candidate in taken:
        candidate += "'"
    return candidate
