"""One converter per ONNX op: reads the current node through Ctx and emits IR
ops of tte/ops/SPEC.md. Converters run only on nodes with a run-time input;
nodes whose inputs are all constant are folded before they get here."""
from __future__ import annotations

import math
from functools import partial
from typing import Any

import numpy as np

from tte.frontends.onnx_context import CONVERTERS, Ctx, converter
from tte.ir import Role


def _scalar(ctx: Ctx, value: float, like: str) -> str:
    """A scalar constant with the dtype of IR value `like` (for alpha/beta factors)."""
    dtype = ctx.g.values[like].dtype
    return ctx.g.add_param(ctx.tmp(f"{ctx.out()}.k"), np.array(value, dtype.numpy),
                           Role.const, dtype)


# --- elementwise ----------------------------------------------------------------
def _elementwise(op: str, ctx: Ctx) -> None:
    ctx.emit(op, [ctx.value(i) for i in range(len(ctx.node.input))], out=ctx.out())


for _onnx, _ir in {"Add": "add", "Sub": "sub", "Mul": "mul", "Div": "div", "MatMul": "matmul",
                   "Relu": "relu", "Sigmoid": "sigmoid", "Tanh": "tanh",
                   "HardSwish": "hard_swish"}.items():
    CONVERTERS[_onnx] = partial(_elementwise, _ir)


@converter("Sum", "Mean")
def _sum(ctx: Ctx) -> None:
    xs = [ctx.value(i) for i in range(len(ctx.node.input))]
    if len(xs) == 1:
        ctx.alias(ctx.out(), xs[0])
        return
    y = xs[0]
    for x in xs[1:]:
        y = ctx.emit("add", [y, x])
    if ctx.node.op_type == "Mean":  # the sum divided by n, as onnx.reference computes it
        y = ctx.emit("div", [y, _scalar(ctx, len(xs), y)])
    ctx.finish(y)


@converter("Clip")
def _clip(ctx: Ctx) -> None:
    bounds = {k: float(ctx.const(i, k).item()) for i, k in ((1, "min"), (2, "max")) if ctx.has(i)}
    ctx.emit("clip", [ctx.value(0)], bounds, out=ctx.out())


@converter("HardSigmoid")
def _hard_sigmoid(ctx: Ctx) -> None:
    a = ctx.attrs()
    ctx.emit("hard_sigmoid", [ctx.value(0)],
             {"alpha": float(a.get("alpha", 0.2)), "beta": float(a.get("beta", 0.5))},
             out=ctx.out())


# --- convolution and dense ------------------------------------------------------
def _spatial_pads(ctx: Ctx, a: dict[str, Any], spatial: tuple[int, ...], kernel: list[int],
                  strides: list[int], dilations: list[int]) -> list[int]:
    """Explicit [top, left, bottom, right] pads, resolving auto_pad as ONNX does."""
    auto = a.get("auto_pad", "NOTSET")
    if auto == "NOTSET":
        return [int(p) for p in a.get("pads", [0] * 2 * len(spatial))]
    if auto == "VALID":
        return [0] * 2 * len(spatial)
    if auto not in ("SAME_UPPER", "SAME_LOWER"):
        raise ctx.bad_attr("auto_pad", auto, "NOTSET, VALID, SAME_UPPER or SAME_LOWER")
    begins, ends = [], []
    for n, k, s, d in zip(spatial, kernel, strides, dilations):
        total = max((math.ceil(n / s) - 1) * s + (k - 1) * d + 1 - n, 0)
        begin = total // 2 if auto == "SAME_UPPER" else total - total // 2
        begins.append(begin)
        ends.append(total - begin)
    return begins + ends


def _window(ctx: Ctx, a: dict[str, Any], x: str,
            kernel: list[int]) -> tuple[str, list[int], dict[str, Any], bool]:
    """x as NCHW, the kernel and its strides/pads/dilations in 2-D. A 1-D window
    (NCL input) runs as 2-D with a height of one: `lifted` is then True."""
    if len(kernel) not in (1, 2) or len(ctx.shape(x)) != len(kernel) + 2:
        raise ctx.bad_attr("kernel_shape", kernel, "only 1-D and 2-D windows")
    ones = [1] * len(kernel)
    strides, dil = list(a.get("strides", ones)), list(a.get("dilations", ones))
    pads = _spatial_pads(ctx, a, ctx.shape(x)[2:], kernel, strides, dil)
    lifted = len(kernel) == 1
    if lifted:
        n, c, length = ctx.shape(x)
        x = ctx.emit("reshape", [x], {"shape": [n, c, 1, length]})
        kernel, strides, dil = [1, *kernel], [1, *strides], [1, *dil]
        pads = [0, pads[0], 0, pads[1]]
    return x, kernel, {"strides": strides, "pads": pads, "dilations": dil}, lifted


