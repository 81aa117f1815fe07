"""The machine a model runs on: devices, the Hugging Face hub, shared cache folders.

Light to import (torch and transformers are imported inside the functions that need them),
so the command line can use :class:`ModelLoadError` and the folder helpers without them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import urllib.parse
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from circuitgraph.models.model_type import Model

DEVICES = "cpu, cuda, cuda:<index> or mps"


class ModelLoadError(RuntimeError):
    """A model name could not be turned into a model; the message says why and what works."""


def resolve_device(device: Any) -> str:
    """The canonical name of a usable torch device (``"cpu"``, ``"cuda:0"``, ``"mps"``).

    ModelLoadError, naming the device and what works, if it is unknown or not available here.

    >>> resolve_device("cpu")
    'cpu'
    >>> resolve_device("banana")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    circuitgraph.models.environment.ModelLoadError: unknown device 'banana': use cpu, cuda, ...
    """
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ModelLoadError(f"unknown device {device!r}: use {DEVICES}") from None
    if parsed.type == "cpu":
        return "cpu"
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"CUDA is not available on this machine (device {device!r}; torch "
                f"{torch.__version__} sees no CUDA GPU): use device 'cpu' (--device cpu)"
            )
        index = 0 if parsed.index is None else parsed.index
        count = torch.cuda.device_count()
        if index >= count:
            raise ModelLoadError(
                f"device {device!r}: this machine has {count} CUDA device(s), "
                f"cuda:0..cuda:{count - 1}"
            )
        return f"cuda:{index}"
    if parsed.type == "mps":
        if not torch.backends.mps.is_available():
            raise ModelLoadError(
                f"device {device!r}: MPS is not available here; use device 'cpu' (--device cpu)"
            )
        return "mps"
    raise ModelLoadError(f"unsupported device {device!r}: use {DEVICES}")


DTYPES = ("float32", "float64", "bfloat16", "float16")


def resolve_dtype(dtype: Any) -> str:
    """The name of a supported floating-point dtype (``"float32"``, ``"float64"``,
    ``"bfloat16"``, ``"float16"``); ModelLoadError for anything else.

    >>> resolve_dtype("bfloat16"), resolve_dtype(None)
    ('bfloat16', 'float32')
    """
    import torch

    if dtype is None:
        return "float32"
    name = str(dtype).removeprefix("torch.") if isinstance(dtype, torch.dtype) else dtype
    if name not in DTYPES:
        raise ModelLoadError(f"unsupported dtype {dtype!r}: use {', '.join(DTYPES)}")
    return name


def model_device(model: Model) -> str:
    """The device the model's parameters are on (``"cpu"``, ``"cuda:0"``, ...)."""
    devices = {str(p.device) for p in model.parameters()}
    if len(devices) != 1:
        raise RuntimeError(f"model parameters are spread over devices {sorted(devices)}")
    (device,) = devices
    return device


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """No "Loading weights" progress bars or config notices from transformers while loading."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    verbosity = hf_logging.get_verbosity()
    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if enabled:
            hf_logging.enable_progress_bar()


def hub_host() -> tuple[str, int]:
    url = urllib.parse.urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    return url.hostname or "huggingface.co", url.port or (80 if url.scheme == "http" else 443)


@functools.lru_cache(maxsize=1)
def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub accepts a TCP connection (a quick check, no retries)."""
    try:
        socket.create_connection(hub_host(), timeout=timeout).close()
    except OSError:
        return False
    return True


def hub_offline() -> bool:
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def in_hub_cache(repo: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo, "config.json"), str)


@contextlib.contextmanager
def offline_if(offline: bool) -> Iterator[None]:
    """Hub offline mode for the duration (cached weights load without retrying the network)."""
    from huggingface_hub import constants

    before = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = before or offline
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = before
