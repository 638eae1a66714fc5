"""Harness for per-op gradient tests: one-node IR graph + autodiff vs. jax.vjp.

``check_op`` builds ``y = op(inputs)`` as a one-node graph, appends the backward
pass with ``tte.autodiff.append_backward`` seeded by a graph input ``ct``, runs it
with the numpy reference interpreter and compares the forward output and every
requested input gradient with ``jax.vjp`` of an independent JAX implementation.

* The claim under test is the math of the VJP, so the main run is in float64
  (``run(..., dtype=np.float64)``) and is compared at ``rtol=1e-5``, ``atol=1e-9``.
* Every input is rounded to float32 first: graph inputs are f32 values, and the
  interpreter casts feeds to the declared dtype before widening them, so both
  sides must start from exactly the same numbers.
* The same graph is also run once in float32 (``dtype=None``) and checked against
  the float64 JAX result at ``F32_RTOL`` / ``F32_ATOL`` (atol relative to the
  largest magnitude of the reference array), and its outputs must be float32.
* The JAX side is one jitted program per example.  XLA's CPU compile time of a
  convolution dominates these tests, so it is compiled with cheaper backend options
  (legacy emitters, optimization level 0; see FAST_XLA). They change compile time,
  not the float64 arithmetic being compared.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import numpy as np

import tte.ops  # noqa: F401  (registers the ops)
from tte.autodiff import append_backward
from tte.interpreter import run
from tte.ir.graph import Graph
from tte.ir.types import DType
from tte.ir.verify import verify

jax.config.update("jax_enable_x64", True)

RTOL = 1e-5          # float64 run vs. float64 JAX
ATOL = 1e-9          # for elements that are ~0
F32_RTOL = 1e-4      # float32 run vs. float64 JAX ...
F32_ATOL = 1e-5      # ... times max(1, max |reference|) of the compared array

# ~4x faster XLA:CPU compiles than the defaults (the file takes ~6 min without them);
# TTE_TEST_XLA_DEFAULTS=1 compiles with the default options instead.
FAST_XLA = {} if os.environ.get("TTE_TEST_XLA_DEFAULTS") else {
    "xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False,
    "xla_cpu_parallel_codegen_split_count": 1}
# For convolution references only, and a workaround, not speed: jaxlib 0.10.2's XLA:CPU
# algebraic simplifier CHECK-fails and aborts the whole process ("Window dimensions do not
# match RHS shape", algebraic_simplifier.cc:586) on the float64 input gradient of some
# grouped convolutions, with default options too; e.g. x[1,4,12,9], w[8,1,2,5], group 4,
# strides (2,1), pads 1, rhs_dilation (1,2). Not for other ops: without the simplifier
# the VJP of lax.pad keeps a negative pad the CPU emitter rejects.
XLA_CONV_WORKAROUND = {"xla_disable_hlo_passes": "algsimp"}


def f32(a) -> np.ndarray:
    """Round to float32 and widen back: the exact values a f32 graph input holds."""
    return np.asarray(a, np.float32).astype(np.float64)


@dataclass
class Arg:
    """One input of the node: name, value (None: absent optional input ""), in wrt?"""
    name: str
    value: np.ndarray | None
    wrt: bool = True


@dataclass
class Result:
    graph: Graph
    y: str
    grads: dict[str, str]
    ours: dict[str, np.ndarray]       # float64 run: "y" and input names
    ref: dict[str, np.ndarray]        # JAX: same keys


def jax_forward_and_vjp(fn: Callable, values: list[np.ndarray], diff: list[int],
                        ct: np.ndarray, xla_options: dict | None = None):
    """(fn(*values), gradients of <fn, ct> w.r.t. values[i] for i in diff), float64."""
    def both(vals, cot):
        def f(*dvals):
            full = list(vals)
            for i, v in zip(diff, dvals):
                full[i] = v
            return fn(*full)
        y, pullback = jax.vjp(f, *[vals[i] for i in diff])
        return y, pullback(cot)
    y, grads = compile_fast(jax.jit(both).lower(values, ct), xla_options)(values, ct)
    return np.asarray(y), [np.asarray(gr) for gr in grads]


def compile_fast(lowered, extra: dict | None = None):
    """Compile with FAST_XLA (+ extra); without FAST_XLA if this jaxlib lacks an option."""
    global FAST_XLA
    try:
        return lowered.compile(compiler_options={**FAST_XLA, **(extra or {})})
    except jax.errors.JaxRuntimeError as e:
        if "compile option" not in str(e) or not FAST_XLA:
            raise
        FAST_XLA = {}
        return lowered.compile(compiler_options=dict(extra or {}))


def jax_shape(fn: Callable, values: list[np.ndarray]) -> tuple[int, ...]:
    return tuple(jax.eval_shape(fn, *values).shape)


def assert_close(what: str, ours: np.ndarray, ref: np.ndarray, rtol: float, atol: float) -> None:
    assert tuple(ours.shape) == tuple(ref.shape), \
        f"{what}: shape {tuple(ours.shape)}, reference {tuple(ref.shape)}"
    np.testing.assert_allclose(ours, ref, rtol=rtol, atol=atol, err_msg=what)


def check_op(op: str, args: Sequence[Arg], attrs: dict | None, jax_fn: Callable,
             rng: np.random.Generator, *, check_f32: bool = True,
             xla_options: dict | None = None) -> Result:
    """Build, differentiate, run and compare one op; returns the pieces for extra checks.

    jax_fn takes the present (non-None) argument values in order.
    """
    attrs = dict(attrs or {})
    g = Graph("op_test")
    names, feeds = [], {}
    for a in args:
        if a.value is None:
            names.append("")
            continue
        arr = np.asarray(a.value)
        if np.issubdtype(arr.dtype, np.floating):
            arr, dtype = f32(arr), DType.f32
        else:
            arr, dtype = arr.astype(np.int32), DType.i32
        names.append(g.add_input(a.name, arr.shape, dtype))
        feeds[a.name] = arr
    y = g.emit(op, names, attrs)
    wrt = [a.name for a in args if a.value is not None and a.wrt]
    where = f"{op} {attrs} inputs {[(n, v.shape) for n, v in feeds.items()]}"
    return check_graph(g, y, feeds, wrt, jax_fn, rng, where=where, check_f32=check_f32,
                       xla_options=xla_options)


def check_graph(g: Graph, y: str, feeds: dict[str, np.ndarray], wrt: list[str],
                jax_fn: Callable, rng: np.random.Generator, *, where: str = "",
                check_f32: bool = True, xla_options: dict | None = None) -> Result:
    """Append backward for output y seeded by a new input "ct" and compare with JAX.

    feeds: every graph input (already float32-exact), in g.inputs order; jax_fn takes
    their values in that order and must compute y independently.
    """
    assert list(feeds) == g.inputs
    values = list(feeds.values())
    diff = [list(feeds).index(n) for n in wrt]
    where = where or str(g)

    ref_shape = jax_shape(jax_fn, values)
    assert g.values[y].shape == ref_shape, \
        f"{where}: output shape {g.values[y].shape}, JAX gives {ref_shape}"
    ct = f32(rng.standard_normal(ref_shape))
    g.add_input("ct", ref_shape)
    feeds = {**feeds, "ct": ct}

    grads = append_backward(g, {y: "ct"}, wrt=set(wrt))
    assert set(grads) == set(wrt), f"{where}: gradients for {sorted(grads)}, wanted {wrt}"
    g.outputs = [y] + [grads[n] for n in wrt]
    verify(g)
    for n in wrt:
        assert g.values[grads[n]].shape == g.values[n].shape, f"{where}: grad shape of {n}"

    ref_y, ref_g = jax_forward_and_vjp(jax_fn, values, diff, ct, xla_options)
    ref = {"y": ref_y, **dict(zip(wrt, ref_g))}
    label = {"y": "forward", **{n: f"d/d{n}" for n in wrt}}

    out = run(g, feeds, dtype=np.float64)
    ours = {"y": out[y], **{n: out[grads[n]] for n in wrt}}
    for k in ref:
        assert ours[k].dtype == np.float64, f"{where}: {k} is {ours[k].dtype} in a float64 run"
        assert_close(f"{where}: {label[k]} (float64)", ours[k], ref[k], RTOL, ATOL)

    if check_f32:
        out32 = run(g, feeds)
        for k, name in [("y", y)] + [(n, grads[n]) for n in wrt]:
            got = out32[name]
            assert got.dtype == np.float32, f"{where}: {k} is {got.dtype} in a float32 run"
            scale = max(1.0, float(np.max(np.abs(ref[k]), initial=0.0)))
            assert_close(f"{where}: {label[k]} (float32)", got.astype(np.float64), ref[k],
                         F32_RTOL, F32_ATOL * scale)
    return Result(g, y, grads, ours, ref)


def backward_ops(g: Graph, forward_nodes: int) -> list[str]:
    """Ops of the nodes append_backward added after the first `forward_nodes` nodes."""
    return [n.op for n in g.nodes[forward_nodes:]]


# --- shared geometry (written from the ONNX spec, independent of tte.ops.windows) ---

def onnx_out_and_extra(size: int, k: int, s: int, lo: int, hi: int, d: int = 1,
                       ceil_mode: bool = False) -> tuple[int, int]:
    """ONNX pooling output length and the extra right padding a ceil-mode window reaches.

    out = floor_or_ceil((size + lo + hi - ((k - 1) * d + 1)) / s) + 1; in ceil mode the
    last window is dropped if it would start in the right padding (start >= size + lo).
    A reference pads by (lo, hi + extra) and keeps the first `out` windows: with pads
    >= kernel the dropped ceil-mode window can be one that floor mode keeps.
    """
    eff = (k - 1) * d + 1
    span = size + lo + hi - eff
    assert span >= 0
    if ceil_mode:
        out = -(-span // s) + 1
        if (out - 1) * s >= size + lo:
            out -= 1
    else:
        out = span // s + 1
    extra = max(0, (out - 1) * s + eff - (size + lo + hi))
    return out, extra
