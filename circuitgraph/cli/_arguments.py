"""argparse types of the ``circuitgraph`` commands: each turns one option's text into a value
or raises ``argparse.ArgumentTypeError`` with a message naming the input."""

from __future__ import annotations

import argparse
import math
import re


def fraction(text: str) -> float:
    """argparse type: a number in [0, 1]."""
    value = _number(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(
            f"must be in [0, 1] (a fraction of the full model), got {text}"
        )
    return value


def finite(text: str) -> float:
    """argparse type: a finite number."""
    return _number(text)


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


MAX_PROMPTS = 100_000  # --n: more takes minutes to build and more memory than a machine has


def prompt_count(text: str) -> int:
    """argparse type: a number of prompts, 1 to :data:`MAX_PROMPTS`."""
    value = positive_int(text)
    if value > MAX_PROMPTS:
        raise argparse.ArgumentTypeError(
            f"at most {MAX_PROMPTS:,} prompts, got {text} (use a task file for more; memory "
            "grows with the prompts)"
        )
    return value


MAX_SEED = 2**63 - 1  # what torch.manual_seed and the task builders take


def seed(text: str) -> int:
    """argparse type: a seed, 0 to :data:`MAX_SEED`."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if not 0 <= value <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be from 0 to 2**63 - 1, got {text}")
    return value


def thread_count(text: str) -> int:
    """argparse type: torch CPU threads, 1 to the machine's CPU count (far more crashes torch)."""
    import os

    value = positive_int(text)
    cpus = os.cpu_count() or 1
    if value > cpus:
        raise argparse.ArgumentTypeError(
            f"at most this machine's {cpus} CPU{'s' * (cpus > 1)}, got {text}"
        )
    return value


def folder_name(text: str) -> str:
    """argparse type: a non-empty path (an empty --out would write into the current folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty (a folder such as results)")
    return text


def tag_name(text: str) -> str:
    """argparse type: a suffix of one folder name (no path separators, no '.' or '..')."""
    if not text or text.strip() != text or "/" in text or "\\" in text or text in (".", ".."):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a plain name: use letters, digits, '-', '_' or '.', without "
            "'/' or surrounding spaces"
        )
    return text


UNITS = {"b": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_memory(text: str) -> float:
    """A memory size as ``max_memory`` takes it. A bare number keeps the meaning of
    ``scoring.memory.budget_bytes`` (GiB below 1024, else bytes); with a unit it is bytes:
    kB, MB, GB, TB are powers of 1000, KiB, MiB, GiB, TiB (or K, M, G, T) powers of 1024,
    B bytes (case ignored). ValueError naming ``text`` otherwise.

    >>> parse_memory("8"), parse_memory("512MiB"), parse_memory("8GB"), parse_memory("1.5g")
    (8.0, 536870912.0, 8000000000.0, 1610612736.0)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)(?:[eE]([+-]?\d+))?\s*([a-zA-Z]*)\s*", text)
    unit = match.group(3).lower() if match else ""
    binary = unit in UNITS or unit in ("kib", "mib", "gib", "tib", "ki", "mi", "gi", "ti")
    decimal = unit in ("kb", "mb", "gb", "tb")
    if match is None or (unit and not (binary or decimal)):
        raise ValueError(
            f"not a memory size: {text!r} (a number of GiB such as 8, or with a unit: 512MiB, "
            "8GiB, 8GB)"
        )
    number = float(match.group(1) + (f"e{match.group(2)}" if match.group(2) else ""))
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"memory size must be positive and finite, got {text!r}")
    if not unit:
        return number
    size = number * (1000 ** ("kmgt".index(unit[0]) + 1) if decimal else UNITS[unit[0]])
    if size < 1024:  # a bare number this small would mean GiB
        raise ValueError(f"memory size {text!r} is below 1 KiB; did you mean {number:g}GiB?")
    return float(size)


def memory_size(text: str) -> float:
    """argparse type: a memory budget (see :func:`parse_memory`)."""
    try:
        return parse_memory(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be finite, got {text}")
    return value


def device_map(text: str) -> str | dict:
    """argparse type: a device map, a name or JSON (checked now, see placement.device_map_key)."""
    import json

    from circuitgraph.models.environment import ModelLoadError
    from circuitgraph.models.placement import device_map_key

    value = text
    if text.lstrip().startswith("{"):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(f"not JSON: {text!r} ({error})") from None
    try:
        device_map_key(value)
    except ModelLoadError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return value
