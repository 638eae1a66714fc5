"""Cortex-M firmware on QEMU: training state persists between runner calls, the STM32F746
link fits what the report says, a model that does not fit fails to link with a clear
message, and the CLI builds and runs it. The model matrix: tests/test_mcu_equal_host.py.

`make test` installs the toolchain and QEMU first (`make toolchains`), so nothing here is
skipped there; a machine without them fails these tests with the install hint."""
from __future__ import annotations

import os

import numpy as np
import onnx
import pytest

import tte
from targets.cortex_m import STM32F746_QEMU
from tte.cli import main as cli
from tte.errors import TTEError

from mcu_checks import assert_link_matches_report, one_step_firmware
from models import input_shape, lenet

MCU = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models", "mcu_imagenet",
                   "mcunet-5fps.pkl")
SCHEMES = os.path.join(os.path.dirname(__file__), "..", "tte", "schemes")


def test_train_step_state_persists_between_calls():
    m = lenet()
    prog = tte.compile(m, update="bias", optimizer={"lr": 0.1})
    xs = np.random.default_rng(2).uniform(-1, 1, (3,) + input_shape(m)[1:]).astype(np.float32)
    mcu, host = prog.build(target="cortex-m7"), prog.build()
    assert mcu.train_step(xs[0], 1) == host.train_step(xs[0], 1)
    assert list(mcu.train_steps(xs[1:], [2, 3])) == [host.train_step(x, y)
                                                      for x, y in zip(xs[1:], [2, 3])]
    with pytest.raises(TTEError, match="label"):
        mcu.train_step(xs[0], 99)


def test_mcunet_99kb_links_for_stm32f746_and_matches_report(tmp_path):
    # the split patch="auto" picks for the training graph (its search costs a minute here)
    prog = tte.compile(MCU, num_classes=10, head="int8", int8_input=True,
                       patch={"nodes": 10, "tiles": 4},
                       update=os.path.join(SCHEMES, "mcunet-5fps-99kb.json"))
    project, fw = one_step_firmware(prog, "cortex-m4", tmp_path)
    sizes, mem = assert_link_matches_report(project, fw), project.memory
    # the sections add code, per-channel constants, the sample, newlib and the stack
    s = sizes["sections"]
    assert 0 <= sizes["sram"] - mem["sram_bytes"] <= s[".stack"] + 4096
    assert s[".rodata"] >= mem["flash_bytes"] + 3 * 128 * 128  # the int8 sample
    assert sizes["flash"] <= STM32F746_QEMU.flash_kb * 1024
    assert sizes["sram"] <= STM32F746_QEMU.ram_kb * 1024


def test_too_big_model_fails_to_link(tmp_path):
    prog = tte.compile(MCU, num_classes=10, head="int8", int8_input=True, update="full")
    with pytest.raises(TTEError, match=r"does not fit the STM32F746.*overflows the 320 KB "
                                       r"SRAM by [\d,]+ bytes"):
        one_step_firmware(prog, "cortex-m4", tmp_path)


def test_cli_build_and_run(tmp_path, capsys):
    model = tmp_path / "lenet.onnx"
    onnx.save(lenet(), model)
    out = tmp_path / "out"
    assert cli(["compile", str(model), "-o", str(out), "--lr", "0.05"]) == 0
    samples = tmp_path / "s.npz"
    x = np.random.default_rng(3).uniform(-1, 1, (2,) + input_shape(lenet())[1:])
    np.savez(samples, x=x.astype(np.float32), labels=np.array([3, 4]))
    assert cli(["build", str(out), "--target", "cortex-m7", "--samples", str(samples)]) == 0
    for ext in ("elf", "bin", "hex"):
        assert (out / "cortex-m7" / f"firmware.{ext}").stat().st_size > 0
    capsys.readouterr()
    assert cli(["run", str(out), "--target", "cortex-m4", "--steps", "3",
                "--samples", str(samples)]) == 0
    text = capsys.readouterr().out
    assert text.count("step ") == 3 and "checksum 0x" in text
    assert cli(["run", str(out), "--target", "rv32", "--steps", "1", "--profile"]) == 0
    table = capsys.readouterr().out.split("MAC/instr\n")[1].splitlines()
    rows = {tuple(line.split()[:3]): line.split() for line in table}
    conv = rows[("conv", "5x5", "forward")]  # lenet's first layer: kind, direction, nodes...
    assert int(conv[5].replace(",", "")) > 0 and 0 < float(conv[6]) < 1
    prog = tte.compile(str(model), optimizer={"lr": 0.05})
    host = prog.build()
    first = host.train_step(x[0].astype(np.float32), 3)
    assert f"(0x{np.float32(first).view(np.uint32):08x})" in text.splitlines()[0]
    np.savez(samples, x=x.astype(np.float32), labels=np.array([3, 40]))
    assert cli(["run", str(out), "--target", "cortex-m4", "--samples", str(samples)]) == 2
    assert "labels must lie in [0, 10)" in capsys.readouterr().err
