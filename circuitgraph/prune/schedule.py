"""The order in which edge pruning visits edges, and where each edge lives in the masks.

Two orders (both implementations of edge pruning follow the same schedule, so they take the
same decisions):

- ``canonical`` (:func:`edge_schedule`): receivers in descending canonical node order
  (``logits``, then layer by layer from the last: the MLP, then the attention inputs with the
  highest head/group index first; later positions first); each receiver's senders from the
  latest to ``embed``. Only sender -> receiver edges are tested.
- ``acdc`` (:func:`acdc_schedule`): the visit order of the ACDC reference implementation
  (ArthurConmy/Automatic-Circuit-Discovery, ``TLACDCExperiment``), including its Q/K/V
  *direct* edges (a head's input -> the head) and its rule of removing, without a test, the
  incoming edges of receivers that nothing reads any more (see :class:`Guard`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from circuitgraph.circuit.nodes import (
    Node,
    NodeKind,
    edge_sort_key,
    logits_name,
    mlp_name,
    node_sort_key,
)
from circuitgraph.scoring.layout import QKV, EdgeMasks, Layout

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Circuit

Edge = tuple[str, str]


@dataclass(frozen=True)
class Receiver:
    """A receiver node and the mask entries its incoming edges switch."""

    name: str
    kind: str  # "logits" | "mlp" | "attention"
    layer: int
    slots: tuple[int, ...]  # attention slots (q: 0..H-1, k: H.., v: 2H..); empty otherwise
    pos: int | None  # token position of a positional circuit, else None


@dataclass(frozen=True)
class Guard:
    """ACDC's rule for skipping a receiver nothing reads: its edges are tested only if one of
    ``outputs`` still has an outgoing edge, or one of ``edges`` is still present (a head's
    input matters only while its direct edge is there). Otherwise they go without a test."""

    outputs: tuple[str, ...] = ()
    edges: tuple[Edge, ...] = ()


@dataclass(frozen=True)
class DirectEdge:
    """A head input's direct edge(s) ``input -> head``: removing it empties the input's mask
    column, so the head reads only ablated values there. Under grouped-query attention a
    key/value group input has one direct edge per query head of its group; they are one
    candidate, as the group's keys and values are computed once."""

    input: Receiver
    edges: tuple[Edge, ...]
    guard: Guard


@dataclass(frozen=True)
class Step:
    """One receiver and its candidate edges, in the order they are tried.

    An addition step tests ``sender -> receiver`` for each of ``senders`` (mask rows
    ``sender_indices``), all under ``guard``. A direct step (``direct`` set, ``senders`` the
    input names) tests the direct edges of one layer's inputs, each under its own guard;
    ``receiver`` then stands for the layer's attention (its kind and layer).
    """

    receiver: Receiver
    senders: tuple[str, ...]
    sender_indices: tuple[int, ...]
    direct: tuple[DirectEdge, ...] = ()
    guard: Guard | None = None

    def edges_of(self, candidate: int) -> tuple[Edge, ...]:
        """The circuit edges that candidate ``candidate`` removes."""
        if self.direct:
            return self.direct[candidate].edges
        return ((self.senders[candidate], self.receiver.name),)

    def guard_of(self, candidate: int) -> Guard | None:
        """The guard of one candidate (addition steps: checked once for the whole step)."""
        return self.direct[candidate].guard if self.direct else None

    def switch_off(self, masks: EdgeMasks, candidates: list[int], variant: int) -> None:
        """Remove ``candidates`` in variant ``variant`` of ``masks`` (in place)."""
        if self.direct:
            for candidate in candidates:
                set_edge(masks, self.direct[candidate].input, slice(None), 0.0, variant)
        else:
            rows = [self.sender_indices[c] for c in candidates]
            set_edge(masks, self.receiver, rows, 0.0, variant)


def receiver_of(name: str, attrs: dict, layout: Layout) -> Receiver:
    """Describe receiver node ``name`` (attributes as stored on circuit nodes)."""
    kind, layer, pos = attrs["kind"], attrs["layer"], attrs.get("pos")
    if kind == "logits":
        return Receiver(name, "logits", layer, (), pos)
    if kind == "mlp":
        return Receiver(name, "mlp", layer, (), pos)
    H = layout.n_heads
    if kind == "head":  # no Q/K/V split: the edge feeds all three inputs
        slots = tuple(offset * H + attrs["head"] for offset in range(3))
    else:
        offset = QKV.index(attrs["qkv"]) * H
        heads = (
            [attrs["head"]]
            if attrs.get("head") is not None
            else layout.heads_of_group(attrs["group"])
        )
        slots = tuple(offset + h for h in heads)
    return Receiver(name, "attention", layer, slots, pos)


def sender_index(attrs: dict, layout: Layout) -> int:
    return layout.sender_index(attrs["kind"], attrs["layer"], attrs.get("head"))


