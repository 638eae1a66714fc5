"""TFLite's integer arithmetic in numpy: the reference of the int8 IR ops and C kernels.

* `quantize_multiplier(real)` is TFLite's QuantizeMultiplier (quantization_util.cc): frexp,
  round half away from zero of q * 2^31, the q == 2^31 fix-up and flushing shifts below -31
  to (0, 0). `quantize_multiplier_smaller_than_one(real)` adds the shift <= 0 check of
  QuantizeMultiplierSmallerThanOneExp (ADD).
* `requantize(x, m, shift)` is MultiplyByQuantizedMultiplier with double rounding
  (SaturatingRoundingDoublingHighMul, then RoundingDivideByPOT), vectorised over int64
  numpy arrays; int32 wrap-around is made explicit with `wrap32`.
* `conv2d_s8`, `linear_s8`, `add_s8`, `avg_pool2d_s8`, `max_pool2d_s8`: whole-op numpy
  references in TTE's NCHW / OIHW layout (window = dict as ckernels.window()).
* `activation_range(act, scale, zero_point)`: CalculateActivationRangeQuantized for int8.
"""
from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6 = 0, 1, 2, 3


def _round_away(v: float) -> int:
    """std::round / TfLiteRound: half away from zero."""
    return int(math.copysign(math.floor(abs(v) + 0.5), v))


def quantize_multiplier(real: float) -> tuple[int, int]:
    real = float(real)
    if real == 0.0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = _round_away(q * (1 << 31))
    assert q_fixed <= 1 << 31
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    assert q_fixed <= INT32_MAX
    if shift < -31:
        shift, q_fixed = 0, 0
    return int(q_fixed), int(shift)


def quantize_multiplier_smaller_than_one(real: float) -> tuple[int, int]:
    assert 0.0 < real < 1.0
    m, s = quantize_multiplier(real)
    assert s <= 0
    return m, s


def wrap32(a):
    """Two's complement wrap of int64 values to the int32 range."""
    a = np.asarray(a, dtype=np.int64)
    return ((a + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul: round(a*b / 2^31), ties away from zero,
    saturating a == b == INT32_MIN."""
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    ab = a * b
    ab = ab + np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    hi = np.sign(ab) * (np.abs(ab) >> 31)  # C division by 2^31: toward zero
    return np.where((a == INT32_MIN) & (b == INT32_MIN), INT32_MAX, hi)


def rounding_divide_by_pot(x, exponent):
    """gemmlowp RoundingDivideByPOT (ties away from zero); exponent may be an array."""
    x, exponent = np.broadcast_arrays(np.asarray(x, np.int64), np.asarray(exponent, np.int64))
    mask = (np.int64(1) << exponent) - 1
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + ((x & mask) > threshold)


def requantize(x, multiplier, shift):
    """MultiplyByQuantizedMultiplier (double rounding); broadcasts its arguments."""
    x = np.asarray(x, dtype=np.int64)
    shift = np.asarray(shift, dtype=np.int64)
    a = wrap32(x << np.maximum(shift, 0))
    return rounding_divide_by_pot(srdhm(a, multiplier), np.maximum(-shift, 0))


def activation_range(act: int, scale: float, zero_point: int) -> tuple[int, int]:
    """CalculateActivationRangeQuantized for int8 (Quantize: float32 f / scale, rounded)."""
    def quant(f: float) -> int:
        return int(zero_point) + _round_away(float(np.float32(f) / np.float32(scale)))
    if act == ACT_NONE:
        return -128, 127
    if act == ACT_RELU:
        return max(-128, quant(0.0)), 127
    if act == ACT_RELU6:
        return max(-128, quant(0.0)), min(127, quant(6.0))
    if act == ACT_RELU_N1_TO_1:
        return max(-128, quant(-1.0)), min(127, quant(1.0))
    raise ValueError(f"activation {act}")


def _finish(acc, bias, mult, shift, out_offset, act_min, act_max, axis_shape):
    v = requant_tflite(add_bias_wrapped(acc, bias, axis_shape), mult, shift, out_offset,
                       axis_shape)
    return np.clip(v, act_min, act_max).astype(np.int8)


def add_bias_wrapped(acc, bias, axis_shape):
    """acc + bias in int32 with wrap-around, as TFLite's kernels add them."""
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64).reshape(axis_shape)
    return wrap32(acc)


def requant_tflite(acc, mult, shift, out_offset, axis_shape):
    """The value before the activation clamp: requantize(acc) + output offset (int32)."""
    return wrap32(requantize(acc, np.asarray(mult).reshape(axis_shape),
                             np.asarray(shift).reshape(axis_shape)) + out_offset)


def requant_half_even(acc, bias, scale, out_zero, axis_shape):
    """The MCU backbones' rule (tiny-training's simulator): round((acc + bias) * scale) in
    double, half to even; acc + bias is exact (no int32 wrap). Saturated to the int32 range
    so that the value fits the C kernel's int32 before the activation clamp."""
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64).reshape(axis_shape)
    v = np.rint(acc.astype(np.float64) * np.asarray(scale, np.float64).reshape(axis_shape))
    return np.clip(v + out_zero, INT32_MIN, INT32_MAX).astype(np.int64)


