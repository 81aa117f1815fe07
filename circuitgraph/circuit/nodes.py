"""Canonical node names and the circuit configuration (the full graph: ``structure``).

Node names are the single source of truth shared by the graph, the JSON files, the diagrams and
the tensor indices of the patching code:

======================  =====================  ===========================================
node                    name                   attributes
======================  =====================  ===========================================
token + pos. embedding  ``embed``              kind="embed", layer=-1
attention head output   ``a{L}.{H}``           kind="head", layer, head
query input of a head   ``a{L}.{H}.q``         kind="qkv", layer, head, qkv="q"
key / value input       ``a{L}.{H}.k`` / ``v`` kind="qkv", layer, head, qkv (no GQA)
key / value input, GQA  ``a{L}.g{G}.k`` / ``v`` kind="qkv", layer, group=G, qkv (head=None)
MLP                     ``m{L}``               kind="mlp", layer
unembedding             ``logits``             kind="logits", layer=n_layers
======================  =====================  ===========================================

Any node may carry a token position suffix ``@P`` (attribute ``pos=P``). Under grouped-query
attention (``n_key_value_heads < n_heads``) the query heads ``h`` with
``h // (n_heads // n_key_value_heads) == G`` share the key/value head ``G``, so their K and V
inputs are the single nodes ``a{L}.g{G}.k`` and ``a{L}.g{G}.v``. Every node carries all six
attributes; those that do not apply are ``None`` (``group`` is only set on GQA key/value nodes).

Edges run from a sender output (``embed``, heads, MLPs) to every later receiver input in the
residual stream: q/k/v input nodes (with the Q/K/V split) or head nodes (without), MLPs and
``logits``. Heads of layer L feed ``m{L}`` but not each other. A head's internal edges
(``a9.1.q -> a9.1``, ``a9.g0.k -> a9.1``) belong to the graph but are not sender-to-receiver
edges. With positions, residual edges join nodes at the same position only and the internal
edges are ``a.q@p -> a@p``, ``a.k@p -> a@p``, ``a.v@p -> a@p``: a simplification, since the key
and value at ``p`` are also read by the queries of later positions.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from typing import Any, cast

NODE_ATTRIBUTES = ("kind", "layer", "head", "group", "qkv", "pos")
QKV = ("q", "k", "v")

_NAME = re.compile(
    r"^(?:(?P<embed>embed)|(?P<logits>logits)|m(?P<mlp>\d+)"
    r"|a(?P<layer>\d+)\.(?:(?P<head>\d+)(?:\.(?P<hqkv>[qkv]))?|g(?P<group>\d+)\.(?P<gqkv>[kv])))"
    r"(?:@(?P<pos>\d+))?$"
)


class NodeKind(str, Enum):
    """What a node stands for; the value is the ``kind`` attribute stored on graph nodes."""

    EMBED = "embed"
    HEAD = "head"
    QKV = "qkv"
    MLP = "mlp"
    LOGITS = "logits"


def _at(name: str, pos: int | None) -> str:
    return name if pos is None else f"{name}@{pos}"


def embed_name(pos: int | None = None) -> str:
    """``embed`` or ``embed@P``."""
    return _at("embed", pos)


def logits_name(pos: int | None = None) -> str:
    """``logits`` or ``logits@P``."""
    return _at("logits", pos)


def head_name(layer: int, head: int, pos: int | None = None) -> str:
    """Output of one attention head, e.g. ``head_name(9, 1) == "a9.1"``."""
    return _at(f"a{layer}.{head}", pos)


def mlp_name(layer: int, pos: int | None = None) -> str:
    """Output of one MLP, e.g. ``mlp_name(2, 5) == "m2@5"``."""
    return _at(f"m{layer}", pos)


def input_name(layer: int, head: int, qkv: str, pos: int | None = None) -> str:
    """Per-head q/k/v input, e.g. ``input_name(9, 1, "q") == "a9.1.q"`` (no GQA for k/v)."""
    return _at(f"a{layer}.{head}.{qkv}", pos)


def group_input_name(layer: int, group: int, qkv: str, pos: int | None = None) -> str:
    """Shared k/v input of GQA key/value head ``group``, e.g. ``a3.g0.k``."""
    return _at(f"a{layer}.g{group}.{qkv}", pos)


@dataclass(frozen=True, slots=True)
class Node:
    """A parsed node name; ``Node.parse(name).name == name`` for every canonical name."""

    kind: NodeKind
    layer: int | None
    head: int | None = None
    group: int | None = None
    qkv: str | None = None
    pos: int | None = None

    @property
    def name(self) -> str:
        """The canonical string name."""
        # Set where the kind needs them: a layer (all but embed and logits), a head (heads and
        # per-head inputs), a q/k/v (inputs).
        layer, head, qkv = cast(int, self.layer), cast(int, self.head), cast(str, self.qkv)
        match self.kind:
            case NodeKind.EMBED:
                return embed_name(self.pos)
            case NodeKind.LOGITS:
                return logits_name(self.pos)
            case NodeKind.MLP:
                return mlp_name(layer, self.pos)
            case NodeKind.HEAD:
                return head_name(layer, head, self.pos)
        if self.group is not None:
            return group_input_name(layer, self.group, qkv, self.pos)
        return input_name(layer, head, qkv, self.pos)

    def attrs(self) -> dict[str, Any]:
        """The node attributes stored on the graph (plain JSON-friendly values)."""
        values = dataclasses.asdict(self)
        values["kind"] = self.kind.value
        return values

    @classmethod
    def parse(cls, name: str, n_layers: int | None = None) -> Node:
        """Parse a canonical name; ``logits`` gets ``layer=n_layers`` (None if not given).

        >>> Node.parse("a3.g1.k@2")
        Node(kind=<NodeKind.QKV: 'qkv'>, layer=3, head=None, group=1, qkv='k', pos=2)
        """
        match = _NAME.match(name) if isinstance(name, str) else None
        if match is None:
            raise ValueError(f"not a node name: {name!r}")
        g = {key: value for key, value in match.groupdict().items() if value is not None}
        pos = int(g["pos"]) if "pos" in g else None
        if "embed" in g:
            node = cls(NodeKind.EMBED, -1, pos=pos)
        elif "logits" in g:
            node = cls(NodeKind.LOGITS, n_layers, pos=pos)
        elif "mlp" in g:
            node = cls(NodeKind.MLP, int(g["mlp"]), pos=pos)
        elif "group" in g:
            node = cls(NodeKind.QKV, int(g["layer"]), group=int(g["group"]), qkv=g["gqkv"], pos=pos)
        elif "hqkv" in g:
            node = cls(NodeKind.QKV, int(g["layer"]), head=int(g["head"]), qkv=g["hqkv"], pos=pos)
        else:
            node = cls(NodeKind.HEAD, int(g["layer"]), head=int(g["head"]), pos=pos)
        if node.name != name:
            raise ValueError(f"not a canonical node name: {name!r} (did you mean {node.name!r}?)")
        return node


def parse_node(name: str, n_layers: int | None = None) -> Node:
    """Parse a node name (syntax only; see ``CircuitConfig`` for validity in a model)."""
    return Node.parse(name, n_layers)


@lru_cache(maxsize=1 << 18)
def node_sort_key(name: str) -> tuple[int, ...]:
    """Sort key giving the canonical order: by layer, inputs before heads before the MLP."""
    node = Node.parse(name)
    layer = {NodeKind.EMBED: -1, NodeKind.LOGITS: 1 << 30}.get(node.kind, node.layer)
    assert layer is not None  # parsed names of every other kind have a layer
    kind_rank = {NodeKind.QKV: 0, NodeKind.HEAD: 1, NodeKind.MLP: 2}.get(node.kind, 0)
    grouped = int(node.group is not None)
    index = node.head if node.head is not None else (node.group or 0)
    qkv_rank = QKV.index(node.qkv) if node.qkv else 0
    pos = -1 if node.pos is None else node.pos
    return (layer, kind_rank, grouped, index, qkv_rank, pos)


def edge_sort_key(edge: tuple[str, str]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Canonical order of edges: by sender, then receiver."""
    return (node_sort_key(edge[0]), node_sort_key(edge[1]))


