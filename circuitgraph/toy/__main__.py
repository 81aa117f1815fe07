"""``python -m circuitgraph.toy train [--steps N]``: retrain the embedded toy model."""

from __future__ import annotations

import argparse
from dataclasses import replace

from circuitgraph.toy.train import ToyTrainingConfig, train


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m circuitgraph.toy")
    sub = parser.add_subparsers(dest="command", required=True)
    train_parser = sub.add_parser("train", help="retrain toy-seq and write circuitgraph/data/")
    train_parser.add_argument("--steps", type=int, default=ToyTrainingConfig.steps)
    train_parser.add_argument("--seed", type=int, default=ToyTrainingConfig.seed)
    args = parser.parse_args(argv)
    config = replace(ToyTrainingConfig(), steps=args.steps, seed=args.seed)
    accuracy = train(config)
    width = max(map(len, accuracy))
    for name, value in accuracy.items():
        print(f"{name:<{width}}  {value:.3f}")


if __name__ == "__main__":
    main()
