"""Data movement: reshape, transpose, concat, pad, slice."""
from __future__ import annotations

import numpy as np

from tte.errors import UnsupportedError
from tte.ir.types import Value
from tte.ops.registry import OpDef, register


def _reshape_infer(ins: list[Value | None], a: dict) -> list:
    shape = tuple(a["shape"])
    if int(np.prod(shape, dtype=np.int64)) != ins[0].size:
        raise ValueError(f"reshape: {ins[0].shape} has {ins[0].size} elements, not {shape}")
    return [(shape, ins[0].dtype)]


register(OpDef("reshape", _reshape_infer, lambda x, shape: [x.reshape(shape)],
               vjp=lambda g, n, gys, needs: [g.emit("reshape", [gys[0]], {
                   "shape": list(g.values[n.inputs[0]].shape)})],
               kernel="tte_copy", attrs={"shape": None}, inplace=0,
               doc="new static shape, same data (free when planned in place)"))


def _transpose_vjp(g, node, gys, needs):
    inverse = list(np.argsort(node.attrs["perm"]))
    return [g.emit("transpose", [gys[0]], {"perm": [int(i) for i in inverse]})]


register(OpDef("transpose",
               lambda ins, a: [(tuple(ins[0].shape[p] for p in a["perm"]), ins[0].dtype)],
               lambda x, perm: [np.ascontiguousarray(np.transpose(x, perm))],
               vjp=_transpose_vjp, kernel="tte_transpose", attrs={"perm": None},
               doc="permute axes"))


def _concat_infer(ins: list[Value | None], a: dict) -> list:
    ax = a["axis"]
    first = ins[0].shape
    for v in ins[1:]:
        if len(v.shape) != len(first) or any(d != e for i, (d, e) in enumerate(zip(v.shape, first))
                                              if i != ax):
            raise ValueError(f"concat: shapes {first} and {v.shape} differ off axis {ax}")
    shape = list(first)
    shape[ax] = sum(v.shape[ax] for v in ins)
    return [(tuple(shape), ins[0].dtype)]


def _concat_vjp(g, node, gys, needs):
    ax, start, grads = node.attrs["axis"], 0, []
    for x, need in zip(node.inputs, needs):
        size = g.values[x].shape[ax]
        grads.append(g.emit("slice", [gys[0]], {"starts": [start], "ends": [start + size],
                                                "axes": [ax], "steps": [1]}) if need else None)
        start += size
    return grads


register(OpDef("concat", _concat_infer, lambda *xs, axis: [np.concatenate(xs, axis=axis)],
               vjp=_concat_vjp, kernel="tte_concat", attrs={"axis": None},
               doc="join along axis"))


def _pad_infer(ins: list[Value | None], a: dict) -> list:
    x, p = ins[0], a["pads"]
    r = len(x.shape)
    if len(p) != 2 * r or min(p) < 0:
        raise ValueError(f"pad: {p} is not {2 * r} non-negative pads")
    return [(tuple(x.shape[i] + p[i] + p[i + r] for i in range(r)), x.dtype)]


def _pad_ref(x, pads, mode, value):
    r = x.ndim
    width = [(pads[i], pads[i + r]) for i in range(r)]
    if mode == "constant":
        return [np.pad(x, width, constant_values=value)]
    return [np.pad(x, width, mode={"reflect": "reflect", "edge": "edge"}[mode])]


def _pad_vjp(g, node, gys, needs):
    if node.attrs["mode"] != "constant":
        raise UnsupportedError(f"pad mode {node.attrs['mode']!r} is not differentiable in TTE; "
                               "use constant padding in layers that are trained through")
    shape, p = g.values[node.inputs[0]].shape, node.attrs["pads"]
    r = len(shape)
    return [g.emit("slice", [gys[0]], {"starts": list(p[:r]),
                                       "ends": [p[i] + shape[i] for i in range(r)],
                                       "axes": list(range(r)), "steps": [1] * r})]


register(OpDef("pad", _pad_infer, _pad_ref, vjp=_pad_vjp, kernel="tte_pad",
               attrs={"pads": None, "mode": "constant", "value": 0.0},
               doc="pad (ONNX order: begins then ends), constant/reflect/edge"))


def _index(a: dict, rank: int) -> tuple:
    idx = [slice(None)] * rank
    for s, e, ax, st in zip(a["starts"], a["ends"], a["axes"], a["steps"]):
        idx[ax] = slice(s, e if e >= 0 else None, st)
    return tuple(idx)


def _slice_infer(ins: list[Value | None], a: dict) -> list:
    if any(e < 0 and st > 0 for e, st in zip(a["ends"], a["steps"])):
        raise ValueError(f"slice ends {a['ends']} must be clamped (non-negative for positive steps)")
    probe = np.empty(ins[0].shape, np.int8)[_index(a, len(ins[0].shape))]
    return [(probe.shape, ins[0].dtype)]


def _slice_grad_ref(gy, *, input_shape, **a):
    gx = np.zeros(input_shape, gy.dtype)
    gx[_index(a, len(input_shape))] = gy
    return [gx]


SLICE = {"starts": None, "ends": None, "axes": None, "steps": None}
register(OpDef("slice", _slice_infer,
               lambda x, **a: [np.ascontiguousarray(x[_index(a, x.ndim)])],
               vjp=lambda g, n, gys, needs: [g.emit("slice_grad", [gys[0]], {
                   **n.attrs, "input_shape": list(g.values[n.inputs[0]].shape)})],
               kernel="tte_slice", attrs=SLICE,
               doc="strided slice; an end of -1 with a negative step means 'through index 0'"))
register(OpDef("slice_grad", lambda ins, a: [(tuple(a["input_shape"]), ins[0].dtype)],
               _slice_grad_ref, kernel="tte_slice_grad", attrs={**SLICE, "input_shape": None},
               doc="scatter a slice's gradient into zeros of the input's shape"))
