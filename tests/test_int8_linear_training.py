"""Training through int8 fully connected layers (linear_s8, TFLite's FULLY_CONNECTED): the
classifier of every MLPerf Tiny int8 model.

(a) gradients against an independent JAX implementation of the quantized linear forward,
    differentiated by jax.grad with tests/jax_qtrain_oracle.py's conventions (rounding
    straight through, the clamp's gradient 1 inside [act_min, act_max] and 0 outside);
(b) the generated C equal to the numpy reference bit for bit over several steps on the
    MLPerf Tiny int8 models (biases everywhere, and a scheme: the FC layer and the biases of
    the last convolutions);
(c) fine-tuning the last layers of the keyword-spotting model lowers its loss.
"""
from __future__ import annotations

import functools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import tte
from tests.jax_qtrain_oracle import round_ste  # also turns on float64 in JAX
from tte.api import load_model
from tte.autodiff import append_backward
from tte.cli import main
from tte.errors import TTEError
from tte.interpreter import run
from tte.ir.graph import Graph
from tte.ir.types import DType, QuantParams
from tte.ops import get_op
from tte.sparse import PartialWeight
from tte.training import build_training_graph

MLPERF = Path(__file__).resolve().parents[2] / "shared" / "models" / "mlperf_tiny"
MODELS = ["kws_ref_model", "resnet8_int8", "vww_96_int8"]
RTOL = 1e-4
# the FC layer and the biases of the last two convolutions ("head": true is the default)
LAST_LAYERS = {"n_bias_update": 2}


def _model(name: str) -> Path:
    path = MLPERF / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def _fc(g: Graph):
    return next(n for n in g.nodes if n.op == "linear_s8")


# --- the JAX oracle: x_q, w_q, b_q are integer-valued float64 arrays ---------------------------

@functools.partial(jax.custom_jvp, nondiff_argnums=(1, 2))
def _clamp(v, lo, hi):
    """Forward: clamp to [lo, hi]. Backward: 1 where lo <= v <= hi, else 0."""
    return jnp.where(v < lo, float(lo), jnp.where(v > hi, float(hi), v))


@_clamp.defjvp
def _clamp_jvp(lo, hi, primals, tangents):
    (v,), (t,) = primals, tangents
    return _clamp(v, lo, hi), jnp.where((v >= lo) & (v <= hi), t, jnp.zeros_like(t))


def _jax_linear(x_q, w_q, b_q, a: dict):
    """y_q = clamp(round((sum (x_q - x_zero) (w_q - w_zero) + b_q) * s_x s_w / s_y) + y_zero)."""
    mult = (a["in_scale"] * np.asarray(a["w_scales"], np.float64)) / a["out_scale"]
    acc = (x_q - a["in_zero"]) @ (w_q - a["w_zero"]).T + b_q
    return _clamp(round_ste(acc * mult) + a["out_zero"], a["act_min"], a["act_max"])


def _jax_loss(layers: list[dict], out: tuple[float, int], labels: np.ndarray):
    """loss(params, x_q) of a chain of linear layers, dequantized, softmax cross-entropy;
    params: [(w_q, b_q)] per layer. Also returns each layer's int8 output."""
    def loss(params, x_q):
        ys = []
        for (w, b), a in zip(params, layers):
            x_q = _jax_linear(x_q, w, b, a)
            ys.append(x_q)
        logits = out[0] * (x_q - out[1])
        logp = logits - jax.scipy.special.logsumexp(logits, axis=1, keepdims=True)
        return -jnp.mean(jnp.take_along_axis(logp, jnp.asarray(labels)[:, None], axis=1)), ys
    return loss


def _close(got: np.ndarray, want: np.ndarray, what: str) -> None:
    scale = float(np.abs(want).max())
    assert scale > 0, f"{what}: the oracle's gradient is all zero, the test would see nothing"
    err = float(np.abs(np.asarray(got, np.float64) - want).max()) / scale
    assert err <= RTOL, f"{what}: max |tte - jax| / max |jax| = {err:.3g} > {RTOL}"


# --- graphs ------------------------------------------------------------------------------------

def _linear_attrs(rng, k: int, m: int, *, in_scale, in_zero, per_channel, w_zero, out_scale,
                  out_zero, act_min=-128, act_max=127) -> dict:
    w_scales = rng.uniform(0.005, 0.02, m if per_channel else 1)
    return {"in_scale": in_scale, "in_zero": in_zero, "w_scales": [float(s) for s in w_scales],
            "w_zero": w_zero, "out_scale": out_scale, "out_zero": out_zero,
            "act_min": act_min, "act_max": act_max, "rounding": "half_even"}


