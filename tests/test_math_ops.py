"""The ops of tte/ops/math.py: exp, log, sqrt, comparisons, where, maximum / minimum,
reduce_max, argmax, stop_gradient.

* Gradients against jax.vjp through tests/op_harness.py (float64 run at rtol 1e-5, float32
  run too), on hypothesis-drawn shapes with broadcasting. maximum / minimum and reduce_max
  also on values from a small set, so that ties are common: JAX gives each tied operand of
  maximum half the cotangent and splits the cotangent of a max equally among tied maxima.
* Comparisons and argmax against JAX, exactly, ties and broadcasting included; a mask and a
  stop_gradient inside a differentiable path.
* Every C kernel against the numpy reference bit for bit (NaN only as NaN), on values with
  ties, signed zeros, infinities and NaN.
* A hand-built model using all the differentiable ops trains in the host C as in the
  float64 reference.
"""
from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra import numpy as hnp
from jax import lax

import tte
from codegen.cexpr import split3
from codegen.ops import _bcast_strides
from op_harness import Arg, check_graph, check_op, f32
from tests.kernels.ckernels import fptr, load
from tte.interpreter import run
from tte.ir.graph import Graph
from tte.ir.types import DType
from tte.ops import get_op
from tte.ops.math import COMPARISONS, constant

grad_settings = settings(max_examples=15, deadline=None)
kernel_settings = settings(max_examples=60, deadline=None,
                           suppress_health_check=[HealthCheck.too_slow])
seeds = st.integers(0, 2**32 - 1)
shapes = st.lists(st.integers(1, 5), max_size=4).map(tuple)


def bshapes(n: int, max_dims: int = 4):
    return hnp.mutually_broadcastable_shapes(num_shapes=n, min_dims=0, max_dims=max_dims,
                                             max_side=4).map(lambda s: s.input_shapes)


def values(rng, shape, ties: bool) -> np.ndarray:
    """Normal values, or with ties: multiples of 0.5 in [-1, 1] (one in five equal)."""
    return rng.integers(-2, 3, shape) * 0.5 if ties else rng.standard_normal(shape)


def reduce_axes(draw, rank: int) -> list[int]:
    axes = draw(st.permutations(range(rank)), label="axes order")
    return list(axes[:draw(st.integers(1, rank), label="axes count")])


# ---- gradients against jax.vjp -------------------------------------------------------------

UNARY = {"exp": (jnp.exp, -4.0), "log": (jnp.log, 0.05), "sqrt": (jnp.sqrt, 0.05)}


@pytest.mark.parametrize("op", sorted(UNARY))
@grad_settings
@given(shape=shapes, seed=seeds)
def test_unary_grads(op, shape, seed):
    fn, lo = UNARY[op]  # log and sqrt on positive inputs
    rng = np.random.default_rng(seed)
    check_op(op, [Arg("x", rng.uniform(lo, 4.0, shape))], {}, fn, rng)


@pytest.mark.parametrize("op", ["maximum", "minimum"])
@grad_settings
@given(operands=bshapes(2), ties=st.booleans(), seed=seeds)
def test_maximum_minimum_grads(op, operands, ties, seed):
    rng = np.random.default_rng(seed)
    a, b = (values(rng, s, ties) for s in operands)
    check_op(op, [Arg("a", a), Arg("b", b)], {}, getattr(jnp, op), rng)


def test_maximum_tie_shares_the_gradient():
    rng = np.random.default_rng(0)
    res = check_op("maximum", [Arg("a", np.array([1.0, 2.0, 3.0])),
                               Arg("b", np.array([1.0, 5.0, 3.0]))], {}, jnp.maximum, rng)
    ct = run(res.graph, {"a": np.array([1.0, 2.0, 3.0]), "b": np.array([1.0, 5.0, 3.0]),
                         "ct": np.ones(3)})[res.grads["a"]]
    np.testing.assert_array_equal(ct, [0.5, 0.0, 0.5])


