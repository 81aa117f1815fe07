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
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import pandas as pd

from circuitgraph.circuit.graph import Circuit
from circuitgraph.circuit.setops import check_compatible, components, jaccard
from circuitgraph.evaluation.bootstrap import check_resamples, prompt_groups
from circuitgraph.evaluation.evaluate import Evaluation, evaluate
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
    held-out scorer).
    """

    circuits: list[Circuit]
    runs: pd.DataFrame
    frequency: pd.Series
    edge_frequency: pd.Series
    jaccard: pd.DataFrame
    method: str
    evaluation: Evaluation | None = None
    seconds: float = 0.0

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
    task: Task | Callable[[int], Task], resamples: int, seed: int, model: Model | None
) -> Iterator[Task]:
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
        yield make_task(
            task.name,
            model,
            n=len(task),
            corruption=task.corruption,
            seed=seed + r,
            template=task.template,
            n_members=task.n_members,
        )


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
        ``"seeds"`` (the task rebuilt with seeds ``seed .. seed + resamples - 1``; needs
        ``model`` unless ``task`` is a function).
    held_out: a Scorer on prompts no run saw (e.g. ``held_out_scorer(scorer, test)`` after
        ``task.split``); each circuit and the 0.5-consensus are evaluated on it.
    client: a ``dask.distributed.Client`` (see :func:`circuitgraph.parallel.connect`): the
        discoveries run on its workers, with the same results as serially. ``discover`` is
        then shipped to them: use :class:`circuitgraph.parallel.Discovery`, or a function that
        loads its model by name, rather than one holding a loaded model.
    """
    resamples = check_resamples(resamples)
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
        else _seed_tasks(task, resamples, seed, model)
    )
    tasks = list(tasks)
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
            result = evaluate(held_out, circuit, evaluate_resamples, seed, minimality=False)
            row |= {"held_out": result.score, "ci_low": result.ci[0], "ci_high": result.ci[1]}
        circuits.append(circuit)
        rows.append(row)
    check_compatible(circuits)
    return _summarise(circuits, rows, method, held_out, evaluate_resamples, seed, began)


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
    if held_out is not None:
        evaluation = evaluate(held_out, result.consensus(0.5), evaluate_resamples, seed)
    return Stability(
        circuits=circuits,
        runs=result.runs,
        frequency=frequency,
        edge_frequency=edge_frequency,
        jaccard=result.jaccard,
        method=method,
        evaluation=evaluation,
        seconds=time.perf_counter() - began,
    )
