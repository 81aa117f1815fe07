"""Every Python block of README.md and docs/*.md runs as written.

A page's ```` ```python ```` blocks run in order, in one namespace per page, in a temporary
working directory, so a block may use what an earlier block of its page defined and writes its
files under that directory. A block fenced ```` ```python no-run ```` (one that needs SmolLM2
or minutes) is compiled but not run. Tracebacks name the page and its line.
"""

from __future__ import annotations

import ast
import importlib
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

import circuitgraph as cg

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```python([^\n]*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
NO_RUN = "no-run"

# What a page's blocks leave behind, checked after they ran (paths under the working directory).
WRITES = {
    "README.md": ["results/quickstart/digits.svg", "results/quickstart/venn.svg"],
}


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # line of the page where the code starts
    source: str
    run: bool

    def __str__(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    def compile(self):
        """Code whose line numbers are the page's, so a traceback points into the page."""
        return compile("\n" * (self.line - 1) + self.source, str(self.page), "exec")


def blocks(page: Path) -> list[Block]:
    text = page.read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        options = match.group(1).split()
        assert set(options) <= {NO_RUN}, f"{page.name}: unknown fence option(s) {options}"
        line = text.count("\n", 0, match.start(2)) + 1
        found.append(Block(page, line, match.group(2), run=NO_RUN not in options))
    return found


ALL_BLOCKS = [block for page in PAGES for block in blocks(page)]


def test_every_page_is_found():
    names = {page.name for page in PAGES}
    assert {"README.md", "index.md", "api.md", "design.md"} <= names
    assert blocks(ROOT / "README.md"), "README has no python example"


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=str)
def test_block_compiles(block):
    block.compile()  # no-run blocks too: they must stay valid Python


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=str)
def test_block_prints_what_it_computes(block):
    """A bare expression would print nothing when the block runs as a script: use print()."""
    for statement in ast.parse(block.source).body:
        if isinstance(statement, ast.Expr) and not isinstance(statement.value, ast.Call):
            line = block.line + statement.lineno - 1
            pytest.fail(f"{block.page.name}:{line}: bare expression, wrap it in print()")


@pytest.mark.parametrize(
    "page",
    [page for page in PAGES if any(b.run for b in blocks(page))],
    ids=lambda page: page.name,
)
def test_page_runs(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace: dict = {"__name__": "__main__"}
    for block in blocks(page):
        if block.run:
            exec(block.compile(), namespace)
    for written in WRITES.get(page.name, []):
        assert (tmp_path / written).exists(), f"{page.name} did not write {written}"


def _resolve(path: str):
    """The object a mkdocstrings ``::: a.b.c`` identifier names."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for part in parts[cut:]:
            obj = getattr(obj, part)
        return obj
    raise ModuleNotFoundError(path)


def test_api_page_documents_every_public_name():
    entries = re.findall(r"^::: (\S+)", (ROOT / "docs" / "api.md").read_text(), re.MULTILINE)
    documented = {id(_resolve(entry)) for entry in entries}
    missing = [name for name in cg._API if id(getattr(cg, name)) not in documented]
    assert not missing, f"docs/api.md has no ::: entry for {missing}"


@pytest.mark.parametrize(
    ("page", "link"),
    [
        (page, link)
        for page in PAGES[1:]
        for link in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", page.read_text(encoding="utf-8"))
    ],
    ids=lambda value: value.name if isinstance(value, Path) else value,
)
def test_docs_links_stay_inside_the_repository(page, link):
    if re.match(r"https?://", link):
        return
    target = (page.parent / link).resolve()
    assert target.is_relative_to(ROOT) and target.exists(), f"{page.name}: {link}"
