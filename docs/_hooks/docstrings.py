"""Griffe extension for the API page: circuitgraph's docstrings as Markdown.

The docstrings are written for readers of the source and for doctest: reST literals
(``code``), Sphinx roles (:func:`name`), numpy-style underlined headers with ``name: text``
entries, and ``>>>`` examples. mkdocstrings renders a docstring as Markdown, where ``>>>``
lines would become nested block quotes and a parameter list one run-on paragraph. This
extension rewrites each docstring when griffe loads it, without parsing it into sections (the
site uses ``docstring_style: null``), so no text is dropped:

- an underlined header (``Parameters`` over ``----------``) becomes a bold line;
- under ``Parameters``, ``Attributes`` and ``Raises``, each ``name: text`` entry a list item;
- each run of ``>>>`` lines with its expected output a ``pycon`` code block;
- a Sphinx role (:func:`~a.b`) a code span (`b`).
"""

from __future__ import annotations

import re
import textwrap

import griffe

HEADER_RULE = re.compile(r"^\s*-{3,}\s*$")
ENTRY = re.compile(r"^(\*{0,2}\w+): ")
ROLE = re.compile(r":(?:func|meth|class|mod|attr|data|exc|obj):`~?([^`]+)`")
LISTS = {"Parameters", "Attributes", "Raises", "Other Parameters"}


def _role(match: re.Match[str]) -> str:
    target = match.group(1)
    return f"`{target.rsplit('.', 1)[-1] if match.group(0).count('~') else target}`"


def to_markdown(text: str) -> str:
    lines = text.splitlines()
    out: list[str] = []
    section = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.strip() and i + 1 < len(lines) and HEADER_RULE.match(lines[i + 1]):
            section = line.strip()
            out += ["", f"**{section}**", ""]
            i += 2
            continue
        if line.lstrip().startswith(">>>"):
            block = []
            while i < len(lines) and lines[i].strip():
                block.append(lines[i])
                i += 1
            out += ["", "```pycon", *textwrap.dedent("\n".join(block)).splitlines(), "```", ""]
            continue
        if section in LISTS and ENTRY.match(line):
            line = ENTRY.sub(lambda m: f"- `{m.group(1)}`: ", line)
        elif section in LISTS and line.startswith(" ") and line.strip():
            line = "    " + line.strip()  # a continuation line of the entry above
        elif not line.strip():
            section = section if section not in LISTS else ""
        out.append(ROLE.sub(_role, line))
        i += 1
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip()


class MarkdownDocstrings(griffe.Extension):
    """Rewrite every docstring griffe loads with :func:`to_markdown`."""

    def on_instance(self, *, obj: griffe.Object, **kwargs: object) -> None:
        if obj.docstring is not None:
            obj.docstring.value = to_markdown(obj.docstring.value)
