"""Evaluation: how far to trust a circuit.

- :func:`evaluate`: faithfulness with bootstrap CIs over prompts, completeness, minimality;
- :func:`faithfulness_curve`: the MIB-style curve over top-k circuits of a ranking (CPR, CMD);
- :func:`stability`: rediscover on resampled prompt sets; inclusion frequency, Jaccard;
- :func:`compare_methods`: node pruning, ACDC, EAP and EAP-IG side by side.
- :func:`roc_auc`: ROC and AUC of discovery against a known ground-truth circuit.
"""

from circuitgraph.evaluation.curves import (
    FaithfulnessCurve,
    curve_areas,
    faithfulness_curve,
    pruning_ranking,
)
from circuitgraph.evaluation.evaluate import Evaluation, evaluate, held_out_scorer
from circuitgraph.evaluation.roc import RocCurve, roc_auc
from circuitgraph.evaluation.stability import Stability, jaccard, stability

__all__ = [
    "Evaluation",
    "FaithfulnessCurve",
    "RocCurve",
    "Stability",
    "curve_areas",
    "evaluate",
    "faithfulness_curve",
    "held_out_scorer",
    "jaccard",
    "pruning_ranking",
    "roc_auc",
    "stability",
]
