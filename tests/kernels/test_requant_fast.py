"""The single-precision fast path of the half-even requantisation (kernels_c/conv_s8.c:
round_if_clear, half_even_f32) gives the double rule's value bit for bit.

The rule: v = sat32(rint(fl64((acc + bias) * scale)) + zero), half to even, as numpy computes
it (tte.quant.arith.requant_half_even). A tiny C harness includes conv_s8.c (so the static
helpers are callable), and runs over arrays:
- the fast decision alone (whether it decided, and its value),
- tte_requant_apply with the float table (fast, falling back to double) and without it
  (the double code, the TTE_SCALAR path),
against numpy's float64 rule. Inputs:
1. millions of (acc, bias, scale) with the real per-channel scales of the three MCU
   backbones (MCUNet-5FPS, MobileNetV2-w0.35, ProxylessNAS-w0.3), sums spread over the
   int8 range, far beyond it, up to the int32 limits and past them (acc + bias wraps);
2. exact ties: power-of-two scales with odd multiples of half their inverse, and sums
   whose product is a half-integer in double;
3. near ties: for a half-integer h and a sum S, the doubles s within a few ulps of h / S
   (fl64(S s) = h, or h +- a few ulps), where the float estimate cannot tell the sides;
4. hypothesis over every int32 acc, bias and zero point and scales across [2^-100, 2^100].
The fallback rate (outputs left to the double code) is printed (pytest -s).
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from targets.host.cbuild import KERNELS_DIR, build_c
from tte.frontends.mcu_graph import mcu_graph
from tte.frontends.mcu_pickle import load_mcu_pickle
from tte.ops.quantized import effective_scales

MCU = Path(__file__).resolve().parents[3] / "shared" / "models" / "mcu_imagenet"
BACKBONES = ("mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3")
I32_MIN, I32_MAX = -(1 << 31), (1 << 31) - 1

HARNESS = r"""
#include "conv_s8.c"

/* the fast decision alone: decided[i] = 1 and v[i], or decided[i] = 0 */
void hx_decide(const int32_t *acc, const int32_t *bias, const float *scale_f,
               const int32_t *zero, int32_t n, int32_t *v, uint8_t *decided)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        int32_t r = 0;
        decided[i] = (uint8_t)half_even_f32(acc[i], bias[i], scale_f[i], zero[i], &r);
        v[i] = r;
    }
}

/* tte_requant_apply, one channel per element: with_f = 1 passes the float table */
void hx_apply(const int32_t *acc, const int32_t *bias, const double *scale,
              const float *scale_f, const int32_t *zero, int32_t n, int32_t with_f, int32_t *v)
{
    int32_t i;
    for (i = 0; i < n; i++) {
        tte_requant r = {NULL, NULL, scale + i, 0, with_f ? scale_f + i : NULL};
        v[i] = tte_requant_apply(&r, 0, acc[i], bias + i, zero[i]);
    }
}

/* the residual add: decided[i] and the pre-clamp value (fast decision, else the double) */
int32_t hx_add_decide(const int8_t *a, const int8_t *b, int32_t n,
                      const tte_add_s8_double_params *p, int32_t *v, uint8_t *decided)
{
    float ka, kb;
    int32_t i;
    if (!add_fast_ok(p, &ka, &kb)) return 0;
    for (i = 0; i < n; i++) {
        int32_t r = 0;
        decided[i] = (uint8_t)add_f32(a[i], b[i], p, ka, kb, &r);
        v[i] = decided[i] ? r : add_f64(a[i], b[i], p);
    }
    return 1;
}
"""
HX = """
void hx_decide(const int32_t *acc, const int32_t *bias, const float *scale_f,
               const int32_t *zero, int32_t n, int32_t *v, uint8_t *decided);
void hx_apply(const int32_t *acc, const int32_t *bias, const double *scale,
              const float *scale_f, const int32_t *zero, int32_t n, int32_t with_f, int32_t *v);
int32_t hx_add_decide(const int8_t *a, const int8_t *b, int32_t n,
                      const tte_add_s8_double_params *p, int32_t *v, uint8_t *decided);
"""
# the add's parameter struct and kernel, as conv_s8.h declares them
CDEF = re.search(r"typedef struct \{[^}]*\} tte_add_s8_double_params;",
                 (KERNELS_DIR / "conv_s8.h").read_text()).group(0) + """
