"""TFLite's int8 SOFTMAX in numpy, bit for bit: reference_ops::Softmax (the quantized
template of tensorflow/lite/kernels/internal/reference/softmax.h, which tflite-micro runs for
int8 -> int8) on gemmlowp's fixed-point exp and reciprocal (fixedpoint.h), with the
parameters of PreprocessSoftmaxScaling / CalculateInputRadius (quantization_util.cc).

Raw fixed-point values are int64 numpy arrays holding int32 values; `FixedPoint<int32, k>`
is a raw value with k integer bits. kernels_c/softmax_s8.c is the same arithmetic in C.
"""
from __future__ import annotations

import math

import numpy as np

from tte.quant.arith import (INT32_MAX, INT32_MIN, quantize_multiplier, rounding_divide_by_pot,
                             srdhm, wrap32)

SCALED_DIFF_INTEGER_BITS = 5   # the input of exp() is Q5.26
ACCUMULATION_INTEGER_BITS = 12  # the sum of exps is Q12.19


def mul_by_pot(x, exponent: int):
    """gemmlowp SaturatingRoundingMultiplyByPOT: saturating left shift, or rounding right."""
    if exponent <= 0:
        return rounding_divide_by_pot(x, -exponent)
    x = np.asarray(x, np.int64)
    threshold = (1 << (31 - exponent)) - 1
    return np.where(x > threshold, INT32_MAX,
                    np.where(x < -threshold, INT32_MIN, wrap32(x << exponent)))


def _exp_on_interval(a):
    """exp(a) for a in [-1/4, 0), Q0.31 in and out: a Taylor expansion around -1/8."""
    constant_term, one_third = 1895147668, 715827883
    x = a + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4_over_4 = rounding_divide_by_pot(srdhm(x2, x2), 2)
    poly = rounding_divide_by_pot(srdhm(x4_over_4 + x3, one_third) + x2, 1)
    return constant_term + srdhm(constant_term, x + poly)


# exp(-2^k) in Q0.31 for the barrel shifter, k = -2 .. 4
_EXP_MULTIPLIERS = {-2: 1672461947, -1: 1302514674, 0: 790015084, 1: 290630308, 2: 39332535,
                    3: 720401, 4: 242}


def exp_on_negative_values(a):
    """gemmlowp exp_on_negative_values for Q5.26 input a <= 0; Q0.31 result."""
    frac = 31 - SCALED_DIFF_INTEGER_BITS
    quarter = 1 << (frac - 2)
    a_mod = (a & (quarter - 1)) - quarter
    result = _exp_on_interval(mul_by_pot(a_mod, SCALED_DIFF_INTEGER_BITS))
    remainder = a_mod - a
    for k, mult in _EXP_MULTIPLIERS.items():
        if SCALED_DIFF_INTEGER_BITS > k:
            result = np.where(remainder & (1 << (frac + k)), srdhm(result, mult), result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x(a):
    """gemmlowp one_over_one_plus_x_for_x_in_0_1: Q0.31 in, Q0.31 out (Newton-Raphson)."""
    total = np.asarray(a, np.int64) + INT32_MAX  # RoundingHalfSum(a, One): C division
    half_denominator = np.where(total >= 0, (total + 1) // 2, -((-total + 1) // 2))
    x = 1515870810 + srdhm(half_denominator, -1010580540)  # 48/17 - 32/17 d, Q2.29
    for _ in range(3):
        one_minus = (1 << 29) - srdhm(half_denominator, x)
        x = x + mul_by_pot(srdhm(x, one_minus), 2)
    return mul_by_pot(x, 1)


def get_reciprocal(x, integer_bits: int):
    """TFLite GetReciprocal: (1 / x as Q0.31 scaled by 2^-num_bits_over_unit, that count)."""
    x = np.asarray(x, np.int64)
    headroom_plus_one = 32 - np.frexp(np.maximum(x, 1).astype(np.float64))[1]  # clz(x)
    num_bits_over_unit = integer_bits - headroom_plus_one
    shifted = wrap32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x(shifted), num_bits_over_unit


def softmax_params(in_scale: float, beta: float = 1.0) -> dict:
    """PreprocessSoftmaxScaling and CalculateInputRadius for int8 input (Q5.26 diffs)."""
    real = min(float(beta) * float(in_scale) * (1 << (31 - SCALED_DIFF_INTEGER_BITS)),
               (1 << 31) - 1.0)
    mult, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError(f"softmax input scale {in_scale} x beta {beta} is too small for TFLite")
    radius = math.floor(((1 << SCALED_DIFF_INTEGER_BITS) - 1)
                        * (1 << (31 - SCALED_DIFF_INTEGER_BITS)) / (1 << shift))
    return {"input_multiplier": mult, "input_left_shift": shift, "diff_min": -radius}


def softmax_s8(x: np.ndarray, p: dict) -> np.ndarray:
    """int8 [..., depth] -> int8 softmax over the last axis (output scale 1/256, zero -128)."""
    xs = x.astype(np.int64)
    diff = xs - xs.max(axis=-1, keepdims=True)
    valid = diff >= p["diff_min"]
    scaled = srdhm(wrap32(diff * (1 << p["input_left_shift"])), p["input_multiplier"])
    exps = exp_on_negative_values(scaled)
    terms = np.where(valid, rounding_divide_by_pot(exps, ACCUMULATION_INTEGER_BITS), 0)
    total = wrap32(terms.sum(axis=-1, keepdims=True))
    scale, bits_over_unit = get_reciprocal(total, ACCUMULATION_INTEGER_BITS)
    out = rounding_divide_by_pot(srdhm(scale, exps), bits_over_unit + 31 - 8)
    out = np.where(valid, out - 128, -128)
    return np.clip(out, -128, 127).astype(np.int8)
