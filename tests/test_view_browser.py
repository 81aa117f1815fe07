"""The viewer in a real browser: headless Chromium (Debian's ``chromium``) driven by Playwright.

Skipped, with the reason, where either is missing; ``make setup`` and ``.ci/run`` install both.
Set CIRCUITGRAPH_SCREENSHOT=docs/images/viewer.png to refresh the README's screenshot.
"""

from __future__ import annotations

import os
import shutil
import types
from pathlib import Path

import networkx as nx
import pytest
from test_view import TOY, edge_circuit, node_circuit

from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.viewer import view

sync_api = pytest.importorskip(
    "playwright.sync_api", reason="playwright is not installed (pip install -e '.[dev]')"
)
CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
if CHROMIUM is None:
    pytest.skip(
        "no Chromium on PATH: install Debian's chromium package (apt-get install chromium)",
        allow_module_level=True,
    )


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


class Page:
    """A loaded viewer page with its console errors and network requests recorded."""

    def __init__(self, browser, path: Path, hash: str = "") -> None:
        self.page = browser.new_page(viewport={"width": 1280, "height": 800})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.url = path.resolve().as_uri()
        self.page.goto(self.url + hash)
        self.page.wait_for_function("window.circuitView && window.circuitView.ready")

    def js(self, expression: str, arg=None):
        return self.page.evaluate(expression, arg)

    def visible_edges(self) -> set[tuple[str, str]]:
        return {tuple(e) for e in self.js("circuitView.visibleEdges()")}

    def dom_visible_edges(self) -> set[tuple[str, str]]:
        found = self.js(
            "[...document.querySelectorAll('path.edge')].filter(e => e.style.display !== 'none')"
            ".map(e => [e.dataset.s, e.dataset.t])"
        )
        return {tuple(e) for e in found}

    def slide(self, position: int) -> None:
        self.js(
            "p => { const s = document.getElementById('slider'); s.value = p;"
            " s.dispatchEvent(new Event('input')); }",
            position,
        )


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pages")
    other = Circuit.from_edges(TOY, [("embed", "a0.1.q"), ("a0.1", "logits"), ("m1", "logits")])
    return {
        "edges": view(edge_circuit(), folder / "edges.html"),
        "nodes": view(
            node_circuit(),
            folder / "nodes.html",
            analyses={"OV": [{"head": "a0.1", "successor_score": 0.625}]},
        ),
        "compare": view({"A": edge_circuit(), "B": other}, folder / "compare.html"),
        "sizes": (edge_circuit(), other),
    }


def test_loads_offline_without_errors_and_counts_match(browser, pages):
    for name, circuit in (("edges", edge_circuit()), ("nodes", node_circuit())):
        page = Page(browser, pages[name])
        assert page.errors == []
        assert page.requests == [page.url]  # the file itself, nothing else
        counts = page.js("circuitView.counts()")
        locate = page.page.locator
        assert counts["nodes"] == circuit.number_of_nodes() == locate("g.node").count()
        assert counts["edges"] == circuit.number_of_edges() == locate("path.edge").count()
        assert counts["visibleEdges"] == circuit.number_of_edges()
        page.page.close()


def test_slider_hides_and_shows_the_right_edges(browser, pages):
    page = Page(browser, pages["edges"])
    circuit = edge_circuit()
    effects = {(u, v): d.get("effect") for u, v, d in circuit.edges(data=True)}

    def x_(edge):
        return effects[edge]

    for position in (0, 400, 800, 1000, 0):
        page.slide(position)
        cut = page.js("circuitView.state.t")
        expected = {e for e, x in effects.items() if x is None or abs(x) >= cut}
        assert page.visible_edges() == expected == page.dom_visible_edges(), position
    page.js("circuitView.set({sm: 'topk', k: 2})")
    valued = sorted((e for e, x in effects.items() if x is not None), key=lambda e: -abs(x_(e)))
    unvalued = {e for e, x in effects.items() if x is None}
    assert page.dom_visible_edges() == set(valued[:2]) | unvalued
    assert "k=2" in page.js("location.hash")
    assert page.errors == []


