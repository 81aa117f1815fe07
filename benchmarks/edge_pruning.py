"""Edge pruning: the fast incremental path against the one-forward-per-edge reference.

Prints one markdown table row per case: edges tested, wall time of the fast path and of the
reference (one full masked forward pass per tested edge), the speed-up with its sampling
interval, the edges kept, the score and the peak memory.

Cases (KL metric, resample ablation, digits, ``--n`` prompts, Q/K/V split):

(a) toy-seq, full graph, tau 0.01: the reference in full as well (``method="reference"``),
    edge sets compared;
(b) random:gpt2-small, the full 32,491-edge graph, tau 1e-4;
(c) smollm2-135m, inside its node circuit at threshold 0.8, tau 0.01;
(d) smollm2-135m, the full 70,651-edge graph, tau 0.01.

In (b)-(d) the fast path runs in full and the reference is timed on a sample stratified over
the layers: ``--per-layer`` receivers of every receiver layer (logits included), the first
``--edges`` edges of each, replayed from the fast run's own states (so their decisions are
checked too). Each sampled edge's time is the minimum over ``--repeats`` replays, and the
replays are interleaved with the fast runs (fast, reference sample, fast, ...; the fast time
is the minimum as well). The reference's total is the sum over layers of (mean time per
sampled edge of that layer) x (edges tested in that layer); its 95 % interval resamples the
sampled edges within each layer (bootstrap, 2,000 draws). Each case runs in its own process,
so the peak resident memory (ru_maxrss) is that case's alone.

Usage: python benchmarks/edge_pruning.py [--cases a b c d] [--n 8] [--repeats 2]
       [--per-layer 1] [--edges 8] [--threads 1] [--save DIR]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

import circuitgraph as cg
from circuitgraph.prune.edges import prune_edges, worsening
from circuitgraph.prune.live import effective, reachable
from circuitgraph.prune.schedule import Step, edge_schedule, set_edge
from circuitgraph.scoring.layout import EdgeMasks
from circuitgraph.scoring.masks import edge_masks
from circuitgraph.scoring.memory import GIB, peak_rss_bytes
from circuitgraph.scoring.patching import run_edge_masks

HEADER = (
    "| case | edges tested | fast | reference | speed-up (95 % interval) | edges kept "
    "| score (KL) | decisions checked | peak RSS |\n" + "|---" * 9 + "|"
)


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


def stratified_sample(steps: list[Step], per_layer: int, seed: int) -> set[int]:
    """Indices of ``per_layer`` random steps of every receiver layer."""
    by_layer: dict[int, list[int]] = defaultdict(list)
    for index, step in enumerate(steps):
        by_layer[step.receiver.layer].append(index)
    rng = random.Random(seed)
    return {i for group in by_layer.values() for i in rng.sample(group, min(per_layer, len(group)))}


def replay_reference(scorer, start: cg.Circuit, fast: cg.Circuit, sample: set[int], edges: int):
    """Replay the reference's decisions on the first ``edges`` edges of the sampled steps,
    from the fast run's own states: one full masked forward per edge, timed one by one.

    Returns ({(step, edge): seconds}, decisions compared, decisions that agree).
    """
    tested = fast.metadata["tested"]
    tau = fast.metadata["parameters"]["tau"]
    steps = edge_schedule(start, scorer.layout)
    masks = edge_masks(
        start, scorer.layout, scorer.task.seq_len, scorer.device, scorer.components.dtype
    )
    better = scorer.higher_is_better()
    times: dict[tuple[int, int], float] = {}
    compared = agree = offset = 0
    for index, step in enumerate(steps):
        decisions = tested[offset : offset + len(step.senders)]
        offset += len(step.senders)
        if index in sample:
            trial_masks = _clone(masks)
            running = reference_score(scorer, trial_masks)
            pairs = zip(step.sender_indices, decisions, strict=True)
            for position, (sender, (_, _, _, fast_removed)) in enumerate(pairs):
                if position == edges:
                    break
                trial = _clone(trial_masks)
                set_edge(trial, step.receiver, [sender], 0.0)
                started = time.perf_counter()
                new = reference_score(scorer, trial)
                times[index, position] = time.perf_counter() - started
                removed = worsening(running, new, better) < tau
                if removed:
                    trial_masks, running = trial, new
                agree += removed == fast_removed
                compared += 1
        for sender, (_, _, _, removed) in zip(step.sender_indices, decisions, strict=True):
            if removed:  # follow the fast run's state
                set_edge(masks, step.receiver, [sender], 0.0)
    return times, compared, agree


def extrapolate(
    times: dict[tuple[int, int], float], steps: list[Step], tested_per_layer: dict[int, int]
) -> tuple[float, float, float]:
    """Reference seconds for every tested edge: (estimate, 2.5 and 97.5 percentiles)."""
    per_layer: dict[int, list[float]] = defaultdict(list)
    for (index, _), seconds in times.items():
        per_layer[steps[index].receiver.layer].append(seconds)
    overall = statistics.mean(t for values in per_layer.values() for t in values)

    def total(samples: dict[int, list[float]]) -> float:
        return sum(
            count * (statistics.mean(samples[layer]) if samples.get(layer) else overall)
            for layer, count in tested_per_layer.items()
        )

    rng = random.Random(0)
    draws = sorted(
        total({layer: rng.choices(values, k=len(values)) for layer, values in per_layer.items()})
        for _ in range(2000)
    )
    return total(per_layer), draws[50], draws[1949]


def tested_per_layer(fast: cg.Circuit, steps: list[Step]) -> dict[int, int]:
    layer_of = {step.receiver.name: step.receiver.layer for step in steps}
    counts: dict[int, int] = defaultdict(int)
    for _, receiver, _, _ in fast.metadata["tested"]:
        counts[layer_of[receiver]] += 1
    return counts


def sampled_case(scorer, start: cg.Circuit, tau: float, args) -> dict:
    steps = edge_schedule(start, scorer.layout)
    sample = stratified_sample(steps, args.per_layer, seed=0)
    fast_seconds, best = [], {}
    for _ in range(args.repeats):  # interleaved: fast, reference sample, fast, ...
        fast = prune_edges(scorer, tau, start=start, progress=False)
        fast_seconds.append(fast.metadata["seconds"])
        if args.edges == 0:  # the fast path alone
            return {"fast": fast, "fast_seconds": min(fast_seconds), "reference_seconds": None}
        times, compared, agree = replay_reference(scorer, start, fast, sample, args.edges)
        best = {key: min(seconds, best.get(key, seconds)) for key, seconds in times.items()}
    reference, low, high = extrapolate(best, steps, tested_per_layer(fast, steps))
    return {
        "fast": fast,
        "fast_seconds": min(fast_seconds),
        "reference_seconds": reference,
        "interval": (low, high),
        "checked": f"{agree}/{compared} agree ({len(best)} edges, "
        f"{len({steps[i].receiver.layer for i, _ in best})} layers)",
    }


def full_case(scorer, tau: float, args) -> dict:
    """toy-seq: the reference in full, interleaved with the fast path."""
    fast_seconds, reference_seconds = [], []
    for _ in range(args.repeats):
        fast = prune_edges(scorer, tau, progress=False)
        fast_seconds.append(fast.metadata["seconds"])
        reference = prune_edges(scorer, tau, method="reference", progress=False)
        reference_seconds.append(reference.metadata["seconds"])
    same = set(fast.edges()) == set(reference.edges())
    decisions = [row[3] for row in fast.metadata["tested"]]
    agree = sum(a == b[3] for a, b in zip(decisions, reference.metadata["tested"], strict=True))
    best = min(reference_seconds)
    return {
        "fast": fast,
        "fast_seconds": min(fast_seconds),
        "reference_seconds": best,
        "interval": (best, best),
        "checked": f"{agree}/{len(decisions)} agree, edge sets {'equal' if same else 'DIFFER'}",
    }


def _scorer(model_name: str, n: int, metric: str = "kl") -> cg.Scorer:
    model = cg.load_model(model_name)
    task = cg.make_task("digits", model, n=n, seed=0)
    return cg.Scorer(model, task, metric=metric, ablation="resample")


def run_case(case: str, args) -> dict:
    if case == "a":
        name, result = (
            "(a) toy-seq, full graph, tau 0.01",
            full_case(_scorer("toy-seq", args.n), 0.01, args),
        )
    elif case == "b":
        scorer = _scorer("random:gpt2-small", args.n)
        start = cg.full_circuit(scorer.model.cfg)
        name = "(b) random:gpt2-small, full graph, tau 1e-4"
        result = sampled_case(scorer, start, 1e-4, args)
    elif case == "c":
        scorer = _scorer("smollm2-135m", args.n, metric="logit_diff")
        nodes = cg.prune_nodes(scorer, threshold=0.8, progress=False)
        name = "(c) smollm2-135m, inside its 0.8 node circuit, tau 0.01"
        result = sampled_case(scorer.with_metric("kl"), nodes, 0.01, args)
    elif case == "d":
        scorer = _scorer("smollm2-135m", args.n)
        start = cg.full_circuit(scorer.model.cfg)
        name = "(d) smollm2-135m, full graph, tau 0.01"
        result = sampled_case(scorer, start, 0.01, args)
    else:
        raise SystemExit(f"unknown case {case!r}; choose from a b c d")
    fast = result["fast"]
    if args.save:
        args.save.mkdir(parents=True, exist_ok=True)
        fast.to_json(args.save / f"case_{case}.json")
    fast_seconds, reference_seconds = result["fast_seconds"], result["reference_seconds"]
    low, high = result.get("interval", (None, None))
    base = {
        "name": name,
        "tested": len(fast.metadata["tested"]),
        "fast": fast_seconds,
        "kept": len(fast.sender_receiver_edges()),
        "score": fast.metadata["score"],
        "peak_rss_gib": peak_rss_bytes() / GIB,
    }
    if reference_seconds is None:
        return {**base, "reference": None}
    return {
        **base,
        "reference": reference_seconds,
        "speedup": reference_seconds / fast_seconds,
        "speedup_interval": (low / fast_seconds, high / fast_seconds),
        "checked": result["checked"],
    }


def row(result: dict, extrapolated: bool) -> str:
    if result["reference"] is None:  # --edges 0: the fast path alone
        return (
            f"| {result['name']} | {result['tested']:,} | {result['fast']:,.1f} s | not sampled "
            f"| - | {result['kept']} | {result['score']:.4f} | - "
            f"| {result['peak_rss_gib']:.2f} GiB |"
        )
    low, high = result["speedup_interval"]
    reference = f"{result['reference']:,.1f} s" + (" (extrapolated)" if extrapolated else "")
    interval = f" ({low:,.1f}-{high:,.1f})" if extrapolated else ""
    return (
        f"| {result['name']} | {result['tested']:,} | {result['fast']:,.1f} s | {reference} "
        f"| {result['speedup']:,.1f}x{interval} | {result['kept']} | {result['score']:.4f} "
        f"| {result['checked']} | {result['peak_rss_gib']:.2f} GiB |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=["a", "b", "c", "d"])
    parser.add_argument("--n", type=int, default=8, help="prompts per task")
    parser.add_argument("--repeats", type=int, default=2, help="fast runs and reference replays")
    parser.add_argument("--per-layer", type=int, default=1, help="sampled receivers per layer")
    parser.add_argument(
        "--edges", type=int, default=8, help="edges replayed per receiver (0: fast path only)"
    )
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--save", type=Path, help="folder for the fast circuits (JSON)")
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one case, print JSON
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.one:
        print(json.dumps(run_case(args.one, args)))
        return
    print(HEADER, flush=True)
    for case in args.cases:
        command = [sys.executable, __file__, "--one", case, *sys.argv[1:]]
        output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
        print(row(json.loads(output.splitlines()[-1]), extrapolated=case != "a"), flush=True)


if __name__ == "__main__":
    main()
