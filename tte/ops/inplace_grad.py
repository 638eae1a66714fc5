"""Depthwise input gradients written over the output gradient, channel by channel.

Channel c of a depthwise convolution's input gradient reads only channel c of its output
gradient. The kernels compute each (n, c) plane into a one-plane scratch and then copy it
over that plane of gx, so gx may take over gy's buffer (inplace=0: the planner shares it
when gy dies here and the shapes agree, i.e. stride 1 with 'same' padding), and the result
is the same when it does not. The scratch is the op's second output (OpDef.scratch): the
planner gives it bytes at this node only; nothing reads it.
"""
from __future__ import annotations

import numpy as np

from tte.ir.graph import Graph
from tte.ir.types import DType, Value
from tte.ops.conv import GEOMETRY
from tte.ops.registry import OpDef, get_op, register

# in-place op -> the general input-gradient op it computes
BASE = {"depthwise_grad_input": "conv2d_grad_input",
        "depthwise_s8_grad_input": "conv2d_s8_grad_input"}


def applies(g: Graph, x: str, w: str, y: str, group: int) -> bool:
    """Whether the input gradient of the convolution y = conv(x, w) may overwrite y's
    gradient: depthwise (one weight per input channel) with y shaped like x."""
    xs, ws = g.values[x].shape, g.values[w].shape
    return len(xs) == 4 and group == xs[1] == ws[0] and ws[1] == 1 and g.values[y].shape == xs


def emit(g: Graph, op: str, gy: str, w: str, attrs: dict) -> str:
    """Add the in-place op (op in BASE) and return gx."""
    gx = g.fresh(op)
    return g.add_node(op, [gy, w], attrs, outputs=[gx, g.fresh(f"{gx}.scratch")])[0]


def _infer(w_dtype: DType):
    def rule(ins: list[Value | None], a: dict) -> list:
        gy, w = ins
        shape = tuple(a["input_shape"])
        half = w_dtype == DType.f32 and gy.dtype == w.dtype == DType.f16  # an f16 model
        if not half and (gy.dtype != DType.f32 or w.dtype != w_dtype) or gy.shape != shape or \
                len(shape) != 4 or w.shape[:2] != (shape[1], 1) or a["group"] != shape[1]:
            raise ValueError(f"in-place depthwise input gradient: gy {gy.type_str()}, w "
                             f"{w.type_str()}, group {a['group']}, input {list(shape)}")
        return [(shape, gy.dtype), ((shape[2] * shape[3],), gy.dtype)]
    return rule


def _ref(op: str):
    def ref(gy, w, **attrs):
        gx = get_op(BASE[op]).ref(gy, w, **attrs)[0]
        return [gx, np.zeros(gx.shape[2] * gx.shape[3], gx.dtype)]
    return ref


def _macs(op: str):
    def rule(ins, outs, a):  # the base op may register after this module
        return get_op(BASE[op]).macs(ins, outs, a)
    return rule


def _register(op: str, w_dtype: DType, kernel: str, attrs: dict) -> None:
    register(OpDef(op, _infer(w_dtype), _ref(op), kernel=kernel,
                   attrs={**GEOMETRY, "input_shape": None, **attrs}, inplace=0, scratch=(1,),
                   macs=_macs(op),
                   doc=f"{BASE[op]} of a depthwise conv whose output is shaped like its "
                       "input, written over gy plane by plane (gy, w); outputs gx and a "
                       "one-plane scratch"))


_register("depthwise_grad_input", DType.f32, "tte_depthwise_grad_input", {})
_register("depthwise_s8_grad_input", DType.i8, "tte_depthwise_s8_grad_input", {"w_scales": None})
