"""Build the training graph: forward + loss + backward + in-place optimizer updates."""
from __future__ import annotations

from typing import Sequence

from tte.autodiff import append_backward
from tte.errors import TTEError
from tte.ir.graph import Graph
from tte.ir.types import DType, Role, Value
from tte.passes import (eliminate_dead_nodes, fuse_gradient_updates, run_passes,
                        schedule_updates_early)

LOSSES = {"cross_entropy": "softmax_cross_entropy", "mse": "mse"}
# (op, input index) pairs that hold a bias, and pairs that are never trained
BIAS_SLOTS = {("conv2d", 2), ("linear", 2), ("batch_norm", 2)}
STATISTIC_SLOTS = {("batch_norm", 3), ("batch_norm", 4)}


def _slots(g: Graph) -> dict[str, set[tuple[str, int]]]:
    used: dict[str, set[tuple[str, int]]] = {}
    for node in g.nodes:
        for k, name in enumerate(node.inputs):
            if name:
                used.setdefault(name, set()).add((node.op, k))
    return used


def choose_trainable(g: Graph, update: str | Sequence[str]) -> list[str]:
    """Parameter names to train for update = "full", "bias" or an explicit list."""
    slots = _slots(g)
    candidates = [p for p in g.params() if g.values[p].dtype.is_float
                  and not slots.get(p, set()) & STATISTIC_SLOTS]
    if update == "full":
        return candidates
    if update == "bias":
        return [p for p in candidates if slots.get(p, set()) & BIAS_SLOTS]
    if isinstance(update, str):
        raise TTEError(f"update={update!r}: use 'full', 'bias' or a list of parameter names")
    names = list(update)
    for name in names:
        if name not in g.values or not g.values[name].role.is_param:
            raise TTEError(f"update names {name!r}, which is not a parameter of the model; "
                           f"parameters are: {', '.join(g.params())}")
        if name not in candidates:
            raise TTEError(f"parameter {name!r} cannot be trained (a batch-norm statistic or "
                           "an integer tensor)")
    return names


def build_training_graph(fwd: Graph, *, trainable: list[str], loss: str = "cross_entropy",
                         optimizer: dict) -> Graph:
    if loss not in LOSSES:
        raise TTEError(f"loss={loss!r} is not supported; choose one of {sorted(LOSSES)}")
    if len(fwd.outputs) != 1:
        raise TTEError(f"training needs a model with one output, this one has {fwd.outputs}")
    g = fwd.copy()
    out = g.values[fwd.outputs[0]]
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
    g.phase = "update"
    lr, momentum = optimizer["lr"], optimizer.get("momentum", 0.0)
    for p in trainable:
        if p not in grads:
            continue  # the parameter does not reach the loss
        g.values[p].role = Role.trainable
        buf = ""
        if momentum:
            buf = g.fresh(f"{p}.momentum")
            g.add_value(Value(buf, g.values[p].shape, g.values[p].dtype, Role.state))
        g.add_node("sgd_update", [p, grads[p], buf],
                   {"lr": lr, "momentum": momentum,
                    "weight_decay": optimizer.get("weight_decay", 0.0)})
    g.outputs = [loss_value]
    return run_passes(g, [eliminate_dead_nodes, schedule_updates_early, fuse_gradient_updates])