@grad_settings
@given(operands=bshapes(3), seed=seeds)
def test_where_grads(operands, seed):
    rng = np.random.default_rng(seed)
    sc, sa, sb = operands
    c = rng.choice([0.0, 1.0, -2.5], sc)  # any non-zero selects a
    check_op("where", [Arg("c", c, wrt=False), Arg("a", rng.standard_normal(sa)),
                       Arg("b", rng.standard_normal(sb))], {}, jnp.where, rng)


@grad_settings
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple), data=st.data(),
       keepdims=st.sampled_from([None, 0, 1]), ties=st.booleans(), seed=seeds)
def test_reduce_max_grads(shape, data, keepdims, ties, seed):
    axes = reduce_axes(data.draw, len(shape))
    rng = np.random.default_rng(seed)
    attrs = {"axes": axes} if keepdims is None else {"axes": axes, "keepdims": keepdims}
    keep = keepdims is None or bool(keepdims)
    check_op("reduce_max", [Arg("x", values(rng, shape, ties))], attrs,
             lambda x: jnp.max(x, axis=tuple(axes), keepdims=keep), rng)


@grad_settings
@given(operands=bshapes(2), seed=seeds)
def test_mask_and_stop_gradient_in_a_differentiable_path(operands, seed):
    """greater's mask multiplied into the output (its VJP gets a cotangent and returns
    none) and stop_gradient(x) * x, whose gradient is x, not 2x."""
    rng = np.random.default_rng(seed)
    sx, st_ = operands
    feeds = {"x": f32(values(rng, sx, True)), "t": f32(values(rng, st_, True))}
    g = Graph("mask")
    x, t = (g.add_input(k, v.shape) for k, v in feeds.items())
    masked = g.emit("mul", [g.emit("greater", [x, t]), x])
    y = g.emit("add", [masked, g.emit("mul", [g.emit("stop_gradient", [x]), x])])
    check_graph(g, y, feeds, ["x"],
                lambda x, t: jnp.where(x > t, 1.0, 0.0) * x + lax.stop_gradient(x) * x, rng)


# ---- comparisons and argmax: exact -----------------------------------------------------------

def run_one(op: str, arrays: list[np.ndarray], attrs: dict | None = None) -> np.ndarray:
    g = Graph(op)
    names = [g.add_input(f"in{k}", a.shape) for k, a in enumerate(arrays)]
    g.outputs = [g.emit(op, names, attrs)]
    return run(g, {f"in{k}": a for k, a in enumerate(arrays)})[g.outputs[0]]


@pytest.mark.parametrize("op", sorted(COMPARISONS))
@grad_settings
@given(operands=bshapes(2), seed=seeds)
def test_comparison(op, operands, seed):
    rng = np.random.default_rng(seed)
    a, b = (values(rng, s, True).astype(np.float32) for s in operands)
    got = run_one(op, [a, b])
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, np.asarray(getattr(jnp, op)(a, b), np.float32))


@grad_settings
@given(shape=st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple), data=st.data(),
       keepdims=st.sampled_from([None, 0, 1]), seed=seeds)
def test_argmax(shape, data, keepdims, seed):
    axis = data.draw(st.integers(-len(shape), len(shape) - 1), label="axis")
    x = values(np.random.default_rng(seed), shape, True).astype(np.float32)
    attrs = {"axis": axis} if keepdims is None else {"axis": axis, "keepdims": keepdims}
    got = run_one("argmax", [x], attrs)
    want = jnp.argmax(x, axis=axis, keepdims=bool(keepdims))  # the first maximum
    assert got.dtype == np.int32 and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


# ---- C kernels against the numpy references, bit for bit --------------------------------------

SPECIAL = [0.0, -0.0, 1.0, -1.0, 0.5, np.inf, -np.inf, np.nan]


