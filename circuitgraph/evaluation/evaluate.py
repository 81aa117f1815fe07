"""``evaluate``: a circuit's faithfulness with bootstrap confidence intervals, its
completeness and its minimality, on the scorer's prompts (pass a held-out scorer to get
held-out numbers: :func:`held_out_scorer`)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from circuitgraph.circuit.graph import Circuit
from circuitgraph.evaluation.bootstrap import (
    METRICS,
    bootstrap_weights,
    check_confidence,
    check_resamples,
    interval,
    metric_name,
    prompt_groups,
    prompt_values,
)
from circuitgraph.scoring.layout import NodeMasks

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer
    from circuitgraph.tasks.task import Task

__all__ = ["Evaluation", "evaluate", "held_out_scorer", "without_components"]


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured.

    ``score`` and ``ci`` are the scorer's metric with its bootstrap interval at level
    ``confidence``;
    ``table`` has one row per metric (circuit value, CI, the full model's and the empty
    circuit's value); ``completeness`` is the score of the full model minus the circuit
    (low means the circuit holds what the model needs), with ``completeness_ci``;
    ``minimality`` maps each head/MLP to the score drop when it alone is removed.
    ``samples`` [resamples] are the bootstrap values of ``score``.
    """

    metric: str
    score: float
    ci: tuple[float, float]
    table: pd.DataFrame
    completeness: float
    completeness_ci: tuple[float, float]
    minimality: pd.Series
    samples: np.ndarray = field(repr=False)
    n_prompts: int = 0
    n_distinct: int = 0
    resamples: int = 0
    confidence: float = 0.95

    @property
    def level(self) -> float:
        """Deprecated name of ``confidence`` (``level`` means a circuit's granularity)."""
        warnings.warn(
            "Evaluation.level is deprecated: use Evaluation.confidence", DeprecationWarning, 2
        )
        return self.confidence

    def __str__(self) -> str:
        low, high = self.ci
        return (
            f"{self.metric} {self.score:.3f} [{low:.3f}, {high:.3f}] ({self.confidence:.0%} CI, "
            f"{self.n_distinct} distinct prompts), completeness {self.completeness:.3f}"
        )


def held_out_scorer(scorer: Scorer, task: Task) -> Scorer:
    """A Scorer like ``scorer`` (same model, metric, ablation, normalisation, direction) on
    ``task``; ValueError if ``task`` was built for another model."""
    from circuitgraph.scoring.scorer import Scorer

    ours = str(getattr(scorer.model.cfg, "model_name", ""))
    theirs = getattr(task, "model_name", "")
    if theirs and ours and theirs != ours:
        raise ValueError(
            f"held-out task {task.name!r} was built for model {theirs!r}, but the scorer "
            f"uses {ours!r}: build it with make_task(..., model) for the same model"
        )
    return Scorer(
        scorer.model,
        task,
        metric=scorer.metric,
        ablation=scorer.ablation,
        normalise=scorer.normalise,
        direction=scorer.direction,
    )


def _components(circuit: Circuit) -> list[str]:
    if circuit.level == "node":
        return circuit.components()
    senders = {u for u, _ in circuit.sender_receiver_edges()}
    return [n for n in circuit.components() if n in senders]


def without_components(circuit: Circuit, removed: set[str]) -> Circuit:
    """``circuit`` with the heads/MLPs in ``removed`` ablated (node level: dropped; edge
    level: their outgoing edges dropped)."""
    if circuit.level == "node":
        kept = [n for n in circuit.components() if n not in removed]
        return Circuit.from_nodes(circuit.config, kept)
    edges = [(u, v) for u, v in circuit.sender_receiver_edges() if u not in removed]
    return Circuit.from_edges(circuit.config, edges)


def complement_circuit(circuit: Circuit) -> Circuit:
    """The full model minus the circuit (``~circuit``: every other head and MLP at node
    level, every other edge at edge level)."""
    return ~circuit


def _full_model(scorer: Scorer, values) -> dict[str, float]:
    """The full model's value of every metric on the scorer's prompts."""
    top1 = scorer.clean_logprobs.argmax(dim=-1) == scorer.task.answer_ids
    return {
        "normalised_logit_diff": 1.0,  # by definition, under either normalisation
        "logit_diff": float(values.clean.mean()),
        "kl": 0.0,
        "accuracy": float(top1.double().mean()),
    }


def _node_present(scorer: Scorer, circuit: Circuit) -> torch.Tensor:
    """The node mask ``present`` [1, P, S] of a node-level circuit."""
    masks = scorer.masks(circuit)
    assert isinstance(masks, NodeMasks)  # a node-level circuit
    return masks.present


@torch.no_grad()
def _minimality(scorer: Scorer, circuit: Circuit, score: float, batch_size: int) -> pd.Series:
    names = _components(circuit)
    variants = [without_components(circuit, {name}) for name in names]
    if circuit.level == "node" and variants:
        present = torch.cat([_node_present(scorer, c) for c in variants])  # [V, P, S]
        scores = torch.cat(
            [
                scorer.score_masks(NodeMasks(present[lo : lo + batch_size]))
                for lo in range(0, len(variants), batch_size)
            ]
        ).tolist()
    else:
        scores = [scorer.score(c) for c in variants]
    sign = 1.0 if scorer.higher_is_better() else -1.0
    drops = pd.Series([sign * (score - s) for s in scores], index=names, dtype=float)
    drops.index.name, drops.name = "component", "drop"
    return drops.sort_values(ascending=False)


