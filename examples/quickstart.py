"""Quickstart: the Python block of the README, verbatim (tests/test_readme_commands.py keeps
the two identical and runs this file).

Finds the digits circuit of the embedded toy model (node pruning, then edge pruning with KL
inside it) and the months circuit, compares them, and writes ``results/quickstart/``:
``digits.svg`` (the edge circuit drawn by Graphviz), ``venn.svg`` and ``digits.json``. Seconds.

    python examples/quickstart.py
"""

import circuitgraph as cg

# Also "smollm2-135m", "random:gpt2-small" or any TransformerLens name ("gpt2-small").
model = cg.load_model("toy-seq")
task = cg.make_task("digits", model, n=32, corruption="rand_all", seed=0)
scorer = cg.Scorer(model, task, metric="logit_diff", ablation="mean")  # or "kl", "resample"
full = cg.full_circuit(model.cfg, qkv=True)
assert abs(scorer.score(full) - 1.0) < 1e-4  # the full circuit is the model itself

heads = cg.prune_nodes(scorer, threshold=0.8, relative=0.02, order="backward", progress=False)
edges = cg.prune_edges(scorer.with_metric("kl"), tau=0.01, start=heads, progress=False)
print(heads.heads(), heads.metadata["score"])  # re-measured from scratch
print(len(edges.sender_receiver_edges()), "edges, KL", edges.metadata["score"])

months = cg.Scorer(model, cg.make_task("months", model, n=32, seed=0))
heads_months = cg.prune_nodes(months, threshold=0.8, progress=False)
shared = heads & heads_months  # also |, -, ^, cg.shared([...], at_least=k)
print("shared:", shared.heads(), shared.mlps())
print(cg.overlap_table({"digits": heads, "months": heads_months}))

source = edges.to_dot()  # Graphviz source, one rank per layer; render() draws it
edges.render("results/quickstart/digits.svg")
cg.venn({"digits": heads, "months": heads_months}, "results/quickstart/venn.svg")
edges.to_json("results/quickstart/digits.json")
assert cg.Circuit.from_json("results/quickstart/digits.json") == edges
