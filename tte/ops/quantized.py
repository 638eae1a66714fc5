"""int8 ops with TFLite's integer semantics (or the MCU backbones' double-rounding rule).

Quantization parameters are attributes, so the numpy references and the C emitters see
everything they need; the values' QuantParams say the same for readers of the IR.
`rounding` selects the requantization: "tflite" (fixed-point multiplier and shift,
double rounding, int32 wrap-around, bit-exact with tflite-micro) or "half_even" (the MCU
backbones' published rule: round((acc + bias) * s_x * s_w / s_y) in double, half to even).

Training: cotangents of int8 values are float32 in real units (d loss / d real value).
A node whose clamp lies on the backward path gets a second output, `mask`: one bit per
output element, set where the value before the clamp was inside [act_min, act_max] (the
clamp's gradient; rounding is treated as the identity, i.e. straight through). Gradients
of int8 weights and int32 biases are taken w.r.t. the stored integers (d loss / d w_q).
"""
from __future__ import annotations

import math

import numpy as np

from tte.ir.types import DType, Value
from tte.ops import inplace_grad
from tte.ops.conv import GEOMETRY, conv_macs, conv_out_hw, grad_input_macs, grad_weight_macs
from tte.ops.linear import linear_grad_macs, linear_macs
from tte.ops.pool import AVG, MAX, _geometry
from tte.ops.registry import OpDef, register
from tte.ops.slice_channels import TRAIN_CHANNELS, on_trained, trained_shape
from tte.quant import arith, ordered

ROUNDINGS = ("tflite", "half_even")
ACT = {"act_min": -128, "act_max": 127}
CONV_S8 = {**GEOMETRY, "in_scale": None, "in_zero": 0, "w_scales": None, "out_scale": None,
           "out_zero": 0, **ACT, "rounding": "tflite", "mask": False}


def window(attrs: dict, kernel_hw) -> dict:
    """arith's window dict from IR geometry attributes."""
    p, s = attrs["pads"], attrs["strides"]
    d = attrs.get("dilations", [1, 1])
    return {"kernel_h": kernel_hw[0], "kernel_w": kernel_hw[1], "stride_h": s[0],
            "stride_w": s[1], "pad_top": p[0], "pad_left": p[1], "pad_bottom": p[2],
            "pad_right": p[3], "dilation_h": d[0], "dilation_w": d[1],
            "groups": attrs.get("group", 1)}


def mask_bytes(shape) -> int:
    return math.ceil(int(np.prod(shape, dtype=np.int64)) / 8)


def _with_mask(out: tuple, a: dict) -> list:
    return [out] + ([((mask_bytes(out[0]),), DType.u8)] if a["mask"] else [])


def _finish(v: np.ndarray, a: dict) -> list[np.ndarray]:
    """Clamp the pre-activation value v to int8, plus the clamp mask when asked for."""
    y = np.clip(v, a["act_min"], a["act_max"]).astype(np.int8)
    return [y] + ([arith.clamp_mask(v, a["act_min"], a["act_max"])] if a["mask"] else [])


def conv_multipliers(in_scale: float, w_scales, out_scale: float) -> tuple[np.ndarray, ...]:
    """TFLite's PopulateConvolutionQuantizationParams: M = s_in * s_w[c] / s_out in double."""
    ms = [arith.quantize_multiplier(float(in_scale) * float(sw) / float(out_scale))
          for sw in w_scales]
    return np.array([m for m, _ in ms], np.int32), np.array([s for _, s in ms], np.int32)


def effective_scales(a: dict) -> np.ndarray:
    """The half_even rule's per-channel scale, (s_x * s_w[c]) / s_y in double."""
    return (float(a["in_scale"]) * np.asarray(a["w_scales"], np.float64)) / float(a["out_scale"])


def _requant(acc, bias, a, axis_shape):
    if a["rounding"] == "half_even":
        return arith.requant_half_even(acc, bias, effective_scales(a), a["out_zero"], axis_shape)
    mult, shift = conv_multipliers(a["in_scale"], a["w_scales"], a["out_scale"])
    return arith.requant_tflite(arith.add_bias_wrapped(arith.wrap32(acc), bias, axis_shape),
                                mult, shift, a["out_zero"], axis_shape)


