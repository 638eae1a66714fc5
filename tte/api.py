"""tte.compile: from a model to a Program."""
from __future__ import annotations

import os
from typing import Any, Sequence

from tte.errors import TTEError
from tte.ir.graph import Graph
from tte.ir.precision import to_fp16
from tte.passes.patch import parse_patch, patch_graphs
from tte.program import Program
from tte.sparse import is_scheme, parse_scheme, resolve
from tte.training import build_training_graph, choose_trainable

TARGETS = ("host",)
DEFAULT_OPTIMIZER = {"name": "sgd", "lr": 0.01, "momentum": 0.0}


MCU_OPTIONS = {"num_classes": None, "head": "fp32", "precision": "int8", "input_size": None,
               "int8_input": False}
FORMATS = ".onnx, .tflite or an MCU backbone .pkl"


def load_model(model: Any, *, fold_batchnorm: bool = True, input_shapes: dict | None = None,
               **mcu_options: Any) -> Graph:
    """Read a model (path, onnx.ModelProto or an IR Graph) into a forward graph.

    MCU backbones (.pkl) take mcu_options: num_classes (a new head), head ("fp32"/"int8"),
    precision ("int8", or "fp32" for dequantized weights), input_size and int8_input."""
    if isinstance(model, Graph):
        return model
    suffix = ""
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.exists(path):
            raise TTEError(f"model file {path!r} does not exist")
        suffix = os.path.splitext(path)[1].lower()
        if suffix not in (".onnx", ".tflite", ".pkl"):
            raise TTEError(f"{path!r}: unknown model format; TTE reads {FORMATS} files")
    elif type(model).__name__ != "ModelProto":
        raise TTEError(f"cannot read a model from {type(model).__name__}; pass a path "
                       f"({FORMATS}), an onnx.ModelProto or a tte Graph")
    given = {k: v for k, v in mcu_options.items() if v is not None and v is not False}
    unknown = set(given) - set(MCU_OPTIONS)
    if unknown:
        raise TTEError(f"unknown model options {sorted(unknown)}")
    if given and suffix != ".pkl":
        raise TTEError(f"options {sorted(given)} apply to MCU backbones (.pkl) only")
    if suffix == ".pkl":
        from tte.frontends.mcu_graph import mcu_graph
        from tte.frontends.mcu_pickle import load_mcu_pickle
        return mcu_graph(load_mcu_pickle(path), **{**MCU_OPTIONS, **given})
    if suffix == ".tflite":
        from tte.frontends.tflite_frontend import load_tflite
        return load_tflite(path)
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


def compile(model: Any, *, update: str | Sequence[str] | dict = "full", loss: str = "cross_entropy",
            optimizer: dict | None = None, target: str = "host", fold_batchnorm: bool = True,
            input_shapes: dict | None = None, qas: bool = True, master_weights: bool = False,
            reorder: bool = True, patch: str | dict | None = None, accumulate: str = "fp16",
            **model_options: Any) -> Program:
    """Compile a model into a training program (forward, loss, gradients, in-place SGD).

    update: "full", "bias", a list of parameter names, or a sparse-update scheme (a dict, an
    UpdateScheme or a .json file; see tte.sparse).

    int8 graphs: qas scales integer gradients (quantization-aware scaling), master_weights
    keeps fp32 copies of updated int8 weights. reorder=False keeps every update at the end
    of the step (no early in-place updates, no fused gradient+update): only for comparison.
    patch runs the first high-resolution layers tile by tile (tte.passes.patch): "auto"
    picks the split with the smallest arena per graph, {"nodes": K, "tiles": N} runs the
    first K nodes on an N x N grid, None (default) keeps every map whole.
    precision="fp16" trains a float model (an MCU backbone: its fp32 weights) in half
    precision: f16 activations, gradients, weights and optimizer state, an f32 loss;
    accumulate is how its kernels sum: "fp16" (as PULP-TrainLib), "fp32", or "auto" (chosen
    per layer: float where a sum has more than 64 terms, tte.ir.precision).
    model_options go to load_model."""
    if target not in TARGETS:
        raise TTEError(f"target {target!r} is not known; targets: {', '.join(TARGETS)}")
    opt = _optimizer(optimizer)
    if patch is not None:
        parse_patch(patch)  # a bad spec fails before the model is read
    half = model_options.get("precision") == "fp16"
    if half:  # an MCU backbone is read with float weights; other formats take no precision
        pkl = isinstance(model, (str, os.PathLike)) and os.fspath(model).lower().endswith(".pkl")
        model_options = {**model_options, "precision": "fp32" if pkl else None}
    fwd = load_model(model, fold_batchnorm=fold_batchnorm, input_shapes=input_shapes,
                     **model_options)
    if half:
        fwd = to_fp16(fwd, accumulate)
    if len(fwd.inputs) != 1:
        raise TTEError(f"training needs a model with one input, this one has {fwd.inputs}")
    partial = {}
    if is_scheme(update):
        trainable, partial = resolve(fwd, parse_scheme(update))
        choose_trainable(fwd, trainable)  # the same checks as an explicit list
    else:
        trainable = choose_trainable(fwd, update)
    training = build_training_graph(fwd, trainable=trainable, loss=loss, optimizer=opt,
                                    qas=qas, master_weights=master_weights, partial=partial,
                                    reorder=reorder)
    summary = None
    if patch is not None:
        fwd = fwd.copy()  # the caller's graph stays whole
        summary = patch_graphs({"training": training, "inference": fwd}, patch)
    return Program(fwd, training, loss=loss, optimizer=opt, target=target, patch=summary)
