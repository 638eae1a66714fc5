"""C emitters of the int8 ops (tte/ops/quantized.py): forward, backward and update."""
from __future__ import annotations

import numpy as np

from codegen.cexpr import dims4, flt, window
from codegen.ops import Ctx, _conv_window, _in, emits, train_split
from tte.errors import UnsupportedError
from tte.ir.graph import Node
from tte.ir.types import DType
from tte.ops.quantized import add_params, conv_multipliers, effective_scales
from tte.ops.quantized_tflite import mean_params
from tte.quant.softmax import softmax_params


def _params(a: dict) -> str:
    """tte_s8_params: input offset, output zero point, clamp."""
    return (f"(tte_s8_params){{{-int(a['in_zero'])}, {int(a['out_zero'])}, "
            f"{int(a['act_min'])}, {int(a['act_max'])}}}")


def _requant(n: Node, c: Ctx, channels: int) -> str:
    a = n.attrs
    scales = np.broadcast_to(np.asarray(a["w_scales"], np.float64), (channels,))
    per_channel = int(len(a["w_scales"]) > 1)
    scales = scales[:channels if per_channel else 1]
    if a["rounding"] == "half_even":
        eff = effective_scales({**a, "w_scales": scales})
        return (f"(tte_requant){{NULL, NULL, {c.const(eff, 'float64')}, {per_channel}, "
                f"{_scale_f(eff, c)}}}")
    mult, shift = conv_multipliers(a["in_scale"], scales, a["out_scale"])
    return (f"(tte_requant){{{c.const(mult, 'int32')}, {c.const(shift, 'int32')}, NULL, "
            f"{per_channel}, NULL}}")


def _scale_f(eff: np.ndarray, c: Ctx) -> str:
    """tte_requant.scale_f: each half-even scale rounded to the nearest float, which lets the
    kernels decide most roundings in single precision (kernels_c/conv_s8.c proves them equal
    to the double rule). Its proof asks every scale to be 0 or of magnitude in
    [2^-100, 2^100] (a normal float); NULL (double only) otherwise."""
    mag = np.abs(eff)
    if not np.all((mag == 0) | ((mag >= 2.0 ** -100) & (mag <= 2.0 ** 100))):
        return "NULL"
    return c.const(eff.astype(np.float32), "float32")


def _mask(n: Node, c: Ctx) -> str:
    return c.p(n.outputs[1]) if len(n.outputs) > 1 else "NULL"


@emits("conv2d_s8")
def _conv(n, c):
    x, w, b = n.inputs[0], n.inputs[1], _in(n, 2)
    y = n.outputs[0]
    return [f"tte_conv2d_s8({c.p(x)}, {dims4(c.shape(x))}, {c.p(w)}, {c.p(b)}, {c.p(y)}, "
            f"{dims4(c.shape(y))}, {_conv_window(n, c.shape(w))}, "
            f"{_requant(n, c, c.shape(w)[0])}, {_params(n.attrs)}, {_mask(n, c)}, "
            f"{c.split(w)});"]


@emits("linear_s8")
def _linear(n, c):
    x, w, b = n.inputs[0], n.inputs[1], _in(n, 2)
    (rows, k), m = c.shape(x), c.shape(w)[0]
    return [f"tte_linear_s8({c.p(x)}, {rows}, {k}, {c.p(w)}, {c.p(b)}, {c.p(n.outputs[0])}, "
            f"{m}, {_requant(n, c, m)}, {-int(n.attrs['w_zero'])}, {_params(n.attrs)}, "
            f"{_mask(n, c)});"]


@emits("add_s8")
def _add(n, c):
    a, b = n.inputs
    y, at = n.outputs[0], n.attrs
    head = f"{c.p(a)}, {c.p(b)}, {c.p(y)}, {c.n(y)}"
    if at["rounding"] == "half_even":
        prm = (f"(tte_add_s8_double_params){{{at['a_scale']!r}, {at['b_scale']!r}, "
               f"{at['out_scale']!r}, {int(at['a_zero'])}, {int(at['b_zero'])}, "
               f"{int(at['out_zero'])}, {int(at['act_min'])}, {int(at['act_max'])}}}")
        return [f"tte_add_s8_double({head}, {prm}, {_mask(n, c)});"]
    p = add_params(at)
    fields = ("input1_offset", "input2_offset", "output_offset", "left_shift",
              "input1_multiplier", "input1_shift", "input2_multiplier", "input2_shift",
              "output_multiplier", "output_shift", "act_min", "act_max")
    prm = "(tte_add_s8_params){" + ", ".join(str(int(p[f])) for f in fields) + "}"
    return [f"tte_add_s8({head}, {prm}, {_mask(n, c)});"]


