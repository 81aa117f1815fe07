"""The ``circuitgraph`` command.

Subcommands: ``discover`` (one circuit -> a results folder), ``sweep`` (nested thresholds),
``overlap`` (compare circuit files), ``render`` (draw one), ``view`` (an interactive page of
one or more), ``analyse`` (OV scores, attention, logit lens), ``tasks`` and ``models`` (what
exists). Errors in the arguments or the inputs print one ``circuitgraph: error: ...`` line and
exit with code 2; Ctrl-C exits with 130.
Nothing is left half-written in either case.

Each subcommand lives in the module of this package named after it (listed in
:data:`COMMANDS`), which defines ``add_parsers(sub)``. Those modules import only the standard
library, :mod:`circuitgraph.options` and the private ``_common`` and ``_circuits`` at the top
and everything heavy (torch, transformers, pandas) inside their ``run_*`` functions, so
``--help``, ``--version`` and argument errors answer without loading torch.

>>> main(["models"])  # doctest: +ELLIPSIS
toy-seq ...
0
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import warnings

from circuitgraph.cli._arguments import thread_count
from circuitgraph.cli._common import PROG, Parser, UsageError

__all__ = ["COMMANDS", "build_parser", "main"]

# The subcommands in --help order; each is registered by add_parsers(sub) of the module of
# circuitgraph.cli of the same name.
COMMANDS = (
    "discover",
    "sweep",
    "evaluate",
    "stability",
    "overlap",
    "render",
    "view",
    "analyse",
    "tasks",
    "models",
)

EPILOG = """\
examples:
  circuitgraph discover --model smollm2-135m --task digits --threshold 0.8 --out results/
  circuitgraph discover --model toy-seq --task months --method edges --threshold 0.8 --tau 0.01
  circuitgraph sweep --model smollm2-135m --task months --thresholds 0.97 0.9 0.8
  circuitgraph overlap results/smollm2-135m/*/nodes-0.8/circuit.json --venn venn.svg
  circuitgraph render results/toy-seq/digits/nodes-0.8/circuit.json -o digits.png
  circuitgraph view results/toy-seq/digits/nodes-0.8 --out digits.html
  circuitgraph analyse --model smollm2-135m --task digits --heads a9.1 a4.4
"""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``circuitgraph`` command."""
    from circuitgraph import __version__  # light: the package imports its API lazily

    parser = Parser(
        prog=PROG,
        description="Find, compare and draw the circuits inside transformer language models.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-q", "--quiet", action="store_true", help="no progress messages or progress bars"
    )
    common.add_argument(
        "--traceback", action="store_true", help="show the full traceback of an error"
    )
    common.add_argument(
        "--threads",
        type=thread_count,
        help="CPU threads for torch (default: torch's choice; 1 is often fastest on a busy "
        "machine)",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_sub(common))
    sub.required = True
    for name in COMMANDS:
        importlib.import_module(f"circuitgraph.cli.{name}").add_parsers(sub)
    return parser


def _sub(common: argparse.ArgumentParser) -> type[Parser]:
    """A Parser class whose instances (the subcommands) all take the ``common`` options."""

    class Subcommand(Parser):
        def __init__(self, *args, **kwargs) -> None:
            kwargs.setdefault("parents", [common])
            super().__init__(*args, **kwargs)

    return Subcommand


def _message(error: BaseException) -> str:
    """One line describing ``error``."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        text = f"{error.filename}: {error.strerror}"
    else:
        text = str(error) or type(error).__name__
    return " ".join(text.split())


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Warnings as one ``circuitgraph: warning:`` line on stderr."""
    print(f"{PROG}: warning: {' '.join(str(message).split())}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Run the command with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    traceback = "--traceback" in argv
    try:
        args = build_parser().parse_args(argv)
        args.argv = argv
        if args.threads is not None:
            import torch

            torch.set_num_threads(args.threads)
        with warnings.catch_warnings():
            warnings.showwarning = _show_warning
            return args.func(args)
    except SystemExit as done:  # --help and --version
        return done.code if isinstance(done.code, int) else 0
    except BrokenPipeError:  # e.g. piped into `head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (UsageError, ValueError, OSError, RuntimeError) as error:  # ModelLoadError too
        if traceback:
            raise
        print(f"{PROG}: error: {_message(error)}", file=sys.stderr)
        return 2
