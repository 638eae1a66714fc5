"""C kernels of the convolution, pooling and fully connected families against the numpy
references of the op registry (tte/ops/*.py), which define the semantics.

Tolerance: float32 data, compared as max|c - ref| <= 1e-5 * max(1, max|ref|).
Both sides round in float32 but sum in different orders (einsum/BLAS/pairwise in numpy,
sequential in C), so they agree to rounding, not bit for bit. Each output is a sum of at
most a few hundred products of values in [-1, 1]; the rounding error of such a sum is a
few ulp of the partial sums, i.e. ~1e-6 of the output magnitude, well inside 1e-5.
The error scale is the largest |ref| of the whole tensor, not each element's own value:
an output that cancels to nearly zero carries the absolute error of its large partial sums,
so an element-wise relative test would be meaningless there. The floor of 1 keeps the
bound absolute (1e-5) when every output is small. Max pooling itself is exact.
"""
from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from targets.host.cbuild import KERNELS_DIR
from tte.ops import get_op
from tte.ops.windows import out_size

from . import ckernels

RTOL = 1e-5
CONV_EXAMPLES = settings(max_examples=300, deadline=None,
                         suppress_health_check=[HealthCheck.too_slow])
EXAMPLES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def k():
    """(ffi, lib) with every kernel in kernels_c/, built once (and cached on disk)."""
    return ckernels.load()


def assert_close(got: np.ndarray, ref: np.ndarray) -> None:
    """max|got - ref| <= RTOL * max(1, max|ref|) (see the module docstring); infinities
    must match exactly."""
    ref = np.asarray(ref)
    assert got.shape == ref.shape, (got.shape, ref.shape)
    inf = np.isinf(ref)
    assert np.array_equal(np.isinf(got), inf) and np.array_equal(got[inf], ref[inf])
    assert not np.isnan(ref).any() and not np.isnan(got).any()
    g, r = got[~inf].astype(np.float64), ref[~inf].astype(np.float64)
    if r.size == 0:
        return
    err, scale = float(np.max(np.abs(g - r))), max(1.0, float(np.max(np.abs(r))))
    assert err <= RTOL * scale, f"max abs error {err:.3g} > {RTOL} * {scale:.3g}"


def rand(rng: np.random.Generator, *shape: int) -> np.ndarray:
    return rng.uniform(-1.0, 1.0, size=shape).astype(np.float32)


# ----------------------------------------------------------------------------- convolution

@st.composite
def conv_cases(draw):
    """Random conv geometry (kernel 1..5, stride 1..3, pads 0..3 each side, dilation 1..3,
    dense / grouped / depthwise, N 1..2) whose padded input fits the dilated kernel."""
    kind = draw(st.sampled_from(["dense", "grouped", "depthwise"]))
    if kind == "dense":
        g, cg, og = 1, draw(st.integers(1, 4)), draw(st.integers(1, 4))
    elif kind == "grouped":
        g, cg, og = draw(st.integers(2, 3)), draw(st.integers(1, 3)), draw(st.integers(1, 3))
    else:  # depthwise, with a channel multiplier of 1 or 2
        g, cg, og = draw(st.integers(1, 4)), 1, draw(st.integers(1, 2))
    kh, kw = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    strides = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    dil = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    pads = [draw(st.integers(0, 3)) for _ in range(4)]
    need_h = max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2])
    need_w = max(1, dil[1] * (kw - 1) + 1 - pads[1] - pads[3])
    h, w = draw(st.integers(need_h, need_h + 6)), draw(st.integers(need_w, need_w + 6))
    n = draw(st.integers(1, 2))
    attrs = {"strides": strides, "pads": pads, "dilations": dil, "group": g}
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    x = rand(rng, n, g * cg, h, w)
    wt = rand(rng, g * og, cg, kh, kw)
    return x, wt, attrs, rng


def c_window(wshape, attrs) -> dict:
    return ckernels.window(wshape[2:], attrs["strides"], attrs["pads"], attrs["dilations"],
                           attrs["group"])


