"""The results folder: ``<out>/<model>/<task>/<run>/`` with the circuit, its scores and a record.

Every run folder holds ``circuit.json``, ``circuit.dot``, ``circuit.svg`` (unless drawing was
skipped), ``scores.csv`` and ``run.json``, so any figure can be traced back to the call that
made it. Folders are written atomically: built under a hidden temporary name next to the
target and renamed into place at the end, so an error or Ctrl-C leaves no half-written folder;
temporary folders of killed processes are removed by the next run. An existing run folder is
never replaced unless asked (``overwrite=True``, the command line's ``--overwrite``).

>>> safe_name("meta-llama/Llama-2-7b"), safe_name("random:gpt2-tiny")
('meta-llama--Llama-2-7b', 'random-gpt2-tiny')
>>> run_name("edges", 0.01, start=0.8)
'edges-0.01-from-nodes-0.8'
"""

from __future__ import annotations

import errno
import importlib.metadata
import json
import os
import platform
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.circuit.nodes import node_sort_key
from circuitgraph.circuit.provenance import read_provenance
from circuitgraph.files import json_default, remove_stale

__all__ = [
    "METRIC_COLUMNS",
    "SCORE_COLUMNS",
    "atomic_folder",
    "check_new",
    "check_writable",
    "result_dir",
    "run_name",
    "safe_name",
    "scores_table",
    "versions",
    "write_json",
    "write_run",
]

METRIC_COLUMNS = ("score", "logit_diff", "normalised_logit_diff", "kl", "accuracy")
SCORE_COLUMNS = ("section", "name", "status", "step", "sweep", "effect", *METRIC_COLUMNS)


def safe_name(text: str) -> str:
    """A folder name for ``text``: ``/`` becomes ``--``, other unsafe characters ``-``."""
    name = re.sub(r"[^A-Za-z0-9._+-]+", "-", text.replace("/", "--")).lstrip(".-").rstrip("-")
    if not name:
        raise ValueError(f"cannot make a folder name from {text!r}")
    return name


def format_value(value: float) -> str:
    """Short form of a threshold or tau for folder names (``0.8``, ``0.01``, ``1e-05``)."""
    return f"{float(value):g}"


def run_name(method: str, value: float, start: float | None = None) -> str:
    """``nodes-0.8``, ``edges-0.01`` or ``edges-0.01-from-nodes-0.8``."""
    name = f"{method}-{format_value(value)}"
    return name if start is None else f"{name}-from-nodes-{format_value(start)}"


def result_dir(out: str | Path, model: str, task: str, run: str) -> Path:
    """``<out>/<model>/<task>/<run>`` with every part made folder-safe."""
    return Path(out) / safe_name(model) / safe_name(task) / safe_name(run)


def check_writable(target: str | Path, folder: bool = True) -> None:
    """Raise OSError now (before any long computation) if ``target`` cannot be created
    (as a folder, or with ``folder=False`` as a file): a probe folder is made and removed in
    its deepest existing ancestor, so read-only and virtual file systems fail here too."""
    target = Path(target)
    ancestor = target.parent
    while not ancestor.exists():
        if ancestor.is_symlink():  # a dangling link would fail later
            raise NotADirectoryError(f"cannot write {target}: {ancestor} is a broken link")
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise NotADirectoryError(f"cannot write {target}: {ancestor} is not a folder")
    if target.exists() and target.is_dir() != folder:
        what = "file" if folder else "folder"
        raise FileExistsError(f"cannot write {target}: a {what} of that name exists")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".circuitgraph-probe-", dir=ancestor))
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise PermissionError(
            f"cannot write {target}: cannot create anything in {ancestor} ({reason})"
        ) from None


def check_new(
    target: str | Path, overwrite: bool = False, keep_both: str = "--tag NAME (or another --out)"
) -> None:
    """FileExistsError if ``target`` exists and ``overwrite`` is false (the results rule);
    the message names --overwrite and ``keep_both``, the option that writes elsewhere."""
    target = Path(target)
    if target.exists() and not overwrite:
        raise FileExistsError(
            f"{target} already exists; pass --overwrite to replace it, or {keep_both} to keep both"
        )


