"""ONNX frontend: every mapped op against onnx.reference, batch-norm folding, errors."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from tte.errors import TTEError, UnsupportedError
from tte.frontends.onnx_frontend import SUPPORTED_ONNX_OPS, load_onnx
from tte.interpreter import run
from tte.ir import Graph, Role

F = TensorProto.FLOAT
RNG = np.random.default_rng(0)


def rand(*shape: int, lo: float | None = None) -> np.ndarray:
    if lo is not None:
        return RNG.uniform(lo, lo + 1.5, shape).astype(np.float32)
    return RNG.standard_normal(shape).astype(np.float32)


def model(nodes: list[onnx.NodeProto], inputs: dict[str, tuple], outputs: list[str],
          inits: dict[str, np.ndarray] | None = None, opset: int = 17,
          dtype: int = F) -> onnx.ModelProto:
    """A model whose output types come from onnx shape inference."""
    graph = helper.make_graph(
        nodes, "t", [helper.make_tensor_value_info(n, dtype, s) for n, s in inputs.items()],
        [helper.make_empty_tensor_value_info(o) for o in outputs],
        [numpy_helper.from_array(v, k) for k, v in (inits or {}).items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    inferred = {v.name: v for v in onnx.shape_inference.infer_shapes(m).graph.value_info}
    for out in m.graph.output:
        out.CopyFrom(inferred[out.name])
    return m


def check(m: onnx.ModelProto, **kw) -> Graph:
    """Our interpreter on the imported graph equals onnx's reference evaluator."""
    inits = {t.name for t in m.graph.initializer}
    feeds = {}
    for v in m.graph.input:
        if v.name not in inits:
            dims = [d.dim_value or 1 for d in v.type.tensor_type.shape.dim]
            feeds[v.name] = rand(*dims, lo=0.5) if v.name.startswith("pos") else rand(*dims)
    expected = ReferenceEvaluator(m).run(None, feeds)
    g = load_onnx(m, **kw)
    got = run(g, feeds)
    assert len(g.outputs) == len(expected)
    for name, want in zip(g.outputs, expected):
        assert got[name].shape == want.shape, name
        np.testing.assert_allclose(got[name], want, rtol=1e-5, atol=1e-6)
    return g


def node(op: str, inputs: list[str], outputs: list[str] | None = None, **attrs) -> onnx.NodeProto:
    return helper.make_node(op, inputs, outputs or ["y"], **attrs)


def i64(*v: int) -> np.ndarray:
    return np.array(v, dtype=np.int64)


X4 = {"x": (1, 3, 9, 8)}
W = rand(4, 3, 3, 3)
B4 = rand(4)

