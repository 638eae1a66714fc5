"""C kernels of elementwise.h, reduce.h, loss.h, optim.h and shape.h against the registry's
numpy references (tte.ops.get_op(name).ref), in float32, over hypothesis-drawn shapes.

Tolerances (eps = float32 machine epsilon 2**-23, u = eps / 2 the unit roundoff):
* Ops whose C code does the reference's arithmetic in the same order (+ - * /, neg, scale,
  relu/clip/hard_* and every activation gradient, mse_grad, sgd, data movement) must agree to
  within 1 ulp (in practice bit-for-bit; 1 ulp leaves room for a compiler contracting a*b+c).
* exp/tanh/log-based values: rtol 1e-5 (libm and numpy's float32 transcendentals are each
  within a few ulp, 1e-5 is ~80 ulp).
* Sums: recursive fp32 summation of k terms has |error| <= (k - 1) * u * sum|terms| (Higham,
  Accuracy and Stability, 4.2); numpy's pairwise summation is within the same bound. The C
  result and the reference can each be off by that much, so we allow
  2 * k * eps * sum|terms| per output: relative to the magnitude of the terms, not of the
  result, because a sum that cancels to ~0 has no relative accuracy in either.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.kernels.ckernels import dims4, fptr, load
from tte.errors import TTEError
from tte.ops import get_op

EPS = float(np.finfo(np.float32).eps)
EXAMPLES = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def k():
    """(ffi, lib) with every kernel, built once (and cached on disk by content hash)."""
    return load()


def ref(name: str, *args, **attrs) -> np.ndarray:
    return get_op(name).ref(*args, **attrs)[0]


def i32(ffi, values) -> object:
    return ffi.new("int32_t[]", [int(v) for v in values] or [0])


def f32(shape, lo=-100.0, hi=100.0, **kw):
    return hnp.arrays(np.float32, shape, elements=st.floats(lo, hi, width=32,
                                                            allow_subnormal=False, **kw))


def assert_ulp(got: np.ndarray, want: np.ndarray, maxulp: int = 1) -> None:
    assert got.shape == want.shape and got.dtype == want.dtype == np.float32
    np.testing.assert_array_max_ulp(got, want, maxulp=maxulp)


def assert_sum_close(got, want, abs_terms, count) -> None:
    """Sums of `count` terms whose absolute values sum to abs_terms (see module docstring)."""
    tol = 2 * max(count, 1) * EPS * np.asarray(abs_terms, np.float64) + 1e-30
    err = np.abs(np.asarray(got, np.float64) - np.asarray(want, np.float64))
    assert np.all(err <= tol), f"max err {err.max()} vs tol {np.max(tol)}"


def contiguous_strides(shape) -> list[int]:
    out, s = [], 1
    for d in reversed(shape):
        out.append(s)
        s *= d
    return out[::-1]


# ---- binary ops ----------------------------------------------------------------------------

BINARY = {"add": "tte_add_f32", "sub": "tte_sub_f32", "mul": "tte_mul_f32", "div": "tte_div_f32"}


def _divisor_safe(name, b):
    return np.where(np.abs(b) < 1e-3, np.float32(1.5), b) if name == "div" else b


@EXAMPLES
@given(name=st.sampled_from(sorted(BINARY)), shape=hnp.array_shapes(min_dims=0, max_dims=4),
       data=st.data())
def test_binary_same_shape(k, name, shape, data):
    ffi, lib = k
    a = data.draw(f32(shape, -1e4, 1e4))
    b = _divisor_safe(name, data.draw(f32(shape, -1e4, 1e4)))
    y = np.empty_like(a)
    getattr(lib, BINARY[name])(fptr(ffi, a), fptr(ffi, b), fptr(ffi, y), a.size)
    want = ref(name, a, b)
    assert_ulp(y, want)
    getattr(lib, BINARY[name])(fptr(ffi, a), fptr(ffi, b), fptr(ffi, a), a.size)  # in place
    assert_ulp(a, want)


def bcast_strides(shape, out_shape) -> list[int]:
    """Element strides of a contiguous operand for each output axis (0 where broadcast)."""
    lead = len(out_shape) - len(shape)
    own = contiguous_strides(shape)
    return [0 if d < lead or shape[d - lead] == 1 else own[d - lead]
            for d in range(len(out_shape))]


@EXAMPLES
@given(name=st.sampled_from(sorted(BINARY)),
       shapes=hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=6,
                                                max_side=4),
       data=st.data())
def test_binary_broadcast(k, name, shapes, data):
    ffi, lib = k
    (sa, sb), out = shapes.input_shapes, shapes.result_shape
    a = data.draw(f32(sa, -1e4, 1e4))
    b = _divisor_safe(name, data.draw(f32(sb, -1e4, 1e4)))
    y = np.full(out, np.nan, np.float32)
    op = getattr(lib, f"TTE_OP_{name.upper()}")
    lib.tte_binary_bcast_f32(op, fptr(ffi, a), i32(ffi, bcast_strides(sa, out)), fptr(ffi, b),
                             i32(ffi, bcast_strides(sb, out)), fptr(ffi, y), i32(ffi, out),
                             len(out))
    assert_ulp(y, ref(name, a, b))


@EXAMPLES
@given(big=hnp.array_shapes(min_dims=0, max_dims=6, max_side=4), data=st.data())
def test_sum_to(k, big, data):
    ffi, lib = k
    keep = data.draw(st.integers(0, len(big)))
    small = [1 if data.draw(st.booleans()) else d for d in big[len(big) - keep:]]
    x = data.draw(f32(big))
    lead = len(big) - len(small)
    own = contiguous_strides(small)
    strides = [0 if d < lead or small[d - lead] == 1 else own[d - lead] for d in range(len(big))]
    y = np.full(small, np.nan, np.float32)
    lib.tte_sum_to_f32(fptr(ffi, x), i32(ffi, big), fptr(ffi, y), i32(ffi, strides), len(big))
    want = ref("sum_to", x, shape=small)
    count = x.size // max(y.size, 1)
    abs_terms = ref("sum_to", np.abs(x).astype(np.float64), shape=small)
    assert y.shape == want.shape
    assert_sum_close(y, want, abs_terms, count)


@EXAMPLES
@given(x=f32(hnp.array_shapes(min_dims=1, max_dims=3)), s=st.floats(-10, 10, width=32))
def test_neg_and_scale(k, x, s):
    ffi, lib = k
    y = np.empty_like(x)
    lib.tte_neg_f32(fptr(ffi, x), fptr(ffi, y), x.size)
    assert_ulp(y, ref("neg", x))
    lib.tte_scale_f32(fptr(ffi, x), s, fptr(ffi, y), x.size)
    assert_ulp(y, (np.float32(s) * x).astype(np.float32))


# ---- activations ---------------------------------------------------------------------------

# Inputs mix ordinary floats with the points where the activations have kinks.
KINKS = [0.0, -0.0, 3.0, -3.0, 6.0, -6.0, 2.5, -2.5, 1e-8, -1e-8]


def act_inputs(shape, lo=-30.0, hi=30.0):
    return hnp.arrays(np.float32, shape, elements=st.one_of(
        st.sampled_from(KINKS), st.floats(lo, hi, width=32, allow_subnormal=False)))


@st.composite
def act_case(draw):
    name = draw(st.sampled_from(["relu", "clip", "sigmoid", "tanh", "hard_sigmoid",
                                 "hard_swish"]))
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=3, max_side=8))
    x = draw(act_inputs(shape))
    attrs: dict = {}
    if name == "clip":
        lo = draw(st.sampled_from([-np.inf, 0.0, -1.0, -6.0, 2.0]))  # 2 > 1: numpy gives hi
        hi = draw(st.sampled_from([np.inf, 6.0, 1.0]))
        attrs = {"min": lo, "max": hi}
        flat = x.reshape(-1)  # let the bounds themselves occur (gradient 0 there)
        for j, bound in enumerate((lo, hi)[: flat.size]):
            if np.isfinite(bound):
                flat[j] = bound
    elif name == "hard_sigmoid":
        attrs = {"alpha": draw(st.sampled_from([0.2, 1 / 6, 0.5])),
                 "beta": draw(st.sampled_from([0.5, 0.0]))}
    return name, x, attrs


def call_forward(lib, ffi, name, x, y, attrs):
    fn = getattr(lib, f"tte_{name}_f32")
    if name == "clip":
        fn(fptr(ffi, x), fptr(ffi, y), x.size, attrs["min"], attrs["max"])
    elif name == "hard_sigmoid":
        fn(fptr(ffi, x), fptr(ffi, y), x.size, attrs["alpha"], attrs["beta"])
    else:
        fn(fptr(ffi, x), fptr(ffi, y), x.size)


def check_forward(name, got, x, attrs):
    want = ref(name, x, **attrs)
    if name in ("sigmoid", "tanh"):
        # The reference sigmoid is 0.5 * (tanh(x/2) + 1): for x << 0 the "+ 1" cancels and
        # leaves an absolute error of up to ~3e-8 (relative error 6e-4 at x = -10, 7% at
        # -15, >100% near -18; exactly 0 below x = -20 where tanh rounds to -1). The kernel
        # keeps full relative precision, so it is compared to the reference with atol = 2u
        # and to float64 with rtol alone.
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=2 * EPS / 2)
        x64 = x.astype(np.float64)
        exact = 1 / (1 + np.exp(-x64)) if name == "sigmoid" else np.tanh(x64)
        np.testing.assert_allclose(got, exact, rtol=1e-5, atol=1e-37)
    else:
        assert_ulp(got, want)


@EXAMPLES
@given(case=act_case())
def test_activation_forward_and_in_place(k, case):
    ffi, lib = k
    name, x, attrs = case
    y = np.empty_like(x)
    call_forward(lib, ffi, name, x, y, attrs)
    check_forward(name, y, x, attrs)
    inplace = x.copy()
    call_forward(lib, ffi, name, inplace, inplace, attrs)  # y == x is allowed
    np.testing.assert_array_equal(inplace, y)


@EXAMPLES
@given(case=act_case(), data=st.data())
def test_activation_grad(k, case, data):
    """Each gradient from the tensor the registry saves (output for relu/sigmoid/tanh,
    input for the rest), against the registry's *_grad reference; also gx == gy."""
    ffi, lib = k
    name, x, attrs = case
    gy = data.draw(f32(x.shape, -10, 10))
    saved = x
    if name in ("relu", "sigmoid", "tanh"):
        saved = ref(name, x, **attrs)
    gx = np.empty_like(gy)
    fn = getattr(lib, f"tte_{name}_grad_f32")
    extra = [attrs[a] for a in ("min", "max", "alpha", "beta") if a in attrs]
    fn(fptr(ffi, saved), fptr(ffi, gy), fptr(ffi, gx), x.size, *extra)
    want = ref(f"{name}_grad", saved, gy, **attrs)
    assert_ulp(gx, want)
    fn(fptr(ffi, saved), fptr(ffi, gy), fptr(ffi, gy), x.size, *extra)
    np.testing.assert_array_equal(gy, gx)