def _make_parents(path: Path) -> list[Path]:
    """Create the missing parents of ``path``; return those created, deepest first."""
    missing = []
    parent = path.parent
    while not parent.exists():
        missing.append(parent)
        parent = parent.parent
    for folder in reversed(missing):
        folder.mkdir(exist_ok=True)  # exist_ok: a concurrent run may make it first
    return missing


def _hidden(target: Path, kind: str) -> Path:
    """``.<name>.<kind>-<pid>-<random>`` next to ``target`` (the pid tells stale ones)."""
    return target.with_name(f".{target.name}.{kind}-{os.getpid()}-{uuid.uuid4().hex[:8]}")


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Rename ``tmp`` to ``target``; with ``overwrite`` move an existing ``target`` aside first
    (retrying when concurrent runs interleave), else keep ``tmp``'s work under a free name and
    raise FileExistsError naming it."""
    for _ in range(100):
        try:
            os.rename(tmp, target)  # fails if target is a non-empty folder
            return
        except OSError as error:
            if error.errno not in (errno.ENOTEMPTY, errno.EEXIST, errno.EISDIR):
                raise
        if not overwrite:
            kept = target.with_name(f"{target.name}-{uuid.uuid4().hex[:8]}")
            os.rename(tmp, kept)
            raise FileExistsError(
                f"{target} was created by another run while this one ran; this run's results "
                f"are in {kept}"
            )
        old = _hidden(target, "old")
        try:
            os.rename(target, old)
        except FileNotFoundError:  # another run moved it aside first: try again
            continue
        shutil.rmtree(old, ignore_errors=True)
    raise OSError(f"could not replace {target}: other runs kept writing it")


@contextmanager
def atomic_folder(target: str | Path, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``target``; on success it becomes ``target``.

    An existing ``target`` raises FileExistsError (before and after the work) unless
    ``overwrite``; then it is replaced. On any exception, KeyboardInterrupt included, the
    temporary folder and any parent folders created for it are removed and ``target`` is
    left as it was. Temporary folders left by killed runs are removed first.
    """
    target = Path(target)
    check_writable(target)
    check_new(target, overwrite)
    created = _make_parents(target)
    for kind in ("tmp", "old"):
        remove_stale(target.parent, f".{target.name}.{kind}-")
    tmp = _hidden(target, "tmp")
    try:
        tmp.mkdir()
        yield tmp
        _publish(tmp, target, overwrite)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        for folder in created:
            try:
                folder.rmdir()
            except OSError:
                break
        raise


