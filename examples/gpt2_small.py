"""The paper's workflow on GPT-2 small, the model of the paper, for users with its weights.

Runs paper_workflow.py (nested circuits of digits, number words and months at 97/90/80 % over
prompt seeds, the heads they share, held-out scores and the cross-task matrix) and
successor_heads.py (OV successor
search and the attention of the heads the 80 % circuits share) on ``gpt2-small``. Outputs go
to ``--out`` (default ``results/gpt2/``) in the layout those scripts describe; compare them with
PAPER.md (e.g. heads 0.1 4.4 6.1 6.6 6.10 7.11 8.8 9.1 shared by all three tasks, 9.1 the
successor head).

GPT-2 small needs its weights: in the local Hugging Face cache (run once with network access,
without HF_HUB_OFFLINE=1, to download them) or reachable online. Without them the script says
so and exits with code 0.

    python examples/gpt2_small.py [--n 24] [--out results/gpt2]
"""

from __future__ import annotations

import sys
from pathlib import Path

import paper_workflow
import successor_heads

import circuitgraph as cg
from circuitgraph.results import safe_name


def main(argv: list[str] | None = None) -> int:
    parser = paper_workflow.parser(model="gpt2-small")
    parser.description = __doc__.splitlines()[0]
    parser.set_defaults(out=Path("results/gpt2"))
    args = parser.parse_args(argv)
    try:
        cg.load_model(args.model)
    except cg.ModelLoadError as error:
        print(
            f"{args.model} is not available here, so there is nothing to run.\n{error}\n"
            "Download the weights once with network access (e.g. run this script without "
            "HF_HUB_OFFLINE=1), then run it again."
        )
        return 0
    code = paper_workflow.run(args)
    if code:
        return code
    level = min(args.thresholds)
    folder = args.out / safe_name(args.model)
    circuits = [folder / task / f"nodes-{level:g}.json" for task in args.tasks]
    heads = successor_heads.parser(model=args.model).parse_args(
        [
            "--model",
            args.model,
            "--out",
            str(args.out / "successor"),
            "--n",
            str(args.n),
            "--tasks",
            *args.tasks,
            "--circuits",
            *map(str, circuits),
        ]
        + (["--threads", str(args.threads)] if args.threads else [])
    )
    return successor_heads.run(heads)


if __name__ == "__main__":
    sys.exit(main())
