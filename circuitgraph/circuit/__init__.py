"""The circuit data type: node names, the full graph's structure, :class:`Circuit` (a validated
``networkx.DiGraph``), set algebra, JSON and Graphviz. Never imports torch."""

from circuitgraph.circuit.graph import Circuit, full_circuit
from circuitgraph.circuit.nodes import CircuitConfig

__all__ = ["Circuit", "CircuitConfig", "full_circuit"]
