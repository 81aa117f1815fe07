"""Every bad input gets one clear error and writes nothing (issue 16).

Command line: exit code 2, exactly one ``circuitgraph: error: ...`` line on stderr that names
the problem, no traceback, nothing on stdout, and the working folder exactly as it was.
Python API: the documented exception type with a one-line message naming the problem, and
nothing written. The command runs in-process (``main([...])``) on toy-seq and
random:gpt2-tiny, so the whole table takes seconds.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import circuitgraph as cg
from circuitgraph.cli import main

TOY = ["--model", "toy-seq", "--task", "digits", "--n", "4", "-q", "--no-svg"]
TINY = "random:gpt2-tiny"


def _circuit(folder: Path) -> dict:
    """The JSON of a small toy-seq node circuit, also saved as ``folder/good.json``."""
    model = cg.load_model("toy-seq")
    circuit = cg.Circuit.from_nodes(model.cfg, ["a0.0", "m1"], qkv=False)
    circuit.to_json(folder / "good.json")
    return json.loads((folder / "good.json").read_text())


def _write(folder: Path, name: str, data: dict | bytes) -> str:
    path = folder / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(json.dumps(data))
    return str(path)


def _setup(folder: Path) -> None:
    """What the rows refer to: a file, circuits good and bad, an earlier run with notes."""
    (folder / "file").write_text("not a folder, not JSON")
    (folder / "figure.svg").write_text("<svg/>")  # a figure written earlier
    good = _circuit(folder)
    (folder / "good.svg").write_text("<svg/>")  # render's default output of good.json
    _write(folder, "other.json", good)
    _write(folder, "latin1.json", json.dumps(good).replace("toy-seq", "toy-séq").encode("latin-1"))
    _write(folder, "three.json", good | {"config": good["config"] | {"n_layers": "three"}})
    _write(folder, "short_edge.json", good | {"level": "edge", "edges": [["a0.0"]]})
    _write(folder, "shape.json", {"nodes": []})
    run = folder / "runs" / "toy-seq" / "digits" / "nodes-0.8"
    run.mkdir(parents=True)
    (run / "run.json").write_text("{}")
    (run / "NOTES.txt").write_text("my notes")
    header = "clean,corrupted,answer,wrong\n"
    (folder / "french.csv").write_text(header + "un deux trois,quatre cinq six,sept,huit\n")
    (folder / "banana.jsonl").write_text(
        json.dumps({"clean": "1 2 3", "corrupted": "4 5 6", "answer": "banana", "wrong": "7"})
        + "\n"
    )


# name -> (argv given the setup folder t, regex the error line must match)
CLI: dict[str, tuple[Callable[[Path], list[str]], str]] = {
    # rows of issue 16
    "device banana": (
        lambda t: ["discover", *TOY, "--device", "banana"],
        "unknown device 'banana'",
    ),
    "device meta": (lambda t: ["discover", *TOY, "--device", "meta"], "unsupported device 'meta'"),
    "context shorter than the prompts": (
        lambda t: ["discover", "--model", f"{TINY},n_ctx=4", *TOY[2:]],
        r"prompts of \d+ tokens .* at most 4 \(n_ctx\)",
    ),
    "n_heads=0": (
        lambda t: ["discover", "--model", f"{TINY},n_heads=0", *TOY[2:]],
        "n_heads=0 .* must be at least 1",
    ),
    "n_layers=0": (
        lambda t: ["discover", "--model", f"{TINY},n_layers=0", *TOY[2:]],
        "n_layers=0 .* must be at least 1",
    ),
    "existing run folder": (
        lambda t: ["discover", *TOY, "--out", f"{t}/runs"],
        "nodes-0.8 already exists; pass --overwrite",
    ),
    "venn to .txt": (
        lambda t: ["overlap", f"{t}/good.json", f"{t}/good.json", "--venn", f"{t}/out.txt"],
        "format 'txt' is not a figure format",
    ),
    "out on a virtual file system": (
        lambda t: ["discover", *TOY, "--out", "/proc/x"],
        "cannot write /proc/x/.*cannot create anything in /proc",
    ),
    "circuit file not UTF-8": (lambda t: ["render", f"{t}/latin1.json"], "latin1.json"),
    "n_layers not a number": (lambda t: ["render", f"{t}/three.json"], "three.json.*n_layers"),
    "edge with one end": (lambda t: ["render", f"{t}/short_edge.json"], "short_edge.json.*edge"),
    "render a folder": (lambda t: ["render", f"{t}/runs"], "is a folder, not a circuit file"),
    "hub model offline": (
        lambda t: ["discover", "--model", "pythia-70m", *TOY[2:]],
        "could not load 'pythia-70m'.*offline: toy-seq",
    ),
    # handled well before issue 16: keep them so
    "unknown task": (lambda t: ["discover", *TOY[:2], "--task", "nope"], "unknown task 'nope'"),
    "unknown corruption": (
        lambda t: ["discover", *TOY, "--corruption", "shuffle"],
        "unknown corruption 'shuffle'",
    ),
    "unknown template": (
        lambda t: ["discover", *TOY, "--template", "poem"],
        "unknown template 'poem'",
    ),
    "threshold 1.5": (lambda t: ["discover", *TOY, "--threshold", "1.5"], r"must be in \[0, 1\]"),
    "threshold nan": (lambda t: ["discover", *TOY, "--threshold", "nan"], "must be finite"),
    "tau not a number": (
        lambda t: ["discover", *TOY, "--method", "edges", "--tau", "x"],
        "not a number: 'x'",
    ),
    "edge order with nodes": (
        lambda t: ["discover", *TOY, "--edge-order", "acdc"],
        "--edge-order applies to --method edges",
    ),
    "acdc order with positions": (
        lambda t: ["discover", *TOY, "--method", "edges", "--edge-order", "acdc", "--positions"],
        "no token positions",
    ),
    "tau with nodes": (lambda t: ["discover", *TOY, "--tau", "0.1"], "--tau applies to --method"),
    "kl with nodes": (lambda t: ["discover", *TOY, "--metric", "kl"], "node pruning needs"),
    "denoising with mean": (
        lambda t: ["discover", *TOY, "--direction", "denoising"],
        "denoising needs --ablation resample",
    ),
    "n 0": (lambda t: ["discover", *TOY, "--n", "0"], "must be >= 1"),
    "n not a number": (lambda t: ["discover", *TOY, "--n", "many"], "not an integer: 'many'"),
    "threads 0": (lambda t: ["discover", *TOY, "--threads", "0"], "must be >= 1"),
    "sweep threshold 2": (lambda t: ["sweep", *TOY, "--thresholds", "0.9", "2"], "must be in"),
    "unknown model": (
        lambda t: ["discover", "--model", "no-such-model", *TOY[2:]],
        "unknown model 'no-such-model'",
    ),
    "unknown preset": (
        lambda t: ["discover", "--model", "random:gpt5", *TOY[2:]],
        "unknown random preset 'gpt5'",
    ),
    "out under a file": (lambda t: ["discover", *TOY, "--out", f"{t}/file/out"], "not a folder"),
    "malformed circuit": (lambda t: ["render", f"{t}/shape.json"], "shape.json"),
    "not JSON": (lambda t: ["render", f"{t}/file"], "file"),
    "missing file": (lambda t: ["render", f"{t}/missing.json"], "no such circuit file"),
    "render to .txt": (
        lambda t: ["render", f"{t}/good.json", "-o", f"{t}/c.txt"],
        "format 'txt'; use .svg, .png, .pdf or .dot",
    ),
    "venn of one file": (
        lambda t: ["overlap", f"{t}/good.json", "--venn", f"{t}/v.svg"],
        "needs at least 2 circuit files",
    ),
    "names count": (
        lambda t: ["overlap", f"{t}/good.json", f"{t}/shape.json", "--names", "a"],
        "--names gives 1 names for 2 files",
    ),
    "overlap a missing file": (
        lambda t: ["overlap", f"{t}/good.json", f"{t}/missing.json"],
        "no such circuit file",
    ),
    "bad head": (lambda t: ["analyse", *TOY[:-1], "--heads", "a9.9"], "a9.9"),
    "heads and circuit": (
        lambda t: ["analyse", *TOY[:-1], "--heads", "a0.0", "--circuit", f"{t}/good.json"],
        "give --heads or --circuit, not both",
    ),
    "unknown task listed": (lambda t: ["tasks", "nope"], "unknown task 'nope'"),
    "unknown option": (lambda t: ["discover", *TOY, "--colour"], "unrecognized arguments"),
    # rows of issue 27
    "task file that is a folder": (
        lambda t: ["discover", "--model", "toy-seq", "--task-file", f"{t}/runs", "-q"],
        "runs is a folder, not a .csv or .jsonl file",
    ),
    "task file of unknown words": (
        lambda t: ["discover", "--model", "toy-seq", "--task-file", f"{t}/french.csv", "-q"],
        "clean of 1 rows hold words the model's tokenizer does not know.*'un deux trois'",
    ),
    "task file with an unknown answer": (
        lambda t: ["discover", "--model", "toy-seq", "--task-file", f"{t}/banana.jsonl", "-q"],
        "answers of 1 rows .* does not know .*'banana'",
    ),
    # rows of issue 27, items 7-9: caps, memory sizes, plain names, nothing overwritten
    "n above the cap": (
        lambda t: ["discover", *TOY, "--n", "100000000"],
        "--n: at most 100,000 prompts, got 100000000",
    ),
    "max-memory of an unknown unit": (
        lambda t: ["discover", *TOY, "--max-memory", "8XB"],
        "--max-memory: not a memory size: '8XB'",
    ),
    "max-memory below 1 KiB": (
        lambda t: ["discover", *TOY, "--max-memory", "512B"],
        "--max-memory: memory size '512B' is below 1 KiB; did you mean 512GiB",
    ),
    "max-memory nan": (
        lambda t: ["discover", *TOY, "--max-memory", "nan"],
        "--max-memory: not a memory size: 'nan'",
    ),
    "seed above 2**63": (
        lambda t: ["discover", *TOY, "--seed", str(2**70)],
        r"--seed: must be from 0 to 2\*\*63 - 1",
    ),
    "threads beyond the CPUs": (
        lambda t: ["discover", *TOY, "--threads", "100000000"],
        "--threads: at most this machine's",
    ),
    "tag with a path": (
        lambda t: ["discover", *TOY, "--tag", "../x"],
        "--tag: '../x' is not a plain name",
    ),
    "empty out": (lambda t: ["discover", *TOY, "--out", ""], "--out: must not be empty"),
    "venn onto an existing file": (
        lambda t: ["overlap", f"{t}/good.json", f"{t}/other.json", "--venn", f"{t}/figure.svg"],
        "figure.svg already exists; pass --overwrite",
    ),
    "render onto an existing file": (
        lambda t: ["render", f"{t}/good.json", "-o", f"{t}/figure.svg"],
        "figure.svg already exists; pass --overwrite",
    ),
    "render onto its existing default output": (
        lambda t: ["render", f"{t}/good.json"],
        "good.svg already exists; pass --overwrite",
    ),
    "one circuit file by two paths": (
        lambda t: ["overlap", f"{t}/good.json", f"{t}/runs/../good.json"],
        "the same circuit file is given twice: .*good.json",
    ),
    "tasks with an unknown model": (
        lambda t: ["tasks", "--model", "no-such-model"],
        "unknown model 'no-such-model'",
    ),
    "no command": (lambda t: [], "required: COMMAND"),
    # issue 27, items 3-4: held out by underlying sequence (32 prompts show all 6 toy digits)
    "held-out with every sequence seen": (
        lambda t: ["evaluate", f"{t}/good.json", *TOY[:-1], "--n", "32", "--held-out"],
        "--held-out on task 'digits': .* share their sequence with the discovery prompts",
    ),
    # issue 27, items 3-4: an interval over one prompt, a spread over one resample
    "evaluate one prompt": (
        lambda t: ["evaluate", f"{t}/good.json", *TOY[:-1], "--n", "1"],
        "evaluate's confidence interval needs at least 2 distinct prompts, got 1",
    ),
    "stability of one resample": (
        lambda t: ["stability", *TOY[:-1], "--resamples", "1"],
        r"stability \(--resamples\) needs at least 2 resamples, got 1",
    ),
}
if torch.cuda.is_available():
    CLI.pop("device meta")
else:
    CLI["device cuda"] = (
        lambda t: ["discover", *TOY, "--device", "cuda"],
        "CUDA is not available on this machine",
    )


def _snapshot(folder: Path) -> dict[str, bytes | None]:
    """Every path under ``folder`` (hidden ones included) with a file's bytes."""
    return {
        str(p.relative_to(folder)): p.read_bytes() if p.is_file() else None
        for p in sorted(folder.rglob("*"))
    }


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """The setup in a fresh folder that is also the current one (default --out: results/)."""
    _setup(tmp_path)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.parametrize("case", list(CLI))
