"""The int8 fast paths of kernels_c/conv_s8.c on the MCU targets: the half-even requantisation
decided in single precision (double code as fallback) and the portable 1x1 tiles (rv32,
rv32v, the host; Cortex-M with the DSP extension keeps its SMLAD tiles). Built normally and
with -DTTE_SCALAR (every kernel's portable reference path), they compute the host C's bits.

1. Kernel level, on rv32 and Cortex-M4 firmware: tests/test_cortex_m_dsp.py's 39 geometries
   (whose half-even cases pass no float table) and cases built here that pass one: pointwise
   tiles and their tails, odd channel counts, long rows, biases at the int32 limits (so
   acc + bias leaves int32), sums of small values times 1/2 or 1/4 (exact ties, which the float
   test leaves to the double code), depthwise and general windows, a fully connected layer.
   Each case's host results come from the host C without the float table (the double rule,
   the reference) and must equal the host C with it and a numpy model
   (tte.quant.arith.conv2d_acc / linear_acc + requant_half_even). Outputs and clamp masks of
   both firmware builds must equal the host's; instructions per call are printed. The same
   cases run on the host under ASan + UBSan (the portable paths read nothing outside x).
2. MCUNet-5FPS int8, the "49kb" scheme at 64x64, 2 training steps on Cortex-M4 and rv32:
   the default build and the TTE_SCALAR build give the host C's losses and parameters bit
   for bit; so does a build whose codegen leaves the float tables out (the convolutions'
   double rule only; the residual adds still decide in float). Instructions per step and
   per conv kind are printed for the three builds: TTE_SCALAR | no scale_f | default.
   Before these paths, the default build was TTE_SCALAR's on rv32 and, on Cortex-M4, about
   the "no scale_f" column with the residual adds at TTE_SCALAR's cost.
3. The MLPerf Tiny KWS model (int8, TFLite rule, every bias trained) on rv32, default against
   TTE_SCALAR against the host: its 1x1 layers are the portable tiles' case.
Counts come from QEMU -icount (exact on rv32, +-40 on Cortex-M): printed, not asserted
beyond "the default build is not slower". ~30 s.
"""
from __future__ import annotations

import os
import subprocess
from collections import defaultdict

import numpy as np
import pytest

import codegen.ops_s8
import tte
from targets.firmware import FIRMWARE_DIR
from targets.firmware.build import KERNELS_DIR
from targets.firmware.cost import cost_rows
from tte.cost import node_costs
from tte.quant import arith as ta

import test_cortex_m_dsp as dsp
from kernels import ckernels
from mcu_checks import equal_to_host

MODELS = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "models")
SCHEMES = os.path.join(os.path.dirname(__file__), "..", "tte", "schemes")
MCUNET = os.path.join(MODELS, "mcu_imagenet", "mcunet-5fps.pkl")
KWS = os.path.join(MODELS, "mlperf_tiny", "kws_ref_model.tflite")


# ----------------------------------------------------------------- 1. kernel level

def _ptr(ffi, a, ctype):
    return ffi.NULL if a is None else ffi.cast(ctype + " *", a.ctypes.data)


