"""int8 training gradients against an independent JAX implementation of the same quantized
forward (tests/jax_qtrain_oracle.py; its docstring says how rounding is treated: exact
half-even rounding forward, straight-through backward, clamp gradient masked inside
[-128, 127]).

TTE's side is its own training graph (autodiff through conv2d_s8 / add_s8 / avg_pool2d_s8 /
dequantize with 1-bit clamp masks), run by the numpy interpreter in float64; the gradients
w.r.t. the stored integers must equal the oracle's within rtol 1e-4 (relative to each
tensor's largest entry), and so must the QAS-scaled ones the updates apply.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from tests import jax_qtrain_oracle as oracle
from tests import mcu_reference as ref
from tte.autodiff import append_backward
from tte.frontends.mcu_graph import mcu_graph
from tte.frontends.mcu_pickle import load_mcu_pickle
from tte.interpreter import run
from tte.ir.types import DType
from tte.training import build_training_graph

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models" / "mcu_imagenet"
SIZE, CLASSES, RTOL = 64, 3, 1e-4
# per model: trained convs spanning residual adds, depthwise and pointwise layers
LAYERS = {
    "mbv2-w0.35": ["blocks.14.pointwise1", "blocks.14.depthwise", "blocks.15.pointwise2",
                   "blocks.16.depthwise", "blocks.16.pointwise2"],
    "mcunet-5fps": ["blocks.11.depthwise", "blocks.12.pointwise2", "blocks.13.pointwise1",
                    "blocks.13.pointwise2"],
}


def _grads_tte(model, image: np.ndarray, label: int, layers: list[str]) -> dict:
    fwd = mcu_graph(model, num_classes=CLASSES, input_size=SIZE)
    g = fwd.copy()
    y = g.add_input("label", (1,), DType.i32)
    loss = g.emit("softmax_cross_entropy", [fwd.outputs[0], y])
    wrt = [f"{n}.{k}" for n in layers for k in ("weight", "bias")] + ["head.weight", "head.bias"]
    grads = append_backward(g, {loss: None}, set(wrt))
    g.outputs = [loss] + [grads[p] for p in wrt]
    out = run(g, {"image": image[None], "label": np.array([label], np.int32)}, dtype=np.float64)
    result = {p: out[grads[p]] for p in wrt}
    result["loss"] = float(out[loss])
    result["head"] = (fwd.data["head.weight"], fwd.data["head.bias"])
    return result


def _close(got: np.ndarray, want: np.ndarray, what: str) -> float:
    scale = float(np.abs(want).max())
    assert scale > 0, f"{what}: the oracle's gradient is all zero, the test would see nothing"
    err = float(np.abs(np.asarray(got, np.float64) - want).max() / scale)
    assert err <= RTOL, f"{what}: max |tte - jax| / max |jax| = {err:.3g} > {RTOL}"
    return err


@pytest.mark.parametrize("name", list(LAYERS))
def test_int8_gradients_equal_jax(name):
    path = MODELS_DIR / f"{name}.pkl"
    if not path.exists():
        pytest.skip(f"{path} not present")
    model = load_mcu_pickle(path)
    sized = dataclasses.replace(model, input_shape=(3, SIZE, SIZE))
    layers = LAYERS[name]
    worst = 0.0
    for seed, label in ((0, 0), (1, 2)):
        image = np.random.default_rng(seed).uniform(-1, 1, (3, SIZE, SIZE)).astype(np.float32)
        ours = _grads_tte(model, image, label, layers)
        theirs = oracle.qtrain_grads(sized, ref.quantize_image(sized, image), label,
                                     *ours["head"], layers)
        # dequantize emits float32 even in a float64 run: the features carry float32 rounding
        assert ours["loss"] == pytest.approx(theirs["loss"], rel=1e-6)
        for key in [f"{n}.{k}" for n in layers for k in ("weight", "bias")] + ["head.weight",
                                                                                "head.bias"]:
            worst = max(worst, _close(ours[key], theirs[key], f"{name} seed {seed} {key}"))
    print(f"\n{name}: {len(layers)} int8 layers + head, worst relative gradient error {worst:.2g}")


def test_qas_scaled_gradients_equal_jax():
    """The update's factors turn TTE's integer gradients into the oracle's QAS gradients."""
    path = MODELS_DIR / "mbv2-w0.35.pkl"
    if not path.exists():
        pytest.skip(f"{path} not present")
    model = load_mcu_pickle(path)
    sized = dataclasses.replace(model, input_shape=(3, SIZE, SIZE))
    layer = "blocks.16.pointwise2"
    image = np.random.default_rng(3).uniform(-1, 1, (3, SIZE, SIZE)).astype(np.float32)
    ours = _grads_tte(model, image, 1, [layer])
    theirs = oracle.qtrain_grads(sized, ref.quantize_image(sized, image), 1, *ours["head"],
                                 [layer])
    train = build_training_graph(mcu_graph(model, num_classes=CLASSES, input_size=SIZE),
                                 trainable=[f"{layer}.weight", f"{layer}.bias"],
                                 optimizer={"lr": 1.0}, qas=True)
    for node in train.nodes:
        if node.op not in ("sgd_update_q", "conv2d_s8_grad_weight_sgd_q"):
            continue
        param = node.inputs[2] if node.op.endswith("_sgd_q") else node.inputs[0]
        f = np.asarray(node.attrs["factors"]).reshape((-1,) + (1,) * (ours[param].ndim - 1))
        _close(ours[param] * f, theirs[f"{param}.qas"], f"QAS {param}")