def versions() -> dict[str, str]:
    """Versions of circuitgraph, its main dependencies and Python."""
    import circuitgraph

    found = {"circuitgraph": circuitgraph.__version__}
    for package in ("torch", "transformer-lens", "transformers", "networkx", "pandas"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    found["python"] = platform.python_version()
    found["platform"] = platform.platform()
    return found


def _node_rows(circuit: Circuit, start: Circuit | None) -> list[dict[str, Any]]:
    """One row per head and MLP: removed (step, sweep, the score after removing it), kept
    (step, sweep, the score the circuit would have had without it when last tried) or not in
    start."""
    config = circuit.config
    reference = start if start is not None else full_circuit(config, qkv=False)
    candidates = set(reference.components())
    present = set(circuit.components())
    removed = {r["node"]: r for r in circuit.metadata.get("removed", [])}
    kept = {r["node"]: r for r in circuit.metadata.get("kept", [])}  # the last try wins
    everything = full_circuit(config, qkv=False)
    rows = []
    for name in sorted(set(everything.components()) | present, key=node_sort_key):
        row: dict[str, Any] = {"section": "node", "name": name}
        record = removed.get(name) or (kept.get(name) if name in present else None) or {}
        if name in removed or (name in candidates and name not in present):
            row["status"] = "removed"
        elif name in present:
            row["status"] = "kept"
        else:
            row["status"] = "not in start"
        row |= {k: record.get(k) for k in ("step", "sweep", "score") if k in record}
        rows.append(row)
    return rows


def _edge_rows(circuit: Circuit) -> list[dict[str, Any]]:
    """One row per tested edge (kept, removed, or dangling: kept but on no embed->logits path)
    and per edge removed without a test (ACDC order: ``untested``, effect empty), in visit
    order; ``step`` counts the tests before the edge."""
    present = set(circuit.edges)
    rows = []
    for step, (u, v, effect, removed) in enumerate(circuit.metadata.get("tested", [])):
        status = "removed" if removed else "kept" if (u, v) in present else "dangling"
        rows.append(
            {
                "section": "edge",
                "name": f"{u} -> {v}",
                "status": status,
                "step": step,
                "effect": effect,
            }
        )
    for u, v, before in reversed(circuit.metadata.get("untested", [])):
        row = {"section": "edge", "name": f"{u} -> {v}", "status": "untested", "step": before}
        rows.insert(before, row | {"effect": None})
    return rows


def scores_table(
    finals: Mapping[str, Mapping[str, float]],
    nodes: Circuit | None = None,
    node_start: Circuit | None = None,
    edges: Circuit | None = None,
) -> pd.DataFrame:
    """The ``scores.csv`` table: final scores first, then node and edge rows.

    Parameters
    ----------
    finals: name ("full_model", "circuit", "empty", ...) -> ``scorer.evaluate`` dict.
    nodes: node-pruned circuit (its ``metadata["removed"]`` and ``metadata["kept"]`` give the
        step, sweep and score of every tried node).
    node_start: the circuit node pruning started from (default: the full model).
    edges: edge-pruned circuit (its ``metadata["tested"]`` gives every tested edge's effect).
    """
    rows = [{"section": "final", "name": name, **values} for name, values in finals.items()]
    if nodes is not None:
        rows += _node_rows(nodes, node_start)
    if edges is not None:
        rows += _edge_rows(edges)
    table = pd.DataFrame(rows, columns=list(SCORE_COLUMNS))
    for column in ("step", "sweep"):
        table[column] = table[column].astype("Int64")
    return table


def write_json(path: str | Path, data: Any) -> Path:
    """Write ``data`` as indented JSON (paths, numpy/torch scalars and sets allowed)."""
    path = Path(path)
    path.write_text(json.dumps(data, indent=2, default=json_default) + "\n", encoding="utf-8")
    return path


def write_run(
    folder: str | Path,
    circuit: Circuit,
    table: pd.DataFrame,
    record: Mapping[str, Any],
    svg: bool = True,
    also: tuple[str, ...] = (),
) -> dict[str, Path]:
    """Write circuit.json, circuit.dot, circuit.svg (if ``svg``), scores.csv and run.json.

    run.json is ``record`` plus the circuit's ``provenance`` (the keys every discovery method
    records, see :mod:`circuitgraph.circuit.provenance`) and the list of ``files``, with the
    names in ``also``: files the caller writes next, from run.json (``view.html``).
    """
    folder = Path(folder)
    paths = {
        "circuit": circuit.to_json(folder / "circuit.json"),
        "dot": folder / "circuit.dot",
    }
    paths["dot"].write_text(circuit.to_dot(), encoding="utf-8")
    if svg:
        paths["svg"] = circuit.render(folder / "circuit.svg")
    paths["scores"] = folder / "scores.csv"
    table.to_csv(paths["scores"], index=False)
    files = sorted([*(p.name for p in paths.values()), *also]) + ["run.json"]
    provenance = read_provenance(circuit.metadata)
    paths["run"] = write_json(
        folder / "run.json", {**record, "provenance": provenance, "files": files}
    )
    return paths
