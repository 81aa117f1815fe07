"""Ground truth: does discovery find the right circuit? On a transformer compiled from a RASP
program by tracr, the circuit is known from the compiler, so a discovered circuit can be
checked edge by edge.

Loads tracr-reverse (ACDC's case: reverse a sequence of three tokens), prunes its edges with
ACDC's rule on the KL over every position after BOS, compares the result with the truth
(shared / missed / extra edges), draws both in one picture and prints the ROC AUC of a tau
sweep. Writes ``results/ground_truth/reverse.svg`` and ``reverse.html``. Seconds.

    python examples/ground_truth.py
"""

import circuitgraph as cg

model, task, truth = cg.load_ground_truth("reverse")  # or "tracr:reverse" on the command line
scorer = cg.Scorer(model, task, metric="kl", ablation="zero")  # reads every position after BOS
found = cg.prune_edges(scorer, tau=0.01, order="acdc", progress=False)

shared, missed, extra = found & truth, truth - found, found - truth
print(
    f"truth {len(truth.sender_receiver_edges())} edges, found {len(found.sender_receiver_edges())}:"
)
print(f"  shared {len(shared.sender_receiver_edges())}, missed {missed.sender_receiver_edges()}, "
      f"extra {extra.sender_receiver_edges()}")  # fmt: skip

# One ROC point per tau (ACDC's pessimistic rule, as in the ACDC paper's tables).
sweep = [cg.prune_edges(scorer, tau, order="acdc", progress=False) for tau in (0, 1e-3, 1e-2, 1)]
curve = cg.roc_auc(sweep, truth)
print(
    f"edge ROC AUC {curve.auc:.3f} over {curve.n_positive} truth and {curve.n_negative} other edges"
)

cg.render_comparison({"found": found, "truth": truth}, "results/ground_truth/reverse.svg")
cg.view({"found": found, "truth": truth}, "results/ground_truth/reverse.html", overwrite=True)
