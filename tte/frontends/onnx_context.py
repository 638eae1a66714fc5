"""Conversion state shared by the ONNX frontend and its per-op converters.

ONNX values are either compile-time constants (initializers, Constant nodes,
folded shape computations) kept as numpy arrays, or run-time values that have
an IR value. A constant becomes an IR parameter only when a run-time node reads
it, so shape subgraphs and int64 shape tensors never reach the IR.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Callable

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from tte.errors import TTEError, UnsupportedError
from tte.ir import DType, Graph, Role

# numpy dtypes the IR can hold as model data (u8 is reserved for masks and raw bytes)
IR_DTYPES = {np.dtype(np.float32): DType.f32, np.dtype(np.float16): DType.f16,
             np.dtype(np.int8): DType.i8, np.dtype(np.int32): DType.i32}


Converter = Callable[["Ctx"], None]
CONVERTERS: dict[str, Converter] = {}  # ONNX op type -> converter, filled by onnx_*_ops


def converter(*op_types: str) -> Callable[[Converter], Converter]:
    def register(fn: Converter) -> Converter:
        for op_type in op_types:
            CONVERTERS[op_type] = fn
        return fn
    return register


class OnnxUnsupportedError(UnsupportedError):
    """UnsupportedError with a short reason ("op LpNormalization", "dtype float64")
    so callers and test reports can group rejections."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Ctx:
    """Everything a converter needs: the graph being built, constants, name maps."""

    def __init__(self, model: onnx.ModelProto, g: Graph, fold_batchnorm: bool) -> None:
        self.model = model
        self.g = g
        self.fold_batchnorm = fold_batchnorm
        self.consts: dict[str, np.ndarray] = {}
        self.ir: dict[str, str] = {}           # ONNX run-time value -> IR value
        self.param_like: set[str] = set()       # constants that are model weights
        self.uses: Counter[str] = Counter()     # ONNX consumers (graph outputs count)
        self.reserved: set[str] = set()         # every ONNX value name
        self.node: onnx.NodeProto | None = None
        self.index = -1
        graph = model.graph
        for node in graph.node:
            self.uses.update(n for n in node.input if n)
            self.reserved.update(n for n in (*node.input, *node.output) if n)
        self.uses.update(o.name for o in graph.output)
        self.reserved.update(v.name for v in (*graph.input, *graph.output))
        self.reserved.update(t.name for t in graph.initializer)

    # --- errors ---------------------------------------------------------------
    def where(self) -> str:
        node = self.node
        if node is None:  # only graph outputs are resolved outside a node
            return "graph output"
        if node.name:
            return f"node {node.name!r} ({node.op_type})"
        return f"node #{self.index} ({node.op_type}, first output {node.output[0]!r})"

    def unsupported(self, what: str, reason: str) -> OnnxUnsupportedError:
        return OnnxUnsupportedError(f"{self.where()}: {what}", reason)

    def bad_attr(self, attr: str, value: Any, allowed: str) -> OnnxUnsupportedError:
        return self.unsupported(f"attribute {attr}={value!r} is not supported ({allowed})",
                                f"{self.node.op_type} {attr}")

    # --- reading the node -----------------------------------------------------
    def attrs(self) -> dict[str, Any]:
        out = {}
        for a in self.node.attribute:
            v = helper.get_attribute_value(a)
            out[a.name] = v.decode() if isinstance(v, bytes) else v
        return out

    def has(self, i: int) -> bool:
        return i < len(self.node.input) and bool(self.node.input[i])

    def out(self, k: int = 0) -> str:
        return self.node.output[k]

    def output_used(self, k: int) -> bool:
        return k < len(self.node.output) and self.uses[self.node.output[k]] > 0

    def const(self, i: int, what: str) -> np.ndarray:
        """Input i, which must be known at compile time."""
        name = self.node.input[i]
        if name not in self.consts:
            raise self.unsupported(f"input {i} ({what}, value {name!r}) must be a constant, "
                                   "but it is computed at run time",
                                   f"{self.node.op_type} run-time {what}")
        return self.consts[name]

    def value(self, i: int) -> str:
        """IR value of input i; a constant input becomes a parameter."""
        return self.materialize(self.node.input[i])

    def input_shape(self, i: int) -> tuple[int, ...]:
        """Shape of input i without turning a constant into a parameter."""
        name = self.node.input[i]
        return self.consts[name].shape if name in self.consts else self.shape(self.ir[name])

    def shape(self, ir_name: str) -> tuple[int, ...]:
        return self.g.values[ir_name].shape

    def axis(self, axis: int, rank: int) -> int:
        """ONNX axis (negative counts from the end) as a non-negative index."""
        if not -rank <= axis < max(rank, 1):
            raise TTEError(f"{self.where()}: axis {axis} is out of range for rank {rank}")
        return axis % max(rank, 1)

    # --- building the graph ---------------------------------------------------
    def tmp(self, hint: str) -> str:
        """A fresh IR name that cannot clash with an ONNX value defined later."""
        name, k = self.g.fresh(hint), 0
        while name in self.reserved:
            name, k = self.g.fresh(f"{hint}~{k}"), k + 1
        return name

    def emit(self, op: str, inputs: list[str], attrs: dict | None = None,
             out: str | None = None) -> str:
        """One IR node; `out` names an ONNX output (bound to it), None a temporary."""
        name = self.tmp(f"{self.node.output[0]}.{op}") if out is None else out
        self.g.emit(op, inputs, attrs, outputs=[name])
        if out is not None:
            self.ir[out] = name
        return name

    def finish(self, ir_name: str) -> None:
        """Give the temporary that ends a multi-node expansion the ONNX output name."""
        self.rename(ir_name, self.out())
        self.ir[self.out()] = self.out()

    def rename(self, old: str, new: str) -> None:
        """Rename a node output that nothing reads yet."""
        value = self.g.values.pop(old)
        value.name = new
        self.g.values[new] = value
        producer = next(n for n in reversed(self.g.nodes) if old in n.outputs)
        producer.outputs = [new if o == old else o for o in producer.outputs]

    def alias(self, onnx_name: str, ir_name: str) -> None:
        self.ir[onnx_name] = ir_name

    def materialize(self, name: str) -> str:
        if name in self.ir:
            return self.ir[name]
        if name not in self.consts:
            raise TTEError(f"{self.where()}: value {name!r} is used before it is defined")
        self.ir[name] = self._add_param(name, self.consts[name], name in self.param_like)
        return name

    def derived(self, src: str, arr: np.ndarray) -> str:
        """A parameter computed at build time from constant `src` (a transposed or
        scaled weight). It takes src's name and role when nothing else reads src,
        so the compiler can still choose to train it."""
        free = self.uses[src] == 1 and src not in self.ir
        name = src if free else self.tmp(src)
        if free:
            self.ir[src] = name
        return self._add_param(name, arr, src in self.param_like)

    def _add_param(self, name: str, arr: np.ndarray, weight: bool) -> str:
        if arr.dtype not in IR_DTYPES:
            raise self.unsupported(f"constant {name!r} has dtype {arr.dtype.name}; "
                                   "run-time tensors must be float32, float16, int8 or int32",
                                   f"dtype {arr.dtype.name}")
        role = Role.frozen if weight else Role.const
        return self.g.add_param(name, np.asarray(arr), role, IR_DTYPES[arr.dtype])

    # --- constant folding -----------------------------------------------------
    def fold(self) -> None:
        """Evaluate the current node (all inputs constant) with onnx's reference
        evaluator, so no per-op folding code is needed."""
        node = self.node
        names = list(dict.fromkeys(n for n in node.input if n))
        inputs = [helper.make_tensor_value_info(
            n, helper.np_dtype_to_tensor_dtype(self.consts[n].dtype), self.consts[n].shape)
            for n in names]
        outputs = [helper.make_empty_tensor_value_info(o) for o in node.output if o]
        model = helper.make_model(helper.make_graph([node], "fold", inputs, outputs),
                                  opset_imports=self.model.opset_import,
                                  ir_version=self.model.ir_version)
        try:
            results = ReferenceEvaluator(model).run(None, {n: self.consts[n] for n in names})
        except Exception as exc:  # the reference evaluator raises anything; report it plainly
            raise self.unsupported(f"could not evaluate this constant node: {exc}",
                                   f"{node.op_type} constant folding") from None
        weight = any(n in self.param_like for n in names)
        for name, arr in zip((o for o in node.output if o), results):
            arr = np.asarray(arr)
            self.consts[name] = arr
            if weight and arr.dtype.kind == "f":
                self.param_like.add(name)
