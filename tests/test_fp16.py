"""FP16 training (tte.compile(..., precision="fp16")): the generated C against the fp16
reference interpreter, against the fp32 reference, scalar against v2f16 kernels, memory.

Tolerances
----------
* C vs the fp16 reference, accumulate="fp32": every kernel reads halves, sums in float in
  the fp32 kernels' order and rounds what it stores; the reference widens to float32, runs
  the op and rounds the same tensors. The two differ only where numpy's float32 summation
  order differs from C's by enough to flip a half rounding: measured bitwise equal
  parameters on all five models, losses equal but mbv2_stack's (9e-5). TOL_SAME = 1e-3 (about
  one half ulp, 2^-11 = 4.9e-4, relative to the tensor's largest element).
* accumulate="fp16" (half accumulator, PULP-TrainLib's default and ours): the reference
  still sums in float (it does not emulate the half accumulator yet), so C and reference
  differ by the half accumulation error itself; that is what TOL_FP32 bounds.
* fp16 vs fp32 training, 5 SGD steps (lr 0.01, momentum 0.9): parameters start rounded to
  half (relative error 2^-11) and every stored tensor is rounded again; gradients of a few
  hundred terms summed in half lose about sqrt(K) * 2^-11. TOL_FP32 = 2e-2 on losses and
  parameters (max |fp16 - fp32| / max |fp32| per tensor); measured values are printed.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import tte
from targets.host.cbuild import KERNELS_DIR, build_c

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import MODELS, input_shape, num_classes  # noqa: E402

FP16_MODELS = ["mlp", "lenet", "dwsep_bn_relu6", "residual", "mbv2_stack"]
STEPS = 5
OPT = {"lr": 0.01, "momentum": 0.9}
TOL_SAME = 1e-3
TOL_FP32 = 2e-2


def _samples(model, seed=0):
    rng = np.random.default_rng(seed)
    return [(rng.standard_normal(input_shape(model)).astype(np.float32),
             int(rng.integers(num_classes(model)))) for _ in range(STEPS)]


def _train(runner, samples):
    losses = [runner.train_step(x, y) for x, y in samples]
    return np.array(losses), {k: v.astype(np.float32) for k, v in runner.params().items()}


def _rel(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def _worst(pa, pb) -> float:
    return max(_rel(pa[k], pb[k]) for k in pb)


@pytest.mark.parametrize("name", FP16_MODELS)
def test_c_equals_fp16_reference(name):
    model = MODELS[name]()
    samples = _samples(model)
    prog = tte.compile(model, precision="fp16", accumulate="fp32", optimizer=OPT)
    lc, pc = _train(prog.build(), samples)
    lr, pr = _train(prog.reference(), samples)
    print(name, "loss", _rel(lc, lr), "params", _worst(pc, pr))
    assert _rel(lc, lr) <= TOL_SAME and _worst(pc, pr) <= TOL_SAME


@pytest.mark.parametrize("accumulate", ["fp16", "fp32", "auto"])
@pytest.mark.parametrize("name", FP16_MODELS)
def test_fp16_close_to_fp32(name, accumulate):
    model = MODELS[name]()
    samples = _samples(model)
    half = tte.compile(model, precision="fp16", accumulate=accumulate, optimizer=OPT)
    full = tte.compile(model, optimizer=OPT)
    lh, ph = _train(half.build(), samples)
    lf, pf = _train(full.reference(np.float64), samples)
    moved = _worst({k: v for k, v in pf.items()},
                   {k: full.training_graph.data[k] for k in pf})
    print(name, accumulate, "loss", _rel(lh, lf), "params", _worst(ph, pf), "moved", moved)
    assert _rel(lh, lf) <= TOL_FP32 and _worst(ph, pf) <= TOL_FP32


@pytest.mark.parametrize("name", ["lenet", "mbv2_stack"])
def test_scalar_equals_v2f16(name, tmp_path):
    """The generated project built twice, with and without TTE_V2F16: bitwise equal."""
    model = MODELS[name]()
    samples = _samples(model)
    prog = tte.compile(model, precision="fp16", optimizer=OPT)
    results = []
    for v2 in (0, 1):
        project = prog.generate_c(str(tmp_path / f"v{v2}"))
        ffi, lib = build_c(project.cdef, [project.source] + sorted(KERNELS_DIR.glob("*.c")),
                           header=f'#include "{project.header.name}"',
                           include_dirs=[project.directory], extra_flags=[f"-DTTE_V2F16={v2}"])
        step = getattr(lib, f"tte_{project.name}_train_step")
        losses = []
        for x, y in samples:
            xh = np.ascontiguousarray(x[None] if x.ndim < 2 else x, np.float16)
            loss = np.zeros(1, np.float32)
            assert step(ffi.cast("void *", xh.ctypes.data), y,
                        ffi.cast("float *", loss.ctypes.data)) == 0
            losses.append(loss[0])
        params = []
        for i in range(getattr(lib, f"tte_{project.name}_num_trainable")()):
            size = getattr(lib, f"tte_{project.name}_trainable_size")(i)
            data = getattr(lib, f"tte_{project.name}_trainable_data")(i)
            params.append(np.frombuffer(ffi.buffer(data, 2 * size), np.float16).copy())
        results.append((np.array(losses), params))
    (l0, p0), (l1, p1) = results
    assert np.array_equal(l0, l1)
    assert all(np.array_equal(a.view(np.uint16), b.view(np.uint16)) for a, b in zip(p0, p1))


def test_fp16_halves_activation_bytes():
    model = MODELS["mbv2_stack"]()
    half = tte.compile(model, precision="fp16", optimizer=OPT).report()["memory"]
    full = tte.compile(model, optimizer=OPT).report()["memory"]
    print({k: (full[k], half[k]) for k in full if isinstance(full[k], int)})
    assert half["arena_bytes"] <= full["arena_bytes"] // 2 + 64  # alignment slack
