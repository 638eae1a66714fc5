"""Optimizer updates, applied in place to parameters and optimizer state."""
from __future__ import annotations

import numpy as np

from tte.ir.types import Value
from tte.ops.registry import OpDef, register


def _sgd_infer(ins: list[Value | None], a: dict) -> list:
    p, g, buf = (ins + [None])[:3]
    if p.shape != g.shape or (buf is not None and buf.shape != p.shape):
        raise ValueError(f"sgd_update: parameter {p.shape}, gradient {g.shape} differ")
    return []


def _sgd_ref(p, g, buf=None, *, lr, momentum, weight_decay):
    """PyTorch SGD: g += wd * p; buf = momentum * buf + g (buf starts at 0); p -= lr * buf."""
    step = g + weight_decay * p if weight_decay else g
    if buf is None:
        return [(p - lr * step).astype(p.dtype, copy=False)]
    buf = momentum * buf + step
    return [(p - lr * buf).astype(p.dtype, copy=False), buf.astype(p.dtype, copy=False)]


register(OpDef("sgd_update", _sgd_infer, _sgd_ref, kernel="tte_sgd_update",
               attrs={"lr": None, "momentum": 0.0, "weight_decay": 0.0}, mutates=(0, 2),
               doc="in-place SGD (param, grad, optional momentum buffer), PyTorch semantics"))