# --- forward ----------------------------------------------------------------------------------

def _conv_infer(ins: list[Value | None], a: dict) -> list:
    x, w, b = (ins + [None])[:3]
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    if (x.dtype, w.dtype) != (DType.i8, DType.i8) or (b is not None and b.dtype != DType.i32):
        raise ValueError("conv2d_s8 takes int8 input and weight and an int32 bias")
    if c != cg * a["group"] or o % a["group"] or len(a["w_scales"]) != o:
        raise ValueError(f"conv2d_s8: input {x.shape}, weight {w.shape}, group {a['group']}, "
                         f"{len(a['w_scales'])} weight scales")
    if a["rounding"] not in ROUNDINGS:
        raise ValueError(f"conv2d_s8: rounding {a['rounding']!r} not in {ROUNDINGS}")
    return _with_mask(((n, o) + conv_out_hw((h, wd), (kh, kw), a), DType.i8), a)


def _conv_ref(x, w, b=None, **a):
    out_hw = conv_out_hw(x.shape[2:], w.shape[2:], a)
    acc = arith.conv2d_acc(x, w, window(a, w.shape[2:]), out_hw, -a["in_zero"])
    return _finish(_requant(acc, b, a, (1, -1, 1, 1)), a)


LINEAR_S8 = {"in_scale": None, "in_zero": 0, "w_scales": None, "w_zero": 0, "out_scale": None,
             "out_zero": 0, **ACT, "rounding": "tflite", "mask": False}


def _linear_infer(ins: list[Value | None], a: dict) -> list:
    x, w, b = (ins + [None])[:3]
    if len(x.shape) != 2 or len(w.shape) != 2 or x.shape[1] != w.shape[1]:
        raise ValueError(f"linear_s8: input {x.shape} and weight {w.shape} do not match")
    if len(a["w_scales"]) not in (1, w.shape[0]):
        raise ValueError("linear_s8: one weight scale, or one per output")
    return _with_mask(((x.shape[0], w.shape[0]), DType.i8), a)


def output_scales(a: dict, outputs: int) -> np.ndarray:
    """linear_s8's weight scale of each of its outputs (one scale, or one per output)."""
    return np.broadcast_to(np.asarray(a["w_scales"], np.float64), (outputs,))


def _linear_ref(x, w, b=None, **a):
    acc = arith.linear_acc(x, w, -a["in_zero"], -a["w_zero"])
    scales = output_scales(a, w.shape[0])
    return _finish(_requant(acc, b, {**a, "w_scales": scales}, (1, -1)), a)


ADD_S8 = {"a_scale": None, "a_zero": 0, "b_scale": None, "b_zero": 0, "out_scale": None,
          "out_zero": 0, **ACT, "rounding": "tflite", "mask": False}


def add_params(a: dict) -> dict:
    """TFLite's prepared ADD parameters for these attributes."""
    p = arith.add_params(a["a_scale"], a["a_zero"], a["b_scale"], a["b_zero"], a["out_scale"],
                         a["out_zero"])
    return {**p, "act_min": a["act_min"], "act_max": a["act_max"]}


def _add_infer(ins: list[Value | None], a: dict) -> list:
    x, y = ins
    if x.shape != y.shape or x.dtype != DType.i8 or y.dtype != DType.i8:
        raise ValueError(f"add_s8 takes two int8 tensors of one shape, got {x.shape}, {y.shape}")
    return _with_mask((x.shape, DType.i8), a)


def _add_ref(x, y, **a):
    if a["rounding"] == "half_even":
        total = ((x.astype(np.float64) - a["a_zero"]) * a["a_scale"]
                 + (y.astype(np.float64) - a["b_zero"]) * a["b_scale"])
        v = np.clip(np.rint(total / a["out_scale"]) + a["out_zero"], arith.INT32_MIN,
                    arith.INT32_MAX)
        return _finish(v.astype(np.int64), a)
    return _finish(arith.add_s8_value(x, y, add_params(a)), a)


POOL_S8 = {**AVG, **ACT, "rounding": "tflite"}


def _pool_infer(ins: list[Value | None], a: dict) -> list:
    x = ins[0]
    if x.dtype != DType.i8 or a.get("ceil_mode"):
        raise ValueError("int8 pooling takes an int8 input, without ceil_mode")
    *_, out = _geometry(x.shape[2:], a)
    return [(x.shape[:2] + out, DType.i8)]


