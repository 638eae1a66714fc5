"""Plain numpy forward of tiny-training's int8 models (tte.frontends.mcu_pickle.McuModel).

Written straight from the published semantics (../shared/models/README.md,
section "mcu_imagenet"; tiny-training algorithm/quantize/quantized_ops.py),
independent of TTE's IR and kernels, so that both can be checked against it:

* conv: acc = conv(x - x_zero, w) + bias in int64 (exact; zero padding in the
  shifted domain), y = round(acc * (x_scale * w_scale[c] / y_scale)) + y_zero in
  float64, round half to even, clamp to [-128, 127];
* residual add: y = round(((a - za) * sa + (b - zb) * sb) / sy) + zy, clamped;
* global average pool: round(mean over H, W);
* network: first_conv -> blocks -> feature_mix -> pool -> classifier -> int8 logits;
* input: an image in [-1, 1] quantized with first_conv's x_scale and x_zero.
"""
from __future__ import annotations

import numpy as np

from tte.frontends.mcu_pickle import McuConv, McuConvResidual, McuModel

INT8_MIN, INT8_MAX = -128, 127


def _clamp_int8(y: np.ndarray) -> np.ndarray:
    return np.clip(y, INT8_MIN, INT8_MAX).astype(np.int8)


def quantize_image(model: McuModel, image: np.ndarray) -> np.ndarray:
    """(3, H, W) floats in [-1, 1] -> int8, with first_conv's input scale and zero."""
    image = np.asarray(image, dtype=np.float64)
    if image.shape != model.input_shape:
        raise ValueError(f"image shape {image.shape}, model expects {model.input_shape}")
    conv = model.first_conv
    return _clamp_int8(np.round(image / conv.x_scale) + conv.x_zero)


def conv_accumulate(x: np.ndarray, weight: np.ndarray, stride: tuple[int, int],
                    padding: tuple[int, int], groups: int) -> np.ndarray:
    """Exact integer grouped convolution of x (C, H, W) with weight (O, C/groups, kh, kw).

    One matrix product per kernel tap over a strided window (im2col, one
    column block at a time), accumulated in int64.
    """
    x = np.asarray(x, dtype=np.int64)
    weight = np.asarray(weight, dtype=np.int64)
    c, h, w = x.shape
    o, cg, kh, kw = weight.shape
    (sh, sw), (ph, pw) = stride, padding
    assert c == cg * groups and o % groups == 0
    ho, wo = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
    xp = np.pad(x, ((0, 0), (ph, ph), (pw, pw)))  # zeros: x is already shifted by x_zero
    xg = xp.reshape(groups, cg, h + 2 * ph, w + 2 * pw)
    wg = weight.reshape(groups, o // groups, cg, kh, kw)
    acc = np.zeros((groups, o // groups, ho * wo), dtype=np.int64)
    for i in range(kh):
        for j in range(kw):
            window = xg[:, :, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw]
            acc += np.matmul(wg[:, :, :, i, j], window.reshape(groups, cg, ho * wo))
    return acc.reshape(o, ho, wo)


def conv(x: np.ndarray, layer: McuConv) -> np.ndarray:
    """int8 (C, H, W) -> int8 (O, H', W') with the layer's requantization."""
    acc = conv_accumulate(x.astype(np.int64) - layer.x_zero, layer.weight, layer.stride,
                          layer.padding, layer.groups)
    acc += layer.bias.astype(np.int64)[:, None, None]
    effective = (layer.x_scale * layer.w_scales.astype(np.float64)) / layer.y_scale
    y = np.round(acc.astype(np.float64) * effective[:, None, None]) + layer.y_zero
    return _clamp_int8(y)


def add(a: np.ndarray, za: int, sa: float, b: np.ndarray, zb: int, sb: float,
        zy: int, sy: float) -> np.ndarray:
    total = (a.astype(np.float64) - za) * sa + (b.astype(np.float64) - zb) * sb
    return _clamp_int8(np.round(total / sy) + zy)


def avg_pool(x: np.ndarray) -> np.ndarray:
    """int8 (C, H, W) -> int8 (C, 1, 1): round(mean over H, W), half to even."""
    mean = x.astype(np.float64).sum(axis=(1, 2)) / (x.shape[1] * x.shape[2])
    return _clamp_int8(np.round(mean))[:, None, None]


def forward_quantized(model: McuModel, x: np.ndarray, trace: list | None = None) -> np.ndarray:
    """int8 input (3, H, W) -> int8 logits (num_classes,). `trace` collects
    (name, int8 output) after every conv, residual add and the pool."""
    def record(name: str, value: np.ndarray) -> np.ndarray:
        if trace is not None:
            trace.append((name, value))
        return value

    x = record("first_conv", conv(x, model.first_conv))
    for block in model.blocks:
        block_in = x
        for layer in block.main_convs():
            x = record(layer.name, conv(x, layer))
        last = block.main_convs()[-1]
        res = block.residual
        if isinstance(res, McuConvResidual):
            shortcut = record(res.conv.name, conv(block_in, res.conv))
            x = add(shortcut, res.conv.y_zero, res.conv.y_scale, x, last.y_zero, last.y_scale,
                    res.out_zero, res.out_scale)
            record(f"blocks.{block.index}.add", x)
        elif res is not None:
            x = add(block_in, res.x_zero, res.x_scale, x, last.y_zero, last.y_scale,
                    res.y_zero, res.y_scale)
            record(f"blocks.{block.index}.add", x)
    if model.feature_mix is not None:
        x = record("feature_mix", conv(x, model.feature_mix))
    x = record("avg_pool", avg_pool(x))
    return record("classifier", conv(x, model.classifier)).reshape(-1)


def forward(model: McuModel, image: np.ndarray, trace: list | None = None) -> np.ndarray:
    """Float image (3, H, W) in [-1, 1] -> int8 logits (num_classes,)."""
    return forward_quantized(model, quantize_image(model, image), trace)
