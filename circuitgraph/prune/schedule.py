"""The order in which edge pruning visits edges, and where each edge lives in the masks.

Receivers are visited in reverse topological order: descending canonical node order
(``logits``, then layer by layer from the last: the MLP, then the attention inputs with the
highest head/group index first; later positions first). For each receiver its senders are
tried from the latest to ``embed``. Both the reference and the fast implementation follow
this one schedule, so they take the same decisions.
"""

from __future__ import annotations

from dataclasses import dataclass

from circuitgraph.layout import QKV, EdgeMasks, Layout
from circuitgraph.nodes import node_sort_key

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
class Step:
    """One receiver and its candidate edges, in the order they are tried."""

    receiver: Receiver
    senders: tuple[str, ...]
    sender_indices: tuple[int, ...]


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


def edge_schedule(circuit, layout: Layout) -> list[Step]:
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


def set_edge(
    masks: EdgeMasks,
    receiver: Receiver,
    senders: list[int],
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
