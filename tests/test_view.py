"""The viewer's page (circuitgraph.viewer) without a browser: its data, layout, files and the
``circuitgraph view`` command. tests/test_view_browser.py drives the page in Chromium."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import circuitgraph as cg
from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.cli import main
from circuitgraph.viewer import page_data, render_page, view, write_folder_view
from circuitgraph.viewer.page import ASSETS, D3_VERSION

TOY = types.SimpleNamespace(n_layers=3, n_heads=4, model_name="toy")
GQA = types.SimpleNamespace(n_layers=2, n_heads=4, n_key_value_heads=2, model_name="toy-gqa")
OTHER = types.SimpleNamespace(n_layers=3, n_heads=4, model_name="other")


def edge_circuit(tau: float = 0.05) -> Circuit:
    edges = {
        ("embed", "a0.1.q"): {"effect": 0.4},
        ("embed", "a0.2.v"): {"effect": tau + 5e-6},  # a tie: within 1e-5 of tau
        ("a0.1", "a2.3.k"): {"effect": -0.8},
        ("a0.2", "m1"): {"effect": 0.1},
        ("m1", "logits"): {"effect": 0.3},
        ("a2.3", "logits"): {"effect": 0.2},
    }
    circuit = Circuit.from_edges(TOY, edges)
    circuit.metadata = {"method": "edges", "task": "digits", "parameters": {"tau": tau}}
    return circuit


def node_circuit(heads=("a0.1", "a2.3", "m1")) -> Circuit:
    circuit = Circuit.from_nodes(TOY, list(heads))
    circuit.metadata = {
        "method": "nodes",
        "task": "digits",
        "score": 0.85,
        "parameters": {"threshold": 0.8},
        "kept": [{"node": "a0.1", "score": 0.5}, {"node": "m1", "score": 0.8}],
    }
    return circuit


def payload(html: str) -> dict:
    found = re.search(r'<script type="application/json" id="circuit-data">(.*?)</script>', html)
    assert found, "no data block"
    return json.loads(found.group(1))


def test_counts_equal_the_circuits():
    for circuit in (edge_circuit(), node_circuit(), full_circuit(GQA)):
        data = page_data({"c": circuit})
        assert len(data["nodes"]) == circuit.number_of_nodes()
        assert len(data["edges"]) == circuit.number_of_edges()
        ids = [n["id"] for n in data["nodes"]]
        assert {(ids[e[0]], ids[e[1]]) for e in data["edges"]} == set(circuit.edges)


def test_layout_layers_bottom_to_top_heads_by_index_ports_on_heads():
    data = page_data({"full": full_circuit(GQA)})
    at = {n["id"]: (n["x"], n["y"]) for n in data["nodes"]}
    assert at["embed"][1] > at["a0.0"][1] > at["m0"][1] > at["a1.0"][1] > at["logits"][1]
    assert [at[f"a1.{h}"][0] for h in range(4)] == sorted(at[f"a1.{h}"][0] for h in range(4))
    assert at["m1"][0] > at["a1.3"][0]  # the MLP to the right of the heads
    for h in range(4):  # a head's q port on its lower edge; GQA k/v ports under their group
        assert at[f"a1.{h}.q"][1] > at[f"a1.{h}"][1]
        assert abs(at[f"a1.{h}.q"][0] - at[f"a1.{h}"][0]) < 20
    assert at["a1.g0.k"][0] < at["a1.g1.k"][0] and at["a1.g0.k"][1] > at["a1.0.q"][1]


def test_positions_sit_side_by_side():
    circuit = Circuit.from_nodes(TOY, ["a1.0"], positions=[0, 1])
    at = {n["id"]: (n["x"], n["y"]) for n in page_data({"c": circuit})["nodes"]}
    assert at["a1.0@1"][0] > at["a1.0@0"][0] and at["a1.0@1"][1] == at["a1.0@0"][1]


def test_values_importance_and_provenance():
    data = page_data({"e": edge_circuit()})
    assert data["value_kind"] == "effect" and data["circuits"][0]["tau"] == 0.05
    values = sorted(e[2] for e in data["edges"] if e[2] is not None)
    assert values[0] == -0.8 and len(values) == 6
    nodes = {n["id"]: n for n in page_data({"n": node_circuit()})["nodes"]}
    assert nodes["a0.1"]["imp"] == pytest.approx(0.35) and nodes["a0.1"]["without"] == 0.5
    assert "imp" not in nodes["a2.3"]  # no pruning record for it
    facts = page_data({"n": node_circuit()}, runs={"n": {"result": {"score_ci": [0.8, 0.9]}}})
    assert facts["circuits"][0]["facts"]["score_ci"] == [0.8, 0.9]
    assert facts["circuits"][0]["facts"]["threshold"] == 0.8


def test_comparison_regions_are_the_set_algebra():
    a, b = edge_circuit(), Circuit.from_edges(TOY, [("embed", "a0.1.q"), ("a0.1", "logits")])
    data = page_data({"A": a, "B": b}, "compare")
    ids = [n["id"] for n in data["nodes"]]
    edges = {(ids[e[0]], ids[e[1]]): e[3] for e in data["edges"]}
    assert {e for e, m in edges.items() if m == 1} == set((a - b).edges)
    assert {e for e, m in edges.items() if m == 2} == set((b - a).edges)
    assert {e for e, m in edges.items() if m == 3} == set((a & b).edges)
    nodes = {n["id"]: n["m"] for n in data["nodes"]}
    assert {n for n, m in nodes.items() if m == 3} == set(a.nodes) & set(b.nodes)


def test_different_models_are_refused_with_the_fix(tmp_path):
    other = Circuit.from_nodes(OTHER, ["a0.1"])
    with pytest.raises(ValueError, match="different models.*view them separately"):
        view({"a": node_circuit(), "b": other}, tmp_path / "v.html")
    assert list(tmp_path.iterdir()) == []


def test_page_is_self_contained_and_escapes_its_data(tmp_path):
    circuit = edge_circuit()
    circuit.metadata["task"] = "</script><script>alert(1)</script>"
    html = circuit.to_html(tmp_path / "c.html").read_text()
    assert html.count("</script>") == 3  # data, d3, viewer: the task name cannot close one
    assert payload(html)["circuits"][0]["facts"]["task"].startswith("</script>")
    assert "default-src 'none'" in html  # the page may not fetch anything
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert f"d3js.org v{D3_VERSION}" in html
    assert "ISC" in (ASSETS / "VERSION").read_text() and (ASSETS / "d3.LICENSE").is_file()


def test_existing_file_is_kept_unless_overwrite(tmp_path):
    path = tmp_path / "c.html"
    path.write_text("mine")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        edge_circuit().to_html(path)
    assert path.read_text() == "mine"
    edge_circuit().to_html(path, overwrite=True)
    assert "circuit-data" in path.read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.html"]  # no temporary file left
    with pytest.raises(ValueError, match="ending in .html"):
        edge_circuit().to_html(tmp_path / "c.svg")


def test_cg_view_takes_a_mapping_a_list_and_no_path(tmp_path):
    assert cg.view is view
    path = cg.view({"digits": edge_circuit(), "months": node_circuit()}, tmp_path / "v.html")
    data = payload(path.read_text())
    assert data["mode"] == "compare" and [c["name"] for c in data["circuits"]] == [
        "digits",
        "months",
    ]
    levels = payload(view([node_circuit(), node_circuit(["a0.1"])], levels=True).read_text())
    assert levels["mode"] == "levels" and len(levels["circuits"]) == 2
    with pytest.raises(TypeError, match="takes a Circuit"):
        view(42, tmp_path / "x.html")


def test_stability_result_is_levels_of_frequency(tmp_path):
    result = types.SimpleNamespace(
        frequency={"a0.1": 1.0, "a2.3": 0.5, "m1": 0.25},
        edge_frequency={},
        consensus=lambda q: node_circuit(),
    )
    data = payload(view(result, tmp_path / "s.html").read_text())
    assert data["mode"] == "levels" and len(data["circuits"]) == 3
    freq = {n["id"]: n.get("freq") for n in data["nodes"]}
    assert freq["a0.1"] == 1.0 and freq["m1"] == 0.25


def test_the_circuit_package_stays_torch_free():
    code = (
        "import sys, tempfile, pathlib, types\n"
        "from circuitgraph.circuit import Circuit\n"
        "cfg = types.SimpleNamespace(n_layers=2, n_heads=2, model_name='t')\n"
        "c = Circuit.from_nodes(cfg, ['a0.1'])\n"
        "c.to_html(pathlib.Path(tempfile.mkdtemp()) / 'c.html')\n"
        "assert 'torch' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --- the command ------------------------------------------------------------------------


def _results(tmp_path: Path) -> Path:
    folder = tmp_path / "run"
    folder.mkdir()
    edge_circuit().to_json(folder / "circuit.json")
    (folder / "run.json").write_text(json.dumps({"command": "circuitgraph discover ..."}))
    return folder


def test_view_command_single_compare_and_errors(tmp_path, capsys):
    folder = _results(tmp_path)
    assert main(["view", str(folder)]) == 0
    data = payload((folder / "view.html").read_text())
    assert data["circuits"][0]["facts"]["command"] == "circuitgraph discover ..."
    assert main(["view", str(folder)]) == 2
    assert "already exists; pass --overwrite" in capsys.readouterr().err
    assert main(["view", str(folder), "--overwrite"]) == 0
    other = tmp_path / "other.json"
    node_circuit().to_json(other)
    assert main(["view", str(folder), str(other)]) == 2
    assert "give --out FILE.html" in capsys.readouterr().err
    out = tmp_path / "cmp.html"
    assert main(["view", str(folder), str(other), "--out", str(out)]) == 0
    assert payload(out.read_text())["mode"] == "compare"
    levels = ["view", str(folder), str(other), "--out", str(out), "--levels", "--overwrite"]
    assert main(levels) == 0 and payload(out.read_text())["mode"] == "levels"
    (tmp_path / "notes.json").write_text('{"a": 1}')
    assert main(["view", str(tmp_path / "notes.json"), "--out", str(tmp_path / "n.html")]) == 2
    assert "not a circuit file" in capsys.readouterr().err
    assert not (tmp_path / "n.html").exists()
    mixed = tmp_path / "mixed.json"
    Circuit.from_nodes(OTHER, ["a0.1"]).to_json(mixed)
    assert main(["view", str(other), str(mixed), "--out", str(tmp_path / "m.html")]) == 2
    assert "different models" in capsys.readouterr().err


def test_sweep_and_stability_folders(tmp_path):
    sweep = tmp_path / "sweep"
    for threshold, heads in ((0.9, ["a0.1", "a2.3", "m1"]), (0.8, ["a0.1"])):
        (sweep / f"nodes-{threshold}").mkdir(parents=True)
        node_circuit(heads).to_json(sweep / f"nodes-{threshold}" / "circuit.json")
    data = payload(write_folder_view(sweep).read_text())
    assert data["mode"] == "levels" and [c["name"] for c in data["circuits"]] == [
        "nodes-0.9",
        "nodes-0.8",
    ]
    stability = tmp_path / "stability"
    stability.mkdir()
    node_circuit().to_json(stability / "consensus.json")
    (stability / "frequency.csv").write_text("node,frequency\na0.1,1.0\na2.3,0.5\nm1,0.5\n")
    data = payload(write_folder_view(stability).read_text())
    assert data["level_name"] == "frequency" and len(data["circuits"]) == 2
    (stability / "view.html").unlink()
    (stability / "edge_frequency.csv").write_text(
        "sender,receiver,frequency\nembed,a0.1.q,1.0\na0.1,logits,0.5\n"
    )
    data = payload(write_folder_view(stability).read_text())
    ids = [n["id"] for n in data["nodes"]]
    freq = {(ids[e[0]], ids[e[1]]): e[4] for e in data["edges"]}
    assert freq[("embed", "a0.1.q")] == 1.0 and freq[("a0.1", "logits")] == 0.5


def test_render_page_keeps_markers_in_data_literal():
    circuit = edge_circuit()
    circuit.metadata["task"] = "/*VIEWER*/ and /*D3*/"
    html = render_page(page_data({"c": circuit}))
    assert payload(html)["circuits"][0]["facts"]["task"] == "/*VIEWER*/ and /*D3*/"


def test_odd_metadata_values_still_make_a_page(tmp_path):
    import numpy as np

    circuit = edge_circuit()
    circuit.metadata |= {"score": np.float32(0.5), "seconds": float("nan")}
    facts = payload(circuit.to_html(tmp_path / "c.html").read_text())["circuits"][0]["facts"]
    assert facts["score"] == 0.5 and facts.get("seconds") is None


def test_analyses_reach_the_nodes_from_tables_and_the_analysis_folder(tmp_path):
    ov = [{"head": "a0.1", "layer": 0, "successor_score": 0.75, "rank": 1}]
    data = page_data({"c": node_circuit()}, analyses={"OV": ov})
    nodes = {n["id"]: n for n in data["nodes"]}
    assert nodes["a0.1"]["analyses"] == {"OV": {"successor_score": 0.75, "rank": 1}}
    assert "analyses" not in nodes["a2.3"]
    run = _results(tmp_path)
    (tmp_path / "analysis").mkdir()
    (tmp_path / "analysis" / "ov_scores.csv").write_text("head,layer,successor_score\na0.1,0,0.5\n")
    nodes = {n["id"]: n for n in payload(write_folder_view(run).read_text())["nodes"]}
    assert nodes["a0.1"]["analyses"] == {"OV": {"successor_score": 0.5}}
