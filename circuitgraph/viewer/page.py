"""The viewer's HTML page: one self-contained file (d3, script, style and data inline).

The page template, style and script are package data in ``assets/``; d3 v7 is vendored there
(ISC licence, version in ``assets/VERSION``). The page's Content-Security-Policy forbids every
network request, so it opens the same offline, from an e-mail or a results folder.
"""

from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any

from circuitgraph.files import atomic_output

__all__ = ["ASSETS", "D3_VERSION", "render_page", "write_page"]

ASSETS = Path(__file__).resolve().parent / "assets"
D3_VERSION = "7.9.2"
_MARKERS = ("/*CSS*/", "/*DATA*/", "/*D3*/", "/*VIEWER*/")


def _asset(name: str) -> str:
    path = ASSETS / name
    if not path.is_file():
        raise RuntimeError(
            f"the viewer's asset {path} is missing: reinstall circuitgraph "
            "(pip install -e . keeps circuitgraph/viewer/assets with the package)"
        )
    return path.read_text(encoding="utf-8")


def _json(data: Any) -> str:
    """JSON safe inside a ``<script>`` element: no ``<`` at all (so no ``</script>``)."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
    return text.replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def render_page(data: dict[str, Any]) -> str:
    """The page's HTML text for ``data`` (from :func:`circuitgraph.viewer.data.page_data`)."""
    from circuitgraph import __version__

    template = _asset("template.html")
    title = html.escape(str(data.get("title") or "circuit"))
    template = template.replace("{{TITLE}}", title).replace("{{VERSION}}", __version__)
    parts = {
        "/*CSS*/": _asset("viewer.css"),
        "/*DATA*/": _json(data),
        "/*D3*/": _asset("d3.v7.min.js").replace("</script", "<\\/script"),
        "/*VIEWER*/": _asset("viewer.js"),
    }
    out = []
    rest = template
    for marker in _MARKERS:  # single pass: inserted text is never searched for markers
        before, found, rest = rest.partition(marker)
        if not found:
            raise RuntimeError(f"viewer template lacks {marker}; reinstall circuitgraph")
        out += [before, parts[marker]]
    return "".join([*out, rest])


def write_page(path: str | Path, data: dict[str, Any], overwrite: bool = False) -> Path:
    """Write the page for ``data`` to ``path`` atomically; an existing file is kept (and
    FileExistsError raised) unless ``overwrite``."""
    path = Path(path)
    if path.suffix.lower() not in (".html", ".htm"):
        raise ValueError(f"cannot write the viewer to {path}: give a file name ending in .html")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: give a file name such as {path}/view.html")
    if path.exists() and not overwrite:
        raise FileExistsError(
            f"{path} already exists; pass overwrite=True (--overwrite) to replace it, "
            "or choose another file name"
        )
    text = render_page(data)
    with atomic_output(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
