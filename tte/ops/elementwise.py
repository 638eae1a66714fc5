"""Elementwise ops with numpy broadcasting, activations and their gradients."""
from __future__ import annotations

import numpy as np

from tte.ir.types import Value
from tte.ops.registry import OpDef, register, same_as


def _broadcast(ins: list[Value | None], attrs: dict) -> list:
    a, b = ins
    try:
        shape = np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"shapes {a.shape} and {b.shape} do not broadcast") from None
    return [(tuple(shape), a.dtype)]


def _reduce_to(g, ct: str, shape: tuple[int, ...]) -> str:
    """Sum a broadcast cotangent back to an operand's shape (no node when shapes match)."""
    if tuple(g.values[ct].shape) == tuple(shape):
        return ct
    return g.emit("sum_to", [ct], {"shape": list(shape)})


def _binary(name: str, fn, vjp, doc: str) -> None:
    register(OpDef(name, _broadcast, lambda a, b: [fn(a, b).astype(a.dtype, copy=False)],
                   vjp=vjp, kernel=f"tte_{name}", inplace=0, doc=doc))


def _add_vjp(g, node, gys, needs):
    ct = gys[0]
    return [_reduce_to(g, ct, g.values[x].shape) if need else None
            for x, need in zip(node.inputs, needs)]


def _sub_vjp(g, node, gys, needs):
    ct = gys[0]
    a, b = node.inputs
    ga = _reduce_to(g, ct, g.values[a].shape) if needs[0] else None
    gb = _reduce_to(g, g.emit("neg", [ct]), g.values[b].shape) if needs[1] else None
    return [ga, gb]


def _mul_vjp(g, node, gys, needs):
    ct = gys[0]
    a, b = node.inputs
    ga = _reduce_to(g, g.emit("mul", [ct, b]), g.values[a].shape) if needs[0] else None
    gb = _reduce_to(g, g.emit("mul", [ct, a]), g.values[b].shape) if needs[1] else None
    return [ga, gb]


def _div_vjp(g, node, gys, needs):
    ct = gys[0]
    a, b = node.inputs
    y = node.outputs[0]
    ga = _reduce_to(g, g.emit("div", [ct, b]), g.values[a].shape) if needs[0] else None
    gb = None
    if needs[1]:  # d(a/b)/db = -y/b
        gb = _reduce_to(g, g.emit("neg", [g.emit("mul", [ct, g.emit("div", [y, b])])]),
                        g.values[b].shape)
    return [ga, gb]


_binary("add", np.add, _add_vjp, "a + b with numpy broadcasting")
_binary("sub", np.subtract, _sub_vjp, "a - b with numpy broadcasting")
_binary("mul", np.multiply, _mul_vjp, "a * b with numpy broadcasting")
_binary("div", np.divide, _div_vjp, "a / b with numpy broadcasting")


def _sum_to_ref(x: np.ndarray, shape: list[int]) -> list[np.ndarray]:
    shape = tuple(shape)
    lead = x.ndim - len(shape)
    axes = tuple(range(lead)) + tuple(lead + i for i, d in enumerate(shape)
                                      if d == 1 and x.shape[lead + i] != 1)
    return [x.sum(axis=axes).reshape(shape).astype(x.dtype, copy=False)]


register(OpDef("sum_to", lambda ins, a: [(tuple(a["shape"]), ins[0].dtype)], _sum_to_ref,
               kernel="tte_sum_to", attrs={"shape": None},
               doc="sum a broadcast result back to `shape` (gradient of broadcasting)"))


def _unary(name: str, fn, vjp, doc: str, attrs: dict | None = None) -> None:
    register(OpDef(name, same_as(0), lambda x, **a: [fn(x, **a).astype(x.dtype, copy=False)],
                   vjp=vjp, kernel=f"tte_{name}", attrs=attrs or {}, inplace=0, doc=doc))


def _grad_op(name: str, fn, doc: str, attrs: dict | None = None) -> None:
    """A backward op `name(saved, ct)` whose output has the shape of ct."""
    register(OpDef(name, same_as(1),
                   lambda s, ct, **a: [fn(s, ct, **a).astype(ct.dtype, copy=False)],
                   kernel=f"tte_{name}", attrs=attrs or {}, inplace=1, doc=doc))


def _via(grad_op: str, saved: str = "input", attr_keys: tuple[str, ...] = ()):
    """VJP that emits grad_op(saved value, cotangent); saved is the op's input or output."""
    def vjp(g, node, gys, needs):
        s = node.inputs[0] if saved == "input" else node.outputs[0]
        attrs = {k: node.attrs[k] for k in attr_keys}
        return [g.emit(grad_op, [s, gys[0]], attrs)]
    return vjp


