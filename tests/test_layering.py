"""The package layout is the architecture: each package imports only the layers below it.

Read with the standard library's ``ast`` from the source (imports inside functions count too),
so a new upward import fails here before it turns into a cycle or drags torch into a light layer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "circuitgraph"
BASE = {"options", "files", "guards"}  # standard library only; anyone may import them

# unit -> the other units it may import (besides itself and BASE).
ALLOWED: dict[str, set[str]] = {
    "options": set(),
    "files": set(),
    "guards": set(),
    "circuit": set(),
    "figures": {"circuit"},
    "models": {"toy"},  # the embedded toy model's tokenizer
    "tasks": set(),
    "scoring": {"circuit"},
    "parallel": set(),
    "results": {"circuit"},
    "toy": {"models", "tasks", "cli"},  # python -m circuitgraph.toy takes the CLI's option types
    "prune": {"circuit", "scoring", "figures", "parallel", "models"},
    "analysis": {"circuit", "scoring", "figures", "tasks", "models"},
    "evaluation": {"circuit", "scoring", "figures", "parallel", "prune", "tasks", "models"},
    "viewer": {"circuit", "figures"},
    "ground_truth": {"circuit", "models", "tasks", "scoring"},
    "cli": {"*"},
    "__init__": {"*"},
}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports() -> list[tuple[str, str, str]]:
    """(importing unit, imported unit, file:line) for every circuitgraph import in the package."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        unit = rel.parts[1] if len(rel.parts) > 1 else "__init__"
        tree = ast.parse(path.read_text(), str(path))
        type_only = {  # imports under `if TYPE_CHECKING:` never run: annotations may name any layer
            id(child)
            for block in ast.walk(tree)
            if isinstance(block, ast.If) and getattr(block.test, "id", None) == "TYPE_CHECKING"
            for child in ast.walk(block)
        }
        for node in ast.walk(tree):
            if id(node) in type_only:
                continue
            if isinstance(node, ast.ImportFrom) and node.module:
                if node.module == "circuitgraph":
                    targets = [f"circuitgraph.{alias.name}" for alias in node.names]
                else:
                    targets = [node.module]
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            else:
                continue
            for target in targets:
                if target.startswith("circuitgraph.") and _unit(target) != "__version__":
                    found.append((unit, _unit(target), f"{rel}.py:{node.lineno}"))
    return found


def test_every_unit_has_a_rule():
    units = {unit for unit, _, _ in _imports()} | {target for _, target, _ in _imports()}
    assert units <= set(ALLOWED), f"add a layering rule for {sorted(units - set(ALLOWED))}"


def test_no_upward_imports():
    broken = [
        f"{where}: {unit} imports {target}"
        for unit, target, where in _imports()
        if target != unit
        and target not in BASE
        and "*" not in ALLOWED[unit]
        and target not in ALLOWED[unit]
    ]
    assert not broken, "imports against the layering:\n" + "\n".join(broken)


@pytest.mark.parametrize("module", ["options", "files", "guards"])
def test_base_modules_are_standard_library_only(module):
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    third_party = {"torch", "numpy", "pandas", "networkx", "matplotlib", "transformer_lens"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in third_party | {"circuitgraph"}, name


def test_the_circuit_package_never_imports_torch():
    """Load, combine, save and draw a circuit in a fresh interpreter: torch stays unloaded."""
    code = (
        "import sys, tempfile, pathlib\n"
        "from circuitgraph.circuit import CircuitConfig, full_circuit, Circuit\n"
        "from circuitgraph.circuit import render, setops, serialization, subgraph, structure\n"
        "c = full_circuit(CircuitConfig(n_layers=2, n_heads=2, model_name='tiny'))\n"
        "d = c - c\n"
        "path = pathlib.Path(tempfile.mkdtemp()) / 'c.json'\n"
        "c.to_json(path); Circuit.from_json(path); c.to_dot()\n"
        "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if 'torch' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_figures_never_use_pyplot():
    """One convention: ``figures.new_figure`` and ``save_figure``, no pyplot global state."""
    users = []
    for path in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            imported = isinstance(node, ast.Import | ast.ImportFrom) and any(
                "pyplot" in name
                for name in [getattr(node, "module", None) or ""]
                + [alias.name for alias in node.names]
            )
            built = isinstance(node, ast.Call) and getattr(node.func, "id", "") == "Figure"
            if imported or built:
                users.append(str(path.relative_to(PACKAGE)))
    assert set(users) == {"figures.py"}, users