def clamp_mask(v, act_min, act_max) -> np.ndarray:
    """1 bit per element (little-endian bit order): lo <= v <= hi, where the activation
    clamp passes its gradient."""
    m = (np.asarray(v) >= act_min) & (np.asarray(v) <= act_max)
    return np.packbits(m.reshape(-1), bitorder="little")


def unpack_mask(mask, shape) -> np.ndarray:
    n = int(np.prod(shape, dtype=np.int64))
    return np.unpackbits(mask, count=n, bitorder="little").reshape(shape).astype(bool)


def _positions(p, yd_h, yd_w):
    for ky in range(p["kernel_h"]):
        for kx in range(p["kernel_w"]):
            iy = np.arange(yd_h) * p["stride_h"] - p["pad_top"] + ky * p["dilation_h"]
            ix = np.arange(yd_w) * p["stride_w"] - p["pad_left"] + kx * p["dilation_w"]
            yield ky, kx, iy, ix


def _gather(x, iy, ix):
    """x[..., iy, ix] with out-of-range positions marked invalid: (values, valid mask)."""
    h, w = x.shape[-2:]
    vy, vx = (iy >= 0) & (iy < h), (ix >= 0) & (ix < w)
    g = x[..., np.clip(iy, 0, h - 1)[:, None], np.clip(ix, 0, w - 1)[None, :]]
    return g, vy[:, None] & vx[None, :]


def conv2d_acc(x, w, p, out_hw, in_off):
    """int64 sum of w * (x + in_off) over each window (positions outside x skipped)."""
    n, c = x.shape[:2]
    o, g = w.shape[0], p["groups"]
    cg, og = c // g, o // g
    xs = x.astype(np.int64) + in_off
    acc = np.zeros((n, o) + tuple(out_hw), np.int64)
    for ky, kx, iy, ix in _positions(p, *out_hw):
        v, valid = _gather(xs, iy, ix)
        v = v * valid
        for gi in range(g):
            acc[:, gi * og:(gi + 1) * og] += np.einsum(
                "nchw,oc->nohw", v[:, gi * cg:(gi + 1) * cg],
                w[gi * og:(gi + 1) * og, :, ky, kx].astype(np.int64))
    return acc


def conv2d_s8(x, w, bias, p, out_hw, mult, shift, in_off, out_off, act_min, act_max):
    """x [N,C,H,W] int8, w [O,C/g,kh,kw] int8 -> y [N,O,OH,OW] int8."""
    acc = wrap32(conv2d_acc(x, w, p, out_hw, in_off))
    return _finish(acc, bias, mult, shift, out_off, act_min, act_max, (1, w.shape[0], 1, 1))


