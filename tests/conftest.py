"""Shared fixtures: models are loaded once per test session (load_model caches them)."""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import circuitgraph as cg  # noqa: E402

# The models under test are tiny: one thread avoids synchronisation overhead (and contention
# on a shared 2-core machine); the few SmolLM2 tests stay within seconds.
torch.set_num_threads(1)

TINY_MODELS = ("random:gpt2-tiny", "random:llama-tiny")


@pytest.fixture(scope="session")
def toy():
    return cg.load_model("toy-seq")


@pytest.fixture(scope="session", params=TINY_MODELS)
def tiny(request):
    """A tiny random GPT-2 and a tiny random Llama (grouped-query attention)."""
    return cg.load_model(request.param)


@pytest.fixture(scope="session")
def smollm2():
    return cg.load_model("smollm2-135m")
