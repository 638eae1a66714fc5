"""Reductions, softmax and the losses."""
from __future__ import annotations

import numpy as np

from tte.errors import TTEError
from tte.ir.types import DType, Value
from tte.ops.registry import OpDef, register, same_as
from tte.quant import ordered


def _reduced_shape(shape, axes, keepdims) -> tuple[int, ...]:
    if any(not 0 <= a < len(shape) for a in axes):
        raise ValueError(f"reduce axes {axes} must lie in 0..{len(shape) - 1}")
    return tuple((1 if keepdims else None) if i in axes else d
                 for i, d in enumerate(shape) if keepdims or i not in axes)


def _reduce(name: str, fn, scale_of) -> None:
    def vjp(g, node, gys, needs):
        shape = g.values[node.inputs[0]].shape
        return [g.emit("unreduce", [gys[0]], {"shape": list(shape), "axes": node.attrs["axes"],
                                              "keepdims": node.attrs["keepdims"],
                                              "scale": scale_of(shape, node.attrs["axes"])})]
    register(OpDef(name, lambda ins, a: [(_reduced_shape(ins[0].shape, a["axes"], a["keepdims"]),
                                          ins[0].dtype)],
                   lambda x, axes, keepdims: [fn(x, axis=tuple(axes), keepdims=bool(keepdims))
                                              .astype(x.dtype, copy=False)],
                   vjp=vjp, kernel=f"tte_{name}", attrs={"axes": None, "keepdims": 1},
                   doc=f"{fn.__name__} over axes"))


_reduce("reduce_mean", np.mean, lambda s, axes: 1.0 / int(np.prod([s[a] for a in axes])))
_reduce("reduce_sum", np.sum, lambda s, axes: 1.0)


def _unreduce_ref(ct, *, shape, axes, keepdims, scale):
    kept = ct if keepdims else np.expand_dims(ct, tuple(axes))
    return [(np.broadcast_to(kept, shape) * np.asarray(scale, ct.dtype)).astype(ct.dtype)]


register(OpDef("unreduce", lambda ins, a: [(tuple(a["shape"]), ins[0].dtype)], _unreduce_ref,
               kernel="tte_unreduce",
               attrs={"shape": None, "axes": None, "keepdims": 1, "scale": 1.0},
               doc="broadcast a reduction's gradient back over the reduced axes, times scale"))


def _softmax(x, axis):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _log_softmax(x, axis):
    z = x - x.max(axis=axis, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=axis, keepdims=True))


def _softmax_op(name: str, fn, grad_fn, doc: str) -> None:
    register(OpDef(name, same_as(0), lambda x, axis: [fn(x, axis).astype(x.dtype, copy=False)],
                   vjp=lambda g, n, gys, needs: [g.emit(f"{name}_grad", [n.outputs[0], gys[0]],
                                                        {"axis": n.attrs["axis"]})],
                   kernel=f"tte_{name}", attrs={"axis": -1}, inplace=0, doc=doc))
    register(OpDef(f"{name}_grad", same_as(1),
                   lambda y, ct, axis: [grad_fn(y, ct, axis).astype(ct.dtype, copy=False)],
                   kernel=f"tte_{name}_grad", attrs={"axis": -1}, inplace=1,
                   doc=f"gradient of {name} from its output (y, ct)"))


_softmax_op("softmax", _softmax, lambda y, ct, ax: y * (ct - (ct * y).sum(axis=ax, keepdims=True)),
            "exp(x) / sum(exp(x)) along axis")
_softmax_op("log_softmax", _log_softmax,
            lambda y, ct, ax: ct - np.exp(y) * ct.sum(axis=ax, keepdims=True),
            "x - log(sum(exp(x))) along axis")


# --- losses: scalar f32 outputs; a vjp called with gys=[None] is the seed of autodiff (ct = 1)

def check_labels(label: np.ndarray, classes: int) -> None:
    bad = label[(label < 0) | (label >= classes)]
    if bad.size:
        raise TTEError(f"label {int(bad[0])} is outside the class range 0..{classes - 1} "
                       f"of this model's {classes} outputs")


def _xent_infer(ins: list[Value | None], a: dict) -> list:
    logits, label = ins
    if len(logits.shape) != 2 or label.shape != logits.shape[:1]:
        raise ValueError(f"softmax_cross_entropy: logits {logits.shape}, labels {label.shape}; "
                         "expected [N, C] and [N]")
    if label.dtype != DType.i32:
        raise ValueError("softmax_cross_entropy: labels must be i32")
    # an f16 model's loss stays f32: one scalar, and the value the user reads
    return [((), DType.f32 if logits.dtype == DType.f16 else logits.dtype)]


def _xent_rows(logits):
    """loss.c's xent_row for every row: the max m, e = exp(x - m) and s = sum e in class
    order (exp and log as tte/quant/ordered.py: in double, rounded to the logits' dtype)."""
    m = logits.max(axis=1)
    e = ordered.exp(logits - m[:, None])
    return m, e, ordered.seq_sum(e.T)


def _xent_ref(logits, label):
    check_labels(label, logits.shape[1])
    m, _, s = _xent_rows(logits)
    rows = (m - logits[np.arange(len(label)), label]) + ordered.log(s)
    n = logits.dtype.type(max(len(label), 1))
    return [np.asarray(ordered.seq_sum(rows) / n, logits.dtype)]


def _xent_grad_ref(logits, label):
    check_labels(label, logits.shape[1])
    _, e, s = _xent_rows(logits)
    one = logits.dtype.type(1)
    inv_n = one / logits.dtype.type(max(len(label), 1))
    g = e * (one / s)[:, None] * inv_n
    g[np.arange(len(label)), label] -= inv_n
    return [g]


def _scaled(g, grad: str, ct: str | None) -> str:
    return grad if ct is None else g.emit("mul", [grad, ct])


def _xent_vjp(g, node, gys, needs):
    return [_scaled(g, g.emit("softmax_cross_entropy_grad", node.inputs), gys[0])
            if needs[0] else None, None]


def _mse_vjp(g, node, gys, needs):
    grad = _scaled(g, g.emit("mse_grad", node.inputs), gys[0])
    return [grad if needs[0] else None, g.emit("neg", [grad]) if needs[1] else None]


def _mse_infer(ins: list[Value | None], a: dict) -> list:
    if ins[0].shape != ins[1].shape:
        raise ValueError(f"mse: prediction {ins[0].shape} and target {ins[1].shape} differ")
    return [((), ins[0].dtype)]


register(OpDef("softmax_cross_entropy", _xent_infer, _xent_ref, vjp=_xent_vjp,
               kernel="tte_softmax_cross_entropy",
               doc="mean over the batch of -log softmax(logits)[label]"))
register(OpDef("softmax_cross_entropy_grad", lambda ins, a: [(ins[0].shape, ins[0].dtype)],
               _xent_grad_ref, kernel="tte_softmax_cross_entropy_grad",
               doc="(softmax(logits) - onehot(label)) / N"))
register(OpDef("mse", _mse_infer,
               lambda p, t: [np.asarray(np.mean((p - t).astype(np.float64) ** 2), p.dtype)],
               vjp=_mse_vjp, kernel="tte_mse", doc="mean squared error"))
register(OpDef("mse_grad", same_as(0),
               lambda p, t: [(2 * (p - t) / p.size).astype(p.dtype, copy=False)],
               kernel="tte_mse_grad", doc="2 (pred - target) / size"))
