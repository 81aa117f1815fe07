"""Analyses of a model on a task: attention, OV circuits, logit lens, cross-task, patching.

Each analysis returns a pandas DataFrame (or a small result object with ``table()``), and
``circuitgraph.analysis.plots`` draws them into files.
"""

from circuitgraph.analysis._common import resolve_heads, resolve_positions
from circuitgraph.analysis.attention import (
    AttentionPatterns,
    attention_offsets,
    attention_patterns,
    attention_scores,
    mean_attention,
    top_keys,
)
from circuitgraph.analysis.cross_task import (
    SubcircuitAblation,
    ablate_subcircuit,
    cross_task_matrix,
    subcircuit_controls,
)
from circuitgraph.analysis.logit_lens import lens_logits, logit_lens
from circuitgraph.analysis.ov import (
    MemberTokens,
    member_tokens,
    ov_logits,
    ov_predictions,
    ov_scores,
)
from circuitgraph.analysis.patching import head_position_patching, replace_head_activations
from circuitgraph.analysis.plots import (
    plot_attention,
    plot_cross_task,
    plot_logit_lens,
    plot_ov_scores,
    plot_patching,
)

__all__ = [
    "AttentionPatterns",
    "MemberTokens",
    "SubcircuitAblation",
    "ablate_subcircuit",
    "attention_offsets",
    "attention_patterns",
    "attention_scores",
    "cross_task_matrix",
    "head_position_patching",
    "lens_logits",
    "logit_lens",
    "mean_attention",
    "member_tokens",
    "ov_logits",
    "ov_predictions",
    "ov_scores",
    "plot_attention",
    "plot_cross_task",
    "plot_logit_lens",
    "plot_ov_scores",
    "plot_patching",
    "replace_head_activations",
    "resolve_heads",
    "resolve_positions",
    "subcircuit_controls",
    "top_keys",
]
