"""One C emitter per IR op: turns a node into kernel calls with every constant resolved."""
from __future__ import annotations

import itertools
from typing import Callable, Protocol

import numpy as np

from codegen.cexpr import dims4, flt, ints, split3, window
from tte.errors import UnsupportedError
from tte.ir.graph import Node
from tte.ir.types import DType
from tte.ops.slice_channels import positions


class Ctx(Protocol):
    def p(self, name: str) -> str: ...            # pointer expression ("NULL" for "")
    def shape(self, name: str) -> tuple[int, ...]: ...
    def n(self, name: str) -> int: ...
    def same_buffer(self, a: str, b: str) -> bool: ...
    def const(self, values, dtype: str) -> str: ...  # a file-scope static const array
    def dtype(self, name: str) -> DType: ...
    def split(self, name: str) -> str: ...        # tte_split of a weight's storage


Emitter = Callable[[Node, Ctx], list[str]]
EMITTERS: dict[str, Emitter] = {}


def emits(*ops: str):
    def deco(fn: Emitter) -> Emitter:
        for op in ops:
            EMITTERS[op] = fn
        return fn
    return deco


def _in(n: Node, k: int) -> str:
    return n.inputs[k] if k < len(n.inputs) else ""


def _sgd(n: Node) -> str:
    a = n.attrs
    return f"{flt(a['lr'])}, {flt(a['momentum'])}, {flt(a['weight_decay'])}"


def _conv_window(n: Node, w_shape) -> str:
    return window({**n.attrs, "weight_hw": list(w_shape[2:])})


def train_split(n: Node, c: Ctx) -> str:
    """tte_split of a weight-gradient node's trained channels (no frozen part: it is not
    read), TTE_SPLIT_NONE when the whole weight trains."""
    channels = n.attrs["train_channels"]
    if channels is None:
        return "TTE_SPLIT_NONE"
    axis = n.attrs["train_axis"]
    return f"(tte_split){{NULL, {positions_table(c, channels, n.attrs['weight_shape'][axis])}, " \
           f"{int(axis)}, {len(channels)}}}"


def positions_table(c: Ctx, channels, total: int) -> str:
    """The const position table of a channel choice, NULL for the first channels."""
    if list(channels) == list(range(len(channels))):
        return "NULL"
    return c.const(positions(channels, total), "int32")


# --- convolution and fully connected --------------------------------------------------------

@emits("conv2d")
def _conv(n, c):
    x, w, b = n.inputs[0], n.inputs[1], _in(n, 2)
    y = n.outputs[0]
    return [f"tte_conv2d_f32({c.p(x)}, {dims4(c.shape(x))}, {c.p(w)}, {c.p(b)}, {c.p(y)}, "
            f"{dims4(c.shape(y))}, {_conv_window(n, c.shape(w))}, {c.split(w)});"]


@emits("conv2d_grad_input")
def _conv_gx(n, c):
    gy, w = n.inputs
    gx = n.outputs[0]
    return [f"tte_conv2d_grad_input_f32({c.p(gy)}, {dims4(c.shape(gy))}, {c.p(w)}, {c.p(gx)}, "
            f"{dims4(c.shape(gx))}, {_conv_window(n, c.shape(w))}, {c.split(w)});"]


@emits("depthwise_grad_input")
def _dw_gx(n, c):
    gy, w = n.inputs
    gx, scratch = n.outputs
    return [f"tte_depthwise_grad_input_f32({c.p(gy)}, {dims4(c.shape(gy))}, {c.p(w)}, "
            f"{c.p(gx)}, {c.p(scratch)}, {_conv_window(n, c.shape(w))}, {c.split(w)});"]


@emits("conv2d_grad_weight")
def _conv_gw(n, c):
    x, gy = n.inputs
    gw = n.outputs[0]
    return [f"tte_conv2d_grad_weight_f32({c.p(x)}, {dims4(c.shape(x))}, {c.p(gy)}, "
            f"{dims4(c.shape(gy))}, {c.p(gw)}, {_conv_window(n, n.attrs['weight_shape'])}, "
            f"{train_split(n, c)});"]


