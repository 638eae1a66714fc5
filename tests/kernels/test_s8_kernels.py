"""int8 kernels (kernels_c/quant.c, conv_s8.c) with TFLite reference-kernel semantics.

Three levels, all exact (integer paths, no tolerance):
1. tte_requantize against the numpy int64 model of MultiplyByQuantizedMultiplier
   (tte.quant.arith.requantize) over the whole int32 range and shifts -31..30;
2. every kernel against its numpy reference (tte.quant.arith) on random geometries, including
   biases at the int32 limits (wrap-around, as TFLite);
3. the oracle: every CONV_2D / DEPTHWISE_CONV_2D / FULLY_CONNECTED / ADD / AVERAGE_POOL_2D
   node of real models run in tflite-micro (kPreserveAllTensors), recomputed from the
   interpreter's own op inputs by the C kernel (and by the numpy reference), with the
   multipliers prepared as TFLite's kernels prepare them. Every element must be equal.
   Counts of compared layers / elements are printed (pytest -s) per model.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from . import ckernels
from tte.quant import arith as ta

MODELS = Path(__file__).resolve().parents[3] / "shared" / "models"
I32 = st.integers(ta.INT32_MIN, ta.INT32_MAX)
SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(scope="module")
def k():
    return ckernels.load()


def _p(ffi, a, ctype):
    return ffi.cast(ctype + " *", a.ctypes.data) if a is not None else ffi.NULL


def c_conv(k, x, w, bias, win, out_hw, mult, shift, in_off, out_off, lo, hi):
    ffi, lib = k
    x = np.ascontiguousarray(x, np.int8)
    w = np.ascontiguousarray(w, np.int8)
    bias = None if bias is None else np.ascontiguousarray(bias, np.int32)
    mult = np.ascontiguousarray(np.broadcast_to(mult, (w.shape[0],)), np.int32)
    shift = np.ascontiguousarray(np.broadcast_to(shift, (w.shape[0],)), np.int32)
    y = np.empty((x.shape[0], w.shape[0]) + tuple(out_hw), np.int8)
    lib.tte_conv2d_s8(_p(ffi, x, "int8_t"), ckernels.dims4(x.shape), _p(ffi, w, "int8_t"),
                      _p(ffi, bias, "int32_t"), _p(ffi, y, "int8_t"), ckernels.dims4(y.shape),
                      win, _requant(ffi, mult, shift, 1),
                      {"input_offset": in_off, "output_offset": out_off, "act_min": lo,
                       "act_max": hi}, ffi.NULL, ffi.new("tte_split *")[0])
    return y


def _requant(ffi, mult, shift, per_channel):
    """tte_requant over arrays the caller keeps alive."""
    return {"multiplier": _p(ffi, mult, "int32_t"), "shift": _p(ffi, shift, "int32_t"),
            "scale": ffi.NULL, "per_channel": per_channel}


def c_linear(k, x, w, bias, mult, shift, f_off, in_off, out_off, lo, hi):
    ffi, lib = k
    x = np.ascontiguousarray(x, np.int8)
    w = np.ascontiguousarray(w, np.int8)
    bias = None if bias is None else np.ascontiguousarray(bias, np.int32)
    y = np.empty((x.shape[0], w.shape[0]), np.int8)
    mult, shift = np.array([mult], np.int32), np.array([shift], np.int32)
    lib.tte_linear_s8(_p(ffi, x, "int8_t"), x.shape[0], x.shape[1], _p(ffi, w, "int8_t"),
                      _p(ffi, bias, "int32_t"), _p(ffi, y, "int8_t"), w.shape[0],
                      _requant(ffi, mult, shift, 0), f_off,
                      {"input_offset": in_off, "output_offset": out_off, "act_min": lo,
                       "act_max": hi}, ffi.NULL)
    return y


def c_add(k, a, b, prm):
    ffi, lib = k
    a = np.ascontiguousarray(a, np.int8)
    b = np.ascontiguousarray(b, np.int8)
    y = np.empty_like(a)
    lib.tte_add_s8(_p(ffi, a, "int8_t"), _p(ffi, b, "int8_t"), _p(ffi, y, "int8_t"), a.size,
                   prm, ffi.NULL)
    return y


def c_pool(k, name, x, win, out_hw, lo=-128, hi=127):
    ffi, lib = k
    x = np.ascontiguousarray(x, np.int8)
    y = np.empty(x.shape[:2] + tuple(out_hw), np.int8)
    extra = (0,) if "avg" in name else ()  # TFLite rounding, not half-even
    getattr(lib, name)(_p(ffi, x, "int8_t"), ckernels.dims4(x.shape), _p(ffi, y, "int8_t"),
                       ckernels.dims4(y.shape), win, lo, hi, *extra)
    return y


# ---------------------------------------------------------------- 1. requantisation

@settings(max_examples=3000, deadline=None)
@given(x=I32, m=I32, shift=st.integers(-31, 30))
@example(x=ta.INT32_MIN, m=ta.INT32_MIN, shift=0)   # the saturating case
@example(x=-(1 << 30), m=ta.INT32_MIN, shift=1)     # reaches it through the left shift
@example(x=ta.INT32_MAX, m=ta.INT32_MAX, shift=30)  # left shift wraps
@example(x=ta.INT32_MIN, m=ta.INT32_MAX, shift=-31)
@example(x=-1032852841, m=1578349059, shift=0)      # double and single rounding differ
@example(x=-3, m=1 << 30, shift=-1)                 # exact ties, both signs
@example(x=3, m=1 << 30, shift=-1)
def test_requantize_matches_numpy(k, x, m, shift):
    assert k[1].tte_requantize(x, m, shift) == int(ta.requantize(x, m, shift))


def test_requantize_bulk_random(k):
    rng = np.random.default_rng(0)
    n = 20000
    edge = np.array([ta.INT32_MIN, ta.INT32_MIN + 1, -1, 0, 1, ta.INT32_MAX - 1, ta.INT32_MAX,
                     1 << 30, -(1 << 30)], np.int64)
    x = np.where(rng.random(n) < 0.1, rng.choice(edge, n),
                 rng.integers(ta.INT32_MIN, ta.INT32_MAX, n, endpoint=True))
    m = np.where(rng.random(n) < 0.5, rng.integers(1 << 30, ta.INT32_MAX, n, endpoint=True),
                 rng.integers(ta.INT32_MIN, ta.INT32_MAX, n, endpoint=True))
    s = rng.integers(-31, 30, n, endpoint=True)
    ref = ta.requantize(x, m, s)
    lib = k[1]
    got = np.array([lib.tte_requantize(int(a), int(b), int(c)) for a, b, c in zip(x, m, s)])
    assert np.array_equal(got, ref)


def test_requantize_reference_semantics():
    """Hand-worked values of the two rounding steps (M = 0.5): SaturatingRoundingDoublingHigh-
    Mul breaks ties upward (2.5 -> 3, -2.5 -> -2, gemmlowp's nudge 1 - 2^30 for negatives),
    RoundingDivideByPOT breaks ties away from zero (2.5 -> 3, -2.5 -> -3)."""
    half = 1 << 30
    assert ta.requantize([5, -5, 6, -6, 7, -7], half, 0).tolist() == [3, -2, 3, -3, 4, -3]
    assert ta.requantize([10, -10, 6, -6], half, -1).tolist() == [3, -3, 2, -2]
    # double rounding: 5 * 0.25 = 1.25, but srdhm gives 3 (2.5 up) and 3 / 2 = 1.5 -> 2
    assert int(ta.requantize(5, half, -1)) == 2
    assert int(ta.requantize(-5, half, -1)) == -1  # -2.5 -> -2, then -1.0


@given(st.floats(min_value=1e-12, max_value=1e6, allow_nan=False, allow_infinity=False))
@settings(max_examples=500, deadline=None)
def test_quantize_multiplier_properties(real):
    m, s = ta.quantize_multiplier(real)
    if s == 0 and m == 0:
        assert real < 2.0 ** -31
        return
    assert (1 << 30) <= m <= ta.INT32_MAX
    assert abs(m * 2.0 ** (s - 31) - real) <= real * 2.0 ** -31
    _, e = math.frexp(real)
    assert s in (e, e + 1)


def test_quantize_multiplier_values():
    assert ta.quantize_multiplier(0.0) == (0, 0)
    assert ta.quantize_multiplier(0.5) == (1 << 30, 0)
    assert ta.quantize_multiplier(1.0) == (1 << 30, 1)
    assert ta.quantize_multiplier(0.25) == (1 << 30, -1)
    # q * 2^31 rounds up to 2^31: fix-up halves it and bumps the shift
    assert ta.quantize_multiplier(1.0 - 2.0 ** -40) == (1 << 30, 1)
    assert ta.quantize_multiplier(2.0 ** -40) == (0, 0)  # shift < -31 flushes to zero
    # round half away from zero of q * 2^31 (q*2^31 = 2^30 + 0.5 exactly)
    assert ta.quantize_multiplier((2.0 ** 30 + 0.5) / 2.0 ** 31) == ((1 << 30) + 1, 0)


# ---------------------------------------------------------------- 2. kernels vs numpy

def _rand_s8(rng, shape):
    return rng.integers(-128, 127, size=shape, endpoint=True).astype(np.int8)


def _rand_requant(rng, n, acc_scale):
    """Per-channel (multiplier, shift) from plausible effective scales ~ 1/acc_scale."""
    reals = np.exp(rng.uniform(-3, 3, n)) / acc_scale
    ms = [ta.quantize_multiplier(r) for r in reals]
    return np.array([a for a, _ in ms], np.int32), np.array([b for _, b in ms], np.int32)


def _bias(rng, n, extreme):
    if extreme:  # MCU backbones: biases at the int32 limits; sums wrap as in TFLite
        return rng.choice(np.array([ta.INT32_MIN, ta.INT32_MIN + 7, ta.INT32_MAX - 3,
                                    ta.INT32_MAX], np.int64), n).astype(np.int32)
    return rng.integers(-50000, 50000, n).astype(np.int32)


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 2), groups=st.integers(1, 3),
       cg=st.integers(1, 3), og=st.integers(1, 3), depthwise=st.booleans(),
       kh=st.integers(1, 4), kw=st.integers(1, 4), sh=st.integers(1, 3), sw=st.integers(1, 3),
       dh=st.integers(1, 2), dw=st.integers(1, 2), pads=st.tuples(*[st.integers(0, 2)] * 4),
       h=st.integers(1, 9), w=st.integers(1, 9), use_bias=st.integers(0, 2),
       act=st.sampled_from([ta.ACT_NONE, ta.ACT_RELU, ta.ACT_RELU6]))
def test_conv2d_s8_matches_numpy(k, seed, n, groups, cg, og, depthwise, kh, kw, sh, sw, dh, dw,
                                 pads, h, w, use_bias, act):
    rng = np.random.default_rng(seed)
    if depthwise:  # groups = C, depth multiplier og
        cg, groups = 1, groups + 1
    c, o = cg * groups, og * groups
    oh = (h + pads[0] + pads[2] - dh * (kh - 1) - 1) // sh + 1
    ow = (w + pads[1] + pads[3] - dw * (kw - 1) - 1) // sw + 1
    if oh < 1 or ow < 1:
        return
    x = _rand_s8(rng, (n, c, h, w))
    wt = _rand_s8(rng, (o, cg, kh, kw))
    bias = None if use_bias == 0 else _bias(rng, o, use_bias == 2)
    mult, shift = _rand_requant(rng, o, 128.0 * 128 * cg * kh * kw / 50)
    in_off, out_off = int(rng.integers(-127, 128)), int(rng.integers(-128, 127))
    lo, hi = ta.activation_range(act, float(rng.uniform(0.01, 0.1)), out_off)
    win = ckernels.window((kh, kw), (sh, sw), pads, (dh, dw), groups)
    ref = ta.conv2d_s8(x, wt, bias, win, (oh, ow), mult, shift, in_off, out_off, lo, hi)
    got = c_conv(k, x, wt, bias, win, (oh, ow), mult, shift, in_off, out_off, lo, hi)
    assert np.array_equal(got, ref)


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 3), kk=st.integers(1, 70),
       m=st.integers(1, 20), use_bias=st.integers(0, 2), f_off=st.integers(-20, 20),
       act=st.sampled_from([ta.ACT_NONE, ta.ACT_RELU, ta.ACT_RELU6]))
def test_linear_s8_matches_numpy(k, seed, n, kk, m, use_bias, f_off, act):
    rng = np.random.default_rng(seed)
    x, w = _rand_s8(rng, (n, kk)), _rand_s8(rng, (m, kk))
    bias = None if use_bias == 0 else _bias(rng, m, use_bias == 2)
    mult, shift = _rand_requant(rng, 1, 128.0 * 128 * kk / 50)
    in_off, out_off = int(rng.integers(-127, 128)), int(rng.integers(-128, 127))
    lo, hi = ta.activation_range(act, 0.05, out_off)
    ref = ta.linear_s8(x, w, bias, mult[0], shift[0], f_off, in_off, out_off, lo, hi)
    got = c_linear(k, x, w, bias, mult[0], shift[0], f_off, in_off, out_off, lo, hi)
    assert np.array_equal(got, ref)


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), size=st.integers(1, 300),
       scales=st.tuples(*[st.floats(1e-3, 1.0)] * 3), zps=st.tuples(*[st.integers(-128, 127)] * 3),
       act=st.sampled_from([ta.ACT_NONE, ta.ACT_RELU, ta.ACT_RELU6]))
def test_add_s8_matches_numpy(k, seed, size, scales, zps, act):
    rng = np.random.default_rng(seed)
    a, b = _rand_s8(rng, size), _rand_s8(rng, size)
    prm = ta.add_params(scales[0], zps[0], scales[1], zps[1], scales[2], zps[2], act)
    assert np.array_equal(c_add(k, a, b, prm), ta.add_s8(a, b, prm))


@SETTINGS
@given(seed=st.integers(0, 2 ** 32 - 1), n=st.integers(1, 2), c=st.integers(1, 4),
       kh=st.integers(1, 5), kw=st.integers(1, 5), sh=st.integers(1, 3), sw=st.integers(1, 3),
       pads=st.tuples(*[st.integers(0, 2)] * 4), h=st.integers(1, 10), w=st.integers(1, 10),
       extra=st.tuples(st.integers(0, 1), st.integers(0, 1)), clamp=st.booleans(),
       kind=st.sampled_from(["avg", "max"]))
def test_pool_s8_matches_numpy(k, seed, n, c, kh, kw, sh, sw, pads, h, w, extra, clamp, kind):
    rng = np.random.default_rng(seed)
    pads = tuple(min(p, kk - 1) for p, kk in zip(pads, (kh, kw, kh, kw)))
    oh = (h + pads[0] + pads[2] - kh) // sh + 1 + extra[0]  # + ceil-mode-like overhang
    ow = (w + pads[1] + pads[3] - kw) // sw + 1 + extra[1]
    if oh < 1 or ow < 1:
        return
    x = _rand_s8(rng, (n, c, h, w))
    lo, hi = (-20, 90) if clamp else (-128, 127)
    win = ckernels.window((kh, kw), (sh, sw), pads)
    ref = (ta.avg_pool2d_s8 if kind == "avg" else ta.max_pool2d_s8)(x, win, (oh, ow), lo, hi)
    got = c_pool(k, f"tte_{kind}_pool2d_s8", x, win, (oh, ow), lo, hi)
    assert np.array_equal(got, ref)


def test_avg_pool_rounding_hand_values(k):
    """(sum +- count/2) / count toward zero: 2.5 -> 3, -2.5 -> -3, -2.4 -> -2."""
    win = ckernels.window((1, 2), (1, 2))
    x = np.array([2, 3, -2, -3, -2, -2, 127, 127, -128, -127], np.int8).reshape(1, 1, 1, 10)
    want = [3, -3, -2, 127, -128]
    assert c_pool(k, "tte_avg_pool2d_s8", x, win, (1, 5)).ravel().tolist() == want
    assert ta.avg_pool2d_s8(x, win, (1, 5)).ravel().tolist() == want


# ---------------------------------------------------------------- 3. tflite-micro oracle

ORACLE_MODELS = ["mlperf_tiny/vww_96_int8.tflite", "mlperf_tiny/resnet8_int8.tflite",
                 "mlperf_tiny/kws_ref_model.tflite", "mlperf_tiny/ad01_int8.tflite",
                 "mlperf_tiny/str_ww_ref_model.tflite", "tflm/person_detect.tflite",
                 "tflm/micro_speech_quantized.tflite", "tflm/hello_world_int8.tflite"]
CHECKED_OPS = ("CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED", "ADD", "AVERAGE_POOL_2D",
               "MAX_POOL_2D")


def _same_pad(size, k, stride, dil, out):
    total = max((out - 1) * stride + (k - 1) * dil + 1 - size, 0)
    return total // 2, total - total // 2


def _window(x_hw, y_hw, kh, kw, sh, sw, dh=1, dw=1, groups=1):
    pt, pb = _same_pad(x_hw[0], kh, sh, dh, y_hw[0])
    pl, pr = _same_pad(x_hw[1], kw, sw, dw, y_hw[1])
    return ckernels.window((kh, kw), (sh, sw), (pt, pl, pb, pr), (dh, dw), groups)


def run_oracle(k, path: Path, seed: int):
    """Yield (op name, node index, C output, numpy output, TFLM output) for every checked
    node of the model, on one random int8 input."""
    runtime = pytest.importorskip("tflite_micro").runtime
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as fb

    m = fb.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    opname = {v: kk for kk, v in vars(fb.BuiltinOperator).items() if not kk.startswith("_")}
    it = runtime.Interpreter.from_file(
        str(path), intrepreter_config=runtime.InterpreterConfig.kPreserveAllTensors)
    d = it.get_input_details(0)
    rng = np.random.default_rng(seed)
    it.set_input(rng.integers(-128, 127, size=d["shape"], endpoint=True).astype(d["dtype"]), 0)
    it.invoke()
    sg = m.subgraphs[0]

    def q(i):
        qq = sg.tensors[i].quantization
        return np.asarray(qq.scale, np.float32), np.asarray(qq.zeroPoint, np.int64)

    def act_t(i):
        return it.GetTensor(int(i), 0)["tensor_data"]

    def const(i, dtype):
        return m.buffers[sg.tensors[i].buffer].data.view(dtype).reshape(
            sg.tensors[i].shape.tolist())

    for node, op in enumerate(sg.operators):
        oc = m.operatorCodes[op.opcodeIndex]
        name = opname[max(oc.builtinCode, oc.deprecatedBuiltinCode)]
        if name not in CHECKED_OPS:
            continue
        opt = op.builtinOptions
        ins, out = op.inputs.tolist(), int(op.outputs[0])
        if sg.tensors[ins[0]].type != fb.TensorType.INT8:
            continue
        want = act_t(out)
        (s_in,), (z_in,) = q(ins[0])
        (s_out,), (z_out,) = q(out)
        lo, hi = ta.activation_range(opt.fusedActivationFunction, s_out, z_out)
        x = act_t(ins[0])
        if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            xc = x.transpose(0, 3, 1, 2)
            w = const(ins[1], np.int8)
            if name == "CONV_2D":          # OHWI -> OIHW
                wc = w.transpose(0, 3, 1, 2)
                groups = xc.shape[1] // w.shape[3]
            else:                          # [1, KH, KW, C*dm] -> [C*dm, 1, KH, KW]
                wc = w[0].transpose(2, 0, 1)[:, None]
                groups = xc.shape[1]
            bias = const(ins[2], np.int32) if len(ins) > 2 and ins[2] >= 0 else None
            s_w, _ = q(ins[1])
            s_w = np.broadcast_to(s_w, (wc.shape[0],))
            # PopulateConvolutionQuantizationParams: double(s_in) * double(s_w[c]) / double(s_out)
            ms = [ta.quantize_multiplier(float(s_in) * float(sw) / float(s_out)) for sw in s_w]
            mult = np.array([a for a, _ in ms], np.int32)
            shift = np.array([b for _, b in ms], np.int32)
            y_hw = want.shape[1:3]
            win = _window(xc.shape[2:], y_hw, wc.shape[2], wc.shape[3], opt.strideH, opt.strideW,
                          opt.dilationHFactor, opt.dilationWFactor, groups)
            args = (xc, wc, bias, win, y_hw, mult, shift, -int(z_in), int(z_out), lo, hi)
            got = c_conv(k, *args).transpose(0, 2, 3, 1)
            ref = ta.conv2d_s8(*args).transpose(0, 2, 3, 1)
        elif name == "FULLY_CONNECTED":
            w = const(ins[1], np.int8)
            xf = x.reshape(-1, w.shape[1])
            bias = const(ins[2], np.int32) if len(ins) > 2 and ins[2] >= 0 else None
            (s_w,), (z_w,) = q(ins[1])  # FC weights are per-tensor in these models
            # GetQuantizedConvolutionMultipler: double(s_in) * double(s_w) / double(s_out).
            # (Older TFLite multiplied the scales in float32 first; on these models both give
            # identical outputs, whereas for CONV the float32 product mismatches 2 elements.)
            mult, shift = ta.quantize_multiplier(float(s_in) * float(s_w) / float(s_out))
            args = (xf, w, bias, mult, shift, -int(z_w), -int(z_in), int(z_out), lo, hi)
            got, ref = c_linear(k, *args), ta.linear_s8(*args)
            want = want.reshape(got.shape)
        elif name == "ADD":
            b = act_t(ins[1])
            assert b.shape == x.shape, "broadcasting ADD is not supported"
            (s_b,), (z_b,) = q(ins[1])
            prm = ta.add_params(s_in, z_in, s_b, z_b, s_out, z_out, opt.fusedActivationFunction)
            got, ref = c_add(k, x, b, prm), ta.add_s8(x, b, prm)
        else:  # AVERAGE_POOL_2D / MAX_POOL_2D
            xc = x.transpose(0, 3, 1, 2)
            y_hw = want.shape[1:3]
            win = _window(xc.shape[2:], y_hw, opt.filterHeight, opt.filterWidth, opt.strideH,
                          opt.strideW)
            kind = "avg" if name == "AVERAGE_POOL_2D" else "max"
            got = c_pool(k, f"tte_{kind}_pool2d_s8", xc, win, y_hw, lo, hi).transpose(0, 2, 3, 1)
            ref = (ta.avg_pool2d_s8 if kind == "avg" else ta.max_pool2d_s8)(
                xc, win, y_hw, lo, hi).transpose(0, 2, 3, 1)
        yield name, node, got, ref, want


@pytest.mark.parametrize("model", ORACLE_MODELS)
def test_tflite_micro_oracle(k, model):
    path = MODELS / model
    if not path.exists():
        pytest.skip(f"{path} not present")
    pytest.importorskip("tflite_micro")
    layers, elements, bad = 0, 0, []
    per_op: dict[str, int] = {}
    for seed in range(2):
        for name, node, got, ref, want in run_oracle(k, path, seed):
            layers += 1
            elements += want.size
            per_op[name] = per_op.get(name, 0) + 1
            nc = int(np.count_nonzero(got != want))
            nr = int(np.count_nonzero(ref != want))
            if nc or nr:
                bad.append((seed, node, name, nc, nr, want.size))
    print(f"\n{model}: {layers} layers ({per_op}), {elements} elements compared "
          f"over 2 seeds, mismatching layers: {len(bad)}")
    assert layers > 0
    assert not bad, bad
