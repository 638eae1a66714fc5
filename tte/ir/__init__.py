"""The intermediate representation: typed values, nodes, graphs."""
from tte.ir.types import DType, QuantParams, Role, Value
from tte.ir.graph import Graph, Node

__all__ = ["DType", "QuantParams", "Role", "Value", "Graph", "Node"]