# (id, nodes, inputs, initializers, opset)
CASES = [
    ("conv", [node("Conv", ["x", "W", "B"], pads=[1, 1, 1, 1])], X4, {"W": W, "B": B4}, 17),
    ("conv_nobias_strided_dilated_asym",
     [node("Conv", ["x", "W"], strides=[2, 1], dilations=[1, 2], pads=[0, 1, 2, 1])],
     X4, {"W": W}, 17),
    ("conv_group", [node("Conv", ["x", "W"], group=2, pads=[1, 0, 1, 0])],
     {"x": (2, 4, 7, 7)}, {"W": rand(6, 2, 3, 3)}, 17),
    ("conv_depthwise", [node("Conv", ["x", "W", "B"], group=4, strides=[2, 2])],
     {"x": (1, 4, 8, 8)}, {"W": rand(4, 1, 3, 3), "B": B4}, 17),
    *[(f"conv_{pad.lower()}", [node("Conv", ["x", "W"], auto_pad=pad, strides=[2, 3])],
       {"x": (1, 3, 9, 10)}, {"W": rand(2, 3, 4, 4)}, 17)
      for pad in ("SAME_UPPER", "SAME_LOWER", "VALID")],
    ("conv_1d", [node("Conv", ["x", "W", "B"], strides=[2], pads=[1, 2])], {"x": (2, 3, 11)},
     {"W": rand(4, 3, 3), "B": B4}, 17),
    ("conv_1d_weight_input", [node("Conv", ["x", "w"], auto_pad="SAME_LOWER", dilations=[2])],
     {"x": (1, 2, 9), "w": (3, 2, 2)}, {}, 17),
    ("conv_weight_input", [node("Conv", ["x", "w"])], {"x": (1, 2, 5, 5), "w": (3, 2, 2, 2)},
     {}, 17),
    ("gemm_linear", [node("Gemm", ["a", "B", "C"], transB=1)], {"a": (3, 5)},
     {"B": rand(4, 5), "C": rand(4)}, 17),
    ("gemm_alpha_beta", [node("Gemm", ["a", "B", "C"], alpha=0.5, beta=2.0)], {"a": (3, 5)},
     {"B": rand(5, 4), "C": rand(1, 4)}, 17),
    ("gemm_full_c", [node("Gemm", ["a", "B", "C"], transA=1, beta=0.3)], {"a": (5, 3)},
     {"B": rand(5, 4), "C": rand(3, 4)}, 17),
    ("gemm_scalar_c", [node("Gemm", ["a", "B", "C"], transB=1, beta=0.5)], {"a": (3, 5)},
     {"B": rand(4, 5), "C": np.array(0.7, np.float32)}, 17),
    ("gemm_runtime", [node("Gemm", ["a", "b", "c"], transA=1, alpha=1.5, beta=0.5)],
     {"a": (5, 3), "b": (5, 4), "c": (4,)}, {}, 17),
    ("gemm_runtime_transb", [node("Gemm", ["a", "b"], transB=1)], {"a": (3, 5), "b": (4, 5)},
     {}, 17),
    ("matmul", [node("MatMul", ["a", "b"])], {"a": (2, 3, 4), "b": (4, 5)}, {}, 17),
    ("matmul_const", [node("MatMul", ["a", "B"])], {"a": (3, 4)}, {"B": rand(4, 2)}, 17),
    *[(op.lower(), [node(op, ["a", "pos_b"])], {"a": (2, 3, 4), "pos_b": (3, 1)}, {}, 17)
      for op in ("Add", "Sub", "Mul", "Div")],
    ("sum", [node("Sum", ["a", "b", "C"])], {"a": (2, 3), "b": (3,)}, {"C": rand(2, 1)}, 17),
    ("mean", [node("Mean", ["a", "b"])], {"a": (2, 3), "b": (2, 3)}, {}, 17),
    ("add_const", [node("Add", ["a", "C"])], {"a": (2, 3)}, {"C": rand(3)}, 17),
    *[(op.lower(), [node(op, ["x"])], {"x": (2, 3, 4)}, {}, 17)
      for op in ("Relu", "Sigmoid", "Tanh", "HardSwish")],
    ("hardsigmoid", [node("HardSigmoid", ["x"], alpha=0.3, beta=0.4)], {"x": (2, 5)}, {}, 17),
    ("clip", [node("Clip", ["x", "lo", "hi"])], {"x": (3, 4)},
     {"lo": np.array(-0.5, np.float32), "hi": np.array(0.7, np.float32)}, 17),
    ("clip_max_only", [node("Clip", ["x", "", "hi"])], {"x": (3, 4)},
     {"hi": np.array(0.2, np.float32)}, 17),
    ("relu6_constant_nodes",
     [helper.make_node("Constant", [], ["lo"], value_float=0.0),
      helper.make_node("Constant", [], ["hi"], value_float=6.0),
      node("Mul", ["x", "ten"], ["t"]), node("Clip", ["t", "lo", "hi"])],
     {"x": (3, 4)}, {"ten": np.array(10.0, np.float32)}, 17),
    ("batchnorm_const_params",
     [node("BatchNormalization", ["x", "s", "b", "m", "v"])], {"x": (2, 3, 5)},
     {"s": rand(3), "b": rand(3), "m": rand(3), "v": rand(3, lo=0.5)}, 17),
    ("batchnorm", [node("BatchNormalization", ["x", "s", "b", "m", "pos_v"], epsilon=1e-3)],
     {"x": (2, 3, 4, 4), "s": (3,), "b": (3,), "m": (3,), "pos_v": (3,)}, {}, 17),
    ("avgpool", [node("AveragePool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                      pads=[1, 1, 1, 1])], X4, {}, 17),
    ("avgpool_include_pad_ceil", [node("AveragePool", ["x"], kernel_shape=[3, 2],
                                       strides=[2, 2], pads=[1, 0, 1, 1],
                                       count_include_pad=1, ceil_mode=1)], X4, {}, 17),
    ("avgpool_same_upper", [node("AveragePool", ["x"], kernel_shape=[2, 3], strides=[2, 2],
                                 auto_pad="SAME_UPPER")], X4, {}, 17),
    ("maxpool", [node("MaxPool", ["x"], kernel_shape=[3, 3], strides=[2, 2],
                      pads=[1, 1, 1, 1])], X4, {}, 17),
    ("maxpool_dilated_ceil", [node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2],
                                   dilations=[2, 2], ceil_mode=1)], X4, {}, 17),
    ("maxpool_same_upper", [node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2],
                                 auto_pad="SAME_UPPER")], X4, {}, 17),
    ("avgpool_1d", [node("AveragePool", ["x"], kernel_shape=[3], strides=[2], pads=[1, 1])],
     {"x": (1, 3, 10)}, {}, 17),
    ("maxpool_1d", [node("MaxPool", ["x"], kernel_shape=[3], pads=[1, 0], strides=[2])],
     {"x": (1, 3, 7)}, {}, 17),
    ("globalavgpool", [node("GlobalAveragePool", ["x"])], X4, {}, 17),
    ("reshape", [node("Reshape", ["x", "s"])], X4, {"s": i64(0, -1, 4)}, 17),
    ("flatten", [node("Flatten", ["x"], axis=2)], X4, {}, 17),
    ("flatten_negative", [node("Flatten", ["x"], axis=-1)], X4, {}, 17),
    ("squeeze", [node("Squeeze", ["x", "ax"])], {"x": (1, 3, 1, 2)}, {"ax": i64(0, -2)}, 17),
    ("squeeze_all", [node("Squeeze", ["x"])], {"x": (1, 3, 1, 2)}, {}, 17),
    ("unsqueeze", [node("Unsqueeze", ["x", "ax"])], {"x": (3, 2)}, {"ax": i64(0, -1)}, 17),
    ("transpose", [node("Transpose", ["x"], perm=[0, 2, 3, 1])], X4, {}, 17),
    ("transpose_default", [node("Transpose", ["x"])], {"x": (2, 3, 4)}, {}, 17),
    ("concat", [node("Concat", ["a", "C", "b"], axis=-1)], {"a": (2, 3), "b": (2, 1)},
     {"C": rand(2, 2)}, 17),
    ("split_sizes", [node("Split", ["x", "s"], ["y", "z"], axis=-1)], {"x": (2, 7)},
     {"s": i64(3, 4)}, 17),
    ("split_num_outputs", [node("Split", ["x"], ["u", "v", "y"], axis=1, num_outputs=3)],
     {"x": (2, 8)}, {}, 18),
    ("pad_constant", [node("Pad", ["x", "p", "v"])], {"x": (2, 3)},
     {"p": i64(1, 0, 2, 3), "v": np.array(1.5, np.float32)}, 17),
    ("pad_reflect", [node("Pad", ["x", "p"], mode="reflect")], X4,
     {"p": i64(0, 0, 1, 2, 0, 0, 2, 1)}, 17),
    ("pad_edge_axes", [node("Pad", ["x", "p", "", "ax"], mode="edge")], X4,
     {"p": i64(1, 2, 3, 0), "ax": i64(-1, 2)}, 18),
    ("slice", [node("Slice", ["x", "st", "en", "ax", "sp"])], X4,
     {"st": i64(1, -1, 0), "en": i64(100, -9, -2), "ax": i64(1, 2, -1), "sp": i64(1, -2, 3)}, 17),
    ("slice_to_front", [node("Slice", ["x", "st", "en", "ax", "sp"])], {"x": (4, 6)},
     {"st": i64(-1, 4), "en": i64(-100, 0), "ax": i64(0, 1), "sp": i64(-1, -2)}, 17),
    ("slice_default_axes", [node("Slice", ["x", "st", "en"])], {"x": (5, 6)},
     {"st": i64(1, 2), "en": i64(3, 2**62)}, 17),
    ("softmax", [node("Softmax", ["x"], axis=1)], {"x": (2, 3, 4)}, {}, 17),
    ("logsoftmax", [node("LogSoftmax", ["x"])], {"x": (2, 5)}, {}, 17),
    ("reducemean_attr", [node("ReduceMean", ["x"], axes=[-1, 1], keepdims=0)], X4, {}, 17),
    ("reducemean_input", [node("ReduceMean", ["x", "ax"])], X4, {"ax": i64(2, 3)}, 18),
    ("reducesum", [node("ReduceSum", ["x", "ax"], keepdims=0)], X4, {"ax": i64(0, 2)}, 17),
    ("reducesum_all", [node("ReduceSum", ["x"])], X4, {}, 17),
    ("reducesum_noop",
     [node("ReduceSum", ["x"], noop_with_empty_axes=1), node("Relu", ["y"], ["z"])],
     X4, {}, 17),
    ("identity_dropout",
     [node("Identity", ["x"], ["i"]), node("Dropout", ["i", "r"], ["d"]), node("Relu", ["d"])],
     {"x": (2, 3)}, {"r": np.array(0.5, np.float32)}, 17),
]