def _two_linears(batch: int = 3) -> tuple[Graph, list[dict], list[str]]:
    """x (f32) -> quantize -> linear_s8 (per-channel weight scales, fused ReLU) -> linear_s8
    (one weight scale, weight zero point 3) -> dequantize; both clamps cut some elements, so
    the masks matter."""
    rng = np.random.default_rng(7)
    k, h, m = 24, 16, 5
    g = Graph("two_linears")
    x = g.add_input("x", (batch, k), DType.f32)
    attrs = [_linear_attrs(rng, k, h, in_scale=1 / 127, in_zero=3, per_channel=True, w_zero=0,
                           out_scale=0.015, out_zero=-20, act_min=-20),
             _linear_attrs(rng, h, m, in_scale=0.015, in_zero=-20, per_channel=False,
                           w_zero=3, out_scale=0.03, out_zero=4)]
    y = g.emit("quantize", [x], {"scale": 1 / 127, "zero": 3, "rounding": "half_even"})
    for i, (a, (fan_in, fan_out)) in enumerate(zip(attrs, [(k, h), (h, m)])):
        w = g.add_param(f"fc{i}.weight", rng.integers(-127, 128, (fan_out, fan_in), np.int8))
        scales = tuple(a["w_scales"])
        g.values[w].quant = QuantParams(scales, (a["w_zero"],) * len(scales), axis=0)
        b = g.add_param(f"fc{i}.bias", rng.integers(-3000, 3000, fan_out).astype(np.int32))
        y = g.emit("linear_s8", [y, w, b], a)
    g.outputs = [g.emit("dequantize", [y], {"scale": 0.03, "zero": 4})]
    return g, attrs, ["fc0.weight", "fc0.bias", "fc1.weight", "fc1.bias"]


def _fc_alone(path: Path, batch: int = 4) -> tuple[Graph, dict, list[str]]:
    """A model's int8 FC layer, with its weights and quantization (TFLite rounding), fed
    int8 features directly and dequantized."""
    fwd = load_model(path)
    fc = _fc(fwd)
    k = fwd.values[fc.inputs[0]].shape[1]
    g = Graph("fc")
    x = g.add_input("x", (batch, k), DType.i8)
    w, b = (g.add_param(p, fwd.data[p]) for p in fc.inputs[1:3])
    y = g.emit("linear_s8", [x, w, b], dict(fc.attrs, mask=False))
    g.outputs = [g.emit("dequantize", [y], {"scale": fc.attrs["out_scale"],
                                            "zero": fc.attrs["out_zero"]})]
    return g, dict(fc.attrs), [w, b]


def _tte_grads(fwd: Graph, wrt: list[str], feeds: dict, labels: np.ndarray) -> dict:
    """TTE's own backward (append_backward) run by the numpy interpreter in float64."""
    g = fwd.copy()
    label = g.add_input("label", labels.shape, DType.i32)
    loss = g.emit("softmax_cross_entropy", [fwd.outputs[0], label])
    grads = append_backward(g, {loss: None}, set(wrt))
    ys = [n.outputs[0] for n in g.nodes if n.op == "linear_s8"]
    g.outputs = [loss] + [grads[p] for p in wrt] + ys
    out = run(g, {**feeds, label: labels}, dtype=np.float64)
    return {"loss": float(out[loss]), "ys": [out[y] for y in ys],
            **{p: out[grads[p]] for p in wrt}}


# --- (a) gradients against jax.grad -----------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 1])
def test_linear_gradients_equal_jax(seed):
    """Weights, biases (per-channel and per-tensor weight scales, a weight zero point) and the
    input gradient in real units, through two int8 layers and both their clamps."""
    fwd, attrs, params = _two_linears()
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (3, 24)).astype(np.float32)
    labels = rng.integers(0, 5, 3).astype(np.int32)
    ours = _tte_grads(fwd, params + ["x"], {"x": x}, labels)
    x_q = np.clip(np.rint(x.astype(np.float64) * 127) + 3, -128, 127)
    init = [tuple(fwd.data[p].astype(np.float64) for p in params[i:i + 2]) for i in (0, 2)]
    loss = _jax_loss(attrs, (0.03, 4), labels)
    (value, ys), (g_params, g_x) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        init, x_q)
    for i, (got, want) in enumerate(zip(ours["ys"], ys)):  # same forward, so same masks
        np.testing.assert_array_equal(got, np.asarray(want), err_msg=f"layer {i} output")
        assert 0 < np.mean((got == attrs[i]["act_min"]) | (got == 127)) < 0.9
    assert ours["loss"] == pytest.approx(float(value), rel=1e-6)
    for name, want in zip(params, [g for pair in g_params for g in pair]):
        _close(ours[name], np.asarray(want), name)
    _close(ours["x"], np.asarray(g_x) * 127, "x (real units: d/dx_q / s_x)")


