"""How fast the viewer draws and reacts, measured in headless Chromium.

Builds pages for SmolLM2-135M's graph (30 layers, 9 heads, 3 K/V groups: 70,651 candidate
sender-receiver edges, 71,461 with the head-internal ones) with a random effect on every edge,
on a 5,000-edge and a 358-edge random subset of it, and on a node-level circuit of 60 heads;
opens each in Chromium and reports, from inside the page (``performance.now``,
``requestAnimationFrame``): the time from navigation to the first frame drawn (a graph of over
20,000 edges opens on its 5,000 largest), the median frame time of a top-k slider step (up to
5,000 edges) and of a click that lights ancestors and descendants, and the time to show every
edge (threshold 0). The graph's shape is all the viewer uses, so the model's weights are
not loaded (``--load-model`` takes its config from ``cg.load_model`` instead).

Run: ``.venv/bin/python benchmarks/viewer.py`` (needs Debian's chromium and playwright).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
import types
from pathlib import Path

from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.viewer import view

SMOLLM2 = types.SimpleNamespace(
    n_layers=30, n_heads=9, n_key_value_heads=3, model_name="smollm2-135m"
)
FRAME = """async ([changes]) => {
  const t0 = performance.now();
  window.circuitView.set(changes);
  await new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)));
  return performance.now() - t0;
}"""


def circuits(cfg: object, seed: int = 0) -> dict[str, Circuit]:
    """The pages timed: the full graph, 5,000 and 358 of its edges, a 60-head node circuit."""
    rng = random.Random(seed)
    full = full_circuit(cfg)
    edges = full.sender_receiver_edges()
    effects = {e: {"effect": rng.lognormvariate(-5, 1.5) * rng.choice((1, -1))} for e in edges}
    heads = rng.sample(full.heads(), 60)
    return {
        f"full graph ({len(edges):,} edges)": Circuit.from_edges(cfg, effects),
        "5,000 edges": Circuit.from_edges(cfg, {e: effects[e] for e in rng.sample(edges, 5000)}),
        "358 edges": Circuit.from_edges(cfg, {e: effects[e] for e in rng.sample(edges, 358)}),
        "node circuit (60 heads)": Circuit.from_nodes(cfg, heads),
    }


def measure(browser, path: Path, repeats: int) -> dict[str, float]:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    begin = time.perf_counter()
    page.goto(path.as_uri())
    page.wait_for_function("window.circuitView && window.circuitView.ready", timeout=120_000)
    wall = (time.perf_counter() - begin) * 1000
    first = page.evaluate("circuitView.timings.first_render_ms")
    shown = page.evaluate("circuitView.counts().visibleEdges")
    n_valued = page.evaluate("circuitView.data.edges.filter(e => e[2] !== null).length")
    top = min(n_valued, 5000)  # what a large graph opens on (its 5,000 largest edges)
    steps = [{"sm": "topk", "k": max(1, int(top * f))} for f in (0.2, 0.6, 1.0, 0.4, 0.8)]
    slide = [page.evaluate(FRAME, [step]) for step in steps * repeats]
    targets = page.evaluate("circuitView.data.nodes.filter(n => n.kind === 'head').map(n => n.id)")
    click = [page.evaluate(FRAME, [{"sel": t}]) for t in targets[: 5 * repeats]]
    page.evaluate(FRAME, [{"sel": None, "sm": "topk", "k": top}])
    show_all = page.evaluate(FRAME, [{"sm": "threshold", "t": 0}])
    if errors:
        raise RuntimeError(f"{path.name}: {errors}")
    page.close()
    return {
        "first_render_ms": first,
        "first_edges": shown,
        "load_wall_ms": wall,
        "slider_frame_ms": statistics.median(slide),
        "click_frame_ms": statistics.median(click),
        "show_all_ms": show_all,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--load-model", action="store_true", help="cfg from cg.load_model")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "chromium")
    args = parser.parse_args()
    cfg = SMOLLM2
    if args.load_model:
        import circuitgraph as cg

        cfg = cg.load_model("smollm2-135m").cfg
    from playwright.sync_api import sync_playwright

    folder = Path(tempfile.mkdtemp(prefix="viewer-bench-"))
    rows = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium)
        version = browser.version
        for i, (name, circuit) in enumerate(circuits(cfg).items()):
            begin = time.perf_counter()
            path = view(circuit, folder / f"page{i}.html")
            build = (time.perf_counter() - begin) * 1000
            timing = measure(browser, path, args.repeats)
            size = path.stat().st_size / 2**20
            rows.append((name, circuit.number_of_edges(), size, build, timing))
        browser.close()
    print(f"Chromium {version}, headless, viewport 1400x900")
    print()
    print(
        "| page | edges | file (MiB) | build page (ms) | first render (ms) | edges drawn first "
        "| top-k slider frame (ms) | click frame (ms) | show all (ms) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, n_edges, size, build, t in rows:
        print(
            f"| {name} | {n_edges:,} | {size:.1f} | {build:,.0f} | {t['first_render_ms']:,.0f} "
            f"| {t['first_edges']:,} | {t['slider_frame_ms']:,.1f} | {t['click_frame_ms']:,.1f} "
            f"| {t['show_all_ms']:,.0f} |"
        )
    shutil.rmtree(folder)


if __name__ == "__main__":
    main()