@emits("avg_pool2d_s8", "max_pool2d_s8")
def _pool(n, c):
    x, y, a = n.inputs[0], n.outputs[0], n.attrs
    tail = f", {int(a['rounding'] == 'half_even')}" if n.op == "avg_pool2d_s8" else ""
    return [f"tte_{n.op}({c.p(x)}, {dims4(c.shape(x))}, {c.p(y)}, {dims4(c.shape(y))}, "
            f"{window(a)}, {int(a['act_min'])}, {int(a['act_max'])}{tail});"]


@emits("quantize")
def _quantize(n, c):
    x, y, a = n.inputs[0], n.outputs[0], n.attrs
    if a["rounding"] == "half_even":
        return [f"tte_quantize_half_even_s8({c.p(x)}, {c.p(y)}, {c.n(y)}, {float(a['scale'])!r}, "
                f"{int(a['zero'])});"]
    return [f"tte_quantize_s8({c.p(x)}, {c.p(y)}, {c.n(y)}, {flt(a['scale'])}, "
            f"{int(a['zero'])});"]


@emits("dequantize")
def _dequantize(n, c):
    x, y, a = n.inputs[0], n.outputs[0], n.attrs
    return [f"tte_dequantize_s8({c.p(x)}, {c.p(y)}, {c.n(y)}, {float(a['scale'])!r}, "
            f"{int(a['zero'])});"]


# --- backward and update ------------------------------------------------------------------

@emits("mask_grad")
def _mask_grad(n, c):
    gy, mask = n.inputs
    return [f"tte_mask_grad_f32({c.p(gy)}, {c.p(mask)}, {c.p(n.outputs[0])}, {c.n(gy)});"]


@emits("conv2d_s8_grad_input")
def _grad_input(n, c):
    gy, w = n.inputs
    gx = n.outputs[0]
    return [f"tte_conv2d_s8_grad_input({c.p(gy)}, {dims4(c.shape(gy))}, {c.p(w)}, "
            f"{c.const(n.attrs['w_scales'], 'float32')}, {c.p(gx)}, {dims4(c.shape(gx))}, "
            f"{_conv_window(n, c.shape(w))}, {c.split(w)});"]


@emits("depthwise_s8_grad_input")
def _dw_grad_input(n, c):
    gy, w = n.inputs
    gx, scratch = n.outputs
    return [f"tte_depthwise_s8_grad_input({c.p(gy)}, {dims4(c.shape(gy))}, {c.p(w)}, "
            f"{c.const(n.attrs['w_scales'], 'float32')}, {c.p(gx)}, {c.p(scratch)}, "
            f"{_conv_window(n, c.shape(w))}, {c.split(w)});"]


@emits("conv2d_s8_grad_weight")
def _grad_weight(n, c):
    x, gy = n.inputs
    gw = n.outputs[0]
    return [f"tte_conv2d_s8_grad_weight({c.p(x)}, {dims4(c.shape(x))}, "
            f"{int(n.attrs['in_zero'])}, {c.p(gy)}, {dims4(c.shape(gy))}, {c.p(gw)}, "
            f"{_conv_window(n, n.attrs['weight_shape'])}, "
            f"{c.const(n.attrs['scales'], 'float32')}, {train_split(n, c)});"]


@emits("linear_s8_grad_input")
def _linear_grad_input(n, c):
    gy, w = n.inputs
    (rows, m), k = c.shape(gy), c.shape(w)[1]
    return [f"tte_linear_s8_grad_input({c.p(gy)}, {rows}, {m}, {c.p(w)}, "
            f"{int(n.attrs['w_zero'])}, {c.const(n.attrs['w_scales'], 'float32')}, "
            f"{c.p(n.outputs[0])}, {k});"]


