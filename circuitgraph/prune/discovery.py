"""A discovery method as a picklable value, for running many of them on a Dask cluster."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from circuitgraph.options import Method, parse_enum

if TYPE_CHECKING:
    from circuitgraph.scoring.scorer import Scorer
    from circuitgraph.tasks.task import Task

PRUNING = (Method.NODES, Method.EDGES)


@dataclass(frozen=True)
class Discovery:
    """A picklable Task -> Circuit: node pruning (``method="nodes"``, ``threshold``) or edge
    pruning with KL (``"edges"``, ``tau``), on model ``model`` loaded where it runs."""

    model: str
    method: str = "nodes"
    threshold: float = 0.8
    tau: float = 0.01
    device: str = "cpu"
    dtype: str = "float32"
    scorer: dict[str, Any] = field(default_factory=dict)  # Scorer options (ablation, ...)
    threads: int | None = None  # torch threads in each worker (None: leave as it is)
    prune: dict[str, Any] = field(default_factory=dict)  # prune_nodes / prune_edges options

    def __post_init__(self) -> None:
        if self.method not in PRUNING:  # str members: equal to their values
            raise ValueError(f"method must be 'nodes' or 'edges', got {self.method!r}")

    def __call__(self, task: Task) -> Any:
        import torch

        from circuitgraph.models.loading import load_model
        from circuitgraph.prune.edges import prune_edges
        from circuitgraph.prune.nodes import prune_nodes
        from circuitgraph.scoring.scorer import Scorer

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        model = load_model(self.model, device=self.device, dtype=self.dtype)
        scorer = Scorer(model, task, **self.scorer)
        options = {"progress": False, **self.prune}
        if parse_enum(Method, self.method) is Method.NODES:
            return prune_nodes(scorer, self.threshold, **options)
        return prune_edges(scorer.with_metric("kl"), self.tau, **options)

    @classmethod
    def like(cls, scorer: Scorer, **changes: Any) -> Discovery:
        """A Discovery with ``scorer``'s model and settings (the model must have been loaded
        by name with ``cg.load_model``, so that workers can load it too)."""
        name = getattr(scorer.model, "circuitgraph_name", None)
        if not name:
            raise ValueError(
                "only models loaded by name (cg.load_model) can be sent to cluster workers"
            )
        settings = {
            "metric": scorer.metric.value,
            "ablation": scorer.ablation.value,
            "normalise": scorer.normalise.value,
            "direction": scorer.direction.value,
        }
        dtype = str(scorer.components.dtype).removeprefix("torch.")
        return cls(name, device=str(scorer.device), dtype=dtype, scorer=settings, **changes)
