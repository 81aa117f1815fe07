"""Edge pruning: fast incremental path against the one-forward-per-edge reference.

Prints one markdown table: edges tested, model-component evaluations (heads + MLPs computed)
and wall time for the reference and the fast path, on

(a) toy-seq, full graph with Q/K/V split: both in full, same edge set required;
(b) random:gpt2-small, the full 32,491-edge graph: fast in full; the reference replays a
    fixed random sample of receivers from the fast run's own states (so its decisions are
    checked too), one full masked forward pass per edge, and its time is extrapolated to
    every edge, stated as such;
(c) smollm2-135m on digits, starting from the node-pruned circuit (threshold 0.8): fast in
    full, reference on a sample of receivers as in (b).

Usage: python benchmarks/edge_pruning.py [--cases a b c] [--n 8] [--sample 3] [--start c.json]
       [--save DIR]  (writes each fast circuit, with every tested edge's effect, as JSON)
"""

from __future__ import annotations

import argparse
import random
import time
from pathlib import Path

import circuitgraph as cg
from circuitgraph.layout import EdgeMasks
from circuitgraph.masks import edge_masks
from circuitgraph.patching import run_edge_masks
from circuitgraph.prune.edges import prune_edges, worsening
from circuitgraph.prune.incremental import effective, reachable
from circuitgraph.prune.schedule import edge_schedule, set_edge


def _clone(masks: EdgeMasks) -> EdgeMasks:
    return EdgeMasks(
        [m.clone() for m in masks.attention], [m.clone() for m in masks.mlp], masks.logits.clone()
    )


def reference_score(scorer, masks: EdgeMasks) -> float:
    """One full masked forward pass (the reference's cost per tested edge)."""
    denoising = scorer.direction.value == "denoising"
    engine = effective(masks, reachable(masks, scorer.layout), denoising)
    final = run_edge_masks(scorer.components, scorer.run_tokens, scorer.fixed, engine)
    return float(scorer.metric_from_final(final)[0])


def replay_reference(scorer, start: cg.Circuit, fast: cg.Circuit, n_receivers: int, seed: int):
    """Re-run the reference decisions on sampled receivers, from the fast run's own states.

    Uses dense masks and one full masked forward per tested edge, so the time measured is
    the forward-pass cost alone (no graph construction). Returns (edges tested, seconds,
    decisions that agree with the fast run).
    """
    tested = fast.metadata["tested"]
    tau = fast.metadata["parameters"]["tau"]
    steps = edge_schedule(start, scorer.layout)
    rng = random.Random(seed)
    sample = set(rng.sample(range(len(steps)), min(n_receivers, len(steps))))
    masks = edge_masks(start, scorer.layout, scorer.task.seq_len)
    better = scorer.higher_is_better()
    count, seconds, agree, offset = 0, 0.0, 0, 0
    for index, step in enumerate(steps):
        decisions = tested[offset : offset + len(step.senders)]
        offset += len(step.senders)
        if index in sample:
            trial_masks = _clone(masks)
            started = time.perf_counter()
            running = reference_score(scorer, trial_masks)
            for sender, (_, _, _, fast_removed) in zip(step.sender_indices, decisions, strict=True):
                trial = _clone(trial_masks)
                set_edge(trial, step.receiver, [sender], 0.0)
                new = reference_score(scorer, trial)
                removed = worsening(running, new, better) < tau
                if removed:
                    trial_masks, running = trial, new
                agree += removed == fast_removed
                count += 1
            seconds += time.perf_counter() - started
        for sender, (_, _, _, removed) in zip(step.sender_indices, decisions, strict=True):
            if removed:  # follow the fast run's state
                set_edge(masks, step.receiver, [sender], 0.0)
    return count, seconds, agree


def components_per_forward(model) -> int:
    return model.cfg.n_layers * (model.cfg.n_heads + 1)


