"""Tests for Graphviz output and overlap figures (circuitgraph.circuit.render)."""

from __future__ import annotations

import importlib
import re
import subprocess
import types
import xml.etree.ElementTree as ET

import matplotlib
import pytest

from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.circuit.render import render, to_dot
from circuitgraph.figures import venn, venn_grid

render_module = importlib.import_module(
    "circuitgraph.circuit.render"
)  # the package re-exports render()
SVG = "{http://www.w3.org/2000/svg}"
TOY = types.SimpleNamespace(n_layers=3, n_heads=3, model_name="toy")
GQA = types.SimpleNamespace(n_layers=3, n_heads=4, n_key_value_heads=2, model_name="toy-gqa")


def example_circuits() -> dict[str, Circuit]:
    edges = {
        ("embed", "a0.1.q"): {"effect": 0.4},
        ("a0.1", "a2.g1.k"): {"effect": -0.8},
        ("a2.3", "logits"): {"effect": 0.2},
        ("embed", "a2.3.q"): {},
    }
    return {
        "full": full_circuit(TOY),
        "plain": Circuit.from_nodes(TOY, ["a1.2", "m0"], qkv=False),
        "gqa-edges": Circuit.from_edges(GQA, edges),
        "positions": Circuit.from_nodes(TOY, ["a1.0", "m2@1"], positions=[0, 1]),
        "empty": Circuit.from_edges(TOY, []),
    }


@pytest.mark.parametrize("name", list(example_circuits()))
def test_dot_is_accepted_by_graphviz(name):
    source = to_dot(example_circuits()[name])
    result = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    assert b"<svg" in result.stdout


def _node_centres(svg_path) -> dict[str, tuple[float, float]]:
    """Node name -> (x, y) of its label in the SVG (y grows downwards)."""
    centres = {}
    for group in ET.parse(svg_path).getroot().iter(f"{SVG}g"):
        if group.get("class") == "node":
            text = group.find(f"{SVG}text")
            centres[group.find(f"{SVG}title").text] = (float(text.get("x")), float(text.get("y")))
    return centres


def test_svg_places_layers_in_order(tmp_path):
    circuit = full_circuit(GQA)
    centres = _node_centres(render(circuit, tmp_path / "full.svg", edges=True))
    assert set(centres) == set(circuit)
    y = {name: yx[1] for name, yx in centres.items()}
    assert all(y["embed"] > y[n] > y["logits"] for n in circuit if n not in ("embed", "logits"))
    for layer in range(3):
        heads = [f"a{layer}.{h}" for h in range(4)]
        inputs = [n for n in circuit if n.startswith(f"a{layer}.") and n[-2:] in (".q", ".k", ".v")]
        assert min(y[i] for i in inputs) > max(y[h] for h in heads)  # inputs below heads
        assert {y[h] for h in heads} == {y[f"m{layer}"]}  # heads and MLP share a rank
        if layer:
            assert min(y[f"a{layer - 1}.{h}"] for h in range(4)) > max(y[i] for i in inputs)
        x = [centres[name][0] for name in [*heads, f"m{layer}"]]
        assert x == sorted(x)  # heads in index order, MLP after them


def test_node_level_circuits_draw_component_edges_with_qkv_folded(tmp_path):
    circuit = Circuit.from_nodes(GQA, ["a0.1", "a2.3", "m1"])
    source = to_dot(circuit)
    assert "a0.1.q" not in source  # q/k/v inputs folded into their heads
    drawn = {
        tuple(re.findall(r'"([^"]+)"', line)[:2])
        for line in source.splitlines()
        if "->" in line and "invis" not in line
    }
    assert drawn == set(render_module.collapsed_edges(circuit))
    assert ("a0.1", "a2.3") in drawn and ("embed", "logits") in drawn
    y = {name: yx[1] for name, yx in _node_centres(render(circuit, tmp_path / "n.svg")).items()}
    assert set(y) == {"embed", "a0.1", "m1", "a2.3", "logits"}
    assert y["embed"] > y["a0.1"] > y["m1"] > y["a2.3"] > y["logits"]
    bare = to_dot(circuit, edges=False)  # the old picture: components ranked, no edges
    assert all("style=invis" in line for line in bare.splitlines() if "->" in line)


def test_importance_colours_caption_and_legend(tmp_path):
    circuit = Circuit.from_nodes(GQA, ["a0.1", "a2.3", "m1"])
    circuit.metadata = {
        "score": 0.85,
        "score_ci": [0.8, 0.9],
        "metric": "logit_diff",
        "ablation": "mean",
        "kept": [{"node": "a0.1", "score": 0.35}, {"node": "m1", "score": 0.8}],
    }
    assert render_module.node_importance(circuit) == pytest.approx({"a0.1": 0.5, "m1": 0.05})
    source = to_dot(circuit)
    fills = dict(re.findall(r'"(a0\.1|m1|a2\.3)" \[label="[^"]*", fillcolor="([^"]+)"', source))
    assert fills["a0.1"] == render_module._importance_fill(1, 1)  # the most important
    assert fills["a2.3"] == render_module.NODE_FILL["head"]  # no record: its kind's colour
    assert fills["m1"] not in (fills["a0.1"], fills["a2.3"])
    texts = _svg_texts(render(circuit, tmp_path / "c.svg"))
    assert "score 0.850 (95 % CI 0.800-0.900)" in texts and "metric logit_diff" in texts
    assert "ablation mean" in texts and "2 heads, 1 MLPs" in texts
    assert "high (0.5 score drop)" in texts


