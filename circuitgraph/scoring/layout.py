"""Dense tensor layout of a model's circuit graph: which index each sender and receiver has.

Senders (things that write to the residual stream) are ordered as the model computes them:
``embed``, then for each layer its heads ``a{L}.0 .. a{L}.{H-1}`` and its MLP ``m{L}``.
Receivers of layer L are per-query-head slots: H query inputs, then H key inputs, then H value
inputs (with grouped-query attention a key/value *group* edge fills the slots of every query
head in the group), and the MLP input; ``logits`` reads every sender. With parallel attention
and MLP (GPT-NeoX / Pythia) the MLP of layer L reads the same residual as its attention, so
not the heads of layer L.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from circuitgraph.circuit.nodes import QKV, CircuitConfig

__all__ = ["QKV", "EdgeMasks", "Layout", "NodeMasks"]


@dataclass(frozen=True)
class Layout:
    """Index arithmetic for senders and receivers of one model shape."""

    n_layers: int
    n_heads: int
    n_kv_heads: int
    parallel: bool = False  # attention and MLP of a layer read the same residual

    @classmethod
    def from_config(cls, cfg) -> Layout:
        """The layout of a model config or a ``CircuitConfig`` (the shape read by
        :meth:`CircuitConfig.from_model <circuitgraph.circuit.nodes.CircuitConfig.from_model>`)."""
        shape = CircuitConfig.from_model(cfg)
        kv_heads = shape.n_key_value_heads or shape.n_heads
        return cls(shape.n_layers, shape.n_heads, kv_heads, shape.parallel)

    @property
    def n_senders(self) -> int:
        return 1 + self.n_layers * (self.n_heads + 1)

    def head_index(self, layer: int, head: int) -> int:
        return 1 + layer * (self.n_heads + 1) + head

    def mlp_index(self, layer: int) -> int:
        return 1 + layer * (self.n_heads + 1) + self.n_heads

    def senders_before_attention(self, layer: int) -> int:
        """Number of senders whose output the attention of ``layer`` can read."""
        return 1 + layer * (self.n_heads + 1)

    def senders_before_mlp(self, layer: int) -> int:
        """Number of senders whose output the MLP of ``layer`` can read."""
        before = self.senders_before_attention(layer)
        return before if self.parallel else before + self.n_heads

    def mlp_bias_index(self, layer: int) -> int:
        """How many layers' attention output biases the MLP of ``layer`` reads."""
        return layer if self.parallel else layer + 1

    def sender_index(self, kind: str, layer: int, head: int | None) -> int:
        if kind == "embed":
            return 0
        if kind == "head":
            assert head is not None, "a head sender needs its head index"
            return self.head_index(layer, head)
        if kind == "mlp":
            return self.mlp_index(layer)
        raise ValueError(f"node kind {kind!r} does not write to the residual stream")

    def sender_names(self) -> list[str]:
        names = ["embed"]
        for layer in range(self.n_layers):
            names += [f"a{layer}.{h}" for h in range(self.n_heads)] + [f"m{layer}"]
        return names

    def heads_of_group(self, group: int) -> range:
        size = self.n_heads // self.n_kv_heads
        return range(group * size, (group + 1) * size)


@dataclass
class NodeMasks:
    """Which sender outputs are live: present [variants, positions, senders] in {0, 1}.

    ``positions`` is 1 (every position alike) or the prompt length.
    """

    present: Tensor

    @property
    def n_variants(self) -> int:
        return self.present.shape[0]


@dataclass
class EdgeMasks:
    """Which sender -> receiver edges are live, per layer.

    attention[L]: [variants, positions, senders_before_attention(L), 3 * n_heads] (q, k, v slots)
    mlp[L]:       [variants, positions, senders_before_mlp(L)]
    logits:       [variants, positions, n_senders]
    """

    attention: list[Tensor]
    mlp: list[Tensor]
    logits: Tensor

    @property
    def n_variants(self) -> int:
        return self.logits.shape[0]

    @classmethod
    def full(
        cls,
        layout: Layout,
        n_variants: int = 1,
        n_positions: int = 1,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> EdgeMasks:
        V, P, L, kw = n_variants, n_positions, layout, {"device": device, "dtype": dtype}
        return cls(
            attention=[
                torch.ones(V, P, L.senders_before_attention(i), 3 * L.n_heads, **kw)
                for i in range(L.n_layers)
            ],
            mlp=[torch.ones(V, P, L.senders_before_mlp(i), **kw) for i in range(L.n_layers)],
            logits=torch.ones(V, P, L.n_senders, **kw),
        )

    def complement(self) -> EdgeMasks:
        return EdgeMasks(
            [1 - m for m in self.attention], [1 - m for m in self.mlp], 1 - self.logits
        )
