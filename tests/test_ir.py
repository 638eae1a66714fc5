"""The IR itself: verifier, printer, passes, training-graph construction."""
import numpy as np
import pytest

import tte
from tte.ir import DType, Graph, Node, QuantParams, Role, Value
from tte.ir.verify import VerifyError, verify
from tte.ops import get_op
from tte.passes import eliminate_dead_nodes, schedule_updates_early


def small_graph() -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("tiny")
    x = g.add_input("x", (1, 2, 5, 5))
    w = g.add_param("w", rng.normal(size=(3, 2, 3, 3)).astype(np.float32))
    b = g.add_param("b", np.zeros(3, np.float32))
    fw = g.add_param("fw", rng.normal(size=(4, 3)).astype(np.float32))
    h = g.emit("conv2d", [x, w, b], {"pads": [1, 1, 1, 1]}, name_hint="conv")
    h = g.emit("relu", [h], name_hint="act")
    h = g.emit("global_avg_pool", [h], name_hint="gap")
    h = g.emit("reshape", [h], {"shape": [1, 3]}, name_hint="flat")
    g.outputs = [g.emit("linear", [h, fw, ""], name_hint="logits")]
    return g


def test_values_carry_dtype_role_and_quantization():
    q = QuantParams(scale=(0.1, 0.2), zero_point=(0, 0), axis=0)
    g = Graph()
    g.add_param("w8", np.zeros((2, 3), np.int8), Role.frozen)
    g.values["w8"].quant = q
    assert g.values["w8"].dtype is DType.i8 and g.values["w8"].quant.per_channel
    assert "q(axis=0)" in g.values["w8"].type_str()
    with pytest.raises(ValueError):
        QuantParams(scale=(0.1, 0.2), zero_point=(0, 0))  # per-tensor takes one scale


def test_printer_is_readable_and_stable():
    text = str(small_graph())
    assert text.splitlines()[0] == "graph tiny"
    assert "conv: f32[1x3x5x5] = conv2d(x, w, b) {strides=[1,1], pads=[1,1,1,1]" in text
    assert "logits: f32[1x4] = linear(flat, fw, _)" in text
    assert text == str(small_graph())


def test_verifier_rejects_use_before_definition():
    g = small_graph()
    g.nodes[0], g.nodes[1] = g.nodes[1], g.nodes[0]
    with pytest.raises(VerifyError, match="used before it is defined"):
        verify(g)


def test_verifier_rejects_wrong_recorded_shape():
    g = small_graph()
    g.values["act"].shape = (1, 3, 4, 4)
    with pytest.raises(VerifyError, match="shape rule gives"):
        verify(g)


def test_verifier_rejects_read_after_in_place_update():
    prog = tte.compile(small_graph(), optimizer={"lr": 0.1})
    g = prog.training_graph
    upd = next(i for i, n in enumerate(g.nodes) if n.op == "linear_grad_weight_sgd")
    assert g.nodes[upd].inputs[2] == "fw"
    reader = next(i for i, n in enumerate(g.nodes) if n.op == "linear_grad_input")
    assert reader < upd  # the input gradient uses the old weights
    g.nodes.insert(upd, g.nodes.pop(reader))  # now it would read the updated weights
    with pytest.raises(VerifyError, match="after node .* updated it in place"):
        verify(g)


def test_dead_nodes_are_removed():
    g = small_graph()
    g.emit("sigmoid", ["gap"], name_hint="unused")
    eliminate_dead_nodes(g)
    assert "unused" not in g.values and all(n.op != "sigmoid" for n in g.nodes)
    verify(g)


def test_updates_follow_their_gradient_and_last_read():
    g = small_graph()
    prog = tte.compile(g, optimizer={"lr": 0.1, "momentum": 0.9})
    t = prog.training_graph
    schedule_updates_early(t)  # idempotent
    verify(t)
    updates = [(i, n) for i, n in enumerate(t.nodes) if get_op(n.op).mutates]
    # weight and bias gradients are fused into their updates: no gradient buffer exists
    assert sorted(n.op for _, n in updates) == ["channel_sum_sgd", "conv2d_grad_weight_sgd",
                                                "linear_grad_weight_sgd"]
    producer = t.producers()
    for i, node in updates:
        param = node.inputs[get_op(node.op).mutates[0]]
        readers = [j for j, n in enumerate(t.nodes) if param in n.inputs and j != i]
        ready = [producer[v] for v in node.inputs if v in producer]
        assert i > max(readers + ready)
        assert t.values[node.inputs[-1]].role is Role.state  # the momentum buffer


def test_unfused_update_directly_follows_its_gradient():
    g = small_graph()
    c = np.ones(3, np.float32)
    names = [g.add_param(n, c.copy()) for n in ("bn.scale", "bn.bias", "bn.mean", "bn.var")]
    g.nodes.insert(1, Node("batch_norm", ["conv"] + names, ["bn"], {"epsilon": 1e-5}))
    g.add_value(Value("bn", g.values["conv"].shape))
    g.nodes[2].inputs[0] = "bn"
    verify(g)
    t = tte.compile(g, update=["bn.scale"], optimizer={"lr": 0.1}).training_graph
    ops = [n.op for n in t.nodes]
    assert ops[-2:] == ["batch_norm_grad_scale", "sgd_update"]  # no fused kernel for it


def test_only_needed_gradients_are_computed():
    prog = tte.compile(small_graph(), update=["fw"], optimizer={"lr": 0.1})
    ops = [n.op for n in prog.training_graph.nodes]
    assert "linear_grad_weight_sgd" in ops
    assert "linear_grad_input" not in ops and "conv2d_grad_weight" not in ops
    assert prog.trainable == ["fw"]


def test_bias_update_trains_only_biases():
    prog = tte.compile(small_graph(), update="bias", optimizer={"lr": 0.5})
    assert prog.trainable == ["b"]
    runner = prog.reference()
    before = runner.params()
    runner.train_step(np.ones((1, 2, 5, 5), np.float32), 2)
    after = runner.params()
    assert not np.array_equal(before["b"], after["b"])
    for name in ("w", "fw"):
        np.testing.assert_array_equal(before[name], after[name])
