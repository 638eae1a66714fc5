"""The numpy references of the int8 training path (tte/quant/ordered.py and the ops built on
it) against the C kernels, bit for bit: same products, same accumulation order, same
rounding. Values span many magnitudes so that any reordering of a sum shows."""
from __future__ import annotations

import numpy as np
import pytest

from . import ckernels
from tte.ops.registry import get_op
from tte.ops.slice_channels import positions
from tte.quant import ordered

# n, c, h, w, o, group, kernel, stride, pads, dilation
CONVS = [
    (2, 8, 5, 5, 12, 1, (1, 1), (1, 1), (0, 0, 0, 0), (1, 1)),
    (1, 6, 7, 7, 10, 1, (1, 1), (2, 2), (0, 0, 0, 0), (1, 1)),
    (2, 4, 6, 6, 6, 1, (3, 3), (1, 1), (1, 1, 1, 1), (1, 1)),
    (1, 6, 6, 5, 9, 3, (3, 2), (2, 1), (1, 0, 1, 1), (1, 1)),
    (2, 8, 9, 9, 8, 8, (5, 5), (2, 2), (2, 2, 2, 2), (1, 1)),
    (1, 5, 8, 8, 5, 5, (3, 3), (1, 1), (2, 2, 2, 2), (2, 2)),
    (1, 4, 2, 2, 4, 4, (7, 7), (2, 2), (3, 3, 3, 3), (1, 1)),
]


@pytest.fixture(scope="module")
def k():
    return ckernels.load()


def _p(ffi, a, ctype):
    return ffi.cast(f"{ctype} *", a.ctypes.data) if a is not None else ffi.NULL


def _wide(rng, shape, zeros=0.0):
    """float32 over many magnitudes, a fraction of them 0 (masked-out gradients)."""
    v = rng.standard_normal(shape) * 10.0 ** rng.uniform(-4, 2, shape)
    return np.where(rng.random(shape) < zeros, 0, v).astype(np.float32)


def _geo(case):
    n, c, h, w, o, group, kern, stride, pads, dil = case
    return {"strides": list(stride), "pads": list(pads), "dilations": list(dil), "group": group}


def _out_hw(case):
    n, c, h, w, o, group, kern, stride, pads, dil = case
    return tuple((size + pads[i] + pads[i + 2] - dil[i] * (kern[i] - 1) - 1) // stride[i] + 1
                 for i, size in enumerate((h, w)))


def _split(ffi, w, axis, channels, keep):
    """A tte_split of w training `channels` along axis (kept alive in `keep`)."""
    rest = [c for c in range(w.shape[axis]) if c not in channels]
    trained = np.ascontiguousarray(np.take(w, channels, axis=axis))
    frozen = np.ascontiguousarray(np.take(w, rest, axis=axis))
    pos = positions(channels, w.shape[axis]).astype(np.int32)
    keep += [trained, frozen, pos]
    return trained, {"frozen": _p(ffi, frozen, "int8_t"), "pos": _p(ffi, pos, "int32_t"),
                     "axis": axis, "count": len(channels)}