def _emit_window(ctx: Ctx, op: str, inputs: list[str], attrs: dict[str, Any],
                 lifted: bool) -> None:
    if not lifted:
        ctx.emit(op, inputs, attrs, out=ctx.out())
        return
    y = ctx.emit(op, inputs, attrs)
    n, c, _, length = ctx.shape(y)
    ctx.emit("reshape", [y], {"shape": [n, c, length]}, out=ctx.out())


@converter("Conv")
def _conv(ctx: Ctx) -> None:
    w_name = ctx.node.input[1]
    w_shape = ctx.input_shape(1)
    x, _, attrs, lifted = _window(ctx, ctx.attrs(), ctx.value(0), list(w_shape[2:]))
    if not lifted:
        w = ctx.value(1)
    elif w_name in ctx.consts:
        w = ctx.derived(w_name, ctx.consts[w_name][:, :, None, :])
    else:
        w = ctx.emit("reshape", [ctx.value(1)], {"shape": [*w_shape[:2], 1, w_shape[2]]})
    b = ctx.value(2) if ctx.has(2) else ""
    _emit_window(ctx, "conv2d", [x, w, b],
                 {**attrs, "group": int(ctx.attrs().get("group", 1))}, lifted)


def _scaled(ctx: Ctx, i: int, factor: float) -> str:
    """Input i times factor, computed at build time when the input is constant."""
    name = ctx.node.input[i]
    if factor == 1:
        return ctx.value(i)
    if name in ctx.consts:
        c = ctx.consts[name]
        return ctx.derived(name, c * np.asarray(factor, c.dtype))
    v = ctx.value(i)
    return ctx.emit("mul", [v, _scalar(ctx, factor, v)])


def _gemm_linear(ctx: Ctx, x: str, alpha: float, beta: float, trans_b: bool) -> tuple[str, bool]:
    """Constant B: one `linear` whose [M,K] weight has alpha folded in and whose bias
    is beta*C when C is per output unit. Returns the output and whether C is used."""
    b_name = ctx.node.input[1]
    w = ctx.consts[b_name] if trans_b else ctx.consts[b_name].T
    w_ir = ctx.value(1) if trans_b and alpha == 1 else \
        ctx.derived(b_name, w * np.asarray(alpha, w.dtype))
    c = ctx.consts.get(ctx.node.input[2]) if ctx.has(2) else None
    m = w.shape[0]
    if c is None or c.shape not in ((), (1,), (m,), (1, m)):
        return ctx.emit("linear", [x, w_ir, ""]), False
    if c.shape == (m,):
        bias = _scaled(ctx, 2, beta)
    else:
        bias = ctx.derived(ctx.node.input[2],
                           np.broadcast_to(c.reshape(-1) * np.asarray(beta, c.dtype), (m,)))
    return ctx.emit("linear", [x, w_ir, bias]), True


@converter("Gemm")
def _gemm(ctx: Ctx) -> None:
    """alpha*A'B' + beta*C: `linear` when B is constant, else matmul/linear, mul, add."""
    a = ctx.attrs()
    alpha, beta = float(a.get("alpha", 1.0)), float(a.get("beta", 1.0))
    trans_b = bool(a.get("transB", 0))
    x = ctx.value(0)
    if a.get("transA", 0):
        x = ctx.emit("transpose", [x], {"perm": [1, 0]})
    if ctx.node.input[1] in ctx.consts:
        y, c_used = _gemm_linear(ctx, x, alpha, beta, trans_b)
    else:
        y, c_used = ctx.emit("linear" if trans_b else "matmul", [x, ctx.value(1)]), False
        if alpha != 1:
            y = ctx.emit("mul", [y, _scalar(ctx, alpha, y)])
    if ctx.has(2) and not c_used:
        y = ctx.emit("add", [y, _scaled(ctx, 2, beta)])
    ctx.finish(y)


@converter("BatchNormalization")
def _batch_norm(ctx: Ctx) -> None:
    a = ctx.attrs()
    if a.get("training_mode", 0):
        raise ctx.bad_attr("training_mode", 1, "models are imported in inference mode")
    if ctx.output_used(1) or ctx.output_used(2):
        raise ctx.unsupported("the running mean/var outputs exist only in training mode",
                              "BatchNormalization training outputs")
    eps = float(a.get("epsilon", 1e-5))
    if not (ctx.fold_batchnorm and _fold_into_conv(ctx, eps)):
        ctx.emit("batch_norm", [ctx.value(i) for i in range(5)], {"epsilon": eps},
                 out=ctx.out())