# ---- batch-norm ----------------------------------------------------------------------------

@EXAMPLES
@given(shape=st.one_of(hnp.array_shapes(min_dims=2, max_dims=2, max_side=6),
                       hnp.array_shapes(min_dims=4, max_dims=4, max_side=5)),
       eps=st.sampled_from([1e-5, 1e-3]), data=st.data())
def test_batch_norm(k, shape, eps, data):
    ffi, lib = k
    c = shape[1]
    x = data.draw(f32(shape, -10, 10))
    gy = data.draw(f32(shape, -10, 10))
    scale, bias, mean = (data.draw(f32((c,), -3, 3)) for _ in range(3))
    var = data.draw(f32((c,), 0, 5))
    xd = dims4(shape)
    y = np.empty_like(x)
    lib.tte_batch_norm_f32(fptr(ffi, x), xd, fptr(ffi, scale), fptr(ffi, bias), fptr(ffi, mean),
                           fptr(ffi, var), eps, fptr(ffi, y))
    want = ref("batch_norm", x, scale, bias, mean, var, epsilon=eps)
    # Same formula x * inv + (bias - mean * inv) as the reference; sqrt and the division in
    # inv may round differently: a few ulp of inv, times |x * inv| + |mean * inv|.
    inv = np.abs(scale / np.sqrt(var + np.float32(eps))).reshape((1, -1) + (1,) * (x.ndim - 2))
    mag = (np.abs(x) + np.abs(mean).reshape(inv.shape)) * inv + np.abs(bias).reshape(inv.shape)
    assert np.all(np.abs(y.astype(np.float64) - want) <= 8 * EPS * mag + 1e-30)
    gx = np.empty_like(gy)
    lib.tte_batch_norm_grad_input_f32(fptr(ffi, gy), xd, fptr(ffi, scale), fptr(ffi, var), eps,
                                      fptr(ffi, gx))
    np.testing.assert_allclose(gx, ref("batch_norm_grad_input", gy, scale, var, epsilon=eps),
                               rtol=4 * EPS, atol=1e-30)
    gs = np.empty(c, np.float32)
    lib.tte_batch_norm_grad_scale_f32(fptr(ffi, x), fptr(ffi, gy), xd, fptr(ffi, mean),
                                      fptr(ffi, var), eps, fptr(ffi, gs))
    want_gs = ref("batch_norm_grad_scale", x, gy, mean, var, epsilon=eps)
    bshape = (1, -1) + (1,) * (x.ndim - 2)
    terms = np.abs((x - mean.reshape(bshape)) * gy).astype(np.float64) \
        / np.sqrt(var.astype(np.float64) + eps).reshape(bshape)
    abs_terms = terms.sum(axis=tuple(i for i in range(x.ndim) if i != 1))
    # + 2 per term: the per-element subtraction, product and division round too
    assert_sum_close(gs, want_gs, abs_terms, x.size // c + 2)


# ---- softmax, reductions -------------------------------------------------------------------

def split(shape, a0, a1):
    """(outer, axis_len, inner) for the contiguous axes a0..a1-1."""
    p = lambda s: int(np.prod(s, dtype=np.int64))  # noqa: E731
    return p(shape[:a0]), p(shape[a0:a1]), p(shape[a1:])


@st.composite
def axis_case(draw, lo=-50.0, hi=50.0):
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=4, max_side=6))
    axis = draw(st.integers(0, len(shape) - 1))
    return draw(f32(shape, lo, hi)), axis


