"""auto-circuit side of ``benchmarks/autocircuit.py``: runs in the auto-circuit venv, not ours.

Launched by ``benchmarks/autocircuit.py`` as ``<auto-circuit python> autocircuit_worker.py
CASE_DIR``. CASE_DIR holds what the parent exported from circuitgraph: ``case.json`` (GPT-2
config, whether the model is attention-only, the visit order in auto-circuit's node names)
and ``tensors.pt`` (the HF GPT-2 weights, the task's clean and corrupted tokens, and
circuitgraph's logits on both).

The worker builds a TransformerLens 2.18 ``HookedTransformer`` with those weights (converted
by TransformerLens' own ``convert_gpt2_weights``), fails unless its logits match
circuitgraph's to ``--atol`` at every position, wraps it with ``auto_circuit``'s
``patchable_model`` (factorized, Q/K/V split) and checks that the visit order covers every
auto-circuit edge exactly once. It then answers one JSON request per stdin line on stdout:
``{"tau": t}`` runs ACDC-style edge pruning once and replies with the kept edges, every
decision and the wall time; ``{"quit": true}`` (or end of input) exits.

The pruning loop is auto-circuit's own ``acdc_prune_scores`` loop
(``auto_circuit/prune_algos/ACDC.py``) for one tau, with two changes: edges are visited in
circuitgraph's order (receivers, each with its senders, as sent by the parent) instead of
auto-circuit's, and the running score starts at the full circuit's measured KL rather than
0.0, as circuitgraph's does. Everything else is auto-circuit's: resample ablation values
from ``src_ablations``, edges removed by setting their ``patch_mask`` entry to 1 inside
``patch_mode``, each test restarted at the receiver's block from the clean residual stream
cached there (valid because receivers are visited from the last block to the first), and
its ``multibatch_kl_div`` metric on the last position: KL(full model || circuit), mean over
prompts. An edge is removed when ``new - running < tau``.

Timed: the pruning loop plus the initial full-circuit score. Not timed (the parent's
circuitgraph Scorer builds the same caches before its timing starts): the clean and
corrupted source outputs, the clean log-probabilities and the clean residual streams.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch


def _protocol_stream():
    """A private handle on the real stdout for the JSON replies; everything else that
    prints to stdout (library chatter) goes to stderr from here on."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return out


def build_model(case: dict, tensors: dict):
    """HookedTransformer with the exported GPT-2 weights and auto-circuit's flags."""
    import transformer_lens as tl
    from transformer_lens.pretrained.weight_conversions.gpt2 import convert_gpt2_weights
    from transformers import GPT2Config, GPT2LMHeadModel

    gpt2 = case["gpt2"]
    hf = GPT2LMHeadModel(GPT2Config(**gpt2)).eval()
    weights = tensors["weights"]
    missing = [k for k, _ in hf.named_parameters() if k not in weights]
    if missing:
        raise SystemExit(f"exported weights lack HF GPT-2 parameters: {missing}")
    hf.load_state_dict(weights, strict=False)
    d_model, n_heads = gpt2["n_embd"], gpt2["n_head"]
    cfg = tl.HookedTransformerConfig(
        n_layers=gpt2["n_layer"],
        d_model=d_model,
        n_heads=n_heads,
        d_head=d_model // n_heads,
        d_mlp=gpt2["n_inner"],
        d_vocab=gpt2["vocab_size"],
        n_ctx=gpt2["n_positions"],
        act_fn=gpt2["activation_function"],
        eps=gpt2["layer_norm_epsilon"],
        normalization_type="LN",
        positional_embedding_type="standard",
        attn_only=case["attn_only"],
        original_architecture="GPT2LMHeadModel",
        default_prepend_bos=False,
        device="cpu",
        dtype=torch.float32,
    )
    state = convert_gpt2_weights(hf, cfg)
    if cfg.attn_only:  # the parent zeroed these MLPs' outputs; the TL model has none
        state = {k: v for k, v in state.items() if ".mlp." not in k and ".ln2." not in k}
    model = tl.HookedTransformer(cfg)
    model.load_and_process_state_dict(
        state,
        fold_ln=False,
        center_writing_weights=False,
        center_unembed=False,
        fold_value_biases=False,
        refactor_factored_attn_matrices=False,
    )
    model.eval()
    for param in model.parameters():
        param.requires_grad = False
    return model


def check_parity(model, tensors: dict, atol: float) -> float:
    """Max |logit difference| to circuitgraph's logits at every position; SystemExit above
    ``atol``."""
    worst = 0.0
    with torch.inference_mode():
        for which in ("clean", "corrupted"):
            ours = model(tensors[f"{which}_tokens"])
            theirs = tensors[f"{which}_logits"]
            if ours.shape != theirs.shape:
                raise SystemExit(f"{which} logits: shape {tuple(ours.shape)} != {theirs.shape}")
            worst = max(worst, float((ours - theirs).abs().max()))
    if not worst <= atol:
        raise SystemExit(
            f"logit parity FAILED: TransformerLens 2.18 and circuitgraph differ by {worst:.3g} "
            f"(> {atol:g}); the exported model is not the same model"
        )
    return worst


