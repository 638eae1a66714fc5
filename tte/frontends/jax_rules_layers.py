"""Convolutions, products, window pools and the data-movement primitives.

The IR computes in NCHW / OIHW; a convolution or pool in any other layout is wrapped in
transposes, and a transpose of a transpose collapses, so chains of NHWC layers keep only
the transposes at their ends.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from tte.frontends.jax_trace import Tracer, Unsupported, inverse, out_shape, rule


@rule("broadcast_in_dim", elementwise=True)
def _broadcast(t: Tracer, ins: list, eqn: Any) -> str:
    """The operand's dimensions at broadcast_dimensions, 1s elsewhere; consumers broadcast."""
    shape = [1] * len(out_shape(eqn))
    for d, size in zip(eqn.params["broadcast_dimensions"], t.shape(ins[0])):
        shape[d] = size
    return t.reshape(ins[0], tuple(shape))


@rule("reshape", "squeeze")
def _reshape(t: Tracer, ins: list, eqn: Any) -> str:
    if eqn.primitive.name == "reshape" and eqn.params.get("dimensions") is not None:
        raise Unsupported("reshape with a dimension order; transpose first")
    return t.reshape(ins[0], out_shape(eqn))


@rule("transpose")
def _transpose(t: Tracer, ins: list, eqn: Any) -> str:
    return t.transpose(ins[0], eqn.params["permutation"])


@rule("concatenate")
def _concat(t: Tracer, ins: list, eqn: Any) -> str:
    return t.emit("concat", [t.name(v) for v in ins], {"axis": int(eqn.params["dimension"])})


def _slice(t: Tracer, x: str, starts: list[int], ends: list[int], steps: list[int]) -> str:
    if starts == [0] * len(starts) and list(ends) == list(t.shape(x)) and set(steps) <= {1}:
        return x
    return t.emit("slice", [x], {"starts": [int(s) for s in starts], "ends": [int(e) for e in ends],
                                 "axes": list(range(len(starts))),
                                 "steps": [int(s) for s in steps]})


@rule("slice")
def _slice_rule(t: Tracer, ins: list, eqn: Any) -> str:
    p = eqn.params
    steps = p["strides"] or [1] * len(p["start_indices"])
    return _slice(t, ins[0], list(p["start_indices"]), list(p["limit_indices"]), list(steps))


@rule("pad")
def _pad(t: Tracer, ins: list, eqn: Any) -> str:
    """lax.pad: interior padding is not supported; negative edges are slices."""
    x, value = ins
    if isinstance(value, str):
        raise Unsupported("padding with a run-time value")
    config = eqn.params["padding_config"]
    if any(interior for _, _, interior in config):
        raise Unsupported("interior padding (dilation); only edge padding is supported")
    lo, hi = [max(c[0], 0) for c in config], [max(c[1], 0) for c in config]
    if any(lo + hi):
        x = t.emit("pad", [x], {"pads": lo + hi, "value": float(np.asarray(value))})
    shape = t.shape(x)
    return _slice(t, x, [-min(c[0], 0) for c in config],
                  [d + min(c[1], 0) for d, c in zip(shape, config)], [1] * len(shape))


@rule("conv_general_dilated")
def _conv(t: Tracer, ins: list, eqn: Any) -> str:
    p = eqn.params
    dn = p["dimension_numbers"]
    spatial = len(dn.lhs_spec) - 2
    if spatial not in (1, 2):
        raise Unsupported(f"{spatial}-D convolution; TTE has 1-D and 2-D convolutions")
    if any(d != 1 for d in p["lhs_dilation"]) or p["batch_group_count"] != 1:
        raise Unsupported("transposed (lhs-dilated) or batch-grouped convolution")
    if any(lo < 0 or hi < 0 for lo, hi in p["padding"]):
        raise Unsupported("negative convolution padding")
    x = t.transpose(t.name(ins[0]), list(dn.lhs_spec))   # NC + spatial
    w = t.transpose(t.name(ins[1]), list(dn.rhs_spec))   # OI + spatial
    pads, strides, dil = list(p["padding"]), list(p["window_strides"]), list(p["rhs_dilation"])
    if spatial == 1:  # a 1-D convolution is a 2-D one of height 1
        x = t.reshape(x, t.shape(x)[:2] + (1,) + t.shape(x)[2:])
        w = t.reshape(w, t.shape(w)[:2] + (1,) + t.shape(w)[2:])
        pads, strides, dil = [(0, 0)] + pads, [1] + strides, [1] + dil
    (top, bottom), (left, right) = pads
    y = t.emit("conv2d", [x, w], {"strides": strides, "pads": [top, left, bottom, right],
                                  "dilations": dil, "group": int(p["feature_group_count"])})
    if spatial == 1:
        y = t.reshape(y, t.shape(y)[:2] + t.shape(y)[3:])
    return t.transpose(y, inverse(list(dn.out_spec)))