@CONV_EXAMPLES
@given(case=conv_cases(), with_bias=st.booleans())
def test_conv2d_forward(k, case, with_bias):
    ffi, lib = k
    x, w, attrs, rng = case
    b = rand(rng, w.shape[0]) if with_bias else None
    ref = get_op("conv2d").ref(x, w, b, **attrs)[0]
    y = np.full(ref.shape, np.nan, np.float32)  # every element must be written
    lib.tte_conv2d_f32(ckernels.fptr(ffi, x), ckernels.dims4(x.shape), ckernels.fptr(ffi, w),
                       ckernels.fptr(ffi, b) if b is not None else ffi.NULL,
                       ckernels.fptr(ffi, y), ckernels.dims4(y.shape), c_window(w.shape, attrs),
                       ffi.new("tte_split *")[0])
    assert_close(y, ref)


@CONV_EXAMPLES
@given(case=conv_cases())
def test_conv2d_grad_input(k, case):
    ffi, lib = k
    x, w, attrs, rng = case
    yshape = get_op("conv2d").ref(x, w, None, **attrs)[0].shape
    gy = rand(rng, *yshape)
    ref = get_op("conv2d_grad_input").ref(gy, w, input_shape=list(x.shape), **attrs)[0]
    gx = np.full(x.shape, np.nan, np.float32)
    lib.tte_conv2d_grad_input_f32(ckernels.fptr(ffi, gy), ckernels.dims4(gy.shape),
                                  ckernels.fptr(ffi, w), ckernels.fptr(ffi, gx),
                                  ckernels.dims4(x.shape), c_window(w.shape, attrs),
                                  ffi.new("tte_split *")[0])
    assert_close(gx, ref)


@CONV_EXAMPLES
@given(case=conv_cases())
def test_conv2d_grad_weight(k, case):
    ffi, lib = k
    x, w, attrs, rng = case
    yshape = get_op("conv2d").ref(x, w, None, **attrs)[0].shape
    gy = rand(rng, *yshape)
    ref = get_op("conv2d_grad_weight").ref(x, gy, weight_shape=list(w.shape), **attrs)[0]
    gw = np.full(w.shape, np.nan, np.float32)
    lib.tte_conv2d_grad_weight_f32(ckernels.fptr(ffi, x), ckernels.dims4(x.shape),
                                   ckernels.fptr(ffi, gy), ckernels.dims4(gy.shape),
                                   ckernels.fptr(ffi, gw), c_window(w.shape, attrs),
                                   ffi.new("tte_split *")[0])
    assert_close(gw, ref)


sgd_hparams = st.fixed_dictionaries({
    "lr": st.sampled_from([0.01, 0.1, 0.5]),
    "momentum": st.sampled_from([0.0, 0.9]),
    "weight_decay": st.sampled_from([0.0, 1e-3, 0.05]),
    "with_buffer": st.booleans(),
    "fresh_buffer": st.booleans(),  # zero buffer (first step) or state from earlier steps
})


def sgd_reference(param, grad, hp, rng):
    """(momentum buffer or None, expected param, expected buffer) via the registry's
    sgd_update reference."""
    if not hp["with_buffer"]:
        return None, get_op("sgd_update").ref(param, grad, None, lr=hp["lr"], momentum=0.0,
                                              weight_decay=hp["weight_decay"])[0], None
    buf = np.zeros_like(param) if hp["fresh_buffer"] else rand(rng, *param.shape)
    new_p, new_buf = get_op("sgd_update").ref(param, grad, buf.copy(), lr=hp["lr"],
                                              momentum=hp["momentum"],
                                              weight_decay=hp["weight_decay"])
    return buf, new_p, new_buf


def check_sgd(ffi, param, buf, want_p, want_buf, call):
    call(ckernels.fptr(ffi, param), ffi.NULL if buf is None else ckernels.fptr(ffi, buf))
    assert_close(param, want_p)
    if buf is not None:
        assert_close(buf, want_buf)


