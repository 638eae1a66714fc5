"""Self-tests of tests/jax_qtrain_oracle.py, the JAX oracle of int8 training gradients.

1. Its forward equals tests/mcu_reference.py bit for bit (every conv, residual add and the
   pool) on the three published backbones, at 128x128 and at a smaller input.
2. Its gradients follow the documented rules (half-even forward, straight-through backward,
   clamp mask inclusive of -128 and 127): a hand-written numpy backward of a tiny McuModel
   (1x1, 3x3 strided, depthwise, residual, feature_mix) and the closed form of one 1x1 conv
   with designed boundary and tie cases.
3. The QAS and real-domain relations between the gradients it reports.
"""
from __future__ import annotations

import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests import jax_qtrain_oracle as oracle
from tests import mcu_reference as ref
from tte.frontends.mcu_pickle import (McuBlock, McuConv, McuIdentityResidual, McuModel,
                                      load_mcu_pickle)

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models" / "mcu_imagenet"
MODEL_NAMES = ("mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3")
_MODELS: dict[str, McuModel] = {}


def _model(name: str) -> McuModel:
    path = MODELS_DIR / f"{name}.pkl"
    if not path.exists():
        pytest.skip(f"{path} not present")
    if name not in _MODELS:
        _MODELS[name] = load_mcu_pickle(path)
    return _MODELS[name]


def _image(size: int, seed: int, batch: int | None = None) -> np.ndarray:
    shape = (3, size, size) if batch is None else (batch, 3, size, size)
    return np.random.default_rng(seed).uniform(-1, 1, shape)


# --------------------------------------------------------------------------------------
# 1. forward == mcu_reference, exactly
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [128, 64])
@pytest.mark.parametrize("name", MODEL_NAMES)
def test_forward_equals_reference_exactly(name, size):
    model = _model(name)
    image_q = oracle.quantize_image(model, _image(size, seed=size))
    if size == 128:  # the oracle quantizes the input as the reference does
        assert np.array_equal(image_q, ref.quantize_image(model, _image(size, seed=size)))
    want: list = []
    want_logits = ref.forward_quantized(model, image_q, want)
    got: list = []
    start = time.perf_counter()
    logits, pooled = oracle.quantized_forward(model, image_q, trace=got)
    elapsed = time.perf_counter() - start
    # same ops in the same order (the oracle drops the classifier), equal int8 tensors
    assert [n for n, _ in got] == [n for n, _ in want][:-1]
    for (n, a), (_, b) in zip(got, want):
        assert a.shape == b.shape and np.array_equal(a, b), f"{name} {size}: {n} differs"
    assert pooled.dtype == np.int8 and np.array_equal(pooled, dict(want)["avg_pool"].ravel())
    # without a head, the logits are the original classifier before its requantization:
    # logits = x_scale * w_scale[c] * acc[c] with acc an integer, and requantizing that acc
    # gives the reference's int8 logits
    cls = model.classifier
    acc = logits / (cls.x_scale * cls.w_scales)
    assert np.abs(acc - np.round(acc)).max() < 1e-6
    requant = np.clip(np.round(np.round(acc) * ref_multiplier(cls)) + cls.y_zero, -128, 127)
    assert np.array_equal(requant, want_logits)
    print(f"\n{name} {size}x{size}: forward (incl. jit) {elapsed:.2f} s, "
          f"{len(got)} traced tensors equal")


def ref_multiplier(layer: McuConv) -> np.ndarray:
    return (layer.x_scale * layer.w_scales.astype(np.float64)) / layer.y_scale


