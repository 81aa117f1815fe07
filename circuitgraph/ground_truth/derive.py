"""The ground truth of a compiled tracr model, derived from the compiler's graph: which
residual directions each block writes and reads (tracr's craft model), and the same from the
assembled weights' sparsity as a cross-check. Used by :mod:`circuitgraph.ground_truth.generate`
(with tracr); the functions on weights need numpy only.
"""

# pyright: reportMissingImports=false
from __future__ import annotations

from typing import Any

import numpy as np


def _directions(space: Any, residual: Any) -> set[int]:
    return {residual.basis.index(d) for d in space.basis}


def _used(space: Any, matrix: Any, residual: Any) -> set[int]:
    """The directions of ``space`` whose row of ``matrix`` (rows: ``space``'s basis) is
    nonzero: the part of a declared space a craft block really reads (or, transposed, writes)."""
    rows = np.flatnonzero(np.abs(np.asarray(matrix)).sum(axis=1))
    return {residual.basis.index(space.basis[int(i)]) for i in rows}


def blocks_by_layer(compiled: dict[str, Any]) -> list[dict[str, Any]]:
    """One entry per craft block: kind, layer, the residual directions each part reads and
    writes, and the RASP labels it computes."""
    from tracr.compiler import assemble
    from tracr.craft import bases, transformers

    craft, residual, labels = compiled["craft"], compiled["residual"], compiled["labels"]
    _, module_names = assemble._get_model_config_and_module_names(craft)
    found = []
    for module_name, block in zip(module_names, craft.blocks, strict=True):
        layer = int(module_name.split("_")[1].split("/")[0])
        if isinstance(block, transformers.MLP):
            written = _directions(block.snd.output_space, residual)
            parts = [
                labels[id(b)]
                for b in _mlp_parts(compiled)
                if bases.VectorSpaceWithBasis(b.snd.output_space.basis).issubspace(
                    block.snd.output_space
                )
            ]
            found.append({
                "kind": "mlp", "layer": layer, "node": f"m{layer}",
                "reads": _used(block.fst.input_space, block.fst.matrix, residual),
                "writes": _used(block.snd.output_space, block.snd.matrix.T, residual),
                "declared_reads": _directions(block.fst.input_space, residual),
                "declared_writes": written, "rasp": sorted(set(parts)),
            })  # fmt: skip
            continue
        for h, head in enumerate(block.as_multi().heads()):
            found.append({
                "kind": "head", "layer": layer, "head": h, "node": f"a{layer}.{h}",
                "q": _used(head.w_qk.left_space, head.w_qk.matrix, residual),
                "k": _used(head.w_qk.right_space, head.w_qk.matrix.T, residual),
                "v": _used(head.w_ov.input_space, head.w_ov.matrix, residual),
                "writes": _used(head.w_ov.output_space, head.w_ov.matrix.T, residual),
                "declared_q": _directions(head.w_qk.left_space, residual),
                "declared_k": _directions(head.w_qk.right_space, residual),
                "declared_v": _directions(head.w_ov.input_space, residual),
                "declared_writes": _directions(head.w_ov.output_space, residual),
                "rasp": [labels.get(id(head), "?")],
            })  # fmt: skip
    return found


def _mlp_parts(compiled: dict[str, Any]) -> list[Any]:
    from tracr.compiler import nodes
    from tracr.craft import transformers

    parts = []
    for node in compiled["graph"].nodes.values():
        block = node.get(nodes.MODEL_BLOCK)
        for part in getattr(block, "blocks", [block]) if block is not None else ():
            if isinstance(part, transformers.MLP):
                parts.append(part)
    return parts


def _order(node: str) -> tuple[int, int]:
    """Residual-stream order of a sender or receiver node (embed first, logits last)."""
    if node == "embed":
        return (-1, 0)
    if node == "logits":
        return (1 << 20, 0)
    if node.startswith("m"):
        return (int(node[1:]), 2)
    return (int(node[1:].split(".")[0]), 1)