def test_cli_bad_input(workdir, capsys, case):
    argv, pattern = CLI[case]
    before = _snapshot(workdir)
    code = main(argv(workdir))
    out, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("circuitgraph: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert "Traceback" not in err and out == ""
    assert _snapshot(workdir) == before


def _big_task_file(folder: Path, rows: int) -> str:
    """A toy-seq task file of ``rows`` digit sequences."""
    lines = ["clean,corrupted,answer,wrong"]
    for i in range(rows):
        start, other = 1 + i % 5, 1 + (i * 7) % 5
        clean = " ".join(str(start + j) for j in range(4))
        corrupted = " ".join(str(other + (j * 3) % 5) for j in range(4))
        lines.append(f"{clean},{corrupted},{start + 4},{start + 3}")
    (folder / "big.csv").write_text("\n".join(lines) + "\n")
    return str(folder / "big.csv")


@pytest.mark.parametrize("room", ["chunks", "none"])
def test_cli_refuses_a_task_bigger_than_the_memory(workdir, capsys, monkeypatch, room):
    """Issue 27: a 10,000-row task file started a 19 GiB run on a 24 GiB machine. Without
    --max-memory, a run estimated above the memory available is refused before any pruning:
    with a --max-memory (a unit included) that chunks it, or fewer rows when nothing fits."""
    from circuitgraph.scoring.memory import estimate_memory

    argv = ["discover", "--model", "toy-seq", "--task-file", _big_task_file(workdir, 400), "-q"]
    model = cg.load_model("toy-seq")
    memory = estimate_memory(model, cg.load_task(workdir / "big.csv", model))
    assert memory.minimum("nodes") / 0.8 < memory.total("nodes")  # chunks would fit
    available = memory.total("nodes") - 1 if room == "chunks" else memory.minimum("nodes") // 2
    monkeypatch.setattr("circuitgraph.scoring.memory.available_bytes", lambda device: available)
    before = _snapshot(workdir)
    code = main(argv)
    out, err = capsys.readouterr()
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("circuitgraph: error: "), err
    assert re.search(r"400 prompts of \d+ tokens need about .* GiB \(nodes\), more than", err)
    if room == "chunks":
        budget = re.search(r"pass --max-memory (\S+GiB) to run in chunks", err)
        assert budget, err
        assert main([*argv, "--max-memory", budget.group(1), "--no-svg"]) == 0  # and it runs
    else:
        assert "use fewer rows in --task-file" in err
        assert _snapshot(workdir) == before and out == ""


def _tiny_short_context():
    return cg.load_model(f"{TINY},n_ctx=4")


def _scorer():
    model = cg.load_model("toy-seq")
    return cg.Scorer(model, cg.make_task("digits", model, n=4))


def _toy_prompts(**rows: list[str]) -> cg.Task:
    """A one-row toy-seq task from prompts, with the given columns replaced."""
    columns = {"clean": ["1 2 3"], "corrupted": ["4 5 6"], "answers": ["4"], "wrong": ["7"]}
    return cg.Task.from_prompts(cg.load_model("toy-seq"), **(columns | rows))


def _from_json(t: Path, name: str):
    return lambda: cg.Circuit.from_json(t / name)


# name -> (call given the setup folder t, exception types, regex the message must match)
API: dict[str, tuple[Callable[[Path], Callable[[], object]], tuple, str]] = {
    "device banana": (
        lambda t: lambda: cg.load_model("toy-seq", device="banana"),
        (cg.ModelLoadError,),
        "unknown device 'banana'",
    ),
    "n_heads=0": (
        lambda t: lambda: cg.load_model(f"{TINY},n_heads=0"),
        (cg.ModelLoadError,),
        "n_heads=0",
    ),
    "n_layers=0": (
        lambda t: lambda: cg.load_model(f"{TINY},n_layers=0"),
        (cg.ModelLoadError,),
        "n_layers=0",
    ),
    "empty model name": (lambda t: lambda: cg.load_model(""), (cg.ModelLoadError,), "non-empty"),
    "task longer than the context": (
        lambda t: lambda: cg.make_task("digits", _tiny_short_context(), n=4),
        (ValueError,),
        "n_ctx",
    ),
    "n=2.5": (
        lambda t: lambda: cg.make_task("digits", cg.load_model("toy-seq"), n=2.5),
        (TypeError, ValueError),
        r"\bn\b.*2\.5",
    ),
    "threshold '0.8'": (
        lambda t: lambda: cg.prune_nodes(_scorer(), threshold="0.8", progress=False),
        (TypeError, ValueError),
        "threshold",
    ),
    "tau=True": (
        lambda t: lambda: cg.prune_edges(_scorer(), tau=True, progress=False),
        (TypeError, ValueError),
        "tau",
    ),
    "from_json not UTF-8": (lambda t: _from_json(t, "latin1.json"), (ValueError,), "latin1.json"),
    "from_json n_layers 'three'": (
        lambda t: _from_json(t, "three.json"),
        (ValueError,),
        "three.json.*n_layers",
    ),
    "from_json edge ['a0.0']": (
        lambda t: _from_json(t, "short_edge.json"),
        (ValueError,),
        "short_edge.json.*edge",
    ),
    "shared of nothing": (lambda t: lambda: cg.shared([]), (ValueError,), "at least one circuit"),
    "venn to .txt": (
        lambda t: (
            lambda: cg.venn(
                {
                    "a": cg.Circuit.from_json(t / "good.json"),
                    "b": cg.Circuit.from_json(t / "good.json"),
                },
                t / "venn.txt",
            )
        ),
        (ValueError,),
        "format 'txt'",
    ),
    "render to .txt": (
        lambda t: lambda: cg.Circuit.from_json(t / "good.json").render(t / "c.txt"),
        (ValueError,),
        "format 'txt'",
    ),
    # rows of issue 27: words the tokenizer does not know would be scored as <unk>
    "answer out of the vocabulary": (
        lambda t: lambda: _toy_prompts(answers=["banana"]),
        (ValueError,),
        r"answers of 1 rows hold words .* \('<unk>'|they become '<unk>'\).*'banana'",
    ),
    "prompt out of the vocabulary": (
        lambda t: lambda: _toy_prompts(clean=["un deux trois"]),
        (ValueError,),
        "clean of 1 rows .* does not know .*'un deux trois'",
    ),
    "NUL byte in a prompt": (
        lambda t: lambda: _toy_prompts(corrupted=["4 5\x006"]),
        (ValueError,),
        "corrupted of 1 rows .* does not know",
    ),
    "ioi with n_members": (
        lambda t: lambda: cg.make_task("ioi", cg.load_model("toy-seq"), n=2, n_members=5),
        (ValueError,),
        "task 'ioi' shows no sequence members: n_members applies to the sequence tasks",
    ),
    "ioi with a sequence task's corruption": (
        lambda t: lambda: cg.make_task("ioi", cg.load_model("toy-seq"), corruption="rand_all"),
        (ValueError,),
        r"unknown corruption 'rand_all' for task 'ioi'; known: \('abc',\)",
    ),
    "task file of unknown words": (
        lambda t: lambda: cg.load_task(t / "french.csv", cg.load_model("toy-seq")),
        (ValueError,),
        "clean of 1 rows .* does not know",
    ),
    # issue 27, items 3-4: held-out prompts, controls, curves
    "held out on the training task": (
        lambda t: lambda: cg.held_out_scorer(_scorer(), _scorer().task),
        (ValueError,),
        "held_out_scorer: 4 held-out prompts share their sequence with the discovery prompts",
    ),
    "held out on the same sequences in other words": (
        lambda t: (
            lambda: cg.held_out_scorer(
                _scorer(), cg.make_task("digits", cg.load_model("toy-seq"), n=4, seed=9)
            )
        ),
        (ValueError,),
        "held_out_scorer: .* share their sequence",
    ),
    "stability held out on its own prompts": (
        lambda t: (
            lambda: cg.stability(
                _scorer().task, lambda task: cg.full_circuit(task), resamples=2, held_out=_scorer()
            )
        ),
        (ValueError,),
        "stability: resample 0's prompts: .* share their sequence",
    ),
    "percentile over one random set": (
        lambda t: (
            lambda: cg.analysis.ablate_subcircuit(
                _scorer(),
                ["a0.0", "a0.1"],
                pool="circuit",
                circuit=cg.Circuit.from_nodes(
                    _scorer().model.cfg, ["a0.0", "a0.1", "a1.0", "a1.1"]
                ),
            )
        ),
        (ValueError,),
        "only 1 distinct random sets to compare with",
    ),
    "curve of an unknown protocol": (
        lambda t: lambda: cg.faithfulness_curve(_scorer(), {"a0.0": 1.0}, protocol="acdc"),
        (ValueError,),
        "unknown protocol 'acdc'",
    ),
    # issue 27, items 3-4: an interval over one prompt, a spread over one resample
    "evaluate on one prompt": (
        lambda t: (
            lambda: cg.evaluate(
                cg.Scorer(
                    cg.load_model("toy-seq"), cg.make_task("digits", cg.load_model("toy-seq"), n=1)
                ),
                cg.Circuit.from_json(t / "good.json"),
            )
        ),
        (ValueError,),
        "evaluate's confidence interval needs at least 2 distinct prompts, got 1",
    ),
    "stability of one resample": (
        lambda t: lambda: cg.stability(_scorer().task, lambda task: None, resamples=1),
        (ValueError,),
        "stability needs at least 2 resamples, got 1",
    ),
    "mean_over with zero ablation": (
        lambda t: (
            lambda: cg.Scorer(
                cg.load_model("toy-seq"), _scorer().task, ablation="zero", mean_over=_scorer().task
            )
        ),
        (ValueError,),
        "mean_over gives the values of ablation='mean', but this scorer's ablation is 'zero'",
    ),
}


@pytest.mark.parametrize("case", list(API))
def test_api_bad_input(workdir, case):
    call, types, pattern = API[case]
    before = _snapshot(workdir)
    with pytest.raises(types, match=pattern) as caught:
        call(workdir)()
    message = str(caught.value)
    assert message and "\n" not in message.strip(), message
    assert _snapshot(workdir) == before


def test_toy_training_refuses_zero_steps(workdir, capsys):
    from circuitgraph.toy.__main__ import main as toy_main

    with pytest.raises(SystemExit) as exit_:
        toy_main(["train", "--steps", "0", "--out", str(workdir / "toy")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "--steps: must be >= 1, got 0" in err and "Traceback" not in err
    assert not (workdir / "toy").exists()


@pytest.mark.parametrize("where", ["package", "existing"])
def test_toy_training_never_overwrites(workdir, capsys, where):
    """Issue 27: `python -m circuitgraph.toy train` wrote into the package without asking."""
    from circuitgraph.models.loading import TOY_DIR
    from circuitgraph.toy.__main__ import main as toy_main

    out = TOY_DIR if where == "package" else workdir / "runs"
    shipped = {p.name: p.read_bytes() for p in TOY_DIR.iterdir() if p.is_file()}
    before = _snapshot(workdir)
    with pytest.raises(SystemExit) as exit_:
        toy_main(["train", "--steps", "2", "--out", str(out)])
    assert exit_.value.code == 2
    message = "inside the circuitgraph package" if where == "package" else "pass --overwrite"
    assert message in capsys.readouterr().err
    assert _snapshot(workdir) == before
    assert {p.name: p.read_bytes() for p in TOY_DIR.iterdir() if p.is_file()} == shipped


@functools.cache
def _toy():
    return cg.load_model("toy-seq")


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["clean", "corrupted", "answers", "wrong", "prompts"]), st.text())
def test_from_prompts_takes_any_text_or_refuses_it_in_one_line(column, text):
    """Issue 27: any string, in any column of ``Task.from_prompts`` on toy-seq (whose vocabulary
    knows digits and a few words), gives a Task or one ValueError with a one-line message."""
    columns = {"clean": ["1 2 3"], "corrupted": ["4 5 6"], "answers": ["4"], "wrong": ["7"]}
    if column == "prompts":
        columns |= {"clean": [text], "corrupted": [text]}
    else:
        columns[column] = [text]
    try:
        task = cg.Task.from_prompts(_toy(), **columns)
    except ValueError as error:
        message = str(error)
        assert message.strip() and "\n" not in message.strip(), message
    else:
        assert isinstance(task, cg.Task) and len(task) == 1