def edge_schedule(circuit: Circuit, layout: Layout) -> list[Step]:
    """Every sender -> receiver edge of ``circuit``, grouped by receiver, in pruning order."""
    incoming: dict[str, list[str]] = {}
    for sender, receiver in circuit.sender_receiver_edges():
        incoming.setdefault(receiver, []).append(sender)
    steps = []
    for receiver in sorted(incoming, key=node_sort_key, reverse=True):
        senders = sorted(incoming[receiver], key=node_sort_key, reverse=True)
        steps.append(
            Step(
                receiver_of(receiver, circuit.nodes[receiver], layout),
                tuple(senders),
                tuple(sender_index(circuit.nodes[s], layout) for s in senders),
            )
        )
    return steps


def _acdc_sender_key(name: str) -> tuple[int, ...]:
    """ACDC's sender order: later layers first, within a layer the MLP then heads ascending,
    ``embed`` last."""
    node = Node.parse(name)
    if node.kind == NodeKind.EMBED:
        return (1, 0, 0, 0)
    assert node.layer is not None  # heads and MLPs have a layer
    return (0, -node.layer, int(node.kind == NodeKind.HEAD), node.head or 0)


def _acdc_inputs(config, layer: int) -> list[str]:
    """Attention receivers of ``layer`` in ACDC's order: all V inputs (highest head or group
    first), then K, then Q; the heads themselves (highest first) without the Q/K/V split."""
    heads = range(config.n_heads - 1, -1, -1)
    if not config.qkv:
        return [f"a{layer}.{h}" for h in heads]
    names: list[str] = []
    for letter in ("v", "k", "q"):
        for head in heads:
            name = config.input_name(layer, head, letter)
            if name not in names:
                names.append(name)
    return names


def acdc_schedule(circuit: Circuit, layout: Layout) -> list[Step]:
    """The ACDC reference's visit order over ``circuit``'s edges (position-free circuits).

    ``logits``; then for each layer from the last: the MLP, the direct edges of the layer's
    inputs, then the inputs' incoming edges (inputs in :func:`_acdc_inputs` order, senders in
    :func:`_acdc_sender_key` order). Guards: an MLP (or, without the Q/K/V split, a head) is
    visited only while it has an outgoing edge; a direct edge only while its head has one; an
    input only while its direct edge is present.
    """
    config = circuit.config
    if config.positions is not None:
        raise ValueError(
            "order='acdc' follows the ACDC reference, which has no token positions; "
            "use a position-free circuit or the default order"
        )
    nodes = circuit.nodes
    incoming: dict[str, list[str]] = {}
    for sender, receiver in circuit.sender_receiver_edges():
        incoming.setdefault(receiver, []).append(sender)
    internal: dict[str, list[Edge]] = {}
    for u, v in circuit.edges:
        if nodes[u]["kind"] == NodeKind.QKV:
            internal.setdefault(u, []).append((u, v))
    steps: list[Step] = []

    def addition(receiver: str, guard: Guard | None) -> None:
        if receiver not in incoming:
            return
        senders = sorted(incoming[receiver], key=_acdc_sender_key)
        steps.append(
            Step(
                receiver_of(receiver, nodes[receiver], layout),
                tuple(senders),
                tuple(sender_index(nodes[s], layout) for s in senders),
                guard=guard,
            )
        )

    addition(logits_name(), None)
    for layer in reversed(range(config.n_layers)):
        mlp = mlp_name(layer)
        addition(mlp, Guard(outputs=(mlp,)))
        inputs = _acdc_inputs(config, layer)
        if not config.qkv:
            for head in inputs:
                addition(head, Guard(outputs=(head,)))
            continue
        direct = []
        for name in inputs:
            edges = tuple(sorted(internal.get(name, ()), key=edge_sort_key))
            if edges:
                guard = Guard(outputs=tuple(head for _, head in edges))
                direct.append(DirectEdge(receiver_of(name, nodes[name], layout), edges, guard))
        if direct:
            layer_attention = Receiver(f"a{layer}", "attention", layer, (), None)
            names = tuple(d.input.name for d in direct)
            steps.append(Step(layer_attention, names, (), direct=tuple(direct)))
        for name in inputs:
            addition(name, Guard(edges=tuple(internal.get(name, ()))))
    return steps


def set_edge(
    masks: EdgeMasks,
    receiver: Receiver,
    senders: list[int] | slice,
    value: float,
    variant: int | slice = slice(None),
) -> None:
    """Switch edges ``senders -> receiver`` on (1) or off (0) in ``masks`` (in place)."""
    pos = slice(None) if receiver.pos is None else receiver.pos
    if receiver.kind == "logits":
        masks.logits[variant, pos, senders] = value
    elif receiver.kind == "mlp":
        masks.mlp[receiver.layer][variant, pos, senders] = value
    else:
        mask = masks.attention[receiver.layer]
        for slot in receiver.slots:
            mask[variant, pos, senders, slot] = value