@CONV_EXAMPLES
@given(case=conv_cases(), hp=sgd_hparams)
def test_conv2d_grad_weight_sgd(k, case, hp):
    ffi, lib = k
    x, w, attrs, rng = case
    yshape = get_op("conv2d").ref(x, w, None, **attrs)[0].shape
    gy = rand(rng, *yshape)
    grad = get_op("conv2d_grad_weight").ref(x, gy, weight_shape=list(w.shape), **attrs)[0]
    buf, want_w, want_buf = sgd_reference(w, grad, hp, rng)
    check_sgd(ffi, w, buf, want_w, want_buf, lambda pw, pb: lib.tte_conv2d_grad_weight_sgd_f32(
        ckernels.fptr(ffi, x), ckernels.dims4(x.shape), ckernels.fptr(ffi, gy),
        ckernels.dims4(gy.shape), pw, pb, c_window(w.shape, attrs), ffi.new("tte_split *")[0],
        hp["lr"], hp["momentum"],
        hp["weight_decay"]))


@EXAMPLES
@given(shape=st.one_of(st.lists(st.integers(1, 6), min_size=4, max_size=4),
                       st.lists(st.integers(1, 40), min_size=2, max_size=2)),
       seed=st.integers(0, 2**32 - 1), hp=sgd_hparams)
def test_channel_sum_and_its_sgd(k, shape, seed, hp):
    ffi, lib = k
    rng = np.random.default_rng(seed)
    gy = rand(rng, *shape)
    ref = get_op("channel_sum").ref(gy)[0]
    gb = np.full(ref.shape, np.nan, np.float32)
    lib.tte_channel_sum_f32(ckernels.fptr(ffi, gy), ckernels.dims4(shape), ckernels.fptr(ffi, gb))
    assert_close(gb, ref)
    bias = rand(rng, shape[1])
    buf, want_b, want_buf = sgd_reference(bias, ref, hp, rng)
    check_sgd(ffi, bias, buf, want_b, want_buf, lambda pb_, pm: lib.tte_channel_sum_sgd_f32(
        ckernels.fptr(ffi, gy), ckernels.dims4(shape), pb_, pm, hp["lr"], hp["momentum"],
        hp["weight_decay"]))


def test_conv2d_known_values(k):
    """A hand-checked case: 3x3 ones kernel over a 3x3 ramp, pad 1, stride 2."""
    ffi, lib = k
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 3, 3)
    w = np.ones((1, 1, 3, 3), np.float32)
    b = np.array([0.5], np.float32)
    y = np.zeros((1, 1, 2, 2), np.float32)
    lib.tte_conv2d_f32(ckernels.fptr(ffi, x), ckernels.dims4(x.shape), ckernels.fptr(ffi, w),
                       ckernels.fptr(ffi, b), ckernels.fptr(ffi, y), ckernels.dims4(y.shape),
                       ckernels.window((3, 3), (2, 2), (1, 1, 1, 1)),
                       ffi.new("tte_split *")[0])
    # windows centred on (0,0), (0,2), (2,0), (2,2)
    assert y.ravel().tolist() == [0 + 1 + 3 + 4 + 0.5, 1 + 2 + 4 + 5 + 0.5,
                                 3 + 4 + 6 + 7 + 0.5, 4 + 5 + 7 + 8 + 0.5]


# ----------------------------------------------------------------------------- pooling