def test_batched_forward_and_resized_input():
    model = _model("mbv2-w0.35")
    images = oracle.quantize_image(model, _image(64, seed=5, batch=2))
    logits, pooled = oracle.quantized_forward(model, images)
    assert logits.shape == (2, model.num_classes) and pooled.shape == (2, model.classifier.in_channels)
    for i in range(2):
        trace: list = []
        ref.forward_quantized(model, images[i], trace)
        assert np.array_equal(pooled[i], dict(trace)["avg_pool"].ravel())
    # a float image of another size is resized, then quantized; an int8 one must fit
    q = oracle.prepare_input(model, _image(128, seed=6), input_size=64)
    assert q.shape == (3, 64, 64) and q.dtype == np.int8
    with pytest.raises(ValueError):
        oracle.prepare_input(model, images[0], input_size=96)
    with pytest.raises(ValueError):  # the classifier is replaced by the head
        oracle.make_loss(model, images[0], 0, [len(model.conv_layers()) - 1],
                         np.zeros((3, 56)), np.zeros(3))


# --------------------------------------------------------------------------------------
# 2. rounding / clamping gradients against hand computations
# --------------------------------------------------------------------------------------


def test_round_and_clamp_primitives():
    with jax.enable_x64(True):
        u = jnp.array([0.5, 1.5, 2.5, -0.5, -1.5, -2.5, 126.5, -128.5])
        assert oracle.round_ste(u).tolist() == [0, 2, 2, 0, -2, -2, 126, -128]
        assert jax.grad(lambda u: (oracle.round_ste(u) * jnp.arange(8.0)).sum())(u).tolist() \
            == list(range(8))
        v = jnp.array([-130.0, -129.0, -128.0, -127.0, 0.0, 126.0, 127.0, 128.0, 300.0])
        assert oracle.clamp_int8(v).tolist() == [-128, -128, -128, -127, 0, 126, 127, 127, 127]
        mask = jax.grad(lambda v: oracle.clamp_int8(v).sum())(v)
        assert mask.tolist() == [0, 0, 1, 1, 1, 1, 1, 0, 0]  # bounds inclusive, no 0.5


