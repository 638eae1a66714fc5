"""Converters for ONNX layout ops (reshape family, transpose, concat, split, pad,
slice), aliases, and static shape queries. Every shape is static by the time it reaches
the IR, so Squeeze/Unsqueeze/Flatten all become `reshape`."""
from __future__ import annotations

import math

import numpy as np

from tte.errors import TTEError
from tte.frontends.onnx_context import Ctx, converter


def _reshape(ctx: Ctx, x: str, dims: list[int]) -> None:
    src = ctx.shape(x)
    if math.prod(dims) != math.prod(src):
        raise TTEError(f"{ctx.where()}: cannot reshape {list(src)} to {dims}")
    ctx.emit("reshape", [x], {"shape": [int(d) for d in dims]}, out=ctx.out())


@converter("Reshape")
def _reshape_op(ctx: Ctx) -> None:
    x = ctx.value(0)
    src, target = ctx.shape(x), [int(d) for d in ctx.const(1, "shape")]
    if ctx.attrs().get("allowzero", 0) == 0:  # 0 copies the input dim unless allowzero
        if any(d == 0 and i >= len(src) for i, d in enumerate(target)):
            raise TTEError(f"{ctx.where()}: shape {target} copies a dim the input lacks")
        target = [src[i] if d == 0 else d for i, d in enumerate(target)]
    if target.count(-1) > 1:
        raise TTEError(f"{ctx.where()}: shape {target} has more than one -1")
    if -1 in target:
        known = math.prod(d for d in target if d != -1)
        target[target.index(-1)] = math.prod(src) // known if known else 0
    _reshape(ctx, x, target)


@converter("Flatten")
def _flatten(ctx: Ctx) -> None:
    x = ctx.value(0)
    src = ctx.shape(x)
    axis = int(ctx.attrs().get("axis", 1))
    axis = axis + len(src) if axis < 0 else axis
    _reshape(ctx, x, [math.prod(src[:axis]), math.prod(src[axis:])])


@converter("Squeeze")
def _squeeze(ctx: Ctx) -> None:
    x = ctx.value(0)
    src = ctx.shape(x)
    if ctx.has(1):
        axes = {ctx.axis(int(a), len(src)) for a in ctx.const(1, "axes")}
    else:
        axes = {i for i, d in enumerate(src) if d == 1}
    if any(src[a] != 1 for a in axes):
        raise TTEError(f"{ctx.where()}: cannot squeeze axes {sorted(axes)} of {list(src)}")
    _reshape(ctx, x, [d for i, d in enumerate(src) if i not in axes])


@converter("Unsqueeze")
def _unsqueeze(ctx: Ctx) -> None:
    x = ctx.value(0)
    src = ctx.shape(x)
    raw = ctx.const(1, "axes").reshape(-1)
    rank = len(src) + len(raw)
    axes = {ctx.axis(int(a), rank) for a in raw}
    dims = iter(src)
    _reshape(ctx, x, [1 if i in axes else next(dims) for i in range(rank)])


@converter("Transpose")
def _transpose(ctx: Ctx) -> None:
    x = ctx.value(0)
    rank = len(ctx.shape(x))
    perm = ctx.attrs().get("perm", list(range(rank))[::-1])
    ctx.emit("transpose", [x], {"perm": [int(p) for p in perm]}, out=ctx.out())


@converter("Concat")
def _concat(ctx: Ctx) -> None:
    xs = [ctx.value(i) for i in range(len(ctx.node.input))]
    axis = ctx.axis(int(ctx.attrs()["axis"]), len(ctx.shape(xs[0])))
    ctx.emit("concat", xs, {"axis": axis}, out=ctx.out())


