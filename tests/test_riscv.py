"""RV32 firmware (clang 16 + picolibc) on QEMU virt: a residual model trains exactly as the
host C (gcc), its link matches report.json and a model that does not fit fails to link with
a clear message. The model matrix on every target: tests/test_mcu_equal_host.py; fp16
paths: tests/test_rv32_fp16.py."""
from __future__ import annotations

import os

import numpy as np
import pytest

import tte
from targets.firmware import check_samples, default_samples, info_from_program
from targets.firmware.build import build_firmware
from targets.firmware.qemu import elf_sizes, model_bytes
from targets.firmware.target import get_target
from tte.errors import TTEError

from mcu_checks import equal_to_host
from models import input_shape, lenet, num_classes, residual

MCU = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models", "mcu_imagenet",
                   "mcunet-5fps.pkl")
SCHEMES = os.path.join(os.path.dirname(__file__), "..", "tte", "schemes")


def test_residual_bias_update_equals_host():
    m = residual()
    prog = tte.compile(m, update="bias", optimizer={"lr": 0.1})
    xs = np.random.default_rng(1).uniform(-1, 1, (3,) + input_shape(m)[1:]).astype(np.float32)
    equal_to_host(prog, "rv32", xs, np.arange(3) % num_classes(m))


def test_link_matches_report(tmp_path):
    prog = tte.compile(lenet(), update="full", optimizer={"lr": 0.05, "momentum": 0.9})
    project = prog.generate_c(tmp_path / "c")
    info = info_from_program(prog, project)
    xs, labels = check_samples(info, *default_samples(info, count=1))
    fw = build_firmware(info, get_target("rv32"), xs, labels, 1, tmp_path / "rv32")
    mem, linked = project.memory, model_bytes(fw)
    assert linked["arena"] == mem["arena_bytes"]
    assert linked["trainable"] == mem["sram"]["trainable_parameters"]
    assert linked["state"] == mem["sram"]["optimizer_state"]
    s = elf_sizes(fw.elf, fw.target)["sections"]
    assert s[".bss"] >= mem["arena_bytes"] + mem["sram"]["optimizer_state"]
    assert s[".data"] >= mem["sram"]["trainable_parameters"]
    for ext in ("bin", "hex"):
        assert fw.elf.with_suffix(f".{ext}").stat().st_size > 0


def test_too_big_model_fails_to_link(tmp_path):
    prog = tte.compile(MCU, num_classes=10, head="int8", int8_input=True, input_size=64,
                       update="full")
    project = prog.generate_c(tmp_path / "c")
    info = info_from_program(prog, project)
    xs, labels = check_samples(info, *default_samples(info, count=1))
    with pytest.raises(TTEError, match=r"does not fit the RV32 MCU.*overflows the 320 KB "
                                       r"SRAM by [\d,]+ bytes"):
        build_firmware(info, get_target("rv32v"), xs, labels, 1, tmp_path / "rv32v")