@st.composite
def pool_cases(draw, kind: str):
    """Pool geometry incl. ceil_mode; avg keeps pads < kernel (so no window is all padding,
    which the reference would turn into 0/0) and dilation 1 (AveragePool has none)."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    strides = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
    if kind == "avg":
        dil = [1, 1]
        pads = [draw(st.integers(0, min(3, kk - 1))) for kk in (kh, kw, kh, kw)]
    else:
        dil = [draw(st.integers(1, 3)), draw(st.integers(1, 3))]
        pads = [draw(st.integers(0, 3)) for _ in range(4)]
    need_h = max(1, dil[0] * (kh - 1) + 1 - pads[0] - pads[2])
    need_w = max(1, dil[1] * (kw - 1) + 1 - pads[1] - pads[3])
    h, w = draw(st.integers(need_h, need_h + 7)), draw(st.integers(need_w, need_w + 7))
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    attrs = {"kernel": [kh, kw], "strides": strides, "pads": pads,
             "ceil_mode": int(draw(st.booleans()))}
    if kind == "avg":
        attrs["count_include_pad"] = int(draw(st.booleans()))
    else:
        attrs["dilations"] = dil
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "max" and draw(st.booleans()):  # few distinct values: many ties
        x = rng.integers(-2, 3, size=(n, c, h, w)).astype(np.float32)
    else:
        x = rand(rng, n, c, h, w)
    return x, attrs, rng


def pool_out_shape(xshape, attrs):
    d = attrs.get("dilations", [1, 1])
    return tuple(xshape[:2]) + tuple(
        out_size(xshape[2 + i], attrs["kernel"][i], attrs["strides"][i], attrs["pads"][i],
                 attrs["pads"][i + 2], d[i], bool(attrs["ceil_mode"])) for i in range(2))


def pool_window(attrs) -> dict:
    return ckernels.window(attrs["kernel"], attrs["strides"], attrs["pads"],
                           attrs.get("dilations", [1, 1]))


@EXAMPLES
@given(case=pool_cases("avg"))
def test_avg_pool2d(k, case):
    ffi, lib = k
    x, attrs, rng = case
    ref = get_op("avg_pool2d").ref(x, **attrs)[0]
    assert ref.shape == pool_out_shape(x.shape, attrs)
    y = np.full(ref.shape, np.nan, np.float32)
    lib.tte_avg_pool2d_f32(ckernels.fptr(ffi, x), ckernels.dims4(x.shape), ckernels.fptr(ffi, y),
                           ckernels.dims4(y.shape), pool_window(attrs),
                           attrs["count_include_pad"])
    assert_close(y, ref)


@EXAMPLES
@given(case=pool_cases("avg"))
def test_avg_pool2d_grad(k, case):
    ffi, lib = k
    x, attrs, rng = case
    gy = rand(rng, *pool_out_shape(x.shape, attrs))
    ref = get_op("avg_pool2d_grad").ref(gy, input_shape=list(x.shape), **attrs)[0]
    gx = np.full(x.shape, np.nan, np.float32)
    lib.tte_avg_pool2d_grad_f32(ckernels.fptr(ffi, gy), ckernels.dims4(gy.shape),
                                ckernels.fptr(ffi, gx), ckernels.dims4(x.shape),
                                pool_window(attrs), attrs["count_include_pad"])
    assert_close(gx, ref)


@EXAMPLES
@given(case=pool_cases("max"))
def test_max_pool2d(k, case):
    ffi, lib = k
    x, attrs, rng = case
    ref = get_op("max_pool2d").ref(x, **attrs)[0]
    assert ref.shape == pool_out_shape(x.shape, attrs)
    y = np.full(ref.shape, np.nan, np.float32)
    lib.tte_max_pool2d_f32(ckernels.fptr(ffi, x), ckernels.dims4(x.shape), ckernels.fptr(ffi, y),
                           ckernels.dims4(y.shape), pool_window(attrs))
    assert np.array_equal(y, ref)  # a max is exact; -inf where a window holds no input


@EXAMPLES
@given(case=pool_cases("max"))
def test_max_pool2d_grad(k, case):
    ffi, lib = k
    x, attrs, rng = case
    gy = rand(rng, *pool_out_shape(x.shape, attrs))
    ref = get_op("max_pool2d_grad").ref(x, gy, **attrs)[0]
    gx = np.full(x.shape, np.nan, np.float32)
    lib.tte_max_pool2d_grad_f32(ckernels.fptr(ffi, x), ckernels.dims4(x.shape),
                                ckernels.fptr(ffi, gy), ckernels.dims4(gy.shape),
                                ckernels.fptr(ffi, gx), pool_window(attrs))
    assert_close(gx, ref)


def test_max_pool2d_grad_goes_to_first_maximum(k):
    """Ties: the whole gradient goes to the first maximum in scan order (row, then column)."""
    ffi, lib = k
    x = np.array([[[[1, 3, 3], [3, 0, 3]]]], np.float32)
    gy = np.array([[[[2.0]]]], np.float32)
    gx = np.zeros_like(x)
    lib.tte_max_pool2d_grad_f32(ckernels.fptr(ffi, x), ckernels.dims4(x.shape),
                                ckernels.fptr(ffi, gy), ckernels.dims4(gy.shape),
                                ckernels.fptr(ffi, gx), ckernels.window((2, 3)))
    assert gx.ravel().tolist() == [0, 2, 0, 0, 0, 0]


def test_avg_pool2d_window_all_padding_gives_zero(k):
    """pads >= kernel: a window with no input element averages nothing. Reference and kernel
    both define it as 0 with no gradient."""
    ffi, lib = k
    rng = np.random.default_rng(1)
    x = rand(rng, 1, 2, 4, 4)
    attrs = {"kernel": [2, 2], "strides": [2, 2], "pads": [2, 0, 0, 2], "ceil_mode": 0,
             "count_include_pad": 0}
    ref = get_op("avg_pool2d").ref(x, **attrs)[0]
    y = np.full(ref.shape, np.nan, np.float32)
    lib.tte_avg_pool2d_f32(ckernels.fptr(ffi, x), ckernels.dims4(x.shape), ckernels.fptr(ffi, y),
                           ckernels.dims4(y.shape), pool_window(attrs), 0)
    assert (ref[:, :, 0] == 0).all() and (y[:, :, 0] == 0).all()  # the top row lies in padding
    assert_close(y, ref)
    gy = np.ones_like(y)
    gx = np.full(x.shape, np.nan, np.float32)
    lib.tte_avg_pool2d_grad_f32(ckernels.fptr(ffi, gy), ckernels.dims4(gy.shape),
                                ckernels.fptr(ffi, gx), ckernels.dims4(x.shape),
                                pool_window(attrs), 0)
    assert_close(gx, get_op("avg_pool2d_grad").ref(gy, input_shape=list(x.shape), **attrs)[0])


@settings(max_examples=100, deadline=None)
@given(case=pool_cases("max"), cip=st.booleans())
def test_avg_pool2d_dilated_is_adjoint(k, case, cip):
    """The C kernels also take dilated average windows (the registry's AveragePool has no
    dilations, so there is no reference): forward and gradient must be adjoint,
    <avg(x), gy> == <x, avg_grad(gy)>, and the forward must match a direct loop."""
    ffi, lib = k
    x, attrs, rng = case
    kh, kw = attrs["kernel"]
    (sh, sw), (dh, dw), (pt, pl, pb, pr) = attrs["strides"], attrs["dilations"], attrs["pads"]
    yshape = pool_out_shape(x.shape, attrs)
    win = pool_window(attrs)
    y = np.full(yshape, np.nan, np.float32)
    lib.tte_avg_pool2d_f32(ckernels.fptr(ffi, x), ckernels.dims4(x.shape), ckernels.fptr(ffi, y),
                           ckernels.dims4(yshape), win, int(cip))
    want = np.zeros(yshape)
    h, w = x.shape[2:]
    for i in range(yshape[2]):
        for j in range(yshape[3]):
            rows = [i * sh - pt + u * dh for u in range(kh)]
            cols = [j * sw - pl + v * dw for v in range(kw)]
            lo_h, hi_h = (-pt, h + pb) if cip else (0, h)
            lo_w, hi_w = (-pl, w + pr) if cip else (0, w)
            cnt = sum(lo_h <= r < hi_h for r in rows) * sum(lo_w <= c < hi_w for c in cols)
            inside = [(r, c) for r in rows for c in cols if 0 <= r < h and 0 <= c < w]
            total = sum(x[:, :, r, c].astype(np.float64) for r, c in inside) if inside else 0
            want[:, :, i, j] = total / cnt if cnt else 0.0
    assert_close(y, want)
    gy = rand(rng, *yshape)
    gx = np.full(x.shape, np.nan, np.float32)
    lib.tte_avg_pool2d_grad_f32(ckernels.fptr(ffi, gy), ckernels.dims4(yshape),
                                ckernels.fptr(ffi, gx), ckernels.dims4(x.shape), win, int(cip))
    lhs = float(np.dot(y.astype(np.float64).ravel(), gy.ravel()))
    rhs = float(np.dot(x.astype(np.float64).ravel(), gx.ravel()))
    assert abs(lhs - rhs) <= RTOL * max(1.0, abs(lhs), float(np.abs(y).sum()))


@EXAMPLES
@given(shape=st.lists(st.integers(1, 7), min_size=4, max_size=4),
       seed=st.integers(0, 2**32 - 1))
def test_global_avg_pool_and_grad(k, shape, seed):
    ffi, lib = k
    rng = np.random.default_rng(seed)
    x = rand(rng, *shape)
    ref = get_op("global_avg_pool").ref(x)[0]
    y = np.full(ref.shape, np.nan, np.float32)
    lib.tte_global_avg_pool_f32(ckernels.fptr(ffi, x), ckernels.dims4(shape),
                                ckernels.fptr(ffi, y))
    assert_close(y, ref)
    gy = rand(rng, *ref.shape)
    # the VJP of global_avg_pool is unreduce with scale 1/(h*w) (tte/ops/pool.py _gap_vjp)
    gref = get_op("unreduce").ref(gy, shape=list(shape), axes=[2, 3], keepdims=1,
                                  scale=1.0 / (shape[2] * shape[3]))[0]
    gx = np.full(x.shape, np.nan, np.float32)
    lib.tte_global_avg_pool_grad_f32(ckernels.fptr(ffi, gy), ckernels.fptr(ffi, gx),
                                     ckernels.dims4(shape))
    assert_close(gx, gref)


# ----------------------------------------------------------------------------- linear

linear_dims = st.tuples(st.integers(1, 6), st.integers(1, 40), st.integers(1, 20),
                        st.integers(0, 2**32 - 1))


@EXAMPLES
@given(dims=linear_dims, with_bias=st.booleans())
def test_linear_forward(k, dims, with_bias):
    ffi, lib = k
    n, kk, m, seed = dims
    rng = np.random.default_rng(seed)
    x, w = rand(rng, n, kk), rand(rng, m, kk)
    b = rand(rng, m) if with_bias else None
    ref = get_op("linear").ref(x, w, b)[0]
    y = np.full((n, m), np.nan, np.float32)
    lib.tte_linear_f32(ckernels.fptr(ffi, x), n, kk, ckernels.fptr(ffi, w),
                       ckernels.fptr(ffi, b) if b is not None else ffi.NULL,
                       ckernels.fptr(ffi, y), m)
    assert_close(y, ref)


@EXAMPLES
@given(dims=linear_dims)
def test_linear_grad_input_and_weight(k, dims):
    ffi, lib = k
    n, kk, m, seed = dims
    rng = np.random.default_rng(seed)
    x, w, gy = rand(rng, n, kk), rand(rng, m, kk), rand(rng, n, m)
    gx = np.full((n, kk), np.nan, np.float32)
    lib.tte_linear_grad_input_f32(ckernels.fptr(ffi, gy), n, m, ckernels.fptr(ffi, w),
                                  ckernels.fptr(ffi, gx), kk)
    assert_close(gx, get_op("linear_grad_input").ref(gy, w)[0])
    gw = np.full((m, kk), np.nan, np.float32)
    lib.tte_linear_grad_weight_f32(ckernels.fptr(ffi, x), n, kk, ckernels.fptr(ffi, gy), m,
                                   ckernels.fptr(ffi, gw))
    assert_close(gw, get_op("linear_grad_weight").ref(x, gy)[0])


@EXAMPLES
@given(dims=linear_dims, hp=sgd_hparams)
def test_linear_grad_weight_sgd(k, dims, hp):
    ffi, lib = k
    n, kk, m, seed = dims
    rng = np.random.default_rng(seed)
    x, w, gy = rand(rng, n, kk), rand(rng, m, kk), rand(rng, n, m)
    grad = get_op("linear_grad_weight").ref(x, gy)[0]
    buf, want_w, want_buf = sgd_reference(w, grad, hp, rng)
    check_sgd(ffi, w, buf, want_w, want_buf, lambda pw, pb: lib.tte_linear_grad_weight_sgd_f32(
        ckernels.fptr(ffi, x), n, kk, ckernels.fptr(ffi, gy), m, pw, pb, hp["lr"],
        hp["momentum"], hp["weight_decay"]))


@EXAMPLES
@given(dims=linear_dims)
def test_matmul(k, dims):
    ffi, lib = k
    m, kk, n, seed = dims
    rng = np.random.default_rng(seed)
    a, b = rand(rng, m, kk), rand(rng, kk, n)
    y = np.full((m, n), np.nan, np.float32)
    lib.tte_matmul_f32(ckernels.fptr(ffi, a), ckernels.fptr(ffi, b), ckernels.fptr(ffi, y),
                       m, kk, n)
    assert_close(y, get_op("matmul").ref(a, b)[0])


def test_fused_sgd_runs_several_steps_like_separate_ops(k):
    """Three momentum steps of the fused linear kernel == grad kernel + sgd_update ref,
    the buffer starting at zero as PyTorch's does."""
    ffi, lib = k
    rng = np.random.default_rng(7)
    x, gy = rand(rng, 3, 5), rand(rng, 3, 4)
    w = rand(rng, 4, 5)
    buf = np.zeros_like(w)
    want_w, want_buf = w.copy(), buf.copy()
    for _ in range(3):
        lib.tte_linear_grad_weight_sgd_f32(ckernels.fptr(ffi, x), 3, 5, ckernels.fptr(ffi, gy), 4,
                                           ckernels.fptr(ffi, w), ckernels.fptr(ffi, buf),
                                           0.1, 0.9, 0.01)
        grad = get_op("linear_grad_weight").ref(x, gy)[0]
        want_w, want_buf = get_op("sgd_update").ref(want_w, grad, want_buf, lr=0.1, momentum=0.9,
                                                    weight_decay=0.01)
    assert_close(w, want_w)
    assert_close(buf, want_buf)


# ----------------------------------------------------------------------------- build hygiene

C_SOURCES = sorted(KERNELS_DIR.glob("*.c"))


@pytest.mark.parametrize("src", C_SOURCES, ids=[p.name for p in C_SOURCES])
def test_kernel_source_compiles_strict_c99(src: Path):
    run = subprocess.run(["gcc", "-std=c99", "-Wall", "-Wextra", "-Werror", "-fsyntax-only",
                          "-I", str(KERNELS_DIR), str(src)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr


def test_every_declared_kernel_is_built(k):
    """ckernels picks up every header: each tte_* function declared is callable."""
    ffi, lib = k
    declared = set(re.findall(r"\b(tte_\w+)\s*\(", ckernels.cdef_text()))
    assert {"tte_conv2d_f32", "tte_max_pool2d_grad_f32", "tte_matmul_f32"} <= declared
    missing = [name for name in sorted(declared) if not hasattr(lib, name)]
    assert not missing
