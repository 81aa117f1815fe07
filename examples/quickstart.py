"""Quickstart: the Public API of DESIGN.md, run on the embedded toy model in seconds.

Finds the digits circuit (node pruning, then edge pruning inside it), the months and number-word
circuits, and compares them. Writes to ``--out`` (default ``quickstart_out/``):

- ``digits.svg``: the edge-pruned digits circuit drawn by Graphviz, ranked by layer;
- ``digits.json``: the same circuit as JSON (reloaded to check the round trip);
- ``venn.svg``: the heads and MLPs of the three circuits as a Venn diagram;

and prints the scores, the shared heads and the overlap table.

    python examples/quickstart.py [--model toy-seq] [--n 64] [--out quickstart_out]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import circuitgraph as cg


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="toy-seq", help="model name (default toy-seq)")
    parser.add_argument("--n", type=int, default=64, help="prompts per task (default 64)")
    parser.add_argument("--out", type=Path, default=Path("quickstart_out"), help="output folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    model = cg.load_model(args.model)
    task = cg.make_task("digits", model, n=args.n, corruption="rand_all", seed=0)
    scorer = cg.Scorer(model, task, metric="logit_diff", ablation="mean")
    full = cg.full_circuit(model.cfg, qkv=True)
    print(f"full model: {scorer.score(full):.4f}")  # == 1.0 up to float error

    heads = cg.prune_nodes(scorer, threshold=0.8, relative=0.02, order="backward")
    edges = cg.prune_edges(scorer, tau=0.01, start=heads)  # one edge at a time, re-scored
    print(f"node circuit: {heads}, score {scorer.score(heads):.4f}")
    print(f"edge circuit: {edges}, score {scorer.score(edges):.4f}")  # verified by re-ablation

    circuits = {"digits": heads}
    for name, key in (("months", "months"), ("number_words", "numwords")):
        other = cg.Scorer(model, cg.make_task(name, model, n=args.n, seed=0))
        circuits[key] = cg.prune_nodes(other, threshold=0.8, relative=0.02, order="backward")
    heads_digits, heads_months = circuits["digits"], circuits["months"]
    shared = heads_digits & heads_months  # also |, -, ^, cg.shared([...], at_least=k)
    print(f"digits & months: {' '.join(shared.heads() + shared.mlps())}")
    in_two = cg.shared(list(circuits.values()), at_least=2)
    print(f"in at least 2 of 3: {' '.join(in_two.heads() + in_two.mlps())}")
    print(cg.overlap_table(circuits).to_string(index=False))

    edges.to_dot()
    edges.render(args.out / "digits.svg")  # Graphviz, ranked by layer
    cg.venn(circuits, args.out / "venn.svg")
    edges.to_json(args.out / "digits.json")
    assert cg.Circuit.from_json(args.out / "digits.json") == edges
    print(f"wrote {args.out}/digits.svg, digits.json and venn.svg")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
