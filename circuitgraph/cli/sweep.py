"""``circuitgraph sweep``: node circuits at several thresholds, nested."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from circuitgraph.cli._arguments import fraction, positive_int
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
from circuitgraph.cli._summary import metrics_text, pruned_key, run_summary
from circuitgraph.cli.discover import (
    add_drawing_options,
    add_node_options,
    add_scorer_options,
    check_graphviz,
    evaluate_all,
    make_scorer,
    node_kwargs,
    run_parameters,
)
from circuitgraph.options import Metric, values

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Circuit


def add_parsers(sub: Any) -> None:
    """Register ``sweep``."""
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
    p.add_argument(
        "--cluster",
        help="with --independent: prune the thresholds on Dask, 'local' (--workers processes "
        "here) or a scheduler address tcp://host:8786",
    )
    p.add_argument("--workers", type=positive_int, default=2, help="processes of --cluster local")
    add_scorer_options(p, values(Metric, exclude=(Metric.KL, Metric.L2)))  # node pruning's
    add_node_options(p)
    add_output(p)
    add_drawing_options(p)
    p.set_defaults(func=run_sweep)


SWEEP_HELP = """\
Prune nodes at several thresholds, highest first; each circuit is pruned further from the
previous one (nested) unless --independent. Writes <out>/<model>/<task>/sweep-<t1>-<t2>-.../
with one nodes-<t>/ folder per threshold (the files of 'discover'), threshold_table.csv
(membership of every head and MLP per threshold), threshold_changes.csv, score_vs_size.svg,
run.json and view.html (every threshold in one page, with a scrubber).
"""


def run_sweep(args: argparse.Namespace) -> int:
    from circuitgraph.parallel import check_cluster, connect
    from circuitgraph.prune.nodes import prune_nodes
    from circuitgraph.prune.sweep import threshold_sweep
    from circuitgraph.prune.tables import plot_score_vs_size, threshold_changes, threshold_table
    from circuitgraph.results import (
        atomic_folder,
        format_value,
        result_dir,
        run_name,
        scores_table,
        versions,
        write_json,
        write_run,
    )
    from circuitgraph.viewer import write_folder_view

    if args.direction == "denoising" and args.ablation != "resample":
        raise ValueError("--direction denoising needs --ablation resample")
    check_task(args)
    if args.metric in ("kl", "l2"):  # a tracr:<program> model's own metric (0 = full model)
        raise ValueError(
            f"a sweep prunes nodes to fractions of the full model's score, which {args.metric} "
            f"does not have: for {args.model} use 'circuitgraph discover --method edges'"
        )
    check_model(args.model, args.device, args.dtype)
    check_cluster(args.cluster)
    if args.cluster is not None and not args.independent:
        raise ValueError(
            "--cluster needs --independent: a nested sweep prunes each threshold from the "
            "previous circuit, one after another"
        )
    thresholds = sorted(set(args.thresholds), reverse=True)
    run = "sweep-" + "-".join(format_value(t) for t in thresholds)
    run = f"{run}-{args.tag}" if args.tag else run
    target = result_dir(args.out, args.model, args.task, run)
    prepare_output(args, target)
    check_graphviz(args)

    clock = Clock()
    setup = load(args, clock)
    with clock.stage("scorer"):
        scorer = make_scorer(args, setup, args.metric)
    circuits: dict[float, Circuit] = {}
    parents: dict[float, float | None] = {}  # threshold -> the one its pruning started from
    if args.cluster is not None:  # independent thresholds, spread over the cluster's workers
        options = {k: v for k, v in node_kwargs(args).items() if k != "progress"}
        log(args, f"{len(thresholds)} thresholds on cluster {args.cluster}")
        with clock.stage("prune_nodes"), connect(args.cluster, args.workers) as client:
            circuits = threshold_sweep(scorer, thresholds, False, client, **options)
        parents = dict.fromkeys(thresholds)
    for i, threshold in enumerate(thresholds if args.cluster is None else []):
        parent = None if args.independent or i == 0 else thresholds[i - 1]
        parents[threshold] = parent
        start = None if parent is None else circuits[parent]
        where = "" if parent is None else f" from the circuit at {parent:g}"
        log(args, f"threshold {threshold:g} ({i + 1}/{len(thresholds)}){where}")
        with clock.stage(f"prune_nodes_{format_value(threshold)}"):
            circuits[threshold] = prune_nodes(scorer, threshold, start=start, **node_kwargs(args))
    log(args, "scoring the circuits")
    with clock.stage("evaluate"):
        finals = evaluate_all(scorer, {format_value(t): c for t, c in circuits.items()})
    common = {
        "argv": args.argv,
        "command": command_line(args.argv),
        "subcommand": "sweep",
        "parameters": run_parameters(args),
        **setup.record,
        "versions": versions(),
    }
    pruned = {pruned_key(args.metric): "pruned on"}
    with atomic_folder(target, overwrite=args.overwrite) as tmp:
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
            summaries[key] = run_summary(circuit, own, pruned)
            record = common | {
                "run": f"{run}/{run_name('nodes', threshold)}",
                "threshold": threshold,
                "started_from_threshold": parent,
                "result": summaries[key],
            }
            folder = tmp / run_name("nodes", threshold)
            folder.mkdir()
            write_run(
                folder, circuit, table, record | clock.record(), svg=not args.no_svg,
                also=("view.html",),
            )  # fmt: skip
            write_folder_view(folder, name=f"{args.task} {run_name('nodes', threshold)}")
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
        write_folder_view(tmp)  # a scrubber over the thresholds
    for key, summary in summaries.items():
        print(
            f"threshold {key}: {summary['n_heads']} heads, {summary['n_mlps']} MLPs, "
            f"{summary['n_edges']} edges; {metrics_text(summary['scores']['circuit'], pruned)}"
        )
    print(score_meaning(args))
    print(f"wrote {target}/")
    print(f"  table:   {target / 'threshold_table.csv'}")
    print(f"  plot:    {target / 'score_vs_size.svg'}")
    if not args.no_svg:
        print(f"  diagrams: {target}/nodes-*/circuit.svg")
    print(f"  explore: {target / 'view.html'} (open it in a browser; one per threshold too)")
    return 0
