"""Program: a compiled model (forward and training graphs) and the runners that execute it."""
from __future__ import annotations

from typing import Any

import numpy as np

from tte.errors import TTEError
from tte.interpreter import initial_state, run
from tte.ir.graph import Graph
from tte.ir.types import Role
from tte.ops.reduce import check_labels


class Program:
    """The forward graph and the training step derived from it, plus what was decided."""

    def __init__(self, forward: Graph, training: Graph, *, loss: str, optimizer: dict,
                 target: str, patch: dict | None = None) -> None:
        self.forward_graph = forward
        self.training_graph = training
        self.loss = loss
        self.optimizer = optimizer
        self.target = target
        self.patch = patch  # tte.passes.patch.patch_graphs' summary, None when not asked for

    @property
    def trainable(self) -> list[str]:
        return self.training_graph.params(Role.trainable, Role.partial)

    def reference(self, dtype: Any = None) -> "ReferenceRunner":
        """Runner on the numpy interpreter; dtype=np.float64 gives a high-precision run."""
        return ReferenceRunner(self, dtype)

    def build(self, target: str | None = None, *, out_dir: str | None = None,
              sanitize: bool = False, **firmware: Any) -> "Runner":
        """Generate C for target (default: the compile target), build it and return a runner
        with the same interface as reference(). sanitize adds AddressSanitizer and UBSan
        (host only). MCU targets ("cortex-m4", "cortex-m7", "rv32", "rv32v") build firmware
        run on QEMU, whose runner also has train_steps(xs, labels) to train many samples in
        one run; `firmware` options go to targets.firmware.runner.McuRunner (profile,
        defines, timeout)."""
        target = target or self.target
        if target != "host":
            from targets.firmware.runner import McuRunner
            from targets.firmware.target import get_target
            get_target(target)  # a clear error for an unknown name
            if sanitize:
                raise TTEError("sanitize=True needs the host target")
            return McuRunner(self, target, out_dir=out_dir, **firmware)
        if firmware:
            raise TTEError(f"options {sorted(firmware)} apply to MCU targets only")
        from targets.host.runner import HostRunner
        return HostRunner(self, out_dir=out_dir, sanitize=sanitize)

    def generate_c(self, out_dir: str, name: str | None = None):
        """Write the C project (<name>.h, <name>.c) into out_dir; returns a codegen.CProject."""
        from codegen import generate
        return generate(self.training_graph, self.forward_graph, out_dir, loss=self.loss,
                        name=name)

    def report(self) -> dict:
        from tte.report import program_report
        return program_report(self)


class Runner:
    """train_step / forward / params with the user's inputs checked; state persists."""

    dtype: np.dtype | None = None

    def __init__(self, program: Program) -> None:
        self.program = program

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

    def _target(self, label: Any) -> np.ndarray:
        g = self.program.training_graph
        name = g.inputs[-1]
        want = g.values[name]
        if self.program.loss == "cross_entropy":
            arr = np.asarray(label)
            if arr.dtype.kind not in "iu" and not (arr.dtype.kind == "f" and
                                                   np.all(arr == np.round(arr))):
                raise TTEError(f"label {label!r} is not an integer class index")
            arr = arr.astype(np.int64).reshape(-1)
            fwd = self.program.forward_graph
            check_labels(arr, fwd.values[fwd.outputs[0]].shape[1])
            if arr.shape != want.shape:
                raise TTEError(f"expected {want.shape[0]} label(s), got {arr.size}")
            return arr.astype(np.int32)
        arr = np.asarray(label, dtype=np.float32)
        if arr.shape == want.shape[1:]:
            arr = arr[None]
        if arr.shape != want.shape:
            raise TTEError(f"target has shape {arr.shape}; the model output is {want.shape}")
        return arr

    def train_step(self, x: Any, label: Any) -> float:
        """One optimizer step on one sample; returns the loss before the update."""
        return self._train(self._x(x), self._target(label))

    def forward(self, x: Any) -> np.ndarray:
        """The model's output (logits) for one sample."""
        return self._forward(self._x(x))

    def params(self) -> dict[str, np.ndarray]:
        """Every parameter, keyed by the source model's names."""
        raise NotImplementedError

    def _train(self, x: np.ndarray, target: np.ndarray) -> float:
        raise NotImplementedError

    def _forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class ReferenceRunner(Runner):
    """The numpy reference interpreter."""

    def __init__(self, program: Program, dtype: Any = None) -> None:
        super().__init__(program)
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.state = initial_state(program.training_graph, self.dtype)

    def _train(self, x: np.ndarray, target: np.ndarray) -> float:
        g = self.program.training_graph
        out = run(g, {g.inputs[0]: x, g.inputs[1]: target}, self.state, self.dtype)
        return float(out[g.outputs[0]])

    def _forward(self, x: np.ndarray) -> np.ndarray:
        g = self.program.forward_graph
        return run(g, {g.inputs[0]: x}, self.state, self.dtype)[g.outputs[0]]

    def params(self) -> dict[str, np.ndarray]:
        g = self.program.training_graph
        return {name: self.state[name].copy() for name in g.params()}
