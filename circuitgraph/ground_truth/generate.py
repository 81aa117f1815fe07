"""Compile the suite's RASP programs with tracr and write ``circuitgraph/data/tracr/``.

Run from the repository root with the Python that has tracr (not circuitgraph's venv)::

    /work/tracr-venv/bin/python -m circuitgraph.ground_truth.generate [NAME ...]

Needs only tracr (jax, haiku), numpy and the standard library. For each program it writes
``<name>.npz`` (the weights in TransformerLens layout, float32, and tracr's outputs on every
stored input) and ``<name>.json`` (config, vocabularies, data, metric, ground truth).

The ground truth is derived from the compiler's graph, never from running a discovery method:
tracr's craft model says which residual directions each block writes (a head: its OV output
space; an MLP: its second layer's output space; the embeddings: the token, index and ``one``
directions) and which it reads (a head's query: ``w_qk.left_space``, key:
``w_qk.right_space``, value: ``w_ov.input_space``; an MLP: its first layer's input space; the
logits: the output space). An edge joins a sender to a later receiver input whose read space
shares a direction with the sender's write space; each head in the truth gets its internal
edges from those of its q/k/v inputs that have an incoming edge. Blocks tracr leaves empty
(layers without an attention or MLP block, heads beyond a layer's own) are not in the truth.
The derivation (:mod:`circuitgraph.ground_truth.derive`) is cross-checked against the sparsity
of the assembled weights (:func:`~circuitgraph.ground_truth.derive.weight_edges`).
"""

# pyright: reportMissingImports=false
# (tracr and jax are only installed where the data are generated: pip install .[tracr])
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from circuitgraph.ground_truth.derive import blocks_by_layer, derive_edges, space_io, weight_edges
from circuitgraph.ground_truth.programs import BOS, BY_NAME, PROGRAMS, Program, acdc_edges

OUT_DIR = Path(__file__).resolve().parent.parent / "data" / "tracr"
SEED = 0
MLP_EXACTNESS = 100  # tracr's default, as ACDC compiles
FORMAT_VERSION = 1


def compile_program(program: Program) -> dict[str, Any]:
    """compile_rasp_to_model's steps, keeping the craft model, graph and spaces."""
    from tracr.compiler import (
        basis_inference,
        craft_graph_to_model,
        craft_model_to_transformer,
        expr_to_craft_graph,
        lib,  # noqa: F401 (its module-level SOps take their ids first)
        rasp_to_graph,
        validating,
    )
    from tracr.compiler.compiling import COMPILER_PAD
    from tracr.craft import bases
    from tracr.rasp import rasp

    rasp.RASPExpr._ids = itertools.count(1)  # labels independent of what was built before
    sop = program.build()
    unsupported = validating.static_validate(sop)
    if unsupported:
        raise NotImplementedError(f"{program.name}: {[u.reason for u in unsupported]}")
    extracted = rasp_to_graph.extract_rasp_graph(sop)
    graph, sources, sink = extracted.graph, extracted.sources, extracted.sink
    basis_inference.infer_bases(graph, sink, set(program.vocab), program.max_seq_len)
    expr_to_craft_graph.add_craft_components_to_rasp_graph(
        graph, bos_dir=bases.BasisDirection(rasp.tokens.label, BOS), mlp_exactness=MLP_EXACTNESS
    )
    craft_model = craft_graph_to_model.craft_graph_to_model(graph, sources)
    assembled = craft_model_to_transformer.craft_model_to_transformer(
        craft_model=craft_model, graph=graph, sink=sink, max_seq_len=program.max_seq_len,
        causal=program.causal, compiler_bos=BOS, compiler_pad=COMPILER_PAD,
    )  # fmt: skip
    from tracr.compiler import nodes

    tokens_space = bases.VectorSpaceWithBasis.from_values(
        rasp.tokens.label, graph.nodes[rasp.tokens.label][nodes.VALUE_SET] | {BOS, COMPILER_PAD}
    )
    indices_space = bases.VectorSpaceWithBasis.from_values(
        rasp.indices.label, range(program.max_seq_len)
    )
    output_space = bases.VectorSpaceWithBasis(sink[nodes.OUTPUT_BASIS])
    residual = bases.join_vector_spaces(
        craft_model.residual_space, tokens_space, indices_space, output_space
    )
    assert [str(d) for d in residual.basis] == assembled.residual_labels
    labels = {}  # id(block) -> RASP label, for the blocks each node made
    for node in graph.nodes.values():
        block = node.get(nodes.MODEL_BLOCK)
        if block is None:
            continue
        parts = getattr(block, "blocks", [block])  # SelectorWidth: attention then MLP
        for part in parts:
            labels[id(part)] = node[nodes.EXPR].label
            for head in part.as_multi().heads() if hasattr(part, "as_multi") else ():
                labels[id(head)] = node[nodes.EXPR].label
    return {
        "sop": sop, "graph": graph, "sink": sink, "craft": craft_model, "model": assembled,
        "tokens_space": tokens_space, "indices_space": indices_space,
        "output_space": output_space, "residual": residual, "labels": labels,
        "categorical": rasp.is_categorical(sink[nodes.EXPR]),
    }  # fmt: skip


