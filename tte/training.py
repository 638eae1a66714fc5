"""Build the training graph: forward + loss + backward + in-place optimizer updates."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from tte.autodiff import append_backward
from tte.errors import TTEError
from tte.ir.graph import Graph
from tte.ir.types import DType, Role, Value
from tte.ops.quantized import output_scales
from tte.ops.slice_channels import trained_shape
from tte.sparse import CONV_OPS, PartialWeight
from tte.passes import (eliminate_dead_nodes, fuse_gradient_updates, run_passes,
                        schedule_updates_early)

LOSSES = {"cross_entropy": "softmax_cross_entropy", "mse": "mse"}
# (op, input index) pairs that hold a bias, and pairs that are never trained
BIAS_SLOTS = {("conv2d", 2), ("linear", 2), ("batch_norm", 2), ("conv2d_s8", 2),
              ("linear_s8", 2)}
# integer parameters that can be trained: int8 weights and int32 biases of these ops
INTEGER_OPS = ("conv2d_s8", "linear_s8")
INTEGER_SLOTS = {(op, k) for op in INTEGER_OPS for k in (1, 2)}
STATISTIC_SLOTS = {("batch_norm", 3), ("batch_norm", 4)}
GRAD_WEIGHT_OPS = ("conv2d_grad_weight", "conv2d_s8_grad_weight")


def _slots(g: Graph) -> dict[str, set[tuple[str, int]]]:
    used: dict[str, set[tuple[str, int]]] = {}
    for node in g.nodes:
        for k, name in enumerate(node.inputs):
            if name:
                used.setdefault(name, set()).add((node.op, k))
    return used


def _can_train(v: Value, used: set[tuple[str, int]]) -> bool:
    if v.dtype.is_float:
        return not used & STATISTIC_SLOTS
    return bool(used) and used <= INTEGER_SLOTS


def choose_trainable(g: Graph, update: str | Sequence[str]) -> list[str]:
    """Parameter names to train for update = "full", "bias" or an explicit list."""
    slots = _slots(g)
    candidates = [p for p in g.params() if _can_train(g.values[p], slots.get(p, set()))]
    if update == "full":
        return candidates
    if update == "bias":
        biases = [p for p in candidates if slots.get(p, set()) & BIAS_SLOTS]
        if not biases:
            raise TTEError("update='bias', but no convolution, linear or batch-norm layer of "
                           "this model has a bias parameter; name the parameters to train")
        return biases
    if isinstance(update, str):
        raise TTEError(f"update={update!r}: use 'full', 'bias' or a list of parameter names")
    names = list(update)
    for name in names:
        if name not in g.values or not g.values[name].role.is_param:
            raise TTEError(f"update names {name!r}, which is not a parameter of the model; "
                           f"parameters are: {', '.join(g.params())}")
        if name not in candidates:
            raise TTEError(f"parameter {name!r} cannot be trained (a batch-norm statistic, or "
                           "an integer tensor outside an int8 convolution or fully connected "
                           "layer)")
    return names


def build_training_graph(fwd: Graph, *, trainable: list[str], loss: str = "cross_entropy",
                         optimizer: dict, qas: bool = True, master_weights: bool = False,
                         partial: dict[str, PartialWeight] | None = None,
                         reorder: bool = True) -> Graph:
    """Forward + loss + backward + updates. Integer parameters (int8 weights, int32 biases)
    are updated in place by sgd_update_q with QAS factors (qas) and, for int8 weights,
    optionally through fp32 master copies (master_weights). partial: weights of which only
    some channels along an axis train (tte.sparse; they become Role.partial). reorder=False
    leaves every update at the end of the step, each gradient in its own buffer until then
    (the unoptimised schedule, kept for the memory ablation)."""
    if loss not in LOSSES:
        raise TTEError(f"loss={loss!r} is not supported; choose one of {sorted(LOSSES)}")
    if len(fwd.outputs) != 1:
        raise TTEError(f"training needs a model with one output, this one has {fwd.outputs}")
    g = fwd.copy()
    out = _loss_input(g, loss)
    if loss == "cross_entropy":
        if len(out.shape) != 2:
            raise TTEError(f"cross-entropy needs [batch, classes] logits; the output "
                           f"{out.name} has shape {out.shape}")
        target = g.add_input(g.fresh("label"), out.shape[:1], DType.i32)
    else:
        target = g.add_input(g.fresh("target"), out.shape, out.dtype)
    g.phase = "loss"
    loss_value = g.emit(LOSSES[loss], [out.name, target], name_hint="loss")
    g.phase = "backward"
    grads = append_backward(g, {loss_value: None}, set(trainable))
    partial = {p: part for p, part in (partial or {}).items() if p in grads}
    for name, part in partial.items():
        _limit_channels(g, name, grads[name], part)
    g.phase = "update"
    lr, momentum = optimizer["lr"], optimizer.get("momentum", 0.0)
    for p in trainable:
        if p not in grads:
            continue  # the parameter does not reach the loss
        g.values[p].role = Role.partial if p in partial else Role.trainable
        train = _train_attrs(partial.get(p))
        if not g.values[p].dtype.is_float:
            _integer_update(g, p, grads[p], lr, qas, master_weights, momentum, train)
            continue
        buf = ""
        if momentum:
            buf = _state(g, f"{p}.momentum", p, g.values[p].dtype)
        g.add_node("sgd_update", [p, grads[p], buf],
                   {"lr": lr, "momentum": momentum,
                    "weight_decay": optimizer.get("weight_decay", 0.0), **train})
    g.outputs = [loss_value]
    passes = [eliminate_dead_nodes] + ([schedule_updates_early, fuse_gradient_updates]
                                       if reorder else [])
    return run_passes(g, passes)


def _train_attrs(part: PartialWeight | None) -> dict:
    return {} if part is None else {"train_axis": part.axis,
                                    "train_channels": list(part.channels)}


def _state(g: Graph, hint: str, p: str, dtype: DType) -> str:
    """An optimizer-state value shaped like parameter p (for a partial p: stored in C for
    its trained channels only)."""
    name = g.fresh(hint)
    v = g.add_value(Value(name, g.values[p].shape, dtype, Role.state))
    if "train_channels" in g.values[p].meta:
        v.meta["train_channels"] = g.values[p].meta["train_channels"]
    return name


def _limit_channels(g: Graph, weight: str, grad: str, part: PartialWeight) -> None:
    """Compute only the trained channels' weight gradient, from a copy of just those channels
    of the convolution's input made in the forward where the convolution reads it: the full
    input need not outlive the forward unless something else reads it later."""
    node = next(n for n in g.nodes if grad in n.outputs)
    if node.op not in GRAD_WEIGHT_OPS:
        raise TTEError(f"{weight}: channel ratios below 1 are supported for convolutions "
                       f"only; this weight's gradient comes from {node.op}, train all of it")
    conv = next(n for n in g.nodes if n.op in CONV_OPS and n.inputs[1] == weight)
    at = g.nodes.index(conv)
    sliced = g.emit("slice_channels", [conv.inputs[0]], {"channels": list(part.channels)},
                    phase="forward", name_hint=f"{conv.inputs[0]}.train_channels")
    g.nodes.insert(at, g.nodes.pop())
    node.inputs[0] = sliced
    node.attrs.update(_train_attrs(part))
    gv = g.values[grad]
    gv.shape = trained_shape(gv.shape, part.axis, part.channels)
    g.values[weight].meta["train_channels"] = {"axis": part.axis, "count": part.count,
                                               "channels": list(part.channels)}


def _loss_input(g: Graph, loss: str) -> Value:
    """The value the loss reads: the model output, or for cross-entropy the logits before a
    final softmax (TFLite classifiers end with one); int8 values are dequantized."""
    out = g.values[g.outputs[0]]
    producer = next((n for n in g.nodes if out.name in n.outputs), None)
    if loss == "cross_entropy" and producer is not None and producer.op in ("softmax",
                                                                           "softmax_s8"):
        out = g.values[producer.inputs[0]]
    if out.dtype == DType.i8:
        if out.quant is None or out.quant.per_channel:
            raise TTEError(f"the int8 output {out.name} has no per-tensor scale to dequantize")
        g.phase = "loss"
        name = g.emit("dequantize", [out.name], {"scale": out.quant.scale[0],
                                                 "zero": out.quant.zero_point[0]})
        out = g.values[name]
    return out


def _integer_update(g: Graph, p: str, grad: str, lr: float, qas: bool, master: bool,
                    momentum: float, train: dict) -> None:
    """sgd_update_q for an int8 weight or int32 bias of a conv2d_s8 or linear_s8 (a
    linear's per-tensor weight scale counts for each of its outputs)."""
    if momentum:
        raise TTEError(f"momentum is not supported for the integer parameter {p!r}; "
                       "use momentum=0 for int8 training")
    node = next(n for n in g.nodes if n.op in INTEGER_OPS and p in n.inputs[1:3])
    a = node.attrs
    s_w = output_scales(a, g.values[node.inputs[1]].shape[0])
    is_weight = node.inputs[1] == p
    scale = s_w if is_weight else float(a["in_scale"]) * s_w
    factors = [float(f) for f in scale ** -2] if qas else [1.0] * len(s_w)
    lo, hi = (-127, 127) if is_weight else (-(1 << 31), (1 << 31) - 1)
    copy = ""
    if master and is_weight:
        copy = _state(g, f"{p}.master", p, DType.f32)
        g.data[copy] = g.data[p].astype(np.float32)
    g.add_node("sgd_update_q", [p, grad, copy],
               {"lr": lr, "factors": factors, "lo": lo, "hi": hi, **train})
