"""The README stays a landing page: short, with the set-up commands CI and newcomers rely on.

Its Python blocks run in tests/test_docs.py (one mechanism for the README and docs/), its
shell commands in tests/test_readme_commands.py.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def _sections() -> list[str]:
    return re.findall(r"^## (.+)$", README, flags=re.MULTILINE)


def test_readme_reads_in_five_minutes():
    assert len(README.splitlines()) <= 200


def test_setup_is_make_demo_and_make_test():
    """CI runs the README's test command: it must stay ``make test``, a Makefile target."""
    first = re.search(r"```bash\n(.*?)```", README, flags=re.DOTALL)
    assert first is not None
    commands = [line.split("#")[0].strip() for line in first.group(1).splitlines()]
    assert commands == ["make demo", "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    for target in ("demo", "test", "lint", "docs"):
        assert re.search(rf"^{target}:", makefile, flags=re.MULTILINE), target
    assert "make test" in (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "source .venv/bin/activate" in README


def test_sections_a_newcomer_needs():
    sections = _sections()
    for wanted in ("Quickstart (Python)", "Command line", "What you get", "Development"):
        assert wanted in sections, wanted
    assert any(s.startswith("Headline result") for s in sections)


def test_headline_result_has_its_command_and_spread():
    start = README.index("\n## Headline result")
    section = README[start : README.index("\n## ", start + 1)]
    assert "python examples/paper_workflow.py" in section
    assert "±" in section and "CI" in section


def test_every_docs_page_is_linked():
    linked = set(re.findall(r"\(docs/([\w-]+\.md)", README))
    pages = {p.name for p in (ROOT / "docs").glob("*.md")} - {"index.md"}
    assert pages <= linked, pages - linked
