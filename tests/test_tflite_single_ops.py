"""TFLite ops the shipped models lack (or use with few shapes), one op per generated model,
against tflite-micro: TTE's numpy interpreter and host C must equal it element for element
(int8) on random scales, zero points, shapes and inputs."""
from __future__ import annotations

import numpy as np
import pytest

import tte
from tests.tflite_builder import run_tflm, single_op, tensor
from tte.frontends.tflite_frontend import load_tflite, to_ir_layout
from tte.interpreter import run

CASES = 12


def _rng(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def _s8(rng, shape) -> np.ndarray:
    return rng.integers(-128, 127, size=shape, endpoint=True).astype(np.int8)


def _ours(model: bytes, x: np.ndarray, want_shape, c: bool = False) -> np.ndarray:
    g = load_tflite(model)
    if c:
        got = tte.compile(g, update=[], loss="mse").build().forward(to_ir_layout(x))
    else:
        got = run(g, {g.inputs[0]: to_ir_layout(x)})[g.outputs[0]]
    if got.ndim == 4:  # IR values are NCHW
        got = got.transpose(0, 2, 3, 1)
    return got.reshape(want_shape)


def _check(model: bytes, x: np.ndarray, with_c: bool) -> int:
    want = run_tflm(model, x)
    np.testing.assert_array_equal(_ours(model, x, want.shape), want)
    if with_c:
        np.testing.assert_array_equal(_ours(model, x, want.shape, c=True), want)
    return want.size


@pytest.mark.parametrize("seed", range(CASES))
def test_softmax(seed):
    rng = _rng(seed)
    rows, depth = int(rng.integers(1, 4)), int(rng.integers(2, 40))
    s_in = float(rng.uniform(0.01, 0.5))
    beta = float(rng.choice([1.0, 0.5, 2.0]))
    model = single_op("SOFTMAX", [tensor("x", [rows, depth], "INT8", s_in, int(rng.integers(-20, 20)))],
                      [tensor("y", [rows, depth], "INT8", 1 / 256, -128)],
                      ("SoftmaxOptions", {"beta": beta}))
    _check(model, _s8(rng, (rows, depth)), with_c=seed < 3)


@pytest.mark.parametrize("depth, s_in, beta", [(511, 0.1, 1.0), (300, 0.5, 64.0),
                                               (40, 2.0, 16.0)])
def test_softmax_extremes(depth, s_in, beta):
    """The widest row TTE accepts, and input shifts up to 31 bits (C's 1 << 31 would be UB)."""
    rng = _rng(depth)
    model = single_op("SOFTMAX", [tensor("x", [2, depth], "INT8", s_in, 3)],
                      [tensor("y", [2, depth], "INT8", 1 / 256, -128)],
                      ("SoftmaxOptions", {"beta": beta}))
    x = _s8(rng, (2, depth))
    x[1] = 5  # a row of equal logits
    _check(model, x, with_c=True)


@pytest.mark.parametrize("seed", range(CASES))
def test_mean_over_h_w(seed):
    rng = _rng(seed)
    h, w, ch = (int(v) for v in rng.integers(1, 9, size=3))
    s_in = float(rng.uniform(0.01, 0.2))
    s_out = s_in if seed % 3 == 0 else float(rng.uniform(0.005, 0.2))
    z_in, z_out = int(rng.integers(-30, 30)), int(rng.integers(-30, 30))
    if seed % 3 == 0:  # equal quantization: tflite-micro still rescales (caught a bug)
        z_out = z_in
    keep = bool(seed % 2)
    out_shape = [1, 1, 1, ch] if keep else [1, ch]
    model = single_op("MEAN", [tensor("x", [1, h, w, ch], "INT8", s_in, z_in),
                               tensor("axes", [2], "INT32", data=np.array([1, 2], np.int32))],
                      [tensor("y", out_shape, "INT8", s_out, z_out)],
                      ("ReducerOptions", {"keepDims": keep}))
    _check(model, _s8(rng, (1, h, w, ch)), with_c=seed < 3)


@pytest.mark.parametrize("seed", range(CASES))
def test_pad(seed):
    rng = _rng(seed)
    shape = [1] + [int(v) for v in rng.integers(1, 6, size=3)]
    pads = np.zeros((4, 2), np.int32)
    pads[1:] = rng.integers(0, 3, size=(3, 2))
    out = [d + int(p.sum()) for d, p in zip(shape, pads)]
    s, z = float(rng.uniform(0.01, 0.2)), int(rng.integers(-50, 50))
    model = single_op("PAD", [tensor("x", shape, "INT8", s, z),
                              tensor("pads", [4, 2], "INT32", data=pads)],
                      [tensor("y", out, "INT8", s, z)])
    _check(model, _s8(rng, shape), with_c=seed < 3)


@pytest.mark.parametrize("seed", range(CASES))
def test_max_pool(seed):
    rng = _rng(seed)
    h, w, ch = int(rng.integers(2, 10)), int(rng.integers(2, 10)), int(rng.integers(1, 5))
    k, stride = int(rng.integers(1, 4)), int(rng.integers(1, 3))
    padding = int(rng.integers(0, 2))  # SAME or VALID
    oh = -(-h // stride) if padding == 0 else (h - k) // stride + 1
    ow = -(-w // stride) if padding == 0 else (w - k) // stride + 1
    if min(oh, ow) < 1:
        pytest.skip("empty output")
    s, z = float(rng.uniform(0.01, 0.2)), int(rng.integers(-20, 20))
    model = single_op("MAX_POOL_2D", [tensor("x", [1, h, w, ch], "INT8", s, z)],
                      [tensor("y", [1, oh, ow, ch], "INT8", s, z)],
                      ("Pool2DOptions", {"padding": padding, "strideW": stride,
                                         "strideH": stride, "filterWidth": k,
                                         "filterHeight": k, "fusedActivationFunction": seed % 2}))
    _check(model, _s8(rng, (1, h, w, ch)), with_c=seed < 3)


@pytest.mark.parametrize("seed", range(CASES))
def test_quantize_and_dequantize(seed):
    rng = _rng(seed)
    n = int(rng.integers(1, 50))
    s, z = float(rng.uniform(0.001, 0.5)), int(rng.integers(-128, 127))
    x = (rng.standard_normal((1, n)) * 40 * s).astype(np.float32)
    x[0, 0] = (0.5 + int(rng.integers(-5, 5))) * np.float32(s)  # a tie
    quant = single_op("QUANTIZE", [tensor("x", [1, n], "FLOAT32")],
                      [tensor("y", [1, n], "INT8", s, z)])
    _check(quant, x, with_c=seed < 3)
    deq = single_op("DEQUANTIZE", [tensor("x", [1, n], "INT8", s, z)],
                    [tensor("y", [1, n], "FLOAT32")])
    _check(deq, _s8(rng, (1, n)), with_c=seed < 3)