def test_hover_cards_show_the_numbers(browser, pages):
    page = Page(browser, pages["nodes"])
    page.page.hover('g.node[data-id="a0.1"]')
    card = page.page.locator("#card")
    assert card.is_visible()
    text = card.inner_text()
    assert "importance" in text and "0.35" in text and "score without it" in text and "0.5" in text
    assert "OV" in text and "successor score\t0.625" in text
    page = Page(browser, pages["edges"])
    page.page.dispatch_event('path.edge[data-s="embed"][data-t="a0.2.v"]', "mouseover")
    text = page.page.locator("#card").inner_text()
    assert "margin to tau" in text and "tie" in text and "within 1e-5 of tau" in text
    page.page.dispatch_event('path.edge[data-s="a0.1"][data-t="a2.3.k"]', "mouseover")
    text = page.page.locator("#card").inner_text()
    assert "-0.8" in text and "-0.85" in text and "within" not in text  # margin -0.8 - 0.05


def test_comparison_colours_are_the_set_algebra(browser, pages):
    a, b = pages["sizes"]
    page = Page(browser, pages["compare"])
    regions = page.js(
        "[...document.querySelectorAll('path.edge')].map(e => [e.dataset.s, e.dataset.t,"
        " e.dataset.region, e.getAttribute('stroke')])"
    )
    by_region: dict[str, set] = {}
    colours: dict[str, set] = {}
    for u, v, region, colour in regions:
        by_region.setdefault(region, set()).add((u, v))
        colours.setdefault(region, set()).add(colour)
    assert by_region["A only"] == set((a - b).edges)
    assert by_region["B only"] == set((b - a).edges)
    assert by_region["shared"] == set((a & b).edges)
    assert all(len(c) == 1 for c in colours.values()) and len(set().union(*colours.values())) == 3
    nodes = page.js(
        "[...document.querySelectorAll('g.node')].map(g => [g.dataset.id, g.dataset.region])"
    )
    assert {n for n, r in nodes if r == "shared"} == set(a.nodes) & set(b.nodes)
    assert page.errors == []


def test_click_lights_ancestors_and_descendants(browser, pages):
    page = Page(browser, pages["edges"])
    page.page.click('g.node[data-id="a0.1"]')
    lit = set(page.js("[...document.querySelectorAll('g.node.lit')].map(g => g.dataset.id)"))
    graph = nx.DiGraph(list(edge_circuit().edges))
    assert lit == {"a0.1"} | nx.ancestors(graph, "a0.1") | nx.descendants(graph, "a0.1")
    assert "sel=a0.1" in page.js("location.hash")
    page.page.uncheck("#show-mlp")
    assert page.page.locator('g.node[data-id="m1"]').is_hidden()
    assert not any("m1" in e for e in page.visible_edges())
    page.page.fill("#search", "a2.3")
    matches = page.js("[...document.querySelectorAll('g.node.match')].map(g => g.dataset.id)")
    assert set(matches) == {"a2.3", "a2.3.k"}  # by name: the head and its input


def test_url_hash_restores_a_view(browser, pages):
    page = Page(browser, pages["edges"], "#t=0.25&hide=qkv&sel=a2.3")
    state = page.js("circuitView.state")
    assert state["t"] == 0.25 and state["qkv"] is False and state["sel"] == "a2.3"
    assert page.page.locator('g.node[data-id="a0.1.q"]').is_hidden()
    assert page.page.locator('g.node[data-id="a2.3"].selected').count() == 1
    shown = page.visible_edges()
    assert shown and all(abs(edge_circuit().edges[e].get("effect", 1)) >= 0.25 for e in shown)
    assert page.errors == [] and page.requests == [page.url]
    zoomed = Page(browser, pages["edges"], "#z=10,20,1.5")
    assert zoomed.js("document.getElementById('viewport').getAttribute('transform')") == (
        "translate(10,20) scale(1.5)"
    )


def test_export_svg_is_the_visible_view(browser, pages):
    page = Page(browser, pages["edges"])
    page.slide(800)
    text = page.js("circuitView.exportSVG()")
    assert text.startswith("<svg") and text.count("<path") == len(page.visible_edges())


