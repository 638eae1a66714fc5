"""Whole JAX models through tte.from_jax: the six models of tests/models.py written in plain
JAX (tests/jax_models.py) and a small equinox CNN train three SGD+momentum steps in the
float64 reference interpreter and in the host C exactly as jax.grad training of the same
function does (rtol 1e-5); parameter names follow the pytree paths."""
from __future__ import annotations

import os
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from onnx.reference import ReferenceEvaluator

import tte

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jax_models import MODELS, JaxModel, sgd_momentum_train
from mcu_checks import equal_to_host
from models import MODELS as ONNX_MODELS

LR, MOMENTUM = 0.05, 0.9


def equinox_cnn(seed: int = 0) -> JaxModel:
    """Conv-ReLU-MaxPool-Conv-ReLU-AvgPool-Linear as eqx modules, vmapped over the batch."""
    k = jax.random.split(jax.random.PRNGKey(seed), 3)
    model = eqx.nn.Sequential([
        eqx.nn.Conv2d(2, 4, 3, padding=1, key=k[0]), eqx.nn.Lambda(jax.nn.relu),
        eqx.nn.MaxPool2d(2, 2),                                                 # 4x4x4
        eqx.nn.Conv2d(4, 6, 3, padding=1, key=k[1]), eqx.nn.Lambda(jax.nn.relu),
        eqx.nn.AvgPool2d(2, 2),                                                 # 6x2x2
        eqx.nn.Lambda(lambda h: h.reshape(-1)), eqx.nn.Linear(24, 5, key=k[2])])
    params, static = eqx.partition(model, eqx.is_array)
    return JaxModel(lambda p, x: jax.vmap(eqx.combine(p, static))(x), params, (1, 2, 8, 8), 5)


@pytest.mark.parametrize("name", list(MODELS))
def test_same_function_as_the_onnx_model(name: str) -> None:
    """The rewrite is faithful: same weights, same logits as tests/models.py's model."""
    m = MODELS[name]()
    x = np.random.default_rng(0).standard_normal(m.input_shape).astype(np.float32)
    want = ReferenceEvaluator(ONNX_MODELS[name]()).run(None, {"x": x})[0]
    np.testing.assert_allclose(m.apply(m.params, x), want, rtol=1e-5, atol=1e-5)


CASES = {**MODELS, "equinox_cnn": equinox_cnn}


@pytest.mark.parametrize("name", list(CASES))
def test_trains_like_jax_grad(name: str) -> None:
    m = CASES[name]()
    rng = np.random.default_rng(0)
    xs = rng.standard_normal((3,) + m.input_shape).astype(np.float32)
    labels = [int(v) for v in rng.integers(0, m.num_classes, 3)]
    prog = tte.compile(tte.from_jax(m.apply, m.params, xs[0], name=name),
                       optimizer={"lr": LR, "momentum": MOMENTUM})
    runners = [prog.reference(np.float64), prog.build()]
    for x, y in zip(xs, labels):
        for r in runners:
            r.train_step(x, y)
    want = sgd_momentum_train(m.apply, m.params, xs, labels, lr=LR, momentum=MOMENTUM)
    for r in runners:
        got = tte.to_pytree(m.params, r.params())
        assert jax.tree_util.tree_structure(got) == jax.tree_util.tree_structure(want)
        for a, b in zip(jax.tree_util.tree_leaves(got), jax.tree_util.tree_leaves(want)):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6 * np.abs(b).max())


def test_names_follow_the_pytree() -> None:
    m = MODELS["mbv2_stack"]()
    prog = tte.compile(tte.from_jax(m.apply, m.params, np.zeros(m.input_shape, np.float32)),
                       optimizer={"lr": LR, "momentum": MOMENTUM})
    paths = jax.tree_util.tree_flatten_with_path(m.params)[0]
    assert set(prog.trainable) == {"/".join(k.key for k in path) for path, _ in paths}
    assert "block1/dw_bn/scale" in prog.trainable
    back = tte.to_pytree(m.params, prog.reference().params())
    assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(m.params)
    for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(m.params)):
        np.testing.assert_array_equal(a, b)


def elu_cnn(p, x):
    """exp, where and maximum in C (jax.nn.elu and softplus are composed from them)."""
    h = lax.conv_general_dilated(x, p["conv"]["w"], (1, 1), "SAME",
                                 dimension_numbers=("NCHW", "OIHW", "NCHW"))
    h = jax.nn.elu(h + p["conv"]["b"][:, None, None])
    h = lax.reduce_window(h, -jnp.inf, lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    return jax.nn.softplus(h.reshape(h.shape[0], -1) @ p["dense"]["w"]) + p["dense"]["b"]


@pytest.mark.parametrize("target", ["cortex-m4", "rv32"])
def test_traced_model_on_the_mcu(target: str) -> None:
    """A traced model (with the ops JAX's activations compose: exp, log, where, maximum)
    trains on the MCU as in the host C, bit for bit."""
    rng = np.random.default_rng(4)
    params = {"conv": {"w": rng.normal(0, .3, (4, 2, 3, 3)).astype(np.float32),
                       "b": rng.normal(0, .1, 4).astype(np.float32)},
              "dense": {"w": rng.normal(0, .2, (4 * 4 * 4, 6)).astype(np.float32),
                        "b": np.zeros(6, np.float32)}}
    xs = rng.standard_normal((3, 2, 8, 8)).astype(np.float32)  # samples without the batch axis
    prog = tte.compile(tte.from_jax(elu_cnn, params, xs[:1]),
                       optimizer={"lr": LR, "momentum": MOMENTUM})
    assert {"exp", "log", "where", "maximum"} <= {n.op for n in prog.forward_graph.nodes}
    equal_to_host(prog, target, xs, np.array([0, 3, 5], np.int32))
