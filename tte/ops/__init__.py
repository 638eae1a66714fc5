"""All IR ops; importing this package registers them (see SPEC.md for the contract)."""
from tte.ops import (conv, elementwise, linear, optim, pool, quantized,  # noqa: F401
                     quantized_tflite, reduce, shape, tile)  # importing registers the ops
from tte.ops.registry import OpDef, all_ops, get_op, register

optim.register_fused_updates()

__all__ = ["OpDef", "all_ops", "get_op", "register"]