def _avg_ref(x, **a):
    out = _geometry(x.shape[2:], a)[-1]
    return [arith.avg_pool2d_s8(x, window(a, a["kernel"]), out, a["act_min"], a["act_max"],
                                half_even=a["rounding"] == "half_even")]


def _max_ref(x, **a):
    out = _geometry(x.shape[2:], a)[-1]
    return [arith.max_pool2d_s8(x, window(a, a["kernel"]), out, a["act_min"], a["act_max"])]


QPARAMS = {"scale": None, "zero": 0}


def _quantize_ref(x, *, scale, zero, rounding):
    """TFLite AffineQuantize: round(x / scale) half away from zero, in float32; half_even:
    np.round(x / scale) in double (the MCU backbones' input rule)."""
    if rounding == "half_even":
        q = np.rint(x.astype(np.float64) / float(scale))
    else:  # float32 quotient, then std::round; exact in float64 (no float32 +0.5 rounding)
        q = (x.astype(np.float32) / np.float32(scale)).astype(np.float64)
        q = np.trunc(q + np.copysign(0.5, q))
    q = np.clip(q, -(1 << 30), 1 << 30)  # inf and huge values saturate before the int cast
    return [np.clip(q.astype(np.int64) + zero, -128, 127).astype(np.int8)]


def _dequantize_ref(x, *, scale, zero):
    """TFLite Dequantize: float(double(scale) * (q - zero))."""
    return [(float(scale) * (x.astype(np.float64) - zero)).astype(np.float32)]


def _mask_vjp(g, node):
    """The node's clamp-mask output, added on first use (the forward writes it from then on)."""
    if not node.attrs["mask"]:
        node.attrs["mask"] = True
        mask = g.fresh(f"{node.outputs[0]}.mask")
        g.add_value(Value(mask, (mask_bytes(g.values[node.outputs[0]].shape),), DType.u8))
        node.outputs.append(mask)
    return node.outputs[1]


def _conv_vjp(g, node, gys, needs):
    """Bias and weight gradients are emitted before the input gradient, so that a layer whose
    weights are frozen ends its output gradient's life where its input gradient is born (a
    depthwise one's then overwrites it: tte/ops/inplace_grad.py)."""
    x, w = node.inputs[:2]
    a = node.attrs
    gacc = g.emit("mask_grad", [gys[0], _mask_vjp(g, node)])
    geo = {k: a[k] for k in GEOMETRY}
    w_scales = [float(s) for s in a["w_scales"]]
    gb = g.emit("channel_sum_scaled", [gacc],
                {"scales": [float(a["in_scale"]) * s for s in w_scales]}) \
        if len(needs) > 2 and needs[2] else None
    gw = g.emit("conv2d_s8_grad_weight", [x, gacc],
                {**geo, "weight_shape": list(g.values[w].shape), "in_zero": a["in_zero"],
                 "scales": [float(a["in_scale"]) * s for s in w_scales]}) if needs[1] else None
    gx = None
    if needs[0]:
        attrs = {**geo, "w_scales": w_scales, "input_shape": list(g.values[x].shape)}
        gx = inplace_grad.emit(g, "depthwise_s8_grad_input", gacc, w, attrs) \
            if inplace_grad.applies(g, x, w, node.outputs[0], a["group"]) \
            else g.emit("conv2d_s8_grad_input", [gacc, w], attrs)
    return [gx, gw, gb][:len(node.inputs)]


def _linear_vjp(g, node, gys, needs):
    """As _conv_vjp, for x[N,K] @ w[M,K]^T: bias and weight gradients first, then the input
    gradient. A per-tensor weight scale is spread over the M outputs, so that the backward
    ops and the updates see one scale per output as for a convolution."""
    x, w = node.inputs[:2]
    a = node.attrs
    gacc = g.emit("mask_grad", [gys[0], _mask_vjp(g, node)])
    w_scales = [float(s) for s in output_scales(a, g.values[w].shape[0])]
    scales = [float(a["in_scale"]) * s for s in w_scales]
    gb = g.emit("channel_sum_scaled", [gacc], {"scales": scales}) \
        if len(needs) > 2 and needs[2] else None
    gw = g.emit("linear_s8_grad_weight", [x, gacc],
                {"in_zero": a["in_zero"], "scales": scales}) if needs[1] else None
    gx = g.emit("linear_s8_grad_input", [gacc, w],
                {"w_scales": w_scales, "w_zero": a["w_zero"]}) if needs[0] else None
    return [gx, gw, gb][:len(node.inputs)]