@pytest.mark.parametrize("shape", [(7,), (300, 1), (5, 3, 2), (64, 33)])
def test_seq_sum_is_left_to_right(shape):
    rng = np.random.default_rng(1)
    t = _wide(rng, shape)
    want = np.zeros(shape[1:], np.float32)
    for row in t:
        want = want + row
    np.testing.assert_array_equal(ordered.seq_sum(t), want)
    np.testing.assert_array_equal(ordered.seq_sum(np.asfortranarray(t)), want)
    if shape[0] >= 64:  # numpy's sum along a contiguous axis is pairwise: not C's order
        assert not np.array_equal(np.ascontiguousarray(np.moveaxis(t, 0, -1)).sum(-1), want)


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("split", [False, True])
def test_conv2d_s8_grad_input(k, case, split):
    ffi, lib = k
    rng = np.random.default_rng(hash(case) % 2**32)
    n, c, h, wd, o, group, kern, *_ = case
    gy = _wide(rng, (n, o) + _out_hw(case), zeros=0.3)
    w = rng.integers(-127, 128, (o, c // group) + kern).astype(np.int8)
    scales = (10.0 ** rng.uniform(-3, -1, o)).astype(np.float32)
    keep, s = [], ffi.new("tte_split *")[0]
    wc = w
    if split:  # depthwise: output channels; else input channels (group 1 only)
        axis = 0 if group > 1 else 1
        if axis == 1 and group != 1:
            pytest.skip("split input channels only for group 1")
        chans = sorted(rng.choice(w.shape[axis], max(1, w.shape[axis] // 2), replace=False))
        wc, s = _split(ffi, w, axis, [int(i) for i in chans], keep)
    gx = np.empty((n, c, h, wd), np.float32)
    lib.tte_conv2d_s8_grad_input(ckernels.fptr(ffi, gy), ckernels.dims4(gy.shape),
                                 _p(ffi, wc, "int8_t"), ckernels.fptr(ffi, scales),
                                 ckernels.fptr(ffi, gx), ckernels.dims4(gx.shape),
                                 ckernels.window(kern, *case[7:10], group=group), s)
    ref = get_op("conv2d_s8_grad_input").ref(gy, w, input_shape=list(gx.shape),
                                             w_scales=list(scales), **_geo(case))[0]
    np.testing.assert_array_equal(gx, ref)


def _grad_weight_problem(rng, case, split):
    n, c, h, wd, o, group, kern, *_ = case
    x = rng.integers(-128, 128, (n, c, h, wd)).astype(np.int8)
    gy = _wide(rng, (n, o) + _out_hw(case), zeros=0.3)
    scales = (10.0 ** rng.uniform(-4, -2, o)).astype(np.float32)
    wshape = (o, c // group) + kern
    attrs = {"weight_shape": list(wshape), "in_zero": int(rng.integers(-10, 10)),
             "scales": [float(v) for v in scales], "train_axis": 0, "train_channels": None,
             **_geo(case)}
    if not split:
        return x, gy, wshape, attrs, None
    axis = 0 if group > 1 else 1
    chans = [int(i) for i in sorted(rng.choice(wshape[axis], max(1, wshape[axis] // 2),
                                               replace=False))]
    return x, gy, wshape, {**attrs, "train_axis": axis, "train_channels": chans}, chans


@pytest.mark.parametrize("case", CONVS)
@pytest.mark.parametrize("split", [False, True])
def test_conv2d_s8_grad_weight_and_its_update(k, case, split):
    ffi, lib = k
    rng = np.random.default_rng(hash(case) % 2**32 + split)
    if split and case[5] not in (1, case[1]):
        pytest.skip("a split weight is group 1 or depthwise")
    x, gy, wshape, attrs, chans = _grad_weight_problem(rng, case, split)
    keep, s = [], ffi.new("tte_split *")[0]
    w = rng.integers(-127, 128, wshape).astype(np.int8)
    wc, xs = w, x
    if split:
        wc, s = _split(ffi, w, attrs["train_axis"], chans, keep)
        xs = np.ascontiguousarray(x[:, chans])
    win = ckernels.window(wshape[2:], *case[7:10], group=case[5])
    gw = np.empty(wc.shape, np.float32)
    scales = np.asarray(attrs["scales"], np.float32)
    lib.tte_conv2d_s8_grad_weight(_p(ffi, xs, "int8_t"), ckernels.dims4(xs.shape),
                                  attrs["in_zero"], ckernels.fptr(ffi, gy),
                                  ckernels.dims4(gy.shape), ckernels.fptr(ffi, gw), win,
                                  ckernels.fptr(ffi, scales), s)
    ref = get_op("conv2d_s8_grad_weight").ref(xs, gy, **attrs)[0]
    np.testing.assert_array_equal(gw, ref)
    # the fused update: the same gradient, then p -= rint(lr * g * factor) in place
    factors = (10.0 ** rng.uniform(2, 4, wshape[0])).astype(np.float32)
    q = {"lr": 0.37, "factors": [float(v) for v in factors], "lo": -127, "hi": 127}
    want = get_op("conv2d_s8_grad_weight_sgd_q").ref(xs, gy, w.copy(), **attrs, **q)[0]
    got = wc.copy()
    lib.tte_conv2d_s8_grad_weight_sgd(_p(ffi, xs, "int8_t"), ckernels.dims4(xs.shape),
                                      attrs["in_zero"], ckernels.fptr(ffi, gy),
                                      ckernels.dims4(gy.shape), _p(ffi, got, "int8_t"),
                                      ffi.NULL, win, ckernels.fptr(ffi, scales), s, q["lr"],
                                      ckernels.fptr(ffi, factors), -127, 127)
    want_c = np.take(want, chans, axis=attrs["train_axis"]) if split else want
    np.testing.assert_array_equal(got, want_c)


@pytest.mark.parametrize("shape", [(1, 10, 1, 1), (2, 7, 9, 11), (3, 4, 32, 32)])
def test_channel_sum_scaled(k, shape):
    ffi, lib = k
    rng = np.random.default_rng(sum(shape))
    gy = _wide(rng, shape, zeros=0.3)
    scales = (10.0 ** rng.uniform(-4, -2, shape[1])).astype(np.float32)
    out = np.empty(shape[1], np.float32)
    lib.tte_channel_sum_scaled_f32(ckernels.fptr(ffi, gy), ckernels.dims4(shape),
                                   ckernels.fptr(ffi, scales), ckernels.fptr(ffi, out))
    ref = get_op("channel_sum_scaled").ref(gy, scales=list(scales))[0]
    np.testing.assert_array_equal(out, ref)


@pytest.mark.parametrize("n, kk, m", [(1, 160, 10), (3, 37, 5), (5, 300, 2)])
def test_linear_forward_and_gradients(k, n, kk, m):
    ffi, lib = k
    rng = np.random.default_rng(n * kk * m)
    x, w, b = _wide(rng, (n, kk)), _wide(rng, (m, kk)), _wide(rng, (m,))
    gy = _wide(rng, (n, m))
    f = ckernels.fptr
    y, gx, gw = (np.empty(s, np.float32) for s in ((n, m), (n, kk), (m, kk)))
    lib.tte_linear_f32(f(ffi, x), n, kk, f(ffi, w), f(ffi, b), f(ffi, y), m)
    lib.tte_linear_grad_input_f32(f(ffi, gy), n, m, f(ffi, w), f(ffi, gx), kk)
    lib.tte_linear_grad_weight_f32(f(ffi, x), n, kk, f(ffi, gy), m, f(ffi, gw))
    np.testing.assert_array_equal(y, get_op("linear").ref(x, w, b)[0])
    np.testing.assert_array_equal(gx, get_op("linear_grad_input").ref(gy, w)[0])
    np.testing.assert_array_equal(gw, get_op("linear_grad_weight").ref(x, gy)[0])
    w2 = w.copy()
    lib.tte_linear_grad_weight_sgd_f32(f(ffi, x), n, kk, f(ffi, gy), m, f(ffi, w2), ffi.NULL,
                                       0.01, 0.0, 0.0)
    want = get_op("linear_grad_weight_sgd").ref(x, gy, w.copy(), lr=0.01, momentum=0.0,
                                                weight_decay=0.0, train_axis=0,
                                                train_channels=None)[0]
    np.testing.assert_array_equal(w2, want)


@pytest.mark.parametrize("kern, stride, pads, cip, ceil", [
    ((3, 3), (1, 1), (1, 1, 1, 1), 0, 0), ((3, 3), (1, 1), (1, 1, 1, 1), 1, 0),
    ((3, 2), (2, 1), (1, 0, 1, 1), 0, 1), ((4, 4), (4, 4), (0, 0, 0, 0), 0, 0)])
def test_avg_pool2d_grad(k, kern, stride, pads, cip, ceil):
    ffi, lib = k
    attrs = {"kernel": list(kern), "strides": list(stride), "pads": list(pads),
             "count_include_pad": cip, "ceil_mode": ceil}
    xshape = (2, 3, 7, 8)
    rng = np.random.default_rng(3)
    yshape = get_op("avg_pool2d").ref(np.zeros(xshape, np.float32), **attrs)[0].shape
    gy = _wide(rng, yshape)
    gx = np.empty(xshape, np.float32)
    lib.tte_avg_pool2d_grad_f32(ckernels.fptr(ffi, gy), ckernels.dims4(yshape),
                                ckernels.fptr(ffi, gx), ckernels.dims4(xshape),
                                ckernels.window(kern, stride, pads), cip)
    ref = get_op("avg_pool2d_grad").ref(gy, input_shape=list(xshape), **attrs)[0]
    np.testing.assert_array_equal(gx, ref)


@pytest.mark.parametrize("n, classes, spread", [(1, 10, 3.0), (4, 37, 30.0), (3, 1000, 8.0)])
def test_softmax_cross_entropy(k, n, classes, spread):
    ffi, lib = k
    rng = np.random.default_rng(classes)
    logits = (rng.standard_normal((n, classes)) * spread).astype(np.float32)
    labels = rng.integers(0, classes, n).astype(np.int32)
    lab = ffi.cast("int32_t *", labels.ctypes.data)
    loss, g = ffi.new("float *"), np.empty_like(logits)
    assert lib.tte_softmax_cross_entropy_f32(ckernels.fptr(ffi, logits), lab, n, classes,
                                             loss) == lib.TTE_OK
    assert lib.tte_softmax_cross_entropy_grad_f32(ckernels.fptr(ffi, logits), lab, n, classes,
                                                  ckernels.fptr(ffi, g)) == lib.TTE_OK
    assert np.float32(loss[0]) == get_op("softmax_cross_entropy").ref(logits, labels)[0]
    np.testing.assert_array_equal(g, get_op("softmax_cross_entropy_grad").ref(logits,
                                                                               labels)[0])


def test_dequantize(k):
    ffi, lib = k
    x = np.arange(-128, 128, dtype=np.int8)
    for scale, zero in [(0.14714307598039217, -1), (0.125, 0), (1 / 3, 17)]:
        y = np.empty(x.shape, np.float32)
        lib.tte_dequantize_s8(_p(ffi, x, "int8_t"), ckernels.fptr(ffi, y), x.size, scale, zero)
        np.testing.assert_array_equal(y, get_op("dequantize").ref(x, scale=scale, zero=zero)[0])