def to_transformer_lens(compiled: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict]:
    """The assembled weights in TransformerLens layout (as ACDC's
    ``get_tracr_model_input_and_tl_model``, but W_U is tracr's own residual -> output
    projection) and the TransformerLens config."""
    from tracr.craft import vectorspace_fns

    model = compiled["model"]
    params = {k: {p: np.asarray(v, dtype=np.float32) for p, v in d.items()}
              for k, d in model.params.items()}  # fmt: skip
    config = model.model_config
    n_layers, n_heads, d_head = config.num_layers, config.num_heads, config.key_size
    d_model = params["token_embed"]["embeddings"].shape[1]
    w_u = vectorspace_fns.project(compiled["residual"], compiled["output_space"]).matrix
    w = {
        "W_E": params["token_embed"]["embeddings"],
        "W_pos": params["pos_embed"]["embeddings"],
        "W_U": np.asarray(w_u, dtype=np.float32),
    }

    def heads_in(x: np.ndarray) -> np.ndarray:  # d_model (n_heads d_head) -> n_heads d_model d_head
        return x.reshape(d_model, n_heads, d_head).transpose(1, 0, 2)

    stacks: dict[str, list[np.ndarray]] = {}
    for layer in range(n_layers):
        attn, mlp = f"transformer/layer_{layer}/attn", f"transformer/layer_{layer}/mlp"
        for letter, name in (("Q", "query"), ("K", "key"), ("V", "value")):
            stacks.setdefault(f"W_{letter}", []).append(heads_in(params[f"{attn}/{name}"]["w"]))
            stacks.setdefault(f"b_{letter}", []).append(
                params[f"{attn}/{name}"]["b"].reshape(n_heads, d_head)
            )
        stacks.setdefault("W_O", []).append(
            params[f"{attn}/linear"]["w"].reshape(n_heads, d_head, d_model)
        )
        stacks.setdefault("b_O", []).append(params[f"{attn}/linear"]["b"])
        stacks.setdefault("W_in", []).append(params[f"{mlp}/linear_1"]["w"])
        stacks.setdefault("b_in", []).append(params[f"{mlp}/linear_1"]["b"])
        stacks.setdefault("W_out", []).append(params[f"{mlp}/linear_2"]["w"])
        stacks.setdefault("b_out", []).append(params[f"{mlp}/linear_2"]["b"])
    w |= {k: np.stack(v).astype(np.float32) for k, v in stacks.items()}
    cfg = {
        "n_layers": n_layers, "d_model": d_model, "d_head": d_head, "n_heads": n_heads,
        "d_mlp": config.mlp_hidden_size, "d_vocab": w["W_E"].shape[0],
        "d_vocab_out": w["W_U"].shape[1], "n_ctx": w["W_pos"].shape[0], "act_fn": "relu",
        "attention_dir": "causal" if config.causal else "bidirectional",
        "normalization_type": None, "positional_embedding_type": "standard",
    }  # fmt: skip
    return w, cfg


def tracr_outputs(compiled: dict[str, Any], ids: list[list[int]]) -> dict[str, np.ndarray]:
    """tracr's forward pass on token-id rows: the output before tracr's argmax (the final
    residual times the residual -> output projection, as tracr's unembed computes it) and
    tracr's own unembedded output (argmax ids, or the numeric value)."""
    import jax.numpy as jnp
    from tracr.craft import vectorspace_fns

    model = compiled["model"]
    out = model.forward(model.params, jnp.array(ids))
    res_to_out = vectorspace_fns.project(compiled["residual"], compiled["output_space"]).matrix
    logits = np.asarray(out.transformer_output.output @ jnp.asarray(res_to_out), np.float32)
    return {"logits": logits, "unembedded": np.asarray(out.unembedded_output)}


