"""Fully connected layer and general matrix product, with gradients."""
from __future__ import annotations

import numpy as np

from tte.errors import UnsupportedError
from tte.ir.types import Value
from tte.ops.registry import OpDef, register
from tte.quant import ordered


def _linear_infer(ins: list[Value | None], a: dict) -> list:
    x, w, b = (ins + [None])[:3]
    if len(x.shape) != 2 or len(w.shape) != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"linear: input {x.shape} does not match weight {w.shape}")
    if b is not None and b.shape != (w.shape[0],):
        raise ValueError(f"linear: bias {b.shape}, expected ({w.shape[0]},)")
    return [((x.shape[0], w.shape[0]), x.dtype)]


# The references sum in the C kernels' order (tte/quant/ordered.py), so that an fp32 head on
# an int8 backbone trains bit for bit as in C.

def _linear_ref(x, w, b=None):
    y = ordered.matmul(x, w.T)
    return [(y if b is None else y + b).astype(x.dtype, copy=False)]


def _linear_vjp(g, node, gys, needs):
    x, w = node.inputs[:2]
    ct = gys[0]
    gx = g.emit("linear_grad_input", [ct, w]) if needs[0] else None
    gw = g.emit("linear_grad_weight", [x, ct]) if needs[1] else None
    gb = g.emit("channel_sum", [ct]) if len(needs) > 2 and needs[2] else None
    return [gx, gw, gb][:len(node.inputs)]


def linear_macs(ins: list[Value | None], outs: list[Value], a: dict) -> int:
    """x[N, K] @ w[M, K]^T: N*M*K; so are both gradients (gy[N, M] @ w, gy^T @ x)."""
    return outs[0].size * ins[1].shape[1]


def linear_grad_macs(ins: list[Value | None], outs: list[Value], a: dict) -> int:
    return ins[0].size * ins[1].shape[1]


register(OpDef("linear", _linear_infer, _linear_ref, vjp=_linear_vjp, kernel="tte_linear",
               macs=linear_macs,
               doc="x[N,K] @ w[M,K]^T + b[M]"))
register(OpDef("linear_grad_input", lambda ins, a: [((ins[0].shape[0], ins[1].shape[1]),
                                                     ins[0].dtype)],
               lambda gy, w: [ordered.matmul(gy, w).astype(gy.dtype, copy=False)],
               kernel="tte_linear_grad_input", macs=linear_grad_macs, doc="gy[N,M] @ w[M,K]"))
register(OpDef("linear_grad_weight", lambda ins, a: [((ins[1].shape[1], ins[0].shape[1]),
                                                      ins[0].dtype)],
               lambda x, gy: [ordered.matmul(gy.T, x).astype(x.dtype, copy=False)],
               kernel="tte_linear_grad_weight", macs=linear_grad_macs, doc="gy[N,M]^T @ x[N,K]"))


def _matmul_infer(ins: list[Value | None], a: dict) -> list:
    x, y = ins
    try:
        shape = np.matmul(np.empty(x.shape, np.int8), np.empty(y.shape, np.int8)).shape
    except ValueError:
        raise ValueError(f"matmul: shapes {x.shape} and {y.shape} do not multiply") from None
    return [(tuple(shape), x.dtype)]


def _swap_last(g, name: str) -> str:
    rank = len(g.values[name].shape)
    perm = list(range(rank - 2)) + [rank - 1, rank - 2]
    return g.emit("transpose", [name], {"perm": perm})


def _matmul_vjp(g, node, gys, needs):
    a, b = node.inputs
    if len(g.values[a].shape) < 2 or len(g.values[b].shape) < 2:
        raise UnsupportedError("matmul of a 1-D operand is not differentiable in TTE; "
                               "reshape it to 2-D in the model")
    ct = gys[0]
    if len(g.values[a].shape) == len(g.values[b].shape) == 2:
        # a[N,K] @ b[K,M] (a JAX dense layer): the linear layer's kernels with the roles
        # swapped need no transposed copies, and b's gradient fuses with its update
        return [g.emit("linear", [ct, b]) if needs[0] else None,
                g.emit("linear_grad_weight", [ct, a]) if needs[1] else None]
    from tte.ops.elementwise import _reduce_to
    ga = _reduce_to(g, g.emit("matmul", [ct, _swap_last(g, b)]), g.values[a].shape) \
        if needs[0] else None
    gb = _reduce_to(g, g.emit("matmul", [_swap_last(g, a), ct]), g.values[b].shape) \
        if needs[1] else None
    return [ga, gb]


register(OpDef("matmul", _matmul_infer, lambda a, b: [np.matmul(a, b).astype(a.dtype, copy=False)],
               vjp=_matmul_vjp, kernel="tte_matmul", doc="numpy.matmul (batch dims broadcast)"))
