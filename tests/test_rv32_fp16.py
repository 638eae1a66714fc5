"""FP16 training on RISC-V (targets/riscv): the fast paths equal the portable one bit for bit.

rv32 (Zfh) takes the native-half and v2f16 pair paths, rv32v (V + Zvfh) the RVV paths
(kernels_c/f16_rvv.c, kernels_c/rvv_conv.inc); TTE_SCALAR takes the portable scalar path on either. For each model
and accumulation, 3 SGD steps: losses and every trained parameter of the fast firmware equal
the TTE_SCALAR firmware's and the host C's (prog.build(), the portable path with
TTE_V2F16=0) bit for bit. The models cover the kernels' geometry: strides, asymmetric
padding, dilation, groups, depthwise, 1x1 planes, linear layers, and partial weights (split
along input channels and, first or by magnitude, depthwise channels).

test_half_arithmetic_bits checks the arithmetic itself on the device, over 65,536 triples of
halves (zeros, infinities, NaNs, subnormals, overflow, random bit patterns and ordinary
values): the header's half multiply-add (native Zfh, or TTE_SCALAR's float with conversions)
against numpy, and on rv32v the RVV half (vfmul, vfadd) and float (vfwmacc, vfncvt) forms
against the scalar ones, bit for bit.

Instruction counts of these paths: benchmarks/mcu_cost.py.
"""
from __future__ import annotations

import functools
import os
import shutil
import sys
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

import subprocess

import tte
from targets.firmware import fnv1a
from targets.firmware.build import KERNELS_DIR, linker_script
from targets.firmware import FIRMWARE_DIR
from targets.firmware.target import get_target

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from models import MODELS, _Builder, input_shape, num_classes  # noqa: E402
from test_partial_weights import TINY_SCHEME, tiny  # noqa: E402

pytestmark = pytest.mark.skipif(
    not (shutil.which("clang-16") and shutil.which("qemu-system-riscv32")),
    reason="clang-16 / qemu-system-riscv32 missing (`make toolchains`)")