void tte_add_s8_double(const int8_t *a, const int8_t *b, int8_t *y, int32_t count,
                       tte_add_s8_double_params p, uint8_t *mask);
""" + HX


@pytest.fixture(scope="module")
def hx(tmp_path_factory):
    src = tmp_path_factory.mktemp("harness") / "requant_harness.c"
    # build_c's cache key covers the sources and headers, not a .c this one includes
    digest = hashlib.sha256((KERNELS_DIR / "conv_s8.c").read_bytes()).hexdigest()
    src.write_text(f"/* conv_s8.c {digest} */\n" + HARNESS)
    return build_c(CDEF, [src, *(KERNELS_DIR / s for s in ("quant.c", "split.c", "window.c"))],
                   header='#include "conv_s8.h"\n' + HX)


def reference(acc, bias, scale, zero) -> np.ndarray:
    """numpy's half-even rule in float64, saturated to int32 (arith.requant_half_even)."""
    s = np.asarray(acc, np.int64) + np.asarray(bias, np.int64)
    v = np.rint(s.astype(np.float64) * np.asarray(scale, np.float64)) + np.asarray(zero)
    return np.clip(v, I32_MIN, I32_MAX).astype(np.int64)


class Run:
    """One batch through the harness: the decision, the two apply paths, the reference."""

    def __init__(self, hx, acc, bias, scale, zero):
        ffi, lib = hx
        n = len(acc)
        self.acc = np.ascontiguousarray(acc, np.int32)
        self.bias = np.ascontiguousarray(bias, np.int32)
        self.scale = np.ascontiguousarray(scale, np.float64)
        self.scale_f = self.scale.astype(np.float32)  # nearest float, as codegen emits it
        self.zero = np.ascontiguousarray(np.broadcast_to(zero, (n,)), np.int32)
        ct = {"acc": "int32_t", "bias": "int32_t", "scale": "double", "scale_f": "float",
              "zero": "int32_t"}
        p = {k: ffi.from_buffer(f"{t}[]", getattr(self, k)) for k, t in ct.items()}
        self.decided_v = np.zeros(n, np.int32)
        self.decided = np.zeros(n, np.uint8)
        lib.hx_decide(p["acc"], p["bias"], p["scale_f"], p["zero"], n,
                      ffi.from_buffer("int32_t[]", self.decided_v),
                      ffi.from_buffer("uint8_t[]", self.decided))
        self.fast = np.zeros(n, np.int32)
        self.double = np.zeros(n, np.int32)
        for out, with_f in ((self.fast, 1), (self.double, 0)):
            lib.hx_apply(p["acc"], p["bias"], p["scale"], p["scale_f"], p["zero"], n, with_f,
                         ffi.from_buffer("int32_t[]", out))
        self.ref = reference(self.acc, self.bias, self.scale, self.zero)

    def check(self, what: str) -> float:
        """Every value equals the reference; returns the share the fast test decided."""
        d = self.decided.astype(bool)
        bad = np.flatnonzero(d & (self.decided_v != self.ref))
        assert bad.size == 0, (what, "fast decision", self._show(bad))
        bad = np.flatnonzero(self.fast != self.ref)
        assert bad.size == 0, (what, "tte_requant_apply with scale_f", self._show(bad))
        bad = np.flatnonzero(self.double != self.ref)
        assert bad.size == 0, (what, "tte_requant_apply in double", self._show(bad))
        return float(d.mean())

    def _show(self, idx):
        i = idx[:5]
        return [dict(acc=int(self.acc[j]), bias=int(self.bias[j]), scale=float(self.scale[j]).hex(),
                     zero=int(self.zero[j]), ref=int(self.ref[j]), fast=int(self.decided_v[j]))
                for j in i], f"{idx.size} wrong"


def real_scales() -> dict[str, np.ndarray]:
    """Every half-even conv's per-channel scale (s_x s_w / s_y in double, as codegen
    emits it) of each backbone."""
    out = {}
    for name in BACKBONES:
        path = MCU / f"{name}.pkl"
        if not path.exists():
            pytest.skip(f"{path} not present")
        g = mcu_graph(load_mcu_pickle(path), input_size=64)
        out[name] = np.concatenate([effective_scales(n.attrs) for n in g.nodes
                                    if n.op == "conv2d_s8" and n.attrs["rounding"] == "half_even"])
    return out


