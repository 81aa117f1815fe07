"""``circuitgraph render``: draw a circuit file with Graphviz."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from circuitgraph.cli._circuits import check_circuit_file, load_circuit


def add_parsers(sub: Any) -> None:
    """Register ``render``."""
    p = sub.add_parser("render", help="draw a circuit file with Graphviz")
    p.add_argument("file", type=Path, help="circuit.json")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output file; format from the suffix: .svg, .png, .pdf or .dot "
        "(default: the input with .svg)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file (default: refuse)"
    )
    p.set_defaults(func=run_render)


def run_render(args: argparse.Namespace) -> int:
    from circuitgraph.circuit.render import graphviz_format
    from circuitgraph.results import check_new, check_writable

    check_circuit_file(args.file)
    output = args.output or args.file.with_suffix(".svg")
    graphviz_format(output)
    check_writable(output, folder=False)
    check_new(output, args.overwrite, keep_both="another -o file")
    circuit = load_circuit(args.file)
    circuit.render(output)
    print(f"wrote {output}")
    return 0