@EXAMPLES
@given(case=axis_case(), data=st.data())
def test_softmax_family(k, case, data):
    ffi, lib = k
    x, axis = case
    o, n, i = split(x.shape, axis, axis + 1)
    # softmax: y = e_j / sum e with each e_j a few ulp, the sum n*u relative -> rtol.
    # log_softmax: (x - m) - log(s): absolute error ~ u * (|x - m| + |log s|).
    y = np.empty_like(x)
    lib.tte_softmax_f32(fptr(ffi, x), fptr(ffi, y), o, n, i)
    sm = ref("softmax", x, axis=axis)
    np.testing.assert_allclose(y, sm, rtol=1e-5 + 4 * n * EPS, atol=1e-37)
    ly = np.empty_like(x)
    lib.tte_log_softmax_f32(fptr(ffi, x), fptr(ffi, ly), o, n, i)
    lsm = ref("log_softmax", x, axis=axis)
    span = float(np.ptp(x)) + math.log(n) + 1
    np.testing.assert_allclose(ly, lsm, rtol=1e-6, atol=8 * EPS * span)
    inplace = x.copy()
    lib.tte_softmax_f32(fptr(ffi, inplace), fptr(ffi, inplace), o, n, i)
    np.testing.assert_array_equal(inplace, y)
    inplace = x.copy()
    lib.tte_log_softmax_f32(fptr(ffi, inplace), fptr(ffi, inplace), o, n, i)
    np.testing.assert_array_equal(inplace, ly)

    # Gradients from the reference outputs. sum(gy * y) and sum(gy) are sums of n terms
    # (bounded by max|gy| and sum|gy|), multiplied by y <= 1 or exp(y) <= 1.
    gy = data.draw(f32(x.shape, -10, 10))
    row_abs = np.abs(gy).sum(axis=axis, keepdims=True).astype(np.float64)
    gx = np.empty_like(gy)
    lib.tte_softmax_grad_f32(fptr(ffi, sm), fptr(ffi, gy), fptr(ffi, gx), o, n, i)
    want = ref("softmax_grad", sm, gy, axis=axis)
    assert np.all(np.abs(gx - want.astype(np.float64)) <= 4 * (n + 2) * EPS * row_abs + 1e-30)
    lib.tte_log_softmax_grad_f32(fptr(ffi, lsm), fptr(ffi, gy), fptr(ffi, gx), o, n, i)
    want = ref("log_softmax_grad", lsm, gy, axis=axis)
    # + the exp of y (rtol 1e-5 of exp(y) * |sum gy|)
    assert np.all(np.abs(gx - want.astype(np.float64))
                  <= (4 * (n + 2) * EPS + 1e-5) * row_abs + 1e-30)