def split_sum(rng, s: np.ndarray, wrap_share: float = 0.05):
    """(acc, bias) int32 pairs with acc + bias = s exactly (|s| < 2^32 - 1); a share of
    them with acc and bias of one sign past the int32 range of their sum where possible."""
    s = np.asarray(s, np.int64)
    lo = np.maximum(I32_MIN, s - I32_MAX)  # bias range keeping acc = s - bias in int32
    hi = np.minimum(I32_MAX, s - I32_MIN)
    bias = lo + (rng.random(s.size) * (hi - lo + 1)).astype(np.int64)
    bias = np.minimum(bias, hi)
    # the real models: |acc| mostly below 2^20, bias anywhere up to the limits
    small = rng.random(s.size) < 0.5
    acc_small = rng.integers(-(1 << 20), 1 << 20, s.size)
    b2 = s - acc_small
    ok = small & (b2 >= I32_MIN) & (b2 <= I32_MAX)
    bias = np.where(ok, b2, bias)
    wrap = rng.random(s.size) < wrap_share  # acc + bias wraps int32 where the sum allows
    big = np.abs(s) > I32_MAX
    b3 = np.where(s > 0, I32_MAX, I32_MIN)
    bias = np.where(wrap & big, b3, bias)
    acc = s - bias
    assert np.all((acc >= I32_MIN) & (acc <= I32_MAX) & (bias >= I32_MIN) & (bias <= I32_MAX))
    return acc, bias


# ---------------------------------------------------------------- 1. the real scales

def test_real_scales_random_sums(hx):
    rng = np.random.default_rng(0)
    for name, scales in real_scales().items():
        n = 1_000_000
        sc = rng.choice(scales, n)
        # t = S * scale: mostly within the int8 output range, some far beyond, some at the
        # edges of the fast window (|x| ~ 2^21) and sums up to and past the int32 range
        kind = rng.random(n)
        t = np.where(kind < 0.7, rng.uniform(-300, 300, n),
                     np.where(kind < 0.9, rng.uniform(-3e4, 3e4, n),
                              np.exp(rng.uniform(0, np.log(2.0 ** 23), n))
                              * rng.choice([-1, 1], n)))
        s = np.clip(np.rint(t / sc), -(2 ** 32) + 2, 2 ** 32 - 2).astype(np.int64)
        huge = rng.random(n) < 0.05  # sums anywhere up to the limits (biases at int32 limits)
        s = np.where(huge, rng.integers(-(2 ** 32) + 2, 2 ** 32 - 2, n), s)
        acc, bias = split_sum(rng, s)
        zero = rng.integers(-128, 128, n)
        run = Run(hx, acc, bias, sc, zero)
        share = run.check(name)
        inner = np.abs(t) < 300
        inner_share = run.decided[inner & ~huge].mean()
        print(f"\n{name}: {scales.size} channel scales, {n:,} random sums: "
              f"{share:.4%} decided in float ({inner_share:.5%} of those within +-300)")
        assert inner_share > 0.999


