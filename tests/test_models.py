"""Whole-model tests: tte's reference runner against independent oracles.

* forward  — ``onnx.reference.ReferenceEvaluator``;
* training — a float64 JAX re-implementation (tests/jax_oracle.py) that walks
  the ONNX graph and differentiates it with ``jax.grad``, trained with
  PyTorch-semantics SGD, one sample per step.

Tolerances
----------
rtol 1e-5 / atol 1e-6 everywhere, for both the float32 runner (default) and
the float64 runner.  Why float32 can meet it: the models are small (no
reduction is longer than a few hundred terms: 90-term dot products in the
forward, 256-term sums over output pixels in weight gradients), so float32
accumulation error stays around sqrt(n)*6e-8 ~ 1e-6 relative to the summands.
Measured, not assumed: the oracle itself run in float32
(``jax_train(..., dtype="float32")``) stays within 6e-7 absolute of the
float64 result on every parameter of every model after 3 steps of
lr=0.05/momentum=0.9, and within 7e-7 relative on the losses.  The float64
runner is additionally held to rtol 1e-9 / atol 1e-12 on unfolded models,
where nothing but float64 rounding separates it from the oracle.  Folded
models keep 1e-5 even in float64: the frontend folds BN in the model's own
float32 (about 1 float32 ulp per folded parameter), the oracle folds in
float64.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
from onnx.reference import ReferenceEvaluator

import tte

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from jax_oracle import (fold_batchnorm, initializers, jax_train, jax_train_folded,
                        trainable_names, folded_model)
from models import MODELS, input_shape, num_classes

RTOL, ATOL = 1e-5, 1e-6
LR, MOMENTUM = 0.05, 0.9
OPT = {"name": "sgd", "lr": LR, "momentum": MOMENTUM}
NAMES = list(MODELS)


@pytest.fixture(scope="module", params=NAMES)
def model(request):
    return MODELS[request.param]()


def samples(model, n, seed=0):
    rng = np.random.default_rng(seed)
    shape = input_shape(model)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(n)]
    labels = [int(v) for v in rng.integers(0, num_classes(model), n)]
    return xs, labels


def assert_params_match(got: dict, want: dict, original: dict, trainable: set,
                        rtol=RTOL, atol=ATOL, what=""):
    """Every entry of tte's params() equals the oracle's; every oracle-trained
    parameter is present in tte's params()."""
    missing = trainable - got.keys()
    assert not missing, f"{what}: trained parameters absent from runner.params(): {sorted(missing)}"
    errors = []
    for name, val in got.items():
        if name in want:
            ref = want[name]
        elif name in original and name not in trainable:
            ref = original[name]  # e.g. BN running stats, left unchanged
        else:
            errors.append(f"{name}: unknown to the oracle")
            continue
        val = np.asarray(val)
        if val.shape != ref.shape:
            errors.append(f"{name}: shape {val.shape} != {ref.shape}")
            continue
        err = np.abs(val.astype(np.float64) - ref)
        bad = err > atol + rtol * np.abs(ref)
        if bad.any():
            i = np.unravel_index(np.argmax(err - rtol * np.abs(ref)), err.shape)
            errors.append(f"{name}: {bad.sum()}/{bad.size} elements off, worst at {i}: "
                          f"got {val[i]!r} want {ref[i]!r} (abs err {err[i]:.3g})")
    assert not errors, f"{what}:\n  " + "\n  ".join(errors)


def run_tte(model, xs, labels, *, dtype=None, **compile_kw):
    prog = tte.compile(model, optimizer=OPT, **compile_kw)
    runner = prog.reference() if dtype is None else prog.reference(dtype=dtype)
    before = runner.params()
    losses = [runner.train_step(x, y) for x, y in zip(xs, labels)]
    assert all(isinstance(l, float) for l in losses)
    return losses, runner.params(), before


# --------------------------------------------------------------------------
# forward
# --------------------------------------------------------------------------

def test_forward_matches_onnx_reference(model):
    x, _ = samples(model, 1, seed=11)
    want = ReferenceEvaluator(model).run(None, {"x": x[0]})[0]
    got = tte.compile(model).reference().forward(x[0])
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_forward_unfolded_matches_onnx_reference(model):
    x, _ = samples(model, 1, seed=12)
    want = ReferenceEvaluator(model).run(None, {"x": x[0]})[0]
    got = tte.compile(model, fold_batchnorm=False).reference().forward(x[0])
    np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


