"""Optimizer updates, applied in place to parameters and optimizer state."""
from __future__ import annotations

from tte.ir.types import Value
from tte.ops.registry import OpDef, get_op, register
from tte.ops.slice_channels import TRAIN_CHANNELS, on_trained, trained_shape

SGD_ATTRS = {"lr": None, "momentum": 0.0, "weight_decay": 0.0, **TRAIN_CHANNELS}


def _sgd_infer(ins: list[Value | None], a: dict) -> list:
    p, g, buf = (ins + [None])[:3]
    if g.shape != trained_shape(p.shape, a["train_axis"], a["train_channels"]) or \
            (buf is not None and buf.shape != p.shape):
        raise ValueError(f"sgd_update: parameter {p.shape}, gradient {g.shape} differ")
    return []


def _sgd_ref(p, g, buf=None, *, lr, momentum, weight_decay, train_axis=0,
             train_channels=None):
    """PyTorch SGD: g += wd * p; buf = momentum * buf + g (buf starts at 0); p -= lr * buf.
    With train_channels (a partial weight), g is theirs and only they change."""
    def apply(p, buf):
        step = g + weight_decay * p if weight_decay else g
        if buf is None:
            return [(p - lr * step).astype(p.dtype, copy=False)]
        buf = momentum * buf + step
        return [(p - lr * buf).astype(p.dtype, copy=False), buf.astype(p.dtype, copy=False)]
    return on_trained(apply, [p, buf], train_axis, train_channels)


register(OpDef("sgd_update", _sgd_infer, _sgd_ref, kernel="tte_sgd_update", attrs=SGD_ATTRS,
               mutates=(0, 2), doc="in-place SGD (param, grad, optional momentum buffer), "
                                   "PyTorch semantics"))


# --- fused gradient + update: the gradient is applied element by element as it is computed,
# so no gradient buffer exists (kernels tte_*_sgd_f32).


def _fused(grad_op: str, n_grad_inputs: int, doc: str) -> None:
    grad = get_op(grad_op)
    register(OpDef(f"{grad_op}_sgd", lambda ins, a: [], _fused_ref(grad, n_grad_inputs),
                   kernel=f"tte_{grad_op}_sgd",
                   attrs={**grad.attrs, **SGD_ATTRS},
                   mutates=(n_grad_inputs, n_grad_inputs + 1), macs=grad.macs, doc=doc))


def _fused_ref(grad: OpDef, n: int):
    def ref(*args, **attrs):
        g = grad.ref(*args[:n], **{k: attrs[k] for k in grad.attrs})[0]
        param, buf = (list(args[n:]) + [None])[:2]
        return _sgd_ref(param, g, buf, **{k: attrs[k] for k in SGD_ATTRS})
    return ref


def register_fused_updates() -> None:
    """Called from tte/ops/__init__.py once the gradient ops are registered."""
    _fused("conv2d_grad_weight", 2, "conv2d weight gradient (x, gy) applied by SGD to (w, buf)")
    _fused("linear_grad_weight", 2, "linear weight gradient (x, gy) applied by SGD to (w, buf)")
    _fused("channel_sum", 1, "bias gradient (gy) applied by SGD to (b, buf)")