@emits("conv2d_grad_weight_sgd")
def _conv_gw_sgd(n, c):
    x, gy, w, buf = n.inputs[0], n.inputs[1], n.inputs[2], _in(n, 3)
    return [f"tte_conv2d_grad_weight_sgd_f32({c.p(x)}, {dims4(c.shape(x))}, {c.p(gy)}, "
            f"{dims4(c.shape(gy))}, {c.p(w)}, {c.p(buf)}, {_conv_window(n, c.shape(w))}, "
            f"{train_split(n, c)}, {_sgd(n)});"]


@emits("channel_sum")
def _channel_sum(n, c):
    gy = n.inputs[0]
    return [f"tte_channel_sum_f32({c.p(gy)}, {dims4(c.shape(gy))}, {c.p(n.outputs[0])});"]


@emits("channel_sum_sgd")
def _channel_sum_sgd(n, c):
    gy, b, buf = n.inputs[0], n.inputs[1], _in(n, 2)
    return [f"tte_channel_sum_sgd_f32({c.p(gy)}, {dims4(c.shape(gy))}, {c.p(b)}, {c.p(buf)}, "
            f"{_sgd(n)});"]


@emits("linear")
def _linear(n, c):
    x, w, b = n.inputs[0], n.inputs[1], _in(n, 2)
    (rows, k), m = c.shape(x), c.shape(w)[0]
    return [f"tte_linear_f32({c.p(x)}, {rows}, {k}, {c.p(w)}, {c.p(b)}, {c.p(n.outputs[0])}, "
            f"{m});"]


@emits("linear_grad_input")
def _linear_gx(n, c):
    gy, w = n.inputs
    (rows, m), k = c.shape(gy), c.shape(w)[1]
    return [f"tte_linear_grad_input_f32({c.p(gy)}, {rows}, {m}, {c.p(w)}, {c.p(n.outputs[0])}, "
            f"{k});"]


@emits("linear_grad_weight")
def _linear_gw(n, c):
    x, gy = n.inputs
    (rows, k), m = c.shape(x), c.shape(gy)[1]
    return [f"tte_linear_grad_weight_f32({c.p(x)}, {rows}, {k}, {c.p(gy)}, {m}, "
            f"{c.p(n.outputs[0])});"]


@emits("linear_grad_weight_sgd")
def _linear_gw_sgd(n, c):
    x, gy, w, buf = n.inputs[0], n.inputs[1], n.inputs[2], _in(n, 3)
    (rows, k), m = c.shape(x), c.shape(gy)[1]
    return [f"tte_linear_grad_weight_sgd_f32({c.p(x)}, {rows}, {k}, {c.p(gy)}, {m}, {c.p(w)}, "
            f"{c.p(buf)}, {_sgd(n)});"]


@emits("matmul")
def _matmul(n, c):
    """Batched products are unrolled at build time into one 2-D call per batch index."""
    a, b = n.inputs
    y = n.outputs[0]
    sa, sb, sy = c.shape(a), c.shape(b), c.shape(y)
    if len(sa) < 2 or len(sb) < 2:
        raise UnsupportedError("the C backend needs matmul operands of rank 2 or more")
    m, k, nn = sa[-2], sa[-1], sb[-1]
    batch = sy[:-2]
    lines = []
    for idx in itertools.product(*[range(d) for d in batch]):
        def off(shape, size):
            bshape = shape[:-2]
            lead = len(batch) - len(bshape)
            flat = np.ravel_multi_index([i if d > 1 else 0 for i, d in zip(idx[lead:], bshape)],
                                        bshape) if bshape else 0
            return int(flat) * size
        yo = int(np.ravel_multi_index(idx, batch)) * m * nn if batch else 0
        lines.append(f"tte_matmul_f32({c.p(a)} + {off(sa, m * k)}, {c.p(b)} + {off(sb, k * nn)}, "
                     f"{c.p(y)} + {yo}, {m}, {k}, {nn});")
    return lines


# --- elementwise ----------------------------------------------------------------------------

_BINARY = {"add": "TTE_OP_ADD", "sub": "TTE_OP_SUB", "mul": "TTE_OP_MUL", "div": "TTE_OP_DIV"}


