"""Measurement: how often ``evaluate``'s 95 % CIs cover the population value, at 8 and 16
prompts: the old percentile bootstrap, the equal-tailed bootstrap-t (considered) and the
symmetric bootstrap-t that ``evaluate`` now gives.

    python benchmarks/ci_coverage.py --threads 1
    python benchmarks/ci_coverage.py --cases toy-seq:born_in_months --draws 400

For each case (``model:task[:template]``): a task of ``--population`` + ``--discovery``
distinct prompts is split by ``Task.split`` (no underlying sequence on both sides); a node
circuit is found with ``prune_nodes`` at ``--threshold`` on the discovery side, and scored on
every prompt of the other side, the population, with a held-out scorer
(``held_out_scorer``: the discovery prompts' mean-ablation values, so every prompt's value is
its own, whatever else is scored with it). The population value is the score over all of
them. Then ``--draws`` subsamples of 8 and 16 distinct population prompts are drawn (without
replacement), each gets the three 95 % CIs from ``--resamples`` bootstrap resamples of its
per-prompt values (no forward pass per subsample), and the table gives the share of CIs that
cover the population value, with a 95 % Wilson interval on that share, and the median CI
width. The population is scored in chunks of ``--chunk`` prompts (exact: the ablation values
are the discovery prompts'); its per-prompt values are cached under ``--out`` (``--reuse``
reads them back). Writes ``coverage.json`` and ``coverage.md`` under ``--out`` (default
``results/ci_coverage``).
"""

from __future__ import annotations

import argparse
import json
import math
import shlex
import sys
import time
import warnings
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import torch

import circuitgraph as cg
from circuitgraph.evaluation import held_out_scorer
from circuitgraph.evaluation.bootstrap import (
    PromptValues,
    _ratio_se,
    bootstrap_weights,
    interval,
    prompt_values,
)
from circuitgraph.options import Normalise
from circuitgraph.tasks import RepeatedPromptsWarning

CASES = (
    "toy-seq:greater_than_years",
    "toy-seq:born_in_months",
    "toy-seq:names_digits",
    "smollm2-135m:ioi",
    "smollm2-135m:letters:lists",
)
METRIC = "normalised_logit_diff"
ARRAYS = ("logit_diff", "kl", "accuracy", "clean")