def runs(axes):
    """Maximal runs of adjacent axes, last run first: [(a0, a1), ...]."""
    out: list[list[int]] = []
    for a in sorted(axes):
        if out and out[-1][1] == a:
            out[-1][1] = a + 1
        else:
            out.append([a, a + 1])
    return [tuple(r) for r in reversed(out)]


@EXAMPLES
@given(shape=hnp.array_shapes(min_dims=1, max_dims=5, max_side=5), data=st.data())
def test_reduce_and_unreduce(k, shape, data):
    """Any set of axes: adjacent axes merged into one call, separate runs chained (last run
    first so earlier axes keep their positions), as the code generator does."""
    ffi, lib = k
    axes = data.draw(st.lists(st.integers(0, len(shape) - 1), min_size=1, unique=True))
    x = data.draw(f32(shape))
    count = int(np.prod([shape[a] for a in axes]))
    abs_terms = ref("reduce_sum", np.abs(x).astype(np.float64), axes=axes, keepdims=1)
    for name in ("reduce_sum", "reduce_mean"):
        cur, cur_shape = x, list(shape)
        for a0, a1 in runs(axes):
            o, n, i = split(cur_shape, a0, a1)
            out = np.empty(o * i, np.float32)
            getattr(lib, f"tte_{name}_f32")(fptr(ffi, cur), fptr(ffi, out), o, n, i)
            cur_shape[a0:a1] = [1] * (a1 - a0)
            cur = out.reshape(cur_shape)
        want = ref(name, x, axes=axes, keepdims=1)
        assert cur.shape == want.shape
        div = count if name == "reduce_mean" else 1
        assert_sum_close(cur, want, abs_terms / div, count + 1)

    # unreduce: the gradient of both; one multiply per element, chained the other way.
    gy = data.draw(f32(want.shape, -10, 10))
    scale = 1.0 / count
    cur, cur_shape = gy, list(want.shape)
    for a0, a1 in reversed(runs(axes)):
        cur_shape[a0:a1] = shape[a0:a1]
        o, n, i = split(cur_shape, a0, a1)
        out = np.empty(cur_shape, np.float32)
        # only the first call scales (scale 1 afterwards)
        lib.tte_unreduce_f32(fptr(ffi, np.ascontiguousarray(cur)), fptr(ffi, out), o, n, i,
                             scale)
        scale, cur = 1.0, out
    assert_ulp(cur, ref("unreduce", gy, shape=list(shape), axes=axes, keepdims=1,
                        scale=1.0 / count))


