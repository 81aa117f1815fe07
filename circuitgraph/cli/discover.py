"""``circuitgraph discover`` (one circuit) and ``circuitgraph sweep`` (nested thresholds)."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from circuitgraph.cli._common import (
    Clock,
    add_model_task,
    add_output,
    check_task,
    command_line,
    fraction,
    load,
    log,
    non_negative,
)

DEFAULT_THRESHOLD = 0.8
DEFAULT_TAU = 0.01
ORDERS = ("backward", "forward", "backward_forward", "random")


def add_scorer_options(parser: argparse.ArgumentParser, metrics: tuple[str, ...]) -> None:
    group = parser.add_argument_group("scoring")
    group.add_argument(
        "--metric",
        choices=metrics,
        default="logit_diff",
        help="what a circuit is scored on (default logit_diff)",
    )
    group.add_argument(
        "--ablation",
        choices=("mean", "resample", "zero"),
        default="mean",
        help="values for what is not in the circuit (default mean)",
    )
    group.add_argument(
        "--normalise",
        choices=("full", "clean_corrupt"),
        default="full",
        help="logit difference as ablated/full, or (ablated-corrupt)/(full-corrupt)",
    )
    group.add_argument(
        "--direction",
        choices=("noising", "denoising"),
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
    parser.add_argument("--tag", help="suffix for the run folder name, e.g. a note or date")


def add_parsers(sub: Any) -> None:
    """Register ``discover`` and ``sweep``."""
    p = sub.add_parser(
        "discover",
        help="find one circuit and write its results folder",
        description=DISCOVER_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_task(p)
    p.add_argument(
        "--method",
        choices=("nodes", "edges"),
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
        type=non_negative,
        help=f"edges: remove an edge if the metric worsens by less than this "
        f"(default {DEFAULT_TAU})",
    )
    p.add_argument(
        "--no-qkv",
        action="store_true",
        help="edges: one edge per sender into a head instead of into its q, k, v",
    )
    add_scorer_options(p, ("logit_diff", "accuracy", "kl"))
    add_node_options(p)
    add_output(p)
    add_drawing_options(p)
    p.set_defaults(func=run_discover)

    p = sub.add_parser(
        "sweep",
        help="node circuits at several thresholds (nested)",
        description=SWEEP_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_model_task(p)
    p.add_argument(
        "--thresholds",
        type=fraction,
        nargs="+",
        default=[0.97, 0.9, 0.8],
        help="thresholds, tried highest first (default 0.97 0.9 0.8)",
    )
    p.add_argument(
        "--independent",
        action="store_true",
        help="prune each threshold from the full model instead of from the previous",
    )
    add_scorer_options(p, ("logit_diff", "accuracy"))
    add_node_options(p)
    add_output(p)
    add_drawing_options(p)
    p.set_defaults(func=run_sweep)


DISCOVER_HELP = """\
Find a circuit and write <out>/<model>/<task>/<run>/ with circuit.json, circuit.dot,
circuit.svg, scores.csv (final scores of the full model, the circuit and the empty circuit,
then one row per node and/or tested edge) and run.json (every parameter, versions, timings).