# --------------------------------------------------------------------------
# training: full update against jax.grad
# --------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [None, np.float64], ids=["f32", "f64"])
def test_train_full_unfolded(model, dtype):
    xs, labels = samples(model, 3, seed=1)
    trainable = trainable_names(model, "full")
    want_losses, want = jax_train(model, None, xs, labels, lr=LR, momentum=MOMENTUM,
                                  trainable=trainable)
    losses, got, _ = run_tte(model, xs, labels, dtype=dtype, update="full",
                             fold_batchnorm=False)
    np.testing.assert_allclose(losses, want_losses, rtol=RTOL, atol=ATOL)
    assert_params_match(got, want, initializers(model), trainable,
                        what=f"{model.graph.name} unfolded {dtype}")
    if dtype is not None:
        # float64 run, no folding: nothing but float64 rounding separates the two
        np.testing.assert_allclose(losses, want_losses, rtol=1e-9, atol=1e-12)
        assert_params_match(got, want, initializers(model), trainable, rtol=1e-9, atol=1e-12,
                            what=f"{model.graph.name} unfolded float64 (tight)")


@pytest.mark.parametrize("dtype", [None, np.float64], ids=["f32", "f64"])
def test_train_full_folded(model, dtype):
    xs, labels = samples(model, 3, seed=2)
    fm = folded_model(model)
    trainable = trainable_names(fm, "full")
    want_losses, want = jax_train_folded(model, xs, labels, lr=LR, momentum=MOMENTUM)
    losses, got, before = run_tte(model, xs, labels, dtype=dtype)  # fold_batchnorm=True default
    # the fold itself (before any training)
    assert_params_match(before, fold_batchnorm(model), initializers(model), set(),
                        what=f"{model.graph.name} folded parameters before training")
    np.testing.assert_allclose(losses, want_losses, rtol=RTOL, atol=ATOL)
    assert_params_match(got, want, initializers(model), trainable,
                        what=f"{model.graph.name} folded {dtype}")


# --------------------------------------------------------------------------
# training: bias-only update
# --------------------------------------------------------------------------

@pytest.mark.parametrize("fold", [True, False], ids=["folded", "unfolded"])
def test_train_bias_only(model, fold):
    xs, labels = samples(model, 3, seed=3)
    if fold:
        trainable = trainable_names(folded_model(model), "bias")
        want_losses, want = jax_train_folded(model, xs, labels, lr=LR, momentum=MOMENTUM,
                                             update="bias")
    else:
        trainable = trainable_names(model, "bias")
        want_losses, want = jax_train(model, None, xs, labels, lr=LR, momentum=MOMENTUM,
                                      trainable=trainable)
    losses, got, before = run_tte(model, xs, labels, update="bias", fold_batchnorm=fold)
    frozen = [k for k in got if k not in trainable]
    changed = [k for k in frozen if not np.array_equal(got[k], before[k])]
    assert not changed, f"update='bias' changed non-bias parameters {changed}"
    np.testing.assert_allclose(losses, want_losses, rtol=RTOL, atol=ATOL)
    assert_params_match(got, want, initializers(model), trainable,
                        what=f"{model.graph.name} bias-only fold={fold}")
    moved = [k for k in trainable if not np.array_equal(got[k], before[k])]
    assert moved, "no bias was updated"


# --------------------------------------------------------------------------
# training: weight decay (PyTorch semantics: g = grad + wd * p)
# --------------------------------------------------------------------------

def test_train_weight_decay(model):
    xs, labels = samples(model, 3, seed=5)
    opt = {**OPT, "weight_decay": 0.01}
    want_losses, want = jax_train_folded(model, xs, labels, lr=LR, momentum=MOMENTUM,
                                         weight_decay=0.01)
    runner = tte.compile(model, optimizer=opt).reference()
    losses = [runner.train_step(x, y) for x, y in zip(xs, labels)]
    np.testing.assert_allclose(losses, want_losses, rtol=RTOL, atol=ATOL)
    assert_params_match(runner.params(), want, initializers(model),
                        trainable_names(folded_model(model), "full"),
                        what=f"{model.graph.name} weight_decay=0.01")


# --------------------------------------------------------------------------
# sanity: training on one sample drives its loss down
# --------------------------------------------------------------------------

def test_loss_falls_on_one_sample(model):
    xs, labels = samples(model, 1, seed=4)
    runner = tte.compile(model, optimizer=OPT).reference()
    losses = [runner.train_step(xs[0], labels[0]) for _ in range(30)]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], losses
    assert min(losses[-5:]) < 0.1, losses
