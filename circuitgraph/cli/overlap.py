"""``circuitgraph overlap``: overlap tables and Venn/UpSet figures of circuit files."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from circuitgraph.cli._circuits import check_circuit_file, load_circuit
from circuitgraph.options import On, values


def add_parsers(sub: Any) -> None:
    """Register ``overlap``."""
    p = sub.add_parser(
        "overlap",
        help="compare circuit files: overlap table, Venn or UpSet figure",
        description="Print the pairwise overlap of circuits (sizes, intersection, union, "
        "Jaccard) and the members shared by all; optionally draw a Venn diagram (2-3 "
        "circuits) or an UpSet plot (4 or more). Circuits are named by their task, or by "
        "their folder when tasks repeat.",
    )
    p.add_argument("files", nargs="+", type=Path, help="circuit.json files")
    p.add_argument("--on", choices=values(On), default="nodes", help="what to compare")
    p.add_argument("--names", nargs="+", help="one name per file instead of the task names")
    p.add_argument("--venn", type=Path, help="figure file (.svg, .png or .pdf)")
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing --venn file (default: refuse)"
    )
    p.add_argument("--csv", action="store_true", help="print CSV instead of an aligned table")
    p.set_defaults(func=run_overlap)


def circuit_names(paths: list[Path], circuits: list[Any]) -> list[str]:
    """Each circuit's task (from its metadata, else its path); circuits sharing a task get
    the shortest tail of their folder path that tells them apart.

    >>> from types import SimpleNamespace as C
    >>> paths = [Path("r/digits/nodes-0.8/circuit.json"), Path("r/digits/s/nodes-0.8/circuit.json"),
    ...          Path("x.json")]
    >>> circuit_names(paths, [C(metadata={"task": "digits"})] * 2 + [C(metadata={})])
    ['digits (digits/nodes-0.8)', 'digits (s/nodes-0.8)', 'x.json']
    >>> circuit_names([Path("r/a.json"), Path("r/b.json")], [C(metadata={"task": "digits"})] * 2)
    ['digits (a.json)', 'digits (b.json)']
    """
    resolved = [p.resolve() for p in paths]
    for i, path in enumerate(resolved):
        if path in resolved[:i]:
            raise ValueError(f"the same circuit file is given twice: {paths[i]}")
    names = [str(c.metadata.get("task") or p) for p, c in zip(paths, circuits, strict=True)]
    result = list(names)
    for name in set(names):
        group = [i for i, n in enumerate(names) if n == name]
        if len(group) == 1:
            continue
        # the folders tell them apart, unless files of one folder are compared: then the names
        one_name = len({resolved[i].name for i in group}) == 1
        parts = [resolved[i].parent.parts if one_name else resolved[i].parts for i in group]
        for k in range(1, max(len(f) for f in parts) + 1):
            tails = ["/".join(f[-k:]) for f in parts]
            if len(set(tails)) == len(tails):
                break
        for i, tail in zip(group, tails, strict=True):
            result[i] = f"{name} ({tail})"
    return result


def run_overlap(args: argparse.Namespace) -> int:
    from circuitgraph.circuit.setops import (
        check_compatible,
        components,
        heads_and_mlps,
        overlap_table,
        sorted_elements,
    )
    from circuitgraph.figures import figure_format, venn
    from circuitgraph.results import check_new, check_writable

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
        check_new(args.venn, args.overwrite, keep_both="another --venn file")
    for path in args.files:
        check_circuit_file(path)
    circuits = [load_circuit(path) for path in args.files]
    if args.on == "nodes" and len({c.config.qkv for c in circuits}) > 1:
        circuits = [heads_and_mlps(c) for c in circuits]
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
