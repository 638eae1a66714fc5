"""Every primitive TTE's JAX frontend converts, one hypothesis test each.

For every rule in tte/frontends/jax_trace.RULES, and the calls the tracer inlines (jax.jit,
custom_jvp, custom_vjp), hypothesis draws shapes, attributes and a numpy seed, and a small
JAX function applies the primitive to the run-time input x (and to parameters where layers
have them: conv kernels, dot operands). check() asserts that the primitive really is in the
function's jaxpr, traces it with tte.from_jax, runs the IR forward in the float64 reference
interpreter and compares it with JAX's float32 result on the same float32 input. A few
traced models are also compiled for training and their host C forward compared with JAX.
"""
from __future__ import annotations

import operator

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import assume, given, settings, strategies as st
from jax import lax

import tte
from tte.interpreter import run

# JAX computes in float32: an element-wise op is off by a few ulps (2**-24 ~ 6e-8 each), and
# a sum of K <= 256 terms (a conv or dot has <= 64) by ~sqrt(K) ulps of its partial sums,
# i.e. <= ~1e-6 of the output's largest magnitude; the float64 run is exact in comparison.
# So 1e-5 of that magnitude leaves a 10x margin (400-600 examples per test pass), while a
# misconverted primitive (a wrong axis, pad or constant) is off by O(that magnitude).
RTOL = 1e-5
EXAMPLES = settings(max_examples=50, deadline=None)
LAYERS = settings(max_examples=150, deadline=None)  # more attributes to cover
seeds = st.integers(0, 2**32 - 1)
shapes = hnp.array_shapes(min_dims=1, max_dims=4, max_side=4)
broadcasting = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=1, max_dims=4, max_side=3)


def floats(bound: float) -> st.SearchStrategy[float]:
    """Constants in [-bound, bound]; no subnormals, which XLA on CPU flushes to zero."""
    return st.floats(-bound, bound, width=32, allow_subnormal=False)


def normal(rng, shape) -> np.ndarray:
    return rng.standard_normal(shape).astype(np.float32)


def away_from_zero(rng, shape) -> np.ndarray:
    """|v| in [0.5, 2]: safe denominators, logarithms, square roots and negative powers."""
    return (rng.choice([-1, 1], shape) * rng.uniform(.5, 2, shape)).astype(np.float32)


def positive(rng, shape) -> np.ndarray:
    return np.abs(away_from_zero(rng, shape))


def primitives(jaxpr) -> set[str]:
    """The primitives of jaxpr and of every sub-jaxpr its equations call."""
    names = set()
    for eqn in jaxpr.eqns:
        names.add(eqn.primitive.name)
        for param in eqn.params.values():
            for sub in param if isinstance(param, (tuple, list)) else [param]:
                sub = getattr(sub, "jaxpr", sub)  # a ClosedJaxpr's Jaxpr
                if hasattr(sub, "eqns"):
                    names |= primitives(sub)
    return names


def assert_close(got: np.ndarray, want: np.ndarray) -> None:
    assert got.shape == want.shape
    if want.dtype.kind in "iu":  # indices: exactly
        assert got.dtype.kind in "iu"
        np.testing.assert_array_equal(got, want)
    else:
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=RTOL * np.abs(want).max(initial=0))


def check(fn, x: np.ndarray, *prims: str, params: dict | None = None) -> None:
    """fn(params, x) contains prims, and its traced IR computes what JAX does."""
    params = params or {}
    found = primitives(jax.make_jaxpr(fn)(params, x).jaxpr)
    assert set(prims) <= found, f"the function uses {sorted(found)}, not all of {prims}"
    g = tte.from_jax(fn, params, x)
    assert_close(run(g, {"x": x}, dtype=np.float64)[g.outputs[0]], np.asarray(fn(params, x)))


# --- convolutions and products --------------------------------------------------------

