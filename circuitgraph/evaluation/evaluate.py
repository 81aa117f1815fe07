"""``evaluate``: a circuit's faithfulness with bootstrap confidence intervals, its
completeness and its minimality, on the scorer's prompts (pass a held-out scorer to get
held-out numbers: :func:`held_out_scorer`)."""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from circuitgraph.circuit.graph import Circuit
from circuitgraph.evaluation.bootstrap import (
    bootstrap_weights,
    check_confidence,
    check_resamples,
    metric_name,
    prompt_groups,
    prompt_values,
)
from circuitgraph.guards import UncertaintyWarning, check_prompts, check_sequences
from circuitgraph.guards import check_resamples as check_resample_count
from circuitgraph.scoring.layout import NodeMasks

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer
    from circuitgraph.tasks.task import Task

__all__ = ["Evaluation", "evaluate", "held_out_scorer", "without_components"]


@dataclass(frozen=True)
class Evaluation:
    """What :func:`evaluate` measured.

    ``score`` and ``ci`` are the scorer's metric with its bootstrap-t interval at level
    ``confidence`` over ``n_distinct`` distinct prompts (``n_prompts`` rows);
    ``table`` has one row per metric (circuit value, CI, the number of distinct prompts, the
    full model's and the empty circuit's value); ``completeness`` is the score of the full
    model minus the circuit (low means the circuit holds what the model needs), with
    ``completeness_ci``; ``minimality`` maps each head/MLP to the score drop when it alone is
    removed. ``samples`` [resamples] are the bootstrap values of ``score``. ``warnings``: the
    texts of the :class:`~circuitgraph.guards.UncertaintyWarning` given (too few
    prompts or resamples, ablation values other than the circuit's).
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
    n_sequences: int = 0  # underlying sequences of the distinct prompts (Task.sequence_keys)
    resamples: int = 0
    confidence: float = 0.95
    warnings: list[str] = field(default_factory=list)

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
    ``task``; ValueError if ``task`` was built for another model. With mean ablation its
    ablation values are ``scorer``'s (``mean_over=scorer.mean_task``: the discovery prompts'
    means), so a circuit is scored held out with the values it was found with.

    ``task`` must be held out from ``scorer``'s prompts by underlying sequence
    (:meth:`~circuitgraph.tasks.task.Task.sequence_keys`; ``Task.split`` gives such halves):
    :class:`~circuitgraph.guards.UncertaintyError` for the scorer's own task or any
    task that shares a sequence with it."""
    from circuitgraph.evaluation.held_out import check_held_out
    from circuitgraph.scoring.scorer import Scorer

    ours = str(getattr(scorer.model.cfg, "model_name", ""))
    theirs = getattr(task, "model_name", "")
    if theirs and ours and theirs != ours:
        raise ValueError(
            f"held-out task {task.name!r} was built for model {theirs!r}, but the scorer "
            f"uses {ours!r}: build it with make_task(..., model) for the same model"
        )
    check_held_out(scorer.task, task, "held_out_scorer")
    return Scorer(
        scorer.model,
        task,
        metric=scorer.metric,
        ablation=scorer.ablation,
        normalise=scorer.normalise,
        direction=scorer.direction,
        # mean ablation keeps the values the circuit was found with: the discovery prompts'
        # means, not means over the (often few) held-out prompts
        mean_over=getattr(scorer, "mean_task", None),
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
    top1 = scorer.clean_logprobs.argmax(dim=-1) == scorer.task.answer_ids.to(scorer.device)
    weights = torch.as_tensor(values.weights)
    answers = scorer.task.has_answers
    return {
        "normalised_logit_diff": 1.0 if answers else math.nan,  # by definition, when defined
        "logit_diff": float(np.average(values.clean, weights=values.weights)),
        "kl": 0.0,
        "accuracy": float((top1.double().cpu() * weights).mean()) if answers else math.nan,
        "l2": 0.0,
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
    ``confidence``: studentized bootstrap (bootstrap-t) intervals
    (:func:`~circuitgraph.evaluation.bootstrap.bootstrap_t`), which cover at 8 and 16 prompts
    where percentile intervals ran narrow. Minimality (one pass per component) can be switched
    off with ``minimality=False``.

    The uncertainty rule (:mod:`~circuitgraph.guards`): one distinct prompt or one
    resample is refused (:class:`~circuitgraph.guards.UncertaintyError`, before
    the forward pass); fewer than 8 distinct prompts or 20 resamples give an
    :class:`~circuitgraph.guards.UncertaintyWarning`, whose text is kept in
    ``Evaluation.warnings``.

    Mean ablation: the intervals resample the scored prompts and hold the ablation values
    fixed. Those are the scorer's (``scorer.mean_reference``); a circuit found with mean
    ablation should be scored with the values it was found with (``held_out_scorer`` does
    this, or ``Scorer(..., mean_over=discovery_task)``). When the scorer instead takes them
    from its own prompts and the circuit's provenance names another set, evaluate warns: the
    score is then of other ablation values, and their own sampling error (means over few
    prompts) is not in the interval.

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
    groups = prompt_groups(scorer.task.clean_prompts)
    n_distinct = int(groups.max()) + 1 if len(groups) else 0
    notes = check_prompts(n_distinct, "evaluate's confidence interval", stacklevel=3)
    n_sequences = len(set(scorer.task.sequence_keys()))
    notes += check_sequences(
        n_sequences, n_distinct, "evaluate's confidence interval", stacklevel=3
    )
    notes += check_resample_count(resamples, "evaluate's confidence interval", stacklevel=3)
    notes += _check_mean_reference(scorer, circuit)
    empty = Circuit.from_nodes(circuit.config, [])
    variants = [circuit, complement_circuit(circuit), empty]
    if circuit.level == "node":
        masks = NodeMasks(torch.cat([_node_present(scorer, c) for c in variants]))
        values = prompt_values(scorer, masks)
    else:
        parts = [prompt_values(scorer, scorer.masks(c)) for c in variants]
        values = _stack(parts)
    weights = bootstrap_weights(groups, resamples, seed)  # [R, n]
    full_model = _full_model(scorer, values)
    rows, samples_of, completeness_ci = [], {}, {}
    for name in values.available():
        point = values.point(name)  # [3]
        samples_of[name] = values.statistic(name, weights)  # [3, R]
        low, high = values.ci(name, groups, weights, confidence)  # [3] each
        completeness_ci[name] = (float(low[1]), float(high[1]))
        rows.append(
            {
                "metric": name,
                "value": float(point[0]),
                "ci_low": float(low[0]),
                "ci_high": float(high[0]),
                "n_distinct": n_distinct,
                "n_sequences": n_sequences,
                "full_model": full_model[name],
                "complement": float(point[1]),
                "empty": float(point[2]),
            }
        )
    table = pd.DataFrame(rows).set_index("metric")
    own = metric_name(scorer)
    score = float(table.loc[own, "value"])
    return Evaluation(
        metric=own,
        score=score,
        ci=(float(table.loc[own, "ci_low"]), float(table.loc[own, "ci_high"])),
        table=table,
        completeness=float(table.loc[own, "complement"]),
        completeness_ci=completeness_ci[own],
        minimality=_minimality(scorer, circuit, score, batch_size)
        if minimality
        else pd.Series(dtype=float, name="drop"),
        samples=samples_of[own][0],
        n_prompts=len(scorer.task),
        n_distinct=n_distinct,
        n_sequences=n_sequences,
        resamples=resamples,
        confidence=confidence,
        warnings=notes,
    )


def _check_mean_reference(scorer: Scorer, circuit: Circuit) -> list[str]:
    """Warn (and return the text) when ``scorer`` takes its mean-ablation values from its own
    prompts while ``circuit`` was found with means over another prompt set."""
    ours = getattr(scorer, "mean_reference", None)
    theirs = circuit.metadata.get("mean_reference") if circuit.metadata else None
    own = getattr(scorer, "mean_task", None) is scorer.task
    if not (ours and isinstance(theirs, dict) and own) or theirs == ours:
        return []
    message = (
        f"the circuit was found with mean-ablation values over {theirs.get('n_prompts')} "
        f"prompts of task {theirs.get('task')!r} (seed {theirs.get('seed')}), but this scorer "
        f"takes them from its own {ours['n_prompts']} prompts: the score is of other ablation "
        "values and the interval leaves out their sampling error; score with "
        "held_out_scorer(discovery_scorer, task) or Scorer(..., mean_over=discovery_task)"
    )
    warnings.warn(message, UncertaintyWarning, stacklevel=4)
    return [message]


def _stack(parts):
    """Concatenate PromptValues of single circuits along the circuit axis."""
    from dataclasses import replace

    first = parts[0]
    return replace(
        first,
        logit_diff=np.concatenate([p.logit_diff for p in parts]),
        kl=np.concatenate([p.kl for p in parts]),
        accuracy=np.concatenate([p.accuracy for p in parts]),
        l2=None if first.l2 is None else np.concatenate([p.l2 for p in parts]),
    )