def _json_value(value: Any) -> Any:
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def make_data(
    program: Program, compiled: dict[str, Any], rng: np.random.Generator
) -> tuple[list[list[int]], list[list[int]]]:
    """Clean and corrupted token-id rows: ACDC's recipe for its tasks; otherwise every input
    (or a seeded sample of ``n_max``) after BOS, each corrupted by another stored input whose
    outputs differ at some position after BOS."""
    encoding = compiled["model"].input_encoder.encoding_map
    if program.data is not None:
        return program.data(encoding, rng)
    length = program.length or program.max_seq_len
    pool = (
        program.inputs()
        if program.inputs
        else list(itertools.product(sorted(program.vocab, key=str), repeat=length))
    )
    rows = [[encoding[BOS], *(encoding[t] for t in seq)] for seq in pool]
    decoded = tracr_outputs(compiled, rows)["unembedded"][:, 1:]
    if len(rows) > program.n_max:  # a seeded sample, stratified by tracr's output
        groups: dict[bytes, list[int]] = {}
        for i, out in enumerate(decoded):
            groups.setdefault(np.asarray(out).tobytes(), []).append(i)
        queues = [list(rng.permutation(groups[key])) for key in sorted(groups)]
        picked: list[int] = []
        while len(picked) < program.n_max:
            for queue in queues:
                if queue and len(picked) < program.n_max:
                    picked.append(int(queue.pop()))
        picked.sort()
        rows, decoded = [rows[i] for i in picked], decoded[picked]
    corrupted = []
    for i in range(len(rows)):
        choices = [j for j in range(len(rows)) if not np.array_equal(decoded[j], decoded[i])]
        if not choices:
            raise ValueError(f"{program.name}: every input gives the same output")
        corrupted.append(rows[int(rng.choice(choices))])
    return rows, corrupted


