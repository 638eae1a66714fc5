"""Per-op gradient tests: the VJP of every differentiable IR op against jax.vjp.

Each test builds a one-node graph, appends its backward pass with
tte.autodiff.append_backward, runs it in the numpy reference interpreter in
float64 and compares forward output and input gradients with jax.vjp of an
independent JAX implementation of the op (see tests/op_harness.py for the
tolerances and the float32 run that every example also gets).

Inputs are random (hypothesis draws shapes, attributes and a numpy seed).
Where an op has kinks (relu at 0, clip at min/max, hard_sigmoid where
alpha*x+beta is 0 or 1, hard_swish at +-3) the inputs are kept at least 0.05
away from them: exactly at a kink the derivative is a convention (JAX and TTE
may pick different one-sided values) and the test is about the math elsewhere.
Max-pool inputs have no ties (a scaled random permutation) for the same reason.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, example, given, settings, strategies as st
from jax import lax

from op_harness import (XLA_CONV_WORKAROUND, Arg, backward_ops, check_graph, check_op,
                        compile_fast, f32, onnx_out_and_extra)
from tte.autodiff import append_backward
from tte.errors import UnsupportedError
from tte.ir.graph import Graph

CONV_EXAMPLES = 200
OP_EXAMPLES = 50
conv_settings = settings(max_examples=CONV_EXAMPLES, deadline=None)
op_settings = settings(max_examples=OP_EXAMPLES, deadline=None)
pool_settings = settings(max_examples=2 * OP_EXAMPLES, deadline=None)  # geometry-heavy, cheap
seeds = st.integers(0, 2**32 - 1)
MAX_HW = 12


def normal(rng, shape, scale=1.0):
    return rng.standard_normal(shape) * scale


# =====================================================================================
# conv2d
# =====================================================================================

def jax_conv(strides, pads, dilations, group, bias):
    def fn(x, w, b=None):
        y = lax.conv_general_dilated(
            x, w, window_strides=tuple(strides),
            padding=((pads[0], pads[2]), (pads[1], pads[3])),
            rhs_dilation=tuple(dilations), dimension_numbers=("NCHW", "OIHW", "NCHW"),
            feature_group_count=group, precision=lax.Precision.HIGHEST)
        return y + b[None, :, None, None] if bias else y
    return fn


@st.composite
def window_dim(draw, k_max=5, s_max=3, pad_max=3, d_max=3, k=None):
    """(size, kernel, stride, pad_lo, pad_hi, dilation) with the window fitting the
    padded input and size <= MAX_HW: dilation is capped so the dilated kernel fits."""
    k = draw(st.integers(1, k_max)) if k is None else k
    s = draw(st.integers(1, s_max))
    lo, hi = draw(st.integers(0, pad_max)), draw(st.integers(0, pad_max))
    d_fit = d_max if k == 1 else min(d_max, (MAX_HW + lo + hi - 1) // (k - 1))
    d = draw(st.integers(1, d_fit))
    eff = (k - 1) * d + 1
    size = draw(st.integers(max(1, eff - lo - hi), MAX_HW))
    return size, k, s, lo, hi, d


@st.composite
def conv_case(draw, kind):
    n = draw(st.integers(1, 2))
    if kind == "plain":
        group, c, o = 1, draw(st.integers(1, 8)), draw(st.integers(1, 8))
    elif kind == "grouped":
        group = draw(st.integers(2, 4))
        c = group * draw(st.integers(1, 8 // group))
        o = group * draw(st.integers(1, 8 // group))
    elif kind == "depthwise":
        mult = draw(st.sampled_from([1, 2]))
        c = draw(st.integers(1, 8 // mult))
        group, o = c, c * mult
    else:  # pointwise
        group, c, o = 1, draw(st.integers(1, 8)), draw(st.integers(1, 8))
    if kind == "pointwise":
        dims = [draw(window_dim(k=1, pad_max=1, d_max=1)) for _ in range(2)]
    else:
        dims = [draw(window_dim()) for _ in range(2)]
    (h, kh, sh, pt, pb, dh), (w, kw, sw, pl, pr, dw) = dims
    attrs = {"strides": [sh, sw], "pads": [pt, pl, pb, pr], "dilations": [dh, dw],
             "group": group}
    # the defaults must also work: leave out attributes that equal them, sometimes
    for key, default in [("strides", [1, 1]), ("pads", [0, 0, 0, 0]), ("dilations", [1, 1]),
                         ("group", 1)]:
        if attrs[key] == default and draw(st.booleans()):
            del attrs[key]
    bias = draw(st.booleans())
    return (n, c, h, w), (o, c // group, kh, kw), bias, attrs


def grad_inputs(ops: list[str]) -> int:
    """Input gradients of conv2d: general, or depthwise in place (one channel, or group ==
    channels, output shaped like the input)."""
    return ops.count("conv2d_grad_input") + ops.count("depthwise_grad_input")


def run_conv(case, seed):
    x_shape, w_shape, bias, attrs = case
    rng = np.random.default_rng(seed)
    fan_in = math.prod(w_shape[1:])
    args = [Arg("x", normal(rng, x_shape)), Arg("w", normal(rng, w_shape, fan_in ** -0.5)),
            Arg("b", normal(rng, w_shape[:1]) if bias else None)]
    full = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "group": 1, **attrs}
    fn = jax_conv(full["strides"], full["pads"], full["dilations"], full["group"], bias)
    res = check_op("conv2d", args, attrs, fn, rng, xla_options=XLA_CONV_WORKAROUND)
    bwd = backward_ops(res.graph, 1)
    assert grad_inputs(bwd) == 1 and bwd.count("conv2d_grad_weight") == 1
    assert bwd.count("channel_sum") == int(bias)


@conv_settings
@given(case=conv_case("plain"), seed=seeds)
def test_conv2d_plain(case, seed):
    run_conv(case, seed)


@conv_settings
@given(case=conv_case("grouped"), seed=seeds)
def test_conv2d_grouped(case, seed):
    run_conv(case, seed)


@conv_settings
@given(case=conv_case("depthwise"), seed=seeds)
@example(case=((1, 4, 12, 9), (8, 1, 2, 5), True,  # aborted XLA without XLA_CONV_WORKAROUND
               {"strides": [2, 1], "pads": [1, 1, 1, 1], "dilations": [1, 2], "group": 4}),
         seed=739)
def test_conv2d_depthwise(case, seed):
    run_conv(case, seed)


@conv_settings
@given(case=conv_case("pointwise"), seed=seeds)
def test_conv2d_pointwise(case, seed):
    run_conv(case, seed)


# =====================================================================================
# linear, matmul
# =====================================================================================

@op_settings
@given(n=st.integers(1, 5), k=st.integers(1, 8), m=st.integers(1, 8), bias=st.booleans(),
       seed=seeds)
def test_linear(n, k, m, bias, seed):
    rng = np.random.default_rng(seed)
    args = [Arg("x", normal(rng, (n, k))), Arg("w", normal(rng, (m, k))),
            Arg("b", normal(rng, (m,)) if bias else None)]

    def fn(x, w, b=None):
        y = jnp.dot(x, w.T, precision=lax.Precision.HIGHEST)
        return y + b if bias else y
    res = check_op("linear", args, {}, fn, rng)
    bwd = backward_ops(res.graph, 1)
    assert bwd.count("channel_sum") == int(bias)


@st.composite
def matmul_shapes(draw):
    m, k, n = (draw(st.integers(1, 5)) for _ in range(3))
    batch = draw(st.lists(st.integers(1, 3), max_size=3))

    def operand_batch():
        rank = draw(st.integers(0, len(batch)))
        return [1 if draw(st.booleans()) else d for d in batch[len(batch) - rank:]]
    return tuple(operand_batch() + [m, k]), tuple(operand_batch() + [k, n])


@op_settings
@given(shapes=matmul_shapes(), seed=seeds)
def test_matmul(shapes, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes
    check_op("matmul", [Arg("a", normal(rng, a_shape)), Arg("b", normal(rng, b_shape))], {},
             lambda a, b: jnp.matmul(a, b, precision=lax.Precision.HIGHEST), rng)


@op_settings
@given(m=st.integers(1, 5), k=st.integers(1, 5), n=st.integers(1, 5), seed=seeds)
def test_matmul_2d(m, k, n, seed):
    rng = np.random.default_rng(seed)
    check_op("matmul", [Arg("a", normal(rng, (m, k))), Arg("b", normal(rng, (k, n)))], {},
             lambda a, b: jnp.matmul(a, b, precision=lax.Precision.HIGHEST), rng)


def test_matmul_1d_operand_is_rejected_by_autodiff():
    g = Graph()
    a, b = g.add_input("a", (3,)), g.add_input("b", (3, 2))
    y = g.emit("matmul", [a, b])
    g.add_input("ct", (2,))
    with pytest.raises(UnsupportedError, match="1-D"):
        append_backward(g, {y: "ct"}, wrt={a, b})


# =====================================================================================
# elementwise binary ops with broadcasting
# =====================================================================================

@st.composite
def broadcast_shapes(draw):
    out = draw(st.lists(st.integers(1, 4), max_size=4))

    def operand():
        rank = draw(st.integers(0, len(out)))
        return tuple(1 if draw(st.booleans()) else d for d in out[len(out) - rank:])
    return operand(), operand()


BINARY = {"add": jnp.add, "sub": jnp.subtract, "mul": jnp.multiply, "div": jnp.divide}


@pytest.mark.parametrize("op", sorted(BINARY))
@op_settings
@given(shapes=broadcast_shapes(), seed=seeds)
def test_binary_broadcast(op, shapes, seed):
    rng = np.random.default_rng(seed)
    a_shape, b_shape = shapes
    a = normal(rng, a_shape)
    if op == "div":  # denominators in +-[0.5, 2]: well away from 0
        b = rng.choice([-1.0, 1.0], b_shape) * rng.uniform(0.5, 2.0, b_shape)
    else:
        b = normal(rng, b_shape)
    check_op(op, [Arg("a", a), Arg("b", b)], {}, BINARY[op], rng)


# =====================================================================================
# activations
# =====================================================================================

def away_from(x, kinks, gap=0.05):
    """Move every element closer than gap to a kink to exactly gap away from it."""
    x = np.array(x, dtype=np.float64)
    for k in kinks:
        if np.isfinite(k):
            near = np.abs(x - k) < gap
            x[near] = k + np.where(x[near] >= k, gap, -gap)
    return x


clip_attrs = st.one_of(
    st.just({"min": 0.0, "max": 6.0}),  # relu6
    st.tuples(st.floats(-4, 4), st.floats(0.2, 4)).map(
        lambda t: {"min": t[0], "max": t[0] + t[1]}),
    st.floats(-4, 4).map(lambda v: {"min": v}),
    st.floats(-4, 4).map(lambda v: {"max": v}),
)
hard_sigmoid_attrs = st.one_of(
    st.just({}),                            # ONNX defaults alpha=0.2, beta=0.5
    st.just({"alpha": 1 / 6, "beta": 0.5}),  # the jax.nn / MobileNetV3 variant
    st.tuples(st.floats(0.1, 1.0), st.floats(-0.5, 1.5)).map(
        lambda t: {"alpha": t[0], "beta": t[1]}),
)


def clip_ref(a):
    if a == {"min": 0.0, "max": 6.0}:
        return jax.nn.relu6
    return lambda x: jnp.clip(x, a.get("min"), a.get("max"))


def hard_sigmoid_ref(a):
    alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
    if a == {"alpha": 1 / 6, "beta": 0.5}:
        return jax.nn.hard_sigmoid
    return lambda x: jnp.clip(alpha * x + beta, 0.0, 1.0)


def hard_sigmoid_kinks(a):
    alpha, beta = a.get("alpha", 0.2), a.get("beta", 0.5)
    return [-beta / alpha, (1 - beta) / alpha]


# op -> (attribute strategy, kinks(attrs), JAX reference(attrs))
ACTIVATIONS = {
    "relu": (st.just({}), lambda a: [0.0], lambda a: jax.nn.relu),
    "clip": (clip_attrs, lambda a: [a.get("min", -np.inf), a.get("max", np.inf)], clip_ref),
    "sigmoid": (st.just({}), lambda a: [], lambda a: jax.nn.sigmoid),
    "tanh": (st.just({}), lambda a: [], lambda a: jnp.tanh),
    "hard_sigmoid": (hard_sigmoid_attrs, hard_sigmoid_kinks, hard_sigmoid_ref),
    "hard_swish": (st.just({}), lambda a: [-3.0, 3.0], lambda a: jax.nn.hard_swish),
    "neg": (st.just({}), lambda a: [], lambda a: jnp.negative),
}


@pytest.mark.parametrize("op", sorted(ACTIVATIONS))
@op_settings
@given(data=st.data(), shape=st.lists(st.integers(1, 5), max_size=4), seed=seeds)
def test_activation(op, data, shape, seed):
    attr_strategy, kinks, ref = ACTIVATIONS[op]
    attrs = data.draw(attr_strategy, label="attrs")
    rng = np.random.default_rng(seed)
    # wide enough to reach every saturated region (|x| up to 12 covers all kinks above)
    x = away_from(rng.uniform(-12, 12, tuple(shape)), kinks(attrs))
    check_op(op, [Arg("x", x)], attrs, ref(attrs), rng)


# =====================================================================================
# batch_norm (inference form), gradients w.r.t. x, scale, bias
# =====================================================================================

@op_settings
@given(n=st.integers(1, 3), c=st.integers(1, 6), spatial=st.lists(st.integers(1, 4), max_size=2),
       eps=st.sampled_from([None, 1e-3, 0.1]), seed=seeds)
def test_batch_norm(n, c, spatial, eps, seed):
    rng = np.random.default_rng(seed)
    shape = (n, c, *spatial)
    args = [Arg("x", normal(rng, shape, 2.0)), Arg("scale", normal(rng, (c,))),
            Arg("bias", normal(rng, (c,))), Arg("mean", normal(rng, (c,)), wrt=False),
            Arg("var", rng.uniform(0.1, 2.0, (c,)), wrt=False)]
    attrs = {} if eps is None else {"epsilon": eps}
    epsilon = 1e-5 if eps is None else eps
    bshape = (1, c) + (1,) * len(spatial)

    def fn(x, scale, bias, mean, var):
        xhat = (x - mean.reshape(bshape)) / jnp.sqrt(var.reshape(bshape) + epsilon)
        return xhat * scale.reshape(bshape) + bias.reshape(bshape)
    res = check_op("batch_norm", args, attrs, fn, rng)
    assert set(res.grads) == {"x", "scale", "bias"}


# =====================================================================================
# pooling
# =====================================================================================

@st.composite
def pool_case(draw, dilated):
    """Max pool (dilated=True): pads < kernel, so that (with the assume in the test) no
    window lies wholly in padding, where the max would be -inf. Average pool: pads 0..3
    whatever the kernel; a window wholly in padding averages nothing and is 0 (tte/ops/pool.py
    divides by max(count, 1))."""
    n, c = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    dims = []
    for _ in range(2):
        k = draw(st.integers(1, 4))
        s = draw(st.integers(1, 3))
        pad_max = min(3, k - 1) if dilated else 3
        lo, hi = draw(st.integers(0, pad_max)), draw(st.integers(0, pad_max))
        d = draw(st.integers(1, 3 if k == 1 else min(3, (MAX_HW + lo + hi - 1) // (k - 1)))) \
            if dilated else 1
        eff = (k - 1) * d + 1
        size = draw(st.integers(max(1, eff - lo - hi), MAX_HW))
        dims.append((size, k, s, lo, hi, d))
    ceil_mode = draw(st.sampled_from([0, 1]))
    return n, c, dims, ceil_mode


def window_has_real_element(size, k, s, lo, d, out) -> bool:
    return all(any(0 <= o * s - lo + i * d < size for i in range(k)) for o in range(out))


def pool_geometry(dims, ceil_mode):
    """Per spatial dim: (out, extra right pad) from the ONNX rule."""
    return [onnx_out_and_extra(size, k, s, lo, hi, d, bool(ceil_mode))
            for size, k, s, lo, hi, d in dims]


@pool_settings
@given(case=pool_case(dilated=False), count_include_pad=st.sampled_from([0, 1]), seed=seeds)
def test_avg_pool2d(case, count_include_pad, seed):
    n, c, dims, ceil_mode = case
    (h, kh, sh, pt, pb, _), (w, kw, sw, pl, pr, _) = dims
    (oh, eh), (ow, ew) = pool_geometry(dims, ceil_mode)
    rng = np.random.default_rng(seed)
    attrs = {"kernel": [kh, kw], "strides": [sh, sw], "pads": [pt, pl, pb, pr],
             "count_include_pad": count_include_pad, "ceil_mode": ceil_mode}
    window, strides = (1, 1, kh, kw), (1, 1, sh, sw)
    padding = ((0, 0), (0, 0), (pt, pb + eh), (pl, pr + ew))
    # divisor: real elements in the window; with count_include_pad also the explicit pads,
    # never the implicit ceil-mode extension (PyTorch / onnxruntime convention)
    ones = np.ones((1, 1, h, w))
    if count_include_pad:
        ones = np.pad(ones, ((0, 0), (0, 0), (pt, pb), (pl, pr)), constant_values=1.0)
        count_padding = ((0, 0), (0, 0), (0, eh), (0, ew))
    else:
        count_padding = padding
    # first (oh, ow) windows: see onnx_out_and_extra
    count = np.asarray(lax.reduce_window(ones, 0.0, lax.add, window, strides, count_padding))
    count = np.maximum(count[:, :, :oh, :ow], 1.0)  # empty window: sum 0, output 0

    def fn(x):
        total = lax.reduce_window(x, 0.0, lax.add, window, strides, padding)
        return total[:, :, :oh, :ow] / count
    res = check_op("avg_pool2d", [Arg("x", normal(rng, (n, c, h, w)))], attrs, fn, rng)
    assert res.graph.values[res.y].shape == (n, c, oh, ow)  # the ONNX output-size rule


def max_pool_windows(x, dims, geometry):
    """Max pool as a max over strided slices of the -inf padded input: differentiable in
    JAX also with dilation (JAX has no VJP for dilated reduce_window max)."""
    (h, kh, sh, pt, pb, dh), (w, kw, sw, pl, pr, dw) = dims
    (oh, eh), (ow, ew) = geometry
    xp = jnp.pad(x, ((0, 0), (0, 0), (pt, pb + eh), (pl, pr + ew)), constant_values=-jnp.inf)
    n, c = x.shape[:2]
    parts = [lax.slice(xp, (0, 0, i * dh, j * dw),
                       (n, c, i * dh + (oh - 1) * sh + 1, j * dw + (ow - 1) * sw + 1),
                       (1, 1, sh, sw))
             for i in range(kh) for j in range(kw)]
    return jnp.max(jnp.stack(parts), axis=0)


@pool_settings
@given(case=pool_case(dilated=True), omit_dilations=st.booleans(), seed=seeds)
def test_max_pool2d(case, omit_dilations, seed):
    n, c, dims, ceil_mode = case
    (h, kh, sh, pt, pb, dh), (w, kw, sw, pl, pr, dw) = dims
    geometry = pool_geometry(dims, ceil_mode)
    (oh, eh), (ow, ew) = geometry
    assume(window_has_real_element(h, kh, sh, pt, dh, oh)
           and window_has_real_element(w, kw, sw, pl, dw, ow))
    rng = np.random.default_rng(seed)
    attrs = {"kernel": [kh, kw], "strides": [sh, sw], "pads": [pt, pl, pb, pr],
             "dilations": [dh, dw], "ceil_mode": ceil_mode}
    if omit_dilations and (dh, dw) == (1, 1):
        del attrs["dilations"]
    size = n * c * h * w
    x = ((rng.permutation(size) + 0.5) / size * 8.0 - 4.0).reshape(n, c, h, w)  # no ties
    padding = ((0, 0), (0, 0), (pt, pb + eh), (pl, pr + ew))

    def reduce_window_max(x):  # first (oh, ow) windows: see onnx_out_and_extra
        return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, kh, kw), (1, 1, sh, sw),
                                 padding, window_dilation=(1, 1, dh, dw))[:, :, :oh, :ow]
    if (dh, dw) == (1, 1):
        fn = reduce_window_max
    else:
        fn = lambda x: max_pool_windows(x, dims, geometry)  # noqa: E731
        # the slice formulation must agree with JAX's own dilated max pool (forward)
        both = compile_fast(jax.jit(lambda x: (fn(x), reduce_window_max(x))).lower(f32(x)))
        by_slices, by_reduce_window = both(f32(x))
        np.testing.assert_array_equal(np.asarray(by_slices), np.asarray(by_reduce_window))
    res = check_op("max_pool2d", [Arg("x", x)], attrs, fn, rng)
    assert res.graph.values[res.y].shape == (n, c, oh, ow)  # the ONNX output-size rule


@op_settings
@given(n=st.integers(1, 2), c=st.integers(1, 4), h=st.integers(1, 8), w=st.integers(1, 8),
       seed=seeds)
def test_global_avg_pool(n, c, h, w, seed):
    rng = np.random.default_rng(seed)
    check_op("global_avg_pool", [Arg("x", normal(rng, (n, c, h, w)))], {},
             lambda x: jnp.mean(x, axis=(2, 3), keepdims=True), rng)


# =====================================================================================
# data movement
# =====================================================================================

def prime_factors(n):
    out, p = [], 2
    while n > 1:
        while n % p == 0:
            out.append(p)
            n //= p
        p += 1
    return out


@st.composite
def reshape_case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    factors = draw(st.permutations([f for d in shape for f in prime_factors(d)]))
    rank = draw(st.integers(1, 5))
    target = [1] * rank
    for f in factors:
        target[draw(st.integers(0, rank - 1))] *= f
    return shape, tuple(target)


@op_settings
@given(case=reshape_case(), seed=seeds)
def test_reshape(case, seed):
    shape, target = case
    rng = np.random.default_rng(seed)
    check_op("reshape", [Arg("x", normal(rng, shape))], {"shape": list(target)},
             lambda x: jnp.reshape(x, target), rng)


@st.composite
def transpose_case(draw):
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=1, max_size=5)))
    return shape, tuple(draw(st.permutations(range(len(shape)))))


@op_settings
@given(case=transpose_case(), seed=seeds)
def test_transpose(case, seed):
    shape, perm = case
    rng = np.random.default_rng(seed)
    res = check_op("transpose", [Arg("x", normal(rng, shape))], {"perm": list(perm)},
                   lambda x: jnp.transpose(x, perm), rng)
    assert res.graph.nodes[1].op == "transpose"


@st.composite
def concat_case(draw):
    rank = draw(st.integers(1, 4))
    base = draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank))
    axis = draw(st.integers(0, rank - 1))
    count = draw(st.integers(2, 3))
    shapes = []
    for _ in range(count):
        s = list(base)
        s[axis] = draw(st.integers(1, 4))
        shapes.append(tuple(s))
    wrt = draw(st.lists(st.booleans(), min_size=count, max_size=count).filter(any))
    return shapes, axis, wrt


@op_settings
@given(case=concat_case(), seed=seeds)
def test_concat(case, seed):
    shapes, axis, wrt = case
    rng = np.random.default_rng(seed)
    args = [Arg(f"x{i}", normal(rng, s), wrt=flag) for i, (s, flag) in enumerate(zip(shapes, wrt))]
    res = check_op("concat", args, {"axis": axis},
                   lambda *xs: jnp.concatenate(xs, axis=axis), rng)
    assert backward_ops(res.graph, 1).count("slice") == sum(wrt)  # no slice for frozen inputs


@op_settings
@given(shape=st.lists(st.integers(1, 4), min_size=1, max_size=4), data=st.data(),
       value=st.one_of(st.none(), st.floats(-3, 3)), seed=seeds)
def test_pad_constant(shape, data, value, seed):
    rank = len(shape)
    pads = data.draw(st.lists(st.integers(0, 3), min_size=2 * rank, max_size=2 * rank),
                     label="pads")
    rng = np.random.default_rng(seed)
    attrs = {"pads": pads, "mode": "constant"}
    fill = 0.0
    if value is not None:  # an f32-exact fill, so the float64 and float32 runs agree on it
        fill = attrs["value"] = float(np.float32(value))
    config = [(pads[i], pads[i + rank], 0) for i in range(rank)]
    check_op("pad", [Arg("x", normal(rng, tuple(shape)))], attrs,
             lambda x: lax.pad(x, jnp.asarray(fill, x.dtype), config), rng)


@pytest.mark.parametrize("mode", ["reflect", "edge"])
def test_pad_non_constant_is_rejected_by_autodiff(mode):
    g = Graph()
    x = g.add_input("x", (2, 3))
    y = g.emit("pad", [x], {"pads": [1, 1, 1, 1], "mode": mode})
    g.add_input("ct", (4, 5))
    with pytest.raises(UnsupportedError, match="constant"):
        append_backward(g, {y: "ct"}, wrt={x})


@st.composite
def slice_case(draw):
    """Python-slice semantics per axis, already clamped: starts in [0, dim - 1]; a positive
    step ends in (start, dim], a negative one in [-1, start) with -1 meaning 'through 0'.
    Axes are a random subset in random order; every slice is non-empty."""
    shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=4)))
    axes = draw(st.permutations(range(len(shape))))
    axes = axes[:draw(st.integers(1, len(shape)))]
    starts, ends, steps = [], [], []
    for ax in axes:
        dim = shape[ax]
        step = draw(st.sampled_from([-3, -2, -1, 1, 2, 3]))
        start = draw(st.integers(0, dim - 1))
        end = draw(st.integers(start + 1, dim)) if step > 0 else draw(st.integers(-1, start - 1))
        starts.append(start)
        ends.append(end)
        steps.append(step)
    return shape, {"starts": starts, "ends": ends, "axes": list(axes), "steps": steps}


@op_settings
@given(case=slice_case(), seed=seeds)
def test_slice(case, seed):
    shape, attrs = case
    rng = np.random.default_rng(seed)
    index = [slice(None)] * len(shape)
    for s, e, ax, st_ in zip(attrs["starts"], attrs["ends"], attrs["axes"], attrs["steps"]):
        index[ax] = slice(s, None if e == -1 else e, st_)
    check_op("slice", [Arg("x", normal(rng, shape))], attrs, lambda x: x[tuple(index)], rng)


# =====================================================================================
# softmax, reductions
# =====================================================================================

SOFTMAX = {"softmax": jax.nn.softmax, "log_softmax": jax.nn.log_softmax}


@pytest.mark.parametrize("op", sorted(SOFTMAX))
@op_settings
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data(), seed=seeds)
def test_softmax(op, shape, data, seed):
    rank = len(shape)
    axis = data.draw(st.one_of(st.none(), st.integers(-rank, rank - 1)), label="axis")
    rng = np.random.default_rng(seed)
    attrs = {} if axis is None else {"axis": axis}
    ax = -1 if axis is None else axis
    check_op(op, [Arg("x", normal(rng, tuple(shape), 3.0))], attrs,
             lambda x: SOFTMAX[op](x, axis=ax), rng)


REDUCE = {"reduce_mean": jnp.mean, "reduce_sum": jnp.sum}


@pytest.mark.parametrize("op", sorted(REDUCE))
@op_settings
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), data=st.data(),
       keepdims=st.sampled_from([None, 0, 1]), seed=seeds)
def test_reduce(op, shape, data, keepdims, seed):
    rank = len(shape)
    axes = data.draw(st.permutations(range(rank)), label="axes order")
    axes = list(axes[:data.draw(st.integers(1, rank), label="axes count")])
    rng = np.random.default_rng(seed)
    attrs = {"axes": axes}
    if keepdims is not None:
        attrs["keepdims"] = keepdims
    keep = True if keepdims is None else bool(keepdims)
    check_op(op, [Arg("x", normal(rng, tuple(shape)))], attrs,
             lambda x: REDUCE[op](x, axis=tuple(axes), keepdims=keep), rng)


# =====================================================================================
# losses (scalar output, scalar cotangent)
# =====================================================================================

@op_settings
@given(n=st.integers(1, 6), c=st.integers(1, 8), seed=seeds)
def test_softmax_cross_entropy(n, c, seed):
    rng = np.random.default_rng(seed)
    logits = normal(rng, (n, c), 3.0)
    labels = rng.integers(0, c, n).astype(np.int32)

    def fn(logits, labels):
        lp = jax.nn.log_softmax(logits, axis=1)
        return -jnp.mean(jnp.take_along_axis(lp, labels[:, None], axis=1))
    args = [Arg("logits", logits), Arg("label", labels, wrt=False)]
    res = check_op("softmax_cross_entropy", args, {}, fn, rng)
    assert res.ref["y"].shape == ()


@op_settings
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4), seed=seeds)
def test_mse(shape, seed):
    rng = np.random.default_rng(seed)
    args = [Arg("pred", normal(rng, tuple(shape))), Arg("target", normal(rng, tuple(shape)))]
    check_op("mse", args, {}, lambda p, t: jnp.mean((p - t) ** 2), rng)


# =====================================================================================
# autodiff structure: only needed gradients, fan-out accumulation
# =====================================================================================

WRT_SUBSETS = st.lists(st.booleans(), min_size=3, max_size=3).filter(any)


@op_settings
@given(case=conv_case("plain"), wrt=WRT_SUBSETS, seed=seeds)
def test_conv_computes_only_needed_gradients(case, wrt, seed):
    x_shape, w_shape, _, attrs = case
    rng = np.random.default_rng(seed)
    want_x, want_w, want_b = wrt
    args = [Arg("x", normal(rng, x_shape), wrt=want_x),
            Arg("w", normal(rng, w_shape), wrt=want_w),
            Arg("b", normal(rng, w_shape[:1]), wrt=want_b)]
    full = {"strides": [1, 1], "pads": [0, 0, 0, 0], "dilations": [1, 1], "group": 1, **attrs}
    res = check_op("conv2d", args, attrs,
                   jax_conv(full["strides"], full["pads"], full["dilations"], 1, True), rng,
                   xla_options=XLA_CONV_WORKAROUND)
    bwd = backward_ops(res.graph, 1)
    assert grad_inputs(bwd) == int(want_x)
    assert bwd.count("conv2d_grad_weight") == int(want_w)
    assert bwd.count("channel_sum") == int(want_b)
    assert len(bwd) == sum(wrt)


@op_settings
@given(n=st.integers(1, 4), k=st.integers(1, 6), m=st.integers(1, 6), wrt=WRT_SUBSETS,
       seed=seeds)
def test_linear_computes_only_needed_gradients(n, k, m, wrt, seed):
    rng = np.random.default_rng(seed)
    want_x, want_w, want_b = wrt
    args = [Arg("x", normal(rng, (n, k)), wrt=want_x), Arg("w", normal(rng, (m, k)), wrt=want_w),
            Arg("b", normal(rng, (m,)), wrt=want_b)]
    res = check_op("linear", args, {},
                   lambda x, w, b: jnp.dot(x, w.T, precision=lax.Precision.HIGHEST) + b, rng)
    bwd = backward_ops(res.graph, 1)
    assert bwd.count("linear_grad_input") == int(want_x)
    assert bwd.count("linear_grad_weight") == int(want_w)
    assert bwd.count("channel_sum") == int(want_b)


def _two_conv_net(rng):
    """x -> conv(w1, b1) -> relu -> conv(w2, b2) -> y, all 3x3 pad 1, 2 -> 3 -> 2 channels."""
    g = Graph()
    feeds = {"x": f32(normal(rng, (1, 2, 6, 6))), "w1": f32(normal(rng, (3, 2, 3, 3), 0.3)),
             "b1": f32(normal(rng, (3,))), "w2": f32(normal(rng, (2, 3, 3, 3), 0.3)),
             "b2": f32(normal(rng, (2,)))}
    for name, v in feeds.items():
        g.add_input(name, v.shape)
    geo = {"pads": [1, 1, 1, 1]}
    h = g.emit("relu", [g.emit("conv2d", ["x", "w1", "b1"], geo)])
    y = g.emit("conv2d", [h, "w2", "b2"], geo)

    def fn(x, w1, b1, w2, b2):
        c1 = jax_conv([1, 1], [1, 1, 1, 1], [1, 1], 1, True)
        return c1(jax.nn.relu(c1(x, w1, b1)), w2, b2)
    return g, y, feeds, fn


@pytest.mark.parametrize("wrt, expected", [
    # only the last layer trains: no backward node reaches the first conv or the relu
    (["w2"], ["conv2d_grad_weight"]),
    (["b2"], ["channel_sum"]),
    # the first layer trains: gradients flow back through conv2 and relu, but no
    # input-gradient of conv1 (x is not trained) and nothing for w2/b2
    (["w1"], ["conv2d_grad_input", "relu_grad", "conv2d_grad_weight"]),
    (["b1", "w2"], ["conv2d_grad_input", "conv2d_grad_weight", "relu_grad", "channel_sum"]),
])
def test_backward_stops_before_first_trained_layer(wrt, expected):
    rng = np.random.default_rng(0)
    g, y, feeds, fn = _two_conv_net(rng)
    res = check_graph(g, y, feeds, wrt, fn, rng, where=f"two-conv net, wrt {wrt}",
                      xla_options=XLA_CONV_WORKAROUND)
    assert sorted(backward_ops(res.graph, 3)) == sorted(expected)


@op_settings
@given(shape=st.lists(st.integers(1, 5), max_size=3), seed=seeds)
def test_fan_out_accumulates_gradients(shape, seed):
    """x feeds relu, tanh and both operands of a mul: four contributions, summed by adds."""
    rng = np.random.default_rng(seed)
    g = Graph()
    x = g.add_input("x", tuple(shape))
    s = g.emit("add", [g.emit("relu", [x]), g.emit("tanh", [x])])
    y = g.emit("add", [s, g.emit("mul", [x, x])])
    feeds = {"x": f32(away_from(normal(rng, tuple(shape)), [0.0]))}
    res = check_graph(g, y, feeds, ["x"],
                      lambda x: jax.nn.relu(x) + jnp.tanh(x) + x * x, rng, where="fan-out")
    producers = res.graph.producers()
    assert res.graph.nodes[producers[res.grads["x"]]].op == "add"
    bwd = res.graph.nodes[5:]
    # 4 contributions to x -> 3 accumulating adds reading only gradients, never x itself
    acc = [n for n in bwd if n.op == "add" and n.outputs[0].startswith("grad.x")]
    assert len(acc) == 3, [n.outputs for n in bwd]