def floats(shape, special=True):
    finite = st.floats(-1e4, 1e4, width=32)
    return hnp.arrays(np.float32, shape,
                      elements=st.one_of(st.sampled_from(SPECIAL), finite) if special else finite)


@pytest.fixture(scope="module")
def k():
    return load()


def ref(name: str, *args, **attrs) -> np.ndarray:
    return get_op(name).ref(*args, **attrs)[0]


def i32(ffi, vals):
    return ffi.new("int32_t[]", [int(v) for v in vals] or [1])


def assert_bits(got: np.ndarray, want: np.ndarray) -> None:
    """Equal bit patterns (+0 is not -0); a NaN only has to be a NaN."""
    assert got.shape == want.shape and got.dtype == want.dtype == np.float32
    nan = np.isnan(want)
    np.testing.assert_array_equal(np.isnan(got), nan)
    np.testing.assert_array_equal(np.where(nan, 0, got).view(np.uint32),
                                  np.where(nan, 0, want).view(np.uint32))


@pytest.mark.parametrize("op", ["exp", "log", "sqrt"])
@kernel_settings
@given(x=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=3),
                    elements=st.floats(width=32)))
def test_unary_kernels(k, op, x):
    ffi, lib = k
    with np.errstate(all="ignore"):  # overflow, log of 0 or below, sqrt below 0
        want = ref(op, x)
    y = np.empty_like(x)
    getattr(lib, f"tte_{op}_f32")(fptr(ffi, x), fptr(ffi, y), x.size)
    assert_bits(y, want)
    getattr(lib, f"tte_{op}_f32")(fptr(ffi, x), fptr(ffi, x), x.size)  # in place
    assert_bits(x, want)


def call_bcast(k, kernel: str, op_code, arrays: list[np.ndarray]) -> np.ndarray:
    """A strided kernel on contiguous operands, strides as the code generator gives them."""
    ffi, lib = k
    out = np.broadcast_shapes(*(a.shape for a in arrays))
    y = np.full(out, 7.0, np.float32)
    args = [a for arr in arrays for a in (fptr(ffi, arr), i32(ffi, _bcast_strides(arr.shape, out)))]
    head = [] if op_code is None else [getattr(lib, op_code)]
    getattr(lib, kernel)(*head, *args, fptr(ffi, y), i32(ffi, out), max(len(out), 1))
    return y


@pytest.mark.parametrize("op", sorted(COMPARISONS))
@kernel_settings
@given(operands=bshapes(2, 6), data=st.data())
def test_compare_kernel(k, op, operands, data):
    a, b = (data.draw(floats(s)) for s in operands)
    assert_bits(call_bcast(k, "tte_compare_bcast_f32", f"TTE_CMP_{op.upper()}", [a, b]),
                ref(op, a, b))


@pytest.mark.parametrize("op", ["maximum", "minimum"])
@kernel_settings
@given(operands=bshapes(2, 6), data=st.data())
def test_maximum_minimum_kernels(k, op, operands, data):
    a, b = (data.draw(floats(s)) for s in operands)
    assert_bits(call_bcast(k, f"tte_{op}_bcast_f32", None, [a, b]), ref(op, a, b))


@kernel_settings
@given(operands=bshapes(3, 6), data=st.data())
def test_where_kernel(k, operands, data):
    c, a, b = (data.draw(floats(s)) for s in operands)
    y = call_bcast(k, "tte_where_bcast_f32", None, [c, a, b])
    want = ref("where", c, a, b)
    np.testing.assert_array_equal(y.view(np.uint32), want.view(np.uint32))  # NaNs copied too


