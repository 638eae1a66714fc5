"""FP32 training on rv32v (targets/riscv): the RVV paths (kernels_c/f32_rvv.c) equal the
portable scalar path bit for bit.

The fp32 conv, depthwise, channel-sum and linear kernels have RVV paths of f16_rvv.c's
design, so fp16 and fp32 compare on RISC-V with the same vectorisation. For each model, 3
SGD steps (momentum and weight decay unless said): losses and every trained parameter of the
rv32v firmware (RVV) equal the TTE_SCALAR rv32v firmware's and the host C's (prog.build())
bit for bit. The models cover strides, asymmetric padding, dilation, groups, depthwise,
batch norm, residual adds, linear layers, conv forward and input gradients by rows and by
lanes across channels, and partial weights (input channels; depthwise channels first, and
by magnitude, whose weight gradient RVV leaves to the scalar path); updates fused with their
gradients (with and without momentum and weight decay) or after the backward (reorder=False:
the unfused gradient kernels, and dwsep's depthwise input gradient in place).

test_instruction_counts prints (does not assert) the retired instructions (minstret under
-icount shift=0) of the conv nodes of benchmarks/mcu_cost.py's conv_cnn per direction, fp32
scalar against fp32 RVV, with fp16 RVV beside them.
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
sys.path.insert(0, str(HERE.parent / "benchmarks"))
from models import MODELS, input_shape, num_classes  # noqa: E402
from test_partial_weights import TINY_SCHEME, tiny  # noqa: E402
from test_rv32_fp16 import _bits, _samples, geometry  # noqa: E402

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


def _assert_same(a, b, what: str) -> None:
    (la, pa), (lb, pb) = a, b
    assert la.view(np.uint32).tolist() == lb.view(np.uint32).tolist(), f"{what}: losses"
    assert pa.keys() == pb.keys()
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), f"{what}: {k}"


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


DIRECTIONS = {"conv2d": "forward", "conv2d_grad_input": "input gradient",
              "conv2d_grad_weight": "weight gradient", "conv2d_grad_weight_sgd": "weight gradient"}
# label: (compile options, firmware defines)
BUILDS = {"fp32 scalar": ({}, SCALAR), "fp32 RVV": ({}, ()),
          "fp16 RVV, fp16 sums": ({"precision": "fp16", "accumulate": "fp16"}, ()),
          "fp16 RVV, fp32 sums": ({"precision": "fp16", "accumulate": "fp32"}, ())}


def test_instruction_counts():
    """Printed, not asserted: instructions of the last training step's conv nodes of
    mcu_cost.py's conv_cnn, per convolution and direction, fp32 scalar against fp32 RVV on
    rv32v (and fp16 RVV beside them: the precision's gain at the same vectorisation)."""
    from mcu_cost import conv_cnn
    model = conv_cnn()
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((2,) + input_shape(model)[1:]).astype(np.float32)
    ys = rng.integers(num_classes(model), size=2).astype(np.int32)
    counts, results = {}, {}
    for label, (options, defines) in BUILDS.items():
        prog = tte.compile(model, update="full", optimizer=OPT, **options)
        r = prog.build(target=TARGET, profile=True, defines=defines)
        losses = r.train_steps(xs, ys)
        results[label] = (np.asarray(losses, np.float32), _bits(r.params()))
        convs = [n for n in prog.training_graph.nodes if n.op == "conv2d"]
        nodes = r.result.node_instructions
        counts[label] = []
        for conv in convs:
            per = dict.fromkeys(dict.fromkeys(DIRECTIONS.values()), 0)
            for i, n in enumerate(prog.training_graph.nodes):
                if n.op in DIRECTIONS and conv.inputs[1] in n.inputs:
                    per[DIRECTIONS[n.op]] += int(nodes[i])
            counts[label].append(per)
        counts[label].append({"whole step": int(r.result.step_instructions[-1])})
    _assert_same(results["fp32 RVV"], results["fp32 scalar"], "conv_cnn RVV vs TTE_SCALAR")
    base = counts["fp32 scalar"]
    print(f"\nconv_cnn (benchmarks/mcu_cost.py) on {TARGET}: instructions of the last "
          "training step; x = fp32 scalar / this")
    for k, name in enumerate([f"conv{k + 1}" for k in range(len(base) - 1)] + ["step"]):
        dirs = [d for d in base[k] if base[k][d]]
        total = len(dirs) > 1
        print(f"{name:22}" + "".join(f"{d:>24}" for d in dirs + ["conv total"] * total))
        for label, per in counts.items():
            cells = [(per[k][d], base[k][d]) for d in dirs]
            if total:
                cells.append((sum(per[k].values()), sum(base[k].values())))
            print(f"  {label:20}" + "".join(f"{v:>15,} {b / max(v, 1):6.2f}x" for v, b in cells))
    assert all(per[k][d] > 0 for per in counts.values() for k in range(len(base))
               for d in base[k] if base[k][d])
