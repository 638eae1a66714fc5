"""The walk over a jaxpr that builds the IR graph, and the registry of primitive rules.

An environment maps each jaxpr variable to an IR value name (a run-time tensor) or to a
numpy array (a constant known at trace time). Equations whose inputs are all constants are
evaluated with JAX itself, so shape arithmetic, folded batch-norm statistics and the like
never reach the IR. Calls (pjit, closed_call, custom_jvp/vjp) are inlined.

Broadcasts of run-time tensors stay lazy: broadcast_in_dim becomes a reshape that inserts
1s, and element-wise rules let numpy broadcasting do the rest; any other rule sees its
operands materialised at their full jaxpr shape.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

from tte.errors import TTEError, UnsupportedError
from tte.ir import Graph, Role
from tte.frontends.jax_fold import fold_layers
from tte.passes.core import eliminate_dead_nodes

CALLS = {"pjit": "jaxpr", "jit": "jaxpr", "closed_call": "call_jaxpr", "core_call": "call_jaxpr",
         "remat": "jaxpr", "checkpoint": "jaxpr", "custom_jvp_call": "call_jaxpr",
         "custom_vjp_call": "call_jaxpr", "custom_vjp_call_jaxpr": "fun_jaxpr"}

Operand = "str | np.ndarray"
Rule = Callable[["Tracer", list, Any], str]
RULES: dict[str, Rule] = {}
ELEMENTWISE: set[str] = set()  # rules that accept lazily broadcast operands


def rule(*prims: str, elementwise: bool = False) -> Callable[[Rule], Rule]:
    def deco(fn: Rule) -> Rule:
        for p in prims:
            RULES[p] = fn
            if elementwise:
                ELEMENTWISE.add(p)
        return fn
    return deco


class Unsupported(Exception):
    """Raised by a rule; the tracer adds the primitive and the user's source line."""


def source_line(*eqns: Any) -> str:
    """The user's file:line the first of eqns (innermost first) came from, if JAX recorded
    it: inside library functions such as jax.nn.elu, the line that called them."""
    try:
        from jax._src import source_info_util
        for eqn in eqns:
            frame = source_info_util.user_frame(eqn.source_info.traceback)
            if frame:
                return f"{frame.file_name}:{frame.start_line}"
    except Exception:  # the private API moved: say less rather than fail
        pass
    return "an unknown line"


def out_shape(eqn: Any) -> tuple[int, ...]:
    return tuple(eqn.outvars[0].aval.shape)


def inverse(perm: list[int]) -> list[int]:
    return [int(i) for i in np.argsort(perm)]


def _big_axes(shape: tuple[int, ...]) -> list[int]:
    return [i for i, d in enumerate(shape) if d > 1]


def _big(shape: tuple[int, ...]) -> list[int]:
    return [d for d in shape if d > 1]


