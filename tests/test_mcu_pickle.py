"""tte.frontends.mcu_pickle: tiny-training's int8 ImageNet backbones, loaded without running code.

The three published files live in ../shared/models/mcu_imagenet (see the
README there). `python -m pytest tests/test_mcu_pickle.py -s` prints, per
model, the layer numbering and the sizes.
"""
from __future__ import annotations

import copy
import io
import os
import pickle
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import mcu_reference as ref
from tte.errors import TTEError, UnsupportedError
from tte.frontends.mcu_pickle import (McuConv, McuConvResidual, McuIdentityResidual, McuModel,
                                      load_mcu_pickle)

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models" / "mcu_imagenet"
MODEL_NAMES = ("mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3")

# Facts about the published files, counted once by hand and by this loader.
EXPECTED = {  # conv layers (classifier included), blocks, identity residuals, params, int8 bytes
    "mcunet-5fps": dict(convs=43, blocks=14, residuals=7, params=630_224, weight_bytes=623_216,
                        saturated_biases=52),
    "mbv2-w0.35": dict(convs=52, blocks=17, residuals=10, params=357_448, weight_bytes=350_688,
                       saturated_biases=0),
    "proxyless-w0.3": dict(convs=61, blocks=20, residuals=13, params=423_232,
                           weight_bytes=416_816, saturated_biases=22),
}

# Sparse-update schemes published by tiny-training, indexed by its conv numbering
# (compilation/mcu_ir_gen.py: sparse_update_config; algorithm/scripts/sparse_update.sh).
# name: (n_bias_update, manual_weight_idx, weight_update_ratio)
PUBLISHED_SCHEMES = {
    "mcunet-5fps": {
        "49kb": (20, [23, 24, 27, 30, 33, 39], [0, 0.25, 0.5, 0.5, 0, 0]),
        "74kb": (21, [21, 23, 24, 26, 27, 30], [1, 0, 1, 0, 0.5, 1]),
        "99kb": (22, [21, 24, 27, 30, 36, 39], [1, 1, 1, 1, 0.125, 0.25]),
        "124kb": (24, [21, 24, 27, 30, 33, 39], [0.25, 1, 1, 1, 0.5, 0.5]),
        "148kb": (23, [21, 24, 27, 30, 36, 39], [1, 1, 1, 1, 1, 0.5]),
        "sparse_update.sh 100kb": (22, [21, 24, 27, 30, 36, 39], [1, 1, 1, 1, 0.125, 0.25]),
    },
    "mbv2-w0.35": {
        "49kb": (16, [36, 39, 40, 41, 42, 45, 48, 49], [1, 1, 0, 0.25, 0.125, 0.125, 0.125, 0.125]),
        "73kb": (20, [32, 33, 36, 39, 41, 42, 45, 48], [0.125, 0.5, 0.5, 1, 0.25, 0.125, 0.125, 1]),
        "99kb": (25, [27, 30, 33, 36, 39, 42, 45, 48], [1, 1, 1, 1, 1, 0.125, 0.5, 1]),
        "123kb": (31, [27, 30, 33, 36, 39, 42, 45, 48], [1, 1, 1, 1, 1, 0.5, 1, 1]),
        "138kb": (34, [27, 30, 33, 36, 39, 42, 45, 48], [1] * 8),
    },
    "proxyless-w0.3": {
        "49kb": (21, [39, 42, 44, 45, 50, 51, 54, 57], [0.25, 1, 0, 1, 0, 0.125, 0.25, 0.25]),
        "74kb": (28, [33, 36, 39, 42, 45, 51, 54, 57], [0.5, 0.25, 1, 1, 1, 0.5, 0.25, 0.5]),
        "98kb": (25, [36, 39, 42, 45, 48, 51, 54, 57], [1, 0.5, 1, 1, 0.25, 0.5, 1, 1]),
        "120kb": (32, [36, 39, 42, 45, 48, 51, 54, 57], [1, 1, 1, 1, 0.5, 1, 1, 1]),
        "148kb": (45, [36, 39, 42, 45, 48, 51, 54, 57], [1] * 8),
    },
}