NAMED_LAYOUTS = {"W": [("NCW", "OIW", "NCW"), ("NWC", "WIO", "NWC")],
                 "HW": [("NCHW", "OIHW", "NCHW"), ("NHWC", "HWIO", "NHWC")]}


@st.composite
def conv_case(draw):
    """x's shape, the kernel's and conv_general_dilated's keyword arguments: a 1-D or 2-D
    plain, grouped or depthwise convolution in a named or random layout."""
    spatial = draw(st.sampled_from(["W", "HW"]))
    random_layout = st.tuples(*(st.permutations(pair + spatial).map("".join)
                                for pair in ("NC", "OI", "NC")))
    lhs, rhs, out = draw(st.sampled_from(NAMED_LAYOUTS[spatial]) | random_layout)
    kind = draw(st.sampled_from(["plain", "grouped", "depthwise"]))
    if kind == "depthwise":
        c = g = draw(st.integers(1, 4))
        o = c * draw(st.integers(1, 2))
    else:
        g = 1 if kind == "plain" else draw(st.integers(2, 3))
        c, o = g * draw(st.integers(1, 3)), g * draw(st.integers(1, 3))
    padding = draw(st.sampled_from(["SAME", "VALID", "explicit"]))
    sizes, kernel, strides, dilation, pads = {"N": draw(st.integers(1, 2)), "C": c}, {}, [], [], []
    for d in sorted(spatial, key=rhs.index):  # JAX orders spatial attributes as rhs does
        kernel[d], dil = draw(st.integers(1, 3)), draw(st.integers(1, 2))
        lo, hi = (draw(st.integers(0, 2)), draw(st.integers(0, 2))) if padding == "explicit" \
            else (0, 0)
        sizes[d] = draw(st.integers(max(1, (kernel[d] - 1) * dil + 1 - lo - hi), 7))
        strides.append(draw(st.integers(1, 3)))
        dilation.append(dil)
        pads.append((lo, hi))
    w_sizes = {"O": o, "I": c // g, **kernel}
    return (tuple(sizes[a] for a in lhs), tuple(w_sizes[a] for a in rhs),
            {"window_strides": tuple(strides), "padding": pads if padding == "explicit" else
             padding, "rhs_dilation": tuple(dilation), "dimension_numbers": (lhs, rhs, out),
             "feature_group_count": g})


@LAYERS
@given(case=conv_case(), seed=seeds)
def test_conv_general_dilated(case, seed):
    x_shape, w_shape, kwargs = case
    rng = np.random.default_rng(seed)
    check(lambda p, x: lax.conv_general_dilated(x, p["w"], **kwargs), normal(rng, x_shape),
          "conv_general_dilated", params={"w": normal(rng, w_shape)})


# (spec, which operand is x): x @ W, x @ W.T, W @ x, batched, several contracted axes
NAMED_EINSUMS = [("nk,km->nm", 0), ("nk,mk->nm", 0), ("mk,k->m", 1), ("bij,bjk->bik", 0),
                 ("nchw,chk->nk", 0)]


@st.composite
def einsum_case(draw):
    """(spec, x's operand, letter sizes): a named product, or random batch, free and
    contracted letters in random orders on both operands and the result."""
    if draw(st.booleans()):
        spec, xi = draw(st.sampled_from(NAMED_EINSUMS))
    else:
        letters = iter("abcdefgh")
        b, l, r, k = ("".join(next(letters) for _ in range(draw(st.integers(lo, 2))))
                      for lo in (0, 0, 0, 1))  # batch, lhs free, rhs free, contracted
        perm = lambda s: "".join(draw(st.permutations(s)))  # noqa: E731
        spec = f"{perm(b + l + k)},{perm(b + k + r)}->{perm(b + l + r)}"
        xi = draw(st.integers(0, 1))
    return spec, xi, {a: draw(st.integers(1, 4)) for a in sorted(set(spec) - set(",->"))}


@LAYERS
@given(case=einsum_case(), seed=seeds)
def test_dot_general(case, seed):
    spec, xi, sizes = case
    lhs_rhs = [tuple(sizes[a] for a in s) for s in spec.split("->")[0].split(",")]
    rng = np.random.default_rng(seed)
    check(lambda p, x: jnp.einsum(spec, *((x, p["w"]) if xi == 0 else (p["w"], x))),
          normal(rng, lhs_rhs[xi]), "dot_general", params={"w": normal(rng, lhs_rhs[1 - xi])})


FIXED = np.random.default_rng(0).standard_normal((3, 1, 3, 3)).astype(np.float32)
CONSTANT_OPERANDS = {  # a closed-over array where layers usually have a parameter
    "x @ constant": (lambda p, x: x @ FIXED[:, 0, 0], (2, 3)),
    "einsum with a constant": (lambda p, x: jnp.einsum("nk,km->mn", x, FIXED[:, 0, 0]), (2, 3)),
    "conv with a constant kernel": (
        lambda p, x: lax.conv_general_dilated(x, FIXED, (1, 1), "SAME"), (1, 1, 4, 4))}


@pytest.mark.parametrize("name", sorted(CONSTANT_OPERANDS))
def test_constant_layer_operands(name):
    fn, shape = CONSTANT_OPERANDS[name]
    check(fn, normal(np.random.default_rng(0), shape), "conv_general_dilated" if "conv" in name
          else "dot_general")


# --- element-wise ---------------------------------------------------------------------

ARITHMETIC = {"add": operator.add, "sub": operator.sub, "mul": operator.mul,
              "div": operator.truediv}


@EXAMPLES
@given(op=st.sampled_from(sorted(ARITHMETIC)), other=st.sampled_from(["param", "const", "literal"]),
       x_first=st.booleans(), shapes=broadcasting, seed=seeds)
def test_arithmetic_broadcasts(op, other, x_first, shapes, seed):
    """x against a parameter, a constant the function closes over or a Python scalar."""
    rng = np.random.default_rng(seed)
    x, v = (away_from_zero(rng, s) for s in shapes.input_shapes)
    operand = {"param": lambda p: p["w"], "const": lambda p: v,
               "literal": lambda p: float(v.flat[0])}
    f = ARITHMETIC[op]
    check(lambda p, x: f(x, operand[other](p)) if x_first else f(operand[other](p), x), x, op,
          params={"w": v})


MAX_MIN = {  # name: (function of (p, x, lo, hi), primitives)
    "relu": (lambda p, x, lo, hi: jax.nn.relu(x), ["custom_jvp_call", "max"]),
    "relu6": (lambda p, x, lo, hi: jax.nn.relu6(x), ["custom_jvp_call", "max", "min"]),
    "clip": (lambda p, x, lo, hi: jnp.clip(x, lo, hi), ["max", "min"]),
    "max_runtime": (lambda p, x, lo, hi: jnp.maximum(x, p["w"]), ["max"]),
    "min_runtime": (lambda p, x, lo, hi: jnp.minimum(p["w"], x), ["min"]),
    "clamp": (lambda p, x, lo, hi: lax.clamp(np.float32(lo), x, np.float32(hi)), ["clamp"]),
    "clamp_runtime": (lambda p, x, lo, hi: lax.clamp(p["lo"], x, p["hi"]), ["clamp"]),
}


@EXAMPLES
@given(name=st.sampled_from(sorted(MAX_MIN)), lo=floats(2), hi=floats(2), seed=seeds,
       shapes=broadcasting)
def test_max_min_clamp(name, lo, hi, shapes, seed):
    """Against constants (ReLU, relu6, clip: also lo > hi) and run-time operands."""
    fn, prims = MAX_MIN[name]
    rng = np.random.default_rng(seed)
    (xs, ws), x = shapes.input_shapes, normal(rng, shapes.input_shapes[0]) * 4
    params = {"w": normal(rng, ws), "lo": normal(rng, xs), "hi": normal(rng, xs)}
    check(lambda p, x: fn(p, x, lo, hi), x, *prims, params=params)


@EXAMPLES
@given(chain=st.lists(st.tuples(st.sampled_from(["max", "min"]),
                                st.sampled_from([0., 6.]) | floats(8)),
                      min_size=1, max_size=4),
       shape=shapes, seed=seeds)
def test_max_min_chains(chain, shape, seed):
    """Chains of max / min with constants, which the frontend folds into ReLUs and clips."""
    def fn(p, x):
        for prim, c in chain:
            x = (jnp.maximum if prim == "max" else jnp.minimum)(x, c)
        return x
    check(fn, normal(np.random.default_rng(seed), shape) * 4, *{prim for prim, _ in chain})


def test_min_of_min():
    """min(clip(x, max=a), b) is one clip without a lower bound (relu6's 0 is relu's only)."""
    check(lambda p, x: jnp.minimum(jnp.minimum(x, 2.), 1.), np.float32([-3, -.5, .5, 3]), "min")


UNARY = {  # primitive: (function, input values)
    "neg": (operator.neg, normal), "exp": (jnp.exp, normal), "log": (jnp.log, positive),
    "logistic": (jax.nn.sigmoid, normal), "tanh": (jnp.tanh, normal),
    "sqrt": (jnp.sqrt, positive), "rsqrt": (lax.rsqrt, positive), "square": (jnp.square, normal),
    "stop_gradient": (lax.stop_gradient, normal), "copy": (jnp.copy, normal),
    # composed from IR ops
    "expm1": (jnp.expm1, normal), "log1p": (jnp.log1p, positive), "abs": (jnp.abs, normal),
    "sign": (jnp.sign, lambda rng, shape: normal(rng, shape) * rng.integers(0, 2, shape)),
    "is_finite": (lambda x: jnp.isfinite(x).astype(jnp.float32),
                  lambda rng, shape: np.where(rng.integers(0, 2, shape), normal(rng, shape),
                                              np.float32(np.inf)))}


@EXAMPLES
@given(prim=st.sampled_from(sorted(UNARY)), shape=shapes, seed=seeds)
@pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")  # is_finite: inf - inf
def test_unary(prim, shape, seed):
    fn, values = UNARY[prim]
    check(lambda p, x: fn(x), values(np.random.default_rng(seed), shape), prim)


@EXAMPLES
@given(y=st.integers(-4, 6).filter(bool), shape=shapes, seed=seeds)
def test_integer_pow(y, shape, seed):
    rng = np.random.default_rng(seed)
    x = away_from_zero(rng, shape) if y < 0 else normal(rng, shape)
    check(lambda p, x: lax.integer_pow(x, y), x, "integer_pow")


COMPARISONS = {"gt": operator.gt, "ge": operator.ge, "lt": operator.lt, "le": operator.le,
               "eq": operator.eq, "ne": operator.ne}


@EXAMPLES
@given(cmp=st.sampled_from(sorted(COMPARISONS)), shape=shapes, seed=seeds,
       against=st.sampled_from(["param", "literal", "constant condition"]))
def test_select_n(cmp, against, shape, seed):
    """jnp.where on a comparison of x with a parameter or a scalar (both equal to x in places,
    so that eq / ne / ge / le see ties), or on a constant mask."""
    rng = np.random.default_rng(seed)
    x = normal(rng, shape)
    w, lit = np.where(rng.random(shape) < .5, x, normal(rng, shape)), float(x.flat[0])
    mask = rng.random(shape) < .5
    cond = {"param": lambda p, x: COMPARISONS[cmp](x, p["w"]),
            "literal": lambda p, x: COMPARISONS[cmp](x, lit),
            "constant condition": lambda p, x: mask}[against]
    prims = ["select_n"] if against == "constant condition" else ["select_n", cmp]
    check(lambda p, x: jnp.where(cond(p, x), x, p["w"]), x, *prims, params={"w": w})


LOGIC = {"and": operator.and_, "or": operator.or_, "not": lambda a, b: ~a}


@EXAMPLES
@given(op=st.sampled_from(sorted(LOGIC)), as_float=st.booleans(), seed=seeds,
       shapes=broadcasting)
def test_boolean_logic(op, as_float, shapes, seed):
    """and / or / not of comparisons with a broadcast parameter and a scalar, used as a where
    condition or as a float mask."""
    rng = np.random.default_rng(seed)
    x, w = (normal(rng, s) for s in shapes.input_shapes)
    lit = float(x.flat[-1])

    def fn(p, x):
        m = LOGIC[op](x > p["w"], x <= lit)
        return m.astype(jnp.float32) * x if as_float else jnp.where(m, x, p["w"])
    check(fn, x, op, "convert_element_type" if as_float else "select_n", params={"w": w})


# --- reductions -----------------------------------------------------------------------

REDUCTIONS = {"sum": (jnp.sum, ["reduce_sum"]), "max": (jnp.max, ["reduce_max"]),
              "min": (jnp.min, ["reduce_min"]), "mean": (jnp.mean, ["reduce_sum", "div"])}


@EXAMPLES
@given(name=st.sampled_from(sorted(REDUCTIONS)), keepdims=st.booleans(), data=st.data(),
       seed=seeds)
def test_reductions(name, keepdims, data, seed):
    fn, prims = REDUCTIONS[name]
    shape = data.draw(shapes)
    axes = data.draw(hnp.valid_tuple_axes(len(shape), min_size=1))
    check(lambda p, x: fn(x, axes, keepdims=keepdims),
          normal(np.random.default_rng(seed), shape), *prims)


@EXAMPLES
@given(keepdims=st.booleans(), data=st.data(), seed=seeds)
def test_argmax(keepdims, data, seed):
    shape = data.draw(shapes)
    axis = data.draw(st.integers(-len(shape), len(shape) - 1))
    x = np.random.default_rng(seed).permutation(np.prod(shape)).reshape(shape)  # no ties
    check(lambda p, x: jnp.argmax(x, axis, keepdims=keepdims), x.astype(np.float32), "argmax")


# --- data movement --------------------------------------------------------------------

@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_reshape(data, seed):
    shape = data.draw(shapes)
    new, rest = [], int(np.prod(shape))
    for _ in range(data.draw(st.integers(0, 3))):
        new.append(data.draw(st.sampled_from([d for d in range(1, rest + 1) if rest % d == 0])))
        rest //= new[-1]
    new = tuple(data.draw(st.permutations(new + [rest])))
    assume(new != shape)  # else jnp emits no reshape
    check(lambda p, x: x.reshape(new), normal(np.random.default_rng(seed), shape), "reshape")


@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_squeeze(data, seed):
    shape = data.draw(shapes)
    at = data.draw(st.integers(0, len(shape)))
    shape = shape[:at] + (1,) + shape[at:]
    ones = [i for i, d in enumerate(shape) if d == 1]
    axes = tuple(data.draw(st.lists(st.sampled_from(ones), min_size=1, unique=True)))
    check(lambda p, x: jnp.squeeze(x, axes), normal(np.random.default_rng(seed), shape),
          "squeeze")


@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_expand_dims(data, seed):
    shape = data.draw(shapes)
    rank = len(shape) + data.draw(st.integers(1, 2))
    axes = tuple(data.draw(st.lists(st.integers(0, rank - 1), min_size=rank - len(shape),
                                    max_size=rank - len(shape), unique=True)))
    check(lambda p, x: jnp.expand_dims(x, axes), normal(np.random.default_rng(seed), shape),
          "broadcast_in_dim")


@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_transpose(data, seed):
    shape = data.draw(hnp.array_shapes(min_dims=2, max_dims=5, max_side=3))
    perm = tuple(data.draw(st.permutations(range(len(shape)))))
    assume(perm != tuple(range(len(shape))))
    check(lambda p, x: jnp.transpose(x, perm), normal(np.random.default_rng(seed), shape),
          "transpose")


BROADCAST_USES = {  # what reads the broadcast: nothing, or an op that is not element-wise
    "output": lambda b, p: b, "reshape": lambda b, p: b.reshape(-1),
    "concatenate": lambda b, p: jnp.concatenate([p["w"], b], 0), "transpose": lambda b, p: b.T,
    "reduce_sum": lambda b, p: b.sum(0)}


@EXAMPLES
@given(use=st.sampled_from(sorted(BROADCAST_USES)), data=st.data(), seed=seeds)
def test_broadcast_in_dim(use, data, seed):
    target = data.draw(shapes)
    lead = data.draw(st.integers(0, len(target) - 1))
    shape = tuple(d if data.draw(st.booleans()) else 1 for d in target[lead:])
    assume(shape != target)  # else jnp.broadcast_to emits nothing
    rng = np.random.default_rng(seed)
    check(lambda p, x: BROADCAST_USES[use](jnp.broadcast_to(x, target), p), normal(rng, shape),
          "broadcast_in_dim", params={"w": normal(rng, target)})


@EXAMPLES
@given(negative=st.booleans(), value=floats(2), data=st.data(), seed=seeds)
def test_pad(negative, value, data, seed):
    """jnp.pad, or lax.pad whose negative edges cut into the operand (and its padding)."""
    shape = data.draw(shapes)
    x = normal(np.random.default_rng(seed), shape)
    if negative:
        config = []
        for d in shape:
            lo = data.draw(st.integers(1 - d, 2))
            config.append((lo, data.draw(st.integers(1 - d - lo, 2)), 0))  # >= 1 element left
        check(lambda p, x: lax.pad(x, np.float32(value), config), x, "pad")
    else:
        widths = [(data.draw(st.integers(0, 2)), data.draw(st.integers(0, 2))) for _ in shape]
        assume(any(map(any, widths)))  # else jnp.pad emits nothing
        check(lambda p, x: jnp.pad(x, widths, constant_values=value), x, "pad")


@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_concatenate(data, seed):
    """x with parameters and constants the function closes over, along a random axis."""
    shape = data.draw(shapes)
    axis = data.draw(st.integers(0, len(shape) - 1))
    others = data.draw(st.lists(st.sampled_from(["param", "const"]), min_size=1, max_size=3))
    at = data.draw(st.integers(0, len(others)))
    rng = np.random.default_rng(seed)
    values = [normal(rng, shape[:axis] + (data.draw(st.integers(1, 3)),) + shape[axis + 1:])
              for _ in others]
    params = {str(i): v for i, (kind, v) in enumerate(zip(others, values)) if kind == "param"}

    def fn(p, x):
        parts = [p[str(i)] if kind == "param" else v
                 for i, (kind, v) in enumerate(zip(others, values))]
        return jnp.concatenate(parts[:at] + [x] + parts[at:], axis)
    check(fn, normal(rng, shape), "concatenate", params=params)


@EXAMPLES
@given(data=st.data(), seed=seeds)
def test_slice(data, seed):
    shape = data.draw(shapes)
    starts = [data.draw(st.integers(0, d - 1)) for d in shape]
    limits = [data.draw(st.integers(s + 1, d)) for s, d in zip(starts, shape)]
    strides = [data.draw(st.integers(1, 3)) for _ in shape]
    assume((starts, limits, strides) != ([0] * len(shape), list(shape), [1] * len(shape)))
    check(lambda p, x: lax.slice(x, starts, limits, strides),
          normal(np.random.default_rng(seed), shape), "slice")


# --- window reductions ----------------------------------------------------------------

POOLS = {"max": (-np.inf, lax.max, ["reduce_window_max"]),
         "sum": (0., lax.add, ["reduce_window_sum"]),
         "avg": (0., lax.add, ["reduce_window_sum", "div"])}  # the sum over the window size


# named layouts, and the windowed H / W axes among others in any order (a 2-D pool of the
# tensor with the other axes merged)
layouts = st.sampled_from(["NCHW", "NHWC", "NCW", "NWC"]) | st.tuples(
    st.sampled_from(["", "N", "NC", "NCD"]), st.sampled_from(["W", "HW"])).map("".join).filter(
    lambda s: len(s) > 1).flatmap(lambda s: st.permutations(s).map("".join))


@st.composite
def window_case(draw, pool):
    """x's shape and reduce_window's window, strides, padding and window dilation (not for
    sums: TTE's average pools have none) over the H and W axes of a layout."""
    layout = draw(layouts)
    padding = draw(st.sampled_from(["SAME", "VALID", "explicit"]))
    dims = []  # (size, window, stride, dilation, (lo, hi)) per axis
    for a in layout:
        if a not in "HW":
            dims.append((draw(st.integers(1, 3)), 1, 1, 1, (0, 0)))
            continue
        k, d = draw(st.integers(1, 3)), draw(st.integers(1, 2)) if pool == "max" else 1
        lo, hi = (draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))) \
            if padding == "explicit" else (0, 0)
        size = draw(st.integers(max(1, (k - 1) * d + 1 - lo - hi), 7))
        dims.append((size, k, draw(st.integers(1, 3)), d, (lo, hi)))
    shape, window, strides, dilation, pads = zip(*dims)
    return shape, (window, strides, list(pads) if padding == "explicit" else padding, None,
                   dilation)


