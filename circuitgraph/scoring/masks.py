"""Turn a :class:`~circuitgraph.circuit.graph.Circuit` into the dense masks the forward pass reads.

Node attributes (kind, layer, head, group, qkv, pos) are the only thing read, so the naming
lives in one place (``circuit.graph``). Positions: a positional circuit (config.positions
set) masks each listed position separately; positions it does not list stay as in the model.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, overload

import networkx as nx
import torch

from circuitgraph.circuit.nodes import QKV, CircuitConfig
from circuitgraph.scoring.layout import EdgeMasks, Layout, NodeMasks

if TYPE_CHECKING:
    from circuitgraph.circuit.graph import Circuit

SENDER_KINDS = ("embed", "head", "mlp")


def check_same_model(circuit: Circuit, model_cfg) -> None:
    """Raise ValueError when ``circuit`` was not built for the model ``model_cfg`` describes:
    same name and the same shape (layers, heads, key/value heads). A circuit found on one
    model says nothing about another of the same shape, so the name must match too."""
    config = circuit.config
    ours = dataclasses.astuple(Layout.from_config(config))
    theirs = dataclasses.astuple(Layout.from_config(model_cfg))
    name = CircuitConfig.from_model(model_cfg).model_name  # "unknown": the model has no name
    if ours != theirs or name not in ("unknown", config.model_name):
        raise ValueError(
            f"circuit is for model {config.model_name!r} (layers, heads, kv heads, parallel = "
            f"{ours}) but this model is {name or '?'!r} with {theirs}: use a circuit found on "
            "this model (circuits are built from model.cfg, e.g. cg.full_circuit(model.cfg))"
        )


def _position_slots(circuit: Circuit, seq_len: int) -> tuple[int, list[int] | None]:
    """(mask position count, listed positions or None) for a circuit."""
    positions = circuit.config.positions
    if positions is None:
        return 1, None
    bad = [p for p in positions if not 0 <= p < seq_len]
    if bad:
        raise ValueError(f"circuit positions {bad} are outside prompts of length {seq_len}")
    return seq_len, list(positions)


def _node_position(attrs: dict, listed: list[int] | None) -> slice | int:
    return slice(None) if listed is None else attrs["pos"]


def node_masks(
    circuit: Circuit,
    layout: Layout,
    seq_len: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> NodeMasks:
    """Masks of a node-level circuit: a head or MLP not in the circuit outputs its fixed value."""
    n_positions, listed = _position_slots(circuit, seq_len)
    present = torch.ones(1, n_positions, layout.n_senders, device=device, dtype=dtype)
    if listed is None:
        present[:, :, 1:] = 0
    else:
        present[:, listed, 1:] = 0  # embed is always present
    for _, attrs in circuit.nodes(data=True):
        if attrs["kind"] in ("head", "mlp"):
            index = layout.sender_index(attrs["kind"], attrs["layer"], attrs.get("head"))
            present[:, _node_position(attrs, listed), index] = 1
    return NodeMasks(present)


def _receiver_slots(attrs: dict, layout: Layout) -> list[int]:
    """Attention slots (q: 0..H-1, k: H..2H-1, v: 2H..3H-1) that a receiver node feeds."""
    H = layout.n_heads
    if attrs["kind"] == "head":  # no Q/K/V split: the edge feeds all three inputs of the head
        return [offset * H + attrs["head"] for offset in range(3)]
    offset = QKV.index(attrs["qkv"]) * H
    if attrs.get("head") is not None:
        return [offset + attrs["head"]]
    return [offset + h for h in layout.heads_of_group(attrs["group"])]


def edge_masks(
    circuit: Circuit,
    layout: Layout,
    seq_len: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> EdgeMasks:
    """Masks of an edge-level circuit: exactly its sender -> receiver edges are live.

    A node with no path from ``embed`` computes nothing live: its edges count as absent, so it
    contributes its fixed (ablated) value, exactly as after ``prune_dangling()``; this makes
    dangling-node removal change no score. With Q/K/V split, a head whose internal edge
    (``a.q -> a``, ``a.k -> a``, ...) is missing reads only fixed values on that input. In
    positional circuits the key/value input at a position is read by every later query, so
    there the incoming edges of the Q/K/V input nodes alone decide what each head reads.
    """
    n_positions, listed = _position_slots(circuit, seq_len)
    masks = EdgeMasks.full(layout, 1, n_positions, device, dtype)
    for mask in (*masks.attention, *masks.mlp, masks.logits):
        if listed is None:
            mask.zero_()
        else:
            mask[:, listed] = 0
    nodes = circuit.nodes
    live = live_nodes(circuit)
    internal: set[tuple] = set()
    for sender, receiver in circuit.edges():
        if sender not in live:
            continue
        s, r = nodes[sender], nodes[receiver]
        pos = _node_position(r, listed)
        if s["kind"] == "qkv":  # head-internal edge
            internal.add((r["layer"], r["head"], s["qkv"], r.get("pos")))
            continue
        index = layout.sender_index(s["kind"], s["layer"], s.get("head"))
        if r["kind"] == "logits":
            masks.logits[:, pos, index] = 1
        elif r["kind"] == "mlp":
            masks.mlp[r["layer"]][:, pos, index] = 1
        else:
            masks.attention[r["layer"]][:, pos, index, _receiver_slots(r, layout)] = 1
    if circuit.config.qkv and listed is None:
        H = layout.n_heads
        for layer, mask in enumerate(masks.attention):
            for head in range(H):
                for offset, letter in enumerate(QKV):
                    if (layer, head, letter, None) not in internal:
                        mask[:, :, :, offset * H + head] = 0
    return masks


def live_nodes(circuit: Circuit) -> set[str]:
    """Nodes reachable from an embedding node along the circuit's edges (embeds included)."""
    embeds = [n for n, kind in circuit.nodes(data="kind") if kind == "embed"]
    reached = set(embeds)
    for embed in embeds:
        reached |= nx.descendants(circuit, embed)
    return reached


def circuit_masks(
    circuit: Circuit,
    layout: Layout,
    seq_len: int,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> NodeMasks | EdgeMasks:
    """Node masks for node-level circuits, edge masks otherwise (on ``device``, in ``dtype``)."""
    if circuit.level == "node":
        return node_masks(circuit, layout, seq_len, device, dtype)
    return edge_masks(circuit, layout, seq_len, device, dtype)


@overload
def select_variants(masks: NodeMasks, rows: slice) -> NodeMasks: ...
@overload
def select_variants(masks: EdgeMasks, rows: slice) -> EdgeMasks: ...
def select_variants(masks: NodeMasks | EdgeMasks, rows: slice) -> NodeMasks | EdgeMasks:
    """The circuits ``rows`` of a batch of masks."""
    if isinstance(masks, NodeMasks):
        return NodeMasks(masks.present[rows])
    return EdgeMasks(
        [m[rows] for m in masks.attention], [m[rows] for m in masks.mlp], masks.logits[rows]
    )


@overload
def complement_masks(masks: NodeMasks) -> NodeMasks: ...
@overload
def complement_masks(masks: EdgeMasks) -> EdgeMasks: ...
def complement_masks(masks: NodeMasks | EdgeMasks) -> NodeMasks | EdgeMasks:
    """Masks for the denoising direction: what the circuit holds takes the fixed (clean)
    values, everything else runs live on the corrupted prompt."""
    if isinstance(masks, NodeMasks):
        present = 1 - masks.present
        present[:, :, 0] = 1 - present[:, :, 0]  # embed: the run's own embedding stays live
        return NodeMasks(present)
    return masks.complement()
