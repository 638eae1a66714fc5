"""The Cortex-M DSP-extension paths of the int8 kernels (kernels_c/dsp_s8.h, conv_s8.c)
give their scalar paths' bits: firmware built normally (the cores have __ARM_FEATURE_DSP)
and with -DTTE_SCALAR (every target's portable path) computes the same, and both equal the
host C.

1. Kernel level: a small firmware runs tte_conv2d_s8 / tte_linear_s8 on geometries chosen
   to reach every branch of the fast paths (odd channel counts and planes, strides,
   asymmetric padding, windows wholly inside / over the padding, kernel widths 1 to 7,
   split weights, depth multipliers, dilation, both requantisation rules, wrapping biases,
   and "exact" cases whose outputs are the sums themselves) and those that fall back to the
   scalar path; outputs and clamp masks must equal the host C's (through cffi) in both
   builds, on Cortex-M4 and M7. The same DSP C also runs on the host under ASan + UBSan
   (a C model of the two intrinsics), which checks that no fast path reads outside x.
2. MCUNet-5FPS trained on Cortex-M4 both ways: tests/test_int8_fast_paths.py (which also
   covers the single-precision requantisation), equal to the host C and no slower.
"""
from __future__ import annotations

import os
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from targets.firmware import FIRMWARE_DIR
from targets.firmware.build import KERNELS_DIR, linker_script
from targets.firmware.target import get_target
from tte.quant import arith as ta

from kernels import ckernels

KERNEL_SOURCES = ("conv_s8.c", "quant.c", "split.c", "window.c")


# ----------------------------------------------------------------- 1. kernel level

@dataclass
class Case:
    """One kernel call: its C arguments (as C text) and arrays, and the host's result."""
    name: str
    call: str                        # the C call; @key@ names an array of `arrays`, @y@, @mask@
    arrays: dict[str, np.ndarray]    # const inputs, emitted as static const arrays
    y: np.ndarray                    # the host C's output
    mask: np.ndarray                 # and clamp mask


def _ptr(ffi, a, ctype):
    return ffi.NULL if a is None else ffi.cast(ctype + " *", a.ctypes.data)


def _split_weight(w, axis, count, rng):
    """(trained part, frozen part, pos) of w split along axis with `count` trained channels
    at a random choice of positions (split.h)."""
    c = w.shape[axis]
    pos = rng.permutation(c).astype(np.int32)
    order = np.argsort(pos)  # order[j]: the channel stored at position j
    parts = np.take(w, order, axis=axis)
    trained, frozen = np.split(parts, [count], axis=axis)
    return np.ascontiguousarray(trained), np.ascontiguousarray(frozen), pos