@pytest.mark.parametrize("nodes,inputs,inits,opset", [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_op_matches_reference(nodes, inputs, inits, opset):
    outs = [nodes[-1].output[0]]
    check(model(nodes, inputs, outs, inits, opset))


def test_maxpool_same_lower_equals_explicit_pads():
    """onnx.reference drops the first row for SAME_LOWER max pooling (its shape inference
    agrees with us), so compare with the explicit padding SAME_LOWER stands for."""
    same = model([node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2],
                       auto_pad="SAME_LOWER")], X4, ["y"])
    explicit = model([node("MaxPool", ["x"], kernel_shape=[2, 2], strides=[2, 2],
                           pads=[1, 0, 0, 0])], X4, ["y"])
    x = rand(*X4["x"])
    want = ReferenceEvaluator(explicit).run(None, {"x": x})[0]
    np.testing.assert_array_equal(run(load_onnx(same), {"x": x})["y"], want)


def test_shape_subgraph_folds_to_one_reshape():
    nodes = [node("Shape", ["x"], ["s"]), node("Gather", ["s", "zero"], ["d0"], axis=0),
             node("Unsqueeze", ["d0", "ax0"], ["u"]),
             node("Cast", ["u"], ["c"], to=TensorProto.INT64),
             node("Concat", ["c", "minus1"], ["shape"], axis=0), node("Reshape", ["x", "shape"])]
    g = check(model(nodes, {"x": (2, 3, 4)}, ["y"],
                    {"zero": i64(0)[0], "ax0": i64(0), "minus1": i64(-1)}))
    assert [n.op for n in g.nodes] == ["reshape"]
    assert g.values["y"].shape == (2, 12)
    assert not g.params(Role.const), "shape constants must not reach the IR"


