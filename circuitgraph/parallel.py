"""Independent discoveries on a Dask cluster: stability resamples, seeds, method comparisons.

We use Dask distributed rather than Ray: it installs from PyPI as pure Python with no daemon,
a ``LocalCluster`` of worker processes runs on one machine with no set-up, and the same
``Client`` connects to a running scheduler (``tcp://host:8786``), e.g. one started on a SLURM
or PBS cluster with ``dask-jobqueue`` or ``dask scheduler`` / ``dask worker``. Its futures API
is all we need: map one function over independent inputs and gather the results in order.

Work is shipped to worker processes with cloudpickle, so a discovery function should not
capture a loaded model: :class:`Discovery` names the model instead and each worker loads it
once (``load_model`` caches it per process). Results are the serial ones: discovery is
deterministic, and the circuits come back to the caller, who writes the results folder once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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
        if self.method not in ("nodes", "edges"):
            raise ValueError(f"method must be 'nodes' or 'edges', got {self.method!r}")

    def __call__(self, task: Any) -> Any:
        import torch

        from circuitgraph.models import load_model
        from circuitgraph.prune.edges import prune_edges
        from circuitgraph.prune.nodes import prune_nodes
        from circuitgraph.scorer import Scorer

        if self.threads is not None:
            torch.set_num_threads(self.threads)
        model = load_model(self.model, device=self.device, dtype=self.dtype)
        scorer = Scorer(model, task, **self.scorer)
        options = {"progress": False, **self.prune}
        if self.method == "nodes":
            return prune_nodes(scorer, self.threshold, **options)
        return prune_edges(scorer.with_metric("kl"), self.tau, **options)

    @classmethod
    def like(cls, scorer: Any, **changes: Any) -> Discovery:
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


def call(function_and_argument: tuple[Callable[[T], R], T]) -> R:
    """``function(argument)``: lets :func:`run_many` ship different callables."""
    function, argument = function_and_argument
    return function(argument)


def run_many(function: Callable[[T], R], items: Sequence[T], client: Any = None) -> list[R]:
    """``[function(item) for item in items]``, on ``client``'s workers when one is given
    (a ``dask.distributed.Client``), in the order of ``items``."""
    items = list(items)
    if client is None:
        return [function(item) for item in items]
    futures = client.map(function, items, pure=False)
    return client.gather(futures)


def check_cluster(cluster: str | None) -> None:
    """ValueError unless ``cluster`` is None, ``"local"`` or a scheduler address."""
    if cluster is not None and cluster != "local" and "://" not in str(cluster):
        raise ValueError(
            f"cluster must be 'local' or a scheduler address like tcp://host:8786, got {cluster!r}"
        )


def connect(cluster: str, workers: int = 2, threads_per_worker: int = 1) -> Any:
    """A Dask client: ``"local"`` starts a LocalCluster of ``workers`` processes on this
    machine; anything else is a scheduler address (``tcp://host:8786``) to connect to.

    Close it when done (``with connect(...) as client:``).
    """
    from dask.distributed import Client, LocalCluster

    check_cluster(cluster)
    if cluster == "local":
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        local = LocalCluster(
            n_workers=workers,
            threads_per_worker=threads_per_worker,
            processes=True,
            dashboard_address=None,
        )
        return Client(local)
    try:
        return Client(cluster, timeout="10s")
    except OSError as error:
        raise OSError(f"could not reach the Dask scheduler at {cluster}: {error}") from None
