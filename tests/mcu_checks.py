"""Shared checks of firmware runs on the MCU targets against the host C."""
from __future__ import annotations

from pathlib import Path

import numpy as np

import tte
from targets.firmware import check_samples, default_samples, fnv1a, info_from_program
from targets.firmware.build import build_firmware
from targets.firmware.qemu import elf_sizes, model_bytes
from targets.firmware.target import get_target


def equal_to_host(prog: tte.Program, target: str, xs: np.ndarray, labels: np.ndarray,
                  **firmware) -> "tte.program.Runner":
    """N steps in QEMU give the host C's losses and parameters bit for bit (same warning
    and -ffp-contract=off flags; libm calls are rounded through double, kernels_c/loss.c);
    returns the MCU runner."""
    mcu = prog.build(target=target, **firmware)
    losses = mcu.train_steps(xs, labels)
    host = prog.build()
    want = np.array([host.train_step(x, y) for x, y in zip(xs, labels)], np.float32)
    np.testing.assert_array_equal(losses, want)
    got, ref = mcu.params(), host.params()
    for name in ref:
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    assert mcu.result.checksum == fnv1a(mcu.result.params)
    return mcu


def one_step_firmware(prog: tte.Program, target: str, directory: Path):
    """(the C project, its firmware) for one training step on a pseudo-random sample."""
    project = prog.generate_c(directory / "c")
    info = info_from_program(prog, project)
    xs, labels = check_samples(info, *default_samples(info, count=1))
    return project, build_firmware(info, get_target(target), xs, labels, 1, directory / target)


def assert_link_matches_report(project, fw) -> dict:
    """The generated arrays in the ELF are exactly report.json's tensors; returns the
    ELF's sizes (targets.firmware.qemu.elf_sizes)."""
    mem, linked = project.memory, model_bytes(fw)
    assert linked["arena"] == mem["arena_bytes"]
    assert linked["trainable"] == mem["sram"]["trainable_parameters"]
    assert linked["state"] == mem["sram"]["optimizer_state"]
    assert linked["frozen"] + linked["consts"] == mem["flash_bytes"]
    assert linked["consts"] == mem["constant_tables_bytes"]
    sizes = elf_sizes(fw)
    s = sizes["sections"]
    assert s[".data"] >= mem["sram"]["trainable_parameters"]
    assert s[".bss"] >= mem["arena_bytes"] + mem["sram"]["optimizer_state"]
    return sizes