def test_names_roles_and_linear():
    nodes = [node("Gemm", ["x", "fc.weight", "fc.bias"], ["logits"], transB=1)]
    g = check(model(nodes, {"x": ("batch", 5)}, ["logits"],
                    {"fc.weight": rand(4, 5), "fc.bias": rand(4), "unused": rand(2)}))
    assert g.inputs == ["x"] and g.values["x"].shape == (1, 5)
    assert g.outputs == ["logits"]
    assert [(n.op, n.inputs) for n in g.nodes] == [("linear", ["x", "fc.weight", "fc.bias"])]
    assert g.params() == ["fc.weight", "fc.bias"]
    assert all(g.values[p].role == Role.frozen for p in g.params())


def test_input_shapes_override_symbolic_dims():
    m = model([node("Relu", ["x"])], {"x": ("N", 3)}, ["y"])
    assert load_onnx(m, input_shapes={"x": (8, 3)}).values["y"].shape == (8, 3)
    with pytest.raises(TTEError, match="input_shapes"):
        load_onnx(m, input_shapes={"nope": (1,)})
    with pytest.raises(TTEError, match="rank"):
        load_onnx(m, input_shapes={"x": (8, 3, 1)})


def _conv_bn(conv_bias: bool, extra_use: bool = False) -> onnx.ModelProto:
    conv_in = ["x", "conv.w", "conv.b"] if conv_bias else ["x", "conv.w"]
    nodes = [node("Conv", conv_in, ["c"], pads=[1, 1, 1, 1]),
             node("BatchNormalization", ["c", "bn.s", "bn.b", "bn.m", "bn.v"], ["y"], epsilon=1e-3)]
    outputs = ["y"]
    if extra_use:
        nodes.append(node("Relu", ["c"], ["r"]))
        outputs.append("r")
    inits = {"conv.w": W, "bn.s": rand(4), "bn.b": rand(4), "bn.m": rand(4),
             "bn.v": rand(4, lo=0.5)}
    if conv_bias:
        inits["conv.b"] = B4
    return model(nodes, X4, outputs, inits)