def test_export_buttons_download_svg_and_png(browser, pages, tmp_path):
    page = Page(browser, pages["edges"])
    for button, magic in (("#export-svg", b"<svg"), ("#export-png", b"\x89PNG")):
        with page.page.expect_download() as download:
            page.page.click(button)
        path = tmp_path / download.value.suggested_filename
        download.value.save_as(path)
        assert path.read_bytes().startswith(magic), button
    assert page.errors == []
    assert all(not url.startswith(("http:", "https:")) for url in page.requests)


def test_screenshot(browser, tmp_path):
    """The README's picture: toy-seq's digits circuit from edge pruning, a head hovered.
    CIRCUITGRAPH_SCREENSHOT=docs/images/viewer.png writes it there."""
    import circuitgraph as cg

    model = cg.load_model("toy-seq")
    scorer = cg.Scorer(model, cg.make_task("digits", model, n=8))
    circuit = cg.prune_edges(scorer, tau=0.01, progress=False)
    target = Path(os.environ.get("CIRCUITGRAPH_SCREENSHOT") or tmp_path / "viewer.png")
    page = Page(browser, circuit.to_html(tmp_path / "digits.html"))
    assert page.errors == [] and page.requests == [page.url]
    page.page.click('g.node[data-id="a1.1"]')
    page.page.hover('g.node[data-id="a1.1"]')
    page.page.screenshot(path=str(target))
    assert target.read_bytes().startswith(b"\x89PNG")


def test_gqa_positions_levels_and_curve_pages_draw(browser, tmp_path):
    gqa = types.SimpleNamespace(n_layers=2, n_heads=4, n_key_value_heads=2, model_name="gqa")
    positional = Circuit.from_nodes(TOY, ["a1.0", "m2"], positions=[0, 1])
    curve = [(1, 0.2), (2, 0.5), (4, 0.8), (6, 0.9)]
    cases = {
        "gqa": view(full_circuit(gqa), tmp_path / "gqa.html"),
        "positions": view(positional, tmp_path / "positions.html"),
        "levels": view([node_circuit(), node_circuit(["a0.1"])], tmp_path / "l.html", levels=True),
        "curve": view(edge_circuit(), tmp_path / "curve.html", curve=curve),
    }
    for name, path in cases.items():
        page = Page(browser, path)
        assert page.errors == [] and page.requests == [page.url], name
    assert page.page.locator("#curve-box").is_visible()
    before = page.page.locator("#curve line").last.get_attribute("x1")
    page.js("circuitView.set({sm: 'topk', k: 2})")
    assert page.page.locator("#curve line").last.get_attribute("x1") != before
    page = Page(browser, cases["levels"])
    page.js("circuitView.set({lvl: 1})")  # the second level: a0.1 alone
    shown = page.js(
        "[...document.querySelectorAll('g.node.kind-head')].filter(g => g.style.display !== 'none')"
        ".map(g => g.dataset.id)"
    )
    assert shown == ["a0.1"] and "lvl=1" in page.js("location.hash")


def test_a_very_large_graph_opens_on_its_largest_edges(browser, tmp_path):
    big = types.SimpleNamespace(n_layers=12, n_heads=12, model_name="big")
    edges = full_circuit(big).sender_receiver_edges()  # 32,491 edges, 12 x 12 heads
    circuit = Circuit.from_edges(
        big, {e: {"effect": (i + 1) / len(edges)} for i, e in enumerate(edges)}
    )
    page = Page(browser, view(circuit, tmp_path / "big.html"))
    counts = page.js("circuitView.counts()")
    assert counts["edges"] == circuit.number_of_edges() and page.errors == []
    internal = circuit.number_of_edges() - len(edges)  # no value: always shown
    assert counts["visibleEdges"] == 5000 + internal == page.page.locator("path.edge").count()
    assert "k=5000" in page.js("location.hash")
    page.js("circuitView.set({sm: 'threshold', t: 0})")  # show all: every path is made
    assert page.page.locator("path.edge").count() == circuit.number_of_edges()