@rule("dot_general")
def _dot(t: Tracer, ins: list, eqn: Any) -> str:
    """x[N, K] @ w.T is a linear layer, x[N, K] @ w a matmul; any other contraction is a
    (batched) matmul of operands transposed and reshaped to [B,] M, K and [B,] K, N."""
    (lc, rc), (lb, rb) = eqn.params["dimension_numbers"]
    x, w = (t.name(v) for v in ins)
    sx, sw = t.shape(x), t.shape(w)
    if not lb and len(sx) == len(sw) == 2 and tuple(lc) == (1,):
        return t.emit("linear" if tuple(rc) == (1,) else "matmul", [x, w])
    lf = [d for d in range(len(sx)) if d not in (*lc, *lb)]
    rf = [d for d in range(len(sw)) if d not in (*rc, *rb)]
    batch = (int(np.prod([sx[d] for d in lb])),) if lb else ()
    size = lambda s, dims: int(np.prod([s[d] for d in dims]))  # noqa: E731
    a = t.reshape(t.transpose(x, [*lb, *lf, *lc]), batch + (size(sx, lf), size(sx, lc)))
    b = t.reshape(t.transpose(w, [*rb, *rc, *rf]), batch + (size(sw, rc), size(sw, rf)))
    return t.reshape(t.emit("matmul", [a, b]), out_shape(eqn))


@rule("reduce_window_max", "reduce_window_sum")
def _pool(t: Tracer, ins: list, eqn: Any) -> str:
    """A window reduction over at most two axes is a 2-D pool of [N, C, H, W]: the other
    axes are moved to the front and merged. A sum is the average pool (counting padding)
    times the window size, and that over the window size is the average itself."""
    p = eqn.params
    window, strides, pads = p["window_dimensions"], p["window_strides"], p["padding"]
    rank = len(window)
    if any(d != 1 for d in p["base_dilation"]):
        raise Unsupported("base dilation in a window reduction")
    pooled = [i for i in range(rank) if window[i] != 1 or strides[i] != 1 or
              tuple(pads[i]) != (0, 0) or p["window_dilation"][i] != 1]
    if len(pooled) > 2 or rank < 2:
        raise Unsupported(f"window reduction over {len(pooled)} axes; TTE pools 2-D windows")
    rest = [i for i in range(rank) if i not in pooled]
    spatial = sorted(pooled + rest[len(rest) - (2 - len(pooled)):] if len(pooled) < 2 else pooled)
    others = [i for i in range(rank) if i not in spatial]
    x = t.transpose(ins[0], others + spatial)
    lead = t.shape(x)[:-2]
    x = t.reshape(x, (lead if rank == 4 else (1, int(np.prod(lead)))) + t.shape(x)[-2:])
    attrs = {"kernel": [int(window[s]) for s in spatial],
             "strides": [int(strides[s]) for s in spatial],
             "pads": [int(pads[spatial[0]][0]), int(pads[spatial[1]][0]),
                      int(pads[spatial[0]][1]), int(pads[spatial[1]][1])]}

    def restore(v: str) -> str:
        v = t.reshape(v, lead + t.shape(v)[-2:])
        return t.transpose(v, inverse(others + spatial))

    if eqn.primitive.name == "reduce_window_max":
        dil = [int(p["window_dilation"][s]) for s in spatial]
        return restore(t.emit("max_pool2d", [x], {**attrs, "dilations": dil}))
    if any(p["window_dilation"][s] != 1 for s in spatial):
        raise Unsupported("a dilated window sum (average pools have no dilation)")
    count = float(np.prod(attrs["kernel"]))
    avg = t.emit("avg_pool2d", [x], {**attrs, "count_include_pad": 1})
    total = restore(t.emit("mul", [avg, t.name(np.float32(count))]))
    t.scaled[total] = (count, lambda: restore(avg))
    return total