@converter("Split")
def _split(ctx: Ctx) -> None:
    x = ctx.value(0)
    src, a = ctx.shape(x), ctx.attrs()
    axis = ctx.axis(int(a.get("axis", 0)), len(src))
    if ctx.has(1):
        sizes = [int(s) for s in ctx.const(1, "split")]
    else:  # equal chunks, the last one smaller (opset 18 num_outputs)
        n = int(a.get("num_outputs", len(ctx.node.output)))
        chunk = -(-src[axis] // n)
        sizes = [chunk] * (n - 1) + [src[axis] - chunk * (n - 1)]
    if sum(sizes) != src[axis] or min(sizes) < 0:
        raise TTEError(f"{ctx.where()}: cannot split {src[axis]} into {sizes}")
    start = 0
    for out, size in zip(ctx.node.output, sizes):
        if out:
            ctx.emit("slice", [x], {"starts": [start], "ends": [start + size], "axes": [axis],
                                    "steps": [1]}, out=out)
        start += size


@converter("Pad")
def _pad(ctx: Ctx) -> None:
    x = ctx.value(0)
    rank = len(ctx.shape(x))
    mode = ctx.attrs().get("mode", "constant")
    if mode not in ("constant", "reflect", "edge"):
        raise ctx.bad_attr("mode", mode, "constant, reflect or edge")
    raw = [int(p) for p in ctx.const(1, "pads")]
    axes = [ctx.axis(int(a), rank) for a in ctx.const(3, "axes")] if ctx.has(3) \
        else list(range(rank))
    pads = [0] * (2 * rank)
    for i, ax in enumerate(axes):
        pads[ax], pads[rank + ax] = raw[i], raw[len(axes) + i]
    if min(pads) < 0:
        raise ctx.unsupported(f"negative pads {raw} (cropping) are not supported; "
                              "use Slice", "Pad negative pads")
    value = float(ctx.const(2, "constant_value").item()) if ctx.has(2) else 0.0
    ctx.emit("pad", [x], {"pads": pads, "mode": mode, "value": value}, out=ctx.out())


@converter("Slice")
def _slice(ctx: Ctx) -> None:
    x = ctx.value(0)
    src = ctx.shape(x)
    starts, ends = ctx.const(1, "starts"), ctx.const(2, "ends")
    axes = ctx.const(3, "axes") if ctx.has(3) else np.arange(len(starts))
    steps = ctx.const(4, "steps") if ctx.has(4) else np.ones(len(starts), np.int64)
    attrs: dict[str, list[int]] = {"starts": [], "ends": [], "axes": [], "steps": []}
    for start, end, axis, step in zip(starts, ends, axes, steps):
        axis = ctx.axis(int(axis), len(src))
        if step == 0:
            raise TTEError(f"{ctx.where()}: slice step 0 on axis {axis}")
        # ONNX clamps like python's slice.indices
        start, end, step = slice(int(start), int(end), int(step)).indices(src[axis])
        for key, v in zip(attrs, (start, end, axis, step)):
            attrs[key].append(v)
    ctx.emit("slice", [x], attrs, out=ctx.out())


# --- aliases and static shapes --------------------------------------------------
@converter("Identity")
def _identity(ctx: Ctx) -> None:
    ctx.alias(ctx.out(), ctx.value(0))


@converter("Dropout")
def _dropout(ctx: Ctx) -> None:
    if ctx.has(2) and ctx.const(2, "training_mode").item():
        raise ctx.unsupported("training_mode=true is not supported; models are imported "
                              "for inference", "Dropout training_mode")
    if ctx.output_used(1):
        raise ctx.unsupported("the mask output is not supported", "Dropout mask output")
    ctx.alias(ctx.out(), ctx.value(0))


@converter("Shape")
def _shape(ctx: Ctx) -> None:
    a = ctx.attrs()
    dims = ctx.shape(ctx.value(0))[a.get("start", 0):a.get("end")]
    ctx.consts[ctx.out()] = np.array(dims, dtype=np.int64)


@converter("Size")
def _size(ctx: Ctx) -> None:
    ctx.consts[ctx.out()] = np.array(math.prod(ctx.shape(ctx.value(0))), dtype=np.int64)
