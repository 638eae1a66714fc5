"""A .tflite flatbuffer as plain Python objects, read with the `tflite` package's generated
schema accessors (no hand parsing); tte.frontends.tflite_frontend turns them into IR.

Facts the reader settles (see TFLITE_NOTES.md): builtin op codes are
max(builtinCode, deprecatedBuiltinCode); shapes come back as numpy int32; a buffer without
data is an activation; a rank-1 per-channel tensor's quantized dimension is 0, whatever the
file says (person_detect's depthwise biases say 3).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tte.errors import TTEError

_NUMPY = {"FLOAT32": np.float32, "INT32": np.int32, "INT8": np.int8, "UINT8": np.uint8,
          "INT64": np.int64, "INT16": np.int16}


@dataclass
class TfTensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str                                   # "INT8", "FLOAT32", ...
    scales: np.ndarray | None = None             # float32 per tensor or per channel
    zero_points: np.ndarray | None = None
    quantized_dimension: int = 0
    data: np.ndarray | None = None               # constant contents, None for activations


@dataclass
class TfOp:
    index: int
    name: str                                    # "CONV_2D", ...
    inputs: list[int]                            # -1: optional input absent
    outputs: list[int]
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TfModel:
    name: str
    tensors: list[TfTensor]
    ops: list[TfOp]
    inputs: list[int]
    outputs: list[int]


def _enum_names(enum: Any) -> dict[int, str]:
    return {v: k for k, v in vars(enum).items() if not k.startswith("_")}


def _options(tfl: Any, op: Any) -> dict[str, Any]:
    """Every field of the op's builtin options table, by its accessor name."""
    kind = _enum_names(tfl.BuiltinOptions).get(op.BuiltinOptionsType(), "NONE")
    table = op.BuiltinOptions()
    if kind == "NONE" or table is None:
        return {}
    opts = getattr(tfl, kind)()
    opts.Init(table.Bytes, table.Pos)
    out = {}
    for attr in dir(opts):
        if (attr[0].isupper() and not attr.startswith(("GetRootAs", "Init")) and
                not attr.endswith(("Length", "IsNone", "AsNumpy", "BufferHasIdentifier"))):
            if attr + "AsNumpy" in dir(opts):
                out[attr] = getattr(opts, attr + "AsNumpy")()
            else:
                try:
                    out[attr] = getattr(opts, attr)()
                except TypeError:  # vector accessors take an index
                    continue
    return out


def read_tflite(source: str | os.PathLike | bytes) -> TfModel:
    try:
        import tflite as tfl
    except ImportError:
        raise TTEError("reading .tflite files needs the `tflite` package: "
                       "pip install tflite") from None
    if isinstance(source, (bytes, bytearray)):
        buf, name = bytes(source), "model"
    else:
        path = os.fspath(source)
        with open(path, "rb") as f:
            buf = f.read()
        name = os.path.splitext(os.path.basename(path))[0]
    if len(buf) < 8 or buf[4:8] != b"TFL3":
        raise TTEError(f"{name}: not a TFLite flatbuffer (no 'TFL3' identifier); "
                       "is the file truncated or another format?")
    try:
        return _read(tfl, buf, name)
    except TTEError:
        raise
    except Exception as e:  # a corrupt flatbuffer fails anywhere inside the accessors
        raise TTEError(f"{name}: malformed TFLite file ({type(e).__name__}: {e})") from None


def _read(tfl: Any, buf: bytes, name: str) -> TfModel:
    model = tfl.Model.GetRootAs(buf, 0)
    if model.SubgraphsLength() != 1:
        raise TTEError(f"{name}: {model.SubgraphsLength()} subgraphs; TTE reads models with "
                       "one (no control flow)")
    sg = model.Subgraphs(0)
    op_names, type_names = _enum_names(tfl.BuiltinOperator), _enum_names(tfl.TensorType)
    tensors = []
    for i in range(sg.TensorsLength()):
        t = sg.Tensors(i)
        dtype = type_names.get(t.Type(), str(t.Type()))
        shape = tuple(int(d) for d in t.ShapeAsNumpy()) if t.ShapeLength() else ()
        tensor = TfTensor(i, t.Name().decode(errors="replace"), shape, dtype)
        q = t.Quantization()
        if q is not None and q.ScaleLength():
            tensor.scales = q.ScaleAsNumpy().astype(np.float32)
            tensor.zero_points = q.ZeroPointAsNumpy().astype(np.int64)
            tensor.quantized_dimension = 0 if len(shape) <= 1 else int(q.QuantizedDimension())
        b = model.Buffers(t.Buffer())
        if b is not None and b.DataLength():
            if dtype not in _NUMPY:
                raise TTEError(f"{name}: constant tensor {tensor.name!r} has type {dtype}, "
                               f"which TTE does not read")
            tensor.data = b.DataAsNumpy().view(_NUMPY[dtype]).reshape(shape)
        tensors.append(tensor)
    ops = []
    for j in range(sg.OperatorsLength()):
        op = sg.Operators(j)
        code = model.OperatorCodes(op.OpcodeIndex())
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        ops.append(TfOp(j, op_names.get(builtin, f"builtin {builtin}"),
                        [int(i) for i in op.InputsAsNumpy()],
                        [int(i) for i in op.OutputsAsNumpy()], _options(tfl, op)))
    return TfModel(name, tensors, ops, [int(i) for i in sg.InputsAsNumpy()],
                   [int(i) for i in sg.OutputsAsNumpy()])
