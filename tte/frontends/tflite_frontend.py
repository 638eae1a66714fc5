"""TFLite frontend: a .tflite model (int8 or float32) into the IR, with TFLite's int8 semantics.

Layout. The IR is NCHW with OIHW weights, so every 4-D NHWC activation becomes NCHW (the
graph input too: feed [1, C, H, W]; `to_ir_layout` converts an NHWC array), conv weights
OHWI become OIHW and depthwise [1, KH, KW, C*dm] becomes [C*dm, 1, KH, KW] with group C.
Flattening a 4-D tensor follows NHWC order: FULLY_CONNECTED on a 4-D input gets its weight
columns permuted at import; RESHAPE between 4-D and other ranks transposes at run time only
where the two orders differ (C > 1 and H*W > 1). 4-D constants become NCHW; a lower-rank
operand of a broadcasting ADD is broadcast against NHWC, as in TFLite. Outputs are given in
the IR layout (a 4-D output is NCHW; not transposed back).

int8 ops use rounding "tflite" (tte/ops/quantized.py): bit-exact with tflite-micro, which
tests/test_tflite_frontend.py checks on every tensor of every shipped model. Every int8 and
int32 value carries its QuantParams; weights and biases are frozen params. Ops:
SUPPORTED_TFLITE_OPS (int8 and float32 each; a hybrid op, int8 weights with float
activations, is refused, as tflite-micro refuses it). Fused activations NONE, RELU, RELU6,
RELU_N1_TO_1 become the int8 ops' act_min/act_max, or relu/clip after a float op.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np

from tte.errors import TTEError, UnsupportedError
from tte.frontends.tflite_reader import TfModel, TfOp, TfTensor, read_tflite
from tte.ir.graph import Graph
from tte.ir.types import DType, QuantParams
from tte.quant.arith import activation_range

ACTIVATIONS = {0: None, 1: "relu", 2: "relu_n1_to_1", 3: "relu6"}
_DTYPES = {"INT8": DType.i8, "FLOAT32": DType.f32, "INT32": DType.i32}
NCHW_FROM_NHWC = (0, 3, 1, 2)
NHWC_FROM_NCHW = (0, 2, 3, 1)


def to_ir_layout(x: np.ndarray) -> np.ndarray:
    """An NHWC input as the IR's NCHW (other ranks unchanged)."""
    x = np.asarray(x)
    return np.ascontiguousarray(x.transpose(NCHW_FROM_NHWC)) if x.ndim == 4 else x


def load_tflite(source: str | os.PathLike | bytes, *, name: str | None = None) -> Graph:
    """A .tflite model (path or bytes, one subgraph) as an IR forward graph, NCHW.

    The graph input of a 4-D model takes [N, C, H, W] (meta "layout": "NCHW from NHWC");
    IR values bound to a TFLite tensor carry meta "tflite_tensor" (its index). Raises
    TTEError for a malformed file, UnsupportedError naming the op or type otherwise."""
    return _Converter(read_tflite(source), name).run()


def _nchw_axis(t: TfTensor) -> int:
    """The quantized dimension of tensor t once its 4-D data is NCHW."""
    return NCHW_FROM_NHWC.index(t.quantized_dimension) if len(t.shape) == 4 \
        else t.quantized_dimension


