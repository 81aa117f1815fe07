"""Where a model's weights go: ``device_map`` values checked, and the refusal of a model split
over several devices (circuitgraph stacks every layer's weights, so a model must sit on one)."""

from __future__ import annotations

from typing import Any

import torch

from circuitgraph.models.environment import ModelLoadError, resolve_device

DEVICE_MAP_STRATEGIES = ("auto", "balanced", "balanced_low_0", "sequential")


def device_map_key(device_map: str | int | dict) -> str | tuple[tuple[str, str], ...]:
    """``device_map`` checked and made hashable: a strategy name or a canonical device, or a
    dict as sorted (module, device) pairs. ModelLoadError for a bad value, a device this
    machine lacks, disk or meta offload, or a dict naming several devices (see load_model)."""

    def device(value: object) -> str:
        if isinstance(value, bool) or not isinstance(value, int | str | torch.device):
            raise ModelLoadError(f"device_map value {value!r} is not a device")
        if isinstance(value, str) and value in ("disk", "meta"):
            raise ModelLoadError(
                f"device_map offloads to {value!r}: circuitgraph reads every weight directly, "
                "so the whole model must be in memory on one device"
            )
        return resolve_device(f"cuda:{value}" if isinstance(value, int) else value)

    if isinstance(device_map, str) and device_map in DEVICE_MAP_STRATEGIES:
        return device_map
    if isinstance(device_map, int | str | torch.device) and not isinstance(device_map, bool):
        try:
            return device(device_map)
        except ModelLoadError as error:
            raise ModelLoadError(
                f"device_map {device_map!r} is neither {', '.join(DEVICE_MAP_STRATEGIES)} nor a "
                f"usable device ({error}), nor a dict of modules to devices"
            ) from None
    if not isinstance(device_map, dict) or not device_map:
        raise ModelLoadError(
            f"device_map must be {', '.join(DEVICE_MAP_STRATEGIES)}, a device or a non-empty "
            f"dict of module names to devices (e.g. {{'': 'cuda:0'}}), got {device_map!r}"
        )
    pairs = tuple(sorted((str(module), device(value)) for module, value in device_map.items()))
    devices = sorted({value for _, value in pairs})
    if len(devices) > 1:
        raise ModelLoadError(split_message(repr(device_map), devices))
    return pairs


def split_message(what: str, devices: list[str]) -> str:
    """Why a model spread over ``devices`` cannot be used, and what to do instead."""
    return (
        f"{what} places the model on {', '.join(devices)}: circuitgraph needs the whole model "
        "on one device (it stacks every layer's attention weights into one tensor next to the "
        "activation caches). Use one device that holds the weights (device='cuda:0', or "
        "device_map={'': 'cuda:0'}) and Scorer(max_memory=...) (--max-memory) to run the "
        "activations in chunks"
    )


def hf_device_map(key: str | tuple[tuple[str, str], ...] | None) -> str | dict[str, str] | None:
    """A :func:`device_map_key` back in the form from_pretrained takes."""
    return dict(key) if isinstance(key, tuple) else key


def pretrained_kwargs(device_map: object) -> dict[str, Any]:
    """from_pretrained's keyword for a device map (none without one)."""
    return {} if device_map is None else {"device_map": device_map}
