"""``circuitgraph overlap`` (tables and Venn/UpSet of circuit files) and ``render``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def add_parsers(sub: Any) -> None:
    """Register ``overlap`` and ``render``."""
    p = sub.add_parser(
        "overlap",
        help="compare circuit files: overlap table, Venn or UpSet figure",
        description="Print the pairwise overlap of circuits (sizes, intersection, union, "
        "Jaccard) and the members shared by all; optionally draw a Venn diagram (2-3 "
        "circuits) or an UpSet plot (4 or more). Circuits are named by their task, or by "
        "their folder when tasks repeat.",
    )
    p.add_argument("files", nargs="+", type=Path, help="circuit.json files")
    p.add_argument(
        "--on", choices=("nodes", "edges", "both"), default="nodes", help="what to compare"
    )
    p.add_argument("--names", nargs="+", help="one name per file instead of the task names")
    p.add_argument("--venn", type=Path, help="figure file (.svg, .png or .pdf)")
    p.add_argument("--csv", action="store_true", help="print CSV instead of an aligned table")
    p.set_defaults(func=run_overlap)

    p = sub.add_parser("render", help="draw a circuit file with Graphviz")
    p.add_argument("file", type=Path, help="circuit.json")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output file; format from the suffix: .svg, .png, .pdf or .dot "
        "(default: the input with .svg)",
    )
    p.set_defaults(func=run_render)


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


def _heads_and_mlps(circuit: Any) -> Any:
    """A node-level circuit without the Q/K/V split holding the same heads and MLPs, so node
    sets of circuits found with and without the split can be compared."""
    from circuitgraph.circuit.graph import Circuit

    result = Circuit.from_nodes(circuit.config, circuit.heads() + circuit.mlps(), qkv=False)
    result.metadata = circuit.metadata
    return result


def circuit_names(paths: list[Path], circuits: list[Any]) -> list[str]:
    """Each circuit's task (from its metadata, else its path); circuits sharing a task get
    the shortest tail of their folder path that tells them apart.

    >>> from types import SimpleNamespace as C
    >>> paths = [Path("r/digits/nodes-0.8/circuit.json"), Path("r/digits/s/nodes-0.8/circuit.json"),
    ...          Path("x.json")]
    >>> circuit_names(paths, [C(metadata={"task": "digits"})] * 2 + [C(metadata={})])
    ['digits (digits/nodes-0.8)', 'digits (s/nodes-0.8)', 'x.json']
    """
    names = [str(c.metadata.get("task") or p) for p, c in zip(paths, circuits, strict=True)]
    result = list(names)
    for name in set(names):
        group = [i for i, n in enumerate(names) if n == name]
        if len(group) == 1:
            continue
        folders = [paths[i].resolve().parent.parts for i in group]
        for k in range(1, max(len(f) for f in folders) + 1):
            tails = ["/".join(f[-k:]) for f in folders]
            if len(set(tails)) == len(tails):
                break
        for i, tail in zip(group, tails, strict=True):
            result[i] = f"{name} ({tail})"
    if len(set(result)) != len(result):
        raise ValueError("the same circuit file is given twice")
    return result


def run_overlap(args: argparse.Namespace) -> int:
    from circuitgraph.circuit.setops import (
        check_compatible,
        components,
        overlap_table,
        sorted_elements,
    )
    from circuitgraph.figures import figure_format, venn
    from circuitgraph.results import check_writable

    if args.venn is not None and args.on == "both":
        raise ValueError("--venn draws one kind: use --on nodes or --on edges")
    if args.names is not None and len(args.names) != len(args.files):
        raise ValueError(f"--names gives {len(args.names)} names for {len(args.files)} files")
    if args.names is not None and len(set(args.names)) != len(args.names):
        raise ValueError("--names must be distinct")
    if args.venn is not None and len(args.files) < 2:
        raise ValueError("--venn needs at least 2 circuit files")
    if args.venn is not None:
        figure_format(args.venn)
        check_writable(args.venn, folder=False)
    for path in args.files:
        check_circuit_file(path)
    circuits = [load_circuit(path) for path in args.files]
    if args.on == "nodes" and len({c.config.qkv for c in circuits}) > 1:
        circuits = [_heads_and_mlps(c) for c in circuits]
    names = args.names or circuit_names(args.files, circuits)
    named = dict(zip(names, circuits, strict=True))
    check_compatible(circuits)
    table = overlap_table(named, on=args.on)
    if args.csv:
        print(table.to_csv(index=False), end="")
    else:
        print(table.to_string(index=False, float_format=lambda x: f"{x:.3f}"))
        for on in ("nodes", "edges") if args.on == "both" else (args.on,):
            sets = [components(c, on) for c in circuits]
            common = sorted_elements(set.intersection(*sets))
            shown = [f"{e[0]}->{e[1]}" if isinstance(e, tuple) else e for e in common]
            print(f"{on} in all {len(circuits)} ({len(common)}): {' '.join(shown) or '-'}")
    if args.venn is not None:
        venn(named, args.venn, on=args.on)
        kind = "Venn diagram" if len(circuits) <= 3 else "UpSet plot"
        print(f"wrote {kind} to {args.venn}")
    return 0


def run_render(args: argparse.Namespace) -> int:
    from circuitgraph.circuit.render import graphviz_format
    from circuitgraph.results import check_writable

    check_circuit_file(args.file)
    output = args.output or args.file.with_suffix(".svg")
    graphviz_format(output)
    check_writable(output, folder=False)
    circuit = load_circuit(args.file)
    circuit.render(output)
    print(f"wrote {output}")
    return 0