def _linear_grad_weight_args(n: Node, c: Ctx) -> str:
    """x, its shape and zero point, gy and its width: the arguments the linear weight
    gradient kernels begin with."""
    x, gy = n.inputs[:2]
    (rows, k), m = c.shape(x), c.shape(gy)[1]
    return f"{c.p(x)}, {rows}, {k}, {int(n.attrs['in_zero'])}, {c.p(gy)}, {m}"


@emits("linear_s8_grad_weight")
def _linear_grad_weight(n, c):
    return [f"tte_linear_s8_grad_weight({_linear_grad_weight_args(n, c)}, "
            f"{c.p(n.outputs[0])}, {c.const(n.attrs['scales'], 'float32')});"]


@emits("linear_s8_grad_weight_sgd_q")
def _linear_grad_weight_sgd(n, c):
    w, master, a = n.inputs[2], _in(n, 3), n.attrs
    return [f"tte_linear_s8_grad_weight_sgd({_linear_grad_weight_args(n, c)}, {c.p(w)}, "
            f"{c.p(master)}, {c.const(a['scales'], 'float32')}, {flt(a['lr'])}, "
            f"{c.const(a['factors'], 'float32')}, {int(a['lo'])}, {int(a['hi'])});"]


@emits("channel_sum_scaled")
def _channel_sum_scaled(n, c):
    gy = n.inputs[0]
    return [f"tte_channel_sum_scaled_f32({c.p(gy)}, {dims4(c.shape(gy))}, "
            f"{c.const(n.attrs['scales'], 'float32')}, {c.p(n.outputs[0])});"]


@emits("sgd_update_q")
def _sgd_update_q(n, c):
    p, g, master = n.inputs[0], n.inputs[1], _in(n, 2)
    a = n.attrs
    factors = np.asarray(a["factors"])
    if a["train_channels"] is not None and a["train_axis"] == 0:
        factors = factors[a["train_channels"]]
    factors = c.const(factors, "float32")
    if c.dtype(p) == DType.i32:
        if master:
            raise UnsupportedError(f"no fp32 master copy for the int32 tensor {p}")
        return [f"tte_sgd_update_s32({c.p(p)}, {c.p(g)}, {c.n(p)}, {flt(a['lr'])}, {factors}, "
                f"{int(a['lo'])}, {int(a['hi'])});"]
    # a partial weight's gradient, storage and master copy all hold its trained part
    rows = c.shape(g)[0]
    return [f"tte_sgd_update_s8({c.p(p)}, {c.p(g)}, {c.p(master)}, {rows}, "
            f"{c.n(g) // rows}, {flt(a['lr'])}, {factors}, {int(a['lo'])}, "
            f"{int(a['hi'])});"]


@emits("conv2d_s8_grad_weight_sgd_q")
def _grad_weight_sgd(n, c):
    x, gy, w, master = n.inputs[0], n.inputs[1], n.inputs[2], _in(n, 3)
    a = n.attrs
    return [f"tte_conv2d_s8_grad_weight_sgd({c.p(x)}, {dims4(c.shape(x))}, {int(a['in_zero'])}, "
            f"{c.p(gy)}, {dims4(c.shape(gy))}, {c.p(w)}, {c.p(master)}, "
            f"{_conv_window(n, c.shape(w))}, {c.const(a['scales'], 'float32')}, "
            f"{train_split(n, c)}, {flt(a['lr'])}, "
            f"{c.const(a['factors'], 'float32')}, {int(a['lo'])}, {int(a['hi'])});"]


@emits("softmax_s8")
def _softmax(n, c):
    x, y = n.inputs[0], n.outputs[0]
    p = softmax_params(n.attrs["in_scale"], n.attrs["beta"])
    depth = c.shape(x)[-1]
    return [f"tte_softmax_s8({c.p(x)}, {c.p(y)}, {c.n(x) // depth}, {depth}, "
            f"(tte_softmax_s8_params){{{p['input_multiplier']}, {p['input_left_shift']}, "
            f"{p['diff_min']}}});"]


@emits("mean_s8")
def _mean(n, c):
    x, y, a = n.inputs[0], n.outputs[0], n.attrs
    h, w = c.shape(x)[2:]
    mult, shift = mean_params(a, h * w)
    return [f"tte_mean_s8({c.p(x)}, {dims4(c.shape(x))}, {c.p(y)}, {mult}, {shift}, "
            f"{int(a['in_zero'])}, {int(a['out_zero'])});"]