@LAYERS
@given(pool=st.sampled_from(sorted(POOLS)), data=st.data(), seed=seeds)
def test_reduce_window(pool, data, seed):
    init, op, prims = POOLS[pool]
    shape, args = data.draw(window_case(pool))
    x = normal(np.random.default_rng(seed), shape)

    def fn(p, x):
        y = lax.reduce_window(x, init, op, *args)
        return y / np.prod(args[0]) if pool == "avg" else y
    assume(np.isfinite(fn({}, x)).all())  # no max over a window of padding alone (-inf)
    check(fn, x, *prims)


# --- calls, and what is not supported -------------------------------------------------

@jax.custom_vjp
def twice_plus_one(x):
    return 2 * x + 1


twice_plus_one.defvjp(lambda x: (twice_plus_one(x), None), lambda _, g: (2 * g,))

CALLS = {  # name: (function, primitives it must contain)
    "jit": (jax.jit(lambda x: jnp.tanh(x) * 2), ["jit"]),  # "pjit" before JAX 0.7
    "relu": (jax.nn.relu, ["custom_jvp_call"]), "relu6": (jax.nn.relu6, ["custom_jvp_call"]),
    "hard_swish": (jax.nn.hard_swish, ["custom_jvp_call"]),
    "log_softmax": (jax.nn.log_softmax, ["reduce_max", "stop_gradient", "exp", "log"]),
    "softmax": (jax.nn.softmax, ["reduce_max", "stop_gradient", "exp"]),
    "sigmoid": (jax.nn.sigmoid, ["logistic"]),
    "custom_vjp": (twice_plus_one, ["custom_vjp_call"])}