@pytest.mark.parametrize("conv_bias,bias_name", [(True, "conv.b"), (False, "bn.b")])
def test_batchnorm_folds_into_conv(conv_bias, bias_name):
    g = check(_conv_bn(conv_bias))
    assert [n.op for n in g.nodes] == ["conv2d"]
    assert g.nodes[0].inputs == ["x", "conv.w", bias_name]
    assert g.nodes[0].outputs == ["y"]
    assert not np.allclose(g.data["conv.w"], W), "folded weight must differ from the original"


@pytest.mark.parametrize("extra_use,fold", [(True, True), (False, False)])
def test_batchnorm_kept_when_not_foldable(extra_use, fold):
    g = check(_conv_bn(True, extra_use), fold_batchnorm=fold)
    assert [n.op for n in g.nodes][:2] == ["conv2d", "batch_norm"]
    np.testing.assert_array_equal(g.data["conv.w"], W)


# --- errors -----------------------------------------------------------------------------
def test_truncated_file(tmp_path):
    data = _conv_bn(True).SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(TTEError, match="not a valid ONNX model") as info:
        load_onnx(path)
    assert "cut.onnx" in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(TTEError, match="cannot read"):
        load_onnx(tmp_path / "absent.onnx")


@pytest.mark.parametrize("name,where", [("norm1", "'norm1'"), ("", "#1")])
def test_unsupported_op_message(name, where):
    m = model([node("Relu", ["x"], ["r"]),
               helper.make_node("LpNormalization", ["r"], ["y"], name=name)], {"x": (2, 3)}, ["y"])
    with pytest.raises(UnsupportedError) as info:
        load_onnx(m)
    msg = str(info.value)
    assert "LpNormalization" in msg and where in msg and "Supported ONNX ops: " in msg
    assert "Conv" in msg and msg.count("\n") == 0
    if not name:
        assert "'y'" in msg


def test_old_opset():
    with pytest.raises(TTEError, match="opset 12.*13"):
        load_onnx(model([node("Relu", ["x"])], {"x": (2,)}, ["y"], opset=12))


def test_float64_input_rejected():
    m = model([node("Relu", ["x"])], {"x": (2,)}, ["y"], dtype=TensorProto.DOUBLE)
    with pytest.raises(UnsupportedError, match="float64"):
        load_onnx(m)


@pytest.mark.parametrize("nodes,inputs,inits,words", [
    ([node("Reshape", ["x", "s"], name="r1")], {"x": (2, 3), "s": (2,)}, {}, ["r1", "shape"]),
    ([node("Conv", ["x", "W"], name="c3d")], {"x": (1, 1, 3, 3, 3)}, {"W": rand(1, 1, 2, 2, 2)},
     ["c3d", "kernel_shape"]),
    ([node("MaxPool", ["x"], ["y", "idx"], kernel_shape=[2, 2], name="mp")], X4, {},
     ["mp", "Indices"]),
    ([node("Pad", ["x", "p"], mode="wrap", name="pw")], {"x": (2, 3)}, {"p": i64(0, 1, 0, 1)},
     ["pw", "mode"]),
    ([node("Gather", ["x", "i"], name="gath")], {"x": (3, 2)}, {"i": i64(0)},
     ["gath", "constant"]),
])
def test_unsupported_attribute_names_node(nodes, inputs, inits, words):
    outs = [o for o in nodes[-1].output]
    with pytest.raises(UnsupportedError) as info:
        load_onnx(model(nodes, inputs, outs, inits))
    for w in words:
        assert w in str(info.value)


