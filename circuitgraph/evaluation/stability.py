"""``stability``: rediscover a circuit on resampled prompt sets and measure how much it moves.

A circuit found once on one prompt set is a point estimate. Here discovery (any function
Task -> Circuit) runs on ``resamples`` prompt sets: bootstrap resamples of the task's distinct
clean prompts (``method="bootstrap"``) or fresh prompt sets drawn with other seeds
(``method="seeds"``). The result holds each node's (and edge's) inclusion frequency, all
pairwise Jaccard similarities, a consensus circuit at any frequency, and, given a held-out
scorer, every circuit's held-out score with its bootstrap CI.
"""

from __future__ import annotations

import functools
import itertools
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from circuitgraph.circuit.graph import Circuit
from circuitgraph.circuit.setops import check_compatible, components, jaccard
from circuitgraph.evaluation.bootstrap import check_resamples, prompt_groups
from circuitgraph.evaluation.evaluate import Evaluation, evaluate
from circuitgraph.evaluation.held_out import check_held_out, outside
from circuitgraph.guards import (
    MIN_PROMPTS,
    MIN_STABILITY_RESAMPLES,
    UncertaintyWarning,
    check_prompts,
)
from circuitgraph.guards import check_resamples as check_resample_count
from circuitgraph.options import Sampling, parse_enum, values
from circuitgraph.parallel import run_many

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Edge
    from circuitgraph.models.model_type import Model
    from circuitgraph.scoring.scorer import Scorer
    from circuitgraph.tasks.task import Task

__all__ = ["METHODS", "Stability", "jaccard", "stability"]

METHODS = values(Sampling)


def _nodes(circuit: Circuit) -> set[str]:
    return components(circuit, "nodes")


def _edges(circuit: Circuit) -> set[tuple[str, str]]:
    return set(circuit.sender_receiver_edges()) if circuit.level == "edge" else set()


@dataclass(frozen=True)
class Stability:
    """Circuits found on resampled prompt sets, and how much they agree.

    ``frequency``: share of circuits holding each head/MLP (index: name), highest first;
    ``edge_frequency``: the same per ``(sender, receiver)`` edge (edge-level circuits only);
    ``jaccard``: one row per pair of circuits (node and edge Jaccard); ``runs``: one row per
    circuit (prompts, size, in-sample score, held-out score and CI, seconds);
    ``evaluation``: the held-out :class:`Evaluation` of ``consensus(0.5)`` (None without a
    held-out scorer); ``warnings``: the texts of the
    :class:`~circuitgraph.guards.UncertaintyWarning` given (few distinct prompts in
    the resamples, and those of the held-out evaluations), each once.
    """

    circuits: list[Circuit]
    runs: pd.DataFrame
    frequency: pd.Series
    edge_frequency: pd.Series
    jaccard: pd.DataFrame
    method: str
    evaluation: Evaluation | None = None
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)

    def consensus(self, q: float = 0.5) -> Circuit:
        """The circuit of the elements found in at least a share ``q`` of the runs (edges for
        edge-level circuits, heads and MLPs otherwise)."""
        if not 0.0 < q <= 1.0:
            raise ValueError(f"q must be in (0, 1], got {q!r}")
        config = self.circuits[0].config
        if len(self.edge_frequency):
            kept = cast("list[Edge]", [e for e, f in self.edge_frequency.items() if f >= q - 1e-12])
            circuit = Circuit.from_edges(config, kept)
        else:
            kept = cast("list[str]", [n for n, f in self.frequency.items() if f >= q - 1e-12])
            circuit = Circuit.from_nodes(config, kept)
        circuit.metadata = {"operation": "consensus", "q": q, "runs": len(self.circuits)}
        return circuit

    def summary(self) -> dict[str, float]:
        """Mean and sd of sizes and scores, mean Jaccard."""
        out: dict[str, float] = {}
        for column in ("heads", "mlps", "edges", "score", "held_out"):
            if column in self.runs and self.runs[column].notna().any():
                out[f"{column}_mean"] = float(self.runs[column].mean())
                out[f"{column}_sd"] = (
                    # pandas annotates Series.std as Series | float; a Series' is a float
                    float(self.runs[column].std(ddof=1))  # pyright: ignore[reportArgumentType]
                    if len(self.runs) > 1
                    else 0.0
                )
        for column in ("nodes", "edges"):
            if column in self.jaccard and len(self.jaccard):
                out[f"jaccard_{column}_mean"] = float(self.jaccard[column].mean())
        return out


def _bootstrap_tasks(task: Task, resamples: int, seed: int) -> Iterator[Task]:
    """Tasks of the distinct clean prompts drawn with replacement (all copies of a prompt)."""
    groups = prompt_groups(task.clean_prompts)
    rows_of = [np.flatnonzero(groups == g) for g in range(int(groups.max()) + 1)]
    rng = np.random.default_rng(seed)
    for _ in range(resamples):
        drawn = rng.integers(0, len(rows_of), size=len(rows_of))
        yield task.subset(np.concatenate([rows_of[g] for g in drawn]).tolist())


