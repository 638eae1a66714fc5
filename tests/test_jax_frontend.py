"""tte.from_jax (first slice of issue 7): a small JAX CNN traced into the IR trains in the
host C as jax.grad-based SGD with momentum does; names follow the pytree; an unsupported
primitive is named with the user's line."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import tte
from jax_models import sgd_momentum_train

LR, MOMENTUM = 0.05, 0.9


def _params(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"conv1": {"w": rng.normal(0, .3, (4, 1, 3, 3)).astype(np.float32),
                      "b": rng.normal(0, .1, 4).astype(np.float32)},
            "dense": {"w": rng.normal(0, .3, (4 * 6 * 6, 10)).astype(np.float32),
                      "b": np.zeros(10, np.float32)}}


def cnn(p, x):
    y = lax.conv_general_dilated(x, p["conv1"]["w"], (1, 1), [(0, 0), (0, 0)],
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    y = jax.nn.relu(y + p["conv1"]["b"][None, :, None, None])
    return y.reshape(y.shape[0], -1) @ p["dense"]["w"] + p["dense"]["b"]


def test_traced_cnn_trains_like_jax_grad():
    params = _params()
    rng = np.random.default_rng(1)
    xs = rng.normal(size=(3, 1, 1, 8, 8)).astype(np.float32)
    prog = tte.compile(tte.from_jax(cnn, params, xs[0]),
                       optimizer={"lr": LR, "momentum": MOMENTUM})
    assert set(prog.trainable) == {"conv1/b", "conv1/w", "dense/b", "dense/w"}
    runners = [prog.build(), prog.reference(np.float64)]
    labels = list(range(len(xs)))
    for x, y in zip(xs, labels):
        for r in runners:
            r.train_step(x, y)
    want = sgd_momentum_train(cnn, params, xs, labels, lr=LR, momentum=MOMENTUM)
    for r in runners:
        got = tte.to_pytree(params, r.params())
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())


def test_unsupported_primitive_names_it_and_the_line():
    with pytest.raises(tte.UnsupportedError, match=r"'sin' \(at .*test_jax_frontend.py:\d+\)"):
        tte.from_jax(lambda p, x: jnp.sin(x) * p["s"], {"s": np.float32(2)},
                     np.ones((1, 3), np.float32))


def nhwc_cnn(p, x):
    """HWIO weights, as flax writes them; the bias added in NHWC."""
    for name in ("conv1", "conv2"):
        x = lax.conv_general_dilated(x, p[name]["w"], (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
        x = jax.nn.relu(x + p[name]["b"])
    return x.reshape(x.shape[0], -1) @ p["dense"]["w"] + p["dense"]["b"]


def _nhwc_params() -> dict:
    rng = np.random.default_rng(2)
    return {"conv1": {"w": rng.normal(0, .3, (3, 3, 2, 4)).astype(np.float32),
                      "b": rng.normal(0, .1, 4).astype(np.float32)},
            "conv2": {"w": rng.normal(0, .3, (3, 3, 4, 4)).astype(np.float32),
                      "b": rng.normal(0, .1, 4).astype(np.float32)},
            "dense": {"w": rng.normal(0, .1, (4 * 5 * 5, 3)).astype(np.float32),
                      "b": np.zeros(3, np.float32)}}


def test_layouts_and_bias_adds_fold_away():
    """NHWC convolutions meet in NCHW: only the input's and the flatten's transposes (and the
    HWIO weights') remain, and `+ b` becomes the convolution's bias input."""
    g = tte.from_jax(nhwc_cnn, _nhwc_params(), np.zeros((1, 5, 5, 2), np.float32))
    ops = [n.op for n in g.nodes]
    assert ops.count("transpose") == 4 and "add" in ops  # the dense bias: matmul + add
    assert [n.inputs[2] for n in g.nodes if n.op == "conv2d"] == ["conv1/b", "conv2/b"]


def test_schemes_see_jax_layers():
    """update="bias" trains the folded conv biases; "last:1" the HWIO weight behind its
    transpose and the dense head (matmul + add), trained as jax.grad would train them."""
    params = _nhwc_params()
    x = np.random.default_rng(3).normal(size=(1, 5, 5, 2)).astype(np.float32)
    g = tte.from_jax(nhwc_cnn, params, x)
    assert set(tte.compile(g, update="bias").trainable) == {"conv1/b", "conv2/b"}
    prog = tte.compile(g, update="last:1", optimizer={"lr": LR})
    trained = {"conv2/b", "conv2/w", "dense/b", "dense/w"}
    assert set(prog.trainable) == trained
    runner = prog.build()
    runner.train_step(x, 1)
    grads = jax.grad(lambda p: -jax.nn.log_softmax(nhwc_cnn(p, x))[0, 1])(params)
    got = runner.params()
    for name in trained:
        layer, leaf = name.split("/")
        np.testing.assert_allclose(got[name], params[layer][leaf] - LR * grads[layer][leaf],
                                   rtol=1e-5, atol=1e-7)
    with pytest.raises(tte.TTEError, match="HWIO weight"):
        tte.compile(g, update={"weight_update_idx": [1], "weight_update_ratio": [0.5]})


def test_bias_update_of_a_model_without_biases_says_so():
    g = tte.from_jax(lambda p, x: x @ p["w"], {"w": np.ones((4, 2), np.float32)},
                     np.ones((1, 4), np.float32))
    with pytest.raises(tte.TTEError, match="no convolution, linear or batch-norm layer"):
        tte.compile(g, update="bias")


def test_written_out_batch_norm_is_one_node():
    """(x - mean) / sqrt(var + eps) * scale + bias with constant statistics is batch_norm:
    its scale and bias train as parameters, update="bias" finds the bias."""
    rng = np.random.default_rng(5)
    mean, var = rng.normal(size=4).astype(np.float32), rng.uniform(.5, 2, 4).astype(np.float32)
    params = {"w": rng.normal(0, .3, (4, 2, 3, 3)).astype(np.float32),
              "bn": {"scale": np.ones(4, np.float32), "bias": np.zeros(4, np.float32)},
              "fc": rng.normal(0, .3, (4, 3)).astype(np.float32)}

    def f(p, x):
        h = lax.conv_general_dilated(x, p["w"], (1, 1), "SAME")
        c = (slice(None), None, None)
        h = (h - mean[c]) / jnp.sqrt(var[c] + 1e-5) * p["bn"]["scale"][c] + p["bn"]["bias"][c]
        return jnp.mean(jax.nn.relu(h), axis=(2, 3)) @ p["fc"]
    g = tte.from_jax(f, params, np.zeros((1, 2, 6, 6), np.float32))
    assert [n.op for n in g.nodes] == ["conv2d", "batch_norm", "relu", "reduce_mean", "matmul"]
    assert set(tte.compile(g, update="bias").trainable) == {"bn/bias"}


def test_scalar_constants_stay_scalars():
    """sum(x) + 1.0 is a 0-d value (a 1-element constant would make it [1] and need a
    broadcast node before the reshape)."""
    g = tte.from_jax(lambda p, x: jnp.reshape(jnp.sum(x) + 1.0, (1, 1)) * p["w"],
                     {"w": np.ones((1, 3), np.float32)}, np.ones((1, 4), np.float32))
    assert [n.op for n in g.nodes] == ["reduce_sum", "add", "reshape", "mul"]
    assert g.values[g.nodes[1].outputs[0]].shape == ()