def make_patchable(model):
    """auto-circuit's flags (as in its ``load_tl_model``) and its patchable wrapper."""
    from auto_circuit.utils.graph_utils import patchable_model

    model.cfg.use_attn_result = True
    model.cfg.use_attn_in = True
    model.cfg.use_split_qkv_input = True
    model.cfg.use_hook_mlp_in = True
    return patchable_model(
        model, factorized=True, slice_output="last_seq", separate_qkv=True, device="cpu"
    )


class Pruner:
    """auto-circuit's ACDC loop for one tau, in a given visit order."""

    def __init__(self, model, schedule: list, clean: torch.Tensor, corrupt: torch.Tensor):
        from auto_circuit.utils.ablation_activations import src_ablations

        self.model = model
        names = model.edge_name_dict[None]
        self.steps = []
        seen: set[str] = set()
        for dest, srcs in schedule:
            edges = [names[f"{src}->{dest}"] for src in srcs]  # KeyError: not an AC edge
            seen.update(e.name for e in edges)
            # auto-circuit restarts at the receiver's block ("blocks.L.hook_..."); Resid End
            # is blocks.{n_layers - 1}.hook_resid_post, so its tests rerun the last block.
            start = int(edges[0].dest.module_name.split(".")[1])
            self.steps.append((start, edges))
        n_visits = sum(len(edges) for _, edges in self.steps)
        if len(seen) != n_visits or seen != set(names):
            extra = sorted(set(names) - seen)[:10]
            raise SystemExit(
                f"visit order covers {len(seen)} distinct edges in {n_visits} visits; "
                f"auto-circuit's graph has {len(names)} (not visited, first 10: {extra})"
            )
        # The caches auto-circuit's acdc_prune_scores builds before its loop.
        self.patch_outs = src_ablations(model, corrupt)
        self.src_outs = src_ablations(model, clean)
        with torch.inference_mode():
            self.clean_out = model(clean)[model.out_slice]
            _, self.toks, self.short_embd, self.attn_mask = model.input_to_embed(clean)
            _, cache = model.run_with_cache(clean)
            self.resids = [
                cache[f"blocks.{i}.hook_resid_pre"].clone() for i in range(model.cfg.n_layers)
            ]
            del cache
        self.clean_logprobs = torch.nn.functional.log_softmax(self.clean_out, dim=-1)
        self.clean = clean

    def _faith(self, out: torch.Tensor) -> float:
        from auto_circuit.utils.tensor_ops import multibatch_kl_div

        return multibatch_kl_div(torch.log_softmax(out, dim=-1), self.clean_logprobs).item()

    def run(self, tau: float) -> dict:
        from auto_circuit.utils.graph_utils import patch_mode, set_all_masks

        model = self.model
        started = time.perf_counter()
        set_all_masks(model, val=0.0)
        tested: list[list] = []
        curr = self.src_outs.clone()  # patch_mode overwrites it as sources run
        with patch_mode(model, self.patch_outs, curr_src_outs=curr):
            with torch.inference_mode():
                running = self._faith(model(self.clean)[model.out_slice])
            start_score = running
            for start, edges in self.steps:
                for edge in edges:
                    edge.patch_mask(model).data[edge.patch_idx] = 1.0
                    with torch.inference_mode():
                        out = model(
                            self.resids[start],
                            start_at_layer=start,
                            tokens=self.toks,
                            shortformer_pos_embed=self.short_embd,
                            attention_mask=self.attn_mask,
                        )[model.out_slice]
                    faith = self._faith(out)
                    effect = faith - running
                    removed = effect < tau
                    if removed:
                        running = faith
                    else:
                        edge.patch_mask(model).data[edge.patch_idx] = 0.0
                    tested.append([edge.src.name, edge.dest.name, effect, removed])
        seconds = time.perf_counter() - started
        return {
            "seconds": seconds,
            "tested": tested,
            "kept": [[s, d] for s, d, _, removed in tested if not removed],
            "start_score": start_score,
            "running_score": running,
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case_dir", type=Path)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--atol", type=float, default=1e-4)
    args = parser.parse_args()
    reply = _protocol_stream()
    torch.set_num_threads(args.threads)
    case = json.loads((args.case_dir / "case.json").read_text())
    tensors = torch.load(args.case_dir / "tensors.pt", weights_only=True)
    model = build_model(case, tensors)
    parity = check_parity(model, tensors, args.atol)
    patchable = make_patchable(model)
    pruner = Pruner(
        patchable, case["schedule"], tensors["clean_tokens"], tensors["corrupted_tokens"]
    )
    versions = {
        "auto_circuit": _version("auto-circuit"),
        "transformer_lens": _version("transformer-lens"),
        "torch": torch.__version__,
    }
    reply.write(
        json.dumps({"ready": True, "parity": parity, "edges": patchable.n_edges, **versions}) + "\n"
    )
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("quit"):
            break
        reply.write(json.dumps(pruner.run(float(request["tau"]))) + "\n")


def _version(dist: str) -> str:
    from importlib.metadata import version

    return version(dist)


if __name__ == "__main__":
    main()