def wilson(hits: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial share ``hits / n``."""
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return centre - half, centre + half


def distinct_task(name: str, model, n: int, template: str | None, seed: int):
    """``n`` distinct clean prompts of the task, or all it has (2 ``n`` requested: some
    tasks repeat a few prompts before they run out), and the RepeatedPromptsWarning if any."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RepeatedPromptsWarning)
        task = cg.make_task(name, model, n=2 * n, template=template, seed=seed)
    seen: dict[str, int] = {}
    rows = [i for i, p in enumerate(task.clean_prompts) if seen.setdefault(p, i) == i][:n]
    note = next((str(w.message) for w in caught if w.category is RepeatedPromptsWarning), "")
    return task.subset(rows), note


def population_values(args, case: str) -> tuple[PromptValues, dict]:
    """Per-prompt values of the circuit on every population prompt, and what was measured."""
    model_name, task_name, *rest = case.split(":")
    template = rest[0] if rest else None
    cache = Path(args.out) / f"values-{case.replace(':', '-')}.npz"
    if args.reuse and cache.exists():
        saved = np.load(cache, allow_pickle=False)
        info = json.loads(str(saved["info"]))
        arrays = {k: saved[k] for k in ARRAYS}
        values = PromptValues(**arrays, corrupt=None, normalise=Normalise.FULL)
        return values, info
    began = time.perf_counter()
    model = cg.load_model(model_name)
    task, note = distinct_task(
        task_name, model, args.population + args.discovery, template, args.seed
    )
    share = max(len(task) - args.discovery, 1) / len(task)  # the population's share
    discovery, population = task.split(share, seed=args.seed)
    scorer = cg.Scorer(model, discovery)
    circuit = cg.prune_nodes(scorer, args.threshold, progress=False)
    found = time.perf_counter() - began
    parts = []
    for lo in range(0, len(population), args.chunk):
        chunk = population.subset(list(range(lo, min(lo + args.chunk, len(population)))))
        held = held_out_scorer(scorer, chunk)  # the discovery prompts' mean values
        parts.append(prompt_values(held, held.masks(circuit)))
        del held
    values = replace(
        parts[0], **{k: np.concatenate([getattr(p, k) for p in parts], axis=-1) for k in ARRAYS}
    )
    info = {
        "case": case,
        "model": model_name,
        "task": task_name,
        "template": task.template,
        "distinct_available": note or f"at least {len(task)}",
        "discovery_prompts": len(discovery),
        "population_prompts": len(population),
        "population_sequences": len(set(population.sequence_keys())),
        "circuit_heads": len(circuit.heads()),
        "circuit_mlps": len(circuit.mlps()),
        "discovery_score": circuit.metadata.get("score"),
        "seconds": round(time.perf_counter() - began, 1),
        "discovery_seconds": round(found, 1),
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, info=json.dumps(info), **{k: getattr(values, k) for k in ARRAYS})
    return values, info


def take(values: PromptValues, rows: np.ndarray) -> PromptValues:
    """The per-prompt values of ``rows`` only."""
    changes = {k: getattr(values, k)[..., rows] for k in ARRAYS}
    if values.corrupt is not None:
        changes["corrupt"] = values.corrupt[rows]
    return replace(values, **changes)


def equal_tailed(sample: PromptValues, weights: np.ndarray) -> tuple[float, float]:
    """The equal-tailed bootstrap-t interval (the variant not chosen): ``ratio - t_hi * se``
    to ``ratio - t_lo * se``, ``t_lo`` and ``t_hi`` the 2.5 and 97.5 % order statistics of
    ``t`` (the percentile bound where one is infinite)."""
    a, b = sample.logit_diff[0], sample.clean
    (estimate,), (se,) = _ratio_se(a, b, np.ones((1, len(b))))
    ratios, ses = _ratio_se(a, b, weights)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = np.where(ses > 1e-9, (ratios - estimate) / ses, np.sign(ratios - estimate) * np.inf)
    t = np.sort(t)
    t_lo, t_hi = (t[math.ceil(round(q * len(t), 9)) - 1] for q in (0.025, 0.975))
    low, high = interval(ratios, 0.95)
    return (
        estimate - t_hi * se if np.isfinite(t_hi) else low,
        estimate - t_lo * se if np.isfinite(t_lo) else high,
    )


def coverage(values: PromptValues, size: int, args, truth: float) -> dict[str, dict]:
    """Share of ``args.draws`` subsamples of ``size`` prompts whose CI covers ``truth``."""
    rng = np.random.default_rng(args.seed)
    groups = np.arange(size)
    hits = {"percentile": 0, "equal_tailed_t": 0, "bootstrap_t": 0}
    widths: dict[str, list[float]] = {k: [] for k in hits}
    n = values.logit_diff.shape[1]
    for draw in range(args.draws):
        sample = take(values, rng.choice(n, size=size, replace=False))
        weights = bootstrap_weights(groups, args.resamples, seed=draw)
        old = interval(sample.statistic(METRIC, weights)[0], 0.95)
        low, high = sample.ci(METRIC, groups, weights, 0.95)
        cis = {
            "percentile": old,
            "equal_tailed_t": equal_tailed(sample, weights),
            "bootstrap_t": (low[0], high[0]),
        }
        for name, (lo, hi) in cis.items():
            hits[name] += int(lo <= truth <= hi)
            widths[name].append(hi - lo)
    out = {}
    for name, k in hits.items():
        low, high = wilson(k, args.draws)
        out[name] = {
            "coverage": k / args.draws,
            "coverage_ci": [low, high],
            "median_width": float(np.median(widths[name])),
        }
    return out


def share(result: dict) -> str:
    """``coverage (low-high)`` of one method's row."""
    low, high = result["coverage_ci"]
    return f"{result['coverage']:.3f} ({low:.3f}-{high:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), help="model:task[:template]")
    parser.add_argument("--population", type=int, default=512, help="population prompts")
    parser.add_argument("--discovery", type=int, default=32, help="discovery prompts")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--draws", type=int, default=1000, help="subsamples per size")
    parser.add_argument("--resamples", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("--chunk", type=int, default=64, help="population prompts per pass")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", default="results/ci_coverage")
    parser.add_argument("--reuse", action="store_true", help="reuse cached per-prompt values")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.simplefilter("ignore", UserWarning)  # few-prompt warnings of the subsamples
    command = shlex.join(["python", "benchmarks/ci_coverage.py", *sys.argv[1:]])
    rows, records = [], []
    header = (
        "| model | task | population (sequences) | circuit | population value | prompts "
        "| percentile (old) | equal-tailed bootstrap-t | symmetric bootstrap-t (new) "
        "| median width, old / new |"
    )
    rows += [header, "|" + "---|" * 10]
    for case in args.cases:
        values, info = population_values(args, case)
        truth = float(values.point(METRIC)[0])
        info["population_value"] = truth
        print(f"{case}: {json.dumps(info)}", file=sys.stderr, flush=True)
        for size in args.sizes:
            result = coverage(values, size, args, truth)
            records.append({**info, "prompts": size, "draws": args.draws, **result})
            old, tailed, new = (result[k] for k in ("percentile", "equal_tailed_t", "bootstrap_t"))
            rows.append(
                f"| {info['model']} | {info['task']} ({info['template']}) "
                f"| {info['population_prompts']} ({info['population_sequences']}) "
                f"| {info['circuit_heads']} heads, {info['circuit_mlps']} MLPs "
                f"| {truth:.3f} | {size} | {share(old)} | {share(tailed)} | {share(new)} "
                f"| {old['median_width']:.3f} / {new['median_width']:.3f} |"
            )
    table = "\n".join(rows)
    text = f"{command}\n\n{date.today().isoformat()}, {args.draws} draws per row\n\n{table}\n"
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "coverage.md").write_text(text)
    (out / "coverage.json").write_text(
        json.dumps(
            {"command": command, "date": date.today().isoformat(), "rows": records}, indent=2
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