@pytest.mark.parametrize("name", MODELS)
def test_mlperf_fc_gradients_equal_jax(name):
    """Each model's own FC layer (TFLite rounding; the oracle rounds in double, which gives
    the same int8 outputs here, checked)."""
    fwd, a, (w, b) = _fc_alone(_model(name))
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, fwd.values["x"].shape).astype(np.int8)
    classes = fwd.values[w].shape[0]
    labels = rng.integers(0, classes, x.shape[0]).astype(np.int32)
    ours = _tte_grads(fwd, [w, b, "x"], {"x": x}, labels)
    loss = _jax_loss([a], (a["out_scale"], a["out_zero"]), labels)
    params = [(fwd.data[w].astype(np.float64), fwd.data[b].astype(np.float64))]
    (_, ys), (g_params, g_x) = jax.value_and_grad(loss, argnums=(0, 1), has_aux=True)(
        params, x.astype(np.float64))
    np.testing.assert_array_equal(ours["ys"][0], np.asarray(ys[0]))
    _close(ours[w], np.asarray(g_params[0][0]), f"{name} FC weight")
    _close(ours[b], np.asarray(g_params[0][1]), f"{name} FC bias")
    _close(ours["x"], np.asarray(g_x) / a["in_scale"], f"{name} FC input")


def test_qas_factors_of_a_linear():
    """s_w^-2 for the weight, (s_x s_w)^-2 for the bias, one per output also when the layer
    has one weight scale; the weight update is fused with its gradient."""
    fwd, attrs, _ = _two_linears()
    g = build_training_graph(fwd, trainable=["fc0.weight", "fc0.bias", "fc1.weight",
                                             "fc1.bias"], optimizer={"lr": 0.01})
    ups = {n.inputs[2] if n.op.endswith("grad_weight_sgd_q") else n.inputs[0]: n
           for n in g.nodes if n.op in ("sgd_update_q", "linear_s8_grad_weight_sgd_q")}
    assert {ups[f"fc{i}.weight"].op for i in (0, 1)} == {"linear_s8_grad_weight_sgd_q"}
    for i, a in enumerate(attrs):
        s_w = np.broadcast_to(a["w_scales"], fwd.data[f"fc{i}.weight"].shape[:1])
        np.testing.assert_allclose(ups[f"fc{i}.weight"].attrs["factors"], s_w ** -2, rtol=1e-12)
        np.testing.assert_allclose(ups[f"fc{i}.bias"].attrs["factors"],
                                   (a["in_scale"] * s_w) ** -2, rtol=1e-12)


def test_partial_linear_weight_is_refused():
    fwd, _, _ = _two_linears()
    with pytest.raises(TTEError, match="channel ratios below 1 are supported for convolutions"):
        build_training_graph(fwd, trainable=["fc1.weight"], optimizer={"lr": 0.01},
                             partial={"fc1.weight": PartialWeight(1, (0, 1))})


# --- (b) C equal to the reference --------------------------------------------------------------

def _same_steps(prog, xs, labels) -> dict[str, np.ndarray]:
    """Steps of the C build and of the reference: equal losses, equal parameters after."""
    c, ref = prog.build(), prog.reference()
    for x, label in zip(xs, labels):
        assert c.train_step(x, label) == ref.train_step(x, label)
    got, want = c.params(), ref.params()
    for name in prog.trainable:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    return got


def test_linear_kernels_equal_their_references_with_a_batch():
    """The kernels alone at batch 3 (the generated step takes one sample), bit for bit:
    the references sum over m, and over the batch, in the C order."""
    from tests.kernels import ckernels
    ffi, lib = ckernels.load()
    rng = np.random.default_rng(4)
    n, k, m, x_zero, w_zero = 3, 40, 7, -5, 2
    x = rng.integers(-128, 128, (n, k)).astype(np.int8)
    w = rng.integers(-127, 128, (m, k)).astype(np.int8)
    gy = (rng.standard_normal((n, m)) * (rng.random((n, m)) < 0.7)).astype(np.float32)
    w_scales = rng.uniform(0.001, 0.01, m).astype(np.float32)
    scales = (w_scales * np.float32(0.05)).astype(np.float32)

    def ptr(ctype, a):
        return ffi.cast(f"{ctype} *", a.ctypes.data)
    f = functools.partial(ptr, "float")
    gx = np.full((n, k), np.nan, np.float32)
    lib.tte_linear_s8_grad_input(f(gy), n, m, ptr("int8_t", w), w_zero, f(w_scales), f(gx), k)
    want = get_op("linear_s8_grad_input").ref(gy, w, w_scales=list(w_scales), w_zero=w_zero)
    np.testing.assert_array_equal(gx, want[0])
    gw = np.full((m, k), np.nan, np.float32)
    lib.tte_linear_s8_grad_weight(ptr("int8_t", x), n, k, x_zero, f(gy), m, f(gw), f(scales))
    want = get_op("linear_s8_grad_weight").ref(x, gy, in_zero=x_zero, scales=list(scales))
    np.testing.assert_array_equal(gw, want[0])
    factors = (np.float32(1) / scales ** 2).astype(np.float32) * np.float32(1e-6)
    sgd = {"lr": 0.3, "factors": list(factors), "lo": -127, "hi": 127}
    for master in (None, w.astype(np.float32) + 0.25):
        w_c, m_c = w.copy(), None if master is None else master.copy()
        lib.tte_linear_s8_grad_weight_sgd(
            ptr("int8_t", x), n, k, x_zero, f(gy), m, ptr("int8_t", w_c),
            ffi.NULL if m_c is None else f(m_c), f(scales), 0.3, f(factors), -127, 127)
        want = get_op("linear_s8_grad_weight_sgd_q").ref(
            x, gy, w, master, in_zero=x_zero, scales=list(scales), train_axis=0,
            train_channels=None, **sgd)
        np.testing.assert_array_equal(w_c, want[0])
        assert (w_c != w).any()
        if master is not None:
            np.testing.assert_array_equal(m_c, want[1])