def _seed_tasks(
    task: Task | Callable[[int], Task],
    resamples: int,
    seed: int,
    model: Model | None,
    held_out: Task | None = None,
) -> Iterator[Task]:
    """The task rebuilt with seeds ``seed ..``, less the prompts whose sequence ``held_out``
    shows (a function seed -> Task is called as it is, and checked by the caller)."""
    if callable(task):
        for r in range(resamples):
            yield task(seed + r)
        return
    if model is None:
        raise ValueError(
            "method='seeds' rebuilds the task with other seeds: pass model=..., or pass "
            "task as a function seed -> Task (e.g. to filter each prompt set)"
        )
    from circuitgraph.tasks import make_task

    for r in range(resamples):
        built = make_task(
            task.name,
            model,
            n=len(task),
            corruption=task.corruption,
            seed=seed + r,
            template=task.template,
            n_members=task.n_members,
        )
        if held_out is not None:
            kept = outside(built, held_out)
            if not kept:
                raise ValueError(
                    f"method='seeds': every prompt of task {task.name!r} with seed {seed + r} "
                    "shares its sequence with the held-out prompts; hold out fewer sequences"
                )
            built = built.subset(kept)
        yield built


def stability(
    task: Task | Callable[[int], Task],
    discover: Callable[[Task], Circuit],
    resamples: int = 5,
    seed: int = 0,
    method: str = "bootstrap",
    model: Model | None = None,
    held_out: Scorer | None = None,
    evaluate_resamples: int = 1000,
    client: Any = None,
) -> Stability:
    """Run ``discover`` on ``resamples`` prompt sets and measure agreement.

    Parameters
    ----------
    task: a Task (or, for ``method="seeds"``, a function seed -> Task).
    discover: Task -> Circuit, e.g. ``lambda t: cg.prune_nodes(cg.Scorer(model, t), 0.8)``.
    method: ``"bootstrap"`` (distinct clean prompts drawn with replacement, seeded) or
        ``"seeds"`` (the task rebuilt with seeds ``seed .. seed + resamples - 1``, less the
        prompts whose sequence ``held_out`` shows; needs ``model`` unless ``task`` is a
        function).
    held_out: a Scorer on prompts no run saw (e.g. ``held_out_scorer(scorer, test)`` after
        ``task.split``); each circuit and the 0.5-consensus are evaluated on it. Refused
        (:class:`~circuitgraph.guards.UncertaintyError`, before any discovery) when
        a resample's prompts share an underlying sequence with its prompts
        (:meth:`~circuitgraph.tasks.task.Task.sequence_keys`): with ``method="seeds"``, give
        ``task`` as a function that leaves the held-out sequences out.
    client: a ``dask.distributed.Client`` (see :func:`circuitgraph.parallel.connect`): the
        discoveries run on its workers, with the same results as serially. ``discover`` is
        then shipped to them: use :class:`circuitgraph.parallel.Discovery`, or a function that
        loads its model by name, rather than one holding a loaded model.

    The uncertainty rule (:mod:`~circuitgraph.guards`), before any discovery runs:
    one resample, or a task of one distinct prompt, is refused
    (:class:`~circuitgraph.guards.UncertaintyError`); fewer than 8 distinct prompts
    in the task or in any resample (a bootstrap resample holds about 63 % of them) give an
    :class:`~circuitgraph.guards.UncertaintyWarning`, kept in
    ``Stability.warnings`` with those of the held-out evaluations.
    """
    resamples = check_resamples(resamples)
    notes = check_resample_count(resamples, "stability", MIN_STABILITY_RESAMPLES, stacklevel=2)
    sampling = parse_enum(Sampling, method, "method")
    method = sampling.value
    if not callable(discover):
        raise TypeError("discover must be a function Task -> Circuit")
    if callable(task) and sampling is Sampling.BOOTSTRAP:
        raise ValueError("method='bootstrap' resamples one Task: pass a Task, not a function")
    began = time.perf_counter()
    tasks = (
        _bootstrap_tasks(cast("Task", task), resamples, seed)  # a Task (checked above)
        if sampling is Sampling.BOOTSTRAP
        else _seed_tasks(task, resamples, seed, model, None if held_out is None else held_out.task)
    )
    tasks = list(tasks)
    notes += _check_samples(task, tasks, sampling)
    if held_out is not None:  # the rule of the held-out intervals, said once, up front
        distinct = held_out.task.n_distinct
        notes += check_prompts(distinct, "evaluate's confidence interval", stacklevel=2)
    if held_out is not None:  # before any discovery runs
        for r, sample in enumerate(tasks):
            check_held_out(sample, held_out.task, f"stability: resample {r}'s prompts")
    found = run_many(functools.partial(_timed, discover), tasks, client)
    circuits, rows = [], []
    for r, (sample, (circuit, seconds)) in enumerate(zip(tasks, found, strict=True)):
        if not isinstance(circuit, Circuit):
            raise TypeError(f"discover returned {type(circuit).__name__}, not a Circuit")
        row = {
            "resample": r,
            "n_prompts": len(sample),
            "n_distinct": sample.n_distinct,
            "heads": len(circuit.heads()),
            "mlps": len(circuit.mlps()),
            "edges": len(_edges(circuit)) if circuit.level == "edge" else np.nan,
            "score": circuit.metadata.get("score", np.nan),
            "seconds": seconds,
        }
        if held_out is not None:
            result = _quiet_evaluate(held_out, circuit, evaluate_resamples, seed, False)
            row |= {
                "held_out": result.score,
                "ci_low": result.ci[0],
                "ci_high": result.ci[1],
                "ci_n_distinct": result.n_distinct,
            }
            notes += _once(notes, result.warnings, stacklevel=2)
        circuits.append(circuit)
        rows.append(row)
    check_compatible(circuits)
    return _summarise(circuits, rows, method, held_out, evaluate_resamples, seed, began, notes)