def test_real_scales_every_channel_dense(hx):
    """Every real scale with every sum whose product lies within the int8 range and a bit
    beyond (|S s| <= 200, up to 64 sums a channel, evenly spread)."""
    for name, scales in real_scales().items():
        sc = np.unique(scales)
        lim = np.floor(200.0 / sc)
        steps = np.maximum(lim * 2 // 64, 1)
        k = np.arange(64)
        s = (-lim[:, None] + steps[:, None] * k[None, :]).astype(np.int64).ravel()
        s = np.clip(s, -(2 ** 32) + 2, 2 ** 32 - 2)
        acc, bias = split_sum(np.random.default_rng(1), s)
        Run(hx, acc, bias, np.repeat(sc, 64), 0).check(name + " dense")


# ---------------------------------------------------------------- 2. ties, 3. near ties

def test_exact_ties_power_of_two_scales(hx):
    """scale = 2^-k: S = (2m + 1) 2^(k-1) is an exact tie m + 1/2 (and S +- 1 is next to
    one); the float test must give these to the double code, which rounds to even."""
    rows = []
    rng = np.random.default_rng(2)
    for k in range(1, 31):
        lim = min(1 << 20, 1 << (31 - k))
        m = rng.integers(-lim, lim, 2000)
        m = np.concatenate([m, np.arange(-8, 8)])
        s = (2 * m + 1) * (1 << (k - 1))
        for ds in (-1, 0, 1):
            ss = s + ds
            ok = np.abs(ss) < 2 ** 32 - 1
            rows.append((ss[ok], np.full(ok.sum(), 2.0 ** -k)))
    s = np.concatenate([r[0] for r in rows])
    sc = np.concatenate([r[1] for r in rows])
    acc, bias = split_sum(rng, s)
    run = Run(hx, acc, bias, sc, 3)
    run.check("power-of-two ties")
    ties = (s.astype(np.float64) * sc) % 1 == 0.5
    assert ties.sum() > 60000 and not run.decided[ties].any()
    # halves go to even, both signs
    assert set(run.ref[ties] % 2) == {1}  # rint(m + 1/2) is even, + zero 3 is odd


def test_near_ties(hx):
    """For half-integers h and sums S, every double scale within 12 ulps of h / S: the
    product in double is h itself or a few ulps either side; the float estimate cannot
    see which side, so the fallback must decide."""
    rng = np.random.default_rng(3)
    n = 40000
    h = rng.integers(-200, 200, n) + 0.5
    h = np.where(rng.random(n) < 0.2, rng.integers(-(1 << 20), 1 << 20, n) + 0.5, h)
    s = rng.integers(1, 1 << 31, n) * rng.choice([-1, 1], n)
    s = np.where(rng.random(n) < 0.3, rng.integers(1, 1 << 12, n), s)
    base = h / s
    ok = (np.abs(base) >= 2.0 ** -100) & (np.abs(base) < 2.0 ** 100)
    h, s, base = h[ok], s[ok], base[ok]
    off = np.arange(-12, 13)
    sc = base[:, None].copy()
    scales = np.empty((base.size, off.size))
    for j, d in enumerate(off):  # nextafter d times
        x = base.copy()
        step = np.inf if d > 0 else -np.inf
        for _ in range(abs(d)):
            x = np.nextafter(x, step)
        scales[:, j] = x
    del sc
    S = np.repeat(s, off.size)
    scales = scales.ravel()
    acc, bias = split_sum(rng, S)
    run = Run(hx, acc, bias, scales, rng.integers(-128, 128, S.size))
    share = run.check("near ties")
    prod = S.astype(np.float64) * scales
    exact = prod == np.repeat(h, off.size)
    print(f"\nnear ties: {S.size:,} cases, {exact.sum():,} exact ties in double, "
          f"{share:.2%} decided in float")
    assert exact.sum() > 1000
    assert not run.decided[exact].any()


def test_float_and_double_sides_differ(hx):
    """Cases where fl32 of the scale moves the float product across the half-integer that
    the double product stays on (or the reverse): found among near ties, all must fall back
    or be right."""
    rng = np.random.default_rng(4)
    n = 400000
    h = rng.integers(-130, 130, n) + 0.5
    s = rng.integers(1, 1 << 24, n)
    sc = h / s * (1 + rng.uniform(-2.0 ** -22, 2.0 ** -22, n))
    acc, bias = split_sum(rng, s)
    run = Run(hx, acc, bias, sc, 0)
    run.check("float/double sides")
    xf = (s.astype(np.float32) * sc.astype(np.float32)).astype(np.float64)
    d = s * sc
    differ = np.rint(xf) != np.rint(d)
    print(f"\nsides: {differ.sum():,} of {n:,} cases round differently in float and double")
    assert differ.sum() > 100 and not run.decided[differ].any()


# ---------------------------------------------------------------- 4. hypothesis

I32 = st.integers(I32_MIN, I32_MAX)
SCALES = st.one_of(
    st.floats(2.0 ** -100, 2.0 ** 100), st.floats(-(2.0 ** 100), -(2.0 ** -100)),
    st.floats(1e-9, 0.2), st.just(0.0),
    st.integers(-40, 10).map(lambda k: 2.0 ** k),
    st.builds(lambda a, k: a * 2.0 ** k, st.integers(1, 1 << 12), st.integers(-40, -5)))


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(acc=I32, bias=I32, scale=SCALES, zero=I32)
@example(acc=I32_MAX, bias=I32_MAX, scale=2.0 ** -22, zero=0)          # wraps upward
@example(acc=I32_MIN, bias=I32_MIN, scale=2.0 ** -22, zero=0)          # wraps downward
@example(acc=3, bias=0, scale=0.5, zero=0)                            # 1.5 -> 2
@example(acc=5, bias=0, scale=0.5, zero=0)                            # 2.5 -> 2
@example(acc=-5, bias=0, scale=0.5, zero=0)                           # -2.5 -> -2
@example(acc=1 << 20, bias=0, scale=2.0, zero=I32_MAX)                 # saturates
@example(acc=-(1 << 20), bias=0, scale=2.0, zero=I32_MIN)
@example(acc=(1 << 20) - 1, bias=0, scale=2.0, zero=0)                 # |x| just under 2^21
@example(acc=1, bias=0, scale=2.0 ** -100, zero=-7)
@example(acc=I32_MAX, bias=I32_MAX, scale=2.0 ** 100, zero=0)          # x overflows float
def test_hypothesis_any_int32(hx, acc, bias, scale, zero):
    Run(hx, [acc], [bias], [scale], [zero]).check("hypothesis")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2 ** 32 - 1), k=st.integers(-60, 40), h=st.integers(-300, 300))
