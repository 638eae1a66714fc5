"""exp, log, sqrt, comparisons, where, maximum / minimum, reduce_max, argmax, stop_gradient.

The IR has no bool dtype: a comparison gives a float mask of 1.0 / 0.0 in its operands'
dtype, and `where` selects on c != 0. Gradients follow JAX: zero through comparisons and
stop_gradient, shared equally between tied operands of maximum / minimum and tied maxima of
reduce_max. Where the C kernels pick one of several equal elements (the first maximum, the
second operand of a tie) the references pick the same one, so they agree bit for bit.
"""
from __future__ import annotations

import numpy as np

from tte.ir.graph import Graph
from tte.ir.types import DType, Role, Value
from tte.ops.elementwise import _broadcast, _reduce_to, _unary
from tte.ops.reduce import _reduced_shape
from tte.ops.registry import OpDef, register, same_as
from tte.quant import ordered


def _no_grad(g, node, gys, needs):
    return [None] * len(node.inputs)


def constant(g: Graph, value: float, dtype: DType) -> str:
    """A scalar constant of graph g for a VJP, shared by every VJP that needs the same one."""
    name = f"const.{value!r}.{dtype.value}"
    if name not in g.values:
        g.add_param(name, np.asarray(value, dtype.numpy), Role.const)
    return name


# exp and log in double, rounded to float, as tte_exp_f32 / tte_log_f32 (see kernels_c/loss.c)
_unary("exp", ordered.exp, lambda g, n, gys, needs: [g.emit("mul", [gys[0], n.outputs[0]])],
       "e^x")
_unary("log", ordered.log, lambda g, n, gys, needs: [g.emit("div", [gys[0], n.inputs[0]])],
       "natural logarithm")
_unary("sqrt", np.sqrt, lambda g, n, gys, needs: [
    g.emit("div", [gys[0], g.emit("add", [n.outputs[0], n.outputs[0]])])], "square root")

COMPARISONS = {"greater": np.greater, "greater_equal": np.greater_equal, "less": np.less,
               "less_equal": np.less_equal, "equal": np.equal, "not_equal": np.not_equal}
for _name, _fn in COMPARISONS.items():
    register(OpDef(_name, _broadcast, lambda a, b, fn=_fn: [fn(a, b).astype(a.dtype)],
                   vjp=_no_grad, kernel="tte_compare_bcast",
                   doc=f"1.0 where numpy.{_fn.__name__}(a, b) else 0.0, with broadcasting"))


def _where_infer(ins: list[Value | None], attrs: dict) -> list:
    try:
        shape = np.broadcast_shapes(*(v.shape for v in ins))
    except ValueError:
        raise ValueError(f"where: shapes {[v.shape for v in ins]} do not broadcast") from None
    return [(tuple(shape), ins[1].dtype)]


def _where_vjp(g, node, gys, needs):
    c, a, b = node.inputs
    ct = gys[0]
    zero = constant(g, 0.0, g.values[ct].dtype)  # where, not a product: inf / NaN stay put
    ga = _reduce_to(g, g.emit("where", [c, ct, zero]), g.values[a].shape) if needs[1] else None
    gb = _reduce_to(g, g.emit("where", [c, zero, ct]), g.values[b].shape) if needs[2] else None
    return [None, ga, gb]


register(OpDef("where", _where_infer,
               lambda c, a, b: [np.where(c != 0, a, b).astype(a.dtype, copy=False)],
               vjp=_where_vjp, kernel="tte_where_bcast",
               doc="a where c != 0 else b, with broadcasting (no gradient for c)"))


