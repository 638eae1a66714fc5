"""Element-wise primitives, comparisons, selection and reductions.

Chains the IR has no op for are composed from IR ops: integer_pow by repeated products,
rsqrt as 1 / sqrt, expm1/log1p/abs/sign/is_finite, boolean and/or/not on 0/1 masks by
arithmetic, reduce_min through reduce_max of the negation. The other way round, chains
the IR has one op for become that op: max/min against a constant ReLU or clip, a sum
over its count reduce_mean, jax.nn's hard_sigmoid/hard_swish/softmax/log_softmax theirs.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tte.frontends.jax_trace import Tracer, Unsupported, rule
from tte.ir import Role

BINARY = {"add": "add", "sub": "sub", "mul": "mul", "div": "div", "max": "maximum",
          "min": "minimum", "gt": "greater", "ge": "greater_equal", "lt": "less",
          "le": "less_equal", "eq": "equal", "ne": "not_equal"}
UNARY = {"neg": "neg", "exp": "exp", "log": "log", "sqrt": "sqrt", "logistic": "sigmoid",
         "tanh": "tanh", "stop_gradient": "stop_gradient"}


def _runtime_shape(t: Tracer, ins: list) -> tuple[int, ...]:
    return tuple(np.broadcast_shapes(*[t.shape(v) for v in ins if isinstance(v, str)]))


def _names(t: Tracer, ins: list) -> list[str]:
    shape = _runtime_shape(t, ins)
    return [t.name(v, shape) for v in ins]


def _scalar(v: Any) -> float | None:
    """The value of a constant holding one number (perhaps broadcast), else None."""
    if isinstance(v, str):
        return None
    arr = np.asarray(v)
    return float(arr.flat[0]) if arr.size and np.all(arr == arr.flat[0]) else None


def binary(t: Tracer, op: str, a: Any, b: Any) -> str:
    return t.emit(op, _names(t, [a, b]))


@rule(*BINARY, elementwise=True)
def _binary(t: Tracer, ins: list, eqn: Any) -> str:
    prim = eqn.primitive.name
    if prim in ("max", "min"):
        return _max_min(t, prim, *ins)
    if prim == "div" and isinstance(ins[0], str) and ins[0] in t.scaled:
        count, quotient = t.scaled[ins[0]]
        if _scalar(ins[1]) == count:  # sum / count: the mean the user meant
            return quotient()
    return (_hard_activation(t, prim, *ins) or _softmax(t, prim, *ins)
            or binary(t, BINARY[prim], *ins))


def _made(t: Tracer, v: Any, op: str) -> tuple[list[str], dict] | None:
    """(inputs, attrs) of the node making v if it is `op`, looking through reshapes."""
    entry = t.made.get(v) if isinstance(v, str) else None
    while entry and entry[0] == "reshape" and op != "reshape":
        entry = t.made.get(entry[1][0])
    return (entry[1], entry[2]) if entry and entry[0] == op else None


def _first_input(t: Tracer, v: Any, op: str) -> str | None:
    made = _made(t, v, op)
    return made[0][0] if made else None


def _softmax(t: Tracer, prim: str, a: Any, b: Any) -> str | None:
    """jax.nn.log_softmax / softmax as the IR's one-node ops: with z = x - stop_gradient(
    max(x)) along one axis, z - log(sum(exp(z))) or exp(z) / sum(exp(z))."""
    if prim not in ("sub", "div"):
        return None
    summed = _made(t, _first_input(t, b, "log") if prim == "sub" else b, "reduce_sum")
    exps = summed[0][0] if summed else None
    z = _first_input(t, exps, "exp")
    if z is None or a != (z if prim == "sub" else exps):
        return None
    shifted = _made(t, z, "sub")
    peak = shifted and _made(t, _first_input(t, shifted[0][1], "stop_gradient"), "reduce_max")
    axes = summed[1]["axes"]
    if not peak or peak[0][0] != shifted[0][0] or peak[1]["axes"] != axes or len(axes) != 1:
        return None
    return t.emit("log_softmax" if prim == "sub" else "softmax", [peak[0][0]], {"axis": axes[0]})


def _hard_activation(t: Tracer, prim: str, a: Any, b: Any) -> str | None:
    """jax.nn.hard_sigmoid (relu6(x + 3) / 6) and hard_swish (x times that) as the IR's
    one-node activations instead of four nodes."""
    if prim == "div" and _scalar(b) == 6 and isinstance(a, str):
        op, (inner, *_), attrs = t.made.get(a, ("", [""], {}))
        if op == "clip" and (attrs.get("min"), attrs.get("max")) == (0.0, 6.0):
            op, inputs, _ = t.made.get(inner, ("", [], {}))
            if op == "add" and len(inputs) == 2 and _ir_scalar(t, inputs[1]) == 3:
                return t.emit("hard_sigmoid", inputs[:1], {"alpha": 1 / 6, "beta": 0.5})
    if prim == "mul":
        for x, s in ((a, b), (b, a)):
            op, inputs, attrs = t.made.get(s, ("", [], {})) if isinstance(s, str) else ("",) * 3
            if op == "hard_sigmoid" and inputs == [x] and attrs["alpha"] == 1 / 6:
                return t.emit("hard_swish", [x])
    return None


def _ir_scalar(t: Tracer, name: str) -> float | None:
    """The number an IR constant holds everywhere, else None."""
    return _scalar(t.g.data[name]) if t.g.values[name].role == Role.const else None


def _max_min(t: Tracer, prim: str, a: Any, b: Any) -> str:
    x, c = (a, _scalar(b)) if isinstance(a, str) else (b, _scalar(a))
    if c is None:
        return binary(t, BINARY[prim], a, b)
    if prim == "max":
        if c == -np.inf:
            return x
        return t.emit("relu", [x]) if c == 0 else t.emit("clip", [x], {"min": c})
    if c == np.inf:
        return x
    op, inputs, attrs = t.made.get(x, ("", [], {}))
    if op in ("relu", "clip"):  # one clip for relu6 = min(max(x, 0), 6), and min(min(..))
        low = 0.0 if op == "relu" else attrs.get("min", -np.inf)
        return t.emit("clip", inputs, {"min": low, "max": min(attrs.get("max", np.inf), c)})
    return t.emit("clip", [x], {"max": c})


@rule("clamp", elementwise=True)
def _clamp(t: Tracer, ins: list, eqn: Any) -> str:
    lo, x, hi = ins
    return _max_min(t, "min", _max_min(t, "max", x, lo), hi)


@rule(*UNARY, elementwise=True)
def _unary(t: Tracer, ins: list, eqn: Any) -> str:
    return t.emit(UNARY[eqn.primitive.name], ins)


@rule("expm1", "log1p", "abs", "sign", "is_finite", elementwise=True)
def _composed(t: Tracer, ins: list, eqn: Any) -> str:
    """exp(x) - 1, log(1 + x), max(x, -x) (JAX's 0 gradient at 0: ties split), the
    difference of two comparisons, and x - x == 0 (NaN for inf and NaN)."""
    x, prim = ins[0], eqn.primitive.name
    if prim == "expm1":
        return binary(t, "sub", t.emit("exp", [x]), np.float32(1))
    if prim == "log1p":
        return t.emit("log", [binary(t, "add", np.float32(1), x)])
    if prim == "abs":
        return t.emit("maximum", [x, t.emit("neg", [x])])
    if prim == "sign":
        return t.emit("sub", [binary(t, "greater", x, np.float32(0)),
                              binary(t, "less", x, np.float32(0))])
    return binary(t, "equal", t.emit("sub", [x, x]), np.float32(0))


@rule("rsqrt", elementwise=True)
def _rsqrt(t: Tracer, ins: list, eqn: Any) -> str:
    return binary(t, "div", np.float32(1), t.emit("sqrt", ins))


@rule("square", elementwise=True)
def _square(t: Tracer, ins: list, eqn: Any) -> str:
    return t.emit("mul", [ins[0], ins[0]])


@rule("integer_pow", elementwise=True)
def _integer_pow(t: Tracer, ins: list, eqn: Any) -> str:
    """x**y by squaring, the order XLA uses; a negative power is 1 / x**-y."""
    y, x = eqn.params["y"], ins[0]
    if y == 0:
        raise Unsupported("x ** 0 of a run-time value; write the constant 1 instead")
    result, power, n = None, x, abs(y)
    while n:
        if n & 1:
            result = power if result is None else t.emit("mul", [result, power])
        n >>= 1
        if n:
            power = t.emit("mul", [power, power])
    return result if y > 0 else binary(t, "div", np.float32(1), result)


@rule("and", "or", "not", elementwise=True)
def _logic(t: Tracer, ins: list, eqn: Any) -> str:
    """On 0/1 masks (what TTE's comparisons produce): and = a*b, or = a+b-a*b, not = 1-a."""
    prim = eqn.primitive.name
    if eqn.outvars[0].aval.dtype != np.bool_:
        raise Unsupported("bitwise operations on integers are not supported")
    if prim == "not":
        return binary(t, "sub", np.float32(1), ins[0])
    both = binary(t, "mul", *ins)
    return both if prim == "and" else binary(t, "sub", binary(t, "add", *ins), both)


@rule("select_n", elementwise=True)
def _select(t: Tracer, ins: list, eqn: Any) -> str:
    if len(ins) != 3:
        raise Unsupported("select_n with more than two cases (an integer selector)")
    pred, false, true = ins
    return t.emit("where", _names(t, [pred, true, false]))


@rule("convert_element_type", "copy", "copy_p", elementwise=True)
def _convert(t: Tracer, ins: list, eqn: Any) -> str:
    new = eqn.outvars[0].aval.dtype
    old = eqn.invars[0].aval.dtype
    if new != np.float32 or old not in (np.float32, np.bool_):
        raise Unsupported(f"conversion from {old} to {new}: TTE's JAX frontend computes in "
                          "float32 (booleans become 0/1 masks)")
    return ins[0]


def _axes(eqn: Any) -> list[int]:
    return [int(a) for a in eqn.params["axes"]]


@rule("reduce_sum")
def _reduce_sum(t: Tracer, ins: list, eqn: Any) -> str:
    shape, axes = t.shape(ins[0]), _axes(eqn)
    count = float(np.prod([shape[a] for a in axes]))
    y = t.emit("reduce_sum", ins, {"axes": axes, "keepdims": 0})
    t.scaled[y] = (count, lambda: t.emit("reduce_mean", ins, {"axes": axes, "keepdims": 0}))
    return y


@rule("reduce_max")
def _reduce_max(t: Tracer, ins: list, eqn: Any) -> str:
    return t.emit("reduce_max", ins, {"axes": _axes(eqn), "keepdims": 0})


@rule("reduce_min")
def _reduce_min(t: Tracer, ins: list, eqn: Any) -> str:
    neg = t.emit("neg", ins)
    return t.emit("neg", [t.emit("reduce_max", [neg], {"axes": _axes(eqn), "keepdims": 0})])


@rule("argmax")
def _argmax(t: Tracer, ins: list, eqn: Any) -> str:
    """For inference (the predicted class); nothing differentiates through an index."""
    (axis,) = _axes(eqn)
    if np.dtype(eqn.params["index_dtype"]) != np.int32:
        raise Unsupported("argmax with an index type other than int32")
    return t.emit("argmax", ins, {"axis": axis, "keepdims": 0})
