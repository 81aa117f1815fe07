"""The public API: one table (``circuitgraph._API``), every name importable, and the
type-checking imports, ``__all__`` and the table in agreement."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import circuitgraph as cg


def _type_checking_names() -> dict[str, str]:
    """name -> module of every import under ``if TYPE_CHECKING:`` in ``circuitgraph/__init__``."""
    tree = ast.parse(Path(cg.__file__).read_text())
    block = next(
        node
        for node in tree.body
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING"
    )
    names = {}
    for node in block.body:
        assert isinstance(node, ast.ImportFrom)
        for alias in node.names:
            module = node.module if node.module != "circuitgraph" else f"circuitgraph.{alias.name}"
            names[alias.asname or alias.name] = module
    return names


def test_all_is_the_table():
    assert sorted(cg.__all__) == sorted(["__version__", *cg._API])


def test_type_checking_imports_match_the_table():
    assert _type_checking_names() == cg._API


@pytest.mark.parametrize("name", sorted(cg._API))
def test_every_public_name_imports(name):
    value = getattr(cg, name)
    assert value is not None
    module = importlib.import_module(cg._API[name])
    if module.__name__ != f"circuitgraph.{name}":
        assert getattr(module, name) is value


def test_old_import_paths_of_the_contract_keep_working():
    from circuitgraph.models import ModelLoadError, list_models, load_model

    assert load_model is cg.load_model and list_models is cg.list_models
    assert ModelLoadError is cg.ModelLoadError
    assert cg.compare_methods.__name__ == "compare_methods"


def test_unknown_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'banana'"):
        cg.banana  # noqa: B018