def model_path(name: str) -> Path:
    return MODELS_DIR / f"{name}.pkl"


@pytest.fixture(scope="module", params=MODEL_NAMES)
def model(request) -> McuModel:
    return load_mcu_pickle(model_path(request.param))


def raw_dict(name: str) -> dict:
    """The published file read with the plain pickle module: trusted input only,
    used here as the oracle for the restricted loader and as material for
    damaged copies."""
    with zipfile.ZipFile(model_path(name)) as z:
        return pickle.loads(z.read("archive/data.pkl"))


def write_zip(path: Path, payload: bytes, member: str = "archive/data.pkl") -> Path:
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(member, payload)
        z.writestr(member.rsplit("/", 1)[0] + "/version", "3\n")
    return path


# --- the published files ---------------------------------------------------------------


def test_summary_and_numbering(model):
    layers = model.conv_layers()
    expected = EXPECTED[model.name]
    residuals = [b for b in model.blocks if b.residual is not None]
    saturated = sum(int(np.isin(c.bias, [np.iinfo(np.int32).min, np.iinfo(np.int32).max]).sum())
                    for c in layers)
    print(f"\n{model.name}: {len(layers)} conv layers, {len(model.blocks)} blocks "
          f"({len(residuals)} with an identity residual), feature_mix "
          f"{'yes' if model.feature_mix else 'none'}, {model.num_params} parameters, "
          f"{model.weight_bytes} bytes of int8 weights, input {model.input_shape}, "
          f"{model.num_classes} classes, {saturated} biases saturated at the int32 limits")
    for i, c in enumerate(layers):
        print(f"  {i:2d} {c.name:22s} {c.kind:9s} w{tuple(c.weight.shape)} "
              f"k{c.kernel_size[0]} s{c.stride[0]} g{c.groups}")
    assert len(layers) == expected["convs"]
    assert len(model.blocks) == expected["blocks"]
    assert len(residuals) == expected["residuals"]
    assert model.num_params == expected["params"]
    assert model.weight_bytes == expected["weight_bytes"]
    assert saturated == expected["saturated_biases"]
    assert model.input_shape == (3, 128, 128) and model.num_classes == 1000
    assert model.feature_mix is None
    assert all(isinstance(b.residual, (McuIdentityResidual, type(None))) for b in model.blocks)
    # numbering: first conv, block 0 (no expansion: depthwise, pointwise2), then three per block
    assert layers[0] is model.first_conv and layers[-1] is model.classifier
    assert [c.name for c in layers[1:3]] == ["blocks.0.depthwise", "blocks.0.pointwise2"]
    for b in range(1, len(model.blocks)):
        for j, part in enumerate(("pointwise1", "depthwise", "pointwise2")):
            assert layers[3 * b + j].name == f"blocks.{b}.{part}"


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_arrays_equal_those_of_the_plain_unpickler(name):
    model = load_mcu_pickle(model_path(name))
    raw = raw_dict(name)
    raw_convs = [raw["first_conv"]] + [b[k] for b in raw["blocks"]
                                       for k in ("pointwise1", "depthwise", "pointwise2")
                                       if b[k] is not None] + [raw["classifier"]]
    assert len(raw_convs) == len(model.conv_layers())
    for conv, d in zip(model.conv_layers(), raw_convs):
        p = d["params"]
        np.testing.assert_array_equal(conv.weight, p["weight"])
        np.testing.assert_array_equal(conv.bias, p["bias"])
        np.testing.assert_array_equal(conv.w_scales, p["w_scales"].astype(np.float64))
        assert (conv.x_scale, conv.x_zero, conv.y_scale, conv.y_zero) == \
            (p["x_scale"], p["x_zero"], p["y_scale"], p["y_zero"])
        assert conv.weight.dtype == np.int8 and conv.bias.dtype == np.int32
        assert conv.w_scales.dtype == np.float64
        assert not conv.weight.flags.writeable


