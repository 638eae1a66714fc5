"""JAX frontend: trace apply_fn(params, x) with jax.make_jaxpr into a forward IR graph.

Parameters become IR weights named by their pytree path ("conv1/w"); constants the trace
closes over and literals become IR constants. Calls (pjit, closed_call, custom_jvp_call,
custom_vjp_call) are inlined: their bodies are walked like the outer jaxpr.

First slice (issue 7): NCHW/OIHW convolutions, dense layers, element-wise arithmetic,
ReLU as max(x, 0), broadcasts, reshapes and sums/means. Anything else stops with the
primitive's name and the user's source line.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tte.errors import TTEError, UnsupportedError
from tte.ir import DType, Graph, Role

CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "custom_jvp_call": "call_jaxpr",
         "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr"}
BINARY = {"add": "add", "sub": "sub", "mul": "mul", "div": "div"}


def _path_name(path: tuple) -> str:
    parts = []
    for key in path:
        for attr in ("key", "name", "idx"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts) or "param"


def _source_line(eqn: Any) -> str:
    """The user's file:line the equation came from, if JAX recorded it."""
    try:
        from jax._src import source_info_util
        frame = source_info_util.user_frame(eqn.source_info.traceback)
        return f"{frame.file_name}:{frame.start_line}" if frame else "an unknown line"
    except Exception:  # the private API moved: say less rather than fail
        return "an unknown line"


class _Tracer:
    def __init__(self, g: Graph) -> None:
        self.g = g
        self.consts: dict[str, np.ndarray] = {}  # IR constant name -> value (for folding)

    def const(self, value: Any) -> str:
        arr = np.asarray(value)
        arr = arr.astype(np.float32) if arr.dtype.kind == "f" else arr.astype(np.int32)
        name = self.g.fresh("const")
        self.g.add_param(name, arr, Role.const)
        self.consts[name] = arr
        return name

    def read(self, env: dict, atom: Any) -> str:
        if hasattr(atom, "val"):  # a Literal
            return self.const(atom.val)
        return env[atom]

    def run(self, jaxpr: Any, args: list[str], env: dict | None = None) -> list[str]:
        env = dict(env or {})
        for var, name in zip(jaxpr.invars, args):
            env[var] = name
        for eqn in jaxpr.eqns:
            ins = [self.read(env, v) for v in eqn.invars]
            prim = eqn.primitive.name
            if prim in CALLS:
                sub = eqn.params[CALLS[prim]]
                closed = getattr(sub, "jaxpr", sub)
                consts = [self.const(c) for c in getattr(sub, "consts", [])]
                outs = self.run(closed, ins, dict(zip(closed.constvars, consts)))
                outs = outs[:len(eqn.outvars)]
            else:
                rule = RULES.get(prim)
                if rule is None:
                    raise UnsupportedError(f"JAX primitive {prim!r} (at {_source_line(eqn)}) "
                                           f"is not supported by TTE's JAX frontend yet")
                outs = [rule(self, ins, eqn)]
            for var, name in zip(eqn.outvars, outs):
                env[var] = name
        return [self.read(env, v) for v in jaxpr.outvars]


def _shape(eqn: Any) -> tuple[int, ...]:
    return tuple(eqn.outvars[0].aval.shape)


def _binary(t: _Tracer, ins: list[str], eqn: Any) -> str:
    return t.g.emit(BINARY[eqn.primitive.name], ins)


def _max(t: _Tracer, ins: list[str], eqn: Any) -> str:
    for x, c in (ins, ins[::-1]):
        if c in t.consts and not np.any(t.consts[c]):
            return t.g.emit("relu", [x])
    raise UnsupportedError(f"max of two run-time values (at {_source_line(eqn)}); TTE takes "
                           "max(x, 0) as ReLU")


def _neg(t: _Tracer, ins: list[str], eqn: Any) -> str:
    return t.g.emit("neg", ins)


def _reshape(t: _Tracer, ins: list[str], eqn: Any) -> str:
    return t.g.emit("reshape", ins[:1], {"shape": list(_shape(eqn))})


def _broadcast(t: _Tracer, ins: list[str], eqn: Any) -> str:
    """broadcast_in_dim: the operand's dimensions placed at broadcast_dimensions with 1s
    elsewhere; the consumer's numpy broadcasting does the rest."""
    x = t.g.values[ins[0]]
    out = _shape(eqn)
    shape = [1] * len(out)
    for d, size in zip(eqn.params["broadcast_dimensions"], x.shape):
        shape[d] = size
    if ins[0] in t.consts:  # fold: a constant keeps its full broadcast shape
        return t.const(np.broadcast_to(t.consts[ins[0]].reshape(shape), out))
    if tuple(shape) == x.shape:
        return ins[0]
    return t.g.emit("reshape", ins, {"shape": shape})