@pytest.mark.parametrize("master", [False, True])
def test_two_linears_in_c_as_in_the_reference(master):
    """Per-channel scales, a weight zero point, master copies or none."""
    fwd, _, params = _two_linears(batch=1)
    prog = tte.compile(fwd, update=params, optimizer={"lr": 0.05}, master_weights=master)
    rng = np.random.default_rng(5)
    xs = rng.uniform(-1, 1, (3, 24)).astype(np.float32)
    got = _same_steps(prog, xs, [3, 1, 0])
    assert all((got[p] != fwd.data[p]).any() for p in params)


@pytest.mark.parametrize("update", ["bias", "scheme"])
@pytest.mark.parametrize("name", MODELS)
def test_mlperf_int8_models_train_in_c_as_in_the_reference(name, update):
    path = _model(name)
    prog = tte.compile(path, update=LAST_LAYERS if update == "scheme" else update,
                       optimizer={"lr": 0.01})
    g = prog.training_graph
    fc = _fc(prog.forward_graph)
    if update == "scheme":  # the FC layer and the last two convolutions' biases
        convs = [n for n in prog.forward_graph.nodes if n.op == "conv2d_s8"]
        assert set(prog.trainable) == set(fc.inputs[1:3]) | {c.inputs[2] for c in convs[-2:]}
        readers = [i for i, n in enumerate(g.nodes) if fc.inputs[1] in n.inputs]
        update_at = next(i for i, n in enumerate(g.nodes)
                         if n.op == "linear_s8_grad_weight_sgd_q")
        assert update_at == readers[-1]  # after the input gradient read the old weights
    else:
        assert fc.inputs[2] in prog.trainable and fc.inputs[1] not in prog.trainable
    shape = prog.forward_graph.values[prog.forward_graph.inputs[0]].shape[1:]
    rng = np.random.default_rng(1)
    xs = rng.integers(-128, 128, (3,) + shape).astype(np.int8)
    got = _same_steps(prog, xs, [0, 1, 1])
    assert all((got[p] != g.data[p]).any() for p in prog.trainable)


# --- (c) fine-tuning lowers the loss, and the CLI ---------------------------------------------

def test_kws_last_layers_fine_tune_lowers_the_loss():
    """Four fixed inputs near the input zero point, each labelled with a class the model
    does not predict, repeated: the FC layer and the last biases learn them."""
    prog = tte.compile(_model("kws_ref_model"), update={"n_bias_update": 3},
                       optimizer={"lr": 0.05})
    c = prog.build()
    x_in = prog.forward_graph.values[prog.forward_graph.inputs[0]]
    rng = np.random.default_rng(2)
    xs = np.clip(rng.normal(x_in.quant.zero_point[0], 25, (4,) + x_in.shape[1:]), -128, 127)
    xs = xs.astype(np.int8)
    labels = [(int(np.argmax(c.forward(x))) + 1 + i) % 12 for i, x in enumerate(xs)]
    epochs = [np.mean([c.train_step(x, y) for x, y in zip(xs, labels)]) for _ in range(15)]
    assert epochs[-1] < 0.1 * epochs[0], epochs
    assert [int(np.argmax(c.forward(x))) for x in xs] == labels


def test_cli_compiles_kws_bias_training(tmp_path, capsys):
    out = tmp_path / "kws"
    assert main(["compile", str(_model("kws_ref_model")), "--update", "bias",
                 "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["report", str(out)]) == 0
    text = capsys.readouterr().out
    prog = tte.compile(_model("kws_ref_model"), update="bias")
    assert len(prog.trainable) == 10  # nine convolutions' biases and the FC layer's
    for name in prog.trainable:
        assert name[:40] in text
