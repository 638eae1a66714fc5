"""Instruction counting on the MCU targets and the cost table built from it: the counter's
scale on a loop of known length, per-node counts that add up to the step, MACs from the
IR against the layer shapes."""
from __future__ import annotations

import os
import subprocess

import numpy as np
import pytest

import tte
from targets.firmware import FIRMWARE_DIR
from targets.firmware.build import linker_script
from targets.firmware.cost import cost_rows
from tte.cost import node_costs
from tte.ops.registry import node_macs
from targets.firmware.target import get_target

from models import input_shape, lenet, num_classes

# two instructions per iteration on both ISAs
LOOP = {"cortex-m4": r"1: subs %0, %0, #1\n\tbne 1b", "rv32": r"1: addi %0, %0, -1\n\tbnez %0, 1b"}
CALIBRATE = r"""
#include <stdint.h>
#include "fw_io.h"

static uint32_t count(uint32_t n)
{
    uint32_t c = fw_counter();
    __asm__ volatile("LOOP" : "+r"(n));
    return fw_counter() - c;
}

static void put(uint32_t v)
{
    char buf[12];
    int i = 10;
    buf[11] = 0;
    buf[10] = '\n';
    do buf[--i] = (char)('0' + v % 10u); while ((v /= 10u) != 0);
    fw_write0(buf + i);
}

int main(void)
{
    put(count(100000u));
    put(count(300000u));
    return 0;
}
"""


@pytest.mark.parametrize("name", ["cortex-m4", "rv32"])
def test_counter_counts_instructions(name, tmp_path):
    """Two loops of 100,000 and 300,000 iterations differ by 400,000 instructions: exactly
    on RISC-V (minstret), within two SysTick ticks (±80) on Cortex-M."""
    target = get_target(name)
    src = tmp_path / "calibrate.c"
    src.write_text(CALIBRATE.replace("LOOP", LOOP[name]))
    objs = []
    for c in (src, target.directory / "startup.c"):
        objs.append(tmp_path / f"{c.stem}.o")
        subprocess.run(target.compile_command(c, objs[-1], [FIRMWARE_DIR], []), check=True)
    elf = tmp_path / "calibrate.elf"
    subprocess.run(target.link_command(objs, linker_script(target, target.part, tmp_path), elf,
                                       tmp_path / "map"), check=True)
    proc = subprocess.run(target.qemu_command(elf, icount=True), capture_output=True,
                          text=True, timeout=60)
    out = (proc.stdout + proc.stderr).split()
    small, large = (int(v) * target.counter_scale for v in out)
    slack = 0 if target.counter_scale == 1 else 2 * target.counter_scale
    assert abs(large - small - 400_000) <= slack
    assert 200_000 - slack <= small <= 200_000 + 100 + slack  # the loop plus a counter read


def test_node_counts_add_up_and_macs_match_shapes():
    m = lenet()
    prog = tte.compile(m, update="full", optimizer={"lr": 0.05})
    xs = np.random.default_rng(0).uniform(-1, 1, (2,) + input_shape(m)[1:]).astype(np.float32)
    run = prog.build(target="rv32", profile=True)
    run.train_steps(xs, np.arange(2) % num_classes(m))
    nodes, step = run.result.node_instructions, int(run.result.step_instructions[-1])
    g = prog.training_graph
    assert sorted(nodes) == list(range(len(g.nodes)))
    # what lies between the nodes (the sample copy, the loss read-back) is small
    assert 0.97 * step <= sum(nodes.values()) <= step
    rows = {(r.kind, r.direction): r for r in cost_rows(node_costs(g), nodes)}
    conv = next(n for n in g.nodes if n.op == "conv2d")
    o, c, kh, kw = g.values[conv.inputs[1]].shape
    y = g.values[conv.outputs[0]].shape
    assert node_macs(g, conv) == int(np.prod(y)) * c * kh * kw
    fwd, wgrad = rows[(f"conv {kh}x{kw}", "forward")], rows[(f"conv {kh}x{kw}", "weight gradient")]
    assert fwd.macs == wgrad.macs > 0  # full update: every forward term has its gradient
    assert 0.05 < fwd.macs_per_instruction < 1
    assert rows[("linear", "forward")].macs > 0


def test_int8_and_fp32_graphs_count_the_same_macs():
    """The MAC rules of the int8 ops agree with the float ones on the same network."""
    mcu = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models",
                       "mcu_imagenet", "mcunet-5fps.pkl")
    totals = []
    for precision in ("int8", "fp32"):
        g = tte.compile(mcu, num_classes=10, input_size=64, precision=precision,
                        update="last:3").training_graph
        totals.append({d: sum(r.macs for r in cost_rows(node_costs(g), {}) if r.direction == d)
                       for d in ("forward", "input gradient", "weight gradient")})
    assert totals[0] == totals[1] and all(totals[0].values())