def _arguments(scorer: Scorer, circuit: Circuit, confidence: float, level: float | None) -> tuple:
    """(scorer, circuit, confidence) of a call in the old forms, with their warnings: the
    old order ``evaluate(circuit, scorer)`` and ``level=`` for the CI level (stack levels:
    this function, evaluate, torch.no_grad's wrapper, the caller)."""
    if isinstance(scorer, Circuit) and not isinstance(circuit, Circuit):
        warnings.warn(
            "evaluate(circuit, scorer) is deprecated and will stop working in the next release: "
            "call evaluate(scorer, circuit), the scorer first as in every other function",
            FutureWarning,
            stacklevel=4,
        )
        scorer, circuit = circuit, scorer
    if level is not None:
        if isinstance(level, str):
            raise TypeError(
                f"evaluate() has no granularity level (got level={level!r}); the level of the "
                "confidence intervals is confidence=, e.g. confidence=0.95"
            )
        warnings.warn(
            "evaluate(..., level=) is deprecated: the level of the confidence intervals is "
            "confidence= (level means a circuit's granularity, node or edge)",
            DeprecationWarning,
            stacklevel=4,
        )
        confidence = level
    return scorer, circuit, confidence


@torch.no_grad()
def evaluate(
    scorer: Scorer,
    circuit: Circuit,
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    minimality: bool = True,
    batch_size: int = 16,
    *,
    level: float | None = None,
) -> Evaluation:
    """Faithfulness of ``circuit`` on ``scorer``'s prompts with bootstrap CIs over prompts.

    One masked forward pass runs the circuit, the full model minus the circuit, and the empty
    circuit together; every metric is kept per prompt and resampled ``resamples`` times over
    the distinct clean prompts (``seed``), so the intervals cost about one score, at level
    ``confidence``. Minimality (one pass per component) can be switched off with
    ``minimality=False``.

    Deprecated, for one release: the old order ``evaluate(circuit, scorer)`` (FutureWarning)
    and ``level=`` for ``confidence=`` (DeprecationWarning).

    >>> import circuitgraph as cg
    >>> model = cg.load_model("toy-seq")
    >>> scorer = cg.Scorer(model, cg.make_task("months", model, n=24))
    >>> result = evaluate(scorer, cg.full_circuit(model.cfg), minimality=False)
    >>> round(result.score, 4), result.ci[0] <= result.score <= result.ci[1]
    (1.0, True)
    """
    scorer, circuit, confidence = _arguments(scorer, circuit, confidence, level)
    resamples = check_resamples(resamples)
    confidence = check_confidence(confidence)
    if not isinstance(circuit, Circuit):
        raise TypeError(f"circuit must be a Circuit, got {type(circuit).__name__}")
    empty = Circuit.from_nodes(circuit.config, [])
    variants = [circuit, complement_circuit(circuit), empty]
    if circuit.level == "node":
        masks = NodeMasks(torch.cat([_node_present(scorer, c) for c in variants]))
        values = prompt_values(scorer, masks)
    else:
        parts = [prompt_values(scorer, scorer.masks(c)) for c in variants]
        values = _stack(parts)
    groups = prompt_groups(scorer.task.clean_prompts)
    weights = bootstrap_weights(groups, resamples, seed)  # [R, n]
    full_model = _full_model(scorer, values)
    rows, samples_of = [], {}
    for name in METRICS:
        point = values.point(name)  # [3]
        boot = values.statistic(name, weights)  # [3, R]
        samples_of[name] = boot
        low, high = interval(boot[0], confidence)
        rows.append(
            {
                "metric": name,
                "value": float(point[0]),
                "ci_low": low,
                "ci_high": high,
                "full_model": full_model[name],
                "complement": float(point[1]),
                "empty": float(point[2]),
            }
        )
    table = pd.DataFrame(rows).set_index("metric")
    own = metric_name(scorer)
    score = float(table.loc[own, "value"])
    completeness_samples = samples_of[own][1]
    return Evaluation(
        metric=own,
        score=score,
        ci=(float(table.loc[own, "ci_low"]), float(table.loc[own, "ci_high"])),
        table=table,
        completeness=float(table.loc[own, "complement"]),
        completeness_ci=interval(completeness_samples, confidence),
        minimality=_minimality(scorer, circuit, score, batch_size)
        if minimality
        else pd.Series(dtype=float, name="drop"),
        samples=samples_of[own][0],
        n_prompts=len(scorer.task),
        n_distinct=int(groups.max()) + 1,
        resamples=resamples,
        confidence=confidence,
    )


def _stack(parts):
    """Concatenate PromptValues of single circuits along the circuit axis."""
    from dataclasses import replace

    first = parts[0]
    return replace(
        first,
        logit_diff=np.concatenate([p.logit_diff for p in parts]),
        kl=np.concatenate([p.kl for p in parts]),
        accuracy=np.concatenate([p.accuracy for p in parts]),
    )
