"""MCU backbones as IR graphs (tte.frontends.mcu_graph): the int8 forward, in the numpy
interpreter and in the generated C, equals the published semantics (tests/mcu_reference.py)
exactly; int8 training runs the same in C as in the reference; the report prices updates."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import tte
from tests import mcu_reference as ref
from tests import sanitized_run as sr
from tte.errors import TTEError
from tte.frontends.mcu_graph import mcu_graph
from tte.frontends.mcu_pickle import load_mcu_pickle
from tte.interpreter import run

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models" / "mcu_imagenet"
NAMES = ("mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3")


def _path(name: str) -> Path:
    path = MODELS_DIR / f"{name}.pkl"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


@pytest.fixture(scope="module", params=NAMES)
def model(request):
    return load_mcu_pickle(_path(request.param))


def _images(size: int, count: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (count, 3, size, size)).astype(np.float32)


def _int8_logits(model, logits: np.ndarray) -> np.ndarray:
    """Undo the final dequantize (exact: float(s * q) / s rounds back to q)."""
    c = model.classifier
    return (np.rint(logits / c.y_scale).astype(np.int64) + c.y_zero).reshape(-1)


@pytest.mark.parametrize("size", [128, 64])
def test_int8_forward_equals_published_semantics(model, size):
    g = mcu_graph(model, input_size=size)
    sized = dataclasses.replace(model, input_shape=(3, size, size))
    for img in _images(size, 3):
        want = ref.forward(sized, img).astype(np.int64)
        got = _int8_logits(model, run(g, {"image": img[None]})[g.outputs[0]])
        np.testing.assert_array_equal(got, want)


def test_c_forward_and_training_equal_reference(model):
    """Host C vs the numpy interpreter after three SGD steps through int8 layers (QAS, master
    copies): logits and the fp32 head within 1e-5. The int8 weights and int32 biases are
    rounded from fp32 gradients that the two sum in different orders, so an update within
    float32 noise of a rounding tie may land one step apart: at most 1 LSB, on < 1 % of them."""
    convs = [c.name for c in model.conv_layers()[-4:-1]]
    update = [f"{n}.{k}" for n in convs for k in ("weight", "bias")] + ["head.weight", "head.bias"]
    prog = tte.compile(_path(model.name), num_classes=3, input_size=64, update=update,
                       optimizer={"lr": 0.002}, master_weights=True)
    reference, c = prog.reference(), prog.build()
    for step, img in enumerate(_images(64, 3, seed=1)):  # the fp32 head sums in another order
        np.testing.assert_allclose(c.forward(img), reference.forward(img), rtol=1e-5,
                                   atol=1e-5)
        assert c.train_step(img, step % 3) == pytest.approx(reference.train_step(img, step % 3),
                                                            rel=1e-5)
    want, got = reference.params(), c.params()
    moved = 0
    for name in update:
        if want[name].dtype == np.float32:
            np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6)
        else:
            diff = np.abs(got[name].astype(np.int64) - want[name])
            assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.01 * diff.size, name
            moved += int(np.count_nonzero(want[name] != prog.training_graph.data[name]))
    assert moved > 0, "no integer parameter changed: the test would not see a wrong update"


def test_int8_head_and_no_head(model):
    """The original 1000-class classifier and a new int8 head both run in C as in numpy."""
    for options in ({}, {"num_classes": 4, "head": "int8"}):
        prog = tte.compile(_path(model.name), input_size=32, update="bias",
                           optimizer={"lr": 1e-3}, **options)
        c, reference = prog.build(), prog.reference()
        img = _images(32, 1, seed=2)[0]
        np.testing.assert_array_equal(c.forward(img), reference.forward(img))


def test_fp32_graph_tracks_int8_graph(model):
    """The dequantized fp32 network (transfer experiment's baseline) computes nearly the
    same features: its logits correlate with the int8 ones."""
    x = _images(64, 1, seed=3)
    g8, g32 = mcu_graph(model, input_size=64), mcu_graph(model, input_size=64, precision="fp32")
    a = run(g8, {"image": x})[g8.outputs[0]].reshape(-1)
    b = run(g32, {"image": x})[g32.outputs[0]].reshape(-1)
    assert np.corrcoef(a, b)[0, 1] > 0.9


def test_report_prices_updated_tensors():
    path = _path("mbv2-w0.35")
    update = ["blocks.16.pointwise2.weight", "blocks.16.pointwise2.bias", "head.weight"]
    plain = tte.compile(path, num_classes=2, input_size=32, update=update).report()["updates"]
    master = tte.compile(path, num_classes=2, input_size=32, update=update,
                         master_weights=True).report()["updates"]
    rows = {u["name"]: u for u in master}
    w = rows["blocks.16.pointwise2.weight"]
    assert (w["dtype"], w["bytes"], w["master_copy_bytes"]) == ("i8", 112 * 336, 4 * 112 * 336)
    assert w["sram_bytes"] == 5 * 112 * 336
    assert rows["blocks.16.pointwise2.bias"]["master_copy_bytes"] == 0  # int32: fine enough
    assert {u["name"]: u["sram_bytes"] for u in plain}["blocks.16.pointwise2.weight"] == 112 * 336


def test_sanitized_int8_training():
    """AddressSanitizer + UBSan over int8 training steps (masks, in-place int8/int32 updates,
    master copies), in a child process (tests/sanitized_run.py int8)."""
    _path("proxyless-w0.3")
    run = sr.run_child("int8", "proxyless-w0.3", timeout=600)
    lines = [ln for ln in run.stdout.splitlines() if ln.startswith("{")]
    assert run.returncode == 0 and lines, run.stderr[-6000:]
    summary = json.loads(lines[-1])
    assert summary["runtimes"] == summary["instrumented"] == {"asan": True, "ubsan": True}
    assert not summary["failures"]
    assert "runtime error" not in run.stderr and "Sanitizer" not in run.stderr


@pytest.mark.parametrize("options, message", [
    ({"num_classes": 1}, "num_classes"),
    ({"head": "int4"}, "head"),
    ({"precision": "fp8"}, "precision"),
    ({"input_size": 100}, "multiple of 32"),
])
def test_bad_options(options, message):
    with pytest.raises(TTEError, match=message):
        tte.compile(_path("mbv2-w0.35"), **options)


def test_options_only_for_mcu_models(tmp_path):
    onnx_file = tmp_path / "m.onnx"
    onnx_file.write_bytes(b"")
    with pytest.raises(TTEError, match="MCU backbones"):
        tte.compile(onnx_file, num_classes=3)


def test_int8_input_equals_float_input_and_saves_sram():
    """--int8-input: the host quantizes the image (mcu_graph.quantize_image, the graph's own
    rule); logits equal the float-input graph's and the sample takes a quarter of the bytes."""
    from tte.frontends.mcu_graph import quantize_image
    path = _path("mcunet-5fps")
    options = dict(num_classes=3, input_size=32, update=["head.weight"])
    p8 = tte.compile(path, int8_input=True, **options)
    p32 = tte.compile(path, **options)
    model = load_mcu_pickle(path)
    c8 = p8.build()
    for img in _images(32, 2, seed=5):
        want = p32.reference().forward(img)
        np.testing.assert_array_equal(p8.reference().forward(quantize_image(model, img)), want)
        np.testing.assert_allclose(c8.forward(quantize_image(model, img)), want, rtol=1e-5,
                                   atol=1e-5)
    # the sample sits in the arena until its last reader: a float one also beside its int8 copy
    (m8, m32) = (p.report()["memory"] for p in (p8, p32))
    assert m8["sram"]["inputs"] == m32["sram"]["inputs"] == 4  # the label
    assert m8["sram_bytes"] <= m32["sram_bytes"]
    assert p8.training_graph.values[p8.training_graph.inputs[0]].nbytes == 3 * 32 * 32
    with pytest.raises(TTEError, match="int8_input"):
        tte.compile(path, int8_input=True, precision="fp32")