def _conv_case(rng, name, *, n=1, c=3, o=4, groups=1, hw=(5, 5), k=(3, 3), stride=(1, 1),
               pads=(1, 1, 1, 1), dil=(1, 1), half_even=False, bias="normal", split=0,
               in_off=None, exact=False):
    """Random x, w, bias and requantisation for tte_conv2d_s8, computed by the host C.
    exact: small x, w and input offset (|v| <= 3), no bias, scale 1 and no clamp, so that
    the outputs are the accumulators themselves: an error of one in any sum shows."""
    ffi, lib = ckernels.load()
    cg = c // groups
    h, w_ = hw
    oh = (h + pads[0] + pads[2] - dil[0] * (k[0] - 1) - 1) // stride[0] + 1
    ow = (w_ + pads[1] + pads[3] - dil[1] * (k[1] - 1) - 1) // stride[1] + 1
    v = 3 if exact else 128
    x = rng.integers(-v, v, (n, c, h, w_), endpoint=exact).astype(np.int8)
    wt = rng.integers(-v, v, (o, cg, *k), endpoint=exact).astype(np.int8)
    b = {"none": None,
         "normal": rng.integers(-50000, 50000, o).astype(np.int32),
         "extreme": rng.choice(np.array([ta.INT32_MIN, ta.INT32_MAX - 3], np.int64),
                               o).astype(np.int32)}["none" if exact else bias]
    if in_off is None:
        in_off = int(rng.integers(-3, 4) if exact else rng.integers(-127, 129))
    out_off = 0 if exact else int(rng.integers(-128, 128))
    lo, hi = (-128, 127) if exact or rng.random() < 0.5 else (int(rng.integers(-128, 0)), 100)
    taps = cg * k[0] * k[1]
    reals = np.ones(o) if exact else np.exp(rng.uniform(-2, 2, o)) / (128.0 * taps)
    arrays = {"x": x}
    if half_even:
        scale = reals
        arrays["sc"] = scale
        rq_c = "(tte_requant){NULL, NULL, @sc@, 1, NULL}"
        rq = {"multiplier": ffi.NULL, "shift": ffi.NULL, "scale": _ptr(ffi, scale, "double"),
              "per_channel": 1, "scale_f": ffi.NULL}
    else:
        ms = [ta.quantize_multiplier(r) for r in reals]
        mult = np.array([m for m, _ in ms], np.int32)
        shift = np.array([s for _, s in ms], np.int32)
        arrays.update(mult=mult, shift=shift)
        rq_c = "(tte_requant){@mult@, @shift@, NULL, 1, NULL}"
        rq = {"multiplier": _ptr(ffi, mult, "int32_t"), "shift": _ptr(ffi, shift, "int32_t"),
              "scale": ffi.NULL, "per_channel": 1}
    if b is not None:
        arrays["bias"] = b
    axis = 0 if groups == c and cg == 1 and groups > 1 else 1
    if split:
        trained, frozen, pos = _split_weight(wt, axis, split, rng)
        arrays.update(w=trained, frozen=frozen, pos=pos)
        split_c = f"(tte_split){{@frozen@, @pos@, {axis}, {split}}}"
        sp = {"frozen": _ptr(ffi, frozen, "int8_t"), "pos": _ptr(ffi, pos, "int32_t"),
              "axis": axis, "count": split}
    else:
        arrays["w"] = wt
        split_c = "TTE_SPLIT_NONE"
        sp = {"frozen": ffi.NULL, "pos": ffi.NULL, "axis": 0, "count": 0}
    win = ckernels.window(k, stride, pads, dil, groups)
    y = np.zeros((n, o, oh, ow), np.int8)
    mask = np.zeros((y.size + 7) // 8, np.uint8)
    q = {"input_offset": in_off, "output_offset": out_off, "act_min": lo, "act_max": hi}
    lib.tte_conv2d_s8(_ptr(ffi, x, "int8_t"), ckernels.dims4(x.shape),
                      _ptr(ffi, arrays["w"], "int8_t"), _ptr(ffi, b, "int32_t"),
                      _ptr(ffi, y, "int8_t"), ckernels.dims4(y.shape), win, rq, q,
                      _ptr(ffi, mask, "uint8_t"), sp)
    if not split and not half_even:  # and the numpy reference agrees with the host C
        ref = ta.conv2d_s8(x, wt, b, win, (oh, ow), mult, shift, in_off, out_off, lo, hi)
        assert np.array_equal(y, ref), name
    wd = "{%d, %d, %d, %d, %d, %d, %d, %d, %d, %d, %d}" % (
        k[0], k[1], stride[0], stride[1], *pads, dil[0], dil[1], groups)
    call = (f"tte_conv2d_s8(@x@, (tte_dims4){{{n}, {c}, {h}, {w_}}}, @w@, "
            f"{'@bias@' if b is not None else 'NULL'}, @y@, "
            f"(tte_dims4){{{n}, {o}, {oh}, {ow}}}, (tte_window){wd}, {rq_c}, "
            f"(tte_s8_params){{{in_off}, {out_off}, {lo}, {hi}}}, @mask@, {split_c})")
    if exact:  # the outputs are the sums (the few beyond int8 clamp)
        assert np.mean(np.abs(y) < 127) > 0.9, name
    return Case(name, call, arrays, y, mask)


def _linear_case(rng, name, *, n, k, m, f_off, exact=False):
    """tte_linear_s8 likewise (exact: as _conv_case's, with the bias kept at zero)."""
    ffi, lib = ckernels.load()
    v = 3 if exact else 128
    x = rng.integers(-v, v, (n, k), endpoint=exact).astype(np.int8)
    w = rng.integers(-v, v, (m, k), endpoint=exact).astype(np.int8)
    b = np.zeros(m, np.int32) if exact else rng.integers(-50000, 50000, m).astype(np.int32)
    real = 1.0 if exact else 1.0 / (128.0 * k)
    mult, shift = (np.array([v], np.int32) for v in ta.quantize_multiplier(real))
    in_off = int(rng.integers(-3, 4) if exact else rng.integers(-127, 129))
    out_off, lo = (0, -128) if exact else (int(rng.integers(-128, 128)), -100)
    y = np.zeros((n, m), np.int8)
    mask = np.zeros((y.size + 7) // 8, np.uint8)
    rq = {"multiplier": _ptr(ffi, mult, "int32_t"), "shift": _ptr(ffi, shift, "int32_t"),
          "scale": ffi.NULL, "per_channel": 0}
    q = {"input_offset": in_off, "output_offset": out_off, "act_min": lo, "act_max": 127}
    lib.tte_linear_s8(_ptr(ffi, x, "int8_t"), n, k, _ptr(ffi, w, "int8_t"),
                      _ptr(ffi, b, "int32_t"), _ptr(ffi, y, "int8_t"), m, rq, f_off, q,
                      _ptr(ffi, mask, "uint8_t"))
    ref = ta.linear_s8(x, w, b, mult[0], shift[0], f_off, in_off, out_off, lo, 127)
    assert np.array_equal(y, ref), name
    if exact:
        assert np.mean(np.abs(y) < 127) > 0.9, name
    call = (f"tte_linear_s8(@x@, {n}, {k}, @w@, @bias@, @y@, {m}, "
            f"(tte_requant){{@mult@, @shift@, NULL, 0, NULL}}, {f_off}, "
            f"(tte_s8_params){{{in_off}, {out_off}, {lo}, 127}}, @mask@)")
    return Case(name, call, {"x": x, "w": w, "bias": b, "mult": mult, "shift": shift}, y, mask)


def kernel_cases() -> list[Case]:
    rng = np.random.default_rng(7)
    cv = _conv_case
    return [
        # pointwise: 2x2 tiles, channel quads and their tails, odd planes and channel counts
        cv(rng, "pw 7->5 3x5", c=7, o=5, hw=(3, 5), k=(1, 1), pads=(0,) * 4),
        cv(rng, "pw 12->4 4x4 n2 half-even", n=2, c=12, o=4, hw=(4, 4), k=(1, 1),
           pads=(0,) * 4, half_even=True, in_off=128),
        cv(rng, "pw 16->3 1x1", c=16, o=3, hw=(1, 1), k=(1, 1), pads=(0,) * 4, in_off=-127),
        cv(rng, "pw 3->6 2x3 no bias", c=3, o=6, hw=(2, 3), k=(1, 1), pads=(0,) * 4,
           bias="none"),
        cv(rng, "pw 9->3 split 4 of 9", c=9, o=3, hw=(2, 3), k=(1, 1), pads=(0,) * 4, split=4),
        cv(rng, "pw 48->10 wrapping bias", c=48, o=10, hw=(3, 3), k=(1, 1), pads=(0,) * 4,
           bias="extreme"),
        cv(rng, "pw 260->2 split (gather too long: scalar)", c=260, o=2, hw=(1, 2),
           k=(1, 1), pads=(0,) * 4, split=100),
        # 1x1 that is not a plain pointwise: the window path
        cv(rng, "1x1 stride 2", c=5, o=3, hw=(5, 6), k=(1, 1), stride=(2, 2), pads=(0,) * 4),
        cv(rng, "1x1 padded", c=4, o=2, hw=(3, 3), k=(1, 1), pads=(1, 0, 1, 1)),
        # depthwise (groups = C), every MCUNet kernel size, strides, asymmetric padding
        cv(rng, "dw 3x3 s1", c=5, o=5, groups=5, hw=(6, 7)),
        cv(rng, "dw 3x3 s2 pads 0,1,1,0", c=3, o=3, groups=3, hw=(7, 8), stride=(2, 2),
           pads=(0, 1, 1, 0), half_even=True),
        cv(rng, "dw 5x5 s1 on 2x2", c=4, o=4, groups=4, hw=(2, 2), k=(5, 5), pads=(2,) * 4),
        cv(rng, "dw 5x5 s1 on 6x9", c=2, o=2, groups=2, hw=(6, 9), k=(5, 5), pads=(2,) * 4),
        cv(rng, "dw 7x7 s2 on 9x9", c=3, o=3, groups=3, hw=(9, 9), k=(7, 7), stride=(2, 2),
           pads=(3,) * 4),
        cv(rng, "dw 4x4 (whole quads) no pad", c=2, o=2, groups=2, hw=(6, 6), k=(4, 4),
           pads=(0,) * 4),
        cv(rng, "dw multiplier 2", c=3, o=6, groups=3, hw=(5, 5)),
        cv(rng, "dw 3x3 split 2 of 5", c=5, o=5, groups=5, hw=(4, 5), split=2),
        cv(rng, "dw 3x3 dilation 2x1", c=2, o=2, groups=2, hw=(7, 6), dil=(2, 1)),
        # general convolutions
        cv(rng, "stem 3x3 s2 3->4 n2", n=2, c=3, o=4, hw=(9, 8), stride=(2, 2)),
        cv(rng, "3x3 2->3 wrapping bias", c=2, o=3, hw=(4, 4), bias="extreme"),
        cv(rng, "5x5 3->2 pads 2,0,1,2", c=3, o=2, hw=(7, 7), k=(5, 5), pads=(2, 0, 1, 2)),
        cv(rng, "1x5 s(1,2) 4->2", c=4, o=2, hw=(3, 11), k=(1, 5), stride=(1, 2),
           pads=(0, 2, 0, 2)),
        cv(rng, "3x3 groups 2 (cg 3)", c=6, o=4, groups=2, hw=(5, 5)),
        cv(rng, "3x3 6->2 split 3 of 6", c=6, o=2, hw=(4, 4), split=3),
        cv(rng, "7x7 3->2 (taps too many: scalar)", c=3, o=2, hw=(8, 8), k=(7, 7),
           pads=(3,) * 4),
        cv(rng, "3x3 dilation_w 2 (scalar)", c=2, o=2, hw=(6, 6), dil=(1, 2)),
        _linear_case(rng, "linear 37 -> 5, n 2", n=2, k=37, m=5, f_off=0),
        _linear_case(rng, "linear 64 -> 3, filter offset", n=1, k=64, m=3, f_off=-17),
        _linear_case(rng, "linear 3 -> 4 (no whole word)", n=3, k=3, m=4, f_off=128),
        # exact: the outputs are the sums themselves
        cv(rng, "exact pw 7->5 3x5", c=7, o=5, hw=(3, 5), k=(1, 1), pads=(0,) * 4, exact=True),
        cv(rng, "exact pw 13->3 2x2 n2 half-even", n=2, c=13, o=3, hw=(2, 2), k=(1, 1),
           pads=(0,) * 4, exact=True, half_even=True),
        cv(rng, "exact pw 10->2 split 3 of 10", c=10, o=2, hw=(1, 3), k=(1, 1), pads=(0,) * 4,
           split=3, exact=True),
        cv(rng, "exact dw 3x3 s1", c=3, o=3, groups=3, hw=(5, 6), exact=True),
        cv(rng, "exact dw 5x5 s2 on 7x9", c=2, o=2, groups=2, hw=(7, 9), k=(5, 5),
           stride=(2, 2), pads=(2,) * 4, exact=True),
        cv(rng, "exact dw 7x7 s1 split 1 of 2", c=2, o=2, groups=2, hw=(8, 8), k=(7, 7),
           pads=(3,) * 4, split=1, exact=True),
        cv(rng, "exact stem 3x3 s2 3->2", c=3, o=2, hw=(7, 7), stride=(2, 2), exact=True),
        cv(rng, "exact 1x1 stride 2", c=5, o=2, hw=(5, 5), k=(1, 1), stride=(2, 2),
           pads=(0,) * 4, exact=True),
        cv(rng, "exact 3x3 dilation 2x1", c=2, o=2, hw=(7, 6), dil=(2, 1), exact=True),
        _linear_case(rng, "exact linear 29 -> 3, filter offset", n=2, k=29, m=3, f_off=2,
                     exact=True),
    ]


def _c_array(name: str, a: np.ndarray) -> str:
    ctype = {np.int8: "int8_t", np.int32: "int32_t", np.float64: "double", np.float32: "float",
             np.uint8: "uint8_t"}[a.dtype.type]
    suffix = "f" if a.dtype == np.float32 else ""  # (a float's repr is exact as a float too)
    vals = ", ".join(repr(float(v)) + suffix if a.dtype.kind == "f" else str(int(v))
                     for v in a.reshape(-1))
    return f"static const {ctype} {name}[] = {{{vals}}};"


DUMP_C = r"""#include <stdint.h>
#include "conv_s8.h"
#include "fw_io.h"

/* "<tag> <case> <hex bytes>", 64 bytes a line */
static void dump(char tag, int c, const uint8_t *p, int n)
{
    static const char hex[] = "0123456789abcdef";
    static char line[140];
    int i, j, len;
    for (i = 0; i < n; i += 64) {
        len = 0;
        line[len++] = tag;
        line[len++] = ' ';
        line[len++] = (char)('0' + c / 10);
        line[len++] = (char)('0' + c % 10);
        line[len++] = ' ';
        for (j = i; j < n && j < i + 64; j++) {
            line[len++] = hex[p[j] >> 4];
            line[len++] = hex[p[j] & 15];
        }
        line[len++] = '\n';
        line[len] = 0;
        fw_write0(line);
    }
}

"""


def _main_c(cases: list[Case]) -> str:
    """Firmware main: each case's arrays, then its call timed and its outputs dumped."""
    assert len(cases) < 100
    out = [DUMP_C]
    body = []
    for i, cs in enumerate(cases):
        for key, a in cs.arrays.items():
            out.append(_c_array(f"{key}_{i}", a))
        out.append(f"static int8_t y_{i}[{cs.y.size}];")
        out.append(f"static uint8_t mask_{i}[{cs.mask.size}];")
        call = cs.call
        for key in [*cs.arrays, "y", "mask"]:
            call = call.replace(f"@{key}@", f"{key}_{i}")
        assert "@" not in call, call
        body += ["    t = fw_counter();", f"    {call};", "    t = fw_counter() - t;",
                 f"    dump('c', {i}, (const uint8_t *)&t, 4);",
                 f"    dump('y', {i}, (const uint8_t *)y_{i}, {cs.y.size});",
                 f"    dump('m', {i}, mask_{i}, {cs.mask.size});"]
    out += ["", "int main(void)", "{", "    uint32_t t;", *body, "    fw_exit(0);", "}"]
    return "\n".join(out) + "\n"


def run_kernel_firmware(cases: list[Case], target_name: str, out_dir: Path,
                        defines: tuple[str, ...] = ()) -> list[dict]:
    """Build the cases into one firmware, run it; per case its output, mask and
    instructions."""
    target = get_target(target_name)
    out_dir.mkdir(parents=True, exist_ok=True)
    main = out_dir / "main.c"
    main.write_text(_main_c(cases))
    objs = []
    for src in [main, target.directory / "startup.c", *(KERNELS_DIR / s for s in KERNEL_SOURCES)]:
        objs.append(out_dir / f"{src.stem}.o")
        cc = subprocess.run(target.compile_command(src, objs[-1], [KERNELS_DIR, FIRMWARE_DIR],
                                                   defines), capture_output=True, text=True)
        assert cc.returncode == 0, cc.stderr[-3000:]
    elf = out_dir / "kernels.elf"
    link = subprocess.run(target.link_command(objs, linker_script(target, target.part, out_dir),
                                              elf, out_dir / "kernels.map"),
                          capture_output=True, text=True)
    assert link.returncode == 0, link.stderr[-3000:]
    run = subprocess.run(target.qemu_command(elf, icount=True), capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return _parse(run.stdout + run.stderr, len(cases), target.counter_scale)  # (stderr: QEMU's
    # semihosting output)


def _parse(text: str, count: int, scale: int) -> list[dict]:
    got: list[dict] = [defaultdict(bytes) for _ in range(count)]
    for line in text.splitlines():
        tag, i, data = line.split()
        got[int(i)][tag] += bytes.fromhex(data)
    return [{"y": np.frombuffer(g["y"], np.int8), "mask": np.frombuffer(g["m"], np.uint8),
             "instructions": int.from_bytes(g["c"], "little") * scale} for g in got]


def _check(cases: list[Case], got: list[dict], build: str) -> None:
    for cs, g in zip(cases, got):
        assert np.array_equal(g["y"], cs.y.reshape(-1)), f"{cs.name}: {build} y"
        assert np.array_equal(g["mask"], cs.mask), f"{cs.name}: {build} mask"


@pytest.mark.parametrize("target", ["cortex-m4", "cortex-m7"])
def test_kernels_dsp_and_scalar_equal_host(target, tmp_path):
    cases = kernel_cases()
    dsp = run_kernel_firmware(cases, target, tmp_path / "dsp")
    scalar = run_kernel_firmware(cases, target, tmp_path / "scalar", ("TTE_SCALAR",))
    _check(cases, dsp, "DSP")
    _check(cases, scalar, "scalar")
    print(f"\n{target}: instructions per kernel call, scalar vs DSP")
    for cs, d, s in zip(cases, dsp, scalar):
        print(f"  {cs.name:44s} {s['instructions']:>9,} {d['instructions']:>9,}"
              f"  x{s['instructions'] / max(d['instructions'], 1):.2f}")


# What the DSP paths need of <arm_acle.h>, as C (ACLE's definitions), and fw_io.h on stdio: the
# same DSP code and firmware main then build on the host, under ASan and UBSan, whose
# redzones around each of the cases' arrays catch any read past an input.
ACLE_MODEL = r"""#include <stdint.h>
static inline int32_t __sxtb16(int32_t v)
{
    uint32_t u = (uint32_t)v;
    return (int32_t)((uint32_t)(uint16_t)(int8_t)u | (uint32_t)(uint16_t)(int8_t)(u >> 16) << 16);
}
static inline int32_t __smlad(int32_t a, int32_t b, int32_t acc)
{
    int32_t lo = (int16_t)(uint32_t)a * (int16_t)(uint32_t)b;
    int32_t hi = (int16_t)((uint32_t)a >> 16) * (int16_t)((uint32_t)b >> 16);
    return (int32_t)((uint32_t)acc + (uint32_t)lo + (uint32_t)hi);
}
"""
FW_IO_STDIO = r"""#include <stdio.h>
#include <stdlib.h>
#include "fw_io.h"
void fw_write0(const char *text) { fputs(text, stdout); }
void fw_exit(int status) { exit(status); }
uint32_t fw_counter(void) { return 0; }
"""


def test_dsp_paths_on_host_under_sanitizers(tmp_path):
    """The DSP paths' C (bounds, offsets, tails) built for the host with -D__ARM_FEATURE_DSP
    against the C model of the two intrinsics: ASan + UBSan clean, and the host's results."""
    cases = kernel_cases()
    (tmp_path / "arm_acle.h").write_text(ACLE_MODEL)
    (tmp_path / "main.c").write_text(_main_c(cases))
    (tmp_path / "fw_io.c").write_text(FW_IO_STDIO)
    exe = tmp_path / "kernels"
    cc = os.environ.get("CC", "gcc")
    build = subprocess.run(
        [cc, "-std=c99", "-O1", "-g", "-Wall", "-Wextra", "-Werror", "-ffp-contract=off",
         "-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-D__ARM_FEATURE_DSP",
         f"-I{tmp_path}", f"-I{KERNELS_DIR}", f"-I{FIRMWARE_DIR}", str(tmp_path / "main.c"),
         str(tmp_path / "fw_io.c"), *(str(KERNELS_DIR / s) for s in KERNEL_SOURCES), "-lm",
         "-o", str(exe)], capture_output=True, text=True)
    assert build.returncode == 0, build.stderr[-3000:]
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and not run.stderr, run.stderr[-3000:]
    _check(cases, _parse(run.stdout, len(cases), 1), "DSP on the host")


# ----------------------------------------------------------------- 2. MCUNet on Cortex-M4

def _conv_kind(g, node) -> str:
    """pointwise / depthwise kxk / conv kxk (stride s) of a conv2d_s8 node."""
    o, cg, kh, kw = g.values[node.inputs[1]].shape
    stride = node.attrs["strides"][0]
    if kh == kw == 1 and node.attrs["group"] == 1:
        return "pointwise 1x1"
    kind = "depthwise" if node.attrs["group"] > 1 and cg == 1 else "conv"
    return f"{kind} {kh}x{kw} s{stride}"
