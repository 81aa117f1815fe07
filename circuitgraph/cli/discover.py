"""``circuitgraph discover``: find one circuit and write its results folder."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from circuitgraph.cli._arguments import finite, fraction, tag_name
from circuitgraph.cli._checks import check_model, check_task
from circuitgraph.cli._common import (
    Clock,
    add_model_task,
    add_output,
    command_line,
    load,
    log,
    prepare_output,
    score_meaning,
)
from circuitgraph.cli._summary import edges_text, metrics_text, pruned_on, run_summary
from circuitgraph.options import (
    Ablation,
    Direction,
    EdgeOrder,
    Method,
    Metric,
    NodeOrder,
    Normalise,
    values,
)

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Circuit
    from circuitgraph.cli._common import Setup
    from circuitgraph.scoring.scorer import Scorer

DEFAULT_THRESHOLD = 0.8
DEFAULT_TAU = 0.01
ORDERS = values(NodeOrder)


def add_scorer_options(parser: argparse.ArgumentParser, metrics: tuple[str, ...]) -> None:
    group = parser.add_argument_group("scoring")
    group.add_argument(
        "--metric",
        choices=metrics,
        default=None,
        help="what a circuit is scored on (default logit_diff; for tracr:<program> models "
        "the program's own, kl or l2)",
    )
    group.add_argument(
        "--ablation",
        choices=values(Ablation),
        default="mean",
        help="values for what is not in the circuit (default mean)",
    )
    group.add_argument(
        "--normalise",
        choices=values(Normalise),
        default="full",
        help="logit difference as ablated/full, or (ablated-corrupt)/(full-corrupt)",
    )
    group.add_argument(
        "--direction",
        choices=values(Direction),
        default="noising",
        help="denoising needs --ablation resample (default noising)",
    )


def add_node_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("node pruning")
    group.add_argument(
        "--order",
        choices=ORDERS,
        default="backward",
        help="order heads and MLPs are tried in (default backward, the paper's)",
    )
    group.add_argument(
        "--relative",
        type=fraction,
        help="also refuse a removal dropping the score by more than this",
    )
    group.add_argument("--no-mlps", action="store_true", help="keep every MLP; prune heads only")
    group.add_argument(
        "--positions",
        action="store_true",
        help="prune (node, position) pairs instead of whole nodes",
    )


def add_drawing_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--no-svg", action="store_true", help="skip circuit.svg (no Graphviz needed)"
    )
    parser.add_argument(
        "--tag", type=tag_name, help="suffix for the run folder name, e.g. a note or date"
    )


def add_parsers(sub: Any) -> None:
    """Register ``discover``."""
    p = sub.add_parser(
        "discover",
        help="find one circuit and write its results folder",
        description=DISCOVER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_task(p)
    p.add_argument(
        "--method",
        choices=values(Method, exclude=(Method.ATTRIBUTION,)),
        default="nodes",
        help="prune heads/MLPs (nodes) or edges one at a time (edges)",
    )
    p.add_argument(
        "--threshold",
        type=fraction,
        help=f"keep at least this fraction of the full model's score (nodes; "
        f"default {DEFAULT_THRESHOLD}); with --method edges: node-prune first",
    )
    p.add_argument(
        "--tau",
        type=finite,
        help=f"edges: remove an edge if the metric worsens by less than this "
        f"(default {DEFAULT_TAU}; a negative tau removes nothing and records every "
        "single-edge effect in scores.csv)",
    )
    p.add_argument(
        "--edge-order",
        choices=values(EdgeOrder),
        default="canonical",
        help="edges: visit order; 'acdc' reproduces the ACDC reference implementation "
        "(its order, its Q/K/V direct edges, its untested removals)",
    )
    p.add_argument(
        "--no-qkv",
        action="store_true",
        help="edges: one edge per sender into a head instead of into its q, k, v",
    )
    add_scorer_options(p, values(Metric))
    add_node_options(p)
    add_output(p)
    add_drawing_options(p)
    p.set_defaults(func=run_discover)


DISCOVER_HELP = """\
Find a circuit and write <out>/<model>/<task>/<run>/ with circuit.json, circuit.dot,
circuit.svg, scores.csv (final scores of the full model, the circuit and the empty circuit,
then one row per node and/or tested edge), run.json (every parameter, versions, timings) and
view.html (the circuit to explore in a browser, offline).

