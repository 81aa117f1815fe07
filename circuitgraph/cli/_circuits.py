"""Reading circuit files for the commands that take them (overlap, render, evaluate,
analyse): errors that name the file and say what to give instead."""

from __future__ import annotations

from pathlib import Path


def check_circuit_file(path: Path) -> None:
    """FileNotFoundError / IsADirectoryError with one line saying what to give instead."""
    if path.is_dir():
        inside = path / "circuit.json"
        hint = f": give {inside}" if inside.is_file() else "; give a circuit.json file"
        raise IsADirectoryError(f"{path} is a folder, not a circuit file{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"no such circuit file: {path}")


def load_circuit(path: Path):
    """``Circuit.from_json(path)``; its errors name the file."""
    from circuitgraph.circuit.graph import Circuit

    check_circuit_file(path)
    try:
        return Circuit.from_json(path)
    except ValueError as error:  # UnicodeDecodeError and JSONDecodeError included
        if str(path) in str(error):
            raise
        raise ValueError(f"{path}: {error}") from error
