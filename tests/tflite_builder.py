"""Build one-op .tflite models in memory (flatbuffers object API of tflite-micro's schema),
so that ops the shipped models lack can be checked against tflite-micro too.

    model = single_op("MEAN", [tensor("x", [1, 4, 4, 3], "INT8", 0.1, -3),
                               tensor("axes", [2], "INT32", data=np.array([1, 2]))],
                      [tensor("y", [1, 1, 1, 3], "INT8", 0.05, 2)],
                      options=("ReducerOptions", {"keepDims": True}))
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def schema():
    import pytest
    return pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")


@dataclass
class Spec:
    name: str
    shape: list[int]
    dtype: str                      # "INT8", "INT32", "FLOAT32"
    scales: list[float] | None = None
    zeros: list[int] | None = None
    data: np.ndarray | None = None  # constant tensors only
    axis: int = 0


def tensor(name: str, shape, dtype: str, scale=None, zero=None, data=None, axis: int = 0) -> Spec:
    scales = None if scale is None else [float(s) for s in np.atleast_1d(scale)]
    zeros = None if zero is None else [int(z) for z in np.atleast_1d(zero)]
    return Spec(name, [int(d) for d in shape], dtype, scales, zeros, data, axis)


def single_op(op: str, inputs: list[Spec], outputs: list[Spec],
              options: tuple[str, dict] | None = None, version: int = 1) -> bytes:
    """A model with one subgraph running one builtin op; constant inputs carry data."""
    import flatbuffers
    fb = schema()
    model = fb.ModelT()
    model.version = 3
    model.buffers = [fb.BufferT()]  # buffer 0: empty, by convention
    code = fb.OperatorCodeT()
    code.builtinCode = getattr(fb.BuiltinOperator, op)
    code.deprecatedBuiltinCode = min(code.builtinCode, 127)
    code.version = version
    model.operatorCodes = [code]
    sg = fb.SubGraphT()
    sg.tensors = []
    for spec in inputs + outputs:
        t = fb.TensorT()
        t.name, t.shape = spec.name.encode(), np.array(spec.shape, np.int32)
        t.type = getattr(fb.TensorType, spec.dtype)
        t.buffer = 0
        if spec.data is not None:
            buf = fb.BufferT()
            buf.data = np.frombuffer(np.ascontiguousarray(spec.data).tobytes(), np.uint8)
            model.buffers.append(buf)
            t.buffer = len(model.buffers) - 1
        if spec.scales is not None:
            q = fb.QuantizationParametersT()
            q.scale = np.array(spec.scales, np.float32)
            q.zeroPoint = np.array(spec.zeros, np.int64)
            q.quantizedDimension = spec.axis
            t.quantization = q
        sg.tensors.append(t)
    n_in = len(inputs)
    operator = fb.OperatorT()
    operator.opcodeIndex = 0
    operator.inputs = np.arange(n_in, dtype=np.int32)
    operator.outputs = np.arange(n_in, n_in + len(outputs), dtype=np.int32)
    if options is not None:
        kind, fields = options
        opts = getattr(fb, kind + "T")()
        for key, value in fields.items():
            setattr(opts, key, value)
        operator.builtinOptionsType = getattr(fb.BuiltinOptions, kind)
        operator.builtinOptions = opts
    sg.operators = [operator]
    sg.inputs = np.array([i for i, s in enumerate(inputs) if s.data is None], np.int32)
    sg.outputs = np.arange(n_in, n_in + len(outputs), dtype=np.int32)
    model.subgraphs = [sg]
    b = flatbuffers.Builder(1024)
    b.Finish(model.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def run_tflm(model: bytes, *inputs: np.ndarray) -> np.ndarray:
    import pytest
    runtime = pytest.importorskip("tflite_micro").runtime
    it = runtime.Interpreter.from_bytes(model)
    for k, x in enumerate(inputs):
        it.set_input(x, k)
    it.invoke()
    return it.get_output(0)