def row(name, model, tested_ref, seconds_ref, fast, note=""):
    evaluations = fast.metadata["evaluations"]["component_evaluations"]
    tested = len(fast.metadata["tested"])
    ref_components = tested_ref * components_per_forward(model)
    return (
        f"| {name} | {tested} | {ref_components:,} | {evaluations:,} | {seconds_ref:,.1f} s{note} "
        f"| {fast.metadata['seconds']:,.1f} s | {seconds_ref / fast.metadata['seconds']:,.1f}x "
        f"| {len(fast.sender_receiver_edges())} |"
    )


def case_toy(n: int) -> tuple[str, cg.Circuit]:
    """Everything in full: the dense replay of every receiver gives the reference's time,
    and ``prune_edges(method="reference")`` (through the Circuit API) the edge-set check."""
    model = cg.load_model("toy-seq")
    scorer = cg.Scorer(model, cg.make_task("digits", model, n=n, seed=0), metric="kl")
    start = cg.full_circuit(model.cfg)
    fast = prune_edges(scorer, 0.01, start=start)
    count, seconds, agree = replay_reference(scorer, start, fast, 10**9, seed=0)
    reference = prune_edges(scorer, 0.01, method="reference")
    same = set(fast.edges()) == set(reference.edges())
    note = f" ({agree}/{count} decisions agree; edge sets {'equal' if same else 'DIFFER'})"
    return row("(a) toy-seq, full graph", model, count, seconds, fast, note), fast


def sampled_case(
    name: str, model, scorer, start, tau: float, sample: int
) -> tuple[str, cg.Circuit]:
    fast = prune_edges(scorer, tau, start=start)
    count, seconds, agree = replay_reference(scorer, start, fast, sample, seed=0)
    total = len(fast.metadata["tested"])
    extrapolated = seconds / count * total
    note = f" (extrapolated from {count} edges, {agree}/{count} decisions agree)"
    return row(name, model, total, extrapolated, fast, note), fast


def case_gpt2(n: int, sample: int) -> tuple[str, cg.Circuit]:
    model = cg.load_model("random:gpt2-small")
    scorer = cg.Scorer(model, cg.make_task("digits", model, n=n, seed=0), metric="kl")
    start = cg.full_circuit(model.cfg)
    return sampled_case("(b) random:gpt2-small, full graph", model, scorer, start, 1e-4, sample)


def case_smollm2(n: int, sample: int, start: Path | None) -> tuple[str, cg.Circuit]:
    model = cg.load_model("smollm2-135m")
    scorer = cg.Scorer(model, cg.make_task("digits", model, n=n, seed=0))
    nodes = cg.Circuit.from_json(start) if start else cg.prune_nodes(scorer, threshold=0.8)
    kl = scorer.with_metric("kl")
    return sampled_case(
        "(c) smollm2-135m digits, from node circuit", model, kl, nodes, 0.01, sample
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["a", "b", "c"])
    parser.add_argument("--n", type=int, default=8, help="prompts per task")
    parser.add_argument("--sample", type=int, default=3, help="receivers replayed by reference")
    parser.add_argument(
        "--start",
        type=Path,
        help="(c): node circuit JSON to start from (default: prune_nodes at 0.8 first)",
    )
    parser.add_argument("--save", type=Path, help="folder for the fast circuits (JSON)")
    args = parser.parse_args()
    print(
        "| case | edges tested | component evals (reference) | component evals (fast) "
        "| reference | fast | speed-up | edges kept |"
    )
    print("|---|---|---|---|---|---|---|---|")
    cases = {
        "a": lambda: case_toy(args.n),
        "b": lambda: case_gpt2(args.n, args.sample),
        "c": lambda: case_smollm2(args.n, args.sample, args.start),
    }
    for case in args.cases:
        line, fast = cases[case]()
        print(line, flush=True)
        if args.save:
            args.save.mkdir(parents=True, exist_ok=True)
            fast.to_json(args.save / f"case_{case}.json")


if __name__ == "__main__":
    main()