def _bcast_strides(shape, out_shape) -> list[int]:
    """Element strides of an operand for each output axis, 0 where it broadcasts."""
    shape = (1,) * (len(out_shape) - len(shape)) + tuple(shape)
    strides = np.cumprod((1,) + shape[::-1])[:-1][::-1] if shape else []
    return [0 if d == 1 and o != 1 else int(s) for d, o, s in zip(shape, out_shape, strides)]


@emits(*_BINARY)
def _binary(n, c):
    a, b = n.inputs
    y = n.outputs[0]
    sa, sb, sy = c.shape(a), c.shape(b), c.shape(y)
    if sa == sb == sy:
        return [f"tte_{n.op}_f32({c.p(a)}, {c.p(b)}, {c.p(y)}, {c.n(y)});"]
    return [f"tte_binary_bcast_f32({_BINARY[n.op]}, {c.p(a)}, {ints(_bcast_strides(sa, sy))}, "
            f"{c.p(b)}, {ints(_bcast_strides(sb, sy))}, {c.p(y)}, {ints(sy)}, {max(len(sy), 1)});"]


@emits("sum_to")
def _sum_to(n, c):
    x, y = n.inputs[0], n.outputs[0]
    sx = c.shape(x)
    return [f"tte_sum_to_f32({c.p(x)}, {ints(sx)}, {c.p(y)}, "
            f"{ints(_bcast_strides(c.shape(y), sx))}, {max(len(sx), 1)});"]


@emits("neg", "relu", "sigmoid", "tanh", "hard_swish")
def _unary(n, c):
    x, y = n.inputs[0], n.outputs[0]
    return [f"tte_{n.op}_f32({c.p(x)}, {c.p(y)}, {c.n(y)});"]


@emits("clip")
def _clip(n, c):
    x, y = n.inputs[0], n.outputs[0]
    return [f"tte_clip_f32({c.p(x)}, {c.p(y)}, {c.n(y)}, {flt(n.attrs['min'])}, "
            f"{flt(n.attrs['max'])});"]


@emits("hard_sigmoid")
def _hard_sigmoid(n, c):
    x, y = n.inputs[0], n.outputs[0]
    return [f"tte_hard_sigmoid_f32({c.p(x)}, {c.p(y)}, {c.n(y)}, {flt(n.attrs['alpha'])}, "
            f"{flt(n.attrs['beta'])});"]


@emits("relu_grad", "sigmoid_grad", "tanh_grad", "hard_swish_grad", "clip_grad",
       "hard_sigmoid_grad")
def _act_grad(n, c):
    s, gy = n.inputs
    gx = n.outputs[0]
    extra = {"clip_grad": ("min", "max"), "hard_sigmoid_grad": ("alpha", "beta")}.get(n.op, ())
    tail = "".join(f", {flt(n.attrs[k])}" for k in extra)
    return [f"tte_{n.op}_f32({c.p(s)}, {c.p(gy)}, {c.p(gx)}, {c.n(gx)}{tail});"]


@emits("batch_norm")
def _bn(n, c):
    x, scale, bias, mean, var = n.inputs
    return [f"tte_batch_norm_f32({c.p(x)}, {dims4(c.shape(x))}, {c.p(scale)}, {c.p(bias)}, "
            f"{c.p(mean)}, {c.p(var)}, {flt(n.attrs['epsilon'])}, {c.p(n.outputs[0])});"]


@emits("batch_norm_grad_input")
def _bn_gx(n, c):
    gy, scale, var = n.inputs
    return [f"tte_batch_norm_grad_input_f32({c.p(gy)}, {dims4(c.shape(gy))}, {c.p(scale)}, "
            f"{c.p(var)}, {flt(n.attrs['epsilon'])}, {c.p(n.outputs[0])});"]


@emits("batch_norm_grad_scale")
def _bn_gscale(n, c):
    x, gy, mean, var = n.inputs
    return [f"tte_batch_norm_grad_scale_f32({c.p(x)}, {c.p(gy)}, {dims4(c.shape(x))}, "
            f"{c.p(mean)}, {c.p(var)}, {flt(n.attrs['epsilon'])}, {c.p(n.outputs[0])});"]