def test_hypothesis_scaled_ties(hx, seed, k, h):
    """S s = h + 1/2 exactly for dyadic scales a 2^k, and the sums around it."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 10, 64) | 1
    # (2h + 1) / 2 = S a 2^k  <=>  S = (2h + 1) 2^(-k-1) / a: exact where a divides it
    num = (2 * h + 1) * 2.0 ** (-k - 1)
    S = np.rint(num / a) + rng.integers(-2, 3, 64)
    ok = (np.abs(S) < 2 ** 32 - 1) & (S != 0)
    S, a = S[ok].astype(np.int64), a[ok]
    if S.size == 0:
        return
    acc, bias = split_sum(rng, S)
    Run(hx, acc, bias, a * 2.0 ** k, 0).check("scaled ties")


# ---------------------------------------------------------------- 5. the residual add

def add_reference(a, b, p) -> np.ndarray:
    """The MCU backbones' add before its clamp, numpy float64 (tte/ops/quantized.py)."""
    total = ((a.astype(np.float64) - p["a_zero"]) * p["a_scale"]
             + (b.astype(np.float64) - p["b_zero"]) * p["b_scale"])
    return np.clip(np.rint(total / p["out_scale"]) + p["out_zero"], I32_MIN,
                   I32_MAX).astype(np.int64)