def test_large_circuits_fold_qkv_and_show_the_top_edges():
    big = types.SimpleNamespace(n_layers=8, n_heads=8, model_name="big")
    full = full_circuit(big)
    effects = {e: {"effect": 0.001 * i} for i, e in enumerate(full.sender_receiver_edges())}
    circuit = Circuit.from_edges(big, effects)
    source = to_dot(circuit, max_edges=50)
    assert '.q"' not in source and "Q/K/V inputs folded into their heads" in source
    visible = [line for line in source.splitlines() if "->" in line and "invis" not in line]
    assert len(visible) == 50
    hidden = len(render_module.collapsed_edges(circuit)) - 50
    assert f"top 50 edges shown, {hidden} more hidden" in source
    assert 'penwidth="5.00"' in source  # the largest effect is among them
    small = to_dot(Circuit.from_edges(TOY, [("embed", "a0.1.q")]))
    assert "a0.1.q" in small and "folded" not in small


def test_comparison_picture_colours_by_membership(tmp_path):
    a = Circuit.from_nodes(TOY, ["a0.1", "a1.2"])
    b = Circuit.from_nodes(TOY, ["a0.1", "m2"])
    source = render_module.comparison_dot({"digits": a, "months": b})
    fills = dict(re.findall(r'"([^"]+)" \[label="[^"]*", fillcolor="([^"]+)"', source))
    colours = render_module._region_colours(2)
    assert fills["a1.2"] == colours[(True, False)] and fills["m2"] == colours[(False, True)]
    assert fills["a0.1"] == colours[(True, True)] == render_module.REGION_SHARED
    path = render_module.render_comparison({"digits": a, "months": b}, tmp_path / "cmp.svg")
    texts = _svg_texts(path)
    assert "digits only" in texts and "months only" in texts and "shared" in texts
    other = Circuit.from_nodes(types.SimpleNamespace(n_layers=3, n_heads=3, model_name="gpt2"), [])
    with pytest.raises(ValueError, match="different models"):
        render_module.comparison_dot({"a": a, "b": other})
    with pytest.raises(ValueError, match="at least 2"):
        render_module.comparison_dot({"a": a})


def test_render_command_draws_a_comparison_of_several_files(tmp_path):
    from circuitgraph.cli import main

    a, b = Circuit.from_nodes(TOY, ["a0.1", "a1.2"]), Circuit.from_nodes(TOY, ["a0.1", "m2"])
    a.to_json(tmp_path / "a.json")
    b.to_json(tmp_path / "b.json")
    files = [str(tmp_path / "a.json"), str(tmp_path / "b.json")]
    out = tmp_path / "ab.svg"
    assert main(["render", *files, "--names", "digits", "months", "-o", str(out)]) == 0
    texts = _svg_texts(out)
    assert "digits only" in texts and "months only" in texts and "shared" in texts
    assert main(["render", *files]) == 2  # a comparison needs -o
    assert main(["render", *files, "--names", "x", "-o", str(tmp_path / "c.svg")]) == 2
    assert not (tmp_path / "c.svg").exists()


def test_circuit_methods_pass_drawing_options_through():
    big = types.SimpleNamespace(n_layers=8, n_heads=8, model_name="big")
    circuit = Circuit.from_edges(big, full_circuit(big).sender_receiver_edges())
    assert circuit.to_dot(max_edges=10) == to_dot(circuit, max_edges=10)
    assert "top 10 edges shown" in circuit.to_dot(max_edges=10)


def test_svg_layer_order_with_missing_layers(tmp_path):
    """Unconnected nodes of different layers still get their own ranks."""
    circuit = Circuit.from_edges(
        TOY, [("embed", "a0.0.q"), ("a0.0", "logits"), ("embed", "a2.1.v"), ("a2.1", "logits")]
    )
    y = {name: yx[1] for name, yx in _node_centres(render(circuit, tmp_path / "c.svg")).items()}
    assert y["embed"] > y["a0.0.q"] > y["a0.0"] > y["a2.1.v"] > y["a2.1"] > y["logits"]