# ---- losses --------------------------------------------------------------------------------

@st.composite
def xent_case(draw):
    n = draw(st.integers(1, 8))
    c = draw(st.integers(1, 12))
    big = draw(st.sampled_from([1.0, 30.0, 1000.0]))  # 1000: exp overflows without the max
    logits = draw(f32((n, c), -big, big))
    labels = np.asarray(draw(st.lists(st.integers(0, c - 1), min_size=n, max_size=n)),
                        np.int32)
    return logits, labels


@EXAMPLES
@given(case=xent_case())
def test_softmax_cross_entropy(k, case):
    ffi, lib = k
    logits, labels = case
    n, c = logits.shape
    lab = ffi.cast("int32_t *", labels.ctypes.data)
    loss = ffi.new("float *")
    assert lib.tte_softmax_cross_entropy_f32(fptr(ffi, logits), lab, n, c, loss) == lib.TTE_OK
    # per row (m - x_label) + log(sum): absolute error ~ u * (|m - x_label| + log c + 1)
    span = float(np.ptp(logits)) + math.log(c) + 1
    want = float(ref("softmax_cross_entropy", logits, labels))
    assert abs(loss[0] - want) <= 1e-6 * abs(want) + 8 * EPS * span, (loss[0], want)

    g = np.empty_like(logits)
    assert lib.tte_softmax_cross_entropy_grad_f32(fptr(ffi, logits), lab, n, c,
                                                  fptr(ffi, g)) == lib.TTE_OK
    # softmax probabilities are within c*u relative (sum) plus a few ulp (exp), then / n.
    np.testing.assert_allclose(g, ref("softmax_cross_entropy_grad", logits, labels),
                               rtol=1e-5 + 4 * c * EPS, atol=4 * EPS / n)