def _fold_into_conv(ctx: Ctx, eps: float) -> bool:
    """Scale the producing conv's weight and bias in place when nothing else sees them."""
    x, names = ctx.node.input[0], list(ctx.node.input[1:5])
    # ctx.ir[x] == x: x is a node output under its own name, not an alias of a shared value
    if ctx.uses[x] != 1 or ctx.ir.get(x) != x or not all(n in ctx.consts for n in names):
        return False
    conv = next((n for n in reversed(ctx.g.nodes) if x in n.outputs), None)
    if conv is None or conv.op != "conv2d":
        return False
    if not all(ctx.uses[v] == 1 and v in ctx.g.data for v in conv.inputs[1:] if v):
        return False
    scale, beta, mean, var = (ctx.consts[n].astype(np.float64) for n in names)
    s = scale / np.sqrt(var + eps)
    data, w, b = ctx.g.data, conv.inputs[1], conv.inputs[2]
    data[w] = (data[w] * s.reshape(-1, 1, 1, 1)).astype(data[w].dtype)
    bias = (beta - mean * s) + (data[b] * s if b else 0.0)
    if b:
        data[b] = bias.astype(data[b].dtype)
    else:
        conv.inputs[2] = ctx.derived(names[1], bias.astype(data[w].dtype))
    del ctx.ir[x]
    ctx.finish(x)
    return True


# --- pooling --------------------------------------------------------------------
def _pool(ctx: Ctx, op: str, a: dict[str, Any]) -> None:
    x, kernel, attrs, lifted = _window(ctx, a, ctx.value(0), [int(k) for k in a["kernel_shape"]])
    attrs.update(kernel=kernel, ceil_mode=int(a.get("ceil_mode", 0)))
    if op == "avg_pool2d":
        if attrs.pop("dilations") != [1, 1]:
            raise ctx.bad_attr("dilations", a["dilations"], "average pooling takes no dilation")
        attrs["count_include_pad"] = int(a.get("count_include_pad", 0))
    _emit_window(ctx, op, [x], attrs, lifted)


@converter("AveragePool")
def _avg_pool(ctx: Ctx) -> None:
    _pool(ctx, "avg_pool2d", ctx.attrs())


@converter("MaxPool")
def _max_pool(ctx: Ctx) -> None:
    if ctx.output_used(1):
        raise ctx.unsupported("the Indices output is not supported; use only the first output",
                              "MaxPool Indices output")
    _pool(ctx, "max_pool2d", ctx.attrs())


@converter("GlobalAveragePool")
def _global_avg_pool(ctx: Ctx) -> None:
    x = ctx.value(0)
    rank = len(ctx.shape(x))
    if rank == 4:
        ctx.emit("global_avg_pool", [x], out=ctx.out())
    else:
        ctx.emit("reduce_mean", [x], {"axes": list(range(2, rank)), "keepdims": 1}, out=ctx.out())


# --- reductions and softmax -----------------------------------------------------
def _reduce(op: str, ctx: Ctx) -> None:
    a, x = ctx.attrs(), ctx.value(0)
    axes = a.get("axes")
    if axes is None and ctx.has(1):
        axes = ctx.const(1, "axes").tolist()
    rank = len(ctx.shape(x))
    if not axes:
        if a.get("noop_with_empty_axes", 0):
            ctx.alias(ctx.out(), x)
            return
        axes = range(rank)
    ctx.emit(op, [x], {"axes": sorted({ctx.axis(int(ax), rank) for ax in axes}),
                       "keepdims": int(a.get("keepdims", 1))}, out=ctx.out())


CONVERTERS["ReduceMean"] = partial(_reduce, "reduce_mean")
CONVERTERS["ReduceSum"] = partial(_reduce, "reduce_sum")


def _softmax(op: str, ctx: Ctx) -> None:
    x = ctx.value(0)
    axis = ctx.axis(int(ctx.attrs().get("axis", -1)), len(ctx.shape(x)))
    ctx.emit(op, [x], {"axis": axis}, out=ctx.out())


CONVERTERS["Softmax"] = partial(_softmax, "softmax")
CONVERTERS["LogSoftmax"] = partial(_softmax, "log_softmax")