def _add_vjp(g, node, gys, needs):
    gacc = g.emit("mask_grad", [gys[0], _mask_vjp(g, node)])
    return [gacc if needs[0] else None, gacc if needs[1] else None]


def _avg_vjp(g, node, gys, needs):
    a = {k: node.attrs[k] for k in AVG}
    return [g.emit("avg_pool2d_grad", [gys[0]],
                   {**a, "input_shape": list(g.values[node.inputs[0]].shape)})]


register(OpDef("conv2d_s8", _conv_infer, _conv_ref, vjp=_conv_vjp, kernel="tte_conv2d",
               attrs=CONV_S8, macs=conv_macs, doc="int8 convolution (x, w, optional int32 b), NCHW, "
                                  "requantized to int8 with a fused clamp"))
register(OpDef("linear_s8", _linear_infer, _linear_ref, vjp=_linear_vjp, kernel="tte_linear",
               attrs=LINEAR_S8, macs=linear_macs, doc="int8 fully connected (x[N,K], w[M,K], optional int32 b)"))
register(OpDef("add_s8", _add_infer, _add_ref, vjp=_add_vjp, kernel="tte_add", attrs=ADD_S8,
               doc="int8 addition of two tensors of one shape, requantized"))
register(OpDef("avg_pool2d_s8", _pool_infer, _avg_ref, vjp=_avg_vjp, kernel="tte_avg_pool2d",
               attrs=POOL_S8, doc="int8 average pooling (input and output share scale)"))
register(OpDef("max_pool2d_s8", _pool_infer, _max_ref, kernel="tte_max_pool2d",
               attrs={**MAX, **ACT}, doc="int8 max pooling"))
register(OpDef("quantize", lambda ins, a: [(ins[0].shape, DType.i8)], _quantize_ref,
               vjp=lambda g, node, gys, needs: [gys[0]], kernel="tte_quantize",
               attrs={**QPARAMS, "rounding": "tflite"}, doc="float32 -> int8 (TFLite QUANTIZE); gradient straight "
                                  "through"))
register(OpDef("dequantize", lambda ins, a: [(ins[0].shape, DType.f32)], _dequantize_ref,
               vjp=lambda g, node, gys, needs: [gys[0]], kernel="tte_dequantize",
               attrs=QPARAMS, doc="int8 -> float32 (TFLite DEQUANTIZE)"))


# --- backward ---------------------------------------------------------------------------------

def _mask_grad_ref(gy, mask):
    return [np.where(arith.unpack_mask(mask, gy.shape), gy, 0).astype(gy.dtype)]


def _grad_input_ref(gy, w, *, input_shape, w_scales, **geo):
    """d loss / d x_real = conv_transpose(gy * s_w[o], w_q), summed in the C kernel's order."""
    scaled = gy * np.asarray(w_scales, gy.dtype).reshape(1, -1, 1, 1)
    return [ordered.conv_transpose(scaled, w.astype(gy.dtype), geo, input_shape[2:])]


def _grad_weight_ref(x, gy, *, weight_shape, in_zero, scales, train_axis=0,
                     train_channels=None, **geo):
    """d loss / d w_q[o] = s_x * s_w[o] * sum gy * (x_q - x_zero), summed in the C kernel's
    order; with train_channels only for those (trained layout), from x sliced to them."""
    from tte.ops.conv import trained_problem
    gy, shape, geo = trained_problem(gy, weight_shape, geo, train_axis, train_channels)
    xs = (x.astype(np.int32) - in_zero).astype(gy.dtype)
    gw = ordered.conv_weight_grad(xs, gy, shape, geo)
    scales = np.asarray(scales, gy.dtype)
    if train_channels is not None and train_axis == 0:
        scales = scales[list(train_channels)]
    return [gw * scales.reshape(-1, 1, 1, 1)]


