r"""auto-circuit against circuitgraph's fast edge pruning, side by side, on the same models.

For each case and tau, circuitgraph's ``prune_edges(method="fast")`` (canonical order,
Q/K/V split, KL metric, resample ablation) and auto-circuit's ACDC loop run on the same
weights, prompts, metric and tau, in circuitgraph's visit order, so both must keep the same
edges: a different kept set (or a different decision anywhere) fails the benchmark (exit 1).
Prints a markdown table (auto-circuit and circuitgraph seconds as the minimum over
``--repeats`` runs, interleaved circuitgraph, auto-circuit, circuitgraph, ...; model, task
and scorer construction are not timed on either side), then a table of checks.

auto-circuit runs in its own venv (its pins clash with circuitgraph's), as a subprocess of
this script: ``benchmarks/autocircuit_worker.py`` (see its docstring for what it runs and
times). Create that venv once, in the repository's root (git-ignored)::

    python3 -m venv .autocircuit-venv && .autocircuit-venv/bin/pip install torch==2.13.0
    .autocircuit-venv/bin/pip install auto-circuit==1.0.1 "transformer-lens==2.18.0" \
        attrs "jax<0.5" "jaxlib<0.5" "pyarrow<20"

and point ``--autocircuit-python`` (or ``$AUTOCIRCUIT_PYTHON``) at its python if it lives
elsewhere.

Cases (digits task, n=8 prompts, tau 0.01 and 0.001): toy-seq (3 layers); random GPT-2-style
models (``random:gpt2-tiny,init=200``: 4 heads, d_model 64, weights of standard deviation
0.2) with 2, 3 and 4 layers; and the 4-layer
one attention-only. circuitgraph has no attention-only models, so that case takes the same
4-layer weights with every MLP's output projection zeroed (the MLPs then add exactly 0) and
prunes from the full graph without MLP nodes (``start=``); auto-circuit gets a true
``attn_only`` HookedTransformer, and the logit check proves the two are the same model.
Only with ``--cases gpt2-small-4l``: GPT-2 small's width (12 heads, d_model 768, vocabulary
50,257) in 4 layers, about 3,100 edges (auto-circuit takes minutes per tau).

Graphs: circuitgraph's ``embed``, ``a{L}.{H}``, ``m{L}``, ``a{L}.{H}.q/k/v``, ``logits`` are
auto-circuit's ``Resid Start``, ``A{L}.{H}``, ``MLP {L}``, ``A{L}.{H}.Q/K/V``, ``Resid End``;
both graphs have an edge from every sender to every later receiver (an MLP reads its own
layer's heads), which the worker checks by requiring the visit order to cover auto-circuit's
edge set exactly.

Caveats. Random models at transformers' default initialisation (standard deviation 0.02)
barely react to ablation (the KL of the circuit holding nothing but ``embed`` is about 1e-4),
so both sides would remove every edge; at 0.2 that KL is about 0.9 and circuits are kept.
The two implementations' KL effects differ by about 1e-7 (float32 arithmetic in a different
order), so at tau 1e-5 or below a decision can legitimately flip and fail the run; the
second table shows, per row, the largest effect difference and how close the nearest effect
came to tau.

Usage: python benchmarks/autocircuit.py [--repeats 3] [--cases toy-seq,gpt2-4l]
           [--taus 0.01 0.001] [--autocircuit-python PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch

import circuitgraph as cg
from circuitgraph.circuit.nodes import Node, NodeKind
from circuitgraph.prune.schedule import edge_schedule

WORKER = Path(__file__).with_name("autocircuit_worker.py")
# Beside the repository's own .venv (git-ignored), not a path of one machine.
DEFAULT_PYTHON = str(
    Path(__file__).resolve().parent.parent / ".autocircuit-venv" / "bin" / "python"
)


@dataclass(frozen=True)
class Case:
    key: str
    label: str
    model: str
    attn_only: bool = False
    default: bool = True  # run without --cases


CASES = [
    Case("toy-seq", "toy-seq (3 layers)", "toy-seq"),
    # Weights of standard deviation 0.2 (init=200): at transformers' default 0.02 a tiny random
    # model is close to its embeddings alone and every edge goes at these taus.
    Case("gpt2-2l", "random GPT-2, 2 layers", "random:gpt2-tiny,n_layers=2,init=200"),
    Case("gpt2-3l", "random GPT-2, 3 layers", "random:gpt2-tiny,n_layers=3,init=200"),
    Case("gpt2-4l", "random GPT-2, 4 layers", "random:gpt2-tiny,n_layers=4,init=200"),
    # seed=0 is the default seed, so these are the same weights as gpt2-4l under another
    # cache key of load_model (its MLPs get zeroed in place).
    Case(
        "gpt2-4l-attn",
        "random GPT-2, 4 layers, attention-only",
        "random:gpt2-tiny,n_layers=4,init=200,seed=0",
        attn_only=True,
    ),
    # GPT-2 small's width (12 heads, d_model 768, vocabulary 50,257) in 4 layers: about 3,100
    # edges; auto-circuit takes about 6 minutes per tau, so only with --cases.
    Case(
        "gpt2-small-4l",
        "random GPT-2 small width, 4 layers",
        "random:gpt2-small,n_layers=4,init=200",
        default=False,
    ),
]


def ac_name(name: str) -> str:
    """circuitgraph node name -> auto-circuit node name."""
    node = Node.parse(name)
    if node.pos is not None:
        raise ValueError(f"position-wise node {name!r}: auto-circuit runs position-free here")
    match node.kind:
        case NodeKind.EMBED:
            return "Resid Start"
        case NodeKind.LOGITS:
            return "Resid End"
        case NodeKind.MLP:
            return f"MLP {node.layer}"
        case NodeKind.HEAD:
            return f"A{node.layer}.{node.head}"
        case NodeKind.QKV if node.head is not None:
            return f"A{node.layer}.{node.head}.{node.qkv.upper()}"
    raise ValueError(f"no auto-circuit counterpart for {name!r} (grouped-query attention?)")


def _zero_mlps(model) -> None:
    """Make every MLP add exactly 0 (output projection weight and bias), in place."""
    zeroed = 0
    with torch.no_grad():
        for name, param in model.original_model.named_parameters():
            if ".mlp." in name and "c_proj" in name:
                param.zero_()
                zeroed += 1
    if zeroed != 2 * model.cfg.n_layers:
        raise RuntimeError(f"zeroed {zeroed} MLP output tensors, expected {2 * model.cfg.n_layers}")


def _start_circuit(model, attn_only: bool) -> cg.Circuit | None:
    if not attn_only:
        return None
    full = cg.full_circuit(model.cfg, qkv=True)
    kinds = {n: d["kind"] for n, d in full.nodes(data=True)}
    edges = [(u, v) for u, v in full.edges if NodeKind.MLP not in (kinds[u], kinds[v])]
    return cg.Circuit.from_edges(model.cfg, edges, internal=False)


def _gpt2_config(hf_model) -> dict:
    config = hf_model.config
    unsupported = {
        "scale_attn_weights": (config.scale_attn_weights, True),
        "scale_attn_by_inverse_layer_idx": (config.scale_attn_by_inverse_layer_idx, False),
        "reorder_and_upcast_attn": (config.reorder_and_upcast_attn, False),
        "tie_word_embeddings": (config.tie_word_embeddings, True),
    }
    for key, (value, wanted) in unsupported.items():
        if value != wanted:
            raise ValueError(f"GPT-2 config {key}={value}: the exporter assumes {wanted}")
    return {
        "n_layer": config.n_layer,
        "n_head": config.n_head,
        "n_embd": config.n_embd,
        "n_inner": config.n_inner or 4 * config.n_embd,
        "vocab_size": config.vocab_size,
        "n_positions": config.n_positions,
        "activation_function": config.activation_function,
        "layer_norm_epsilon": config.layer_norm_epsilon,
    }


def _hf_weights(model) -> dict[str, torch.Tensor]:
    """The wrapped HF GPT-2's state dict under the plain HF names (the bridge's extra views
    are dropped by the worker, which loads only the names a GPT2LMHeadModel has)."""
    weights = {}
    for key, value in model.original_model.state_dict().items():
        weights[key.replace("._original_component", "")] = value.detach().clone()
    bias = weights.pop("lm_head.bias", None)
    if bias is not None and bias.abs().max() > 0:
        raise ValueError("the model has a non-zero lm_head bias; GPT-2 has none")
    return weights


class Worker:
    """The auto-circuit side: one subprocess per case, one JSON request per line."""

    def __init__(self, python: str, case_dir: Path, threads: int) -> None:
        env = dict(os.environ)
        env.update(
            OMP_NUM_THREADS=str(threads),
            MKL_NUM_THREADS=str(threads),
            TOKENIZERS_PARALLELISM="false",
            HF_HUB_OFFLINE="1",
            TRANSFORMERS_OFFLINE="1",
            WANDB_MODE="disabled",
        )
        self.process = subprocess.Popen(
            [python, str(WORKER), str(case_dir), "--threads", str(threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        self.info = self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait()
            raise RuntimeError(f"auto-circuit worker exited with code {code} (its stderr is above)")
        return json.loads(line)

    def run(self, tau: float) -> dict:
        self.process.stdin.write(json.dumps({"tau": tau}) + "\n")
        self.process.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write(json.dumps({"quit": True}) + "\n")
                self.process.stdin.close()
            except BrokenPipeError:
                pass
            self.process.wait(timeout=60)


def prepare(case: Case, n: int, folder: Path):
    """circuitgraph's scorer and start circuit for ``case``; writes the worker's inputs."""
    model = cg.load_model(case.model)
    if case.attn_only:
        _zero_mlps(model)
    task = cg.make_task("digits", model, n=n, seed=0)
    if task.ragged:
        raise ValueError(f"{case.label}: prompts of several lengths; the worker reads position -1")
    scorer = cg.Scorer(model, task, metric="kl", ablation="resample")
    start = _start_circuit(model, case.attn_only)
    circuit = start if start is not None else cg.full_circuit(model.cfg, qkv=True)
    steps = edge_schedule(circuit, scorer.layout)
    schedule = [[ac_name(s.receiver.name), [ac_name(x) for x in s.senders]] for s in steps]
    with torch.no_grad():
        logits = {k: model(t) for k, t in (("clean", task.clean_tokens),
                                           ("corrupted", task.corrupted_tokens))}  # fmt: skip
    torch.save(
        {
            "weights": _hf_weights(model),
            "clean_tokens": task.clean_tokens.clone(),
            "corrupted_tokens": task.corrupted_tokens.clone(),
            "clean_logits": logits["clean"].float(),
            "corrupted_logits": logits["corrupted"].float(),
        },
        folder / "tensors.pt",
    )
    case_json = {"gpt2": _gpt2_config(model.original_model), "attn_only": case.attn_only}
    (folder / "case.json").write_text(json.dumps({**case_json, "schedule": schedule}))
    internal = [(u, v) for u, v in circuit.edges if circuit.nodes[u]["kind"] == NodeKind.QKV]
    n_edges = sum(len(s.senders) for s in steps)
    return scorer, start, n_edges, internal


@dataclass
class Outcome:
    ok: bool
    kept: int
    connected: int
    max_effect_diff: float
    margin: float  # the tested effect closest to tau: how far it was from tau
    note: str


def compare(
    scorer, tau: float, result: cg.Circuit, ac: dict, internal: list, names: dict
) -> Outcome:
    """Decisions, raw kept sets and ``prune_dangling``-ed circuits of both sides."""
    back = {v: k for k, v in names.items()}
    cg_tested = [(u, v, effect, removed) for u, v, effect, removed in result.metadata["tested"]]
    ac_tested = [(back[s], back[d], effect, removed) for s, d, effect, removed in ac["tested"]]
    notes = []
    if result.metadata["untested"]:
        notes.append(f"circuitgraph removed {len(result.metadata['untested'])} edges untested")
    if [t[:2] for t in cg_tested] != [t[:2] for t in ac_tested]:
        notes.append("visit orders differ")
    diffs = [abs(a[2] - b[2]) for a, b in zip(cg_tested, ac_tested, strict=False)]
    for a, b in zip(cg_tested, ac_tested, strict=False):
        if a[:2] == b[:2] and a[3] != b[3]:
            notes.append(
                f"first different decision: {a[0]}->{a[1]}: circuitgraph effect {a[2]:.9g} "
                f"removed={a[3]}, auto-circuit effect {b[2]:.9g} removed={b[3]}"
            )
            break
    cg_kept = {(u, v) for u, v, _, removed in cg_tested if not removed}
    ac_kept = {(back[s], back[d]) for s, d in ac["kept"]}
    if cg_kept != ac_kept:
        notes.append(
            f"kept sets differ: only circuitgraph {sorted(cg_kept - ac_kept)[:5]}, "
            f"only auto-circuit {sorted(ac_kept - cg_kept)[:5]}"
        )
    ac_circuit = cg.Circuit.from_edges(
        scorer.model.cfg, sorted(ac_kept | set(internal)), internal=False
    ).prune_dangling()
    if set(ac_circuit.edges) != set(result.edges) or set(ac_circuit.nodes) != set(result.nodes):
        notes.append("prune_dangling-ed circuits differ")
    return Outcome(
        ok=not notes,
        kept=len(cg_kept),
        connected=len(result.sender_receiver_edges()),
        max_effect_diff=max(diffs, default=0.0),
        margin=min((abs(t[2] - tau) for t in cg_tested), default=float("inf")),
        note="; ".join(notes),
    )


def _batches(result: cg.Circuit) -> object:
    """circuitgraph's count of batched evaluations (as its metadata records it)."""
    evaluations = result.metadata.get("evaluations")
    return evaluations.get("batches") if isinstance(evaluations, dict) else evaluations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--n", type=int, default=8, help="prompts per task")
    parser.add_argument("--taus", type=float, nargs="+", default=[0.01, 0.001])
    parser.add_argument(
        "--cases",
        default=",".join(c.key for c in CASES if c.default),
        help=f"comma-separated subset of {', '.join(c.key for c in CASES)}",
    )
    parser.add_argument(
        "--autocircuit-python",
        default=os.environ.get("AUTOCIRCUIT_PYTHON", DEFAULT_PYTHON),
        help=f"python of the auto-circuit venv (default: $AUTOCIRCUIT_PYTHON or {DEFAULT_PYTHON})",
    )
    args = parser.parse_args()
    if not Path(args.autocircuit_python).exists():
        parser.error(
            f"no auto-circuit python at {args.autocircuit_python}: create the venv as this "
            "script's docstring says, or pass --autocircuit-python"
        )
    wanted = args.cases.split(",")
    unknown = sorted(set(wanted) - {c.key for c in CASES})
    if unknown:
        parser.error(f"unknown cases {unknown}; choose from {[c.key for c in CASES]}")
    torch.set_num_threads(args.threads)
    began = time.perf_counter()
    rows, checks, failures = [], [], []
    print(
        f"# auto-circuit vs circuitgraph fast edge pruning: digits n={args.n}, KL, resample, "
        f"{args.threads} thread(s), min of {args.repeats} interleaved runs",
        file=sys.stderr,
        flush=True,
    )
    for case in (c for c in CASES if c.key in wanted):
        with tempfile.TemporaryDirectory(prefix="cg-autocircuit-") as tmp:
            scorer, start, n_edges, internal = prepare(case, args.n, Path(tmp))
            circuit = start if start is not None else cg.full_circuit(scorer.model.cfg)
            names = {n: ac_name(n) for n in circuit.nodes}
            worker = Worker(args.autocircuit_python, Path(tmp), args.threads)
            try:
                info = worker.info
                if info["edges"] != n_edges:
                    raise RuntimeError(
                        f"{case.label}: auto-circuit's graph has {info['edges']} edges, "
                        f"circuitgraph's {n_edges}"
                    )
                for tau in args.taus:
                    cg_times, ac_times = [], []
                    for _ in range(args.repeats):
                        started = time.perf_counter()
                        result = cg.prune_edges(
                            scorer, tau, start=start, method="fast", progress=False
                        )
                        cg_times.append(time.perf_counter() - started)
                        ac = worker.run(tau)
                        ac_times.append(ac["seconds"])
                        outcome = compare(scorer, tau, result, ac, internal, names)
                        if not outcome.ok:
                            break
                    cg_s, ac_s = min(cg_times), min(ac_times)
                    row = (
                        f"| {case.label} | {n_edges} | {tau:g} | {ac_s:.2f} | {cg_s:.3f} "
                        f"| {ac_s / cg_s:.1f}x | {outcome.kept} ({outcome.connected} connected) "
                        f"| {'yes' if outcome.ok else 'NO'} |"
                    )
                    rows.append(row)
                    checks.append(
                        f"| {case.label} | {tau:g} | {info['parity']:.1e} "
                        f"| {outcome.max_effect_diff:.1e} | {outcome.margin:.1e} "
                        f"| {_batches(result)} "
                        f"| {outcome.note or '-'} |"
                    )
                    if not outcome.ok:
                        failures.append(f"{case.label}, tau {tau:g}: {outcome.note}")
                    print(row, file=sys.stderr, flush=True)
            finally:
                worker.close()
    print(
        "| case | edges | tau | auto-circuit s | circuitgraph fast s | ratio | kept edges "
        "| sets equal |"
    )
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    print()
    print(
        "| case | tau | max logit diff | max effect diff | closest effect to tau "
        "| circuitgraph batches | notes |"
    )
    print("|---|---|---|---|---|---|---|")
    print("\n".join(checks))
    print()
    print(
        f"auto-circuit {info['auto_circuit']}, TransformerLens {info['transformer_lens']}, "
        f"torch {info['torch']}; circuitgraph torch {torch.__version__}; "
        f"total {time.perf_counter() - began:.0f} s"
    )
    if failures:
        print("\nFAILED: the two kept different edges:\n" + "\n".join(failures), file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
