"""RV32 firmware (clang 16 + picolibc) on QEMU virt: a residual model trains exactly as the
host C (gcc), its link matches report.json and a model that does not fit fails to link with
a clear message. The model matrix on every target: tests/test_mcu_equal_host.py; fp16
paths: tests/test_rv32_fp16.py."""
from __future__ import annotations

import os

import numpy as np
import pytest

import tte
from tte.errors import TTEError

from mcu_checks import assert_link_matches_report, equal_to_host, one_step_firmware
from models import input_shape, lenet, num_classes, residual

MCU = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models", "mcu_imagenet",
                   "mcunet-5fps.pkl")


def test_residual_bias_update_equals_host():
    m = residual()
    prog = tte.compile(m, update="bias", optimizer={"lr": 0.1})
    xs = np.random.default_rng(1).uniform(-1, 1, (3,) + input_shape(m)[1:]).astype(np.float32)
    equal_to_host(prog, "rv32", xs, np.arange(3) % num_classes(m))


def test_link_matches_report(tmp_path):
    prog = tte.compile(lenet(), update="full", optimizer={"lr": 0.05, "momentum": 0.9})
    project, fw = one_step_firmware(prog, "rv32", tmp_path)
    assert_link_matches_report(project, fw)
    for ext in ("bin", "hex"):
        assert fw.elf.with_suffix(f".{ext}").stat().st_size > 0


def test_too_big_model_fails_to_link(tmp_path):
    prog = tte.compile(MCU, num_classes=10, head="int8", int8_input=True, input_size=64,
                       update="full")
    with pytest.raises(TTEError, match=r"does not fit the RV32 MCU.*overflows the 320 KB "
                                       r"SRAM by [\d,]+ bytes"):
        one_step_firmware(prog, "rv32v", tmp_path)