def _conv(name: str, cin: int, cout: int, k: int, stride: int, groups: int, rng,
          x_scale: float, x_zero: int, y_scale: float, y_zero: int, wmax: int = 127) -> McuConv:
    weight = rng.integers(-wmax, wmax + 1, (cout, cin // groups, k, k)).astype(np.int8)
    bias = rng.integers(-400, 400, cout).astype(np.int32)
    w_scales = rng.uniform(0.5, 1.5, cout) * 0.01
    return McuConv(name, cin, cout, (k, k), (stride, stride), groups,
                   groups > 1 and groups == cin == cout, ((k - 1) // 2, (k - 1) // 2),
                   weight, bias, w_scales, x_scale, x_zero, y_scale, y_zero)


def _tiny_model(seed: int) -> McuModel:
    """first_conv 3x3/2 (3->4); block 0: pw1 4->8, dw 3x3, pw2 8->4, identity residual;
    block 1: dw 3x3/2, pw2 4->6 (no pw1, no residual); feature_mix 6->8; classifier 8->5.
    Scales put a good share of the outputs outside [-128, 127] (clamped, masked)."""
    rng = np.random.default_rng(seed)
    s0, s1, s2, s3, s4, s5, s6, s7 = 1 / 127.5, 0.02, 0.015, 0.03, 0.025, 0.02, 0.03, 0.025
    first = _conv("first_conv", 3, 4, 3, 2, 1, rng, s0, 0, s1, -20)
    pw1 = _conv("blocks.0.pointwise1", 4, 8, 1, 1, 1, rng, s1, -20, s2, -128)
    dw = _conv("blocks.0.depthwise", 8, 8, 3, 1, 8, rng, s2, -128, s3, -128)
    pw2 = _conv("blocks.0.pointwise2", 8, 4, 1, 1, 1, rng, s3, -128, s4, 5)
    res = McuIdentityResidual(x_scale=s1, x_zero=-20, y_scale=s5, y_zero=3)
    dw1 = _conv("blocks.1.depthwise", 4, 4, 3, 2, 4, rng, s5, 3, s6, -128)
    pw21 = _conv("blocks.1.pointwise2", 4, 6, 1, 1, 1, rng, s6, -128, s7, 0)
    mix = _conv("feature_mix", 6, 8, 1, 1, 1, rng, s7, 0, 0.04, -128)
    cls = _conv("classifier", 8, 5, 1, 1, 1, rng, 0.04, -128, 0.1, 0)
    blocks = (McuBlock(0, pw1, dw, pw2, res), McuBlock(1, None, dw1, pw21, None))
    return McuModel("tiny", first, blocks, mix, cls, (3, 12, 12))


def _conv_backward(g_acc: np.ndarray, xs: np.ndarray, layer: McuConv
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hand backward of acc = conv(xs, w) + b: (dL/dw, dL/db, dL/dxs), tap by tap."""
    w = layer.weight.astype(np.float64)
    o, cg, kh, kw = w.shape
    (sh, sw), (ph, pw), groups = layer.stride, layer.padding, layer.groups
    c, h, wd = xs.shape
    ho, wo = g_acc.shape[1:]
    xp = np.pad(xs, ((0, 0), (ph, ph), (pw, pw)))
    gxp = np.zeros_like(xp)
    dw = np.zeros_like(w)
    og = o // groups
    for oc in range(o):
        grp = oc // og
        for ci in range(cg):
            cin = grp * cg + ci
            for i in range(kh):
                for j in range(kw):
                    win = (slice(i, i + sh * (ho - 1) + 1, sh), slice(j, j + sw * (wo - 1) + 1, sw))
                    dw[oc, ci, i, j] = (g_acc[oc] * xp[cin][win]).sum()
                    gxp[cin][win] += g_acc[oc] * w[oc, ci, i, j]
    return dw, g_acc.sum(axis=(1, 2)), gxp[:, ph:ph + h, pw:pw + wd]


def _hand_grads(model: McuModel, image_q: np.ndarray, label: int, W: np.ndarray,
                b: np.ndarray) -> dict:
    """Forward with numpy (mcu_reference's accumulation) keeping round/clamp inputs, then
    the backward written out: STE through every round, mask -128 <= v <= 127."""
    tape = []  # (layer, shifted input, v) per conv

    def conv(x, layer):
        xs = x.astype(np.float64) - layer.x_zero
        acc = ref.conv_accumulate(xs.astype(np.int64), layer.weight, layer.stride,
                                  layer.padding, layer.groups) + layer.bias[:, None, None]
        v = np.round(acc * ref_multiplier(layer)[:, None, None]) + layer.y_zero
        tape.append((layer, xs, v))
        return np.clip(v, -128, 127)

    x0 = conv(image_q, model.first_conv)
    blk0, blk1 = model.blocks
    x = x0
    for layer in blk0.main_convs():
        x = conv(x, layer)
    r, last = blk0.residual, blk0.pointwise2
    t = (x0 - r.x_zero) * r.x_scale + (x - last.y_zero) * last.y_scale
    v_add = np.round(t / r.y_scale) + r.y_zero
    x1 = np.clip(v_add, -128, 127)
    x = x1
    for layer in blk1.main_convs():
        x = conv(x, layer)
    x = conv(x, model.feature_mix)
    hw = x.shape[1] * x.shape[2]
    pooled = np.round(x.sum(axis=(1, 2)) / hw)
    s, z = model.feature_mix.y_scale, model.feature_mix.y_zero
    feat = s * (pooled - z)
    logits = W @ feat + b
    p = np.exp(logits - logits.max())
    p /= p.sum()
    loss = -np.log(p[label])

    def inside(v):
        return ((v >= -128) & (v <= 127)).astype(np.float64)

    grads = {"loss": loss, "masks": {}}
    g_logits = p - np.eye(len(b))[label]
    grads["head.weight"], grads["head.bias"] = np.outer(g_logits, feat), g_logits
    g_x = np.broadcast_to((s * (W.T @ g_logits))[:, None, None] / hw, x.shape).copy()

    def conv_back(g_y):
        layer, xs, v = tape.pop()
        grads["masks"][layer.name] = inside(v)
        g_acc = g_y * inside(v) * ref_multiplier(layer)[:, None, None]
        dw, db, g_xs = _conv_backward(g_acc, xs, layer)
        grads[layer.name] = {"w_q": dw, "b_q": db}
        return g_xs

    for _ in range(1 + len(blk1.main_convs())):  # feature_mix, blocks.1 convs
        g_x = conv_back(g_x)
    g_t = g_x * inside(v_add) / r.y_scale  # the residual add
    grads["masks"]["blocks.0.add"] = inside(v_add)
    g_x0 = g_t * r.x_scale
    g_x = g_t * last.y_scale
    for _ in blk0.main_convs():
        g_x = conv_back(g_x)
    conv_back(g_x0 + g_x)
    assert not tape
    return grads


def test_gradients_equal_a_hand_written_backward():
    model = _tiny_model(seed=7)
    layers = list(range(len(model.conv_layers()) - 1))  # every conv but the classifier
    names = [c.name for c in model.conv_layers()[:-1]]
    rng = np.random.default_rng(8)
    W, b = rng.normal(0, 0.5, (4, 8)), rng.normal(0, 0.1, 4)
    for seed, label in ((0, 1), (1, 3)):
        image = rng.uniform(-1, 1, (3, 12, 12))
        got = oracle.qtrain_grads(model, image, label, W, b, layers)
        image_q = got["image_q"]
        assert np.array_equal(image_q, ref.quantize_image(model, image))
        want = _hand_grads(model, image_q.astype(np.int64), label, W, b)
        # the test only means something if masks cut and pass gradient in every layer
        for name, mask in want["masks"].items():
            assert 0 < mask.mean() < 1, f"{name}: mask is all {mask.flat[0]}"
        trace: list = []
        ref.forward_quantized(model, image_q, trace)
        assert np.array_equal(got["pooled_q"], dict(trace)["avg_pool"].ravel())
        assert got["loss"] == pytest.approx(want["loss"], rel=1e-12)
        for key in ("head.weight", "head.bias"):
            np.testing.assert_allclose(got[key], want[key], rtol=1e-10, atol=1e-14)
        for name in names:
            for k in ("w_q", "b_q"):
                scale = np.abs(want[name][k]).max()
                assert scale > 0, f"{name} {k}: zero gradient"
                err = np.abs(got[name][k] - want[name][k]).max() / scale
                assert err < 1e-10, f"{name} {k}: relative error {err:.3g}"


def test_single_pointwise_conv_closed_form_with_boundaries_and_ties():
    """first_conv = a 1x1 conv (2 -> 3), multiplier exactly 0.5 so that odd accumulators are
    ties; designed pixels give u = 127.5 (-> 128, masked), 127 (passes), 126.5 (-> 126),
    -128 (passes), -128.5 (-> -128 by half-even, PASSES; half-away would give -129) and
    -129.5 (-> -130, masked)."""
    x_zero = -2
    weight = np.array([[2, 1], [1, -3], [-1, 2]], dtype=np.int8).reshape(3, 2, 1, 1)
    bias = np.array([1, -4, 7], dtype=np.int32)
    first = McuConv("first_conv", 2, 3, (1, 1), (1, 1), 1, False, (0, 0), weight, bias,
                    np.full(3, 0.5), 1.0, x_zero, 1.0, 0)
    cls = McuConv("classifier", 3, 2, (1, 1), (1, 1), 1, False, (0, 0),
                  np.ones((2, 3, 1, 1), np.int8), np.zeros(2, np.int32), np.ones(2), 1.0, 0,
                  1.0, 0)
    model = McuModel("one_conv", first, (), None, cls, (2, 4, 8))
    rng = np.random.default_rng(2)
    image_q = rng.integers(-60, 60, (2, 4, 8))
    targets = {255: 0, 254: 1, 253: 1, -256: 1, -257: 1, -259: 0}  # acc of channel 0 -> mask
    for k, acc in enumerate(targets):  # acc = 2 (x0 + 2) + (x1 + 2) + 1
        x0 = int(np.clip((acc - 1) // 2 - 2, -128, 127))
        x1 = acc - 1 - 2 * (x0 - x_zero) + x_zero
        assert -128 <= x1 <= 127
        image_q[:, 0, k] = [x0, x1]
    image_q = image_q.astype(np.int8)
    W, b = rng.normal(0, 1, (4, 3)), rng.normal(0, 1, 4)
    got = oracle.qtrain_grads(model, image_q, 2, W, b, [0])

    xs = image_q.astype(np.float64) - x_zero
    acc = np.einsum("oc,chw->ohw", weight[:, :, 0, 0].astype(np.float64), xs) + bias[:, None, None]
    assert acc[0, 0, :6].tolist() == list(targets)
    v = np.round(acc * 0.5)
    assert v[0, 0, :6].tolist() == [128, 127, 126, -128, -128, -130]  # half to even
    mask = ((v >= -128) & (v <= 127)).astype(np.float64)
    assert mask[0, 0, :6].tolist() == list(targets.values())
    y = np.clip(v, -128, 127)
    pooled = np.round(y.mean(axis=(1, 2)))
    assert np.array_equal(got["pooled_q"], pooled)
    logits = W @ pooled + b  # feature scale 1, zero 0
    p = np.exp(logits - logits.max())
    p /= p.sum()
    g = p - np.eye(4)[2]
    g_acc = (W.T @ g)[:, None, None] / 32 * mask * 0.5  # STE through pool and round
    dw = np.einsum("ohw,chw->oc", g_acc, xs).reshape(3, 2, 1, 1)
    db = g_acc.sum(axis=(1, 2))
    np.testing.assert_allclose(got["first_conv"]["w_q"], dw, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got["first_conv"]["b_q"], db, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(got["head.weight"], np.outer(g, pooled), rtol=1e-12)
    np.testing.assert_allclose(got["head.bias"], g, rtol=1e-12)
    assert got["loss"] == pytest.approx(-np.log(p[2]), rel=1e-12)
    # the flat keys of the module's first version name the same arrays
    assert got["first_conv.weight"] is got["first_conv"]["w_q"]
    assert got["first_conv.bias.qas"] is got["first_conv"]["b_qas"]


def test_batch_loss_is_the_mean():
    model = _tiny_model(seed=3)
    rng = np.random.default_rng(4)
    W, b = rng.normal(0, 0.5, (4, 8)), rng.normal(0, 0.1, 4)
    images, labels = rng.uniform(-1, 1, (2, 3, 12, 12)), [0, 3]
    both = oracle.qtrain_grads(model, images, labels, W, b, [2, 5])
    one = [oracle.qtrain_grads(model, images[i], labels[i], W, b, [2, 5]) for i in range(2)]
    assert both["loss"] == pytest.approx((one[0]["loss"] + one[1]["loss"]) / 2, rel=1e-12)
    for key in ("head.weight", "head.bias"):
        np.testing.assert_allclose(both[key], (one[0][key] + one[1][key]) / 2, rtol=1e-10)
    for c in (model.conv_layers()[2], model.conv_layers()[5]):
        for k in ("w_q", "b_q"):
            np.testing.assert_allclose(both[c.name][k], (one[0][c.name][k] + one[1][c.name][k]) / 2,
                                       rtol=1e-10, atol=1e-15)


# --------------------------------------------------------------------------------------
# 3. QAS and real-domain gradients
# --------------------------------------------------------------------------------------


def _check_relations(model: McuModel, got: dict, layers: list[int]) -> None:
    for i in layers:
        c = model.conv_layers()[i]
        g = got[c.name]
        ws = c.w_scales[:, None, None, None]
        bs = c.x_scale * c.w_scales
        np.testing.assert_allclose(g["w_qas"] * ws ** 2, g["w_q"], rtol=1e-12, atol=0)
        np.testing.assert_allclose(g["b_qas"] * bs ** 2, g["b_q"], rtol=1e-12, atol=0)
        np.testing.assert_allclose(g["w_real"] * ws, g["w_q"], rtol=1e-12, atol=0)
        np.testing.assert_allclose(g["b_real"] * bs, g["b_q"], rtol=1e-12, atol=0)
        # QAS's point: an integer step -lr * g_qas, seen in the real domain
        # (w_real = s_w w_q, b_real = s_x s_w b_q), is the float SGD step -lr * dL/d(real)
        np.testing.assert_allclose(ws * g["w_qas"], g["w_real"], rtol=1e-12, atol=0)
        np.testing.assert_allclose(bs * g["b_qas"], g["b_real"], rtol=1e-12, atol=0)


def test_qas_and_real_domain_gradients():
    """Relations on a published model, and dL/d(real) against autodiff of the loss written
    in the real-domain parameters (w_q = w_real / s_w, b_q = b_real / (s_x s_w))."""
    model = _model("mbv2-w0.35")
    n = len(model.conv_layers())
    layers = [n - 2, n - 4, n - 5]  # pointwise2, pointwise1, depthwise of the last blocks
    rng = np.random.default_rng(11)
    W, b = rng.normal(0, 0.05, (3, model.classifier.in_channels)), rng.normal(0, 0.1, 3)
    image = _image(128, seed=12)
    start = time.perf_counter()
    got = oracle.qtrain_grads(model, image, 1, W, b, layers, input_size=64)
    elapsed = time.perf_counter() - start
    assert got["image_q"].shape == (3, 64, 64)
    _check_relations(model, got, layers)

    convs = [model.conv_layers()[i] for i in layers]
    with jax.enable_x64(True):
        loss, params = oracle.make_loss(model, got["image_q"], 1, layers, W, b)

        def real_loss(real):
            p = dict(params)
            for c in convs:
                p[c.name] = {"w_q": real[c.name][0] / c.w_scales[:, None, None, None],
                             "b_q": real[c.name][1] / (c.x_scale * c.w_scales)}
            return loss(p)

        real0 = {c.name: (c.weight * c.w_scales[:, None, None, None],
                          c.bias * (c.x_scale * c.w_scales)) for c in convs}
        value, g_real = jax.jit(jax.value_and_grad(real_loss))(real0)
    assert float(value) == pytest.approx(got["loss"], rel=1e-12)
    for c in convs:
        for k, key in ((0, "w_real"), (1, "b_real")):
            want = got[c.name][key]
            err = np.abs(np.asarray(g_real[c.name][k]) - want).max() / np.abs(want).max()
            assert err < 1e-9, f"{c.name} {key}: {err:.3g}"
    print(f"\nmbv2-w0.35 64x64, {len(layers)} layers + head: qtrain_grads {elapsed:.2f} s")


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_grads_at_128_are_fast_and_nonzero(name):
    model = _model(name)
    n = len(model.conv_layers())
    layers = [n - 2, n - 3, n - 4, n - 8]
    rng = np.random.default_rng(13)
    W, b = rng.normal(0, 0.05, (10, model.classifier.in_channels)), rng.normal(0, 0.1, 10)
    start = time.perf_counter()
    got = oracle.qtrain_grads(model, _image(128, seed=14), 4, W, b, layers)
    elapsed = time.perf_counter() - start
    assert elapsed < 30, f"{name}: {elapsed:.1f} s"
    _check_relations(model, got, layers)
    for i in layers:
        c = model.conv_layers()[i]
        assert np.abs(got[c.name]["w_q"]).max() > 0 and np.abs(got[c.name]["b_q"]).max() > 0
    trace: list = []
    ref.forward_quantized(model, got["image_q"], trace)
    assert np.array_equal(got["pooled_q"], dict(trace)["avg_pool"].ravel())
    print(f"\n{name} 128x128, {len(layers)} layers + head: qtrain_grads {elapsed:.2f} s "
          "(first call, jit compile included)")
