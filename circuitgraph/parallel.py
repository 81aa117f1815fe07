"""Independent discoveries on a Dask cluster: stability resamples, seeds, method comparisons.

We use Dask distributed rather than Ray: it installs from PyPI as pure Python with no daemon,
a ``LocalCluster`` of worker processes runs on one machine with no set-up, and the same
``Client`` connects to a running scheduler (``tcp://host:8786``), e.g. one started on a SLURM
or PBS cluster with ``dask-jobqueue`` or ``dask scheduler`` / ``dask worker``. Its futures API
is all we need: map one function over independent inputs and gather the results in order.

Work is shipped to worker processes with cloudpickle, so a discovery function should not
capture a loaded model: :class:`~circuitgraph.prune.discovery.Discovery` names the model
instead and each worker loads it once (``load_model`` caches it per process). Results are the
serial ones: discovery is deterministic, and the circuits come back to the caller, who writes
the results folder once.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

T = TypeVar("T")
R = TypeVar("R")


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
            # None turns the dashboard off (dask documents it; its annotation says str)
            dashboard_address=None,  # pyright: ignore[reportArgumentType]
        )
        return Client(local)
    try:
        return Client(cluster, timeout="10s")
    except OSError as error:
        raise OSError(f"could not reach the Dask scheduler at {cluster}: {error}") from None