def _channel_sum_scaled_ref(gy, *, scales):
    """d loss / d b_q[o] = s_x * s_w[o] * sum over n, h, w of gy (in the C kernel's order)."""
    return [ordered.channel_sum(gy) * np.asarray(scales, gy.dtype)]


register(OpDef("mask_grad", lambda ins, a: [(ins[0].shape, ins[0].dtype)], _mask_grad_ref,
               kernel="tte_mask_grad", inplace=0,
               doc="gy where the clamp mask bit is set, else 0 (gy, mask)"))
register(OpDef("conv2d_s8_grad_input", lambda ins, a: [(tuple(a["input_shape"]), ins[0].dtype)],
               _grad_input_ref, kernel="tte_conv2d_s8_grad_input",
               attrs={**GEOMETRY, "input_shape": None, "w_scales": None}, macs=grad_input_macs,
               doc="real-unit gradient of conv2d_s8's input (gy, w_q)"))
GRAD_WEIGHT = {**GEOMETRY, "weight_shape": None, "in_zero": 0, "scales": None,
               **TRAIN_CHANNELS}
register(OpDef("conv2d_s8_grad_weight",
               lambda ins, a: [(trained_shape(a["weight_shape"], a["train_axis"],
                                              a["train_channels"]), ins[1].dtype)],
               _grad_weight_ref,
               kernel="tte_conv2d_s8_grad_weight", attrs=GRAD_WEIGHT, macs=grad_weight_macs,
               doc="gradient of conv2d_s8 w.r.t. its integer weights (x_q, gy)"))


def _linear_grad_input_ref(gy, w, *, w_scales, w_zero):
    """d loss / d x_real[n, k] = sum over m, in order, of (gy[n, m] * s_w[m]) * (w_q[m, k] -
    w_zero) (train_s8.c)."""
    scaled = gy * np.asarray(w_scales, gy.dtype)
    return [ordered.matmul(scaled, (w.astype(np.int32) - w_zero).astype(gy.dtype))]


def _linear_grad_input_infer(ins: list[Value | None], a: dict) -> list:
    gy, w = ins
    if len(gy.shape) != 2 or gy.shape[1] != w.shape[0] or len(a["w_scales"]) != w.shape[0]:
        raise ValueError(f"linear_s8_grad_input: gy {gy.shape}, weight {w.shape}, "
                         f"{len(a['w_scales'])} weight scales")
    return [((gy.shape[0], w.shape[1]), gy.dtype)]


def _linear_grad_weight_ref(x, gy, *, in_zero, scales):
    """d loss / d w_q[m, k] = s_x * s_w[m] * sum over n, in order, of gy[n, m] * (x_q[n, k] -
    x_zero) (train_s8.c)."""
    xs = (x.astype(np.int32) - in_zero).astype(gy.dtype)
    return [ordered.matmul(gy.T, xs) * np.asarray(scales, gy.dtype)[:, None]]


def _linear_grad_weight_infer(ins: list[Value | None], a: dict) -> list:
    x, gy = ins
    if len(x.shape) != 2 or len(gy.shape) != 2 or x.shape[0] != gy.shape[0] or \
            len(a["scales"]) != gy.shape[1]:
        raise ValueError(f"linear_s8_grad_weight: x {x.shape}, gy {gy.shape}, "
                         f"{len(a['scales'])} scales")
    return [((gy.shape[1], x.shape[1]), gy.dtype)]


register(OpDef("linear_s8_grad_input", _linear_grad_input_infer, _linear_grad_input_ref,
               kernel="tte_linear_s8_grad_input", attrs={"w_scales": None, "w_zero": 0},
               macs=linear_grad_macs, doc="real-unit gradient of linear_s8's input (gy, w_q); one weight scale per "
                   "output"))
LINEAR_GRAD_WEIGHT = {"in_zero": 0, "scales": None}
register(OpDef("linear_s8_grad_weight", _linear_grad_weight_infer, _linear_grad_weight_ref,
               kernel="tte_linear_s8_grad_weight", attrs=LINEAR_GRAD_WEIGHT,
               macs=linear_grad_macs, doc="gradient of linear_s8 w.r.t. its integer weights (x_q, gy)"))