class Tracer:
    def __init__(self, g: Graph) -> None:
        self.g = g
        self.calls: list[Any] = []  # the call equations being inlined, outermost first
        self.made: dict[str, tuple[str, list[str], dict]] = {}  # value -> (op, inputs, attrs)
        # v = count * mean (a sum): v -> (count, a function emitting the mean)
        self.scaled: dict[str, tuple[float, Callable[[], str]]] = {}

    # --- values -------------------------------------------------------------
    def name(self, v: Operand, shape: tuple[int, ...] | None = None) -> str:
        """An IR value for an operand; a constant becomes an IR constant (float32, or int32
        for integers), shrunk to size 1 along axes where it is uniform if `shape` (the
        extent the run-time operands already give) covers them."""
        if isinstance(v, str):
            return v
        arr = np.asarray(v)
        arr = arr.astype(np.int32 if arr.dtype.kind in "iu" else np.float32)
        if shape is not None and arr.ndim == len(shape):
            for ax, size in enumerate(shape):
                first = np.take(arr, [0], axis=ax)
                if size == arr.shape[ax] and np.array_equal(arr, np.broadcast_to(first, arr.shape)):
                    arr = first
            if arr.size == 1:
                arr = arr.reshape(())
        return self.g.add_param(self.g.fresh("const"), arr, Role.const)

    def shape(self, v: Operand) -> tuple[int, ...]:
        return tuple(self.g.values[v].shape) if isinstance(v, str) else np.shape(v)

    def emit(self, op: str, inputs: list[str], attrs: dict | None = None) -> str:
        out = self.g.emit(op, inputs, attrs)
        self.made[out] = (op, list(inputs), dict(attrs or {}))
        return out

    def transpose(self, x: str, perm: list[int]) -> str:
        return self._keep_scaled(x, self._transpose(x, perm), lambda v: self.transpose(v, perm))

    def reshape(self, x: str, shape: tuple[int, ...]) -> str:
        shape = tuple(int(d) for d in shape)
        y = x if self.shape(x) == shape else self.emit("reshape", [x], {"shape": list(shape)})
        return self._keep_scaled(x, y, lambda v: self.reshape(v, shape))

    def _keep_scaled(self, x: str, y: str, move: Callable[[str], str]) -> str:
        """A sum moved by a transpose or reshape is still a count times a mean."""
        if x in self.scaled and y != x:
            count, quotient = self.scaled[x]
            self.scaled[y] = (count, lambda: move(quotient()))
        return y

    def _transpose(self, x: str, perm: list[int]) -> str:
        """transpose(x, perm), computed from the tensor x came from through transposes and
        reshapes that only add or drop 1s: pairs cancel, and a permutation that keeps the
        order of the dimensions above 1 is a reshape."""
        shape = self.shape(x)
        target = tuple(shape[p] for p in perm)
        axes = [int(p) for p in perm if shape[p] > 1]  # in the order the result needs them
        base = x
        while base in self.made:
            op, inputs, attrs = self.made[base]
            if op == "transpose":
                axes = [attrs["perm"][a] for a in axes]
            elif op == "reshape" and _big(self.shape(inputs[0])) == _big(self.shape(base)):
                into = dict(zip(_big_axes(self.shape(base)), _big_axes(self.shape(inputs[0]))))
                axes = [into[a] for a in axes]
            else:
                break
            base = inputs[0]
        if axes != sorted(axes):
            ones = [a for a in range(len(self.shape(base))) if a not in axes]
            if len(ones) == target.count(1):  # the 1s where the target has them
                big, unit = iter(axes), iter(ones)
                axes = [next(big) if d > 1 else next(unit) for d in target]
            else:
                axes += ones
            base = self.emit("transpose", [base], {"perm": axes})
        return self.reshape(base, target)

    def full(self, v: Operand, shape: tuple[int, ...]) -> Operand:
        """v at the full shape the jaxpr gives it (a lazy broadcast made real)."""
        if not isinstance(v, str) or self.shape(v) == tuple(shape):
            return v
        return self.emit("mul", [v, self.name(np.ones(shape, np.float32))])

    # --- the walk -----------------------------------------------------------
    def run(self, jaxpr: Any, args: list, env: dict | None = None) -> list:
        env = dict(env or {})
        env.update(zip(jaxpr.invars, args))
        for eqn in jaxpr.eqns:
            ins = [a.val if hasattr(a, "val") else env[a] for a in eqn.invars]
            outs = self._eqn(eqn, ins)
            env.update(zip(eqn.outvars, outs))
        return [a.val if hasattr(a, "val") else env[a] for a in jaxpr.outvars]

    def _eqn(self, eqn: Any, ins: list) -> list:
        prim = eqn.primitive.name
        if prim in CALLS:
            sub = eqn.params[CALLS[prim]]
            closed = getattr(sub, "jaxpr", sub)
            env = dict(zip(closed.constvars, getattr(sub, "consts", [])))
            self.calls.append(eqn)
            outs = self.run(closed, ins, env)[:len(eqn.outvars)]
            self.calls.pop()
            return outs
        if not any(isinstance(v, str) for v in ins):
            return self._fold(eqn, ins)
        fn = RULES.get(prim)
        if fn is None:
            raise UnsupportedError(f"{self._where(eqn)} is not supported by TTE's JAX "
                                   f"frontend. Supported: {', '.join(sorted(RULES))}")
        perm = None
        if prim not in ELEMENTWISE:
            ins = [self.full(v, tuple(a.aval.shape)) if hasattr(a, "aval") else v
                   for v, a in zip(ins, eqn.invars)]
        elif prim != "broadcast_in_dim":
            ins, perm = self._sink_transpose(ins)
        try:
            y = fn(self, ins, eqn)
            return [y if perm is None else self.transpose(y, perm)]
        except Unsupported as e:
            raise UnsupportedError(f"{self._where(eqn)}: {e}") from None
        except ValueError as e:  # an IR shape rule refused what the rule built
            raise TTEError(f"{self._where(eqn)} could not be converted: {e}") from None

    def _where(self, eqn: Any) -> str:
        return f"JAX primitive {eqn.primitive.name!r} (at {source_line(eqn, *self.calls[::-1])})"

    def _sink_transpose(self, ins: list) -> tuple[list, list[int] | None]:
        """An element-wise op on transpose(z, p) computes on z and transposes after, so
        that the transposes around NHWC convolutions meet and cancel. Other operands follow
        when that is free: transposes by the same p, constants, and tensors with at most one
        dimension above 1 (a reshape)."""
        made = [self.made.get(v, ("",)) if isinstance(v, str) else ("",) for v in ins]
        perms = [m[2]["perm"] for m in made if m[0] == "transpose"]
        if not perms or any(isinstance(v, str) and v in self.scaled for v in ins):
            return ins, None
        perm = perms[0]
        back = inverse(perm)
        moved = []
        for v, m in zip(ins, made):
            if m[0] == "transpose" and m[2]["perm"] == perm:
                moved.append(m[1][0])
            elif not isinstance(v, str):
                arr = np.asarray(v)
                moved.append(np.transpose(arr, back) if arr.ndim == len(perm) else arr)
            elif len(_big(self.shape(v))) <= 1:
                moved.append(self.reshape(v, tuple(self.shape(v)[i] for i in back)))
            else:
                return ins, None
        return moved, perm

    def _fold(self, eqn: Any, ins: list) -> list:
        """Evaluate an equation on constants with JAX: its results are constants too."""
        import jax.numpy as jnp
        out = eqn.primitive.bind(*[jnp.asarray(v) for v in ins], **eqn.params)
        outs = out if eqn.primitive.multiple_results else [out]
        return [np.asarray(o) for o in outs]

    def finish(self, outputs: list, outvars: list) -> None:
        """The graph's outputs at their full shapes; nodes nothing reads are dropped."""
        self.g.outputs = [self.name(self.full(v, tuple(a.aval.shape)))
                          for v, a in zip(outputs, outvars)]
        eliminate_dead_nodes(self.g)  # first: transposes that cancelled still read layers
        fold_layers(self.g)
        eliminate_dead_nodes(self.g)