def _quiet_evaluate(
    scorer: Scorer, circuit: Circuit, resamples: int, seed: int, minimality: bool = True
) -> Evaluation:
    """``evaluate`` without showing its UncertaintyWarnings: their texts stay in its
    ``warnings``, and stability shows each text once (:func:`_once`), not once per run."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UncertaintyWarning)
        return evaluate(scorer, circuit, resamples, seed, minimality=minimality)


def _once(notes: list[str], texts: list[str], stacklevel: int) -> list[str]:
    """The texts not yet in ``notes``, each shown as an UncertaintyWarning (``stacklevel``
    counted from the caller of this function)."""
    fresh = [text for text in dict.fromkeys(texts) if text not in notes]
    for text in fresh:
        warnings.warn(text, UncertaintyWarning, stacklevel=stacklevel + 1)
    return fresh


def _check_samples(task: Task | Callable[[int], Task], tasks: list[Task], sampling) -> list[str]:
    """The uncertainty rule on the prompt sets of the runs (warnings 3 levels up: the
    caller of ``stability``)."""
    fewest = min(t.n_distinct for t in tasks)
    if sampling is not Sampling.BOOTSTRAP:
        return check_prompts(fewest, "stability: a prompt set", stacklevel=3)
    whole = cast("Task", task).n_distinct
    notes = check_prompts(whole, "stability's bootstrap", stacklevel=3)
    if fewest < MIN_PROMPTS and whole >= MIN_PROMPTS:  # fewer in the task: warned above
        message = (
            f"stability: its bootstrap resamples hold as few as {fewest} distinct prompts (of "
            f"{whole}; a resample holds about 63 % of them, fewer than {MIN_PROMPTS} here): "
            "circuits found on so few prompts differ for that reason alone; use more prompts"
        )
        warnings.warn(message, UncertaintyWarning, stacklevel=3)
        notes.append(message)
    return notes


def _timed(discover: Callable[[Task], Circuit], task: Task) -> tuple[Circuit, float]:
    """``discover(task)`` and the seconds it took (measured where it runs)."""
    start = time.perf_counter()
    circuit = discover(task)
    return circuit, time.perf_counter() - start


def _summarise(
    circuits: list[Circuit],
    rows,
    method,
    held_out: Scorer | None,
    evaluate_resamples,
    seed,
    began,
    notes: list[str] | None = None,
) -> Stability:
    R = len(circuits)
    node_sets = [_nodes(c) for c in circuits]
    edge_sets = [_edges(c) for c in circuits]
    nodes = Counter(n for s in node_sets for n in s)
    edges = Counter(e for s in edge_sets for e in s)
    frequency = pd.Series({n: k / R for n, k in nodes.items()}, dtype=float, name="frequency")
    frequency = frequency.sort_values(ascending=False, kind="stable")
    edge_frequency = pd.Series(
        {e: k / R for e, k in edges.items()}, dtype=float, name="frequency"
    ).sort_values(ascending=False, kind="stable")
    pairs = [
        {
            "a": i,
            "b": j,
            "nodes": jaccard(node_sets[i], node_sets[j]),
            "edges": jaccard(edge_sets[i], edge_sets[j]) if edges else np.nan,
        }
        for i, j in itertools.combinations(range(R), 2)
    ]
    result = Stability(
        circuits=circuits,
        runs=pd.DataFrame(rows),
        frequency=frequency,
        edge_frequency=edge_frequency,
        jaccard=pd.DataFrame(pairs, columns=["a", "b", "nodes", "edges"]),
        method=method,
    )
    evaluation = None
    notes = list(notes or [])
    if held_out is not None:
        evaluation = _quiet_evaluate(held_out, result.consensus(0.5), evaluate_resamples, seed)
        notes += _once(notes, evaluation.warnings, stacklevel=3)
    return Stability(
        circuits=circuits,
        runs=result.runs,
        frequency=frequency,
        edge_frequency=edge_frequency,
        jaccard=result.jaccard,
        method=method,
        evaluation=evaluation,
        seconds=time.perf_counter() - began,
        warnings=list(dict.fromkeys(notes)),  # each text once
    )
