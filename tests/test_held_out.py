"""Held-out prompts are held out by underlying sequence, not only by prompt string (issue 27).

"Here is a list : 1 , 2 , 3 , 4 ," and "This is a sequence : 1 , 2 , 3 , 4 ," are two clean
prompts and one sequence. Task.split, held_out_scorer, stability, compare_methods and
``circuitgraph evaluate --held-out`` keep such prompts on one side, or refuse.
"""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

import circuitgraph as cg
from circuitgraph.cli import main
from circuitgraph.evaluation.held_out import check_held_out, outside
from circuitgraph.evaluation.stability import stability
from circuitgraph.guards import UncertaintyError

TASK = ["--model", "toy-seq", "--task", "digits", "--template", "lists", "-q"]


@pytest.fixture(scope="module")
def digits(toy):
    """24 digits prompts in the lists template: 24 distinct strings, 6 sequences."""
    return cg.make_task("digits", toy, n=24, template="lists", seed=1)


def _by_key(task: cg.Task) -> dict[str, set[str]]:
    prompts = defaultdict(set)
    for key, prompt in zip(task.sequence_keys(), task.clean_prompts, strict=True):
        prompts[key].add(prompt)
    return prompts


def test_sequence_keys_ignore_the_wording(toy, digits) -> None:
    assert digits.n_distinct == 24 and digits.n_sequences == 6
    worded = [p for p in _by_key(digits).values() if len(p) > 1]
    assert worded  # one sequence, several lead wordings
    a, b = sorted(worded[0])[:2]
    assert a.split(":")[1] == b.split(":")[1] and a.split(":")[0] != b.split(":")[0]
    other = cg.make_task("digits", toy, n=6, template="lists", seed=1, prepend_bos=True)
    assert other.bos and set(other.sequence_keys()) <= set(digits.sequence_keys())
    ioi = cg.make_task("ioi", toy, n=4)  # no members: the prompt itself
    assert ioi.n_members == 0 and ioi.sequence_keys() == ioi.clean_prompts
    assert len(digits.sequence_digests()[0]) == 16


def test_split_keeps_every_wording_of_a_sequence_on_one_side(digits) -> None:
    for seed in range(5):
        train, test = digits.split(0.5, seed=seed)
        assert not set(train.sequence_keys()) & set(test.sequence_keys())
        assert train.n_sequences == test.n_sequences == 3
        assert sorted(train.clean_prompts + test.clean_prompts) == sorted(digits.clean_prompts)
    # two wordings of one sequence: two distinct prompts, nothing to split
    key, prompts = next((k, p) for k, p in _by_key(digits).items() if len(p) > 1)
    one = digits.subset([i for i, k in enumerate(digits.sequence_keys()) if k == key])
    assert one.n_distinct >= 2 and one.n_sequences == 1
    with pytest.raises(ValueError, match="1 distinct sequence.*at least 2"):
        one.split(0.5)


def test_held_out_scorer_refuses_the_training_task_and_overlapping_tasks(toy, digits) -> None:
    train, test = digits.split(0.5, seed=0)
    scorer = cg.Scorer(toy, train)
    assert cg.held_out_scorer(scorer, test).task is test
    with pytest.raises(UncertaintyError, match="held_out_scorer: 12 held-out prompts share"):
        cg.held_out_scorer(scorer, train)
    # another seed: other prompt strings, the same six sequences
    again = cg.make_task("digits", toy, n=24, template="lists", seed=7)
    fresh = [p for p in again.clean_prompts if p not in set(train.clean_prompts)]
    assert fresh  # the old string check would have let these through
    with pytest.raises(UncertaintyError, match="share their sequence with the discovery"):
        cg.held_out_scorer(scorer, again.subset(range(len(again))))
    kept = again.subset(outside(again, train))
    assert len(kept) and cg.held_out_scorer(scorer, kept).task is kept
    check_held_out(train.sequence_digests(), kept, "digests as recorded")  # no error


