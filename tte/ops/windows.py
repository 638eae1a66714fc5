"""Sliding-window geometry shared by convolution and pooling (NCHW)."""
from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided


def out_size(size: int, k: int, stride: int, pad_lo: int, pad_hi: int, dilation: int = 1,
             ceil_mode: bool = False) -> int:
    """Output length; in ceil mode the last window must start inside input or left pad."""
    span = size + pad_lo + pad_hi - dilation * (k - 1) - 1
    if span < 0:
        raise ValueError(f"window {k} (dilation {dilation}) larger than padded input {size}")
    if not ceil_mode:
        return span // stride + 1
    n = math.ceil(span / stride) + 1
    return n - 1 if (n - 1) * stride >= size + pad_lo else n


def windows(xp: np.ndarray, k: tuple[int, int], s: tuple[int, int], d: tuple[int, int],
            out: tuple[int, int]) -> np.ndarray:
    """View [N, C, kh, kw, Ho, Wo] of a padded input: element (i, j, u, v) is
    xp[..., i*dh + u*sh, j*dw + v*sw]."""
    n, c, _, _ = xp.shape
    sn, sc, sh_, sw_ = xp.strides
    return as_strided(xp, (n, c, k[0], k[1], out[0], out[1]),
                      (sn, sc, sh_ * d[0], sw_ * d[1], sh_ * s[0], sw_ * s[1]), writeable=False)


def pad_for(x: np.ndarray, pads: list[int], k: tuple[int, int], s: tuple[int, int],
            d: tuple[int, int], out: tuple[int, int], value: float) -> np.ndarray:
    """Pad (top, left, bottom, right) plus whatever extra ceil-mode windows reach."""
    t, l, b, r = pads
    need_h = (out[0] - 1) * s[0] + d[0] * (k[0] - 1) + 1
    need_w = (out[1] - 1) * s[1] + d[1] * (k[1] - 1) + 1
    b = max(b, need_h - x.shape[2] - t)
    r = max(r, need_w - x.shape[3] - l)
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


def col2im(cols: np.ndarray, padded_hw: tuple[int, int], pads: list[int],
           in_hw: tuple[int, int], s: tuple[int, int], d: tuple[int, int]) -> np.ndarray:
    """Scatter-add window gradients [N, C, kh, kw, Ho, Wo] back to the unpadded input."""
    n, c, kh, kw, ho, wo = cols.shape
    acc = np.zeros((n, c, max(padded_hw[0], pads[0] + in_hw[0]),
                    max(padded_hw[1], pads[1] + in_hw[1])), cols.dtype)
    for i in range(kh):
        for j in range(kw):
            acc[:, :, i * d[0]: i * d[0] + s[0] * (ho - 1) + 1: s[0],
                j * d[1]: j * d[1] + s[1] * (wo - 1) + 1: s[1]] += cols[:, :, i, j]
    return acc[:, :, pads[0]: pads[0] + in_hw[0], pads[1]: pads[1] + in_hw[1]]
