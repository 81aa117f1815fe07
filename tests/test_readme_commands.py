"""The README works as written: its commands run in the listed order, its quickstart block is
``examples/quickstart.py``, figure captions (in the README and docs/) quote its commands, and it
links only inside the repo. Its Python blocks run in tests/test_docs.py."""

from __future__ import annotations

import glob
import re
import runpy
import shlex
from pathlib import Path

import pandas as pd
import pytest

from circuitgraph.cli import main

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _block(section: str, language: str) -> str:
    """The first ``language`` code block after the heading ``section``."""
    start = README.index(f"\n## {section}")
    match = re.compile(rf"```{language}\n(.*?)```", re.S).search(README, start)
    assert match is not None, f"no {language} block in {section}"
    return match.group(1)


def _commands() -> list[list[str]]:
    """The ``circuitgraph`` command lines of the Command line section, split like a shell
    would (``;`` separates commands, ``*`` globs are expanded later)."""
    commands = []
    for line in _block("Command line", "bash").splitlines():
        for part in line.split(";"):
            words = shlex.split(part, comments=True)
            if words:
                assert words[0] == "circuitgraph", line
                commands.append(words[1:])
    return commands


def _expand(words: list[str]) -> list[str]:
    expanded = []
    for word in words:
        expanded += sorted(glob.glob(word)) if "*" in word else [word]
    return expanded


def test_command_line_section_runs_in_order(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    commands = _commands()
    assert len(commands) >= 8
    for words in commands:
        code = main([*_expand(words), *(["-q"] if words[0] in ("discover", "sweep") else [])])
        out, err = capsys.readouterr()
        assert code == 0, f"circuitgraph {shlex.join(words)}: {err}"
    runs = tmp_path / "results" / "toy-seq"
    assert (runs / "digits" / "nodes-0.8" / "circuit.svg").stat().st_size > 0
    assert (runs / "number_words" / "sweep-0.97-0.9-0.8" / "nodes-0.8" / "scores.csv").exists()
    assert (tmp_path / "results" / "venn.svg").stat().st_size > 0
    assert (tmp_path / "results" / "digits.png").stat().st_size > 0
    assert {p.name for p in tmp_path.iterdir()} == {"results"}  # nothing outside results/


def test_scores_csv_gives_every_tried_node_a_score(tmp_path):
    """Kept nodes too: the score the circuit would have had without them when last tried."""
    out = tmp_path / "out"
    toy = ["--model", "toy-seq", "--task", "digits", "--n", "8", "-q", "--no-svg"]
    assert main(["discover", *toy, "--out", str(out)]) == 0
    table = pd.read_csv(out / "toy-seq" / "digits" / "nodes-0.8" / "scores.csv")
    nodes = table[table["section"] == "node"]
    kept = nodes[nodes["status"] == "kept"]
    assert len(kept) > 0 and kept["score"].notna().all(), kept
    assert (kept["score"] < 0.8).all()  # why they were kept
    assert nodes["score"].notna().all()


def test_quickstart_is_the_readme_block(tmp_path, monkeypatch, capsys):
    source = (ROOT / "examples" / "quickstart.py").read_text(encoding="utf-8")
    code = re.sub(r'^""".*?"""\n\n', "", source, count=1, flags=re.S)
    assert code == _block("Quickstart (Python)", "python")
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(ROOT / "examples" / "quickstart.py"), run_name="__main__")
    assert "shared:" in capsys.readouterr().out
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))
    assert written == [
        "results",
        "results/quickstart",
        "results/quickstart/digits.json",
        "results/quickstart/digits.svg",
        "results/quickstart/venn.svg",
    ]


def test_captions_quote_commands_of_the_readme():
    """A caption "from `circuitgraph ...`" anywhere in the docs names a command the README runs."""
    commands = {shlex.join(words) for words in _commands()}
    pages = [README] + [p.read_text(encoding="utf-8") for p in sorted(ROOT.glob("docs/*.md"))]
    quoted = [
        c
        for page in pages
        for c in re.findall(r"from `circuitgraph ([^`]+)`", page.replace("\n", " "))
    ]
    assert quoted
    for command in quoted:
        assert shlex.join(shlex.split(command)) in commands, command


@pytest.mark.parametrize("link", re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", README))
def test_links_stay_inside_the_repository(link):
    if re.match(r"https?://", link):
        return
    target = (ROOT / link).resolve()
    assert target.is_relative_to(ROOT) and target.exists(), link
