"""Tasks from token ids and metrics read at chosen positions (Task.from_tokens).

A prompt read at K positions becomes K rows that run the same tokens; every metric averages
over a prompt's positions first and over prompts second, each row reads exactly what the model
outputs at its position, and right padding never changes a row's result.
"""

from __future__ import annotations

import math
import types

import pytest
import torch

import circuitgraph as cg
from circuitgraph.scoring.metrics import l2_distance

pytestmark = pytest.mark.filterwarnings("ignore::circuitgraph.UncertaintyWarning")


def _model(d_vocab=5, d_vocab_out=3, n_ctx=6):
    cfg = types.SimpleNamespace(d_vocab=d_vocab, d_vocab_out=d_vocab_out, n_ctx=n_ctx)
    return types.SimpleNamespace(cfg=cfg)


def test_positions_all_list_and_negative_expand_rows():
    model = _model()
    task = cg.Task.from_tokens(model, [[0, 1, 2, 3], [0, 2, 1]], [[0, 3, 3, 3], [0, 1, 1]],
                               positions="all")  # fmt: skip
    assert task.read_positions.tolist() == [1, 2, 3, 1, 2]
    assert task.prompt_ids.tolist() == [0, 0, 0, 1, 1]
    assert task.n_distinct == 2 and task.ragged and task.lengths.tolist() == [4, 4, 4, 3, 3]
    # padding is not a real token, whatever position a row reads
    assert task.real_tokens().sum(dim=1).tolist() == [4, 4, 4, 3, 3]
    # each prompt weighs the same: 3 rows of 1/3 and 2 of 1/2, normalised to mean 1
    weights = task.row_weights()
    assert weights is not None and weights.mean().item() == pytest.approx(1.0)
    assert weights[:3].sum().item() == pytest.approx(weights[3:].sum().item())
    last = cg.Task.from_tokens(model, [[0, 1, 2, 3], [0, 2, 1]], [[0, 3, 3, 3], [0, 1, 1]],
                               positions=[-1, 1])  # fmt: skip
    assert last.read_positions.tolist() == [3, 1, 2, 1] and last.row_weights() is None


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"clean": "0 1 2"}, "token ids"),
        ({"clean": [[0, 1, 7]]}, "outside the model's vocabulary"),
        ({"clean": [[0, 1, 2]], "corrupted": [[0, 1]]}, "same length"),
        ({"positions": "last"}, "positions must be"),
        ({"positions": [5]}, "do not all exist"),
        ({"positions": [1, 1]}, "repeat"),
        ({"answers": [1]}, "answers and wrong together"),
        ({"answers": [1], "wrong": [1]}, "same answer and wrong answer"),
        ({"answers": [4], "wrong": [1]}, "output vocabulary"),
        ({"answers": [1], "wrong": [2], "positions": "all"}, "one per read position"),
        ({"clean": torch.zeros(1, 3)}, "integer tensor"),
        ({"clean": [[0, 1, 2, 3, 4, 0, 1]], "corrupted": [[0] * 7]}, "n_ctx"),
    ],
)
def test_bad_token_tasks_get_one_clear_error(kwargs, message):
    arguments = {"clean": [[0, 1, 2]], "corrupted": [[0, 2, 2]]} | kwargs
    with pytest.raises(ValueError, match=message):
        cg.Task.from_tokens(_model(), **arguments)


def test_rows_read_exactly_the_model_s_output_at_their_position(toy):
    clean = torch.randint(1, 40, (3, 7), generator=torch.Generator().manual_seed(0))
    corrupted = torch.randint(1, 40, (3, 7), generator=torch.Generator().manual_seed(1))
    task = cg.Task.from_tokens(toy, clean, corrupted, positions=[2, 4, -1])
    scorer = cg.Scorer(toy, task, metric="kl", ablation="zero")
    with torch.no_grad():
        own = toy(clean)  # [3, 7, vocab]
    expected = own[:, [2, 4, 6]].reshape(9, -1)
    assert torch.allclose(scorer.clean_logits, expected.to(scorer.clean_logits.dtype), atol=1e-4)
    assert scorer.score(cg.full_circuit(toy.cfg)) == pytest.approx(0.0, abs=1e-6)


