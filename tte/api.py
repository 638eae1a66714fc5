"""tte.compile: from a model to a Program."""
from __future__ import annotations

import os
from typing import Any, Sequence

from tte.errors import TTEError
from tte.ir.graph import Graph
from tte.program import Program
from tte.training import build_training_graph, choose_trainable

TARGETS = ("host",)
DEFAULT_OPTIMIZER = {"name": "sgd", "lr": 0.01, "momentum": 0.0}


def load_model(model: Any, *, fold_batchnorm: bool = True, input_shapes: dict | None = None) -> Graph:
    """Read a model (path, onnx.ModelProto or an IR Graph) into a forward graph."""
    if isinstance(model, Graph):
        return model
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise TTEError(f"model file {path!r} does not exist")
        if not path.lower().endswith(".onnx"):
            raise TTEError(f"{path!r}: unknown model format; TTE reads .onnx files")
    elif type(model).__name__ != "ModelProto":
        raise TTEError(f"cannot read a model from {type(model).__name__}; pass a .onnx path, "
                       "an onnx.ModelProto or a tte Graph")
    from tte.frontends.onnx_frontend import load_onnx
    return load_onnx(model, fold_batchnorm=fold_batchnorm, input_shapes=input_shapes)


def _optimizer(optimizer: dict | None) -> dict:
    opt = {**DEFAULT_OPTIMIZER, **(optimizer or {})}
    if opt["name"] != "sgd":
        raise TTEError(f"optimizer {opt['name']!r} is not supported; TTE has 'sgd' "
                       "(with momentum and weight_decay)")
    unknown = set(opt) - {"name", "lr", "momentum", "weight_decay"}
    if unknown:
        raise TTEError(f"unknown optimizer options {sorted(unknown)}; "
                       "sgd takes lr, momentum, weight_decay")
    return opt


def compile(model: Any, *, update: str | Sequence[str] = "full", loss: str = "cross_entropy",
            optimizer: dict | None = None, target: str = "host", fold_batchnorm: bool = True,
            input_shapes: dict | None = None) -> Program:
    """Compile a model into a training program (forward, loss, gradients, in-place SGD)."""
    if target not in TARGETS:
        raise TTEError(f"target {target!r} is not known; targets: {', '.join(TARGETS)}")
    opt = _optimizer(optimizer)
    fwd = load_model(model, fold_batchnorm=fold_batchnorm, input_shapes=input_shapes)
    if len(fwd.inputs) != 1:
        raise TTEError(f"training needs a model with one input, this one has {fwd.inputs}")
    trainable = choose_trainable(fwd, update)
    training = build_training_graph(fwd, trainable=trainable, loss=loss, optimizer=opt)
    return Program(fwd, training, loss=loss, optimizer=opt, target=target)
