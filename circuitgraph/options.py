"""Every choice circuitgraph offers, as one vocabulary of string enums (standard library only).

Functions take the plain strings users type (``metric="kl"``) and parse them here once, at the
boundary (:func:`parse_enum`); inside the package the members are compared by identity
(``scorer.direction is Direction.DENOISING``). The command line takes its ``choices`` from the
same enums (:func:`values`), so a new choice is added in one place.

>>> parse_enum(Metric, "kl") is Metric.KL
True
>>> values(Ablation)
('mean', 'resample', 'zero')
"""

from __future__ import annotations

from enum import Enum
from typing import TypeVar

__all__ = [
    "Ablation",
    "Direction",
    "EdgeOrder",
    "Engine",
    "Estimator",
    "Level",
    "Method",
    "Metric",
    "NodeOrder",
    "Normalise",
    "On",
    "Sampling",
    "parse_enum",
    "values",
]

E = TypeVar("E", bound=Enum)


class Metric(str, Enum):
    """What a circuit is scored on."""

    LOGIT_DIFF = "logit_diff"
    KL = "kl"
    ACCURACY = "accuracy"
    PROB_DIFF = "prob_diff"  # probability on the task's "good" tokens minus its "bad" ones
    L2 = "l2"  # squared distance of the outputs from the full model's (ACDC's tracr metric)


class Normalise(str, Enum):
    """How a logit difference becomes a fraction of the full model's."""

    FULL = "full"  # ablated / clean (the paper's convention; can go negative)
    CLEAN_CORRUPT = "clean_corrupt"  # (ablated - corrupt) / (clean - corrupt)


class Ablation(str, Enum):
    """The values given to what is not in the circuit."""

    MEAN = "mean"  # per-position mean over the corrupted prompts (the paper)
    RESAMPLE = "resample"  # each prompt's own corrupted activations
    ZERO = "zero"


class Direction(str, Enum):
    """Which run the circuit is patched into."""

    NOISING = "noising"  # clean run; what is not in the circuit gets ablated values
    DENOISING = "denoising"  # corrupted run; the circuit gets the clean run's values


class NodeOrder(str, Enum):
    """The order node pruning tries heads and MLPs in."""

    BACKWARD = "backward"  # layer last to first: MLP L, then heads L.0 .. L.n (the paper)
    FORWARD = "forward"  # layer first to last: heads L.0 .. L.n, then MLP L
    BACKWARD_FORWARD = "backward_forward"  # alternate sweeps until one removes nothing
    RANDOM = "random"  # one sweep in a seeded random order


class EdgeOrder(str, Enum):
    """The order edge pruning visits edges in."""

    CANONICAL = "canonical"  # receivers in reverse canonical order, latest senders first
    ACDC = "acdc"  # the ACDC reference implementation's order


class Level(str, Enum):
    """Granularity of a circuit: whole nodes, or sender -> receiver edges."""

    NODE = "node"
    EDGE = "edge"


class On(str, Enum):
    """What overlaps and set comparisons count (``on=``)."""

    NODES = "nodes"  # heads and MLPs
    EDGES = "edges"  # sender -> receiver edges
    BOTH = "both"  # each in turn (tables only)


class Method(str, Enum):
    """A discovery method (the ``method`` of a circuit's metadata)."""

    NODES = "nodes"  # prune_nodes
    EDGES = "edges"  # prune_edges (ACDC)
    ATTRIBUTION = "attribution"  # attribute_edges (EAP, EAP-IG)


class Engine(str, Enum):
    """The implementation of edge pruning (the same decisions either way)."""

    FAST = "fast"  # incremental, speculative batches
    REFERENCE = "reference"  # one full masked forward pass per tested edge (the oracle)


class Estimator(str, Enum):
    """How attribution patching estimates an edge's effect."""

    EAP = "eap"  # gradients at the full circuit
    EAP_IG = "eap_ig"  # gradients averaged along the path from the ablated circuit


class Sampling(str, Enum):
    """How stability draws its prompt sets."""

    BOOTSTRAP = "bootstrap"  # resamples of the task's distinct prompts
    SEEDS = "seeds"  # fresh prompt sets drawn with other seeds


def parse_enum(enum: type[E], value: str | Enum, what: str | None = None) -> E:
    """``enum(value)`` (a member passes through) with an error that lists the allowed values.

    >>> parse_enum(Direction, "sideways")
    Traceback (most recent call last):
    ...
    ValueError: unknown direction 'sideways'; choose one of 'noising', 'denoising'
    """
    try:
        return enum(value)
    except ValueError:
        allowed = ", ".join(repr(member.value) for member in enum)
        what = what or enum.__name__.lower()
        raise ValueError(f"unknown {what} {value!r}; choose one of {allowed}") from None


def values(enum: type[Enum], exclude: tuple[Enum, ...] = ()) -> tuple[str, ...]:
    """The string values of ``enum``'s members but ``exclude``, in order (for ``choices=``).

    >>> values(Metric, exclude=(Metric.KL, Metric.L2))
    ('logit_diff', 'accuracy', 'prob_diff')
    """
    return tuple(member.value for member in enum if member not in exclude)
