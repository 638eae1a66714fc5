"""JAX frontend: trace apply_fn(params, x) with jax.make_jaxpr into a forward IR graph.

Parameters become IR weights named by their pytree path ("conv1/w"); constants the trace
closes over and literals become IR constants where run-time values read them. The walk is
tte/frontends/jax_trace.py; the primitive rules are jax_rules_math.py (element-wise,
reductions) and jax_rules_layers.py (convolutions, products, pools, data movement). A
primitive without a rule stops with its name and the user's source line.
"""
from __future__ import annotations

from typing import Any, Callable

import numpy as np

import tte.ops  # noqa: F401  (registers the IR ops the rules emit)
from tte.errors import TTEError
from tte.frontends import jax_rules_layers, jax_rules_math  # noqa: F401  (register rules)
from tte.frontends.jax_trace import Tracer
from tte.ir import DType, Graph, Role
from tte.ir.verify import verify


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


def from_jax(apply_fn: Callable, params: Any, example_input: Any, *,
             name: str | None = None) -> Graph:
    """The forward graph of apply_fn(params, x), traced at example_input's shape in float32
    (jax_enable_x64 or not: the C computes in float32)."""
    import jax
    leaves, tree = jax.tree_util.tree_flatten_with_path(params)
    arrays = []
    for path, leaf in leaves:
        arr = np.asarray(leaf)
        if arr.dtype.kind != "f":
            raise TTEError(f"parameter {_path_name(path)} has dtype {arr.dtype}; TTE trains "
                           f"float parameters")
        arrays.append(arr.astype(np.float32))
    x = np.asarray(example_input, np.float32)
    g = Graph(name or getattr(apply_fn, "__name__", "jax_model"))
    with jax.enable_x64(False):  # Python scalars and indices as 32-bit, as the C has them
        try:
            closed = jax.make_jaxpr(apply_fn)(jax.tree_util.tree_unflatten(tree, arrays), x)
        except Exception as e:
            raise TTEError(f"tracing {g.name} with JAX failed: {type(e).__name__}: {e}") from None
        t = Tracer(g)
        args = [g.add_param(_path_name(path), arr, Role.frozen, DType.f32)
                for (path, _), arr in zip(leaves, arrays)]
        args.append(g.add_input("x", x.shape))
        consts = {v: np.asarray(c) for v, c in zip(closed.jaxpr.constvars, closed.consts)}
        t.finish(t.run(closed.jaxpr, args, consts), closed.jaxpr.outvars)
    verify(g)
    return g


def to_pytree(params: Any, trained: dict[str, np.ndarray]) -> Any:
    """params with every leaf replaced by trained[its pytree path name] (a runner's params())."""
    import jax
    leaves, tree = jax.tree_util.tree_flatten_with_path(params)
    return jax.tree_util.tree_unflatten(
        tree, [np.asarray(trained[_path_name(p)]).reshape(np.shape(v)) for p, v in leaves])
