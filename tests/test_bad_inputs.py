"""Every bad input gets one clear error and writes nothing (issue 16).

Command line: exit code 2, exactly one ``circuitgraph: error: ...`` line on stderr that names
the problem, no traceback, nothing on stdout, and the working folder exactly as it was.
Python API: the documented exception type with a one-line message naming the problem, and
nothing written. The command runs in-process (``main([...])``) on toy-seq and
random:gpt2-tiny, so the whole table takes seconds.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

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
    good = _circuit(folder)
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
    "task file of unknown words": (
        lambda t: ["discover", "--model", "toy-seq", "--task-file", f"{t}/french.csv", "-q"],
        "clean of 1 rows hold words the model's tokenizer does not know.*'un deux trois'",
    ),
    "task file with an unknown answer": (
        lambda t: ["discover", "--model", "toy-seq", "--task-file", f"{t}/banana.jsonl", "-q"],
        "answers of 1 rows .* does not know .*'banana'",
    ),
    "no command": (lambda t: [], "required: COMMAND"),
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