def generate(program: Program, out_dir: Path = OUT_DIR) -> dict[str, Any]:
    """Compile ``program`` and write its ``.npz`` and ``.json``; returns the JSON record."""
    rng = np.random.default_rng(SEED)
    compiled = compile_program(program)
    weights, cfg = to_transformer_lens(compiled)
    clean, corrupted = make_data(program, compiled, rng)
    outputs = {f"tracr_{k}_{which}": v
               for which, rows in (("clean", clean), ("corrupted", corrupted))
               for k, v in tracr_outputs(compiled, rows).items()}  # fmt: skip

    senders, receivers = space_io(compiled)
    truth = derive_edges(senders, receivers)
    declared = derive_edges(*space_io(compiled, declared=True))
    coarse = weight_edges(weights, effective=False)
    effective = weight_edges(weights, effective=True)
    residual_labels = compiled["model"].residual_labels
    blocks = blocks_by_layer(compiled)
    for name, dirs in receivers.items():  # every direction a block reads is written earlier
        unwritten = dirs - set().union(*(senders[u] for u, v in truth if v == name))
        assert not unwritten, (program.name, name, [residual_labels[i] for i in unwritten])

    model = compiled["model"]
    encoder = model.input_encoder
    categorical = compiled["categorical"]
    record: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "name": program.name,
        "description": program.description,
        "source": program.source,
        "notes": program.notes,
        "compiler": {
            "tracr": "tracr-pypi 1.0.0",
            "vocab": sorted(map(_json_value, program.vocab), key=str),
            "max_seq_len": program.max_seq_len,
            "compiler_bos": BOS,
            "compiler_pad": encoder.pad_token,
            "causal": program.causal,
            "mlp_exactness": MLP_EXACTNESS,
        },  # fmt: skip
        "config": cfg,
        "residual_labels": residual_labels,
        "input_vocab": [[_json_value(v), int(i)] for v, i in encoder.encoding_map.items()],
        "bos_id": int(encoder.encoding_map[BOS]),
        "pad_id": int(encoder.encoding_map[encoder.pad_token]),
        "output": (
            {
                "kind": "categorical",
                "values": [
                    _json_value(v)
                    for v, _ in sorted(
                        model.output_encoder.encoding_map.items(), key=lambda item: item[1]
                    )
                ],
            }
            if categorical
            else {"kind": "numerical", "values": None}
        ),  # fmt: skip
        "metric": "kl" if categorical else "l2",
        "positions": "all",
        "data": {"clean": clean, "corrupted": corrupted, "seed": SEED},
        "tracr_outputs": {
            "file": f"{program.name}.npz",
            "keys": sorted(outputs),
            "meaning": "tracr_logits_*: tracr's final residual times its residual -> output "
            "projection [n, seq, d_vocab_out] (what the bridge's logits must equal); "
            "tracr_unembedded_*: tracr's own output (argmax id when categorical, else the "
            "value)",
        },
        "blocks": [
            {
                k: (sorted(residual_labels[i] for i in v) if isinstance(v, set) else v)
                for k, v in b.items()
            }
            for b in blocks
        ],  # fmt: skip
        "truth": {
            "method": "compiler-craft-model",
            "description": "edges from tracr's craft model (the compiler's blocks before "
            "weights are assembled): a sender's written directions (embed: tokens, indices, "
            "one; a head: the columns of w_ov used in w_ov.output_space; an MLP: those of "
            "snd in snd.output_space) meet a later receiver input's read directions (q: rows "
            "of w_qk used in w_qk.left_space; k: columns of w_qk in w_qk.right_space; v: rows "
            "of w_ov in w_ov.input_space; an MLP: rows of fst in fst.input_space; logits: the "
            "output space); plus each head's internal edges from its inputs that receive an "
            "edge. A direction counts when the craft matrix's row (column) for it is not all "
            "zero",
            "edges": [list(e) for e in truth],
            "cross_check": {
                "declared": "the same from the craft spaces' whole bases (tracr adds the BOS "
                "and one directions to every categorical head's query, key and value spaces, "
                "used or not)",
                "declared_extra": [list(e) for e in sorted(set(declared) - set(truth))],
                "declared_superset": set(truth) <= set(declared),
                "weights": "edges from the assembled weights' sparsity, heads read through "
                "W_Q W_K^T (query: nonzero rows, key: nonzero columns) and W_V W_O (value: "
                "nonzero rows, written: nonzero columns), MLPs through W_in rows and W_out "
                "columns, embeddings through W_E and W_pos columns, logits through W_U rows",
                "weights_equal": sorted(effective) == sorted(truth),
                "only_in_truth": [list(e) for e in sorted(set(truth) - set(effective))],
                "only_in_weights": [list(e) for e in sorted(set(effective) - set(truth))],
                "weights_per_matrix": "the same with W_Q, W_K, W_V rows and W_O columns "
                "taken one matrix at a time",
                "per_matrix_extra": [list(e) for e in sorted(set(coarse) - set(truth))],
                "per_matrix_missing": [list(e) for e in sorted(set(truth) - set(coarse))],
            },
        },
    }
    if program.source == "acdc":
        record["acdc"] = {
            "edges": [list(e) for e in acdc_edges(program.name)],
            "origin": f"acdc/tracr_task/utils.py get_tracr_{program.name}_edges, mapped to "
            "circuitgraph names (hook_embed and hook_pos_embed are both 'embed')",
            "acdc_metric": "l2 over every output logit" if categorical else "l2 of output 0",
        }
    out_dir.mkdir(parents=True, exist_ok=True)
    save: Any = np.savez_compressed  # (its typing takes keyword arrays for its options)
    save(out_dir / f"{program.name}.npz", **weights, **outputs)
    (out_dir / f"{program.name}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("names", nargs="*", help=f"programs (default: all): {sorted(BY_NAME)}")
    parser.add_argument("--out", type=Path, default=OUT_DIR)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BY_NAME))
    if unknown:
        parser.error(f"unknown programs {unknown}; known: {sorted(BY_NAME)}")
    for program in [BY_NAME[n] for n in args.names] or PROGRAMS:
        record = generate(program, args.out)
        cfg, check = record["config"], record["truth"]["cross_check"]
        print(
            f"{program.name}: {cfg['n_layers']} layers x {cfg['n_heads']} heads, d_model "
            f"{cfg['d_model']}, d_mlp {cfg['d_mlp']}, {len(record['data']['clean'])} inputs, "
            f"{len(record['truth']['edges'])} truth edges; weights agree: "
            f"{check['weights_equal']}; declared spaces add {check['declared_extra']}",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