def test_supported_ops_list():
    assert list(SUPPORTED_ONNX_OPS) == sorted(SUPPORTED_ONNX_OPS)
    for op in ("Conv", "Gemm", "BatchNormalization", "Reshape", "Slice", "Shape", "Constant",
               "Dropout", "ReduceSum", "LogSoftmax", "HardSwish"):
        assert op in SUPPORTED_ONNX_OPS


def test_gemm_weight_keeps_name_after_transpose():
    nodes = [node("Gemm", ["x", "fc.w", "fc.b"], alpha=2.0)]
    w = rand(5, 4)
    g = check(model(nodes, {"x": (3, 5)}, ["y"], {"fc.w": w, "fc.b": rand(4)}))
    assert [(n.op, n.inputs) for n in g.nodes] == [("linear", ["x", "fc.w", "fc.b"])]
    np.testing.assert_array_equal(g.data["fc.w"], 2 * w.T)
    assert g.values["fc.w"].role == Role.frozen


def test_shared_weight_is_not_overwritten():
    """A weight read by two Gemms keeps its name for the one that uses it as is."""
    nodes = [node("Gemm", ["x", "W"], ["a"], transB=1), node("Gemm", ["x", "W"], ["b"]),
             node("Add", ["a", "b"])]
    g = check(model(nodes, {"x": (3, 4)}, ["y"], {"W": rand(4, 4)}))
    assert g.nodes[0].inputs[1] == "W" and g.nodes[1].inputs[1] != "W"


@pytest.mark.parametrize("dtype,op", [(TensorProto.FLOAT16, "Relu"), (TensorProto.INT8, "Add")])
def test_other_input_dtypes(dtype, op):
    m = model([node(op, ["a", "b"][: 2 if op == "Add" else 1])], {"a": (2, 3), "b": (2, 3)}
              if op == "Add" else {"a": (2, 3)}, ["y"], dtype=dtype)
    np_dtype = helper.tensor_dtype_to_np_dtype(dtype)
    feeds = {v.name: (rand(2, 3) * 50).astype(np_dtype) for v in m.graph.input}
    g = load_onnx(m)
    got = run(g, feeds)[g.outputs[0]]
    want = ReferenceEvaluator(m).run(None, feeds)[0]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_local_function_is_inlined():
    fn = helper.make_function("local", "Relu6", ["a"], ["b"],
                              [helper.make_node("Clip", ["a", "lo", "hi"], ["b"]),
                               helper.make_node("Constant", [], ["lo"], value_float=0.0),
                               helper.make_node("Constant", [], ["hi"], value_float=6.0)][::-1],
                              [helper.make_opsetid("", 17)])
    graph = helper.make_graph([helper.make_node("Relu6", ["x"], ["y"], domain="local")], "t",
                              [helper.make_tensor_value_info("x", F, (2, 3))],
                              [helper.make_tensor_value_info("y", F, (2, 3))])
    m = helper.make_model(graph, functions=[fn], opset_imports=[
        helper.make_opsetid("", 17), helper.make_opsetid("local", 1)])
    g = load_onnx(m)
    assert [n.op for n in g.nodes] == ["clip"]
    x = rand(2, 3) * 10
    np.testing.assert_array_equal(run(g, {"x": x})["y"], np.clip(x, 0, 6))


def test_constant_int64_output_is_rejected_clearly():
    m = model([node("Shape", ["x"])], {"x": (2, 3)}, ["y"])
    with pytest.raises(UnsupportedError, match="graph output.*'y'.*int64"):
        load_onnx(m)