def _half_even_conv(rng, name, *, n=1, c=8, o=4, groups=1, hw=(4, 4), k=(1, 1),
                    stride=(1, 1), pads=(0, 0, 0, 0), bias="normal", tie=None):
    """A half-even tte_conv2d_s8 call passing the float table. tie = 1/2 or 1/4: small
    inputs, no bias and that scale for every channel, so that many outputs are exact
    ties (and the rest near the int8 range's middle). (Split weights: kernel_cases()
    runs them; their gather does not meet the requantisation.)"""
    ffi, lib = ckernels.load()
    cg = c // groups
    h, w_ = hw
    oh = (h + pads[0] + pads[2] - (k[0] - 1) - 1) // stride[0] + 1
    ow = (w_ + pads[1] + pads[3] - (k[1] - 1) - 1) // stride[1] + 1
    v = 4 if tie else 128
    x = rng.integers(-v, v, (n, c, h, w_)).astype(np.int8)
    wt = rng.integers(-v, v, (o, cg, *k)).astype(np.int8)
    b = None if tie else {
        "normal": rng.integers(-50000, 50000, o),
        "extreme": rng.choice(np.array([ta.INT32_MIN, ta.INT32_MIN + 5, ta.INT32_MAX - 3,
                                        ta.INT32_MAX]), o)}[bias].astype(np.int32)
    in_off = int(rng.integers(-3, 4)) if tie else int(rng.integers(-127, 129))
    out_off = int(rng.integers(-128, 128))
    taps = cg * k[0] * k[1]
    if tie:
        scale = np.full(o, tie)
    elif bias == "extreme":  # small enough that extreme biases land near the int8 range
        scale = np.exp(rng.uniform(-2, 2, o)) * 2.0 ** -28
    else:
        scale = np.exp(rng.uniform(-2, 2, o)) / (128.0 * taps)
    scale_f = scale.astype(np.float32)
    lo, hi = (-128, 127) if rng.random() < 0.5 else (int(rng.integers(-128, 0)), 100)
    win = ckernels.window(k, stride, pads, (1, 1), groups)
    arrays = {"x": x, "w": wt, "sc": scale, "scf": scale_f}
    if b is not None:
        arrays["bias"] = b
    sp = {"frozen": ffi.NULL, "pos": ffi.NULL, "axis": 0, "count": 0}
    q = {"input_offset": in_off, "output_offset": out_off, "act_min": lo, "act_max": hi}
    outs = []
    for table in (None, scale_f):  # the double rule (reference), then the float path
        y = np.zeros((n, o, oh, ow), np.int8)
        mask = np.zeros((y.size + 7) // 8, np.uint8)
        rq = {"multiplier": ffi.NULL, "shift": ffi.NULL, "scale": _ptr(ffi, scale, "double"),
              "per_channel": 1, "scale_f": _ptr(ffi, table, "float")}
        lib.tte_conv2d_s8(_ptr(ffi, x, "int8_t"), ckernels.dims4(x.shape),
                          _ptr(ffi, wt, "int8_t"), _ptr(ffi, b, "int32_t"),
                          _ptr(ffi, y, "int8_t"), ckernels.dims4(y.shape), win, rq, q,
                          _ptr(ffi, mask, "uint8_t"), sp)
        outs.append((y, mask))
    acc = ta.wrap32(ta.conv2d_acc(x, wt, win, (oh, ow), in_off))
    v_ref = ta.requant_half_even(acc, b, scale, out_off, (1, o, 1, 1))
    y_ref = np.clip(v_ref, lo, hi).astype(np.int8)
    for y, mask in outs:
        assert np.array_equal(y, y_ref), name
        assert np.array_equal(mask, ta.clamp_mask(v_ref, lo, hi)), name
    if tie:
        prod = (acc * tie) % 1 == 0.5
        assert prod.mean() > 0.1, name  # many exact ties
    wd = "{%d, %d, %d, %d, %d, %d, %d, %d, 1, 1, %d}" % (k[0], k[1], stride[0], stride[1],
                                                        *pads, groups)
    call = (f"tte_conv2d_s8(@x@, (tte_dims4){{{n}, {c}, {h}, {w_}}}, @w@, "
            f"{'@bias@' if b is not None else 'NULL'}, @y@, (tte_dims4){{{n}, {o}, {oh}, {ow}}}, "
            f"(tte_window){wd}, (tte_requant){{NULL, NULL, @sc@, 1, @scf@}}, "
            f"(tte_s8_params){{{in_off}, {out_off}, {lo}, {hi}}}, @mask@, TTE_SPLIT_NONE)")
    return dsp.Case(name, call, arrays, *outs[0])


def _half_even_linear(rng, name, *, n, k, m, f_off):
    """tte_linear_s8 with one half-even scale (per tensor) and its float."""
    ffi, lib = ckernels.load()
    x = rng.integers(-128, 128, (n, k)).astype(np.int8)
    w = rng.integers(-128, 128, (m, k)).astype(np.int8)
    b = rng.integers(-50000, 50000, m).astype(np.int32)
    scale = np.array([1.7 / (128.0 * k)])
    scale_f = scale.astype(np.float32)
    in_off, out_off = int(rng.integers(-127, 129)), int(rng.integers(-128, 128))
    outs = []
    for table in (None, scale_f):
        y = np.zeros((n, m), np.int8)
        mask = np.zeros((y.size + 7) // 8, np.uint8)
        rq = {"multiplier": ffi.NULL, "shift": ffi.NULL, "scale": _ptr(ffi, scale, "double"),
              "per_channel": 0, "scale_f": _ptr(ffi, table, "float")}
        q = {"input_offset": in_off, "output_offset": out_off, "act_min": -100, "act_max": 127}
        lib.tte_linear_s8(_ptr(ffi, x, "int8_t"), n, k, _ptr(ffi, w, "int8_t"),
                          _ptr(ffi, b, "int32_t"), _ptr(ffi, y, "int8_t"), m, rq, f_off, q,
                          _ptr(ffi, mask, "uint8_t"))
        outs.append((y, mask))
    v_ref = ta.requant_half_even(ta.wrap32(ta.linear_acc(x, w, in_off, f_off)), b, scale,
                                 out_off, (1, -1))
    for y, mask in outs:
        assert np.array_equal(y, np.clip(v_ref, -100, 127).astype(np.int8)), name
        assert np.array_equal(mask, ta.clamp_mask(v_ref, -100, 127)), name
    call = (f"tte_linear_s8(@x@, {n}, {k}, @w@, @bias@, @y@, {m}, "
            f"(tte_requant){{NULL, NULL, @sc@, 0, @scf@}}, {f_off}, "
            f"(tte_s8_params){{{in_off}, {out_off}, -100, 127}}, @mask@)")
    return dsp.Case(name, call, {"x": x, "w": w, "bias": b, "sc": scale, "scf": scale_f},
                    *outs[0])


def fast_cases() -> list[dsp.Case]:
    rng = np.random.default_rng(11)
    he = _half_even_conv
    return [
        he(rng, "f32 pw 7->5 3x5 (tiles, tails)", c=7, o=5, hw=(3, 5)),
        he(rng, "f32 pw 16->6 6x6 n2", n=2, c=16, o=6, hw=(6, 6)),
        he(rng, "f32 pw 24->3 1x1 plane", c=24, o=3, hw=(1, 1)),
        he(rng, "f32 pw 32->4 5x5 extreme biases", c=32, o=4, hw=(5, 5), bias="extreme"),
        he(rng, "f32 pw 260->2 (long rows)", c=260, o=3, hw=(1, 3)),
        he(rng, "f32 pw ties x 1/2", c=6, o=5, hw=(4, 5), tie=0.5),
        he(rng, "f32 pw ties x 1/4", c=3, o=2, hw=(3, 3), tie=0.25),
        he(rng, "f32 dw 3x3 ties x 1/2", c=4, o=4, groups=4, hw=(5, 5), k=(3, 3),
           pads=(1, 1, 1, 1), tie=0.5),
        he(rng, "f32 dw 5x5 s2 extreme biases", c=3, o=3, groups=3, hw=(7, 7), k=(5, 5),
           stride=(2, 2), pads=(2, 2, 2, 2), bias="extreme"),
        he(rng, "f32 stem 3x3 s2 3->4", c=3, o=4, hw=(8, 9), k=(3, 3), stride=(2, 2),
           pads=(0, 0, 1, 1)),
        _half_even_linear(rng, "f32 linear 40 -> 7, n 2", n=2, k=40, m=7, f_off=0),
    ]


@pytest.mark.parametrize("target", ["rv32", "cortex-m4"])
def test_kernels_fast_and_scalar_equal_host(target, tmp_path):
    cases = dsp.kernel_cases() + fast_cases()
    fast = dsp.run_kernel_firmware(cases, target, tmp_path / "fast")
    scalar = dsp.run_kernel_firmware(cases, target, tmp_path / "scalar", ("TTE_SCALAR",))
    dsp._check(cases, fast, "default")
    dsp._check(cases, scalar, "TTE_SCALAR")
    print(f"\n{target}: instructions per kernel call, TTE_SCALAR vs default")
    for cs, f, s in zip(cases, fast, scalar):
        print(f"  {cs.name:44s} {s['instructions']:>10,} {f['instructions']:>10,}"
              f"  x{s['instructions'] / max(f['instructions'], 1):.2f}")


def test_fast_paths_on_host_under_sanitizers(tmp_path):
    """The same cases' firmware main built for the host (the portable tiles and the float
    requantisation, no DSP) under ASan + UBSan: clean, and the host's results."""
    cases = dsp.kernel_cases() + fast_cases()
    (tmp_path / "main.c").write_text(dsp._main_c(cases))
    (tmp_path / "fw_io.c").write_text(dsp.FW_IO_STDIO)
    exe = tmp_path / "kernels"
    build = subprocess.run(
        [os.environ.get("CC", "gcc"), "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror",
         "-ffp-contract=off", "-fsanitize=address,undefined", "-fno-sanitize-recover=all",
         f"-I{KERNELS_DIR}", f"-I{FIRMWARE_DIR}", str(tmp_path / "main.c"),
         str(tmp_path / "fw_io.c"), *(str(KERNELS_DIR / s) for s in dsp.KERNEL_SOURCES), "-lm",
         "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stderr, run.stderr[-3000:]
    dsp._check(cases, dsp._parse(run.stdout, len(cases), 1), "portable on the host")


# ----------------------------------------------------------------- 2., 3. whole models

def _conv_kind(g, node) -> str:
    return dsp._conv_kind(g, node) if node.op == "conv2d_s8" else node.op


def _print_counts(title: str, g, runs: dict) -> None:
    """Per step, per forward conv kind and per op kind (cost_rows), one column a build."""
    names = list(runs)
    print(f"\n{title}: instructions of the last step (steps: each)")
    print("  " + f"{'':34s}" + "".join(f"{n:>16s}" for n in names))
    per: dict[str, list[int]] = defaultdict(lambda: [0] * len(names))
    for j, r in enumerate(runs.values()):
        counts = r.result.node_instructions
        for i, node in enumerate(g.nodes):
            if node.op in ("conv2d_s8", "add_s8"):
                per[f"{_conv_kind(g, node)} forward"][j] += counts.get(i, 0)
        for row in cost_rows(node_costs(g), counts):
            if row.direction != "forward" and row.instructions:
                per[f"{row.kind} {row.direction}"][j] += row.instructions
    for key, vals in sorted(per.items(), key=lambda kv: -kv[1][0]):
        if vals[0] > 0.002 * runs[names[0]].result.step_instructions[-1]:
            print(f"  {key:34s}" + "".join(f"{v:>16,}" for v in vals))
    steps = [r.result.step_instructions for r in runs.values()]
    for s in range(len(steps[0])):
        print(f"  {f'step {s}':34s}" + "".join(f"{int(st[s]):>16,}" for st in steps))


@pytest.fixture(scope="module")
def mcunet():
    return tte.compile(MCUNET, num_classes=10, head="int8", int8_input=True, input_size=64,
                       update=os.path.join(SCHEMES, "mcunet-5fps-49kb.json"))


@pytest.mark.parametrize("target", ["cortex-m4", "rv32"])
def test_mcunet_default_scalar_and_double_equal_host(mcunet, target, monkeypatch):
    xs = np.random.default_rng(1).integers(-128, 128, (2, 3, 64, 64)).astype(np.int8)
    labels = np.array([1, 5])
    scalar = equal_to_host(mcunet, target, xs, labels, profile=True, defines=("TTE_SCALAR",))
    fast = equal_to_host(mcunet, target, xs, labels, profile=True)
    with monkeypatch.context() as m:  # no float tables: the double rule alone
        m.setattr(codegen.ops_s8, "_scale_f", lambda eff, c: "NULL")
        double = mcunet.build(target=target, profile=True)
        np.testing.assert_array_equal(double.train_steps(xs, labels), fast.result.losses)
    assert double.result.params == fast.result.params == scalar.result.params
    _print_counts(f"MCUNet-5FPS int8 49kb 64x64, {target}", mcunet.training_graph,
                  {"TTE_SCALAR": scalar, "no scale_f": double, "default": fast})
    # counts are deterministic under -icount shift=0: the fast paths must not cost more
    assert np.all(fast.result.step_instructions <= double.result.step_instructions)
    assert np.all(fast.result.step_instructions <= scalar.result.step_instructions)
    convs = [i for i, n in enumerate(mcunet.training_graph.nodes) if n.op == "conv2d_s8"]
    assert sum(fast.result.node_instructions[i] for i in convs) < \
        sum(scalar.result.node_instructions[i] for i in convs)


def test_kws_rv32_default_and_scalar_equal_host():
    prog = tte.compile(KWS, update="bias", optimizer={"lr": 0.01})
    x = prog.forward_graph.values[prog.forward_graph.inputs[0]]
    xs = np.random.default_rng(0).integers(-128, 128, (2,) + x.shape[1:]).astype(np.int8)
    labels = np.array([0, 1])
    scalar = equal_to_host(prog, "rv32", xs, labels, profile=True, defines=("TTE_SCALAR",))
    fast = equal_to_host(prog, "rv32", xs, labels, profile=True)
    _print_counts("MLPerf Tiny KWS int8, every bias trained, rv32", prog.training_graph,
                  {"TTE_SCALAR": scalar, "default": fast})
    assert np.all(fast.result.step_instructions <= scalar.result.step_instructions)
