"""accumulate="auto": the compiler chooses per half kernel whether it sums in half or in
float, by the number of terms of its sums (tte.ir.precision.AUTO_MAX_HALF_TERMS)."""
from __future__ import annotations

import re

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import tte
from tte.ir.precision import AUTO_MAX_HALF_TERMS, sum_terms

from models import mbv2_stack


def _wide_map(hw: int = 32) -> onnx.ModelProto:
    """x[1,4,hw,hw] -> conv 3x3 4->8 -> global average pool -> linear 10: the conv's weight
    gradient sums hw*hw terms per element."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(rng.normal(0, 0.3, (8, 4, 3, 3)).astype(np.float32), "w1"),
             numpy_helper.from_array(rng.normal(0, 0.3, (10, 8)).astype(np.float32), "w2")]
    nodes = [helper.make_node("Conv", ["x", "w1"], ["c"], kernel_shape=[3, 3], pads=[1] * 4),
             helper.make_node("GlobalAveragePool", ["c"], ["p"]),
             helper.make_node("Flatten", ["p"], ["f"]),
             helper.make_node("Gemm", ["f", "w2"], ["y"], transB=1)]
    graph = helper.make_graph(
        nodes, "wide_map", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, hw, hw])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def _update_error(model: onnx.ModelProto, accumulate: str) -> float:
    """One SGD step (lr 1) of w1 in fp16 C against the float64 reference of the fp32 model:
    the largest error of the weight change, relative to the largest change."""
    x = np.random.default_rng(1).uniform(0.5, 1, (1, 4, 32, 32)).astype(np.float32)
    half = tte.compile(model, update=["w1"], precision="fp16", accumulate=accumulate,
                       optimizer={"lr": 1.0})
    c, ref = half.build(), tte.compile(model, update=["w1"], optimizer={"lr": 1.0}).reference(
        np.float64)
    before_c, before_ref = c.params()["w1"].astype(np.float64), ref.params()["w1"]
    c.train_step(x, 3)
    ref.train_step(x, 3)
    dc, dref = c.params()["w1"].astype(np.float64) - before_c, ref.params()["w1"] - before_ref
    return float(np.abs(dc - dref).max() / np.abs(dref).max())


def test_long_sums_take_float_accumulators(tmp_path):
    prog = tte.compile(mbv2_stack(), precision="fp16", accumulate="auto")
    g, schedule = prog.training_graph, prog.report()["schedule"]
    chosen = {i: e["accumulate"] for i, e in enumerate(schedule) if "accumulate" in e}
    assert set(chosen.values()) == {"fp16", "fp32"}  # this model has short and long sums
    for i, acc in chosen.items():
        assert (acc == "fp32") == (sum_terms(g, g.nodes[i]) > AUTO_MAX_HALF_TERMS)
    # the generated calls pass the choice as the kernels' last argument (acc32)
    source = prog.generate_c(tmp_path).source.read_text()
    for i, acc in chosen.items():
        call = source.split(f"/* {i}: ")[1].split("/* ")[0]
        assert re.search(rf", {int(acc == 'fp32')}\);", call), call


def test_auto_is_as_close_to_fp32_as_float_accumulation():
    """A weight gradient of 1024 terms: half accumulation errs by a few percent (measured
    2.3e-2), float accumulation by about one half rounding (7.1e-4); auto picks float there."""
    model = _wide_map()
    half, auto, full = (_update_error(model, a) for a in ("fp16", "auto", "fp32"))
    print(f"update error vs fp32: fp16 {half:.2e}, auto {auto:.2e}, fp32 {full:.2e}")
    assert auto <= 2 * full and half > 10 * auto