@EXAMPLES
@given(name=st.sampled_from(sorted(CALLS)), shape=shapes, seed=seeds)
def test_calls_are_inlined(name, shape, seed):
    fn, prims = CALLS[name]
    check(lambda p, x: fn(x), normal(np.random.default_rng(seed), shape) * 4, *prims)


UNSUPPORTED = [("sin", lambda p, x: jnp.sin(x)),
               ("cumsum", lambda p, x: lax.cumsum(x, 0)),
               ("pad", lambda p, x: lax.pad(x, 0., [(0, 0, 1), (0, 0, 0)]))]  # interior


@pytest.mark.parametrize("prim, fn", UNSUPPORTED, ids=[u[0] for u in UNSUPPORTED])
def test_unsupported_primitive_is_named_with_its_line(prim, fn):
    line = fn.__code__.co_firstlineno
    with pytest.raises(tte.UnsupportedError,
                       match=rf"'{prim}' \(at .*test_jax_primitives\.py:{line}\)"):
        tte.from_jax(fn, {}, np.ones((2, 3), np.float32))


# --- the host C build -----------------------------------------------------------------

def nhwc_cnn(p, x):
    """Grouped NHWC conv (SAME), relu6, max pool, a dense layer as x @ W.T."""
    y = lax.conv_general_dilated(x, p["conv"], (1, 1), "SAME", feature_group_count=2,
                                 dimension_numbers=("NHWC", "HWIO", "NHWC"))
    y = lax.reduce_window(jax.nn.relu6(y + p["b"]), -jnp.inf, lax.max, (1, 2, 2, 1),
                          (1, 2, 2, 1), "VALID")
    return y.reshape(1, -1) @ p["dense"].T