def linear_acc(x, w, in_off, filter_off):
    """int64 sum of (w + filter_off) * (x + in_off): x [N, K], w [M, K] -> [N, M]."""
    return (x.astype(np.int64) + in_off) @ (w.astype(np.int64) + filter_off).T


def linear_s8(x, w, bias, mult, shift, filter_off, in_off, out_off, act_min, act_max):
    acc = linear_acc(x, w, in_off, filter_off)
    return _finish(acc, bias, mult, shift, out_off, act_min, act_max, (1, -1))


def add_s8_value(a, b, prm: dict):
    """TFLite's int8 ADD before the activation clamp (int32)."""
    va = wrap32((a.astype(np.int64) + prm["input1_offset"]) << prm["left_shift"])
    vb = wrap32((b.astype(np.int64) + prm["input2_offset"]) << prm["left_shift"])
    s = wrap32(requantize(va, prm["input1_multiplier"], prm["input1_shift"])
               + requantize(vb, prm["input2_multiplier"], prm["input2_shift"]))
    return wrap32(requantize(s, prm["output_multiplier"], prm["output_shift"])
                  + prm["output_offset"])


def add_s8(a, b, prm: dict):
    return np.clip(add_s8_value(a, b, prm), prm["act_min"], prm["act_max"]).astype(np.int8)


def add_params(s1, z1, s2, z2, so, zo, act=ACT_NONE) -> dict:
    """TFLite's PrepareAdd for int8 (float32 scales, double arithmetic)."""
    s1, s2, so = (float(np.float32(s)) for s in (s1, s2, so))
    left_shift = 20
    twice_max = 2 * max(s1, s2)
    m1, sh1 = quantize_multiplier_smaller_than_one(s1 / twice_max)
    m2, sh2 = quantize_multiplier_smaller_than_one(s2 / twice_max)
    mo, sho = quantize_multiplier_smaller_than_one(twice_max / ((1 << left_shift) * so))
    lo, hi = activation_range(act, so, zo)
    return dict(input1_offset=-int(z1), input2_offset=-int(z2), output_offset=int(zo),
                left_shift=left_shift, input1_multiplier=m1, input1_shift=sh1,
                input2_multiplier=m2, input2_shift=sh2, output_multiplier=mo,
                output_shift=sho, act_min=lo, act_max=hi)


def _pool(x, p, out_hw, fn):
    n, c = x.shape[:2]
    vals, masks = [], []
    for _, _, iy, ix in _positions(p, *out_hw):
        v, valid = _gather(x.astype(np.int64), iy, ix)
        vals.append(v)
        masks.append(np.broadcast_to(valid, v.shape))
    return fn(np.stack(vals), np.stack(masks))


def avg_pool2d_s8(x, p, out_hw, act_min=-128, act_max=127, half_even=False):
    """TFLite's rounding (half away from zero, C division), or half to even (the MCU
    backbones' round(mean))."""
    def fn(v, m):
        s = (v * m).sum(0)
        cnt = m.sum(0)
        safe = np.maximum(cnt, 1)
        if half_even:
            q = np.floor_divide(s, safe)
            twice_rem = 2 * (s - q * safe)
            q = q + ((twice_rem > safe) | ((twice_rem == safe) & (q % 2 == 1)))
        else:
            num = np.where(s > 0, s + cnt // 2, s - cnt // 2)
            q = np.sign(num) * (np.abs(num) // safe)  # C division: toward zero
        return np.clip(np.where(cnt > 0, q, 0), act_min, act_max).astype(np.int8)
    return _pool(x, p, out_hw, fn)


def max_pool2d_s8(x, p, out_hw, act_min=-128, act_max=127):
    def fn(v, m):
        return np.clip(np.where(m, v, -128).max(0), act_min, act_max).astype(np.int8)
    return _pool(x, p, out_hw, fn)
