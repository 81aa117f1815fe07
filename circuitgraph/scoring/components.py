"""A functional view of a TransformerLens model, one circuit component at a time.

Circuit evaluation needs what a plain forward pass hides: each head's output on its own, each
head's query/key/value computed from *its own* input, and the MLP and unembedding applied to
inputs we assemble. :class:`ComponentModel` reads the weights of a ``TransformerBridge``
(``W_Q``, ``W_K``, ``W_V``, ``W_O`` in TransformerLens layout) and calls the model's own norm
and MLP modules, so numerics follow the model. Supported: pre-norm blocks (LayerNorm or
RMSNorm), sequential or parallel attention and MLP (GPT-NeoX / Pythia), learned absolute or
rotary positions (full or partial rotary), query/key norms (Qwen3), grouped-query attention,
plain or gated MLPs, causal or bidirectional attention (``cfg.attention_dir``: compiled tracr
models and encoders, where a change at a later position reaches earlier ones).
Parity with the model's own logits is a test (tests/test_scorer.py). Gradients flow through
these functions (attribution patching needs them); callers that only evaluate wrap them in
``torch.no_grad()``.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Protocol, cast

import torch
from torch import Tensor

from circuitgraph.scoring.layout import Layout

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model

UNEMBED_CHUNK = 1024  # vocabulary columns per matmul in ComponentModel.unembed
ATTENTION_DIRECTIONS = ("causal", "bidirectional")  # the cfg.attention_dir values we model


class _PostNorm(Protocol):
    """A post-attention RMSNorm (Gemma-2) as :class:`ComponentModel` uses it."""

    eps: float

    def __call__(self, x: Tensor, /) -> Tensor: ...


def _original(module: torch.nn.Module) -> torch.nn.Module:
    """The wrapped Hugging Face module of a bridge component (skips hook overhead)."""
    return getattr(module, "_original_component", None) or module


def _optional_weight(
    model: torch.nn.Module, name: str, shape: tuple[int, ...], like: Tensor
) -> Tensor:
    """A bias of the model, or zeros (on ``like``'s device and dtype) where it has none."""
    try:
        value = getattr(model, name)
    except AttributeError:
        value = None
    if value is None:
        return torch.zeros(shape, device=like.device, dtype=like.dtype)
    return value.detach()


def _rotate_half(x: Tensor) -> Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def check_supported(model: Model) -> None:
    """NotImplementedError naming what circuitgraph cannot decompose in ``model``."""
    block, missing = model.blocks[0], []
    direction = getattr(model.cfg, "attention_dir", "causal")
    if direction not in ATTENTION_DIRECTIONS:
        missing.append(f"attention_dir={direction!r} (only 'causal' or 'bidirectional')")
    post_norm = hasattr(block, "ln1_post")
    if post_norm and _optional_weight(model, "b_O", (1,), model.W_O).abs().max() > 0:
        missing.append("an attention output bias inside the post-attention norm")
    if post_norm and "RMSNorm" not in type(_original(block.ln1_post)).__name__:
        missing.append("a post-attention norm other than RMSNorm")
    if missing:
        name = getattr(model.cfg, "model_name", "this model")
        raise NotImplementedError(
            f"{name!r} is not supported: circuitgraph does not model {'; '.join(missing)}. "
            "Supported: GPT-2, Llama/SmolLM2, Qwen2, Qwen3, Mistral, Phi-3, GPT-NeoX/Pythia "
            "and Gemma-2 blocks"
        )


def _hf_config(model: Model) -> Any:
    return getattr(getattr(model, "original_model", None), "config", None)


def _apply_rotary(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """Rotate the first cos.shape[-1] dimensions of x [..., d_head] (partial rotary as in
    GPT-NeoX / Pythia leaves the rest as it is)."""
    rot = cos.shape[-1]
    if rot == x.shape[-1]:
        return x * cos + _rotate_half(x) * sin
    part, rest = x[..., :rot], x[..., rot:]
    return torch.cat((part * cos + _rotate_half(part) * sin, rest), dim=-1)


class ComponentModel:
    """Embedding, per-head attention, MLPs and unembedding of a bridge as separate functions."""

    def __init__(self, model: Model) -> None:
        cfg = model.cfg
        check_supported(model)
        devices = sorted({str(p.device) for p in model.parameters()})
        if len(devices) > 1:  # e.g. a device_map split; stacking W_Q etc. needs one device
            raise ValueError(
                f"the model's weights are spread over {', '.join(devices)} (a device_map split?): "
                "circuitgraph needs the whole model on one device; load it with "
                "cg.load_model(name, device=...) or a device_map onto one device"
            )
        self.model = model
        shape = Layout.from_config(cfg)  # the model's shape, read by CircuitConfig.from_model
        self.parallel: bool = shape.parallel
        self.n_layers: int = shape.n_layers
        self.n_heads: int = shape.n_heads
        self.d_model: int = cfg.d_model
        self.d_head: int = cfg.d_head
        self.n_kv_heads: int = shape.n_kv_heads
        L, H, G, d, dh = self.n_layers, self.n_heads, self.n_kv_heads, self.d_model, self.d_head
        with torch.no_grad():
            self.W_Q = model.W_Q.detach()  # [L, H, d_model, d_head]
            self.W_K = model.W_K.detach()  # [L, G, d_model, d_head]
            self.W_V = model.W_V.detach()  # [L, G, d_model, d_head]
            self.W_O = model.W_O.detach()  # [L, H, d_head, d_model]
            like = self.W_Q
            self.b_Q = _optional_weight(model, "b_Q", (L, H, dh), like)
            self.b_K = _optional_weight(model, "b_K", (L, G, dh), like)
            self.b_V = _optional_weight(model, "b_V", (L, G, dh), like)
            self.b_O = _optional_weight(model, "b_O", (L, d), like)  # [L, d_model]
            self.W_U = model.W_U.detach()  # [d_model, vocab]
            self.b_U = _optional_weight(model, "b_U", (self.W_U.shape[1],), like)
        self.device: torch.device = self.W_Q.device  # every tensor made here goes there
        self.dtype: torch.dtype = self.W_Q.dtype  # and has the weights' dtype
        self.rotary = getattr(cfg, "positional_embedding_type", "") == "rotary"
        # Bidirectional attention (tracr, encoders): every query sees every key, so a change
        # at any position reaches every other one (no causal mask, no causal shortcuts).
        self.causal: bool = getattr(cfg, "attention_dir", "causal") == "causal"
        blocks = model.blocks
        attention = [_original(block.attn) for block in blocks]
        # Score scale (Gemma-2: query_pre_attn_scalar ** -0.5), soft cap and sliding window of
        # each layer, as the model's own attention modules hold them.
        self.scale = [getattr(a, "scaling", None) or 1.0 / math.sqrt(dh) for a in attention]
        self.softcap = [getattr(a, "attn_logit_softcapping", None) for a in attention]
        self.window = [getattr(a, "sliding_window", None) for a in attention]
        # Gemma-2 soft-caps the logits (its embedding module scales by sqrt(d_model) itself).
        self.final_softcap = getattr(_hf_config(model), "final_logit_softcapping", None)
        # Norms after the attention and MLP outputs (Gemma-2). The MLP's sits inside the MLP
        # node. The attention's normalises the sum of the heads; each head writes its own
        # output times that norm's RMS scale, frozen at the run's own full forward pass (see
        # head_outputs), so heads stay separate and additive.
        self.attn_post_norm: list[_PostNorm | None] = [
            cast(_PostNorm, _original(block.ln1_post)) if hasattr(block, "ln1_post") else None
            for block in blocks
        ]
        self.mlp_post_norm = [
            _original(block.ln2_post) if hasattr(block, "ln2_post") else None for block in blocks
        ]
        # each post-attention norm's gain [d_model], read once (head_outputs is a hot path)
        self.post_norm_gain = {
            layer: self._gain(layer)
            for layer, norm in enumerate(self.attn_post_norm)
            if norm is not None
        }
        self.frozen_scales: dict[int, Tensor] | None = None  # layer -> [n, pos, 1]
        self.recorded_scales: dict[int, Tensor] = {}  # of the last full forward pass
        # Per-head RMS norms of queries and keys (Qwen3, OLMo-2 style), applied before rotary.
        self.q_norm = [getattr(_original(block.attn), "q_norm", None) for block in blocks]
        self.k_norm = [getattr(_original(block.attn), "k_norm", None) for block in blocks]
        self.ln1 = [_original(block.ln1) for block in blocks]
        self.ln2 = [_original(block.ln2) for block in blocks]
        self.mlps = [_original(block.mlp) for block in blocks]
        self.ln_final = _original(model.ln_final)

    @property
    def layout(self) -> Layout:
        """Sender and receiver indices of this model's circuit graph."""
        return Layout(self.n_layers, self.n_heads, self.n_kv_heads, self.parallel)

    @property
    def group_size(self) -> int:
        """Query heads per key/value head (1 without grouped-query attention)."""
        return self.n_heads // self.n_kv_heads

    def embed(self, tokens: Tensor) -> Tensor:
        """tokens [batch, pos] -> token (+ learned position) embedding [batch, pos, d_model]."""
        out = self.model.embed(tokens)
        if hasattr(self.model, "pos_embed") and not self.rotary:
            positions = torch.arange(tokens.shape[1], device=tokens.device)
            out = out + _original(self.model.pos_embed)(positions)[None]
        return out

    def _rotary(self, seq_len: int, like: Tensor) -> tuple[Tensor, Tensor]:
        positions = torch.arange(seq_len, device=like.device)[None]
        cos, sin = _original(self.model.rotary_emb)(like, positions)  # [1, pos, d_head] each
        return cos[0], sin[0]

    def attention(
        self,
        layer: int,
        q_in: Tensor,
        k_in: Tensor | None,
        v_in: Tensor | None,
        heads: list[int] | None = None,
        kv_slots: list[int] | None = None,
        kv_prefix: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        """Per-head attention from per-head residual inputs; returns z [batch, pos, H, d_head].

        q_in: [batch, pos, H, d_model]. k_in, v_in: [batch, pos, R, d_model] with R = H (one
        key/value input per query head) or R = n_kv_heads (one per key/value group).
        A shared input for every head may be passed as q_in [batch, pos, d_model] (k_in and
        v_in are then ignored). With ``heads`` only those query heads are computed (H and R
        are then len(heads): one key/value input per listed head, or, with ``kv_slots``, the
        key/value input slot each listed head reads, when heads of one group share one: its
        keys and values are then computed once). q_in may hold only the last positions of the
        prompt (z then has those positions). ``kv_prefix``: the keys and values of the
        leading positions, [batch, pre, R, d_head] each, from :meth:`key_values` (k_in and
        v_in then hold only the positions after them).
        """
        ln = self.ln1[layer]
        if q_in.dim() == 3:  # one shared input (node-level circuits): normalise once
            normed = ln(q_in)  # [batch, pos, d_model]
            q = torch.einsum("bpd,hde->bphe", normed, self.W_Q[layer]) + self.b_Q[layer]
            k = torch.einsum("bpd,gde->bpge", normed, self.W_K[layer]) + self.b_K[layer]
            v = torch.einsum("bpd,gde->bpge", normed, self.W_V[layer]) + self.b_V[layer]
            return self._attend(layer, *self._norm_qk(layer, q, k), v)
        query_heads = self._query_heads(heads, q_in.device)
        if len(query_heads) != q_in.shape[2]:
            raise ValueError(f"{len(query_heads)} heads listed for {q_in.shape[2]} query inputs")
        W_Q, b_Q = self.W_Q[layer][query_heads], self.b_Q[layer][query_heads]
        q = torch.einsum("bphd,hde->bphe", ln(q_in), W_Q) + b_Q
        q_norm = self.q_norm[layer]
        q = q if q_norm is None else q_norm(q)
        assert k_in is not None and v_in is not None, "per-head queries need k_in and v_in"
        k, v = self.key_values(layer, k_in, v_in, heads, kv_slots)
        if kv_prefix is not None:
            k, v = torch.cat([kv_prefix[0], k], dim=1), torch.cat([kv_prefix[1], v], dim=1)
        if kv_slots is not None:  # one key/value per listed head, [batch, pos, H, d_head]
            slots = torch.tensor(kv_slots, device=q_in.device)
            k, v = k[:, :, slots], v[:, :, slots]
        return self._attend(layer, q, k, v)

    def _query_heads(self, heads: list[int] | None, device: torch.device) -> Tensor:
        if heads is None:
            return torch.arange(self.n_heads, device=device)
        return torch.tensor(heads, device=device)

    def key_values(
        self,
        layer: int,
        k_in: Tensor,
        v_in: Tensor,
        heads: list[int] | None = None,
        kv_slots: list[int] | None = None,
    ) -> tuple[Tensor, Tensor]:
        """Keys and values [batch, pos, R, d_head] each (key norm applied, no rotation) of the
        key/value inputs [batch, pos, R, d_model] that :meth:`attention` takes for ``heads``
        and ``kv_slots``."""
        query_heads = self._query_heads(heads, k_in.device)
        H, R = len(query_heads), k_in.shape[2]
        if kv_slots is not None:
            if heads is None or len(kv_slots) != H or sorted(set(kv_slots)) != list(range(R)):
                raise ValueError(f"kv_slots {kv_slots} do not map {H} listed heads to {R} slots")
            # Key/value slot r uses the key/value head of the first listed head that reads it.
            first_reader = [kv_slots.index(r) for r in range(R)]
            kv_index = query_heads[first_reader] // self.group_size
        elif R == H:
            kv_index = query_heads // self.group_size
        elif heads is None and self.n_kv_heads == R:
            kv_index = torch.arange(R, device=k_in.device)
        else:
            raise ValueError(f"attention inputs have {H} query and {R} key/value slots")
        ln = self.ln1[layer]
        W_K, W_V = self.W_K[layer][kv_index], self.W_V[layer][kv_index]  # [R, d_model, d_head]
        k = torch.einsum("bprd,rde->bpre", ln(k_in), W_K) + self.b_K[layer][kv_index]
        v = torch.einsum("bprd,rde->bpre", ln(v_in), W_V) + self.b_V[layer][kv_index]
        k_norm = self.k_norm[layer]
        return (k if k_norm is None else k_norm(k)), v

    def _norm_qk(self, layer: int, q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        """Apply the layer's query/key norms (over d_head) where the model has them."""
        q_norm, k_norm = self.q_norm[layer], self.k_norm[layer]
        return (q if q_norm is None else q_norm(q)), (k if k_norm is None else k_norm(k))

    def _attend(self, layer: int, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """q [batch, q_pos, H, d_head]; k, v [batch, pos, R, d_head] -> z [batch, q_pos, H, d_head].

        The queries are the last q_pos positions (all of them, or e.g. only the last one).
        """
        q_len, seq, H, R = q.shape[1], k.shape[1], q.shape[2], k.shape[2]
        if self.rotary:
            cos, sin = self._rotary(seq, q)  # [pos, rotary_dim]: all of d_head, or a part
            cos, sin = cos[:, None, :], sin[:, None, :]
            q = _apply_rotary(q, cos[-q_len:], sin[-q_len:])
            k = _apply_rotary(k, cos, sin)
        if R != H:  # grouped slots: every query head reads its group's key/value
            k = k.repeat_interleave(self.group_size, dim=2)
            v = v.repeat_interleave(self.group_size, dim=2)
        scores = torch.einsum("bqhe,bkhe->bhqk", q, k) * self.scale[layer]  # [b, H, q, pos]
        cap = self.softcap[layer]
        if cap:
            scores = torch.tanh(scores / cap) * cap
        if self.causal:
            visible = torch.ones(q_len, seq, dtype=torch.bool, device=q.device).tril(seq - q_len)
            window = self.window[layer]
            if window is not None:  # sliding window: only the last `window` keys are visible
                visible &= ~torch.ones_like(visible).tril(seq - q_len - window)
            scores = scores.masked_fill(~visible, float("-inf"))
        pattern = scores.softmax(dim=-1)
        return torch.einsum("bhqk,bkhe->bqhe", pattern, v)

    def head_outputs(self, layer: int, z: Tensor, heads: list[int] | None = None) -> Tensor:
        """z [batch, pos, H, d_head] -> each head's write to the residual [batch, pos, H, d_model].

        With ``heads``, z holds only those heads (in that order).
        """
        W_O = self.W_O[layer] if heads is None else self.W_O[layer][heads]
        out = torch.einsum("bphe,hed->bphd", z, W_O)
        norm = self.attn_post_norm[layer]
        if norm is None:
            return out
        if self.frozen_scales is None:  # a full forward pass: the norm of the heads' own sum
            if out.shape[2] != self.n_heads:
                raise ValueError("a full pass through a post-attention norm needs every head")
            total = out.sum(dim=2).float()  # [batch, pos, d_model]
            scale = torch.rsqrt(total.pow(2).mean(dim=-1, keepdim=True) + norm.eps)
            self.recorded_scales[layer] = scale  # [batch, pos, 1]
        else:  # a circuit: the scale of the run's full pass; z is [V * n, q, ...]
            frozen = self.frozen_scales[layer]  # [n, pos, 1]
            scale = frozen[:, -out.shape[1] :].repeat(out.shape[0] // frozen.shape[0], 1, 1)
        return (out.float() * scale[:, :, None] * self.post_norm_gain[layer]).to(out.dtype)

    def _gain(self, layer: int) -> Tensor:
        """The post-attention RMSNorm's gain [d_model], read off the module itself:
        norm(ones) = rsqrt(1 + eps) * gain, whatever its convention (Gemma: 1 + weight)."""
        norm = self.attn_post_norm[layer]
        assert norm is not None, "only layers with a post-attention norm have a gain"
        ones = torch.ones(1, 1, self.d_model, device=self.device, dtype=self.dtype)
        with torch.no_grad():
            return norm(ones)[0, 0].float() * math.sqrt(1 + norm.eps)

    def mlp(self, layer: int, resid: Tensor) -> Tensor:
        """MLP output [..., d_model] for residual input [..., d_model] (norms applied here:
        the one before, and Gemma-2's after, which sits inside the MLP node)."""
        out = self.mlps[layer](self.ln2[layer](resid))
        post = self.mlp_post_norm[layer]
        return out if post is None else post(out)

    def unembed(self, resid: Tensor, token_ids: Tensor | None = None) -> Tensor:
        """Final norm + unembedding of resid [batch, d_model].

        With ``token_ids`` [batch, k] only those logits are computed ([batch, k]); otherwise all.
        """
        normed = self.ln_final(resid[:, None, :])[:, 0, :]  # norm expects a position axis
        if token_ids is not None:
            columns = self.W_U.T[token_ids]  # [batch, k, d_model]
            return self._cap(torch.einsum("bd,bkd->bk", normed, columns) + self.b_U[token_ids])
        if normed.requires_grad:  # autograd (attribution patching): one differentiable matmul
            return self._cap(torch.addmm(self.b_U, normed, self.W_U))
        # Without autograd, fill the [batch, vocab] logits a slice of the vocabulary at a time:
        # each slice stays in cache, which makes this ~1.5x faster on CPU, with equal results.
        logits = torch.empty(
            normed.shape[0], self.W_U.shape[1], device=normed.device, dtype=normed.dtype
        )
        for start in range(0, self.W_U.shape[1], UNEMBED_CHUNK):
            cols = slice(start, start + UNEMBED_CHUNK)
            torch.addmm(self.b_U[cols], normed, self.W_U[:, cols], out=logits[:, cols])
        return self._cap(logits)

    def _cap(self, logits: Tensor) -> Tensor:
        """Gemma-2's logit soft cap: cap * tanh(logits / cap) (identity for other models)."""
        cap = self.final_softcap
        return logits if not cap else torch.tanh(logits / cap) * cap