def test_provenance_records_the_discovery_sequences(toy, digits) -> None:
    train, _ = digits.split(0.5, seed=0)
    circuit = cg.prune_nodes(cg.Scorer(toy, train), 0.8, progress=False)
    prompts = circuit.metadata["prompts"]
    assert prompts["sequences"] == sorted(set(train.sequence_digests()))
    assert (prompts["seed"], prompts["template"]) == (1, "lists")
    loaded = cg.Circuit.from_dict(json.loads(json.dumps(circuit.to_dict())))
    assert loaded.metadata["prompts"] == prompts


def test_stability_keeps_its_held_out_prompts_apart(toy, digits) -> None:
    train, test = digits.split(0.5, seed=0)
    held = cg.held_out_scorer(cg.Scorer(toy, train), test)
    seen: list[cg.Task] = []

    def discover(task: cg.Task) -> cg.Circuit:
        seen.append(task)
        return cg.Circuit.from_nodes(toy.cfg, ["a0.0", "m1"])

    # seeds: the task rebuilt with other seeds, less every held-out sequence
    result = stability(train, discover, resamples=2, method="seeds", model=toy, held_out=held)
    assert len(seen) == 2 and result.evaluation is not None
    for task in seen:
        assert len(task) and not set(task.sequence_keys()) & set(test.sequence_keys())
    # bootstrap resamples of the training half are disjoint too
    stability(train, discover, resamples=2, held_out=held, evaluate_resamples=50)
    assert all(not set(t.sequence_keys()) & set(test.sequence_keys()) for t in seen[2:])
    # a resample that shows a held-out sequence is refused before any discovery runs
    seen.clear()
    with pytest.raises(UncertaintyError, match="stability: resample 0's prompts"):
        stability(lambda seed: digits, discover, resamples=2, method="seeds", held_out=held)
    assert not seen


def test_compare_methods_refuses_an_overlapping_held_out_scorer(toy, digits) -> None:
    train, test = digits.split(0.5, seed=0)
    scorer = cg.Scorer(toy, train)
    with pytest.raises(UncertaintyError, match="compare_methods"):
        cg.compare_methods(scorer, held_out=cg.Scorer(toy, digits), methods=["eap"])
    with pytest.raises(UncertaintyError, match="held_out_scorer"):
        cg.compare_methods(scorer, held_out=digits, methods=["eap"])


def test_evaluate_held_out_reads_the_recorded_prompts_and_refuses_overlap(
    tmp_path, capsys, digits
) -> None:
    out = str(tmp_path)
    # 16 prompts show all 6 sequences of toy-seq's digits: nothing is left to hold out
    assert main(["discover", *TASK, "--n", "16", "--out", out, "--no-svg"]) == 0
    circuit = tmp_path / "toy-seq" / "digits" / "nodes-0.8" / "circuit.json"
    capsys.readouterr()
    code = main(["evaluate", str(circuit), *TASK, "--n", "4", "--held-out", "--out", out])
    err = capsys.readouterr().err
    assert code == 2 and "share their sequence with the discovery prompts" in err, err
    # the recorded prompts count, not --n and --seed: --n 2 would leave 4 sequences
    code = main(["evaluate", str(circuit), *TASK, "--n", "2", "--held-out", "--out", out])
    assert code == 2 and "share their sequence" in capsys.readouterr().err
    # your own held-out prompts (--task-file) are checked against the recorded ones
    columns = (digits.clean_prompts, digits.corrupted_prompts, digits.answers)
    rows = [
        {"clean": c, "corrupted": x, "answer": a, "wrong": "0"}
        for c, x, a in list(zip(*columns, strict=True))[:3]
    ]
    path = tmp_path / "mine.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    code = main(["evaluate", str(circuit), "--model", "toy-seq", "--task-file", str(path), "-q"]
                + ["--held-out", "--out", out])  # fmt: skip
    assert code == 2 and "--held-out" in capsys.readouterr().err
    assert not (tmp_path / "toy-seq" / "mine").exists()