STEPS = 3
OPT = {"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}


def geometry(seed: int = 11):
    """Stride 2 with asymmetric pads, dilation 2, groups of 2, a depthwise stride 2, odd
    channel counts, planes of more than 256 elements (RVV float sums take them in blocks of
    rows), and a 1x1 conv (one run over whole rows, longer than a vector)."""
    b = _Builder(seed)
    h = b.relu(b.conv("x", 3, 5, 3, stride=2, pads=[1, 0, 2, 1], name="s2"))         # 5x13x20
    h = b.relu(b.conv(h, 5, 6, 3, pads=[2, 1, 1, 2], dilation=2, name="dil"))        # 6x12x19
    h = b.relu(b.conv(h, 6, 4, 3, group=2, name="grouped"))                          # 4x12x19
    h = b.relu(b.conv(h, 4, 4, 3, stride=2, group=4, name="dw2"))                    # 4x6x10
    h = b.conv(h, 4, 5, 1, name="pw")                                                # 5x6x10
    h = b.node("GlobalAveragePool", [h])
    h = b.node("Flatten", [h], axis=1)
    return b.build("geometry", [1, 3, 24, 41], b.gemm(h, 5, 7, name="fc"), 7)


CASES = {
    "lenet": (MODELS["lenet"], "full"),
    "dwsep": (MODELS["dwsep_bn_relu6"], "full"),
    "geometry": (geometry, "full"),
    "partial-first": (tiny, {**TINY_SCHEME, "channels": "first"}),
    "partial-magnitude": (tiny, {**TINY_SCHEME, "channels": "magnitude"}),
}


@functools.lru_cache(maxsize=None)
def _program(case: str, precision: str, accumulate: str):
    build, update = CASES[case]
    model = build()
    kw = {"precision": "fp16", "accumulate": accumulate} if precision == "fp16" else {}
    return model, tte.compile(model, update=update, optimizer=OPT, **kw)


def _samples(model):
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((STEPS,) + input_shape(model)[1:]).astype(np.float32)
    return xs, rng.integers(num_classes(model), size=STEPS).astype(np.int32)


def _bits(params: dict) -> dict:
    return {k: np.ascontiguousarray(v).view(np.uint8).copy() for k, v in params.items()}


@functools.lru_cache(maxsize=None)
def _run(case: str, precision: str, accumulate: str, target: str | None,
         defines: tuple[str, ...] = ()):
    """(losses, parameter bytes) after STEPS steps."""
    model, prog = _program(case, precision, accumulate)
    xs, ys = _samples(model)
    if target is None:  # the host C, one sample at a time
        r = prog.build()
        xh = xs.astype(np.float16) if precision == "fp16" else xs
        losses = np.array([r.train_step(x[None], int(y)) for x, y in zip(xh, ys)], np.float32)
        return losses, _bits(r.params())
    r = prog.build(target=target, defines=defines)
    losses = r.train_steps(xs, ys)
    return np.asarray(losses, np.float32), _bits(r.params())


def _assert_same(a, b, what: str) -> None:
    (la, pa), (lb, pb) = a, b
    assert la.view(np.uint32).tolist() == lb.view(np.uint32).tolist(), f"{what}: losses"
    assert pa.keys() == pb.keys()
    for k in pa:
        assert np.array_equal(pa[k], pb[k]), f"{what}: {k}"


@pytest.mark.parametrize("accumulate", ["fp16", "fp32"])
@pytest.mark.parametrize("case", list(CASES))
def test_fast_paths_equal_scalar_and_host(case, accumulate):
    runs = [(None, ())] + [(t, d) for t in ("rv32", "rv32v") for d in ((), ("TTE_SCALAR",))]
    _program(case, "fp16", accumulate)
    with ThreadPoolExecutor(len(runs)) as pool:  # compiling the model's C dominates
        results = dict(zip(runs, pool.map(lambda r: _run(case, "fp16", accumulate, *r), runs)))
    host = results[None, ()]
    assert np.all(np.isfinite(host[0]))
    for target in ("rv32", "rv32v"):
        fast, scalar = results[target, ()], results[target, ("TTE_SCALAR",)]
        _assert_same(fast, scalar, f"{target} fast vs TTE_SCALAR")
        _assert_same(fast, host, f"{target} fast vs host")
    # the parameters moved: the comparison is not of untouched initial weights
    model, prog = _program(case, "fp16", accumulate)
    init = _bits({k: prog.training_graph.data[k] for k in host[1]})
    assert any(not np.array_equal(init[k], host[1][k]) for k in init)




ARITH_C = r"""
#include <stdint.h>
#include <string.h>

#include "fw_io.h"
#include "tte_f16.h"
#if TTE_RVV
#include <riscv_vector.h>
#endif

#define N @N@
static const uint16_t vals[N] = {@VALS@};
static uint32_t hash = 2166136261u, mismatches;

static uint16_t bits(tte_f16 v)
{
    uint16_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}

#if TTE_RVV
static uint32_t fbits(float v)
{
    uint32_t u;
    memcpy(&u, &v, sizeof u);
    return u;
}
#endif

static tte_f16 half(uint16_t u)
{
    tte_f16 v;
    memcpy(&v, &u, sizeof v);
    return v;
}

static void mix(uint16_t u)
{
    if ((u & 0x7c00u) == 0x7c00u && (u & 0x3ffu)) u = 0x7e00u; /* one NaN */
    hash = (hash ^ (u & 0xffu)) * 16777619u;
    hash = (hash ^ (u >> 8)) * 16777619u;
}

static void put(const char *key, uint32_t v)
{
    char line[24];
    int i = 0;
    while (*key) line[i++] = *key++;
    for (int k = 7; k >= 0; --k) line[i + k] = "0123456789abcdef"[(v >> (4 * (7 - k))) & 15u];
    line[i + 8] = '\n';
    line[i + 9] = 0;
    fw_write0(line);
}

int main(void)
{
    static tte_f16 ys[N], accs[N], half_sums[N];
    static float float_sums[N];
    for (int32_t i = 0; i < N; ++i) {
        const tte_f16 x = half(vals[i]);
        for (int32_t j = 0; j < N; ++j) {
            ys[j] = half(vals[j]);
            accs[j] = half(vals[(i * 7 + j * 13) % N]);
            half_sums[j] = (tte_f16)tte_f16_mac((float)accs[j], (float)x, (float)ys[j], 0);
            float_sums[j] = tte_f16_mac((float)accs[j], (float)x, (float)ys[j], 1);
            mix(bits(half_sums[j]));
        }
#if TTE_RVV
        size_t vl;
        for (int32_t j = 0; j < N; j += (int32_t)vl) {
            vl = __riscv_vsetvl_e16m4((size_t)(N - j));
            const vfloat16m4_t y = __riscv_vle16_v_f16m4(ys + j, vl);
            const vfloat16m4_t a = __riscv_vle16_v_f16m4(accs + j, vl);
            tte_f16 h[32];
            float f[32];
            tte_f16 r[32];
            __riscv_vse16_v_f16m4(h, __riscv_vfadd_vv_f16m4(a, __riscv_vfmul_vf_f16m4(y, x, vl),
                                                            vl), vl);
            const vfloat32m8_t s = __riscv_vfwmacc_vf_f32m8(__riscv_vfwcvt_f_f_v_f32m8(a, vl), x,
                                                            y, vl);
            __riscv_vse32_v_f32m8(f, s, vl);
            __riscv_vse16_v_f16m4(r, __riscv_vfncvt_f_f_w_f16m4(s, vl), vl);
            for (size_t l = 0; l < vl; ++l)
                mismatches += (bits(h[l]) != bits(half_sums[j + l]))
                              + (fbits(f[l]) != fbits(float_sums[j + l]))
                              + (bits(r[l]) != bits((tte_f16)float_sums[j + l]));
        }
#endif
    }
    put("hash ", hash);
    put("mismatches ", mismatches);
    return mismatches != 0;
}
"""


def _arith_values() -> np.ndarray:
    rng = np.random.default_rng(5)
    special = [0x0000, 0x8000, 0x7c00, 0xfc00, 0x7e00, 0x7bff, 0xfbff, 0x0400, 0x8400,
               0x0001, 0x8001, 0x03ff, 0x3c00, 0xbc00, 0x3c01, 0x5bff]
    ordinary = rng.standard_normal(120).astype(np.float16).view(np.uint16)
    patterns = rng.integers(0, 1 << 16, 256 - len(special) - len(ordinary))
    return np.concatenate([special, ordinary, patterns]).astype(np.uint16)


def _arith_hash(vals: np.ndarray) -> int:
    """The hash main() prints, from numpy: half(float(acc) + float(half(x * y)))."""
    v = vals.view(np.float16).astype(np.float32)
    n = len(vals)
    out = []
    with np.errstate(all="ignore"):
        for i in range(n):
            acc = v[(i * 7 + np.arange(n) * 13) % n]
            prod = (v[i] * v).astype(np.float16).astype(np.float32)
            out.append((acc + prod).astype(np.float16).view(np.uint16))
    r = np.concatenate(out)
    r[((r & 0x7c00) == 0x7c00) & ((r & 0x3ff) != 0)] = 0x7e00
    return fnv1a([r.astype("<u2").tobytes()])


@pytest.mark.parametrize("target, defines", [("rv32", ()), ("rv32", ("TTE_SCALAR",)),
                                             ("rv32v", ())])
def test_half_arithmetic_bits(target, defines, tmp_path):
    vals = _arith_values()
    src = tmp_path / "arith.c"
    src.write_text(ARITH_C.replace("@N@", str(len(vals)))
                   .replace("@VALS@", ", ".join(f"0x{v:04x}u" for v in vals)))
    t = get_target(target)
    objs = []
    for c in (src, t.directory / "startup.c"):
        obj = tmp_path / f"{c.stem}.o"
        subprocess.run(t.compile_command(c, obj, [KERNELS_DIR, FIRMWARE_DIR], defines),
                       check=True)
        objs.append(obj)
    elf = tmp_path / "arith.elf"
    subprocess.run(t.link_command(objs, linker_script(t, t.part, tmp_path), elf,
                                  tmp_path / "arith.map"), check=True)
    run = subprocess.run(t.qemu_command(elf, icount=False), capture_output=True, text=True,
                         timeout=120)
    out = run.stdout + run.stderr  # semihosting writes to either
    got = dict(line.split() for line in out.splitlines() if line.split()[:1] in (["hash"],
                                                                                ["mismatches"]))
    assert int(got["mismatches"], 16) == 0
    assert int(got["hash"], 16) == _arith_hash(vals)