<run> is nodes-<threshold>, edges-<tau>, or edges-<tau>-from-nodes-<threshold>: with
--method edges and --threshold, node pruning runs first and edge pruning starts from its
circuit; without --threshold edge pruning starts from the full graph (slow for big models).
An existing run folder of the same name is replaced; nothing is written if the run fails.
"""

SWEEP_HELP = """\
Prune nodes at several thresholds, highest first; each circuit is pruned further from the
previous one (nested) unless --independent. Writes <out>/<model>/<task>/sweep-<t1>-<t2>-.../
with one nodes-<t>/ folder per threshold (the files of 'discover'), threshold_table.csv
(membership of every head and MLP per threshold), threshold_changes.csv, score_vs_size.svg
and run.json.
"""


def _check_graphviz(args: argparse.Namespace) -> None:
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
        if args.metric == "kl":
            raise ValueError(
                "node pruning needs --metric logit_diff or accuracy "
                "(KL divergence works with --method edges)"
            )
        args.threshold = DEFAULT_THRESHOLD if args.threshold is None else args.threshold
    else:
        args.tau = DEFAULT_TAU if args.tau is None else args.tau
    if args.direction == "denoising" and args.ablation != "resample":
        raise ValueError("--direction denoising needs --ablation resample")


def _scorer(args: argparse.Namespace, setup, metric: str):
    from circuitgraph.scorer import Scorer

    return Scorer(
        setup.model,
        setup.task,
        metric=metric,
        ablation=args.ablation,
        normalise=args.normalise,
        direction=args.direction,
    )


def _node_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "relative": args.relative,
        "order": args.order,
        "seed": args.seed,
        "include_mlps": not args.no_mlps,
        "positions": args.positions,
        "progress": not args.quiet,
    }


def _finals(scorer, circuits: dict[str, Any]) -> dict[str, dict[str, float]]:
    """``scorer.evaluate`` of the full model, the given circuits and the empty circuit."""
    from circuitgraph.graph import Circuit, full_circuit

    cfg = scorer.model.cfg
    named = {
        "full_model": full_circuit(cfg, qkv=False),
        **circuits,
        "empty": Circuit.from_nodes(cfg, [], qkv=False),
    }
    return {name: scorer.evaluate(circuit) for name, circuit in named.items()}


def _parameters(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in vars(args).items() if k not in ("func", "argv", "traceback")}


def _summary(circuit, finals: dict[str, dict[str, float]]) -> dict[str, Any]:
    return {
        "level": circuit.level,
        "n_heads": len(circuit.heads()),
        "n_mlps": len(circuit.mlps()),
        "n_edges": len(circuit.sender_receiver_edges()),
        "heads": circuit.heads(),
        "mlps": circuit.mlps(),
        "score": finals["circuit"]["score"],
        "scores": finals,
    }


def _report(folder: Path, paths: dict[str, Path], summary: dict[str, Any]) -> None:
    finals = summary["scores"]
    print(
        f"circuit: {summary['n_heads']} heads, {summary['n_mlps']} MLPs, "
        f"{summary['n_edges']} edges; score {finals['circuit']['score']:.4f} "
        f"(full model {finals['full_model']['score']:.4f}, "
        f"empty {finals['empty']['score']:.4f})"
    )
    print(f"wrote {folder}/")
    if "svg" in paths:
        print(f"  diagram: {folder / 'circuit.svg'}")
    print(f"  scores:  {folder / 'scores.csv'}")


def _without_qkv(circuit):
    """The same node-level circuit without the Q/K/V split (metadata kept)."""
    from circuitgraph.graph import Circuit

    result = Circuit.from_nodes(circuit.config, circuit.heads() + circuit.mlps(), qkv=False)
    result.metadata = dict(circuit.metadata)
    return result


def run_discover(args: argparse.Namespace) -> int:
    from circuitgraph.prune.edges import prune_edges
    from circuitgraph.prune.nodes import prune_nodes
    from circuitgraph.results import (
        atomic_folder,
        check_writable,
        result_dir,
        run_name,
        scores_table,
        versions,
        write_run,
    )

    _resolve_discover(args)
    check_task(args)
    if args.method == "nodes":
        run = run_name("nodes", args.threshold)
    else:
        run = run_name("edges", args.tau, start=args.threshold)
    run = f"{run}-{args.tag}" if args.tag else run
    target = result_dir(args.out, args.model, args.task, run)
    check_writable(target)
    _check_graphviz(args)

    clock = Clock()
    setup = load(args, clock)
    node_metric = "logit_diff" if args.metric == "kl" else args.metric
    with clock.stage("scorer"):
        scorer = _scorer(args, setup, node_metric)
    nodes = edges = None
    if args.threshold is not None:
        log(args, f"pruning nodes to {args.threshold:g} of the full model's score")
        with clock.stage("prune_nodes"):
            nodes = prune_nodes(scorer, args.threshold, **_node_kwargs(args))
    if args.method == "edges":
        start = nodes if nodes is None or not args.no_qkv else _without_qkv(nodes)
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
                progress=not args.quiet,
            )
    circuit = edges if edges is not None else nodes
    log(args, "scoring the full model, the circuit and the empty circuit")
    with clock.stage("evaluate"):
        named = {"circuit": circuit} | ({"node_circuit": nodes} if edges and nodes else {})
        finals = _finals(scorer, named)
    table = scores_table(finals, nodes=nodes, edges=edges)
    summary = _summary(circuit, finals)
    record = {
        "command": command_line(args.argv),
        "argv": args.argv,
        "subcommand": "discover",
        "run": run,
        "parameters": _parameters(args),
        **setup.record,
        "versions": versions(),
        "result": summary,
    }
    with atomic_folder(target) as tmp:
        paths = write_run(tmp, circuit, table, record | clock.record(), svg=not args.no_svg)
    _report(target, paths, summary)
    return 0


def run_sweep(args: argparse.Namespace) -> int:
    from circuitgraph.prune.nodes import prune_nodes
    from circuitgraph.prune.tables import plot_score_vs_size, threshold_changes, threshold_table
    from circuitgraph.results import (
        atomic_folder,
        check_writable,
        format_value,
        result_dir,
        run_name,
        scores_table,
        versions,
        write_json,
        write_run,
    )

    if args.direction == "denoising" and args.ablation != "resample":
        raise ValueError("--direction denoising needs --ablation resample")
    check_task(args)
    thresholds = sorted(set(args.thresholds), reverse=True)
    run = "sweep-" + "-".join(format_value(t) for t in thresholds)
    run = f"{run}-{args.tag}" if args.tag else run
    target = result_dir(args.out, args.model, args.task, run)
    check_writable(target)
    _check_graphviz(args)

    clock = Clock()
    setup = load(args, clock)
    with clock.stage("scorer"):
        scorer = _scorer(args, setup, args.metric)
    circuits: dict[float, Any] = {}
    parents: dict[float, float | None] = {}  # threshold -> the one its pruning started from
    for i, threshold in enumerate(thresholds):
        parent = None if args.independent or i == 0 else thresholds[i - 1]
        parents[threshold] = parent
        start = None if parent is None else circuits[parent]
        where = "" if parent is None else f" from the circuit at {parent:g}"
        log(args, f"threshold {threshold:g} ({i + 1}/{len(thresholds)}){where}")
        with clock.stage(f"prune_nodes_{format_value(threshold)}"):
            circuits[threshold] = prune_nodes(scorer, threshold, start=start, **_node_kwargs(args))
    log(args, "scoring the circuits")
    with clock.stage("evaluate"):
        finals = _finals(scorer, {format_value(t): c for t, c in circuits.items()})
    common = {
        "argv": args.argv,
        "command": command_line(args.argv),
        "subcommand": "sweep",
        "parameters": _parameters(args),
        **setup.record,
        "versions": versions(),
    }
    with atomic_folder(target) as tmp:
        summaries = {}
        for threshold, circuit in circuits.items():
            key = format_value(threshold)
            own = {
                "full_model": finals["full_model"],
                "circuit": finals[key],
                "empty": finals["empty"],
            }
            parent = parents[threshold]
            start = None if parent is None else circuits[parent]
            table = scores_table(own, nodes=circuit, node_start=start)
            summaries[key] = _summary(circuit, own)
            record = common | {
                "run": f"{run}/{run_name('nodes', threshold)}",
                "threshold": threshold,
                "started_from_threshold": parent,
                "result": summaries[key],
            }
            folder = tmp / run_name("nodes", threshold)
            folder.mkdir()
            write_run(folder, circuit, table, record | clock.record(), svg=not args.no_svg)
        threshold_table(circuits, mlps=True).to_csv(tmp / "threshold_table.csv")
        threshold_changes(circuits, mlps=True).to_csv(tmp / "threshold_changes.csv")
        plot_score_vs_size(circuits, tmp / "score_vs_size.svg")
        write_json(
            tmp / "run.json",
            common
            | {
                "run": run,
                "thresholds": thresholds,
                "nested": not args.independent,
                "results": summaries,
            }
            | clock.record(),
        )
    for key, summary in summaries.items():
        print(
            f"threshold {key}: {summary['n_heads']} heads, {summary['n_mlps']} MLPs, "
            f"score {summary['score']:.4f}"
        )
    print(f"wrote {target}/")
    print(f"  table:   {target / 'threshold_table.csv'}")
    print(f"  plot:    {target / 'score_vs_size.svg'}")
    if not args.no_svg:
        print(f"  diagrams: {target}/nodes-*/circuit.svg")
    return 0
