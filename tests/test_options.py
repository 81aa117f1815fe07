"""The choice vocabulary (circuitgraph.options): enums that round-trip from the strings users
type, one source for the command line's ``choices``, and command modules named after their
commands."""

from __future__ import annotations

import argparse
import importlib
from enum import Enum

import pytest

from circuitgraph import options
from circuitgraph.cli import COMMANDS, build_parser
from circuitgraph.options import (
    Ablation,
    Direction,
    EdgeOrder,
    Method,
    Metric,
    NodeOrder,
    Normalise,
    On,
    Sampling,
    parse_enum,
    values,
)

ENUMS = [getattr(options, name) for name in options.__all__ if name[0].isupper()]


@pytest.mark.parametrize("enum", ENUMS, ids=lambda e: e.__name__)
def test_enums_round_trip_from_strings(enum: type[Enum]):
    assert issubclass(enum, str) and len(enum) >= 2
    for member in enum:
        assert parse_enum(enum, member.value) is member  # a user's string
        assert parse_enum(enum, member) is member  # a member passes through
        assert member == member.value and enum(str(member.value)) is member
    with pytest.raises(ValueError, match="choose one of " + repr(next(iter(enum)).value)):
        parse_enum(enum, "no such choice")


def test_the_old_homes_of_the_enums_still_work():
    from circuitgraph.prune.edges import METHODS, ORDERS
    from circuitgraph.prune.nodes import ORDERS as NODE_ORDERS
    from circuitgraph.prune.nodes import Order
    from circuitgraph.scoring import metrics, scorer

    assert (scorer.Ablation, scorer.Direction, metrics.Metric) == (Ablation, Direction, Metric)
    assert (metrics.Normalise, metrics.parse_enum, Order) == (Normalise, parse_enum, NodeOrder)
    assert NODE_ORDERS == ("backward", "forward", "backward_forward", "random")
    assert METHODS == ("fast", "reference") and ORDERS == ("canonical", "acdc")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _choices(parser: argparse.ArgumentParser) -> dict[str, tuple]:
    return {a.dest: tuple(a.choices) for a in parser._actions if a.choices is not None}


def test_cli_choices_are_the_enum_values():
    commands = _subcommands(build_parser())
    discover, sweep = _choices(commands["discover"]), _choices(commands["sweep"])
    pruning = values(Method, exclude=(Method.ATTRIBUTION,))
    assert discover == {
        "method": pruning,
        "edge_order": values(EdgeOrder),
        "metric": values(Metric),
        "ablation": values(Ablation),
        "normalise": values(Normalise),
        "direction": values(Direction),
        "order": values(NodeOrder),
    }
    assert sweep["metric"] == ("logit_diff", "accuracy", "prob_diff")  # no KL for nodes
    assert {k: v for k, v in sweep.items() if k != "metric"} == {
        k: discover[k] for k in ("ablation", "normalise", "direction", "order")
    }
    assert _choices(commands["evaluate"]) == {"ablation": values(Ablation)}
    assert _choices(commands["stability"]) == {"method": pruning, "sampling": values(Sampling)}
    assert _choices(commands["overlap"]) == {"on": values(On)}
    assert pruning == ("nodes", "edges")


def test_each_command_module_registers_the_command_it_is_named_after():
    for name in COMMANDS:
        sub = argparse.ArgumentParser().add_subparsers()
        importlib.import_module(f"circuitgraph.cli.{name}").add_parsers(sub)
        assert name in sub.choices and set(sub.choices) <= {name, "analyze"}
    assert set(_subcommands(build_parser())) == {*COMMANDS, "analyze"}
