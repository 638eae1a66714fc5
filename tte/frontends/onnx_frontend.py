"""ONNX frontend: an ONNX model (opset 13 or newer) becomes a forward IR graph.

Constants (initializers, Constant nodes, static shapes) are folded at build
time; every other node maps onto the IR ops of tte/ops/SPEC.md through the
converters in onnx_ops.py and onnx_shape_ops.py.
"""
from __future__ import annotations

import os

import numpy as np
import onnx
import onnx.inliner
from onnx import helper, numpy_helper

import tte.ops  # noqa: F401  (registers the IR ops the converters emit)
from tte.errors import TTEError
from tte.frontends import onnx_ops, onnx_shape_ops  # noqa: F401  (register converters)
from tte.frontends.onnx_context import CONVERTERS, Ctx, OnnxUnsupportedError
from tte.ir import DType, Graph
from tte.ir.verify import verify

MIN_OPSET = 13
# Ops evaluated at build time only (shape computations); a run-time input is an error.
CONSTANT_ONLY_OPS = ("Cast", "Constant", "ConstantOfShape", "Gather", "Range")
SUPPORTED_ONNX_OPS: tuple[str, ...] = tuple(sorted({*CONVERTERS, *CONSTANT_ONLY_OPS}))

_INPUT_DTYPES = {onnx.TensorProto.FLOAT: DType.f32, onnx.TensorProto.FLOAT16: DType.f16,
                 onnx.TensorProto.INT8: DType.i8, onnx.TensorProto.INT32: DType.i32}
_GRAPH_ATTRS = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def load_onnx(model: str | os.PathLike | onnx.ModelProto, *,
              input_shapes: dict[str, tuple[int, ...]] | None = None,
              fold_batchnorm: bool = True) -> Graph:
    """Import an ONNX model as a verified forward IR graph.

    Initializers that run-time nodes read become frozen parameters under their
    ONNX names; constant subgraphs (shape arithmetic) are folded away. Symbolic
    input dims are 1 unless `input_shapes` gives the input's full shape.
    Raises TTEError for an unreadable or invalid model, UnsupportedError for an
    op, attribute or dtype TTE lacks.
    `g.outputs` follows the ONNX output order (an output that merely aliases
    another value, through Identity or Dropout, carries that value's name).
    """
    proto = _read(model)
    if proto.functions:  # model-local functions: expand them into plain nodes
        proto = onnx.inliner.inline_local_functions(proto)
    g = Graph(proto.graph.name or "model")
    ctx = Ctx(proto, g, fold_batchnorm)
    _add_inputs(ctx, dict(input_shapes or {}))
    for index, node in enumerate(proto.graph.node):
        ctx.node, ctx.index = node, index
        _convert(ctx)
    ctx.node = None
    g.outputs = [ctx.materialize(o.name) for o in proto.graph.output]
    verify(g)
    return g


def _read(model: str | os.PathLike | onnx.ModelProto) -> onnx.ModelProto:
    if isinstance(model, onnx.ModelProto):
        source, proto = "the given ModelProto", model
    else:
        source = repr(os.fspath(model))
        try:
            proto = onnx.load(os.fspath(model))
        except OSError as exc:
            raise TTEError(f"cannot read ONNX model {source}: {exc}") from None
        except Exception:  # DecodeError and friends: protobuf and onnx raise many types
            raise TTEError(f"{source} is not a valid ONNX model (truncated or corrupt "
                           "protobuf)") from None
    try:
        onnx.checker.check_model(proto if isinstance(model, onnx.ModelProto)
                                 else os.fspath(model))
    except Exception as exc:  # ValidationError; onnx's message says what is wrong
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise TTEError(f"{source} is not a valid ONNX model: {reason}") from None
    versions = {o.domain: o.version for o in proto.opset_import}
    opset = versions.get("", versions.get("ai.onnx"))
    if opset is None or opset < MIN_OPSET:
        raise OnnxUnsupportedError(
            f"{source} uses ONNX opset {opset}; TTE needs opset {MIN_OPSET} or newer "
            f"(convert it with onnx.version_converter.convert_version(model, {MIN_OPSET}))",
            f"opset {opset} < {MIN_OPSET}")
    return proto


def _elem_name(elem_type: int) -> str:
    try:
        return np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)).name
    except (KeyError, TypeError, ValueError):
        return onnx.TensorProto.DataType.Name(elem_type).lower()


def _add_inputs(ctx: Ctx, input_shapes: dict[str, tuple[int, ...]]) -> None:
    graph = ctx.model.graph
    if graph.sparse_initializer:
        raise OnnxUnsupportedError("sparse initializers are not supported", "sparse initializer")
    for t in graph.initializer:
        ctx.consts[t.name] = numpy_helper.to_array(t)
        ctx.param_like.add(t.name)
    # an input with an initializer of the same name is a constant with a default value
    inputs = [v for v in graph.input if v.name not in ctx.consts]
    unknown = set(input_shapes) - {v.name for v in inputs}
    if unknown:
        raise TTEError(f"input_shapes names {sorted(unknown)}, but the model's inputs are "
                       f"{[v.name for v in inputs]}")
    for v in inputs:
        tensor = v.type.tensor_type
        dtype = _INPUT_DTYPES.get(tensor.elem_type) if v.type.HasField("tensor_type") else None
        if dtype is None:
            name = _elem_name(tensor.elem_type) if v.type.HasField("tensor_type") \
                else v.type.WhichOneof("value")
            raise OnnxUnsupportedError(
                f"graph input {v.name!r} has type {name}; model inputs must be float32, "
                "float16, int8 or int32 tensors", f"dtype {name}")
        if v.name in input_shapes:
            shape = tuple(int(d) for d in input_shapes[v.name])
            if tensor.HasField("shape") and len(shape) != len(tensor.shape.dim):
                raise TTEError(f"input_shapes gives {v.name!r} rank {len(shape)}, the model "
                               f"says rank {len(tensor.shape.dim)}")
        elif tensor.HasField("shape"):  # symbolic or unknown dims: a batch of one
            shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in tensor.shape.dim)
        else:
            raise TTEError(f"graph input {v.name!r} has unknown rank; give its shape with "
                           f"input_shapes={{{v.name!r}: (...)}}")
        ctx.g.add_input(v.name, shape, dtype)
        ctx.alias(v.name, v.name)


def _convert(ctx: Ctx) -> None:
    node = ctx.node
    runtime = [n for n in node.input if n and n not in ctx.consts]
    if not runtime and not any(a.type in _GRAPH_ATTRS for a in node.attribute):
        ctx.fold()
        return
    op = f"{node.domain}.{node.op_type}" if node.domain not in ("", "ai.onnx") else node.op_type
    fn = CONVERTERS.get(op)
    if fn is None and op in CONSTANT_ONLY_OPS:
        raise ctx.unsupported(f"ONNX op {op} is supported only on constant inputs (shape "
                              f"computations), but input {runtime[0]!r} is computed at run time",
                              f"{op} on run-time input")
    if fn is None:
        raise ctx.unsupported(f"unsupported ONNX op {op}. Supported ONNX ops: "
                              f"{', '.join(SUPPORTED_ONNX_OPS)}", f"op {op}")
    try:
        fn(ctx)
    except TTEError:
        raise
    except Exception as exc:  # an IR shape rule refused the node: say which node
        raise TTEError(f"{ctx.where()}: cannot convert to the IR: {exc}") from exc
