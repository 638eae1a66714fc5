"""Program: a compiled model (forward and training graphs) and the runners that execute it."""
from __future__ import annotations

from typing import Any

import numpy as np

from tte.errors import TTEError
from tte.interpreter import initial_state, run
from tte.ir.graph import Graph
from tte.ir.types import Role


class Program:
    """The forward graph and the training step derived from it, plus what was decided."""

    def __init__(self, forward: Graph, training: Graph, *, loss: str, optimizer: dict,
                 target: str) -> None:
        self.forward_graph = forward
        self.training_graph = training
        self.loss = loss
        self.optimizer = optimizer
        self.target = target

    @property
    def trainable(self) -> list[str]:
        return self.training_graph.params(Role.trainable, Role.partial)

    def reference(self, dtype: Any = None) -> "ReferenceRunner":
        """Runner on the numpy interpreter; dtype=np.float64 gives a high-precision run."""
        return ReferenceRunner(self, dtype)

    def report(self) -> dict:
        from tte.report import program_report
        return program_report(self)


class ReferenceRunner:
    """train_step / forward / params on the reference interpreter; state persists across calls."""

    def __init__(self, program: Program, dtype: Any = None) -> None:
        self.program = program
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.state = initial_state(program.training_graph, self.dtype)

    def _x(self, x: Any) -> np.ndarray:
        g = self.program.forward_graph
        name = g.inputs[0]
        want = g.values[name].shape
        arr = np.asarray(x, dtype=self.dtype or g.values[name].dtype.numpy)
        if arr.shape == want[1:] and want[0] == 1:
            arr = arr[None]  # accept one sample without its batch axis
        if arr.shape != want:
            raise TTEError(f"input {name!r} has shape {arr.shape}; the model expects {want} "
                           f"(or {want[1:]} without the batch axis)")
        return arr

    def _target(self, label: Any) -> tuple[str, np.ndarray]:
        g = self.program.training_graph
        name = g.inputs[-1]
        want = g.values[name]
        if self.program.loss == "cross_entropy":
            arr = np.asarray(label)
            if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and
                                                   np.all(arr == np.round(arr))):
                raise TTEError(f"label {label!r} is not an integer class index")
            arr = arr.astype(np.int64).reshape(-1)
            classes = g.values[self.program.forward_graph.outputs[0]].shape[1]
            bad = arr[(arr < 0) | (arr >= classes)]
            if bad.size or arr.shape != want.shape:
                raise TTEError(f"label {label!r} is outside the class range 0..{classes - 1}"
                               if bad.size else f"expected {want.shape[0]} label(s), got {arr.size}")
            return name, arr.astype(np.int32)
        arr = np.asarray(label, dtype=np.float32)
        if arr.shape == want.shape[1:]:
            arr = arr[None]
        if arr.shape != want.shape:
            raise TTEError(f"target has shape {arr.shape}; the model output is {want.shape}")
        return name, arr

    def train_step(self, x: Any, label: Any) -> float:
        """One optimizer step on one sample; returns the loss before the update."""
        g = self.program.training_graph
        tname, target = self._target(label)
        out = run(g, {g.inputs[0]: self._x(x), tname: target}, self.state, self.dtype)
        return float(out[g.outputs[0]])

    def forward(self, x: Any) -> np.ndarray:
        g = self.program.forward_graph
        return run(g, {g.inputs[0]: self._x(x)}, self.state, self.dtype)[g.outputs[0]]

    def params(self) -> dict[str, np.ndarray]:
        g = self.program.training_graph
        return {name: self.state[name].copy() for name in g.params()}
