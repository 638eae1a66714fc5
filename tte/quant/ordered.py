"""Sums in the C kernels' order, so that numpy references round exactly as kernels_c does.

A C kernel accumulates `s = 0; for k: s += a[k] * b[k]` in one float: each product is
rounded, then each partial sum, left to right (the host build has -ffp-contract=off: no
FMA). numpy's sum is pairwise along the contiguous axis and BLAS / einsum block and fuse,
so their results differ in the last bits, and an int8 weight update p -= rint(lr * g) flips
now and then. These helpers vectorise over the independent outputs and keep every
accumulation sequential: np.add.accumulate along axis 0 is a running sum by definition
(out[k] = out[k-1] + t[k]), whatever the memory layout.

Everything is computed in the inputs' dtype (float32 against C; float64 runs stay float64).
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from tte.ops.windows import pad_for, windows

CHUNK = 1 << 20  # terms materialised at once (elements)


def seq_sum(terms: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
    """start + terms[0] + terms[1] + ... over axis 0, left to right (start: +0.0, as C's
    `float s = 0.0f`, which also turns an all -0.0 sum into +0.0)."""
    first = np.zeros(terms.shape[1:], terms.dtype) if start is None else start
    return np.add.accumulate(np.concatenate([first[None], terms]), axis=0)[-1]


def ordered_sum(count: int, terms: Callable[[int, int], np.ndarray], shape: Sequence[int],
                dtype) -> np.ndarray:
    """The sequential sum of count terms of the given shape; terms(k0, k1) stacks terms
    k0..k1-1 on axis 0 (asked for in chunks of about CHUNK elements)."""
    step = max(1, CHUNK // max(1, math.prod(shape)))
    total = np.zeros(tuple(shape), dtype)
    for k0 in range(0, count, step):
        total = seq_sum(terms(k0, min(count, k0 + step)), total)
    return total


def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a[N, K] @ b[K, M], each output `acc += a[i, k] * b[k, j]` for k in order."""
    n, k = a.shape
    m = b.shape[1]
    return ordered_sum(k, lambda k0, k1: a[:, k0:k1].T[:, :, None] * b[k0:k1, None, :],
                       (n, m), np.result_type(a, b))


def channel_sum(g: np.ndarray) -> np.ndarray:
    """Sum over every axis but 1 of [N, C, ...], per channel over n, then the rest in
    memory order (train_s8.c tte_channel_sum_scaled_f32)."""
    rows = np.moveaxis(g, 1, -1).reshape(-1, g.shape[1])
    return ordered_sum(len(rows), lambda r0, r1: rows[r0:r1], (g.shape[1],), g.dtype)


def exp(x: np.ndarray) -> np.ndarray:
    """exp in double rounded to x's dtype, as loss.c: glibc / newlib and numpy each round
    double exp to within an ulp, so the float results agree unless the exact value lies
    within about 2^-29 of a float rounding boundary."""
    return np.exp(x.astype(np.float64)).astype(x.dtype)


def log(x: np.ndarray) -> np.ndarray:
    """log in double rounded to x's dtype (see exp)."""
    return np.log(x.astype(np.float64)).astype(x.dtype)


def _span(out: int, stride: int, dilation: int, k: int) -> int:
    return (out - 1) * stride + dilation * (k - 1) + 1


def conv_transpose(gy: np.ndarray, w: np.ndarray, geo: dict,
                   input_hw: Sequence[int]) -> np.ndarray:
    """Input gradient of a grouped convolution, summed as train_s8.c's grad_input: each
    input element adds g[n, o, oy, ox] * w[o, c, ky, kx] for o in order, then (oy, ox) in
    scan order, i.e. the kernel taps in reverse scan order."""
    n, o, ho, wo = gy.shape
    _, cg, kh, kw = w.shape
    groups = geo["group"]
    (sh, sw), (dh, dw), pads = geo["strides"], geo.get("dilations", [1, 1]), geo["pads"]
    h, wd = input_hw
    og = o // groups
    gyg, wg = gy.reshape(n, groups, og, ho, wo), w.reshape(groups, og, cg, kh, kw)
    acc = np.zeros((n, groups, cg, max(_span(ho, sh, dh, kh), pads[0] + h),
                    max(_span(wo, sw, dw, kw), pads[1] + wd)), np.result_type(gy, w))
    if kh == kw == 1:  # an input element hears one output position: vectorise over it
        def terms(j0, j1):
            return np.moveaxis(gyg[:, :, j0:j1, None] * wg[None, :, j0:j1, :, 0, 0, None, None],
                               2, 0)
        acc[..., :_span(ho, sh, 1, 1):sh, :_span(wo, sw, 1, 1):sw] = \
            ordered_sum(og, terms, (n, groups, cg, ho, wo), acc.dtype)
    else:
        for j in range(og):
            for ky in reversed(range(kh)):
                for kx in reversed(range(kw)):
                    acc[..., ky * dh:ky * dh + _span(ho, sh, 1, 1):sh,
                        kx * dw:kx * dw + _span(wo, sw, 1, 1):sw] += \
                        gyg[:, :, j, None] * wg[None, :, j, :, ky, kx, None, None]
    return acc[..., pads[0]:pads[0] + h, pads[1]:pads[1] + wd].reshape(n, groups * cg, h, wd)


def conv_weight_grad(x: np.ndarray, gy: np.ndarray, weight_shape: Sequence[int],
                     geo: dict) -> np.ndarray:
    """Weight gradient of a grouped convolution, summed as train_s8.c's grad_weight_at:
    g[n, o, oy, ox] * x[n, c, iy, ix] over n, oy, ox in order. Taps in the padding add
    g * 0, which leaves a sum that started at +0.0 unchanged."""
    o, cg, kh, kw = weight_shape
    n, _, ho, wo = gy.shape
    groups = geo["group"]
    s, d = tuple(geo["strides"]), tuple(geo.get("dilations", [1, 1]))
    win = windows(pad_for(x, geo["pads"], (kh, kw), s, d, (ho, wo), 0.0), (kh, kw), s, d,
                  (ho, wo)).reshape(n, groups, cg, kh, kw, ho, wo)
    gyg = gy.reshape(n, groups, o // groups, ho, wo)

    def terms(r0, r1):
        ni, p = np.divmod(np.arange(r0, r1), ho * wo)
        oy, ox = np.divmod(p, wo)
        # advanced indices apart: their axis r comes first
        xs, gs = win[ni, ..., oy, ox], gyg[ni, :, :, oy, ox]  # [r, G, cg, kh, kw], [r, G, og]
        return gs[:, :, :, None, None, None] * xs[:, :, None]
    gw = ordered_sum(n * ho * wo, terms, (groups, o // groups, cg, kh, kw),
                     np.result_type(x, gy))
    return gw.reshape(weight_shape)
