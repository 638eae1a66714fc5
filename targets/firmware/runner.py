"""MCU runner: the generated C as firmware on QEMU, behind the Runner interface.

Every run boots from the initial weights, so the runner keeps the samples trained on so far
and each call replays them before the new ones: the state persists as on the host runner,
at the price of re-running earlier steps (train_steps takes many samples in one run).
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from targets.firmware import (CTYPE_NUMPY, FirmwareResult, check_samples, default_samples,
                              info_from_program)
from targets.firmware.build import Firmware, build_firmware
from targets.firmware.qemu import elf_sizes, run_firmware
from targets.firmware.target import get_target
from tte.errors import TTEError
from tte.ops.slice_channels import join
from tte.program import Program, Runner


class McuRunner(Runner):
    """train_steps / train_step / params executed by firmware on the target's emulated board.
    profile=True counts every node's instructions in the last step (result.node_instructions);
    defines are extra -D macros for every source."""

    def __init__(self, program: Program, target: str, *, out_dir: str | None = None,
                 timeout: float = 600, profile: bool = False,
                 defines: tuple[str, ...] = ()) -> None:
        super().__init__(program)
        self.target = get_target(target)
        self.profile, self.defines = profile, tuple(defines)
        self._tmp = None if out_dir else tempfile.TemporaryDirectory(prefix="tte-mcu-")
        self.directory = Path(out_dir or self._tmp.name)
        self.project = program.generate_c(self.directory / "c")
        self.info = info_from_program(program, self.project)
        self.timeout = timeout
        self._xs: list[np.ndarray] = []
        self._labels: list[np.ndarray] = []
        self.firmware: Firmware | None = None
        self.result: FirmwareResult | None = None

    def _run(self, xs: list[np.ndarray], labels: list[np.ndarray],
             forward_xs: np.ndarray | None = None) -> FirmwareResult:
        """One firmware run: every sample trained on so far plus xs, then the forward pass
        on forward_xs."""
        steps = sum(map(len, self._xs + xs))
        if steps == 0:  # the C arrays need a sample; none is trained on
            filler_x, filler_label = check_samples(self.info, *default_samples(self.info, 1))
            xs, labels = [filler_x], [filler_label]
        fw = build_firmware(self.info, self.target, np.concatenate(self._xs + xs),
                            np.concatenate(self._labels + labels), steps,
                            self.directory / self.target.name, profile=self.profile,
                            defines=self.defines, forward_xs=forward_xs)
        result = run_firmware(fw, len(self.info.trainable), self.timeout)
        if result.status != 0:
            raise TTEError(f"the firmware returned error {result.status}")
        self.firmware, self.result = fw, result
        return result

    def train_steps(self, xs: Any, labels: Any) -> np.ndarray:
        """One SGD step per sample, in order, in one firmware run; the losses (float32)."""
        xs, labels = check_samples(self.info, xs, labels)
        result = self._run([xs], [labels])
        self._xs.append(xs)
        self._labels.append(labels)
        return result.losses[-len(xs):]

    def _train(self, x: np.ndarray, target: np.ndarray) -> float:
        return float(self.train_steps(x, target)[0])

    def _forward(self, x: np.ndarray) -> np.ndarray:
        """The output on the device, after the steps trained so far (one firmware run)."""
        x = np.ascontiguousarray(x.reshape((1,) + self.info.x_shape[1:]), self.info.x_dtype)
        result = self._run([], [], forward_xs=x)
        y = np.dtype(CTYPE_NUMPY[self.info.y_ctype])
        return np.frombuffer(result.logits[0], y).reshape(self.info.out_shape).copy()

    def params(self) -> dict[str, np.ndarray]:
        g = self.program.training_graph
        result = {name: g.data[name].copy() for name in g.params()}
        if self.result is None:
            return result
        for name, raw in zip(self.project.trainable, self.result.params):
            v = g.values[name]
            data = np.frombuffer(raw, v.dtype.numpy).copy()
            part = v.meta.get("train_channels")  # the firmware holds the trained channels
            result[name] = data.reshape(v.shape) if part is None else \
                join(g.data[name], data, part["axis"], part["channels"])
        return result

    def sizes(self) -> dict[str, int]:
        """Section sizes of the last firmware built (targets.firmware.qemu.elf_sizes)."""
        if self.firmware is None:
            raise TTEError("no firmware built yet: call train_steps first")
        return elf_sizes(self.firmware)
