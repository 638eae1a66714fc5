"""2-D convolution (any kernel, stride, asymmetric padding, dilation, groups) and its gradients."""
from __future__ import annotations

import numpy as np

from tte.ir.types import Value
from tte.ops.registry import OpDef, register
from tte.ops.slice_channels import TRAIN_CHANNELS, trained_shape
from tte.ops.windows import col2im, out_size, pad_for, windows

GEOMETRY = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "group": 1}


def conv_out_hw(in_hw, k, attrs) -> tuple[int, int]:
    s, p, d = attrs["strides"], attrs["pads"], attrs["dilations"]
    return (out_size(in_hw[0], k[0], s[0], p[0], p[2], d[0]),
            out_size(in_hw[1], k[1], s[1], p[1], p[3], d[1]))


def _infer(ins: list[Value | None], a: dict) -> list:
    x, w, b = (ins + [None])[:3]
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if c != cg * a["group"] or o % a["group"]:
        raise ValueError(f"conv2d: input has {c} channels, weight {w.shape} with group {a['group']}")
    if b is not None and b.shape != (o,):
        raise ValueError(f"conv2d: bias shape {b.shape}, expected ({o},)")
    return [((n, o) + conv_out_hw((h, wd), (kh, kw), a), x.dtype)]


def _grouped_windows(x, w_shape, a):
    o, cg, kh, kw = w_shape
    out = conv_out_hw(x.shape[2:], (kh, kw), a)
    s, d = tuple(a["strides"]), tuple(a["dilations"])
    xp = pad_for(x, a["pads"], (kh, kw), s, d, out, 0.0)
    win = windows(xp, (kh, kw), s, d, out)
    g = a["group"]
    return win.reshape(x.shape[0], g, cg, kh, kw, *out), xp.shape[2:]


def _conv_ref(x, w, b=None, **a):
    win, _ = _grouped_windows(x, w.shape, a)
    g = a["group"]
    wg = w.reshape(g, w.shape[0] // g, *w.shape[1:])
    y = np.einsum("ngckluv,gockl->ngouv", win, wg, optimize=True)
    y = y.reshape(x.shape[0], w.shape[0], *y.shape[-2:])
    if b is not None:
        y = y + b.reshape(1, -1, 1, 1)
    return [y.astype(x.dtype, copy=False)]


def _grad_input_ref(gy, w, *, input_shape, **a):
    g = a["group"]
    o, cg, kh, kw = w.shape
    n, _, ho, wo = gy.shape
    wg = w.reshape(g, o // g, cg, kh, kw)
    gyg = gy.reshape(n, g, o // g, ho, wo)
    cols = np.einsum("gockl,ngouv->ngckluv", wg, gyg, optimize=True)
    cols = cols.reshape(n, g * cg, kh, kw, ho, wo)
    s, d, p = tuple(a["strides"]), tuple(a["dilations"]), a["pads"]
    padded = ((ho - 1) * s[0] + d[0] * (kh - 1) + 1, (wo - 1) * s[1] + d[1] * (kw - 1) + 1)
    return [col2im(cols, padded, p, tuple(input_shape[2:]), s, d).astype(gy.dtype, copy=False)]


def trained_problem(gy, weight_shape, a: dict, axis: int, channels):
    """(gy, weight shape, geometry) whose ordinary weight gradient, taken on the sliced input
    (slice_channels), is the trained channels' gradient in trained layout: a group-1 conv
    slices input channels only; a depthwise one also takes gy's trained channels."""
    shape = list(trained_shape(weight_shape, axis, channels))
    if channels is None or axis == 1:
        return gy, shape, a
    return np.ascontiguousarray(gy[:, list(channels)]), shape, {**a, "group": len(channels)}


def _grad_weight_ref(x, gy, *, weight_shape, train_axis=0, train_channels=None, **a):
    """The gradient of the whole weight, or with train_channels of its trained part (from
    the sliced input x)."""
    gy, weight_shape, a = trained_problem(gy, weight_shape, a, train_axis, train_channels)
    win, _ = _grouped_windows(x, weight_shape, a)
    g = a["group"]
    n, o, ho, wo = gy.shape
    gw = np.einsum("ngckluv,ngouv->gockl", win, gy.reshape(n, g, o // g, ho, wo), optimize=True)
    return [gw.reshape(weight_shape).astype(x.dtype, copy=False)]


def _conv_vjp(g, node, gys, needs):
    """Input gradient last, so that with a frozen weight gy dies where gx is born (and a
    depthwise gx overwrites it: tte/ops/inplace_grad.py)."""
    from tte.ops import inplace_grad  # it imports this module
    x, w = node.inputs[:2]
    ct = gys[0]
    geo = {k: node.attrs[k] for k in GEOMETRY}
    gb = g.emit("channel_sum", [ct]) if len(needs) > 2 and needs[2] else None
    gw = g.emit("conv2d_grad_weight", [x, ct], {**geo, "weight_shape": list(g.values[w].shape)}) \
        if needs[1] else None
    gx = None
    if needs[0]:
        attrs = {**geo, "input_shape": list(g.values[x].shape)}
        gx = inplace_grad.emit(g, "depthwise_grad_input", ct, w, attrs) \
            if inplace_grad.applies(g, x, w, node.outputs[0], geo["group"]) \
            else g.emit("conv2d_grad_input", [ct, w], attrs)
    return [gx, gw, gb][:len(node.inputs)]


def conv_macs(ins: list[Value | None], outs: list[Value], a: dict) -> int:
    """(x, w[O, C/group, kh, kw], b) -> y: every output element sums C/group*kh*kw terms."""
    return outs[0].size * int(np.prod(ins[1].shape[1:]))


def grad_input_macs(ins: list[Value | None], outs: list[Value], a: dict) -> int:
    """(gy, w): one MAC per term of the forward."""
    return ins[0].size * int(np.prod(ins[1].shape[1:]))


def grad_weight_macs(ins: list[Value | None], outs: list[Value], a: dict) -> int:
    """(x, gy): every trained weight element sums over the output positions."""
    gy = ins[1]
    shape = trained_shape(a["weight_shape"], a["train_axis"], a["train_channels"])
    return int(np.prod(shape)) * (gy.size // gy.shape[1])


register(OpDef("conv2d", _infer, _conv_ref, vjp=_conv_vjp, kernel="tte_conv2d", attrs=GEOMETRY,
               macs=conv_macs,
               doc="2-D convolution (x, w[O,C/group,kh,kw], optional b), NCHW"))
register(OpDef("conv2d_grad_input",
               lambda ins, a: [(tuple(a["input_shape"]), ins[0].dtype)], _grad_input_ref,
               kernel="tte_conv2d_grad_input", attrs={**GEOMETRY, "input_shape": None},
               macs=grad_input_macs,
               doc="gradient of conv2d w.r.t. its input (gy, w)"))
register(OpDef("conv2d_grad_weight",
               lambda ins, a: [(trained_shape(a["weight_shape"], a["train_axis"],
                                              a["train_channels"]), ins[0].dtype)],
               _grad_weight_ref, kernel="tte_conv2d_grad_weight",
               attrs={**GEOMETRY, "weight_shape": None, **TRAIN_CHANNELS}, macs=grad_weight_macs,
               doc="gradient of conv2d w.r.t. its weight (x, gy); with train_channels only "
                   "theirs, from x sliced to them"))