def conv1d_avg(p, x):
    """Depthwise strided, dilated 1-D conv with asymmetric pads, tanh, average pool, a
    contraction over two axes, log_softmax."""
    y = jnp.tanh(lax.conv_general_dilated(x, p["conv"], (2,), [(1, 2)], rhs_dilation=(2,),
                                          feature_group_count=3,
                                          dimension_numbers=("NCW", "OIW", "NCW")))
    y = lax.reduce_window(y, 0., lax.add, (1, 1, 2), (1, 1, 2), "VALID") / 2
    return jax.nn.log_softmax(jnp.einsum("ncw,cwk->nk", y, p["dense"]))


def gated(p, x):
    """Batched product, leaky ReLU by where, clip, exp, concat, pad, strided slice, max."""
    h = jnp.einsum("bij,bjk->bik", x.reshape(2, 2, 3), p["w"])
    h = jnp.where(h > 0, h, 0.1 * h).reshape(1, -1)
    h = jnp.concatenate([jnp.clip(h, -1, 1), jnp.exp(-jnp.square(h)), h], -1)
    h = jnp.pad(h, ((0, 0), (1, 2)))[:, ::2]
    return jnp.maximum(h @ p["dense"], jnp.max(h, keepdims=True))


HOST_MODELS = {  # function, parameter shapes, input shape
    "nhwc_cnn": (nhwc_cnn, {"conv": (3, 3, 1, 4), "b": (4,), "dense": (5, 36)}, (1, 6, 6, 2)),
    "conv1d_avg": (conv1d_avg, {"conv": (6, 1, 3), "dense": (6, 2, 4)}, (1, 3, 9)),
    "gated": (gated, {"w": (2, 3, 4), "dense": (26, 5)}, (1, 12))}