def _minmax(name: str, wins: str, loses: str) -> None:
    """maximum (wins = "greater": a is chosen where a > b) or minimum ("less"); a NaN a is
    chosen too and a tie gives b, as numpy.maximum / minimum."""
    pick = COMPARISONS[wins]

    def vjp(g, node, gys, needs):
        ct = gys[0]
        half = constant(g, 0.5, g.values[ct].dtype)

        def share(strict: str, x: str) -> str:
            """ct times 1 where x alone is chosen, 1/2 at a tie, else 0 (JAX's weights)."""
            tie_or_win = [g.emit(op, node.inputs) for op in (strict, f"{strict}_equal")]
            weight = g.emit("mul", [g.emit("add", tie_or_win), half])
            return _reduce_to(g, g.emit("mul", [ct, weight]), g.values[x].shape)
        a, b = node.inputs
        return [share(wins, a) if needs[0] else None, share(loses, b) if needs[1] else None]

    register(OpDef(name, _broadcast,
                   lambda a, b: [np.where(pick(a, b) | np.isnan(a), a, b).astype(a.dtype)],
                   vjp=vjp, kernel=f"tte_{name}_bcast",
                   doc=f"numpy.{name}(a, b) with broadcasting; ties share the gradient"))


_minmax("maximum", "greater", "less")
_minmax("minimum", "less", "greater")


def _first_max(x: np.ndarray, axes) -> tuple[np.ndarray, np.ndarray]:
    """x with the reduced axes (in order) merged into one last axis, as the C kernels scan
    them, and the index of the first maximum along it (a NaN counts as the maximum)."""
    k = len(axes)
    flat = np.moveaxis(x, sorted(axes), range(x.ndim - k, x.ndim))
    flat = flat.reshape(flat.shape[:x.ndim - k] + (-1,))
    return flat, flat.argmax(axis=-1)


def _reduce_max_ref(x: np.ndarray, axes, keepdims) -> list[np.ndarray]:
    flat, first = _first_max(x, axes)
    y = np.take_along_axis(flat, first[..., None], -1)  # that very element: signed zeros too
    return [y.reshape(_reduced_shape(x.shape, axes, keepdims))]


def _reduce_max_vjp(g, node, gys, needs):
    """JAX's rule: ct / (number of maxima) to each element equal to the maximum."""
    x, y, ct = node.inputs[0], node.outputs[0], gys[0]
    axes = node.attrs["axes"]
    if not node.attrs["keepdims"]:  # so that y and ct broadcast against x
        kept = list(_reduced_shape(g.values[x].shape, axes, 1))
        y, ct = (g.emit("reshape", [v], {"shape": kept}) for v in (y, ct))
    at_max = g.emit("equal", [x, y])
    count = g.emit("reduce_sum", [at_max], {"axes": axes, "keepdims": 1})
    return [g.emit("mul", [g.emit("div", [ct, count]), at_max])]


register(OpDef("reduce_max",
               lambda ins, a: [(_reduced_shape(ins[0].shape, a["axes"], a["keepdims"]),
                                ins[0].dtype)],
               _reduce_max_ref, vjp=_reduce_max_vjp, kernel="tte_reduce_max",
               attrs={"axes": None, "keepdims": 1},
               doc="max over axes; tied maxima share the gradient"))


def _argmax_infer(ins: list[Value | None], a: dict) -> list:
    rank = len(ins[0].shape)
    if not -rank <= a["axis"] < rank:
        raise ValueError(f"argmax: axis {a['axis']} of a rank-{rank} value")
    return [(_reduced_shape(ins[0].shape, [a["axis"] % rank], a["keepdims"]), DType.i32)]


register(OpDef("argmax", _argmax_infer,
               lambda x, axis, keepdims: [np.argmax(x, axis=axis, keepdims=bool(keepdims))
                                          .astype(np.int32)],
               kernel="tte_argmax", attrs={"axis": None, "keepdims": 0},
               doc="i32 index of the first maximum along axis (not differentiable)"))
register(OpDef("stop_gradient", same_as(0), lambda x: [x], vjp=_no_grad, kernel="tte_copy",
               inplace=0, doc="x, with no gradient flowing back (free when planned in place)"))
