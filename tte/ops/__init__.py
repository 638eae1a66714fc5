"""All IR ops; importing this package registers them (see SPEC.md for the contract)."""
# importing registers the ops
from tte.ops import (conv, elementwise, inplace_grad, linear, math, optim,  # noqa: F401
                     pool, quantized, quantized_tflite, reduce, shape, tile)
from tte.ops.registry import OpDef, all_ops, get_op, register

optim.register_fused_updates()

__all__ = ["OpDef", "all_ops", "get_op", "register"]