register(OpDef("channel_sum_scaled", lambda ins, a: [((ins[0].shape[1],), ins[0].dtype)],
               _channel_sum_scaled_ref, kernel="tte_channel_sum_scaled", attrs={"scales": None},
               doc="per-channel sum times scales[c]: gradient of an int32 bias (gy)"))


# --- update -----------------------------------------------------------------------------------

QSGD = {"lr": None, "factors": None, "lo": -127, "hi": 127, **TRAIN_CHANNELS}


def _qsgd_infer(ins: list[Value | None], a: dict) -> list:
    p, gr, master = (ins + [None])[:3]
    if gr.shape != trained_shape(p.shape, a["train_axis"], a["train_channels"]) or \
            p.dtype not in (DType.i8, DType.i32):
        raise ValueError(f"sgd_update_q: an int8/int32 parameter {p.shape} and its gradient")
    if master is not None and (master.shape != p.shape or master.dtype != DType.f32):
        raise ValueError("sgd_update_q: the master copy is float32 of the parameter's shape")
    if len(a["factors"]) != p.shape[0]:
        raise ValueError("sgd_update_q: one gradient factor per output channel")
    return []


def _qsgd_ref(p, gr, master=None, *, lr, factors, lo, hi, train_axis=0,
              train_channels=None):
    """step = lr * (g * factor[c]) in float32 (factor: the QAS scale, or 1). Without a master
    copy: p = clamp(p - rint(step)); with one: master -= step, p = clamp(rint(master)).
    With train_channels, gr is their gradient and only they change."""
    f = np.asarray(factors, np.float32)
    if train_channels is not None and train_axis == 0:
        f = f[list(train_channels)]
    f = f.reshape((-1,) + (1,) * (p.ndim - 1))
    step = np.float32(lr) * (gr.astype(np.float32) * f)

    def apply(p, master):
        if master is None:
            new = p.astype(np.float64) - np.rint(step).astype(np.float64)
            return [np.clip(new, lo, hi).astype(p.dtype)]
        master = (master - step).astype(np.float32)
        return [np.clip(np.rint(master).astype(np.float64), lo, hi).astype(p.dtype), master]
    return on_trained(apply, [p, master], train_axis, train_channels)


register(OpDef("sgd_update_q", _qsgd_infer, _qsgd_ref, kernel="tte_sgd_update_q", attrs=QSGD,
               mutates=(0, 2), doc="in-place SGD of an int8 weight or int32 bias, gradient "
                                   "scaled per output channel (QAS), optional fp32 master copy"))


def _grad_weight_sgd(grad_ref, grad_attrs: dict):
    """Reference of a weight gradient fused with sgd_update_q: the same numbers, in order."""
    def ref(x, gy, p, master=None, **attrs):
        g = grad_ref(x, gy, **{k: attrs[k] for k in grad_attrs})[0]
        return _qsgd_ref(p, g, master, **{k: attrs[k] for k in QSGD})
    return ref


register(OpDef("conv2d_s8_grad_weight_sgd_q", lambda ins, a: [],
               _grad_weight_sgd(_grad_weight_ref, GRAD_WEIGHT),
               kernel="tte_conv2d_s8_grad_weight_sgd",
               attrs={**GRAD_WEIGHT, **QSGD}, macs=grad_weight_macs,
               mutates=(2, 3), doc="conv2d_s8 weight gradient (x, gy) applied by sgd_update_q "
                                   "to (w, master) as it is computed: no gradient buffer"))


def _linear_grad_weight_sgd_infer(ins: list[Value | None], a: dict) -> list:
    if a["train_channels"] is not None:
        raise ValueError("linear_s8_grad_weight_sgd_q trains every weight channel")
    return []


register(OpDef("linear_s8_grad_weight_sgd_q", _linear_grad_weight_sgd_infer,
               _grad_weight_sgd(_linear_grad_weight_ref, LINEAR_GRAD_WEIGHT),
               kernel="tte_linear_s8_grad_weight_sgd", attrs={**LINEAR_GRAD_WEIGHT, **QSGD},
               macs=linear_grad_macs, mutates=(2, 3), doc="linear_s8 weight gradient (x, gy) applied by sgd_update_q "
                                   "to (w, master) as it is computed: no gradient buffer"))
