"""Your own tasks: from Python lists or CSV/JSONL files, with prompts of different lengths.

Right padding never changes a prompt's result: each prompt of a mixed-length task scores
exactly as when it runs alone (resample ablation), for the full, node, edge and empty
circuits, and pruning stays exact on such tasks.
"""

from __future__ import annotations

import json

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import circuitgraph as cg
from circuitgraph.cli import main

CLEAN = [
    "Here is a list : 3 , 4 , 5 , 6 ,",
    "Here is a list : 1 , 2 , 3 ,",
    "Here is a list : 5 , 6 , 7 ,",
    "Here is a list : 2 , 3 , 4 , 5 , 6 ,",
]
CORRUPTED = [
    "Here is a list : 8 , 1 , 9 , 2 ,",
    "Here is a list : 7 , 5 , 9 ,",
    "Here is a list : 1 , 8 , 2 ,",
    "Here is a list : 9 , 1 , 7 , 3 , 8 ,",
]
ANSWERS, WRONG = ["7", "4", "8", "7"], ["6", "3", "7", "6"]


@pytest.fixture(scope="module")
def mixed(toy) -> cg.Task:
    return cg.Task.from_prompts(toy, CLEAN, CORRUPTED, ANSWERS, wrong=WRONG, name="mixed")


def _per_prompt_logit_diff(scorer: cg.Scorer, circuit: cg.Circuit) -> torch.Tensor:
    final = scorer.final_residuals(scorer.masks(circuit))[0]  # [n, d]
    logits = scorer.components.unembed(final).gather(1, scorer.answer_pairs)  # [n, 2]
    return logits[:, 0] - logits[:, 1]


def _circuits(cfg) -> list[cg.Circuit]:
    return [
        cg.full_circuit(cfg),
        cg.Circuit.from_nodes(cfg, ["a0.1", "a1.3", "a2.2", "m1"]),
        cg.Circuit.from_edges(cfg, [("embed", "a0.1.v"), ("a0.1", "m1"), ("m1", "logits")]),
        cg.Circuit.from_edges(cfg, []),
    ]


def test_built_in_tasks_round_trip(toy):
    task = cg.make_task("months", toy, n=8, seed=3)
    wrong = [toy.tokenizer.decode([int(i)]) for i in task.wrong_ids]
    again = cg.Task.from_prompts(
        toy, task.clean_prompts, task.corrupted_prompts, task.answers, wrong=wrong
    )
    for field in ("clean_tokens", "corrupted_tokens", "answer_ids", "wrong_ids"):
        assert torch.equal(getattr(again, field), getattr(task, field)), field
    assert again.answers == task.answers and not again.ragged


def test_mixed_lengths_are_right_padded(mixed):
    assert mixed.ragged and mixed.lengths.tolist() == [13, 11, 11, 15]
    assert mixed.seq_len == 15 and mixed.last_positions.tolist() == [12, 10, 10, 14]
    assert mixed.real_tokens().sum(dim=1).tolist() == [13, 11, 11, 15]


def test_padding_never_changes_a_prompt_s_result(toy, mixed):
    together = cg.Scorer(toy, mixed, ablation="resample")
    alone = [
        cg.Scorer(toy, cg.Task.from_prompts(toy, [c], [k], [a], wrong=[w]), ablation="resample")
        for c, k, a, w in zip(CLEAN, CORRUPTED, ANSWERS, WRONG, strict=True)
    ]
    for circuit in _circuits(toy.cfg):
        expected = torch.cat([_per_prompt_logit_diff(s, circuit) for s in alone])
        assert torch.allclose(_per_prompt_logit_diff(together, circuit), expected, atol=1e-5)
    assert together.clean_logit_diff == pytest.approx(
        sum(s.clean_logit_diff for s in alone) / len(alone), abs=1e-5
    )
    assert together.score(cg.full_circuit(toy.cfg)) == pytest.approx(1.0, abs=1e-5)


def test_mean_ablation_averages_only_real_tokens(toy, mixed):
    scorer = cg.Scorer(toy, mixed, ablation="mean")
    longest = cg.Scorer(toy, mixed.subset([3]), ablation="resample")
    # Position 14 exists only in the longest prompt: its mean is that prompt's own value.
    assert torch.allclose(scorer.fixed[0, 14], longest.fixed[0, 14], atol=1e-6)
    # Position 12 is real in prompts 0 (13 tokens) and 3 (15), padding in the other two.
    every = cg.Scorer(toy, mixed, ablation="resample").fixed[:, 12]  # [4, S, d]
    assert torch.allclose(scorer.fixed[0, 12], every[[0, 3]].mean(dim=0), atol=1e-6)
    assert not torch.allclose(scorer.fixed[0, 12], every.mean(dim=0), atol=1e-3)


