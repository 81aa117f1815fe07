"""``circuitgraph view``: an interactive, offline HTML page of circuits (see docs/viewer.md)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

HELP = """\
One input: a circuit.json, a run folder (discover), a sweep folder (a scrubber over its
thresholds) or a stability folder (a scrubber over frequency). Two or more: one layout,
coloured by membership (A only, B only, shared); --levels scrubs through them in order instead.
The page is one self-contained file with no network access: open it in any browser.

examples:
  circuitgraph view results/toy-seq/digits/edges-0.01
  circuitgraph view results/toy-seq/digits/nodes-0.8 results/toy-seq/months/nodes-0.8 \\
      --out digits-vs-months.html
"""


def add_parsers(sub: Any) -> None:
    """Register ``view``."""
    p = sub.add_parser(
        "view",
        help="an interactive HTML page of circuits (offline; compare several)",
        description=HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("inputs", nargs="+", type=Path, metavar="RESULTS_DIR_OR_JSON")
    p.add_argument(
        "-o",
        "--out",
        type=Path,
        help="the .html file (default: view.html in a single results folder, or the circuit "
        "file with .html; required for several inputs)",
    )
    p.add_argument("--title", help="the page's title (default: model, task and method)")
    p.add_argument(
        "--levels",
        action="store_true",
        help="several inputs: a scrubber over them in the order given, not a comparison",
    )
    p.add_argument(
        "--overwrite", action="store_true", help="replace an existing output file (default: refuse)"
    )
    p.set_defaults(func=run_view)


def default_output(inputs: list[Path]) -> Path:
    """Where the page goes without --out: beside a single input; UsageError for several."""
    from circuitgraph.cli._common import UsageError

    if len(inputs) > 1:
        raise UsageError(f"{len(inputs)} inputs: give --out FILE.html for the comparison page")
    (only,) = inputs
    return only / "view.html" if only.is_dir() else only.with_suffix(".html")


def run_view(args: argparse.Namespace) -> int:
    from circuitgraph.results import check_new, check_writable
    from circuitgraph.viewer import view
    from circuitgraph.viewer.load import load_paths

    output = args.out or default_output(args.inputs)
    if output.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"--out {output}: give a file name ending in .html")
    check_writable(output, folder=False)
    check_new(output, args.overwrite, keep_both="another --out file")
    loaded = load_paths(args.inputs, levels=args.levels)
    path = view(loaded, output, overwrite=args.overwrite, title=args.title)
    shown = {"single": "circuit", "compare": "circuits compared", "levels": "levels"}[loaded.mode]
    print(f"wrote {path} ({len(loaded.circuits)} {shown}; open it in a browser)")
    return 0