<run> is nodes-<threshold>, edges-<tau>, or edges-<tau>-from-nodes-<threshold> (with
"-acdc" appended for --edge-order acdc): with
--method edges and --threshold, node pruning runs first and edge pruning starts from its
circuit; without --threshold edge pruning starts from the full graph (slow for big models).
An existing run folder of the same name is kept and the run refused, unless --overwrite is
given (then it is replaced); --tag NAME writes a separate folder. Nothing is written if the
run fails.
"""


def check_graphviz(args: argparse.Namespace) -> None:
    if not args.no_svg and shutil.which("dot") is None:
        raise RuntimeError(
            "Graphviz 'dot' executable not found on PATH; install the Debian "
            "package graphviz (apt-get install graphviz) or pass --no-svg"
        )


def _resolve_discover(args: argparse.Namespace) -> None:
    """Check option combinations and fill method-dependent defaults."""
    if args.method == "nodes":
        if args.tau is not None:
            raise ValueError("--tau applies to --method edges only")
        if args.no_qkv:
            raise ValueError("--no-qkv applies to --method edges only")
        if args.edge_order != "canonical":
            raise ValueError("--edge-order applies to --method edges only")
        if args.metric in ("kl", "l2"):
            raise ValueError(
                f"node pruning needs --metric logit_diff or accuracy ({args.metric} works "
                "with --method edges; cg.prune_nodes(scorer, tau=) prunes nodes on it)"
            )
        args.threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    else:
        args.tau = DEFAULT_TAU if args.tau is None else args.tau
    if args.direction == "denoising" and args.ablation != "resample":
        raise ValueError("--direction denoising needs --ablation resample")


def make_scorer(args: argparse.Namespace, setup: Setup, metric: str) -> Scorer:
    from circuitgraph.scoring.scorer import Scorer

    return Scorer(
        setup.model,
        setup.task,
        metric=metric,
        ablation=args.ablation,
        normalise=args.normalise,
        direction=args.direction,
        max_memory=args.max_memory,
    )


def node_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "relative": args.relative,
        "order": args.order,
        "seed": args.seed,
        "include_mlps": not args.no_mlps,
        "positions": args.positions,
        "progress": not args.quiet,
    }


def evaluate_all(scorer: Scorer, circuits: dict[str, Circuit]) -> dict[str, dict[str, float]]:
    """``scorer.evaluate`` of the full model, the given circuits and the empty circuit."""
    from circuitgraph.circuit.graph import Circuit, full_circuit

    cfg = scorer.model.cfg
    named = {
        "full_model": full_circuit(cfg, qkv=False),
        **circuits,
        "empty": Circuit.from_nodes(cfg, [], qkv=False),
    }
    return {name: scorer.evaluate(circuit) for name, circuit in named.items()}


def run_parameters(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("func", "argv", "traceback")}


def _report(
    args: argparse.Namespace,
    folder: Path,
    paths: dict[str, Path],
    summary: dict[str, Any],
    circuit: Circuit,
) -> None:
    finals = summary["scores"]
    pruned = pruned_on(args)
    first = next(iter(pruned))
    pruned[first] += (
        f"; full model {finals['full_model'][first]:.4f}, empty {finals['empty'][first]:.4f}"
    )
    print(f"circuit: {summary['n_heads']} heads, {summary['n_mlps']} MLPs, {edges_text(circuit)}")
    print(metrics_text(finals["circuit"], pruned))
    print(score_meaning(args))
    print(f"wrote {folder}/")
    if "svg" in paths:
        print(f"  diagram: {folder / 'circuit.svg'}")
    print(f"  explore: {folder / 'view.html'} (open it in a browser)")
    print(f"  scores:  {folder / 'scores.csv'}")


def run_discover(args: argparse.Namespace) -> int:
    # the names first (a typo is answered in a second), then torch and the pruning code
    check_task(args)
    _resolve_discover(args)
    check_model(args.model, args.device, args.dtype)

    from circuitgraph.circuit.setops import heads_and_mlps
    from circuitgraph.prune.edges import prune_edges
    from circuitgraph.prune.nodes import prune_nodes
    from circuitgraph.results import (
        atomic_folder,
        result_dir,
        run_name,
        scores_table,
        versions,
        write_run,
    )
    from circuitgraph.viewer import write_folder_view

    if args.method == "nodes":
        run = run_name("nodes", args.threshold)
    else:
        run = run_name("edges", args.tau, start=args.threshold)
        run = f"{run}-acdc" if args.edge_order == "acdc" else run
    run = f"{run}-{args.tag}" if args.tag else run
    target = result_dir(args.out, args.model, args.task, run)
    prepare_output(args, target)
    check_graphviz(args)

    clock = Clock()
    setup = load(args, clock)
    # node pruning before edge pruning needs a higher-is-better metric
    node_metric = (
        "logit_diff" if args.threshold is not None and args.metric == "kl" else args.metric
    )
    with clock.stage("scorer"):
        scorer = make_scorer(args, setup, node_metric)
    nodes = edges = None
    if args.threshold is not None:
        log(args, f"pruning nodes to {args.threshold:g} of the full model's score")
        with clock.stage("prune_nodes"):
            nodes = prune_nodes(scorer, args.threshold, **node_kwargs(args))
    if args.method == "edges":
        start = nodes if nodes is None or not args.no_qkv else heads_and_mlps(nodes)
        log(
            args,
            f"pruning edges with tau={args.tau:g} ({args.metric}) from "
            f"{'the node circuit' if nodes is not None else 'the full graph'}",
        )
        with clock.stage("prune_edges"):
            edges = prune_edges(
                scorer,
                args.tau,
                metric=args.metric,
                start=start,
                qkv=not args.no_qkv,
                positions=args.positions,
                order=args.edge_order,
                progress=not args.quiet,
            )
    circuit = edges if edges is not None else nodes
    assert circuit is not None  # --method nodes always has a threshold (_resolve_discover)
    log(args, "scoring the full model, the circuit and the empty circuit")
    with clock.stage("evaluate"):
        named = {"circuit": circuit}
        if edges is not None and nodes is not None:
            named["node_circuit"] = nodes
        finals = evaluate_all(scorer, named)
    table = scores_table(finals, nodes=nodes, edges=edges)
    summary = run_summary(circuit, finals, pruned_on(args))
    record = {
        "command": command_line(args.argv),
        "argv": args.argv,
        "subcommand": "discover",
        "run": run,
        "parameters": run_parameters(args),
        **setup.record,
        "versions": versions(),
        "result": summary,
    }
    with atomic_folder(target, overwrite=args.overwrite) as tmp:
        paths = write_run(
            tmp, circuit, table, record | clock.record(), svg=not args.no_svg, also=("view.html",)
        )
        paths["view"] = write_folder_view(tmp, name=f"{args.task} {run}")
    _report(args, target, paths, summary, circuit)
    return 0
