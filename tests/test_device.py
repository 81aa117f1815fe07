"""The requested device is honoured end to end, checked on a CPU-only machine.

Every tensor the library makes while scoring or pruning must be made on the model's device.
Without a GPU that cannot be observed directly, so the check flips it around: the model stays on
the CPU while torch's *default* device is ``meta`` (shapes only, no data). A tensor created
without ``device=`` then lands on ``meta``, and torch refuses to mix it with the model's CPU
tensors ("Tensor on device meta is not on the expected device cpu") or to read a value from it.
On a GPU the same code would have put that tensor on the CPU next to CUDA weights. So library
code names the device of every tensor it makes (``device=x.device``, or ``device="cpu"`` for
bookkeeping that is moved later).
"""

from __future__ import annotations

import pytest
import torch

import circuitgraph as cg
from circuitgraph.models.loading import model_device


def test_load_model_puts_every_parameter_on_the_device():
    model = cg.load_model("random:gpt2-tiny", device="cpu")
    assert model_device(model) == "cpu" and model.cfg.device == "cpu"
    assert cg.load_model("random:gpt2-tiny", device=torch.device("cpu")) is model


@pytest.mark.parametrize(
    "device, message",
    [
        ("banana", "unknown device 'banana': use cpu, cuda"),
        ("meta", "unsupported device 'meta'"),
        pytest.param(
            "cuda",
            "CUDA is not available on this machine",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present"),
        ),
    ],
)
def test_unusable_devices_are_clear_errors(device, message):
    with pytest.raises(cg.ModelLoadError, match=message):
        cg.load_model("toy-seq", device=device)


@pytest.fixture
def tensors_default_to_meta():
    """Tensors made without an explicit device go to ``meta`` while the test body runs."""
    with torch.device("meta"):
        yield


@pytest.fixture(scope="module", params=["random:gpt2-tiny", "random:llama-tiny"])
def model_and_task(request):
    model = cg.load_model(request.param)
    return model, cg.make_task("digits", model, n=4, seed=0)


def _check(score: float) -> None:
    assert isinstance(score, float) and score == score  # a real number, not a meta tensor


def test_scoring_makes_tensors_on_the_model_device(model_and_task, tensors_default_to_meta):
    model, task = model_and_task
    for ablation in ("mean", "resample", "zero"):
        scorer = cg.Scorer(model, task, ablation=ablation)
        _check(scorer.score(cg.full_circuit(model.cfg)))
    values = scorer.with_metric("kl").evaluate(cg.full_circuit(model.cfg, qkv=False))
    assert all(v == v for v in values.values())


def test_pruning_makes_tensors_on_the_model_device(model_and_task, tensors_default_to_meta):
    model, task = model_and_task
    scorer = cg.Scorer(model, task)
    heads = cg.prune_nodes(scorer, threshold=0.5, progress=False)
    _check(heads.metadata["score"])
    for method in ("fast", "reference"):
        edges = cg.prune_edges(
            scorer.with_metric("kl"), tau=0.5, start=heads, method=method, progress=False
        )
        _check(edges.metadata["score"])
