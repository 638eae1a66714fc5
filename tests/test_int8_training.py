"""Training through int8 graphs: what the training graph contains (1-bit clamp masks, QAS
factors, in-place integer updates, master copies) and what its updates do."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tte
from tte.frontends.mcu_graph import mcu_graph
from tte.frontends.mcu_pickle import load_mcu_pickle
from tte.interpreter import initial_state, run
from tte.ir.graph import Graph
from tte.ir.types import DType, QuantParams
from tte.training import build_training_graph

MCU = Path(__file__).resolve().parents[2] / "shared" / "models" / "mcu_imagenet" / "mbv2-w0.35.pkl"
LAST = "blocks.16.pointwise2"


@pytest.fixture(scope="module")
def mbv2():
    if not MCU.exists():
        pytest.skip(f"{MCU} not present")
    return load_mcu_pickle(MCU)


def _train_graph(model, update, **kw) -> Graph:
    fwd = mcu_graph(model, num_classes=2, input_size=32)
    return build_training_graph(fwd, trainable=update, optimizer={"lr": 0.01}, **kw)


def test_clamp_masks_are_bits(mbv2):
    """Every int8 layer on the backward path writes a mask of ceil(n / 8) bytes; layers
    before the first trained tensor write none."""
    g = _train_graph(mbv2, [f"{LAST}.weight", "blocks.15.pointwise2.bias", "head.weight"])
    masked = [n for n in g.nodes if n.op in ("conv2d_s8", "add_s8") and n.attrs["mask"]]
    assert masked, "no int8 layer got a mask"
    for n in masked:
        y, mask = (g.values[v] for v in n.outputs)
        assert mask.dtype == DType.u8 and mask.shape == (-(-y.size // 8),)
    first = next(i for i, n in enumerate(g.nodes) if n.attrs.get("mask"))
    trained_at = min(i for i, n in enumerate(g.nodes) if "blocks.15.pointwise2.bias" in n.inputs)
    assert first >= trained_at  # nothing before the earliest trained layer pays for a mask


def test_qas_factors_and_integer_updates(mbv2):
    conv = next(c for c in mbv2.conv_layers() if c.name == LAST)
    for qas in (True, False):
        g = _train_graph(mbv2, [f"{LAST}.weight", f"{LAST}.bias"], qas=qas)
        ups = {n.inputs[2] if n.op.endswith("sgd_q") else n.inputs[0]: n for n in g.nodes
               if n.op in ("sgd_update_q", "conv2d_s8_grad_weight_sgd_q")}
        w_up, b_up = ups[f"{LAST}.weight"], ups[f"{LAST}.bias"]
        s_w = np.asarray(conv.w_scales, np.float64)
        want_w = s_w ** -2 if qas else np.ones_like(s_w)
        want_b = (conv.x_scale * s_w) ** -2 if qas else np.ones_like(s_w)
        np.testing.assert_allclose(w_up.attrs["factors"], want_w, rtol=1e-12)
        np.testing.assert_allclose(b_up.attrs["factors"], want_b, rtol=1e-12)
        assert (w_up.attrs["lo"], w_up.attrs["hi"]) == (-127, 127)
        assert g.values[f"{LAST}.weight"].dtype == DType.i8  # updated in place, still int8


def _one_conv_graph(scale: float) -> Graph:
    """x (int8) -> conv2d_s8 1x1 -> dequantize -> logits, for update arithmetic checks."""
    g = Graph("one_conv")
    x = g.add_input("x", (1, 2, 1, 1), DType.i8)
    w = g.add_param("w", np.array([[[[10]], [[-20]]], [[[30]], [[40]]]], np.int8))
    g.values[w].quant = QuantParams((scale, scale), (0, 0), axis=0)
    b = g.add_param("b", np.zeros(2, np.int32))
    y = g.emit("conv2d_s8", [x, w, b], {"in_scale": 0.1, "in_zero": 0, "w_scales": [scale] * 2,
                                        "out_scale": 0.05, "out_zero": 0,
                                        "rounding": "half_even"})
    y = g.emit("reshape", [y], {"shape": [1, 2]})
    g.outputs = [g.emit("dequantize", [y], {"scale": 0.05, "zero": 0})]
    return g


@pytest.mark.parametrize("master", [False, True])
def test_master_copies_keep_small_updates(master):
    """Steps below half an int8 step (here lr * dL/dw_q = 1 * (0.1 * 0.01 * 20 * dL/dy) <= 0.02)
    are lost without a master copy and add up with one."""
    fwd = _one_conv_graph(0.01)
    g = build_training_graph(fwd, trainable=["w"], optimizer={"lr": 1.0}, qas=False,
                             master_weights=master)
    state = initial_state(g)
    feeds = {"x": np.array([[[[20]], [[-10]]]], np.int8), g.inputs[1]: np.array([0], np.int32)}
    for _ in range(400):
        run(g, feeds, state)
    moved = np.count_nonzero(state["w"] != fwd.data["w"])
    assert (moved > 0) == master


def test_int_update_rounding_and_clamp():
    """p - rint(lr * g * factor) (half to even), clamped to [-127, 127] for int8."""
    from tte.ops import get_op
    ref = get_op("sgd_update_q").ref
    p = np.array([[126], [-126], [5], [5]], np.int8)
    g = np.array([[-3.0], [3.0], [0.5], [1.5]], np.float32)
    (new,) = ref(p, g, lr=1.0, factors=[1.0] * 4, lo=-127, hi=127)
    np.testing.assert_array_equal(new.reshape(-1), [127, -127, 5, 3])


def test_momentum_refused_for_integer_parameters(mbv2):
    with pytest.raises(tte.TTEError, match="momentum"):
        tte.compile(MCU, num_classes=2, input_size=32, update=[f"{LAST}.bias"],
                    optimizer={"lr": 0.01, "momentum": 0.9})


def test_full_update_trains_every_int8_conv(mbv2):
    prog = tte.compile(MCU, num_classes=2, input_size=32, update="full")
    convs = {c.name for c in mbv2.conv_layers()} - {"classifier"}
    assert {f"{c}.weight" for c in convs} <= set(prog.trainable)
    assert {f"{c}.bias" for c in convs} <= set(prog.trainable)