def test_padding_never_changes_a_read_position_s_result(toy):
    """Each (prompt, position) row of a mixed-length task scores exactly as when its prompt
    runs alone (resample ablation), for full, node, edge and empty circuits."""
    clean = [[3, 5, 7, 9, 11], [4, 6, 8], [2, 3, 4, 5]]
    corrupted = [[9, 1, 2, 8, 6], [7, 7, 1], [8, 6, 1, 9]]
    answers, wrong = [[12, 13], [10, 12], [6, 7]], [[2, 3], [1, 2], [1, 2]]
    together = cg.Task.from_tokens(toy, clean, corrupted, answers, wrong, positions=[1, -1])
    alone = [
        cg.Task.from_tokens(toy, [c], [k], [a], [w], positions=[1, -1])
        for c, k, a, w in zip(clean, corrupted, answers, wrong, strict=True)
    ]
    cfg = toy.cfg
    circuits = [
        cg.full_circuit(cfg),
        cg.Circuit.from_nodes(cfg, ["a0.1", "a1.3", "m1"]),
        cg.Circuit.from_edges(cfg, [("embed", "a0.1.v"), ("a0.1", "m1"), ("m1", "logits")]),
        cg.Circuit.from_edges(cfg, []),
    ]
    scorer = cg.Scorer(toy, together, ablation="resample")
    singles = [cg.Scorer(toy, task, ablation="resample") for task in alone]
    for circuit in circuits:
        final = scorer.final_residuals(scorer.masks(circuit))[0]
        expected = torch.cat([s.final_residuals(s.masks(circuit))[0] for s in singles])
        assert torch.allclose(final, expected, atol=1e-5)
    # equal weights (two rows per prompt): the mean over rows is the mean over prompts
    mean = sum(s.evaluate(circuits[1])["logit_diff"] for s in singles) / 3
    assert scorer.evaluate(circuits[1])["logit_diff"] == pytest.approx(mean, abs=1e-5)


def test_a_prompt_read_at_more_positions_weighs_the_same(toy):
    clean, corrupted = [[3, 5, 7, 9, 11], [4, 6, 8]], [[9, 1, 2, 8, 6], [7, 7, 1]]
    task = cg.Task.from_tokens(toy, clean, corrupted, positions="all")  # 4 rows + 2 rows
    scorer = cg.Scorer(toy, task, metric="kl", ablation="zero")
    circuit = cg.Circuit.from_nodes(toy.cfg, ["a0.1", "m1"])
    per_prompt = [
        cg.Scorer(toy, cg.Task.from_tokens(toy, [c], [k], positions="all"), metric="kl",
                  ablation="zero").score(circuit)
        for c, k in zip(clean, corrupted, strict=True)
    ]  # fmt: skip
    assert scorer.score(circuit) == pytest.approx(sum(per_prompt) / 2, rel=1e-5)
    result = cg.evaluate(scorer, circuit, minimality=False, resamples=50)
    assert result.score == pytest.approx(scorer.score(circuit), rel=1e-6)
    assert "logit_diff" not in result.table.index and result.n_distinct == 2


def test_l2_is_the_mean_squared_distance_of_the_outputs():
    reference = torch.tensor([[1.0], [2.0], [0.0]])
    logits = torch.tensor([[[1.0], [0.0], [3.0]], [[1.0], [2.0], [0.0]]])  # [V=2, n=3, 1]
    assert l2_distance(reference, logits).tolist() == pytest.approx([(0 + 4 + 9) / 3, 0.0])
    weights = torch.tensor([1.5, 1.5, 0.0])
    assert l2_distance(reference, logits, weights)[0].item() == pytest.approx((0 + 4 * 1.5) / 3)


def test_l2_and_kl_without_answers_and_answer_metrics_refused(toy):
    task = cg.Task.from_tokens(toy, [[3, 5, 7, 9]], [[9, 1, 2, 8]], positions="all")
    scorer = cg.Scorer(toy, task, metric="l2", ablation="zero")
    empty = cg.Circuit.from_edges(toy.cfg, [])
    values = scorer.evaluate(empty)
    assert values["score"] == values["l2"] > 0 and math.isnan(values["logit_diff"])
    assert not scorer.higher_is_better()
    for metric in ("logit_diff", "accuracy"):
        with pytest.raises(ValueError, match="needs answers"):
            cg.Scorer(toy, task, metric=metric)


def test_position_wise_circuits_refuse_rows_that_read_earlier_positions(toy):
    task = cg.Task.from_tokens(toy, [[3, 5, 7, 9]] * 2, [[9, 1, 2, 8]] * 2, positions="all")
    scorer = cg.Scorer(toy, task, metric="kl", ablation="zero")
    with pytest.raises(ValueError, match="other positions than the last"):
        scorer.check_aligned()


def test_node_pruning_with_a_lower_is_better_metric_bounds_each_removal(toy):
    clean = torch.randint(1, 40, (4, 6), generator=torch.Generator().manual_seed(2))
    corrupted = torch.randint(1, 40, (4, 6), generator=torch.Generator().manual_seed(3))
    scorer = cg.Scorer(toy, cg.Task.from_tokens(toy, clean, corrupted), metric="kl")
    with pytest.raises(ValueError, match="pass tau="):
        cg.prune_nodes(scorer, progress=False)
    circuit = cg.prune_nodes(scorer, tau=0.05, progress=False)
    scores = [0.0] + [r["score"] for r in circuit.metadata["removed"]]
    assert all(b - a <= 0.05 + 1e-6 for a, b in zip(scores, scores[1:], strict=False))
    assert circuit.metadata["parameters"]["tau"] == 0.05