# --- pooling --------------------------------------------------------------------------------

@emits("avg_pool2d", "max_pool2d")
def _pool(n, c):
    x, y = n.inputs[0], n.outputs[0]
    cip = f", {int(n.attrs['count_include_pad'])}" if n.op == "avg_pool2d" else ""
    return [f"tte_{n.op}_f32({c.p(x)}, {dims4(c.shape(x))}, {c.p(y)}, {dims4(c.shape(y))}, "
            f"{window(n.attrs)}{cip});"]


@emits("avg_pool2d_grad")
def _avg_grad(n, c):
    gy, gx = n.inputs[0], n.outputs[0]
    return [f"tte_avg_pool2d_grad_f32({c.p(gy)}, {dims4(c.shape(gy))}, {c.p(gx)}, "
            f"{dims4(c.shape(gx))}, {window(n.attrs)}, {int(n.attrs['count_include_pad'])});"]


@emits("max_pool2d_grad")
def _max_grad(n, c):
    x, gy = n.inputs
    return [f"tte_max_pool2d_grad_f32({c.p(x)}, {dims4(c.shape(x))}, {c.p(gy)}, "
            f"{dims4(c.shape(gy))}, {c.p(n.outputs[0])}, {window(n.attrs)});"]


@emits("global_avg_pool")
def _gap(n, c):
    x = n.inputs[0]
    return [f"tte_global_avg_pool_f32({c.p(x)}, {dims4(c.shape(x))}, {c.p(n.outputs[0])});"]


# --- reductions, softmax, losses ------------------------------------------------------------

def _axis_run(n: Node, shape) -> tuple[int, int, int]:
    axes = sorted(n.attrs["axes"])
    if axes != list(range(axes[0], axes[-1] + 1)):
        raise UnsupportedError(f"the C backend reduces adjacent axes only; {n.op} over {axes}")
    return split3(shape, axes[0], axes[-1])


@emits("reduce_sum", "reduce_mean")
def _reduce(n, c):
    x = n.inputs[0]
    o, a, i = _axis_run(n, c.shape(x))
    return [f"tte_{n.op}_f32({c.p(x)}, {c.p(n.outputs[0])}, {o}, {a}, {i});"]


@emits("unreduce")
def _unreduce(n, c):
    o, a, i = _axis_run(n, n.attrs["shape"])
    return [f"tte_unreduce_f32({c.p(n.inputs[0])}, {c.p(n.outputs[0])}, {o}, {a}, {i}, "
            f"{flt(n.attrs['scale'])});"]


def _softmax_split(n: Node, shape) -> tuple[int, int, int]:
    ax = n.attrs["axis"] % len(shape)
    return split3(shape, ax, ax)


@emits("softmax", "log_softmax")
def _softmax(n, c):
    x = n.inputs[0]
    o, a, i = _softmax_split(n, c.shape(x))
    return [f"tte_{n.op}_f32({c.p(x)}, {c.p(n.outputs[0])}, {o}, {a}, {i});"]


@emits("softmax_grad", "log_softmax_grad")
def _softmax_grad(n, c):
    y, gy = n.inputs
    o, a, i = _softmax_split(n, c.shape(y))
    return [f"tte_{n.op}_f32({c.p(y)}, {c.p(gy)}, {c.p(n.outputs[0])}, {o}, {a}, {i});"]


@emits("softmax_cross_entropy", "softmax_cross_entropy_grad")
def _xent(n, c):
    logits, label = n.inputs
    rows, classes = c.shape(logits)
    return [f"rc = tte_{n.op}_f32({c.p(logits)}, {c.p(label)}, {rows}, {classes}, "
            f"{c.p(n.outputs[0])});", "if (rc != TTE_OK) return rc;"]


@emits("mse")
def _mse(n, c):
    p, t = n.inputs
    return [f"tte_mse_f32({c.p(p)}, {c.p(t)}, {c.n(p)}, {c.p(n.outputs[0])});"]


@emits("mse_grad")
def _mse_grad(n, c):
    p, t = n.inputs
    return [f"tte_mse_grad_f32({c.p(p)}, {c.p(t)}, {c.p(n.outputs[0])}, {c.n(p)});"]


