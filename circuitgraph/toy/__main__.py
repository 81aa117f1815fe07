"""``python -m circuitgraph.toy train [--steps N] [--out DIR]``: train a toy-seq model.

It is written to ``--out`` (default ``results/toy-seq``), never into the package: the shipped
model is what every example, test and documented number uses. To ship a new one, copy its
folder over ``circuitgraph/data/toy-seq`` by hand and re-measure.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

from circuitgraph.cli._arguments import positive_int
from circuitgraph.toy.train import DEFAULT_OUT, ToyTrainingConfig, check_out_dir, train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m circuitgraph.toy")
    sub = parser.add_subparsers(dest="command", required=True)
    train_parser = sub.add_parser("train", help="train a toy-seq model into --out")
    train_parser.add_argument("--steps", type=positive_int, default=ToyTrainingConfig.steps)
    train_parser.add_argument("--seed", type=int, default=ToyTrainingConfig.seed)
    train_parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="default: %(default)s")
    train_parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    args = parser.parse_args(argv)
    try:
        check_out_dir(args.out, args.overwrite)
    except ValueError as error:
        parser.error(str(error))
    config = replace(ToyTrainingConfig(), steps=args.steps, seed=args.seed)
    accuracy = train(config, args.out, args.overwrite)
    width = max(map(len, accuracy))
    for name, value in accuracy.items():
        print(f"{name:<{width}}  {value:.3f}")


if __name__ == "__main__":
    main()