def test_structure(model):
    for c in model.conv_layers():
        kh, kw = c.kernel_size
        assert c.weight.shape == (c.out_channels, c.in_channels // c.groups, kh, kw)
        assert c.bias.shape == c.w_scales.shape == (c.out_channels,)
        assert c.padding == ((kh - 1) // 2, (kw - 1) // 2)
        assert np.all(c.w_scales > 0) and c.x_scale > 0 and c.y_scale > 0
        if c.depthwise:
            assert c.groups == c.in_channels == c.out_channels
        else:
            assert c.groups == 1
        assert int(c.weight.min()) >= -127  # symmetric weights: -128 never used
    first = model.first_conv
    assert first.x_scale == 1 / 127.5 and first.x_zero == 0
    # every tensor is read with the scale and zero point it was written with
    current = (first.y_scale, first.y_zero)
    for block in model.blocks:
        block_in = current
        for c in block.main_convs():
            assert (c.x_scale, c.x_zero) == current, c.name
            current = (c.y_scale, c.y_zero)
        if isinstance(block.residual, McuIdentityResidual):
            assert (block.residual.x_scale, block.residual.x_zero) == block_in
            current = (block.residual.y_scale, block.residual.y_zero)
    assert (model.classifier.x_scale, model.classifier.x_zero) == current
    # spatial sizes recorded in the file agree with the strides (the loader checks it;
    # here: the last feature map is 4x4 for a 128x128 input)
    h = w = 128
    for c in model.conv_layers()[:-1]:
        h, w = c.output_size(h, w)
        if c.out_size is not None:
            assert c.out_size == h
    assert (h, w) == (4, 4)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_numbering_fits_the_published_sparse_update_schemes(name):
    """tiny-training numbers convs as model.modules() meets them (partial_backward.py:
    get_all_conv_ops); its training code swaps the classifier for a float Linear, so
    there n_conv is ours minus one, and parsed_backward_config asserts that each
    weight-updated layer is among the last n_bias_update convs. Its compiler keeps
    the classifier as the last conv (reverse index = n_conv - idx, auto_diff.py)."""
    layers = load_mcu_pickle(model_path(name)).conv_layers()
    n_conv_training = len(layers) - 1
    for scheme, (n_bias, weight_idx, ratios) in PUBLISHED_SCHEMES[name].items():
        assert len(weight_idx) == len(ratios), scheme
        for idx, ratio in zip(weight_idx, ratios):
            assert 0 <= idx < n_conv_training, (scheme, idx)
            assert idx >= n_conv_training - n_bias, (scheme, idx)  # the sanity assert
            if 0 < ratio < 1:  # channel-sparse: auto_diff.py handles 1x1 or depthwise only
                assert layers[idx].kind in ("pointwise", "depthwise"), (scheme, idx)
    # the full-ratio schemes update the first pointwise conv of every third layer block:
    # an off-by-one numbering would land on depthwise or pointwise2 layers instead
    best = {"mcunet-5fps": "99kb", "mbv2-w0.35": "138kb", "proxyless-w0.3": "148kb"}[name]
    for idx in PUBLISHED_SCHEMES[name][best][1]:
        assert layers[idx].name.endswith(".pointwise1"), (best, idx, layers[idx].name)


# --- the numpy reference forward ----------------------------------------------------------


def synthetic_images() -> dict[str, np.ndarray]:
    yy, xx = np.mgrid[0:128, 0:128] / 127.0
    checker = (((np.arange(128)[:, None] // 8) + (np.arange(128)[None, :] // 8)) % 2) * 2 - 1.0
    radial = np.hypot(xx - 0.5, yy - 0.5)
    return {
        "gradients": np.stack([2 * xx - 1, 2 * yy - 1, xx - yy]),
        "checkerboard": np.stack([checker, -checker, 0.5 * checker]),
        "rings": np.stack([np.cos(20 * radial), np.sin(13 * xx) * np.cos(9 * yy),
                           1 - 2 * radial]).clip(-1, 1),
    }


def test_forward_is_deterministic_and_informative(model):
    logits = {}
    for image_name, image in synthetic_images().items():
        t0 = time.perf_counter()
        trace: list = []
        out = ref.forward(model, image, trace)
        seconds = time.perf_counter() - t0
        again = ref.forward(model, image.copy())
        print(f"\n{model.name} on {image_name}: {seconds * 1000:.0f} ms, top-1 class "
              f"{int(np.argmax(out))}, logits {int(out.min())}..{int(out.max())}")
        assert seconds < 5.0  # a few seconds at most for one 128x128 image
        assert out.shape == (1000,) and out.dtype == np.int8
        np.testing.assert_array_equal(out, again)
        assert len(np.unique(out)) > 10
        for name, value in trace:
            assert value.dtype == np.int8, name
        pooled = dict(trace)["avg_pool"]
        assert pooled.shape == (model.classifier.in_channels, 1, 1)
        assert len(np.unique(pooled)) > 5  # the features are not saturated to a constant
        logits[image_name] = out
    outs = list(logits.values())
    assert not np.array_equal(outs[0], outs[1]) and not np.array_equal(outs[1], outs[2])


def test_input_quantization(model):
    image = np.full((3, 128, 128), 1.0)
    image[0, 0, :4] = [-1.0, 0.0, 0.5 / 127.5, 1.5 / 127.5]
    q = ref.quantize_image(model, image)
    assert q.dtype == np.int8
    # 127.5 rounds to 128 and is clamped; ties go to even: 0.5 -> 0, 1.5 -> 2
    assert q[0, 0, :4].tolist() == [-128, 0, 0, 2] and q[1, 5, 5] == 127


def tiny_conv(weight, bias, w_scales, *, x_scale=1.0, x_zero=0, y_scale=1.0, y_zero=0,
              stride=1, groups=1) -> McuConv:
    weight = np.asarray(weight, dtype=np.int8)
    o, cg, kh, kw = weight.shape
    return McuConv("t", cg * groups, o, (kh, kw), (stride, stride), groups,
                   groups > 1 and groups == cg * groups == o, ((kh - 1) // 2, (kw - 1) // 2),
                   weight, np.asarray(bias, dtype=np.int32),
                   np.asarray(w_scales, dtype=np.float64), x_scale, x_zero, y_scale, y_zero)


def test_reference_requantization_rounds_half_to_even_and_clamps():
    # one input channel, 1x1: acc = (x - x_zero) * w + bias, y = round(acc * 0.5) + y_zero
    layer = tiny_conv([[[[1]]], [[[2]]]], [0, 1], [0.5, 0.5], x_zero=-3, y_zero=1)
    x = np.array([[[2, 4, 127, -128]]], dtype=np.int8)  # x - x_zero = 5, 7, 130, -125
    y = ref.conv(x, layer)
    # channel 0: 2.5 -> 2, 3.5 -> 4, 65 -> 65, -62.5 -> -62;  +1
    assert y[0, 0].tolist() == [3, 5, 66, -61]
    # channel 1: (2*[5, 7, 130, -125] + 1) * 0.5 = 5.5, 7.5, 130.5, -124.5 -> 6, 8, 130, -124; +1
    assert y[1, 0].tolist() == [7, 9, 127, -123]
    # the padding is x_zero (zero after the shift): a 3x3 all-ones kernel at a corner
    corner = tiny_conv(np.ones((1, 1, 3, 3)), [0], [1.0], x_zero=5)
    assert ref.conv(np.full((1, 3, 3), 5, dtype=np.int8), corner).sum() == 0
    # residual add and average pool: ties to even as well
    a, b = np.array([1, 3], dtype=np.int8), np.array([0, 0], dtype=np.int8)
    assert ref.add(a, 0, 0.5, b, 0, 1.0, 0, 1.0).tolist() == [0, 2]
    assert ref.avg_pool(np.array([[[2, 3]], [[3, 4]]], dtype=np.int8)).ravel().tolist() == [2, 4]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_reference_conv_matches_a_direct_loop(data):
    groups = data.draw(st.sampled_from([1, 2, 3]), "groups")
    cg = data.draw(st.integers(1, 3), "cin per group")
    og = data.draw(st.integers(1, 3), "cout per group")
    k = data.draw(st.sampled_from([1, 3, 5]), "kernel")
    stride = data.draw(st.sampled_from([1, 2]), "stride")
    h = data.draw(st.integers(1, 7), "h")
    w = data.draw(st.integers(1, 7), "w")
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), "seed"))
    x = rng.integers(-255, 256, (cg * groups, h, w))
    weight = rng.integers(-127, 128, (og * groups, cg, k, k))
    pad = (k - 1) // 2
    got = ref.conv_accumulate(x, weight, (stride, stride), (pad, pad), groups)
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    want = np.zeros((og * groups, ho, wo), dtype=np.int64)
    for o in range(og * groups):
        g = o // og
        for i in range(ho):
            for j in range(wo):
                for c in range(cg):
                    for di in range(k):
                        for dj in range(k):
                            r, s = i * stride + di - pad, j * stride + dj - pad
                            if 0 <= r < h and 0 <= s < w:
                                want[o, i, j] += x[g * cg + c, r, s] * weight[o, c, di, dj]
    np.testing.assert_array_equal(got, want)


def test_conv_shortcut_residual_uses_out_scale(tmp_path):
    """A block with a conv shortcut (none in the published files): the loader keeps it
    after pointwise2 in the numbering, and the sum is requantized to out_scale/out_zero."""
    raw = raw_dict("mbv2-w0.35")
    block = raw["blocks"][1]  # 8 -> 8 channels, stride 2: 64x64 -> 32x32
    shortcut = copy.deepcopy(block["pointwise2"])
    shortcut.update(in_channel=8, in_shape=64, out_channel=8, out_shape=32, stride=2)
    shortcut["params"]["weight"] = np.eye(8, dtype=np.int8).reshape(8, 8, 1, 1) * 100
    shortcut["params"].update(x_scale=block["pointwise1"]["params"]["x_scale"],
                              x_zero=block["pointwise1"]["params"]["x_zero"],
                              y_scale=0.05, y_zero=3, out_scale=0.2, out_zero=-7)
    block["residual"] = shortcut
    model = load_mcu_pickle(write_zip(tmp_path / "m.pkl", pickle.dumps(raw, protocol=2)))
    res = model.blocks[1].residual
    assert isinstance(res, McuConvResidual) and (res.out_scale, res.out_zero) == (0.2, -7)
    names = [c.name for c in model.conv_layers()]
    assert names[3:7] == ["blocks.1.pointwise1", "blocks.1.depthwise", "blocks.1.pointwise2",
                          "blocks.1.residual"]
    trace: list = []
    ref.forward(model, synthetic_images()["gradients"], trace)
    values = dict(trace)
    a, b = values["blocks.1.residual"], values["blocks.1.pointwise2"]
    p2 = model.blocks[1].pointwise2
    want = np.clip(np.round(((a - 3.0) * 0.05 + (b - float(p2.y_zero)) * p2.y_scale) / 0.2) - 7,
                   -128, 127)
    np.testing.assert_array_equal(values["blocks.1.add"], want)


# --- refusing what could run code ----------------------------------------------------------


class _Reduce:
    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def test_pickle_that_would_run_os_system_is_refused(tmp_path):
    target = tmp_path / "pwned"
    payload = pickle.dumps({"first_conv": _Reduce(os.system, f"touch {target}")}, protocol=2)
    path = write_zip(tmp_path / "evil.pkl", payload)
    with pytest.raises(TTEError, match=r"refusing to load .*evil\.pkl: the pickle asks for "
                                       r"(posix|nt|os)\.system, which could run code"):
        load_mcu_pickle(path)
    assert not target.exists()
    # control: the payload is live, the plain unpickler runs it
    control = tmp_path / "control"
    pickle.loads(pickle.dumps(_Reduce(os.system, f"touch {control}")))
    assert control.exists()


@pytest.mark.parametrize("protocol", [2, 4, 5])
@pytest.mark.parametrize("payload, refused", [
    (_Reduce(eval, "__import__('os').system('true')"), "builtins.eval"),
    (_Reduce(getattr, "", "join"), "builtins.getattr"),
    (_Reduce(np.frombuffer, b"\x00" * 4, "int8"), "numpy.frombuffer"),
    (_Reduce(np.load, "x.npy"), "numpy.load"),
])
def test_globals_off_the_allowlist_are_refused(tmp_path, payload, refused, protocol):
    path = write_zip(tmp_path / "m.pkl", pickle.dumps({"blocks": [payload]}, protocol=protocol))
    with pytest.raises(TTEError, match=rf"refusing to load .*m\.pkl: the pickle asks for "
                                       rf"{refused}, which could run code; TTE loads only "
                                       r"numpy arrays and plain Python values"):
        load_mcu_pickle(path)


def test_object_arrays_and_persistent_ids_are_refused(tmp_path):
    objects = np.array([1, "a"], dtype=object)
    path = write_zip(tmp_path / "o.pkl", pickle.dumps({"first_conv": objects}, protocol=2))
    with pytest.raises(TTEError, match=r"refusing to load .*o\.pkl: numpy\.dtype\('O8'\) is "
                                       "not a plain numeric dtype"):
        load_mcu_pickle(path)

    class TorchLike(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", "0") if isinstance(obj, np.ndarray) else None

    buf = io.BytesIO()
    TorchLike(buf, protocol=2).dump({"first_conv": np.zeros(2)})
    path = write_zip(tmp_path / "p.pkl", buf.getvalue())
    with pytest.raises(TTEError, match=r"refusing to load .*p\.pkl: the pickle asks for "
                                       r"persistent id \('storage', '0'\)"):
        load_mcu_pickle(path)


@pytest.mark.parametrize("protocol", [2, 3, 4])
def test_files_written_by_numpy_2_load_too(tmp_path, protocol):
    """numpy 2 pickles arrays as numpy._core.multiarray._reconstruct; protocols 3 and 4
    store the bytes directly. (Protocol 5 uses numpy._core.numeric._frombuffer, refused.)"""
    raw = raw_dict("proxyless-w0.3")
    model = load_mcu_pickle(write_zip(tmp_path / "m.pkl", pickle.dumps(raw, protocol=protocol)))
    published = load_mcu_pickle(model_path("proxyless-w0.3"))
    for a, b in zip(model.conv_layers(), published.conv_layers()):
        np.testing.assert_array_equal(a.weight, b.weight)
        np.testing.assert_array_equal(a.bias, b.bias)
        np.testing.assert_array_equal(a.w_scales, b.w_scales)
    with pytest.raises(TTEError, match=r"asks for numpy\.(_core|core)\.numeric\._frombuffer"):
        load_mcu_pickle(write_zip(tmp_path / "p5.pkl", pickle.dumps(raw, protocol=5)))


# --- damaged and wrong files ---------------------------------------------------------------


@pytest.mark.parametrize("keep", [100, 0.5, -1])
def test_truncated_file(tmp_path, keep):
    data = model_path("mbv2-w0.35").read_bytes()
    n = keep if isinstance(keep, int) and keep > 0 else \
        (len(data) + keep if isinstance(keep, int) else int(len(data) * keep))
    path = tmp_path / "cut.pkl"
    path.write_bytes(data[:n])
    with pytest.raises(TTEError, match=r"cut\.pkl is truncated or corrupt: the zip archive "
                                       "cannot be read"):
        load_mcu_pickle(path)


def test_truncated_pickle_inside_a_good_zip(tmp_path):
    with zipfile.ZipFile(model_path("mbv2-w0.35")) as z:
        payload = z.read("archive/data.pkl")
    path = write_zip(tmp_path / "half.pkl", payload[: len(payload) // 2])
    with pytest.raises(TTEError, match=r"half\.pkl: archive/data\.pkl is truncated or corrupt"):
        load_mcu_pickle(path)


@pytest.mark.parametrize("content, detail", [
    (b"", r"starts with b''"),
    (b"hello, world", r"starts with b'hell'"),
    (pickle.dumps({"first_conv": None}, protocol=2), "a bare pickle"),
])
def test_not_a_zip(tmp_path, content, detail):
    path = tmp_path / "plain.pkl"
    path.write_bytes(content)
    with pytest.raises(TTEError, match=rf"plain\.pkl is not an mcu model file: not a zip "
                                       rf"archive \({detail}\); expected a zip holding "
                                       r"archive/data\.pkl"):
        load_mcu_pickle(path)


def test_zip_without_data_pkl_and_missing_file(tmp_path):
    path = tmp_path / "other.zip"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("model/weights.bin", b"\x00")
    with pytest.raises(TTEError, match=r"other\.zip has no archive/data\.pkl \(members: "
                                       r"model/weights\.bin\)"):
        load_mcu_pickle(path)
    with pytest.raises(TTEError, match=r"cannot read .*absent\.pkl: No such file"):
        load_mcu_pickle(tmp_path / "absent.pkl")


def _damage(raw: dict, how: str) -> None:
    dw = raw["blocks"][3]["depthwise"]
    if how == "missing key":
        del dw["params"]["w_scales"]
    elif how == "missing blocks":
        del raw["blocks"]
    elif how == "float weights":
        dw["params"]["weight"] = dw["params"]["weight"].astype(np.float32)
    elif how == "int64 bias":
        dw["params"]["bias"] = dw["params"]["bias"].astype(np.int64)
    elif how == "weight shape":
        dw["params"]["weight"] = dw["params"]["weight"][:, :, :2, :]
    elif how == "groups":
        dw["groups"] = 1
    elif how == "channels":
        raw["blocks"][3]["pointwise2"]["in_channel"] += 1
    elif how == "zero point":
        dw["params"]["x_zero"] = 300
    elif how == "se":
        raw["blocks"][3]["se"] = {}


@pytest.mark.parametrize("how, message", [
    ("missing key", r"blocks\[3\]\['depthwise'\]\['params'\] has no key 'w_scales'"),
    ("missing blocks", r"the model dict has no key 'blocks' \(keys: classifier, "),
    ("float weights", r"blocks\[3\]\['depthwise'\]\['params'\]\['weight'\] has dtype float32, "
                      "expected int8"),
    ("int64 bias", r"blocks\[3\]\['depthwise'\]\['params'\]\['bias'\] has dtype int64, expected int32"),
    ("weight shape", r"blocks\[3\]\['depthwise'\]\['params'\]\['weight'\] has shape \(48, 1, 2, 3\), expected \(48, 1, 3, 3\)"),
    ("groups", r"blocks\[3\]\['depthwise'\] says depthwise=True, but groups 1, in_channel 48, "
               "out_channel 48 make it not depthwise"),
    ("channels", r"blocks\[3\]\['pointwise2'\]\['params'\]\['weight'\] has shape \(16, 48, 1, 1\), "
                 r"expected \(16, 49, 1, 1\)"),
    ("zero point", r"blocks\[3\]\['depthwise'\]\['params'\]\['x_zero'\] is 300, expected an int8 zero point"),
])
def test_unexpected_structure(tmp_path, how, message):
    raw = raw_dict("mbv2-w0.35")
    _damage(raw, how)
    path = write_zip(tmp_path / "bad.pkl", pickle.dumps(raw, protocol=2))
    with pytest.raises(TTEError, match=rf"bad\.pkl: unexpected structure: {message}"):
        load_mcu_pickle(path)


def test_wiring_mismatch_and_se_block(tmp_path):
    raw = raw_dict("mbv2-w0.35")
    p2 = raw["blocks"][3]["pointwise2"]
    p2["in_channel"], p2["params"]["weight"] = 47, p2["params"]["weight"][:, :47]
    path = write_zip(tmp_path / "wired.pkl", pickle.dumps(raw, protocol=2))
    with pytest.raises(TTEError, match=r"wired\.pkl: unexpected structure: blocks\.3\.pointwise2 "
                                       "takes 47 channels, but its input has 48"):
        load_mcu_pickle(path)
    raw = raw_dict("mbv2-w0.35")
    _damage(raw, "se")
    path = write_zip(tmp_path / "se.pkl", pickle.dumps(raw, protocol=2))
    with pytest.raises(UnsupportedError, match=r"se\.pkl: blocks\[3\] has a squeeze-and-"
                                               "excitation module"):
        load_mcu_pickle(path)