@emits("sgd_update")
def _sgd_update(n, c):
    """A partial weight's gradient, storage and momentum all hold its trained part."""
    w, g, buf = n.inputs[0], n.inputs[1], _in(n, 2)
    return [f"tte_sgd_update_f32({c.p(w)}, {c.p(g)}, {c.p(buf)}, {c.n(g)}, {_sgd(n)});"]


# --- data movement --------------------------------------------------------------------------

@emits("reshape")
def _reshape(n, c):
    x, y = n.inputs[0], n.outputs[0]
    if c.same_buffer(x, y):
        return [f"/* {y} = reshape({x}) shares its buffer */"]
    if c.dtype(x) != DType.f32:
        return [f"memcpy({c.p(y)}, {c.p(x)}, {c.n(y) * c.dtype(x).itemsize});"]
    return [f"tte_copy_f32({c.p(x)}, {c.p(y)}, {c.n(y)});"]


@emits("transpose")
def _transpose(n, c):
    x = n.inputs[0]
    s = c.shape(x)
    return [f"tte_transpose_f32({c.p(x)}, {ints(s)}, {ints(n.attrs['perm'])}, {max(len(s), 1)}, "
            f"{c.p(n.outputs[0])});"]


@emits("concat")
def _concat(n, c):
    y = n.outputs[0]
    ax = n.attrs["axis"]
    outer, _, inner = split3(c.shape(y), ax, ax)
    ptrs = ", ".join(c.p(x) for x in n.inputs)
    return [f"tte_concat_f32((const float *const[]){{{ptrs}}}, "
            f"{ints([c.shape(x)[ax] for x in n.inputs])}, {len(n.inputs)}, {outer}, {inner}, "
            f"{c.p(y)});"]


@emits("pad")
def _pad(n, c):
    if n.attrs["mode"] != "constant":
        raise UnsupportedError(f"the C backend pads with constants only, not {n.attrs['mode']!r}")
    x = n.inputs[0]
    s = c.shape(x)
    value = flt(n.attrs["value"]) if c.dtype(x) == DType.f32 else str(int(n.attrs["value"]))
    kind = {DType.f32: "f32", DType.i8: "s8"}.get(c.dtype(x))
    if kind is None:
        raise UnsupportedError(f"the C backend pads f32 and i8 tensors, not {c.dtype(x).value}")
    return [f"tte_pad_{kind}({c.p(x)}, {ints(s)}, {max(len(s), 1)}, {ints(n.attrs['pads'])}, "
            f"{value}, {c.p(n.outputs[0])});"]


def _slice_args(n: Node, in_shape) -> str:
    starts, steps = [0] * len(in_shape), [1] * len(in_shape)
    for s, e, ax, st in zip(n.attrs["starts"], n.attrs["ends"], n.attrs["axes"], n.attrs["steps"]):
        starts[ax] = slice(s, e if e >= 0 else None, st).indices(in_shape[ax])[0]
        steps[ax] = st
    return f"{ints(in_shape)}, {max(len(in_shape), 1)}, {ints(starts)}, {ints(steps)}"


@emits("slice_channels")
def _slice_channels(n, c):
    x, y = n.inputs[0], n.outputs[0]
    channels = n.attrs["channels"]
    return [f"tte_slice_channels({c.p(x)}, {dims4(c.shape(x))}, {c.dtype(x).itemsize}, "
            f"{positions_table(c, channels, c.shape(x)[1])}, {len(channels)}, {c.p(y)});"]


@emits("slice")
def _slice(n, c):
    x, y = n.inputs[0], n.outputs[0]
    return [f"tte_slice_f32({c.p(x)}, {_slice_args(n, c.shape(x))}, {ints(c.shape(y))}, "
            f"{c.p(y)});"]


@emits("slice_grad")
def _slice_grad(n, c):
    gy, gx = n.inputs[0], n.outputs[0]
    return [f"tte_slice_grad_f32({c.p(gy)}, {_slice_args(n, c.shape(gx))}, {ints(c.shape(gy))}, "
            f"{c.p(gx)});"]
