"""``python -m circuitgraph.cli``: the same as the ``circuitgraph`` command."""

import sys

from circuitgraph.cli import main

sys.exit(main())