@kernel_settings
@given(shape=hnp.array_shapes(min_dims=1, max_dims=4, max_side=5), data=st.data())
def test_reduce_max_and_argmax_kernels(k, shape, data):
    ffi, lib = k
    first = data.draw(st.integers(0, len(shape) - 1), label="first axis")
    last = data.draw(st.integers(first, len(shape) - 1), label="last axis")
    x = data.draw(floats(shape, special=data.draw(st.booleans(), label="specials")))
    outer, length, inner = split3(shape, first, last)
    y = np.full(outer * inner, 7.0, np.float32)
    lib.tte_reduce_max_f32(fptr(ffi, x), fptr(ffi, y), outer, length, inner)
    want = ref("reduce_max", x, axes=list(range(first, last + 1)), keepdims=0)
    assert_bits(y.reshape(want.shape), want)
    idx = np.full(shape[:first] + shape[first + 1:], -1, np.int32)
    outer, length, inner = split3(shape, first, first)
    lib.tte_argmax_f32(fptr(ffi, x), ffi.cast("int32_t *", idx.ctypes.data), outer, length,
                       inner)
    np.testing.assert_array_equal(idx, ref("argmax", x, axis=first, keepdims=0))


# ---- end to end: a model with these ops trains in the host C as in the reference ---------------

def math_model() -> Graph:
    """linear -> softplus, leaky ReLU by where, maximum / minimum of branches, a sqrt,
    a differentiable reduce_max, minus a stop_gradient'ed max -> linear."""
    rng = np.random.default_rng(1)
    g = Graph("mathnet")
    x = g.add_input("x", (1, 5))
    w = g.add_param("w", (rng.standard_normal((6, 5)) * 0.5).astype(np.float32))
    b = g.add_param("b", (rng.standard_normal(6) * 0.1).astype(np.float32))
    w2 = g.add_param("w2", (rng.standard_normal((3, 6)) * 0.5).astype(np.float32))
    zero, one, slope = (constant(g, v, DType.f32) for v in (0.0, 1.0, 0.1))
    h = g.emit("linear", [x, w, b])
    soft = g.emit("log", [g.emit("add", [g.emit("exp", [h]), one])])
    leaky = g.emit("where", [g.emit("greater", [h, zero]), h, g.emit("mul", [h, slope])])
    high = g.emit("maximum", [soft, leaky])
    low = g.emit("minimum", [soft, g.emit("mul", [leaky, h])])
    z = g.emit("add", [high, g.emit("sqrt", [g.emit("add", [g.emit("mul", [low, low]), one])])])
    z = g.emit("add", [z, g.emit("reduce_max", [h], {"axes": [1]})])
    z = g.emit("sub", [z, g.emit("stop_gradient", [g.emit("reduce_max", [z], {"axes": [1]})])])
    g.outputs = [g.emit("linear", [z, w2])]
    return g


def test_model_trains_in_c_as_in_the_reference():
    prog = tte.compile(math_model(), optimizer={"lr": 0.1, "momentum": 0.9})
    ops = {n.op for n in prog.training_graph.nodes}
    assert {"exp", "log", "sqrt", "greater", "where", "maximum", "minimum", "reduce_max",
            "stop_gradient", "equal", "less_equal"} <= ops
    c, ref64 = prog.build(), prog.reference(np.float64)
    before = c.params()
    rng = np.random.default_rng(2)
    for _ in range(3):
        x, label = rng.standard_normal((1, 5)).astype(np.float32), int(rng.integers(0, 3))
        np.testing.assert_allclose(c.train_step(x, label), ref64.train_step(x, label), rtol=1e-5)
    after_c, after_ref = c.params(), ref64.params()
    for name, want in after_ref.items():
        scale = np.max(np.abs(want))
        np.testing.assert_allclose(after_c[name], want, rtol=1e-5, atol=1e-5 * scale,
                                   err_msg=name)
        assert np.max(np.abs(want - before[name])) > 1e-3 * scale, f"{name} did not train"
    x = rng.standard_normal((1, 5)).astype(np.float32)
    np.testing.assert_allclose(c.forward(x), ref64.forward(x), rtol=1e-5, atol=1e-6)