@pytest.mark.parametrize("name", sorted(HOST_MODELS))
def test_host_c_forward(name):
    """Traced models compiled for training: the generated C's forward is JAX's."""
    fn, param_shapes, x_shape = HOST_MODELS[name]
    rng = np.random.default_rng(0)
    params = {k: normal(rng, s) for k, s in param_shapes.items()}
    x = normal(rng, x_shape)
    prog = tte.compile(tte.from_jax(fn, params, x), optimizer={"lr": .05, "momentum": .9})
    assert_close(prog.build().forward(x), np.asarray(fn(params, x)))


TESTED = {  # the primitives the tests above check(); a new rule needs a test to join
    "conv_general_dilated", "dot_general", *ARITHMETIC, "max", "min", "clamp", *UNARY,
    "integer_pow", "select_n", "gt", "ge", "lt", "le", "eq", "ne", "and", "or", "not",
    "convert_element_type", "reduce_sum", "reduce_max", "reduce_min", "argmax", "reshape",
    "squeeze", "transpose", "broadcast_in_dim", "pad", "concatenate", "slice",
    "reduce_window_max", "reduce_window_sum"}


def test_every_rule_is_tested():
    from tte.frontends.jax_trace import RULES
    assert set(RULES) - TESTED <= {"copy_p"}, "a rule without a test"  # copy_p: older JAX
