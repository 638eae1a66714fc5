"""FP32 training on rv32v (targets/riscv): the RVV paths (kernels_c/f32_rvv.c) equal the
portable scalar path bit for bit.

The fp32 conv, depthwise, channel-sum and linear kernels have RVV paths in f16_rvv.c's code
(both include kernels_c/rvv_conv.inc), so fp16 and fp32 compare on RISC-V with the same
vectorisation. For each model, 3
SGD steps (momentum and weight decay unless said): losses and every trained parameter of the
rv32v firmware (RVV) equal the TTE_SCALAR rv32v firmware's and the host C's (prog.build())
bit for bit. The models cover strides, asymmetric padding, dilation, groups, depthwise,
batch norm, residual adds, linear layers, conv forward and input gradients by rows and by
lanes across channels, and partial weights (input channels; depthwise channels first, and
by magnitude, whose weight gradient RVV leaves to the scalar path); updates fused with their
gradients (with and without momentum and weight decay) or after the backward (reorder=False:
the unfused gradient kernels, and dwsep's depthwise input gradient in place).

Instruction counts, fp32 against fp16 at the same vectorisation: benchmarks/mcu_cost.py.
"""
from __future__ import annotations

import functools
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

import tte

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from models import MODELS  # noqa: E402
from test_partial_weights import TINY_SCHEME, tiny  # noqa: E402
from test_rv32_fp16 import _assert_same, _bits, _samples, geometry  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (shutil.which("clang-16") and shutil.which("qemu-system-riscv32")),
    reason="clang-16 / qemu-system-riscv32 missing (`make toolchains`)")

OPT = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}
TARGET = "rv32v"
SCALAR = ("TTE_SCALAR",)

PLAIN = {"lr": 0.05}  # no momentum, no weight decay: the fused updates' other branches
CASES = {  # name: (model, update, compile options)
    "lenet": (MODELS["lenet"], "full", {}),
    "mbv2_stack": (MODELS["mbv2_stack"], "full", {}),
    "dwsep": (MODELS["dwsep_bn_relu6"], "full", {}),
    "residual": (MODELS["residual"], "full", {}),
    "residual-plain-sgd": (MODELS["residual"], "full", {"optimizer": PLAIN}),
    "geometry": (geometry, "full", {}),
    # updates after the backward: the unfused weight, bias and linear gradients
    "dwsep-unfused": (MODELS["dwsep_bn_relu6"], "full", {"reorder": False}),
    "partial-first": (tiny, {**TINY_SCHEME, "channels": "first"}, {}),
    "partial-magnitude": (tiny, {**TINY_SCHEME, "channels": "magnitude"}, {}),
}


@functools.lru_cache(maxsize=None)
def _program(case: str):
    build, update, options = CASES[case]
    model = build()
    return model, tte.compile(model, update=update, **{"optimizer": OPT, **options})


@functools.lru_cache(maxsize=None)
def _run(case: str, target: str | None, defines: tuple[str, ...] = ()):
    """(losses, parameter bytes) after test_rv32_fp16.STEPS steps."""
    model, prog = _program(case)
    xs, ys = _samples(model)
    if target is None:  # the host C, one sample at a time
        r = prog.build()
        losses = np.array([r.train_step(x[None], int(y)) for x, y in zip(xs, ys)], np.float32)
        return losses, _bits(r.params())
    r = prog.build(target=target, defines=defines)
    return np.asarray(r.train_steps(xs, ys), np.float32), _bits(r.params())


@pytest.mark.parametrize("case", list(CASES))
def test_rvv_equals_scalar_and_host(case):
    host = _run(case, None)
    assert np.all(np.isfinite(host[0]))
    rvv = _run(case, TARGET)
    _assert_same(rvv, _run(case, TARGET, SCALAR), "rv32v RVV vs TTE_SCALAR")
    _assert_same(rvv, host, "rv32v RVV vs host")
    # the parameters moved: the comparison is not of untouched initial weights
    _, prog = _program(case)
    init = _bits({k: prog.training_graph.data[k] for k in host[1]})
    assert all(not np.array_equal(init[k], host[1][k]) for k in init)