def test_dot_labels_colours_and_widths():
    circuits = example_circuits()
    source = to_dot(circuits["gqa-edges"])
    assert '"a0.1.q" [label="a0.1 Q", fillcolor="#deebf7"]' in source
    assert 'label="a2.g1 K"' in source
    assert '"a0.1" -> "a2.g1.k" [color="#238b45", penwidth="5.00"' in source  # max |effect|
    assert '"embed" -> "a0.1.q" [color="#2171b5", penwidth="2.75"' in source  # half of max
    assert '"embed" -> "a2.3.q" [color="#2171b5", penwidth="1"' in source  # no effect
    assert re.search(r'"a2.g1.k" -> "a2.3" \[[^]]*style="dashed"', source)  # internal edge
    assert "{ rank=same;" in source and 'rankdir="BT"' in source
    positional = to_dot(circuits["positions"], edges=True)
    assert 'label="a1.0 V\\n@1"' in positional and 'label="m2\\n@1"' in positional
    assert '"m0" [label="m0", fillcolor="#fdae6b"]' in to_dot(circuits["plain"])


@pytest.mark.parametrize(
    ("suffix", "magic"), [(".svg", b"<?xml"), (".png", b"\x89PNG"), (".pdf", b"%PDF")]
)
def test_render_format_from_suffix(tmp_path, suffix, magic):
    path = example_circuits()["plain"].render(tmp_path / f"c{suffix}")
    assert path.read_bytes().startswith(magic)
    assert [p.name for p in tmp_path.iterdir()] == [f"c{suffix}"]


def test_render_dot_source_and_bad_suffix(tmp_path):
    circuit = example_circuits()["plain"]
    assert render(circuit, tmp_path / "c.dot").read_text() == circuit.to_dot()
    with pytest.raises(ValueError, match="format 'txt'"):
        circuit.render(tmp_path / "c.txt")


def test_missing_dot_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match=r"apt-get install graphviz"):
        example_circuits()["plain"].render(tmp_path / "c.svg")
    assert not (tmp_path / "c.svg").exists()


def test_failed_render_leaves_old_file_untouched(tmp_path, monkeypatch):
    path = tmp_path / "c.svg"
    path.write_text("old")
    monkeypatch.setattr(render_module, "to_dot", lambda circuit, edges: "digraph { a -> }")
    with pytest.raises(RuntimeError, match="dot failed"):
        render(example_circuits()["plain"], path)
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["c.svg"]


def _svg_texts(path) -> str:
    return " ".join(t.text or "" for t in ET.parse(path).getroot().iter(f"{SVG}text"))


def _tasks(n: int) -> dict[str, Circuit]:
    heads = [
        ["a0.1", "a1.2", "m0"],
        ["a0.1", "a1.0", "m0"],
        ["a0.1", "a2.2", "m2"],
        ["a0.1", "a0.0"],
        [],
    ]
    return {f"task{i}": Circuit.from_nodes(TOY, heads[i]) for i in range(n)}


@pytest.fixture
def svg_text():
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        yield


@pytest.mark.parametrize("n", [2, 3])
def test_venn_labels_regions_with_names(tmp_path, svg_text, n):
    path = venn(_tasks(n), tmp_path / "v.svg")
    texts = _svg_texts(path)
    assert "task0 (3)" in texts and "a1.2" in texts and "a0.1" in texts
    assert "a0.1.q" not in texts and "embed" not in texts  # heads and MLPs only
    assert [p.name for p in tmp_path.iterdir()] == ["v.svg"]


def test_venn_counts_when_regions_are_large(tmp_path, svg_text):
    texts = _svg_texts(venn(_tasks(2), tmp_path / "v.svg", on="edges", max_names=1))
    assert "a1.2" not in texts and re.search(r"\b\d+\b", texts)


def test_upset_for_four_or_more(tmp_path, svg_text):
    texts = _svg_texts(venn(_tasks(5), tmp_path / "u.svg"))
    assert all(f"task{i}" in texts for i in range(5)) and "exclusive size" in texts
    assert "task4 (0)" in texts


def test_venn_grid_rows_are_thresholds(tmp_path, svg_text):
    grid = {
        0.8: _tasks(3),
        0.9: _tasks(4),
        0.95: {"a": _tasks(1)["task0"], "b": _tasks(5)["task4"]},
    }
    texts = _svg_texts(venn_grid(grid, tmp_path / "grid.svg"))
    assert all(f"threshold {t}: nodes" in texts for t in grid)
    assert venn_grid(grid, tmp_path / "grid.png").read_bytes().startswith(b"\x89PNG")


def test_venn_bad_input(tmp_path):
    with pytest.raises(ValueError, match="at least 2"):
        venn(_tasks(1), tmp_path / "v.svg")
    other = Circuit.from_nodes(types.SimpleNamespace(n_layers=3, n_heads=3, model_name="gpt2"), [])
    with pytest.raises(ValueError, match="'toy'.*'gpt2'"):
        venn({**_tasks(1), "other": other}, tmp_path / "v.svg")
    with pytest.raises(ValueError, match="'xyz' is not a figure format"):
        venn(_tasks(2), tmp_path / "v.xyz")
    assert list(tmp_path.iterdir()) == []