@EXAMPLES
@given(case=xent_case(), bad=st.sampled_from([-1, -1000, 0, 1000]), data=st.data())
def test_softmax_cross_entropy_bad_label(k, case, bad, data):
    """A label outside [0, classes) returns TTE_EBADLABEL and writes nothing (the reference
    raises TTEError)."""
    ffi, lib = k
    logits, labels = case
    n, c = logits.shape
    labels[data.draw(st.integers(0, n - 1))] = bad if bad < 0 else c + bad  # c: first bad
    lab = ffi.cast("int32_t *", labels.ctypes.data)
    loss = ffi.new("float *", 123.0)
    g = np.full_like(logits, 7.0)
    ebad = lib.TTE_EBADLABEL
    assert ebad != lib.TTE_OK
    assert lib.tte_softmax_cross_entropy_f32(fptr(ffi, logits), lab, n, c, loss) == ebad
    assert lib.tte_softmax_cross_entropy_grad_f32(fptr(ffi, logits), lab, n, c,
                                                  fptr(ffi, g)) == ebad
    assert loss[0] == 123.0 and np.all(g == 7.0)
    with pytest.raises(TTEError):
        ref("softmax_cross_entropy", logits, labels)
    with pytest.raises(TTEError):
        ref("softmax_cross_entropy_grad", logits, labels)


@EXAMPLES
@given(shape=hnp.array_shapes(min_dims=1, max_dims=3), data=st.data())
def test_mse(k, shape, data):
    ffi, lib = k
    p, t = data.draw(f32(shape)), data.draw(f32(shape))
    loss = ffi.new("float *")
    lib.tte_mse_f32(fptr(ffi, p), fptr(ffi, t), p.size, loss)
    want = float(ref("mse", p, t))
    # all terms are >= 0, so the summation bound is relative to the result itself;
    # + 3 for rounding d, d*d and the final division.
    assert abs(loss[0] - want) <= 2 * (p.size + 3) * EPS * want + 1e-30
    g = np.empty_like(p)
    lib.tte_mse_grad_f32(fptr(ffi, p), fptr(ffi, t), fptr(ffi, g), p.size)
    assert_ulp(g, ref("mse_grad", p, t))


# ---- sgd -----------------------------------------------------------------------------------

@EXAMPLES
@given(n=st.integers(1, 40), lr=st.floats(1e-4, 1.0), momentum=st.sampled_from([None, 0.0, 0.9]),
       wd=st.sampled_from([0.0, 1e-4, 0.1]), data=st.data())
def test_sgd_update(k, n, lr, momentum, wd, data):
    """Three steps in a row (the buffer carries over), each against the reference."""
    ffi, lib = k
    w = data.draw(f32((n,), -10, 10))
    buf = np.zeros(n, np.float32) if momentum is not None else None
    w_ref, buf_ref = w.copy(), None if buf is None else buf.copy()
    for _ in range(3):
        g = data.draw(f32((n,), -10, 10))
        lib.tte_sgd_update_f32(fptr(ffi, w), fptr(ffi, g),
                               ffi.NULL if buf is None else fptr(ffi, buf), n, lr,
                               momentum or 0.0, wd)
        args = (w_ref, g) if buf_ref is None else (w_ref, g, buf_ref)
        out = get_op("sgd_update").ref(*args, lr=lr, momentum=momentum or 0.0, weight_decay=wd)
        w_ref = out[0]
        assert_ulp(w, w_ref)
        if buf is not None:
            buf_ref = out[1]
            assert_ulp(buf, buf_ref)


# ---- data movement -------------------------------------------------------------------------

