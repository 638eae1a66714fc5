"""Build one-op .tflite models in memory (flatbuffers object API of tflite-micro's schema),
so that ops the shipped models lack can be checked against tflite-micro too.

    model = build_single_op_model(
        "MEAN", [tensor("x", [1, 4, 4, 3], "INT8", 0.1, -3),
                 tensor("axes", [2], "INT32", data=np.array([1, 2]))],
        [tensor("y", [1, 1, 1, 3], "INT8", 0.05, 2)],
        options=("ReducerOptions", {"keepDims": True}))
    y = run_tflm(model, x)

Tensors (`tensor()` / `Spec`, or dicts of tensor()'s arguments): any schema TensorType name
("INT8", "INT32", "FLOAT32", ...), per-tensor quantization (one scale and zero point) or
per-channel (a list of scales along `axis`; one zero point is repeated), and constant data
(stored in its own buffer, cast to the tensor type; constants are not subgraph inputs).
`None` in the input list is an omitted optional input (index -1, e.g. a missing bias).
Options: None, ("Conv2DOptions", {"padding": 0, ...}) or a schema object such as
`schema().SoftmaxOptionsT()` with its fields set. `single_op` is the same function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

_NUMPY_TYPES = {"INT8": np.int8, "UINT8": np.uint8, "INT16": np.int16, "INT32": np.int32,
                "INT64": np.int64, "FLOAT16": np.float16, "FLOAT32": np.float32,
                "FLOAT64": np.float64, "BOOL": np.bool_}


def schema():
    import pytest
    return pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")


@dataclass
class Spec:
    name: str
    shape: list[int]
    dtype: str                      # schema TensorType name: "INT8", "INT32", "FLOAT32", ...
    scales: list[float] | None = None
    zeros: list[int] | None = None
    data: np.ndarray | None = None  # constant tensors only
    axis: int = 0                   # quantized dimension (per-channel)


def tensor(name: str, shape, dtype: str, scale=None, zero=None, data=None, axis: int = 0) -> Spec:
    """A tensor spec; scale may be a list (per-channel along axis), zero defaults to 0."""
    scales = None if scale is None else [float(s) for s in np.atleast_1d(scale)]
    zeros = None
    if scales is not None:
        zeros = [int(z) for z in np.atleast_1d(0 if zero is None else zero)]
        if len(zeros) == 1:
            zeros *= len(scales)
        if len(zeros) != len(scales):
            raise ValueError(f"{name}: {len(scales)} scales but {len(zeros)} zero points")
    return Spec(name, [int(d) for d in shape], dtype, scales, zeros, data, axis)


def _spec(s: Spec | dict) -> Spec:
    return s if isinstance(s, Spec) else tensor(**s)


def _tensor_t(fb, model, spec: Spec):
    t = fb.TensorT()
    t.name, t.shape = spec.name.encode(), np.array(spec.shape, np.int32)
    t.type = getattr(fb.TensorType, spec.dtype)
    t.buffer = 0  # the empty buffer: activations
    if spec.data is not None:
        data = np.asarray(spec.data).astype(_NUMPY_TYPES[spec.dtype], casting="same_kind")
        if data.size != int(np.prod(spec.shape, dtype=np.int64)):
            raise ValueError(f"{spec.name}: {data.size} values for shape {spec.shape}")
        buf = fb.BufferT()
        buf.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
        model.buffers.append(buf)
        t.buffer = len(model.buffers) - 1
    if spec.scales is not None:
        q = fb.QuantizationParametersT()
        q.scale = np.array(spec.scales, np.float32)
        q.zeroPoint = np.array(spec.zeros, np.int64)
        q.quantizedDimension = spec.axis
        t.quantization = q
    return t


def _options(fb, options) -> tuple[int, Any]:
    """(BuiltinOptions type, options object) from None, (name, fields) or an object."""
    if options is None:
        return fb.BuiltinOptions.NONE, None
    if isinstance(options, tuple):
        kind, fields = options
        opts = getattr(fb, kind + "T")()
        for key, value in fields.items():
            if not hasattr(opts, key):
                raise AttributeError(f"{kind} has no field {key!r}")
            setattr(opts, key, value)
        return getattr(fb.BuiltinOptions, kind), opts
    kind = type(options).__name__
    return getattr(fb.BuiltinOptions, kind[:-1] if kind.endswith("T") else kind), options


def build_single_op_model(op_name: str, inputs: list, outputs: list, options=None,
                          version: int = 1) -> bytes:
    """A .tflite model (bytes, file identifier TFL3) with one subgraph running one builtin
    op. Non-constant inputs become the subgraph inputs in order; all outputs are outputs."""
    import flatbuffers
    fb = schema()
    model = fb.ModelT()
    model.version = 3
    model.description = b"tests/tflite_builder.py"
    model.buffers = [fb.BufferT()]  # buffer 0: empty, by convention
    code = fb.OperatorCodeT()
    code.builtinCode = getattr(fb.BuiltinOperator, op_name)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)  # the int8 field of old readers
    code.version = version
    model.operatorCodes = [code]
    sg = fb.SubGraphT()
    sg.tensors, in_idx, graph_in = [], [], []
    for s in inputs:
        if s is None:
            in_idx.append(-1)
            continue
        spec = _spec(s)
        in_idx.append(len(sg.tensors))
        if spec.data is None:
            graph_in.append(len(sg.tensors))
        sg.tensors.append(_tensor_t(fb, model, spec))
    out_idx = list(range(len(sg.tensors), len(sg.tensors) + len(outputs)))
    sg.tensors += [_tensor_t(fb, model, _spec(s)) for s in outputs]
    operator = fb.OperatorT()
    operator.opcodeIndex = 0
    operator.inputs = np.array(in_idx, np.int32)
    operator.outputs = np.array(out_idx, np.int32)
    operator.builtinOptionsType, operator.builtinOptions = _options(fb, options)
    sg.operators = [operator]
    sg.inputs = np.array(graph_in, np.int32)
    sg.outputs = np.array(out_idx, np.int32)
    model.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


single_op = build_single_op_model


def run_tflm(model: bytes, *inputs: np.ndarray, arena_size: int | None = None) -> np.ndarray:
    """Output 0 of `model` run once in tflite-micro on the given inputs (in order).
    arena_size defaults to tflite-micro's (10x the model size, too small for large
    activations)."""
    import pytest
    runtime = pytest.importorskip("tflite_micro").runtime
    it = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
    for k, x in enumerate(inputs):
        it.set_input(x, k)
    it.invoke()
    return it.get_output(0)
