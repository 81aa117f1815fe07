"""``device_map``: a Hugging Face device map handed to from_pretrained, checked on a CPU.

circuitgraph stacks every layer's attention weights on one device next to its caches, so a
map must put the whole model on one device; a map that would split it, offload it, or name
a device this machine lacks is one clear ModelLoadError, and random models (built in memory,
not loaded with from_pretrained) refuse a map. Splitting over several GPUs cannot be run
here: the refusal is checked with a stand-in model whose weights sit on two devices.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

import circuitgraph as cg
from circuitgraph.cli import main
from circuitgraph.models import loading as models
from circuitgraph.models import placement
from circuitgraph.scoring.components import ComponentModel


@pytest.mark.parametrize("device_map", ["cpu", {"": "cpu"}, "auto", "sequential"])
def test_a_map_onto_one_device_loads_and_scores(toy, device_map):
    model = cg.load_model("toy-seq", device_map=device_map)
    assert model is not toy and models.model_device(model) == "cpu" == model.cfg.device
    assert cg.load_model("toy-seq", device_map=copy.deepcopy(device_map)) is model  # cached
    task = cg.make_task("digits", model, n=4, seed=0)
    circuit = cg.Circuit.from_nodes(model.cfg, ["a0.1", "a1.3", "m1"])
    expected = cg.Scorer(toy, cg.make_task("digits", toy, n=4, seed=0)).score(circuit)
    assert cg.Scorer(model, task).score(circuit) == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize(
    "device_map, message",
    [
        ("banana", "device_map 'banana' is neither auto, balanced"),
        ({"": "disk"}, "offloads to 'disk'"),
        ({"": "meta"}, "offloads to 'meta'"),
        ({}, "a non-empty dict of module names to devices"),
        (["cpu"], "device_map must be auto"),
        ({"transformer": "cpu", "lm_head": "banana"}, "unknown device 'banana'"),
        pytest.param(
            {"transformer": "cpu", "lm_head": 0},
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present"),
        ),
    ],
)
def test_bad_maps_are_one_clear_error(device_map, message):
    with pytest.raises(cg.ModelLoadError, match=message):
        cg.load_model("toy-seq", device_map=device_map)


def test_a_map_over_several_devices_is_refused_before_loading(monkeypatch):
    monkeypatch.setattr(placement, "resolve_device", lambda device: str(device))  # pretend GPUs
    with pytest.raises(cg.ModelLoadError, match="places the model on cuda:0, cuda:1: circuitgraph"):
        placement.device_map_key({"transformer": "cuda:0", "lm_head": 1})


def test_device_and_device_map_together_or_a_random_model_are_refused():
    with pytest.raises(cg.ModelLoadError, match="pass device .* or device_map .*, not both"):
        cg.load_model("toy-seq", device="cpu", device_map="cpu")
    with pytest.raises(cg.ModelLoadError, match="random models are built in memory"):
        cg.load_model("random:gpt2-tiny", device_map="cpu")


class _Split(torch.nn.Module):
    """A stand-in for a model that a device_map split: weights on cpu and on meta."""

    def __init__(self) -> None:
        super().__init__()
        self.first = torch.nn.Linear(2, 2)
        self.second = torch.nn.Linear(2, 2, device="meta")


def test_a_model_that_loads_split_is_refused(monkeypatch):
    """E.g. "auto" over two GPUs: only known once loaded."""
    monkeypatch.setattr(models, "_load_any", lambda name, device, device_map: _Split())
    with pytest.raises(cg.ModelLoadError, match="places the model on cpu, meta"):
        cg.load_model("a-split-model", device_map="auto")  # a name no other test caches


def test_component_model_refuses_weights_on_several_devices(toy):
    split = copy.deepcopy(toy)
    split.original_model.transformer.h[1].mlp.to("meta")
    with pytest.raises(ValueError, match="spread over cpu, meta .*one device"):
        ComponentModel(split)


def test_cli_device_map(tmp_path, capsys):
    argv = ["discover", "--model", "toy-seq", "--task", "digits", "--n", "4", "-q", "--no-svg"]
    assert main([*argv, "--out", str(tmp_path), "--device-map", '{"": "cpu"}']) == 0
    run = json.loads((tmp_path / "toy-seq" / "digits" / "nodes-0.8" / "run.json").read_text())
    assert run["model"]["device"] == "cpu" and run["model"]["device_map"] == {"": "cpu"}
    assert run["model"]["device_requested"] is None
    assert main([*argv, "--out", str(tmp_path / "b"), "--device-map", "banana"]) == 2
    assert "argument --device-map: device_map 'banana'" in capsys.readouterr().err
    both = ["--device", "cpu", "--device-map", "cpu"]
    assert main([*argv, "--out", str(tmp_path / "c"), *both]) == 2
    assert "not both" in capsys.readouterr().err