@dataclass(frozen=True)
class CircuitConfig:
    """The model signature and graph options that fix the node and edge sets of a circuit.

    ``n_key_value_heads`` equal to ``n_heads`` is stored as None (no GQA). ``positions`` is a
    sorted tuple of distinct token positions, or None for position-free nodes.
    """

    model_name: str
    n_layers: int
    n_heads: int
    n_key_value_heads: int | None = None
    qkv: bool = True
    positions: tuple[int, ...] | None = None
    parallel: bool = False  # attention and MLP of a layer read the same residual (GPT-NeoX)

    def __post_init__(self) -> None:
        if self.n_layers < 0 or self.n_heads < 1:
            raise ValueError(f"need n_layers >= 0 and n_heads >= 1, got {self}")
        kv = self.n_key_value_heads
        if kv is not None and (kv < 1 or self.n_heads % kv):
            raise ValueError(f"n_key_value_heads={kv} must divide n_heads={self.n_heads}")
        if kv == self.n_heads:
            object.__setattr__(self, "n_key_value_heads", None)
        if self.positions is not None:
            positions = tuple(sorted({int(p) for p in self.positions}))
            if not positions or positions[0] < 0:
                raise ValueError(f"positions must be non-empty and >= 0, got {self.positions}")
            object.__setattr__(self, "positions", positions)

    @classmethod
    def from_model(
        cls, cfg: Any, qkv: bool | None = None, positions: Iterable[int] | None = None
    ) -> CircuitConfig:
        """The one reader of a model's shape: build from a TransformerLens-style config
        (``n_layers``, ``n_heads``, optional ``n_key_value_heads``, ``parallel_attn_mlp`` and
        ``model_name``) or return a CircuitConfig with overrides. The scoring layer's
        ``Layout``, masks and ``ComponentModel`` read the shape through it.

        ``qkv=None`` means True for a model config and "unchanged" for a CircuitConfig.
        """
        pos = None if positions is None else tuple(positions)
        if isinstance(cfg, CircuitConfig):
            changes = {"qkv": qkv} if qkv is not None else {}
            return dataclasses.replace(cfg, **changes, **({"positions": pos} if pos else {}))
        name = getattr(cfg, "model_name", None)
        return cls(
            model_name=name if isinstance(name, str) and name else "unknown",
            n_layers=int(cfg.n_layers),
            n_heads=int(cfg.n_heads),
            n_key_value_heads=getattr(cfg, "n_key_value_heads", None),
            qkv=True if qkv is None else bool(qkv),
            positions=pos,
            parallel=bool(getattr(cfg, "parallel_attn_mlp", False)),
        )

    from_model_config = from_model  # the name before CircuitConfig.from_model

    @property
    def signature(self) -> tuple[str, int, int, int | None, bool]:
        """(model_name, n_layers, n_heads, n_key_value_heads, parallel): circuits must agree."""
        return (self.model_name, self.n_layers, self.n_heads, self.n_key_value_heads, self.parallel)

    def describe(self) -> str:
        """Human-readable model signature for error messages."""
        kv = f", {self.n_key_value_heads} KV heads" if self.n_key_value_heads else ""
        parallel = ", parallel attention/MLP" if self.parallel else ""
        return f"{self.model_name!r} ({self.n_layers} layers, {self.n_heads} heads{kv}{parallel})"

    @property
    def gqa(self) -> bool:
        """True when query heads share key/value heads (K/V nodes are per group)."""
        return self.n_key_value_heads is not None

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 without GQA)."""
        return self.n_heads // (self.n_key_value_heads or self.n_heads)

    def group_of(self, head: int) -> int:
        """The key/value head read by query head ``head``."""
        return head // self.group_size

    def heads_of_group(self, group: int) -> range:
        """Query heads that read key/value head ``group``."""
        return range(group * self.group_size, (group + 1) * self.group_size)

    def input_name(self, layer: int, head: int, qkv: str, pos: int | None = None) -> str:
        """The q/k/v input node that query head ``head`` reads (a group node for GQA k/v)."""
        if qkv != "q" and self.gqa:
            return group_input_name(layer, self.group_of(head), qkv, pos)
        return input_name(layer, head, qkv, pos)

    def example_names(self) -> str:
        """A short description of valid names, for error messages."""
        kv = "a0.g0.k, a0.g0.v" if self.gqa else "a0.0.k, a0.0.v"
        names = f"embed, a0.0, a0.0.q, {kv}, m0, logits" if self.qkv else "embed, a0.0, m0, logits"
        last = f"layers 0..{self.n_layers - 1}, heads 0..{self.n_heads - 1}"
        pos = f"; suffix @P for P in {list(self.positions)}" if self.positions else ""
        return f"{names} ({last}{pos})"

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (positions as a list)."""
        data = dataclasses.asdict(self)
        data["positions"] = None if self.positions is None else list(self.positions)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CircuitConfig:
        """Inverse of ``to_dict``; raises ValueError on missing or unknown keys."""
        fields = {f.name for f in dataclasses.fields(cls)}
        if not isinstance(data, Mapping):
            raise ValueError(f"config must be an object, got {type(data).__name__}")
        data = {"parallel": False, **data}  # files written before parallel blocks existed
        missing = sorted(fields - set(data))
        unknown = sorted(set(data) - fields)
        if missing or unknown:
            raise ValueError(f"config has missing keys {missing} / unknown keys {unknown}")
        kinds = {"model_name": (str,), "n_layers": (int,), "n_heads": (int,)}
        kinds |= {"n_key_value_heads": (int, type(None)), "qkv": (bool,), "parallel": (bool,)}
        for key, allowed in kinds.items():
            value = data[key]
            if not isinstance(value, allowed) or (isinstance(value, bool) and bool not in allowed):
                names = " or ".join("null" if t is type(None) else t.__name__ for t in allowed)
                raise ValueError(f"config field {key!r} must be {names}, got {value!r}")
        positions = data["positions"]
        if positions is not None and (
            not isinstance(positions, list)
            or not all(isinstance(p, int) and not isinstance(p, bool) for p in positions)
        ):
            raise ValueError(
                f"config field 'positions' must be a list of integers or null, got {positions!r}"
            )
        positions = data["positions"]
        return cls(**{**data, "positions": None if positions is None else tuple(positions)})