@EXAMPLES
@given(shape=hnp.array_shapes(min_dims=0, max_dims=6, max_side=4), data=st.data())
def test_copy_and_transpose(k, shape, data):
    ffi, lib = k
    x = data.draw(f32(shape))
    y = np.empty(x.size, np.float32)
    lib.tte_copy_f32(fptr(ffi, x), fptr(ffi, y), x.size)
    np.testing.assert_array_equal(y, ref("reshape", x, shape=[x.size]))
    perm = data.draw(st.permutations(range(len(shape))))
    want = ref("transpose", x, perm=perm)
    y = np.full(want.shape, np.nan, np.float32)
    lib.tte_transpose_f32(fptr(ffi, x), i32(ffi, shape), i32(ffi, perm), len(shape),
                          fptr(ffi, y))
    np.testing.assert_array_equal(y, want)


@EXAMPLES
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=4), data=st.data())
def test_concat(k, shape, data):
    ffi, lib = k
    axis = data.draw(st.integers(0, len(shape) - 1))
    lens = data.draw(st.lists(st.integers(1, 4), min_size=1, max_size=4))
    xs = [data.draw(f32(tuple(shape[:axis]) + (m,) + tuple(shape[axis + 1:]))) for m in lens]
    want = ref("concat", *xs, axis=axis)
    y = np.full(want.shape, np.nan, np.float32)
    o, _, i = split(shape, axis, axis + 1)
    ptrs = ffi.new("float *[]", [fptr(ffi, a) for a in xs])
    lib.tte_concat_f32(ptrs, i32(ffi, lens), len(xs), o, i, fptr(ffi, y))
    np.testing.assert_array_equal(y, want)


@EXAMPLES
@given(shape=hnp.array_shapes(min_dims=1, max_dims=6, max_side=3), data=st.data())
def test_pad(k, shape, data):  # rank >= 1: numpy.pad (the reference) rejects 0-d arrays
    ffi, lib = k
    r = len(shape)
    pads = data.draw(st.lists(st.integers(0, 2), min_size=2 * r, max_size=2 * r))
    value = data.draw(st.sampled_from([0.0, -1.5, 7.0]))
    x = data.draw(f32(shape))
    want = ref("pad", x, pads=pads, mode="constant", value=value)
    y = np.full(want.shape, np.nan, np.float32)
    lib.tte_pad_f32(fptr(ffi, x), i32(ffi, shape), r, i32(ffi, pads), value, fptr(ffi, y))
    np.testing.assert_array_equal(y, want)


@st.composite
def slice_case(draw):
    """Registry attrs (already clamped; end -1 with a negative step = through index 0) and
    the kernel's per-axis (start, step, count)."""
    shape = draw(hnp.array_shapes(min_dims=1, max_dims=5, max_side=6))
    r = len(shape)
    axes = draw(st.lists(st.integers(0, r - 1), unique=True, max_size=r))
    attrs = {"starts": [], "ends": [], "axes": axes, "steps": []}
    starts, steps, out = [0] * r, [1] * r, list(shape)
    for ax in axes:
        d = shape[ax]
        step = draw(st.sampled_from([1, 2, 3, -1, -2, -3]))
        if step > 0:
            s = draw(st.integers(0, d))
            e = draw(st.integers(0, d))
            idx = range(s, e, step)
        else:
            s = draw(st.integers(0, d - 1))
            e = draw(st.integers(-1, d - 1))
            idx = range(s, e, step)
        attrs["starts"].append(s)
        attrs["ends"].append(e)
        attrs["steps"].append(step)
        starts[ax], steps[ax], out[ax] = (idx[0] if len(idx) else 0), step, len(idx)
    return shape, attrs, starts, steps, out


@EXAMPLES
@given(case=slice_case(), data=st.data())
def test_slice_and_grad(k, case, data):
    ffi, lib = k
    shape, attrs, starts, steps, out = case
    r = len(shape)
    x = data.draw(f32(shape))
    want = ref("slice", x, **attrs)
    assert want.shape == tuple(out)
    y = np.full(out, np.nan, np.float32)
    args = (i32(ffi, shape), r, i32(ffi, starts), i32(ffi, steps), i32(ffi, out))
    lib.tte_slice_f32(fptr(ffi, x), *args, fptr(ffi, y))
    np.testing.assert_array_equal(y, want)
    gx = np.full(shape, np.nan, np.float32)
    lib.tte_slice_grad_f32(fptr(ffi, y), *args, fptr(ffi, gx))
    np.testing.assert_array_equal(gx, ref("slice_grad", y, input_shape=list(shape), **attrs))