_unary("neg", np.negative, lambda g, n, gys, needs: [g.emit("neg", [gys[0]])], "-x")
_unary("relu", lambda x: np.maximum(x, 0), _via("relu_grad", "output"), "max(x, 0)")
_grad_op("relu_grad", lambda y, ct: np.where(y > 0, ct, 0), "ct where relu output > 0")
_unary("clip", lambda x, min, max: np.clip(x, min, max), _via("clip_grad", "input", ("min", "max")),
       "clamp to [min, max] (relu6 = clip(0, 6))", {"min": -np.inf, "max": np.inf})
_grad_op("clip_grad", lambda x, ct, min, max: np.where((x > min) & (x < max), ct, 0),
         "ct where min < x < max", {"min": -np.inf, "max": np.inf})


def _sigmoid(x):
    e = np.exp(-np.abs(x))  # never overflows; no cancellation for negative x
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


_unary("sigmoid", _sigmoid, _via("sigmoid_grad", "output"), "1 / (1 + exp(-x))")
_grad_op("sigmoid_grad", lambda y, ct: ct * y * (1 - y), "ct * y * (1 - y), y = sigmoid(x)")
_unary("tanh", np.tanh, _via("tanh_grad", "output"), "tanh(x)")
_grad_op("tanh_grad", lambda y, ct: ct * (1 - y * y), "ct * (1 - y^2), y = tanh(x)")
_unary("hard_sigmoid", lambda x, alpha, beta: np.clip(alpha * x + beta, 0, 1),
       _via("hard_sigmoid_grad", "input", ("alpha", "beta")),
       "clip(alpha * x + beta, 0, 1)", {"alpha": 0.2, "beta": 0.5})
_grad_op("hard_sigmoid_grad",
         lambda x, ct, alpha, beta: np.where((alpha * x + beta > 0) & (alpha * x + beta < 1),
                                             ct * alpha, 0),
         "ct * alpha where 0 < alpha * x + beta < 1", {"alpha": 0.2, "beta": 0.5})
_unary("hard_swish", lambda x: x * np.clip(x + 3, 0, 6) / 6, _via("hard_swish_grad"),
       "x * relu6(x + 3) / 6")
_grad_op("hard_swish_grad",
         lambda x, ct: ct * np.where(x < -3, 0, np.where(x > 3, 1, (2 * x + 3) / 6)),
         "ct * d hard_swish / dx (0 below -3, 1 above 3, (2x+3)/6 between)")


def _batch_norm_ref(x, scale, bias, mean, var, epsilon):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    inv = scale / np.sqrt(var + epsilon)
    return [(x * inv.reshape(shape) + (bias - mean * inv).reshape(shape)).astype(x.dtype)]


def _batch_norm_vjp(g, node, gys, needs):
    x, scale, bias, mean, var = node.inputs
    ct, eps = gys[0], {"epsilon": node.attrs["epsilon"]}
    gx = g.emit("batch_norm_grad_input", [ct, scale, var], eps) if needs[0] else None
    gs = g.emit("batch_norm_grad_scale", [x, ct, mean, var], eps) if needs[1] else None
    gb = g.emit("channel_sum", [ct]) if needs[2] else None
    return [gx, gs, gb, None, None]


def _bn_grad_input_ref(ct, scale, var, epsilon):
    inv = (scale / np.sqrt(var + epsilon)).reshape((1, -1) + (1,) * (ct.ndim - 2))
    return [(ct * inv).astype(ct.dtype)]


def _bn_grad_scale_ref(x, ct, mean, var, epsilon):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    xhat = (x - mean.reshape(shape)) / np.sqrt(var + epsilon).reshape(shape)
    return _channel_sum_ref(xhat * ct)


def _channel_sum_ref(x):
    return [x.sum(axis=tuple(i for i in range(x.ndim) if i != 1)).astype(x.dtype)]


register(OpDef("batch_norm", same_as(0), _batch_norm_ref, vjp=_batch_norm_vjp,
               kernel="tte_batch_norm", attrs={"epsilon": 1e-5}, inplace=0,
               doc="inference batch-norm (x, scale, bias, mean, var), channel axis 1"))
register(OpDef("batch_norm_grad_input", same_as(0), _bn_grad_input_ref,
               kernel="tte_batch_norm_grad_input", attrs={"epsilon": 1e-5}, inplace=0,
               doc="ct * scale / sqrt(var + eps) per channel"))
register(OpDef("batch_norm_grad_scale", same_as(2), _bn_grad_scale_ref,
               kernel="tte_batch_norm_grad_scale", attrs={"epsilon": 1e-5},
               doc="sum of ct * normalised x per channel"))
register(OpDef("channel_sum", lambda ins, a: [((ins[0].shape[1],), ins[0].dtype)],
               _channel_sum_ref, kernel="tte_channel_sum",
               doc="sum over every axis but 1 (bias gradient of conv, linear, batch-norm)"))