@settings(
    max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(order=st.sampled_from(["canonical", "acdc"]), tau=st.sampled_from([1e-3, 1e-2]))
def test_edge_pruning_is_exact_on_mixed_lengths(toy, mixed, order, tau):
    scorer = cg.Scorer(toy, mixed, metric="kl", ablation="resample")
    kwargs = {"order": order, "progress": False}
    reference = cg.prune_edges(scorer, tau, method="reference", **kwargs)
    fast = cg.prune_edges(scorer, tau, window=3, **kwargs)
    assert reference == fast
    assert [r for *_, r in reference.metadata["tested"]] == [r for *_, r in fast.metadata["tested"]]


def test_node_pruning_is_exact_on_mixed_lengths(toy, mixed):
    scorer = cg.Scorer(toy, mixed, ablation="resample")
    batched = cg.prune_nodes(scorer, 0.8, batch_size=6, progress=False)
    assert batched == cg.prune_nodes(scorer, 0.8, batch_size=1, progress=False)
    assert batched.metadata["score"] == pytest.approx(scorer.score(batched), abs=1e-6)


def test_position_wise_pruning_refuses_mixed_lengths(toy, mixed, monkeypatch):
    import circuitgraph.prune.edges as edges
    import circuitgraph.prune.nodes as nodes

    def no_work(*args, **kwargs):
        raise AssertionError("pruning started before the lengths were checked")

    monkeypatch.setattr(edges, "_prune_fast", no_work)
    monkeypatch.setattr(nodes, "Search", no_work)
    scorer = cg.Scorer(toy, mixed)
    with pytest.raises(ValueError, match="mixes prompt lengths \\[11, 13, 15\\]"):
        cg.prune_nodes(scorer, 0.8, positions=True, progress=False)
    with pytest.raises(ValueError, match="mixes prompt lengths"):
        cg.prune_edges(scorer.with_metric("kl"), 0.1, positions=True, progress=False)


def test_files_give_the_same_task(toy, tmp_path, mixed):
    rows = [
        {"clean": c, "corrupted": k, "answer": a, "wrong": w}
        for c, k, a, w in zip(CLEAN, CORRUPTED, ANSWERS, WRONG, strict=True)
    ]
    jsonl = tmp_path / "mixed.jsonl"
    jsonl.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    csv_path = tmp_path / "mixed.csv"
    csv_path.write_text(
        "clean,corrupted,answer,wrong\n"
        + "".join(f'"{r["clean"]}","{r["corrupted"]}",{r["answer"]},{r["wrong"]}\n' for r in rows)
    )
    for path in (jsonl, csv_path):
        task = cg.load_task(path, toy)
        assert task.name == "mixed" and torch.equal(task.clean_tokens, mixed.clean_tokens)
        assert torch.equal(task.lengths, mixed.lengths) and task.answers == ANSWERS


def test_corrupted_answers_are_the_default_wrong_answers(toy):
    task = cg.Task.from_prompts(toy, CLEAN[:2], CORRUPTED[:2], ANSWERS[:2],
                                corrupted_answers=["3", "6"])  # fmt: skip
    assert torch.equal(task.wrong_ids, task.corrupted_answer_ids)


BAD_FILES = {
    "missing column": (
        "t.csv",
        "clean,corrupted,wrong\na,b,c\n",
        r"t\.csv: missing column.*answer",
    ),
    "no wrong answer": ("t.csv", "clean,corrupted,answer\na,b,c\n", "wrong or corrupted_answer"),
    "empty file": ("t.csv", "", r"t\.csv is empty"),
    "header only": ("t.csv", "clean,corrupted,answer,wrong\n", "header but no rows"),
    "number in JSONL": (
        "t.jsonl",
        '{"clean": "Here is a list : 1 , 2 ,", "corrupted": "Here is a list : 5 , 9 ,", '
        '"answer": 3, "wrong": "2"}\n',
        r"column 'answer' must be non-empty text; rows t\.jsonl:1",
    ),
    "not JSON": ("t.jsonl", "{nope\n", r"t\.jsonl, line 1: not valid JSON"),
    "multi-token answer": (
        "t.csv",
        'clean,corrupted,answer,wrong\n"Here is a list : 1 , 2 ,","Here is a list : 5 , 9 ,",'
        '"3 4",2\n',
        r"answers must be single tokens.*row t\.csv:2: '3 4' -> \['3', '4'\].*first_token=True",
    ),
    "lengths differ": (
        "t.csv",
        'clean,corrupted,answer,wrong\n"Here is a list : 1 , 2 ,","Here is a list : 5 ,",3,2\n',
        r"same token length.*rows t\.csv:2 \(9 vs 7\)",
    ),
    "wrong suffix": ("t.txt", "clean,corrupted,answer\n", "use .csv or .jsonl"),
}


@pytest.mark.parametrize("case", BAD_FILES)
def test_bad_task_files_get_one_clear_error(toy, tmp_path, case):
    name, text, message = BAD_FILES[case]
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        cg.load_task(path, toy)


def test_undecodable_bytes_are_named(toy, tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes("clean,corrupted,answer,wrong\ncaf\xe9,b,c,d\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin\.csv: not UTF-8 text \(byte 32 is 0xe9\)"):
        cg.load_task(path, toy)


def test_first_token_opts_into_the_first_token(toy):
    task = cg.Task.from_prompts(toy, CLEAN[:1], CORRUPTED[:1], ["7 8"], wrong=["6"],
                                first_token=True)  # fmt: skip
    assert task.answers == ["7"]


def test_cli_task_file_records_path_and_checksum(tmp_path, capsys):
    path = tmp_path / "mine.csv"
    path.write_text(
        "clean,corrupted,answer,wrong\n"
        + "".join(
            f'"{c}","{k}",{a},{w}\n'
            for c, k, a, w in zip(CLEAN, CORRUPTED, ANSWERS, WRONG, strict=True)
        )
    )
    argv = ["discover", "--model", "toy-seq", "--task-file", str(path), "--method", "edges"]
    argv += ["--metric", "kl", "--ablation", "resample", "--out", str(tmp_path / "r"), "-q"]
    assert main([*argv, "--no-svg"]) == 0, capsys.readouterr().err
    run = json.loads((tmp_path / "r" / "toy-seq" / "mine" / "edges-0.01" / "run.json").read_text())
    assert run["task"]["file"] == str(path.resolve()) and len(run["task"]["sha256"]) == 64
    assert main(["discover", "--model", "toy-seq", "--task", "digits", "--task-file", str(path),
                 "--out", str(tmp_path / "r"), "-q"]) == 2  # fmt: skip
    assert "one of them" in capsys.readouterr().err
