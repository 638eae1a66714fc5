"""Errors a user can cause give one clear message (tte.TTEError), not a traceback."""
import numpy as np
import pytest

import tte
from tests.test_ir import small_graph


@pytest.fixture(scope="module")
def runner():
    return tte.compile(small_graph()).reference()


@pytest.mark.parametrize("label", [4, -1, 17])
def test_label_outside_class_range(runner, label):
    with pytest.raises(tte.TTEError, match=rf"label {label} is outside the class range 0\.\.3"):
        runner.train_step(np.zeros((1, 2, 5, 5)), label)


def test_label_that_is_not_an_integer(runner):
    with pytest.raises(tte.TTEError, match="not an integer class index"):
        runner.train_step(np.zeros((1, 2, 5, 5)), 1.5)


def test_input_of_wrong_shape(runner):
    msg = r"input 'x' has shape \(1, 3, 5, 5\); the model expects \(1, 2, 5, 5\)"
    with pytest.raises(tte.TTEError, match=msg):
        runner.train_step(np.zeros((1, 3, 5, 5)), 0)
    with pytest.raises(tte.TTEError, match=msg):
        runner.forward(np.zeros((1, 3, 5, 5)))


def test_input_without_batch_axis_is_accepted(runner):
    x = np.random.default_rng(1).normal(size=(2, 5, 5))
    np.testing.assert_array_equal(runner.forward(x), runner.forward(x[None]))


@pytest.mark.parametrize("kwargs, message", [
    ({"update": "everything"}, "use 'full', 'bias' or a list"),
    ({"update": ["nope"]}, "'nope', which is not a parameter"),
    ({"loss": "hinge"}, "loss='hinge' is not supported"),
    ({"optimizer": {"name": "adam"}}, "optimizer 'adam' is not supported"),
    ({"optimizer": {"lr": 0.1, "beta": 2}}, r"unknown optimizer options \['beta'\]"),
    ({"target": "gpu"}, "target 'gpu' is not known"),
])
def test_bad_compile_options(kwargs, message):
    with pytest.raises(tte.TTEError, match=message):
        tte.compile(small_graph(), **kwargs)


def test_missing_and_unknown_model_files(tmp_path):
    with pytest.raises(tte.TTEError, match="does not exist"):
        tte.compile(str(tmp_path / "absent.onnx"))
    other = tmp_path / "model.pt"
    other.write_bytes(b"\0")
    with pytest.raises(tte.TTEError, match="unknown model format"):
        tte.compile(str(other))
