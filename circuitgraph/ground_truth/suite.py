"""The ground-truth suite: tracr-compiled models, their tasks and their known circuits.

Every program in ``circuitgraph/data/tracr/`` is a ``<name>.json`` (config, vocabularies,
clean and corrupted token ids, metric, ground-truth edges and how they were derived) and a
``<name>.npz`` (weights in TransformerLens layout, float32, and tracr's own outputs on every
stored input). Loading needs torch and TransformerLens only; ``generate.py`` (with tracr)
writes them.

>>> names = list_ground_truth()
>>> len(names) >= 12
True
>>> record = load_record("proportion")
>>> record["metric"], record["config"]["d_vocab_out"], record["config"]["attention_dir"]
('l2', 1, 'bidirectional')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from circuitgraph.circuit.graph import Circuit
from circuitgraph.models.tracr import (  # noqa: F401 (re-exported: the suite's data)
    DATA_DIR,
    list_ground_truth,
    load_arrays,
    load_record,
    load_tracr_bridge,
)

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model
    from circuitgraph.tasks.task import Task


def truth_circuit(name: str, cfg: Any = None) -> Circuit:
    """The ground truth of program ``name`` as an edge-level :class:`Circuit` with the Q/K/V
    split (``cfg``: the model's config; default: the stored one, named ``tracr:<name>``).
    Its metadata says how the edges were derived."""
    record = load_record(name)
    if cfg is None:
        cfg = _StoredConfig(name, record)
    edges = [tuple(e) for e in record["truth"]["edges"]]
    circuit = Circuit.from_edges(cfg, edges, qkv=True)
    circuit.metadata = {
        "task": f"tracr:{name}",
        "method": f"ground-truth ({record['truth']['method']})",
        "source": record["source"],
        "description": record["truth"]["description"],
    }
    return circuit


def acdc_circuit(name: str, cfg: Any = None) -> Circuit | None:
    """ACDC's hand-written truth (reverse and proportion only; else None) as a Circuit."""
    record = load_record(name)
    if "acdc" not in record:
        return None
    if cfg is None:
        cfg = _StoredConfig(name, record)
    circuit = Circuit.from_edges(cfg, [tuple(e) for e in record["acdc"]["edges"]], qkv=True)
    circuit.metadata = {"task": f"tracr:{name}", "method": "acdc hand-written truth",
                        "origin": record["acdc"]["origin"]}  # fmt: skip
    return circuit


@dataclass(frozen=True)
class _StoredConfig:
    model_name: str
    n_layers: int
    n_heads: int

    def __init__(self, name: str, record: dict[str, Any]) -> None:
        object.__setattr__(self, "model_name", f"tracr:{name}")
        object.__setattr__(self, "n_layers", int(record["config"]["n_layers"]))
        object.__setattr__(self, "n_heads", int(record["config"]["n_heads"]))


def make_ground_truth_task(model: Model, name: str) -> Task:
    """The stored clean and corrupted inputs of program ``name`` as a Task reading every
    position after the first (ACDC's tracr metrics read ``logits[:, 1:]``)."""
    from circuitgraph.tasks.task import Task

    data = load_record(name)["data"]
    return Task.from_tokens(
        model, data["clean"], data["corrupted"], positions="all", name=f"tracr:{name}"
    )


def load_ground_truth(name: str) -> tuple[Model, Task, Circuit]:
    """``(model, task, truth)`` for program ``name``: the compiled model set up for
    circuitgraph (``cg.load_model(bridge, name="tracr:<name>")``), its stored task (every
    position after BOS is read) and the ground-truth circuit with the Q/K/V split. Score with
    the record's metric: ``load_record(name)["metric"]`` ("kl" or "l2").

    >>> model, task, truth = load_ground_truth("reverse")
    >>> len(task) == 6 * 3, truth.config.model_name, len(truth.heads())
    (True, 'tracr:reverse', 2)
    """
    from circuitgraph.models.loading import load_model

    model = load_model(load_tracr_bridge(name), name=f"tracr:{name}")
    task = make_ground_truth_task(model, name)
    return model, task, truth_circuit(name, model.cfg)


def inert_truth_edges(
    name: str, ablation: str = "zero", tolerance: float = 1e-6, metric: str | None = None
) -> list[tuple[tuple[str, str], float]]:
    """Truth edges whose removal alone (from the truth circuit, every other truth edge kept)
    leaves the score within ``tolerance`` of the truth's own: ``[(edge, score), ...]``.

    The score is the record's metric (``kl`` or ``l2``: 0 = as the full model) under
    ``ablation`` ("zero", "resample" or "mean"). A head-internal edge (``a.q -> a``) counts
    as an edge too. An inert edge is not a wrong one: tracr writes some directions that a
    task's inputs never need (the BOS fallback of a head whose query always finds a match,
    a uniform selector's query), and resample ablation cannot see an edge whose value is the
    same in the clean and corrupted inputs.
    """
    from circuitgraph.scoring.scorer import Scorer

    model, task, truth = load_ground_truth(name)
    scorer = Scorer(model, task, metric=metric or load_record(name)["metric"], ablation=ablation)
    base = scorer.score(truth)
    inert = []
    for edge in sorted(truth.edges()):
        reduced = truth.copy()
        reduced.remove_edge(*edge)
        score = scorer.score(reduced)
        if abs(score - base) <= tolerance:
            inert.append((edge, float(score)))
    return inert