def _convert(t: _Tracer, ins: list[str], eqn: Any) -> str:
    if np.dtype(eqn.params["new_dtype"]) != np.float32:
        raise UnsupportedError(f"convert_element_type to {eqn.params['new_dtype']} (at "
                               f"{_source_line(eqn)}): TTE's JAX frontend traces float32")
    return ins[0]


def _reduce(op: str) -> Callable:
    def rule(t: _Tracer, ins: list[str], eqn: Any) -> str:
        return t.g.emit(op, ins, {"axes": [int(a) for a in eqn.params["axes"]], "keepdims": 0})
    return rule


def _conv(t: _Tracer, ins: list[str], eqn: Any) -> str:
    p = eqn.params
    dn = p["dimension_numbers"]
    if (tuple(dn.lhs_spec), tuple(dn.rhs_spec), tuple(dn.out_spec)) != ((0, 1, 2, 3),) * 3:
        raise UnsupportedError(f"conv_general_dilated with dimension numbers {dn} (at "
                               f"{_source_line(eqn)}): this slice takes NCHW / OIHW")
    if any(d != 1 for d in p["lhs_dilation"]) or p["batch_group_count"] != 1:
        raise UnsupportedError(f"transposed or batch-grouped convolution (at "
                               f"{_source_line(eqn)})")
    (top, bottom), (left, right) = p["padding"]
    return t.g.emit("conv2d", ins, {"strides": list(p["window_strides"]),
                                    "pads": [top, left, bottom, right],
                                    "dilations": list(p["rhs_dilation"]),
                                    "group": int(p["feature_group_count"])})


def _dot(t: _Tracer, ins: list[str], eqn: Any) -> str:
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    x, w = (t.g.values[n] for n in ins)
    if lb or rb or len(x.shape) != 2 or len(w.shape) != 2 or tuple(lc) != (1,):
        raise UnsupportedError(f"dot_general {eqn.params['dimension_numbers']} (at "
                               f"{_source_line(eqn)}): this slice takes x[N, K] @ w")
    if tuple(rc) == (1,):
        return t.g.emit("linear", ins)       # x @ w.T with w[M, K]
    return t.g.emit("matmul", ins)           # x @ w with w[K, M]


RULES: dict[str, Callable[[_Tracer, list[str], Any], str]] = {
    **dict.fromkeys(BINARY, _binary), "max": _max, "neg": _neg, "reshape": _reshape,
    "broadcast_in_dim": _broadcast, "convert_element_type": _convert,
    "reduce_sum": _reduce("reduce_sum"), "conv_general_dilated": _conv, "dot_general": _dot,
}


def from_jax(apply_fn: Callable, params: Any, example_input: Any, *,
             name: str | None = None) -> Graph:
    """The forward graph of apply_fn(params, x), traced at example_input's shape."""
    import jax
    leaves, _ = jax.tree_util.tree_flatten_with_path(params)
    x = np.asarray(example_input, np.float32)
    try:
        closed = jax.make_jaxpr(apply_fn)(params, x)
    except Exception as e:
        raise TTEError(f"tracing {getattr(apply_fn, '__name__', 'the model')} with JAX failed: "
                       f"{type(e).__name__}: {e}") from None
    g = Graph(name or getattr(apply_fn, "__name__", "jax_model"))
    t = _Tracer(g)
    args = []
    for path, leaf in leaves:
        arr = np.asarray(leaf)
        if arr.dtype.kind != "f":
            raise TTEError(f"parameter {_path_name(path)} has dtype {arr.dtype}; TTE trains "
                           f"float parameters")
        args.append(g.add_param(_path_name(path), arr.astype(np.float32), Role.frozen,
                                DType.f32))
    args.append(g.add_input("x", x.shape))
    consts = {v: t.const(c) for v, c in zip(closed.jaxpr.constvars, closed.consts)}
    g.outputs = t.run(closed.jaxpr, args, consts)
    read = {v for n in g.nodes for v in n.inputs} | set(g.outputs)
    for name in [c for c in t.consts if c not in read]:  # folded away (a ReLU's 0, ...)
        del g.values[name], g.data[name]
    return g


def to_pytree(params: Any, trained: dict[str, np.ndarray]) -> Any:
    """params with every leaf replaced by trained[its pytree path name] (a runner's params())."""
    import jax
    leaves, tree = jax.tree_util.tree_flatten_with_path(params)
    return jax.tree_util.tree_unflatten(
        tree, [np.asarray(trained[_path_name(p)]).reshape(np.shape(v)) for p, v in leaves])