def _same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    out = -(-size // stride)
    total = max((out - 1) * stride + (k - 1) * dilation + 1 - size, 0)
    return total // 2, total - total // 2


class _Converter:
    def __init__(self, model: TfModel, name: str | None) -> None:
        self.m = model
        self.g = Graph(name or model.name)
        self.env: dict[int, str] = {}  # tensor index -> IR value

    # --- helpers ----------------------------------------------------------------------------
    def t(self, i: int) -> TfTensor:
        return self.m.tensors[i]

    def quant(self, i: int) -> tuple[float, int]:
        t = self.t(i)
        if t.scales is None or len(t.scales) != 1:
            raise UnsupportedError(f"tensor {t.name!r} needs one (per-tensor) scale")
        return float(t.scales[0]), int(t.zero_points[0])

    def is_int8(self, i: int) -> bool:
        return self.t(i).dtype == "INT8"

    def value(self, i: int) -> str:
        """The IR value of tensor i; a constant becomes a frozen param (4-D ones as NCHW)."""
        if i in self.env:
            return self.env[i]
        t = self.t(i)
        if t.data is None:
            raise TTEError(f"{self.m.name}: tensor {t.name!r} is read before it is written")
        data = t.data.transpose(NCHW_FROM_NHWC) if t.data.ndim == 4 else t.data
        self.env[i] = self.param(i, data, axis=_nchw_axis(t))
        return self.env[i]

    def param(self, i: int, data: np.ndarray, axis: int | None = None) -> str:
        t = self.t(i)
        name = self.g.add_param(self.g.fresh(t.name), np.ascontiguousarray(data))
        self.set_quant(name, i, axis)
        return name

    def set_quant(self, name: str, i: int, axis: int | None = None) -> None:
        t = self.t(i)
        if t.scales is None:
            return
        per_channel = len(t.scales) > 1
        self.g.values[name].quant = QuantParams(
            tuple(float(s) for s in t.scales), tuple(int(z) for z in t.zero_points),
            axis if per_channel and axis is not None else (0 if per_channel else None))

    def out(self, op: TfOp, name: str) -> str:
        """Bind the op's output tensor to the IR value (meta "tflite_tensor": its index)."""
        self.env[op.outputs[0]] = name
        self.set_quant(name, op.outputs[0])
        self.g.values[name].meta["tflite_tensor"] = op.outputs[0]
        return name

    def act_range(self, op: TfOp) -> dict:
        act = op.options.get("FusedActivationFunction", 0)
        if act not in ACTIVATIONS:
            raise UnsupportedError(f"{op.name} #{op.index}: fused activation {act} is not "
                                   "supported (NONE, RELU, RELU_N1_TO_1, RELU6 are)")
        s, z = self.quant(op.outputs[0])
        lo, hi = activation_range(act, s, z)
        return {"act_min": lo, "act_max": hi}

    def float_act(self, op: TfOp, y: str) -> str:
        act = ACTIVATIONS.get(op.options.get("FusedActivationFunction", 0), "bad")
        if act == "bad":
            raise UnsupportedError(f"{op.name} #{op.index}: unsupported fused activation")
        if act == "relu":
            return self.g.emit("relu", [y])
        if act in ("relu6", "relu_n1_to_1"):
            lo, hi = (0.0, 6.0) if act == "relu6" else (-1.0, 1.0)
            return self.g.emit("clip", [y], {"min": lo, "max": hi})
        return y

    def window(self, op: TfOp, x: str, kh: int, kw: int) -> dict:
        o = op.options
        sh, sw = o.get("StrideH", 1), o.get("StrideW", 1)
        dh, dw = o.get("DilationHFactor", 1), o.get("DilationWFactor", 1)
        h, w = self.g.values[x].shape[2:]
        if o.get("Padding", 1) == 0:  # SAME
            (pt, pb), (pl, pr) = _same_pads(h, kh, sh, dh), _same_pads(w, kw, sw, dw)
        else:
            pt = pb = pl = pr = 0
        return {"strides": [sh, sw], "pads": [pt, pl, pb, pr], "dilations": [dh, dw]}

    # --- driver -----------------------------------------------------------------------------
    def run(self) -> Graph:
        g = self.g
        for i in self.m.inputs:
            t = self.t(i)
            if t.dtype not in _DTYPES:
                raise UnsupportedError(f"input {t.name!r} has type {t.dtype}; TTE reads int8 "
                                       "and float32 models")
            shape = tuple(t.shape[k] for k in NCHW_FROM_NHWC) if len(t.shape) == 4 else t.shape
            name = g.add_input(g.fresh(t.name), shape, _DTYPES[t.dtype])
            if len(t.shape) == 4:
                g.values[name].meta["layout"] = "NCHW from NHWC"
            self.set_quant(name, i)
            self.env[i] = name
            g.values[name].meta["tflite_tensor"] = i
        for op in self.m.ops:
            handler = _HANDLERS.get(op.name)
            if handler is None:
                raise UnsupportedError(
                    f"{self.m.name}: TFLite op {op.name} (#{op.index}) is not supported; "
                    f"TTE reads {', '.join(sorted(_HANDLERS))}")
            for k in op.outputs:
                if self.t(k).dtype not in _DTYPES:
                    raise UnsupportedError(f"{op.name} #{op.index}: output type "
                                           f"{self.t(k).dtype} is not supported")
            handler(self, op)
        g.outputs = [self.env[i] for i in self.m.outputs]
        return g


# --- op handlers ------------------------------------------------------------------------------

def _bias(c: _Converter, op: TfOp) -> str:
    return c.value(op.inputs[2]) if len(op.inputs) > 2 and op.inputs[2] >= 0 else ""


def _no_hybrid(c: _Converter, op: TfOp) -> None:
    """Weights typed like the activations (int8 or float32), constant, int32 biases for int8."""
    x, w = c.t(op.inputs[0]), c.t(op.inputs[1])
    if c.is_int8(op.inputs[1]) != c.is_int8(op.inputs[0]):
        _unsupported(op, f"a hybrid op ({w.dtype} weights with {x.dtype} activations; "
                         "tflite-micro refuses these too; quantize the whole model, weights "
                         "and activations, to int8, or keep it float32)")
    if w.data is None:
        _unsupported(op, "a run-time (non-constant) weight tensor")
    if w.dtype not in ("INT8", "FLOAT32"):
        _unsupported(op, f"{w.dtype} weights (int8 and float32 are supported)")
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        b = c.t(op.inputs[2])
        want = "INT32" if x.dtype == "INT8" else "FLOAT32"
        if b.dtype != want or b.data is None:
            _unsupported(op, f"a {b.dtype} bias with {x.dtype} activations (it must be a "
                             f"constant {want} tensor)")


def _conv(c: _Converter, op: TfOp) -> None:
    x = c.value(op.inputs[0])
    wt = c.t(op.inputs[1])
    _no_hybrid(c, op)
    if op.name == "CONV_2D":
        w, group = wt.data.transpose(0, 3, 1, 2), c.g.values[x].shape[1] // wt.shape[3]
    else:
        w, group = wt.data[0].transpose(2, 0, 1)[:, None], c.g.values[x].shape[1]
    geo = {**c.window(op, x, w.shape[2], w.shape[3]), "group": group}
    wn = c.g.add_param(c.g.fresh(wt.name), np.ascontiguousarray(w))
    c.set_quant(wn, op.inputs[1], axis=0)
    b = _bias(c, op)
    if not c.is_int8(op.inputs[0]):
        y = c.g.emit("conv2d", [x, wn, b], geo)
        c.out(op, c.float_act(op, y))
        return
    s_in, z_in = c.quant(op.inputs[0])
    s_out, z_out = c.quant(op.outputs[0])
    w_scales = [float(s) for s in np.broadcast_to(wt.scales, (w.shape[0],))]
    c.out(op, c.g.emit("conv2d_s8", [x, wn, b], {
        **geo, "in_scale": s_in, "in_zero": z_in, "w_scales": w_scales, "out_scale": s_out,
        "out_zero": z_out, **c.act_range(op)}))


def _flatten_nhwc(c: _Converter, x: str, rows: int) -> str:
    """A 4-D NCHW value as [rows, -1] in NHWC element order."""
    shape = c.g.values[x].shape
    if len(shape) == 4 and shape[1] > 1 and shape[2] * shape[3] > 1:
        x = c.g.emit("transpose", [x], {"perm": list(NHWC_FROM_NCHW)})
    return c.g.emit("reshape", [x], {"shape": [rows, c.g.values[x].size // rows]})


def _fully_connected(c: _Converter, op: TfOp) -> None:
    if op.options.get("KeepNumDims"):
        raise UnsupportedError(f"FULLY_CONNECTED #{op.index}: keep_num_dims is not supported")
    x = c.value(op.inputs[0])
    wt = c.t(op.inputs[1])
    _no_hybrid(c, op)
    m, k = wt.shape
    shape = c.g.values[x].shape
    w = wt.data
    if c.g.values[x].size % k:
        _unsupported(op, f"an input of shape {c.t(op.inputs[0]).shape} with {k} weight columns")
    if len(shape) == 4 and k == np.prod(shape[1:]):
        # TFLite flattens each NHWC row: permute the weight columns to NCHW order instead
        w = w.reshape(m, shape[2], shape[3], shape[1]).transpose(0, 3, 1, 2).reshape(m, k)
        x = c.g.emit("reshape", [x], {"shape": [shape[0], k]})
    elif len(shape) == 4:
        x = _flatten_nhwc(c, x, c.g.values[x].size // k)
    elif len(shape) != 2:
        x = c.g.emit("reshape", [x], {"shape": [c.g.values[x].size // k, k]})
    wn = c.param(op.inputs[1], np.ascontiguousarray(w))
    b = _bias(c, op)
    if not c.is_int8(op.inputs[0]):
        c.out(op, c.float_act(op, c.g.emit("linear", [x, wn, b])))
        return
    s_in, z_in = c.quant(op.inputs[0])
    s_out, z_out = c.quant(op.outputs[0])
    c.out(op, c.g.emit("linear_s8", [x, wn, b], {
        "in_scale": s_in, "in_zero": z_in, "w_scales": [float(s) for s in wt.scales],
        "w_zero": int(wt.zero_points[0]), "out_scale": s_out, "out_zero": z_out,
        **c.act_range(op)}))


def _broadcast_operand(c: _Converter, i: int, rank: int) -> str:
    """Tensor i as an operand of a broadcasting op whose output has TFLite rank `rank`: a
    lower-rank operand of a 4-D op is broadcast against NHWC, so it becomes 4-D NCHW."""
    x = c.value(i)
    shape = c.t(i).shape
    if rank != 4 or len(shape) == 4:
        return x
    nhwc = (1,) * (4 - len(shape)) + tuple(shape)
    x = c.g.emit("reshape", [x], {"shape": list(nhwc)})
    return c.g.emit("transpose", [x], {"perm": list(NCHW_FROM_NHWC)})


def _add(c: _Converter, op: TfOp) -> None:
    rank = len(c.t(op.outputs[0]).shape)
    a, b = (_broadcast_operand(c, i, rank) for i in op.inputs[:2])
    if not c.is_int8(op.inputs[0]):
        c.out(op, c.float_act(op, c.g.emit("add", [a, b])))
        return
    if c.g.values[a].shape != c.g.values[b].shape:
        _unsupported(op, f"int8 broadcasting ({c.t(op.inputs[0]).shape} + "
                         f"{c.t(op.inputs[1]).shape}; int8 ADD takes two tensors of one shape)")
    (sa, za), (sb, zb), (so, zo) = (c.quant(i) for i in (*op.inputs, op.outputs[0]))
    c.out(op, c.g.emit("add_s8", [a, b], {"a_scale": sa, "a_zero": za, "b_scale": sb,
                                          "b_zero": zb, "out_scale": so, "out_zero": zo,
                                          **c.act_range(op)}))


def _pool(c: _Converter, op: TfOp) -> None:
    x = c.value(op.inputs[0])
    kh, kw = op.options["FilterHeight"], op.options["FilterWidth"]
    geo = {**c.window(op, x, kh, kw), "kernel": [kh, kw]}
    del geo["dilations"]
    kind = "avg" if op.name == "AVERAGE_POOL_2D" else "max"
    if not c.is_int8(op.inputs[0]):
        c.out(op, c.float_act(op, c.g.emit(f"{kind}_pool2d", [x], geo)))
        return
    if c.quant(op.inputs[0]) != c.quant(op.outputs[0]):
        raise UnsupportedError(f"{op.name} #{op.index}: input and output quantization differ")
    c.out(op, c.g.emit(f"{kind}_pool2d_s8", [x], {**geo, **c.act_range(op)}))


def _reshape(c: _Converter, op: TfOp) -> None:
    x = c.value(op.inputs[0])
    shape = list(c.t(op.outputs[0]).shape)
    v = c.g.values[x]
    if len(v.shape) == 4:
        x = _flatten_nhwc(c, x, 1)
    if len(shape) == 4:
        nhwc = c.g.emit("reshape", [x], {"shape": shape})
        if shape[3] > 1 and shape[1] * shape[2] > 1:
            c.out(op, c.g.emit("transpose", [nhwc], {"perm": list(NCHW_FROM_NHWC)}))
        else:
            c.out(op, c.g.emit("reshape", [nhwc], {"shape": [shape[k] for k in NCHW_FROM_NHWC]}))
        return
    c.out(op, c.g.emit("reshape", [x], {"shape": shape}))


def _softmax(c: _Converter, op: TfOp) -> None:
    x = c.value(op.inputs[0])
    if len(c.g.values[x].shape) == 4:
        raise UnsupportedError(f"SOFTMAX #{op.index} on a 4-D tensor; TTE takes [batch, classes]")
    beta = float(op.options.get("Beta", 1.0))
    if not c.is_int8(op.inputs[0]):
        if beta != 1.0:
            x = c.g.emit("mul", [x, c.g.add_param(c.g.fresh(f"softmax{op.index}.beta"),
                                                  np.array([beta], np.float32))])
        c.out(op, c.g.emit("softmax", [x], {"axis": -1}))
        return
    if c.quant(op.outputs[0]) != (1 / 256, -128):
        raise UnsupportedError(f"SOFTMAX #{op.index}: int8 output must have scale 1/256 and "
                               "zero point -128, as TFLite requires")
    c.out(op, c.g.emit("softmax_s8", [x], {"in_scale": c.quant(op.inputs[0])[0], "beta": beta}))


def _unsupported(op: TfOp, what: str):
    raise UnsupportedError(f"{op.name} #{op.index}: {what} is not supported")


def _const_ints(c: _Converter, i: int, op: TfOp) -> list[int]:
    t = c.t(i)
    if t.data is None:
        _unsupported(op, "a run-time (non-constant) shape argument")
    return [int(v) for v in np.asarray(t.data).reshape(-1)]


def _mean(c: _Converter, op: TfOp) -> None:
    x = c.value(op.inputs[0])
    axes = sorted(a % 4 for a in _const_ints(c, op.inputs[1], op))
    if len(c.g.values[x].shape) != 4 or axes != [1, 2]:
        _unsupported(op, f"MEAN over axes {axes} (TTE takes H and W of a 4-D tensor)")
    keep = bool(op.options.get("KeepDims", False))
    if c.is_int8(op.inputs[0]):
        (si, zi), (so, zo) = c.quant(op.inputs[0]), c.quant(op.outputs[0])
        y = c.g.emit("mean_s8", [x], {"in_scale": si, "in_zero": zi, "out_scale": so,
                                      "out_zero": zo})
    else:
        y = c.g.emit("reduce_mean", [x], {"axes": [2, 3], "keepdims": 1})
    if not keep:
        y = c.g.emit("reshape", [y], {"shape": list(c.g.values[y].shape[:2])})
    c.out(op, y)


def _pad(c: _Converter, op: TfOp) -> None:
    """PAD and PADV2: int8 pads with the output zero point (PAD) or the constant (PADV2),
    which must be quantized like the output, as tflite-micro checks."""
    x = c.value(op.inputs[0])
    pads = np.asarray(_const_ints(c, op.inputs[1], op)).reshape(-1, 2)
    if len(pads) == 4:
        pads = pads[list(NCHW_FROM_NHWC)]
    if c.is_int8(op.inputs[0]) and c.quant(op.inputs[0]) != c.quant(op.outputs[0]):
        _unsupported(op, "int8 padding with different input and output quantization")
    if len(op.inputs) > 2 and op.inputs[2] >= 0:
        t = c.t(op.inputs[2])
        if t.data is None or t.data.size != 1:
            _unsupported(op, "a padding value that is not one constant")
        if c.is_int8(op.inputs[0]) and (t.dtype != "INT8" or c.quant(op.inputs[2]) !=
                                        c.quant(op.outputs[0])):
            _unsupported(op, "an int8 padding value quantized unlike the output")
        value = float(t.data.reshape(-1)[0])
    else:
        value = float(c.quant(op.outputs[0])[1]) if c.is_int8(op.inputs[0]) else 0.0
    c.out(op, c.g.emit("pad", [x], {"pads": [int(p) for p in pads[:, 0]] +
                                    [int(p) for p in pads[:, 1]], "value": value}))


def _quantize(c: _Converter, op: TfOp) -> None:
    if c.is_int8(op.inputs[0]) or not c.is_int8(op.outputs[0]):
        _unsupported(op, "QUANTIZE other than float32 -> int8")
    s, z = c.quant(op.outputs[0])
    c.out(op, c.g.emit("quantize", [c.value(op.inputs[0])], {"scale": s, "zero": z}))


def _dequantize(c: _Converter, op: TfOp) -> None:
    if not c.is_int8(op.inputs[0]):
        _unsupported(op, "DEQUANTIZE of a non-int8 tensor")
    s, z = c.quant(op.inputs[0])
    c.out(op, c.g.emit("dequantize", [c.value(op.inputs[0])], {"scale": s, "zero": z}))


_HANDLERS: dict[str, Callable[[_Converter, TfOp], None]] = {
    "CONV_2D": _conv, "DEPTHWISE_CONV_2D": _conv, "FULLY_CONNECTED": _fully_connected,
    "ADD": _add, "AVERAGE_POOL_2D": _pool, "MAX_POOL_2D": _pool, "RESHAPE": _reshape,
    "SOFTMAX": _softmax, "MEAN": _mean, "PAD": _pad, "PADV2": _pad, "QUANTIZE": _quantize,
    "DEQUANTIZE": _dequantize,
}
SUPPORTED_TFLITE_OPS = sorted(_HANDLERS)
