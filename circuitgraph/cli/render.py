"""``circuitgraph render``: draw a circuit file with Graphviz, or several circuit files in one
picture coloured by membership (A only, B only, shared)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from circuitgraph.cli._circuits import check_circuit_file, load_circuit


def add_parsers(sub: Any) -> None:
    """Register ``render``."""
    p = sub.add_parser(
        "render", help="draw a circuit file with Graphviz (several files: one comparison picture)"
    )
    p.add_argument("files", nargs="+", type=Path, metavar="file", help="circuit.json file(s)")
    p.add_argument("--names", nargs="+", help="one name per file in a comparison's legend")
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        help="output file; format from the suffix: .svg, .png, .pdf or .dot "
        "(default: the input with .svg; needed for a comparison)",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file (default: refuse)"
    )
    p.set_defaults(func=run_render)


def run_render(args: argparse.Namespace) -> int:
    from circuitgraph.circuit.render import graphviz_format
    from circuitgraph.results import check_new, check_writable

    for path in args.files:
        check_circuit_file(path)
    several = len(args.files) > 1
    if several and args.output is None:
        raise ValueError("a comparison of several circuit files needs -o FILE (.svg, .png, ...)")
    if args.names is not None and (not several or len(args.names) != len(args.files)):
        raise ValueError(f"--names needs one name per file ({len(args.files)} files) to compare")
    output = args.output or args.files[0].with_suffix(".svg")
    graphviz_format(output)
    check_writable(output, folder=False)
    check_new(output, args.overwrite, keep_both="another -o file")
    circuits = [load_circuit(path) for path in args.files]
    if several:
        from circuitgraph.circuit.render import render_comparison
        from circuitgraph.cli.overlap import circuit_names

        names = args.names or circuit_names(args.files, circuits)
        if len(set(names)) != len(names):
            raise ValueError(f"two circuits share the name {names}: give --names")
        render_comparison(dict(zip(names, circuits, strict=True)), output)
    else:
        circuits[0].render(output)
    print(f"wrote {output}")
    return 0
