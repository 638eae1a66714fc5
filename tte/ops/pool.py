"""Average, max and global average pooling (ONNX semantics incl. ceil_mode) and gradients."""
from __future__ import annotations

import numpy as np

from tte.ir.types import Value
from tte.ops.registry import OpDef, register
from tte.ops.windows import col2im, out_size, pad_for, windows
from tte.quant import ordered

AVG = {"kernel": None, "strides": [1, 1], "pads": [0, 0, 0, 0], "count_include_pad": 0,
       "ceil_mode": 0}
MAX = {"kernel": None, "strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1],
       "ceil_mode": 0}


def _geometry(in_hw, a):
    k, s, p = tuple(a["kernel"]), tuple(a["strides"]), a["pads"]
    d = tuple(a.get("dilations", [1, 1]))
    out = tuple(out_size(in_hw[i], k[i], s[i], p[i], p[i + 2], d[i], bool(a["ceil_mode"]))
                for i in range(2))
    return k, s, d, p, out


def _infer(ins: list[Value | None], a: dict) -> list:
    x = ins[0]
    *_, out = _geometry(x.shape[2:], a)
    return [(x.shape[:2] + out, x.dtype)]


def _avg_counts(x_shape, a, dtype):
    """Divisor per output: real input elements (plus explicit padding if counted)."""
    k, s, d, p, out = _geometry(x_shape[2:], a)
    ones = np.ones((1, 1) + tuple(x_shape[2:]), dtype)
    if a["count_include_pad"]:
        ones = np.pad(ones, ((0, 0), (0, 0), (p[0], p[2]), (p[1], p[3])), constant_values=1)
        p = [0, 0, 0, 0]
    mp = pad_for(ones, p, k, s, d, out, 0.0)
    # a window lying wholly in padding averages nothing: its sum is 0, so divide by 1
    return np.maximum(windows(mp, k, s, d, out).sum(axis=(2, 3)), 1)


def _avg_ref(x, **a):
    k, s, d, p, out = _geometry(x.shape[2:], a)
    total = windows(pad_for(x, p, k, s, d, out, 0.0), k, s, d, out).sum(axis=(2, 3))
    return [(total / _avg_counts(x.shape, a, x.dtype)).astype(x.dtype, copy=False)]


def _avg_grad_ref(gy, *, input_shape, **a):
    """Each output's share spread over its window: a depthwise transposed convolution with
    weights 1, so its sums run in pool.c's order (windows in scan order)."""
    k, s, d, p, out = _geometry(input_shape[2:], a)
    share = gy / _avg_counts(input_shape, a, gy.dtype)
    ones = np.ones((gy.shape[1], 1) + k, gy.dtype)
    geo = {"strides": s, "pads": p, "dilations": d, "group": gy.shape[1]}
    return [ordered.conv_transpose(share, ones, geo, input_shape[2:])]


def _max_windows(x, a):
    k, s, d, p, out = _geometry(x.shape[2:], a)
    return windows(pad_for(x, p, k, s, d, out, -np.inf), k, s, d, out), (k, s, d, p, out)


def _max_ref(x, **a):
    win, _ = _max_windows(x, a)
    return [win.max(axis=(2, 3)).astype(x.dtype, copy=False)]


def _max_grad_ref(x, gy, **a):
    """Route each output's gradient to the first maximum of its window."""
    win, (k, s, d, p, out) = _max_windows(x, a)
    n, c = x.shape[:2]
    flat = win.reshape(n, c, k[0] * k[1], *out)
    first = flat.argmax(axis=2)
    cols = np.zeros_like(flat, dtype=gy.dtype)
    np.put_along_axis(cols, first[:, :, None], gy[:, :, None], axis=2)
    padded = tuple((out[i] - 1) * s[i] + d[i] * (k[i] - 1) + 1 for i in range(2))
    cols = cols.reshape(n, c, k[0], k[1], *out)
    return [col2im(cols, padded, p, tuple(x.shape[2:]), s, d).astype(gy.dtype, copy=False)]


def _avg_vjp(g, node, gys, needs):
    shape = list(g.values[node.inputs[0]].shape)
    return [g.emit("avg_pool2d_grad", [gys[0]], {**node.attrs, "input_shape": shape})]


def _max_vjp(g, node, gys, needs):
    return [g.emit("max_pool2d_grad", [node.inputs[0], gys[0]], dict(node.attrs))]


def _gap_vjp(g, node, gys, needs):
    shape = g.values[node.inputs[0]].shape
    return [g.emit("unreduce", [gys[0]], {"shape": list(shape), "axes": [2, 3], "keepdims": 1,
                                          "scale": 1.0 / (shape[2] * shape[3])})]


register(OpDef("avg_pool2d", _infer, _avg_ref, vjp=_avg_vjp, kernel="tte_avg_pool2d", attrs=AVG,
               doc="average pool (ONNX AveragePool: pads, count_include_pad, ceil_mode)"))
register(OpDef("avg_pool2d_grad", lambda ins, a: [(tuple(a["input_shape"]), ins[0].dtype)],
               _avg_grad_ref, kernel="tte_avg_pool2d_grad", attrs={**AVG, "input_shape": None},
               doc="gradient of avg_pool2d: each output's share spread over its window"))
register(OpDef("max_pool2d", _infer, _max_ref, vjp=_max_vjp, kernel="tte_max_pool2d", attrs=MAX,
               doc="max pool (ONNX MaxPool: pads never win, dilations, ceil_mode)"))
register(OpDef("max_pool2d_grad", lambda ins, a: [(ins[0].shape, ins[1].dtype)], _max_grad_ref,
               kernel="tte_max_pool2d_grad", attrs=MAX,
               doc="gradient of max_pool2d (x, gy): to the first maximum of each window"))
register(OpDef("global_avg_pool", lambda ins, a: [(ins[0].shape[:2] + (1, 1), ins[0].dtype)],
               lambda x: [x.mean(axis=(2, 3), keepdims=True).astype(x.dtype, copy=False)],
               vjp=_gap_vjp, kernel="tte_global_avg_pool", doc="mean over H and W, keeps dims"))
