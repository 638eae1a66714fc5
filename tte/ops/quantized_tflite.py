"""int8 ops that only TFLite graphs use: SOFTMAX (gemmlowp fixed point) and MEAN."""
from __future__ import annotations

import numpy as np

from tte.ir.types import DType, Value
from tte.ops.registry import OpDef, register
from tte.quant import arith
from tte.quant.softmax import softmax_params, softmax_s8

MAX_SOFTMAX_DEPTH = 511  # a row of 512 equal logits overflows TFLite's sum (TFLM aborts)


def _softmax_infer(ins: list[Value | None], a: dict) -> list:
    x = ins[0]
    if x.dtype != DType.i8 or not 0 < x.shape[-1] <= MAX_SOFTMAX_DEPTH:
        raise ValueError(f"softmax_s8 takes int8 with at most {MAX_SOFTMAX_DEPTH} classes on "
                         f"the last axis, got {x.dtype.value}{list(x.shape)}")
    softmax_params(a["in_scale"], a["beta"])  # raises for scales TFLite rejects
    return [(x.shape, DType.i8)]


register(OpDef("softmax_s8", _softmax_infer,
               lambda x, in_scale, beta: [softmax_s8(x, softmax_params(in_scale, beta))],
               kernel="tte_softmax_s8", attrs={"in_scale": None, "beta": 1.0},
               doc="int8 softmax over the last axis, TFLite fixed point; output scale 1/256, "
                   "zero point -128"))


def mean_params(a: dict, count: int) -> tuple[int, int]:
    """tflite-micro's MEAN (QuantizedMeanOrSum, also when input and output quantization are
    equal): the multiplier for double(s_in) / double(s_out) with 1 / count folded in."""
    mult, shift = arith.quantize_multiplier(float(a["in_scale"]) / float(a["out_scale"]))
    fold = min(count.bit_length() - 1, 32, 31 + shift)
    return int((mult << fold) // count), shift - fold


def _mean_ref(x, **a):
    """MEAN over H, W of NCHW (TFLite's axes 1, 2 of NHWC), as tflite-micro computes it:
    requantize(sum(x) - in_zero * count) + out_zero."""
    count = x.shape[2] * x.shape[3]
    total = x.astype(np.int64).sum(axis=(2, 3), keepdims=True)
    mult, shift = mean_params(a, count)
    q = arith.requantize(arith.wrap32(total - a["in_zero"] * count), mult, shift) + a["out_zero"]
    return [np.clip(q, -128, 127).astype(np.int8)]


register(OpDef("mean_s8", lambda ins, a: [(ins[0].shape[:2] + (1, 1), DType.i8)], _mean_ref,
               kernel="tte_mean_s8",
               attrs={"in_scale": None, "in_zero": 0, "out_scale": None, "out_zero": 0},
               doc="int8 mean over H and W (TFLite MEAN, keep_dims), as tflite-micro"))