def derive_edges(
    senders: dict[str, set[int]], receivers: dict[str, set[int]]
) -> list[tuple[str, str]]:
    """Sender -> receiver-input edges where a written direction is read, plus the internal
    ``aL.H.x -> aL.H`` edges of inputs that receive any edge. ``senders``: node -> written
    directions; ``receivers``: input node (``aL.H.q``, ``mL``, ``logits``) -> read directions.
    A head's inputs come before its output and after every earlier layer's blocks; heads of
    one layer feed that layer's MLP.

    >>> derive_edges({"embed": {0}, "a0.0": {1}}, {"a0.0.q": {0}, "a0.0.k": set(), "logits": {1}})
    [('embed', 'a0.0.q'), ('a0.0.q', 'a0.0'), ('a0.0', 'logits')]
    """
    edges = []
    for receiver, reads in receivers.items():
        head_input = receiver.count(".") == 2
        at = _order(receiver.rsplit(".", 1)[0]) if head_input else _order(receiver)
        incoming = [
            (sender, receiver)
            for sender, writes in senders.items()
            if writes & reads and (_order(sender) < at if not head_input else
                                   _order(sender)[0] < at[0])
        ]  # fmt: skip
        edges += incoming
        if head_input and incoming:
            edges.append((receiver, receiver.rsplit(".", 1)[0]))
    return edges


def space_io(
    compiled: dict[str, Any], declared: bool = False
) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
    """(senders, receivers) read off the craft model: the directions of each block's spaces
    that its craft matrices use (a row or column not all zero), or with ``declared`` the
    spaces' whole bases."""
    pre = "declared_" if declared else ""
    residual = compiled["residual"]
    embed = _directions(compiled["tokens_space"], residual) | _directions(
        compiled["indices_space"], residual
    )
    if "one" in [d.name for d in residual.basis]:
        embed.add([d.name for d in residual.basis].index("one"))
    senders: dict[str, set[int]] = {"embed": embed}
    receivers: dict[str, set[int]] = {}
    for block in blocks_by_layer(compiled):
        senders[block["node"]] = block[f"{pre}writes"]
        if block["kind"] == "mlp":
            receivers[block["node"]] = block[f"{pre}reads"]
        else:
            for x in "qkv":
                receivers[f"{block['node']}.{x}"] = block[f"{pre}{x}"]
    receivers["logits"] = _directions(compiled["output_space"], residual)
    return senders, receivers


def _nonzero_rows(matrix: np.ndarray) -> set[int]:
    return {int(i) for i in np.flatnonzero(np.abs(matrix).sum(axis=1))}


def weight_io(
    weights: dict[str, np.ndarray], effective: bool
) -> tuple[dict[str, set[int]], dict[str, set[int]]]:
    """(senders, receivers) read off the weights' sparsity: what each block writes (nonzero
    columns of W_E and W_pos, W_O, W_out) and reads (nonzero rows of W_Q, W_K, W_V, W_in, W_U).
    ``effective``: read the heads through their circuits instead: the query reads the nonzero
    rows of W_Q W_K^T, the key its nonzero columns, the value the nonzero rows of W_V W_O and
    the head writes that product's nonzero columns. Heads and MLPs whose weights are all zero
    are left out."""
    senders = {"embed": _nonzero_rows(weights["W_E"].T) | _nonzero_rows(weights["W_pos"].T)}
    receivers: dict[str, set[int]] = {}
    n_layers, n_heads = weights["W_Q"].shape[:2]
    for layer in range(n_layers):
        for h in range(n_heads):
            q, k = weights["W_Q"][layer, h], weights["W_K"][layer, h]
            v, o = weights["W_V"][layer, h], weights["W_O"][layer, h]
            if effective:
                qk, ov = q @ k.T, v @ o
                reads = {"q": _nonzero_rows(qk), "k": _nonzero_rows(qk.T), "v": _nonzero_rows(ov)}
                writes = _nonzero_rows(ov.T)
            else:
                reads = {"q": _nonzero_rows(q), "k": _nonzero_rows(k), "v": _nonzero_rows(v)}
                writes = _nonzero_rows(o.T)
            if not (writes or any(reads.values())):
                continue
            senders[f"a{layer}.{h}"] = writes
            for x in "qkv":
                receivers[f"a{layer}.{h}.{x}"] = reads[x]
        w_in, w_out = weights["W_in"][layer], weights["W_out"][layer]
        if np.any(w_in) or np.any(w_out):
            senders[f"m{layer}"] = _nonzero_rows(w_out.T)
            receivers[f"m{layer}"] = _nonzero_rows(w_in)
    receivers["logits"] = _nonzero_rows(weights["W_U"])
    return senders, receivers


def weight_edges(weights: dict[str, np.ndarray], effective: bool) -> list[tuple[str, str]]:
    """The truth derived from the weights' sparsity alone (see :func:`weight_io`)."""
    return derive_edges(*weight_io(weights, effective))