def check_add(hx, a, b, p, what, expect_fast=True) -> np.ndarray:
    """Pre-clamp values (decided in float or not) and the kernel's y and mask equal numpy's;
    returns the decided flags."""
    ffi, lib = hx
    a = np.ascontiguousarray(a, np.int8)
    b = np.ascontiguousarray(b, np.int8)
    n = a.size
    prm = {"act_min": -128, "act_max": 127, **p}
    prm = {k: (int(v) if "zero" in k or "act" in k else float(v)) for k, v in prm.items()}
    cp = ffi.new("tte_add_s8_double_params *", prm)
    v = np.zeros(n, np.int32)
    decided = np.zeros(n, np.uint8)
    fast = lib.hx_add_decide(ffi.from_buffer("int8_t[]", a), ffi.from_buffer("int8_t[]", b), n,
                             cp, ffi.from_buffer("int32_t[]", v),
                             ffi.from_buffer("uint8_t[]", decided))
    assert fast == expect_fast, what
    ref = add_reference(a, b, prm)
    if fast:
        bad = np.flatnonzero(v != ref)
        assert bad.size == 0, (what, prm, [(int(a[j]), int(b[j]), int(v[j]), int(ref[j]))
                                           for j in bad[:5]], f"{bad.size} wrong")
    y = np.zeros(n, np.int8)
    mask = np.zeros((n + 7) // 8, np.uint8)
    lib.tte_add_s8_double(ffi.from_buffer("int8_t[]", a), ffi.from_buffer("int8_t[]", b),
                          ffi.from_buffer("int8_t[]", y), n, cp[0],
                          ffi.from_buffer("uint8_t[]", mask))
    lo, hi = prm["act_min"], prm["act_max"]
    assert np.array_equal(y, np.clip(ref, lo, hi).astype(np.int8)), what
    assert np.array_equal(mask, np.packbits((ref >= lo) & (ref <= hi), bitorder="little")), what
    return decided.astype(bool)


ALL_A, ALL_B = (g.ravel().astype(np.int8) for g in np.meshgrid(np.arange(-128, 128),
                                                              np.arange(-128, 128)))


def real_adds() -> list[tuple[str, dict]]:
    out = []
    for name in BACKBONES:
        path = MCU / f"{name}.pkl"
        if not path.exists():
            pytest.skip(f"{path} not present")
        g = mcu_graph(load_mcu_pickle(path), input_size=64)
        out += [(name, {k: n.attrs[k] for k in ("a_scale", "b_scale", "out_scale", "a_zero",
                                                "b_zero", "out_zero", "act_min", "act_max")})
                for n in g.nodes if n.op == "add_s8"]
    return out


def test_add_real_params_every_input_pair(hx):
    """Every (a, b) of int8 for each residual add of the three backbones (30 adds)."""
    adds = real_adds()
    decided = [check_add(hx, ALL_A, ALL_B, p, name) for name, p in adds]
    share = np.mean([d.mean() for d in decided])
    print(f"\nresidual adds: {len(adds)} of the backbones x 65,536 input pairs, "
          f"{share:.4%} decided in float")
    assert share > 0.999


def test_add_random_params_and_ties(hx):
    rng = np.random.default_rng(5)
    undecided_ties = 0
    for trial in range(60):
        if trial % 3 == 0:  # dyadic scales: many exact ties (A p + B q) / 2^m = h + 1/2
            m = int(rng.integers(1, 8))
            p = {"a_scale": float(rng.integers(1, 64)) / 2 ** m,
                 "b_scale": float(rng.integers(1, 64)) / 2 ** m,
                 "out_scale": float(2.0 ** int(rng.integers(-2, 3)))}
        elif trial % 3 == 1:  # near ties: those scales moved by a few ulps
            m = int(rng.integers(1, 8))
            p = {"a_scale": np.nextafter(float(rng.integers(1, 64)) / 2 ** m, 1.0),
                 "b_scale": float(rng.integers(1, 64)) / 2 ** m,
                 "out_scale": np.nextafter(float(2.0 ** int(rng.integers(-2, 3))), 0.0)}
        else:  # the backbones' kind of scales
            p = {k: float(np.exp(rng.uniform(-5, -1))) for k in ("a_scale", "b_scale",
                                                                 "out_scale")}
        p.update(a_zero=int(rng.integers(-128, 128)), b_zero=int(rng.integers(-128, 128)),
                 out_zero=int(rng.integers(-128, 128)))
        d = check_add(hx, ALL_A, ALL_B, p, f"trial {trial}")
        total = ((ALL_A.astype(np.float64) - p["a_zero"]) * p["a_scale"]
                 + (ALL_B.astype(np.float64) - p["b_zero"]) * p["b_scale"]) / p["out_scale"]
        ties = total % 1 == 0.5
        assert not d[ties].any()
        undecided_ties += int(ties.sum())
    assert undecided_ties > 10000  # the dyadic trials have many


def test_add_outside_the_fast_ranges_uses_double(hx):
    base = {"a_scale": 0.05, "b_scale": 0.04, "out_scale": 0.06, "a_zero": 3, "b_zero": -7,
            "out_zero": 1}
    for change in ({"a_zero": 70000}, {"b_zero": -70000}, {"a_scale": 1e-200},
                   {"out_scale": 1e-40}, {"out_scale": 0.0}, {"b_scale": 1e200}):
        p = {**base, **change}
        if p["out_scale"] == 0.0 or abs(p["a_zero"]) > 65536 or abs(p["b_zero"]) > 65536:
            # the reference itself: only the kernel's y and mask (numpy warns on /0)
            with np.errstate(all="ignore"):
                check_add(hx, ALL_A[:4096], ALL_B[:4096], p, str(change), expect_fast=False)
        else:
            check_add(hx, ALL_A, ALL_B, p, str(change), expect_fast=False)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(sa=st.floats(2.0 ** -30, 2.0 ** 10), sb=st.floats(2.0 ** -30, 2.0 ** 10),
       so=st.floats(2.0 ** -30, 2.0 ** 10), za=st.integers(-65536, 65536),
       zb=st.integers(-65536, 65536), zo=I32, seed=st.integers(0, 2 ** 32 - 1))
def test_add_hypothesis(hx, sa, sb, so, za, zb, zo, seed):
    rng = np.random.default_rng(seed)
    a = rng.integers(-128, 128, 512).astype(np.int8)
    b = rng.integers(-128, 128, 512).astype(np.int8)
    p = {"a_scale": sa, "b_scale": sb, "out_scale": so, "a_zero": za, "b_zero": zb,
         "out_zero": zo}
    r = np.array([sa / so, sb / so])
    check_add(hx, a, b, p, "hypothesis",
              expect_fast=bool(np.all((r >= 2.0 ** -100) & (r <= 2.0 ** 100))))
