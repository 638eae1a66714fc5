"""TTE, the tiny training engine: compile a model's training step for microcontrollers."""
from tte.api import compile, load_model
from tte.errors import TTEError, UnsupportedError
from tte.frontends.jax_frontend import from_jax, to_pytree
from tte.ir import DType, Graph, Node, QuantParams, Role, Value
from tte.program import Program

__all__ = ["compile", "from_jax", "to_pytree", "load_model", "Program", "TTEError",
           "UnsupportedError",
           "DType", "Graph", "Node", "QuantParams", "Role", "Value"]
__version__ = "0.1.0"
