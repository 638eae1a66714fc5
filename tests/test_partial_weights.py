"""Partially trained weights (tte/sparse.py, tte/ops/slice_channels.py): split storage (trained
channels in SRAM, the rest in flash), the sliced input activation the weight gradient reads,
channel choice by magnitude, fp32 and int8, in the reference interpreter and in C."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import tte
from tests.models import _Builder
from tests.sanitized_run import ROOT, sanitizer_env
from tests.test_sparse_update import _path, _scheme
from tte.errors import TTEError
from tte.ir.types import Role
from tte.memory import plan_memory
from tte.ops.slice_channels import split
from tte.sparse import conv_layers

SIZE = 32
CHOICES = ("first", "magnitude")
TINY_SCHEME = {"n_bias_update": 3, "weight_update_idx": [0, 1, 2],
               "weight_update_ratio": [0.5, 0.25, 0.5]}


def tiny(seed: int = 7, pw_weight: np.ndarray | None = None, group: int = 8):
    """fp32 ONNX: 3x3 stem (3 -> 8), 3x3 grouped / depthwise, 1x1 (8 -> 16), pool, linear."""
    b = _Builder(seed)
    h = b.relu(b.conv("x", 3, 8, 3, stride=2, name="stem"))
    h = b.relu(b.conv(h, 8, 8, 3, group=group, name="dw"))
    h = b.relu(b.conv(h, 8, 16, 1, name="pw"))
    h = b.node("GlobalAveragePool", [h])
    h = b.node("Flatten", [h], axis=1)
    model = b.build("tiny", [1, 3, 12, 12], b.gemm(h, 16, 5, name="fc"), 5)
    if pw_weight is not None:
        from onnx import numpy_helper
        init = next(t for t in model.graph.initializer if t.name == "pw.weight")
        init.CopyFrom(numpy_helper.from_array(pw_weight.astype(np.float32), "pw.weight"))
    return model


def partials(prog) -> dict[str, dict]:
    g = prog.training_graph
    return {n: v.meta["train_channels"] for n, v in g.values.items() if v.role is Role.partial}


def check_untouched(prog, params) -> None:
    """Every untrained channel of a partial weight equals the pretrained value bit for bit."""
    g = prog.training_graph
    for name, part in partials(prog).items():
        _, rest = split(params[name], part["axis"], part["channels"])
        _, want = split(g.data[name], part["axis"], part["channels"])
        np.testing.assert_array_equal(rest, want, err_msg=name)


def mcu(name: str, key: tuple, channels: str, **kw):
    scheme = {**_scheme(key), "channels": channels}
    return tte.compile(_path(name), num_classes=10, input_size=SIZE, update=scheme,
                       optimizer={"lr": 0.01}, **kw)


# --- int8 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", CHOICES)
@pytest.mark.parametrize("options", [{}, {"master_weights": True}, {"reorder": False}],
                         ids=["fused", "master", "unfused"])
def test_int8_partial_weights_train_in_c_as_in_the_reference(channels, options):
    # mbv2 49kb: depthwise (axis 0) and pointwise (axis 1) partial weights
    prog = mcu("mbv2-w0.35", ("mbv2-w0.35", "49kb"), channels, **options)
    parts = partials(prog)
    assert {p["axis"] for p in parts.values()} == {0, 1}
    if channels == "first":
        assert all(p["channels"] == list(range(p["count"])) for p in parts.values())
    else:
        assert any(p["channels"] != list(range(p["count"])) for p in parts.values())
    c, ref = prog.build(), prog.reference()
    rng = np.random.default_rng(1)
    for step in range(2):
        x = rng.uniform(-1, 1, (3, SIZE, SIZE)).astype(np.float32)
        assert c.train_step(x, step) == pytest.approx(ref.train_step(x, step), rel=1e-5)
    got, want = c.params(), ref.params()
    for name in parts:
        diff = np.abs(got[name].astype(np.int64) - want[name])
        assert diff.max() <= 1 and np.count_nonzero(diff) <= 0.01 * diff.size, name
        assert np.any(got[name] != prog.training_graph.data[name]), f"{name} did not train"
    check_untouched(prog, got)
    check_untouched(prog, want)


def test_magnitude_picks_the_largest_real_valued_channels():
    prog = mcu("mcunet-5fps", ("mcunet-5fps", "49kb"), "magnitude")
    fwd = prog.forward_graph
    convs = {n.inputs[1]: n for n in conv_layers(fwd)}
    for name, part in partials(prog).items():
        w = fwd.data[name] * np.asarray(convs[name].attrs["w_scales"]).reshape(-1, 1, 1, 1)
        norms = np.linalg.norm(np.moveaxis(w, part["axis"], 0).reshape(
            w.shape[part["axis"]], -1), axis=1)
        k = part["count"]
        assert sorted(part["channels"]) == part["channels"] and len(part["channels"]) == k
        assert norms[part["channels"]].min() >= np.delete(norms, part["channels"]).max()


def test_magnitude_ties_go_to_the_lower_index():
    prog = tte.compile(tiny(pw_weight=np.ones((16, 8, 1, 1))),
                       update={**TINY_SCHEME, "channels": "magnitude"})
    assert partials(prog)["pw.weight"]["channels"] == [0, 1, 2, 3]


# --- fp32 -------------------------------------------------------------------------------------

@pytest.mark.parametrize("channels", CHOICES)
@pytest.mark.parametrize("optimizer, reorder", [
    ({"lr": 0.05}, True),
    ({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}, True),
    ({"lr": 0.05, "momentum": 0.9, "weight_decay": 0.01}, False)],
    ids=["sgd", "momentum-wd", "momentum-wd-unfused"])
def test_fp32_partial_weights_train_in_c_as_in_the_reference(channels, optimizer, reorder):
    prog = tte.compile(tiny(), update={**TINY_SCHEME, "channels": channels},
                       optimizer=optimizer, reorder=reorder)
    assert set(partials(prog)) == {"stem.weight", "dw.weight", "pw.weight"}
    c, ref = prog.build(), prog.reference()
    rng = np.random.default_rng(0)
    for step in range(4):
        x = rng.standard_normal((3, 12, 12)).astype(np.float32)
        assert c.train_step(x, step % 5) == pytest.approx(ref.train_step(x, step % 5), rel=1e-5)
    got, want = c.params(), ref.params()
    for name in prog.trainable:
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5, err_msg=name)
    check_untouched(prog, got)
    check_untouched(prog, want)


@pytest.mark.parametrize("channels", CHOICES)
def test_fp32_partial_gradients_against_jax(channels):
    from tests.jax_oracle import initializers, jax_train
    model = tiny()
    lr = 0.5
    prog = tte.compile(model, update={**TINY_SCHEME, "channels": channels},
                       optimizer={"lr": lr})
    x = np.random.default_rng(3).standard_normal((1, 3, 12, 12)).astype(np.float32)
    start = initializers(model)
    _, stepped = jax_train(model, start, [x], [2], lr=lr, trainable=set(prog.trainable))
    parts = partials(prog)
    c, ref = prog.build(), prog.reference()
    c.train_step(x, 2)
    ref.train_step(x, 2)
    for name in prog.trainable:
        want = stepped[name]
        if name in parts:  # one step: trained channels as jax moves them, the rest unchanged
            axis, chans = parts[name]["axis"], parts[name]["channels"]
            want = start[name].copy()
            index = [slice(None)] * want.ndim
            index[axis] = chans
            want[tuple(index)] = np.take(stepped[name], chans, axis=axis)
        for got in (c.params()[name], ref.params()[name]):
            # the update moves each weight by lr * grad; compare grads to float32 precision
            grad_got, grad_want = (start[name] - got) / lr, (start[name] - want) / lr
            np.testing.assert_allclose(grad_got, grad_want, rtol=0,
                                       atol=2e-6 * max(np.abs(grad_want).max(), 1.0),
                                       err_msg=name)


def test_fp32_mcu_backbone_partial():
    prog = tte.compile(_path("mcunet-5fps"), num_classes=10, input_size=SIZE,
                       precision="fp32", update={**_scheme(("mcunet-5fps", "49kb")),
                                                 "channels": "magnitude"})
    assert partials(prog) and all(v.dtype.is_float for n, v in prog.training_graph.values.items()
                                  if n in partials(prog))
    c, ref = prog.build(), prog.reference()
    x = np.random.default_rng(2).uniform(-1, 1, (3, SIZE, SIZE)).astype(np.float32)
    for step in range(2):
        assert c.train_step(x, step) == pytest.approx(ref.train_step(x, step), rel=1e-5)
    got, want = c.params(), ref.params()
    for name in partials(prog):
        np.testing.assert_allclose(got[name], want[name], rtol=0, atol=1e-5, err_msg=name)
    check_untouched(prog, got)


# --- storage and memory -----------------------------------------------------------------------

@pytest.mark.parametrize("channels", CHOICES)
def test_split_storage_in_report_and_c(channels, tmp_path):
    prog = mcu("mcunet-5fps", ("mcunet-5fps", "49kb"), channels, master_weights=True)
    g = prog.training_graph
    parts = partials(prog)
    trained = {n: v.nbytes // v.shape[parts[n]["axis"]] * parts[n]["count"]
               for n, v in g.values.items() if n in parts}
    whole = {n: v.nbytes for n, v in g.values.items() if v.role is Role.trainable}
    frozen = sum(v.nbytes for v in g.values.values() if v.role in (Role.frozen, Role.const))
    report = prog.report()
    mem = report["memory"]
    assert mem["sram"]["trainable_parameters"] == sum(trained.values()) + sum(whole.values())
    assert mem["flash_bytes"] == frozen + mem["constant_tables_bytes"] + sum(
        g.values[n].nbytes - b for n, b in trained.items())
    rows = {u["name"]: u for u in report["updates"]}
    for name, b in trained.items():
        assert rows[name]["bytes"] == b
        assert rows[name]["master_copy_bytes"] == 4 * b  # fp32 copy of the trained channels
        assert rows[name]["trained_channels"]["channels"] == parts[name]["channels"]
    project = prog.generate_c(str(tmp_path))
    src = project.source.read_text()
    for name, b in trained.items():
        v = g.values[name]
        assert f"static int8_t t_{name.replace('.', '_')}[{b}] =" in src
        assert f"static const int8_t w_{name.replace('.', '_')}_frozen[{v.nbytes - b}] =" in src
    json.dumps(report)


def test_weight_gradient_reads_the_sliced_activation():
    prog = mcu("mcunet-5fps", ("mcunet-5fps", "49kb"), "magnitude")
    g = prog.training_graph
    producer, uses = g.producers(), g.consumers()
    plan = plan_memory(g)
    ends = {v: b.end for b in plan.buffers for v in b.values}
    dying = 0
    for name, part in partials(prog).items():
        conv = next(i for i, n in enumerate(g.nodes) if n.op == "conv2d_s8"
                    and n.inputs[1] == name)
        grad = next(n for n in g.nodes if n.op == "conv2d_s8_grad_weight_sgd_q"
                    and n.inputs[2] == name)
        sliced = g.nodes[producer[grad.inputs[0]]]
        assert sliced.op == "slice_channels" and sliced.phase == "forward"
        assert sliced.inputs[0] == g.nodes[conv].inputs[0]
        assert sliced.attrs["channels"] == part["channels"]
        assert producer[grad.inputs[0]] == conv - 1  # made where the conv reads the input
        assert g.values[grad.inputs[0]].shape[1] == part["count"]
        x = g.nodes[conv].inputs[0]
        if set(uses[x]) <= {conv - 1, conv}:  # nothing else needs the full activation
            assert ends[x] == conv
            dying += 1
    assert dying  # the scheme has such a layer: its input dies after the forward conv


def test_partial_update_of_a_grouped_conv_is_refused():
    with pytest.raises(TTEError, match="group-1 or depthwise"):
        tte.compile(tiny(group=2), update=TINY_SCHEME)


# --- sanitizers -------------------------------------------------------------------------------

SANITIZED = """
import numpy as np, tte
from tests.test_partial_weights import tiny, TINY_SCHEME, check_untouched, mcu
progs = [tte.compile(tiny(), update={**TINY_SCHEME, "channels": "magnitude"},
                     optimizer={"lr": 0.05, "momentum": 0.9}, reorder=False),
         mcu("mbv2-w0.35", ("mbv2-w0.35", "49kb"), "magnitude", master_weights=True)]
rng = np.random.default_rng(0)
for prog in progs:
    c, ref = prog.build(sanitize=True), prog.reference()
    shape = prog.forward_graph.values[prog.forward_graph.inputs[0]].shape[1:]
    for step in range(2):
        x = rng.uniform(-1, 1, shape).astype(np.float32)
        a, b = c.train_step(x, step), ref.train_step(x, step)
        assert abs(a - b) <= 1e-5 * max(abs(b), 1), (a, b)
    check_untouched(prog, c.params())
    c.forward(x)
print("ok")
"""


def test_partial_weights_run_clean_under_sanitizers():
    _path("mbv2-w0.35")
    run = subprocess.run([sys.executable, "-c", SANITIZED], env=sanitizer_env(), cwd=str(ROOT),
                         capture_output=True, text=True, timeout=900)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stderr[-4000:]
