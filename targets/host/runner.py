"""Host runner: the generated C project built with cffi, behind the Runner interface."""
from __future__ import annotations

import tempfile

import numpy as np

from targets.host.cbuild import KERNELS_DIR, build_c
from tte.errors import TTEError
from tte.ops.slice_channels import join
from tte.program import Program, Runner

# -fno-wrapv undoes the -fwrapv setuptools takes from Python's own CFLAGS, so that UBSan
# reports signed overflow
SANITIZE_FLAGS = ["-O1", "-g", "-fno-wrapv", "-fsanitize=address,undefined",
                  "-fno-sanitize-recover=all", "-fno-omit-frame-pointer"]
SANITIZE_LINK = ["-fsanitize=address,undefined"]


class HostRunner(Runner):
    """train_step / forward / params executed by the generated C on this machine."""

    def __init__(self, program: Program, *, out_dir: str | None = None,
                 sanitize: bool = False) -> None:
        super().__init__(program)
        self._tmp = None if out_dir else tempfile.TemporaryDirectory(prefix="tte-host-")
        self.project = program.generate_c(out_dir or self._tmp.name)
        flags = SANITIZE_FLAGS if sanitize else []
        sources = [self.project.source] + sorted(KERNELS_DIR.glob("*.c"))
        self.ffi, self.lib = build_c(self.project.cdef, sources,
                                     header=f'#include "{self.project.header.name}"',
                                     include_dirs=[self.project.directory], extra_flags=flags,
                                     link_flags=SANITIZE_LINK if sanitize else ())
        self._fn = lambda suffix: getattr(self.lib, f"tte_{self.project.name}_{suffix}")

    def _ptr(self, arr: np.ndarray):
        """A pointer into arr; the caller keeps arr referenced until the C call returns."""
        return self.ffi.cast("void *", arr.ctypes.data)

    def _input(self, x: np.ndarray) -> np.ndarray:
        g = self.program.forward_graph
        return np.ascontiguousarray(x, g.values[g.inputs[0]].dtype.numpy)

    def _train(self, x: np.ndarray, target: np.ndarray) -> float:
        x = self._input(x)
        loss = np.zeros(1, np.float32)
        if self.program.loss == "cross_entropy":
            rc = self._fn("train_step")(self._ptr(x), int(target[0]), self._ptr(loss))
        else:
            t = np.ascontiguousarray(target, np.float32)
            rc = self._fn("train_step")(self._ptr(x), self._ptr(t), self._ptr(loss))
        if rc != 0:
            raise TTEError(f"the generated train_step returned error {rc} (bad label {target})")
        return float(loss[0])

    def _forward(self, x: np.ndarray) -> np.ndarray:
        g = self.program.forward_graph
        y = g.values[g.outputs[0]]
        out = np.zeros(y.shape, y.dtype.numpy)
        x = self._input(x)  # a converted copy must outlive the call
        self._fn("forward")(self._ptr(x), self._ptr(out))
        return out

    def params(self) -> dict[str, np.ndarray]:
        g = self.program.training_graph
        result = {name: g.data[name].copy() for name in g.params()}
        for i, name in enumerate(self.project.trainable):
            v = g.values[name]
            size = self._fn("trainable_size")(i)
            buf = self.ffi.buffer(self._fn("trainable_data")(i), size * v.dtype.itemsize)
            data = np.frombuffer(buf, v.dtype.numpy).copy()
            part = v.meta.get("train_channels")  # C holds a partial weight's trained channels
            result[name] = data.reshape(v.shape) if part is None else \
                join(g.data[name], data, part["axis"], part["channels"])
        return result
