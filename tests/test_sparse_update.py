"""Sparse-update schemes (tte/sparse.py) on the MCU backbones, with tiny-training's layer
numbering and its published schemes: what trains, that untrained channels stay as they were,
and that the generated C takes the same steps as the reference interpreter."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import tte
from tte.cli import main
from tte.errors import TTEError
from tte.sparse import conv_layers, parse_scheme

MODELS_DIR = Path(__file__).resolve().parents[2] / "shared" / "models" / "mcu_imagenet"
SIZE = 32
# the schemes of issue 5 (tiny-training's published ones): n_bias_update, weights, ratios
SCHEMES = {
    ("mcunet-5fps", "49kb"): (20, [23, 24, 27, 30, 33, 39], [0, 1 / 4, 1 / 2, 1 / 2, 0, 0]),
    ("mcunet-5fps", "99kb"): (22, [21, 24, 27, 30, 36, 39], [1, 1, 1, 1, 1 / 8, 1 / 4]),
    ("mcunet-5fps", "148kb"): (23, [21, 24, 27, 30, 36, 39], [1, 1, 1, 1, 1, 1 / 2]),
    ("mbv2-w0.35", "49kb"): (16, [36, 39, 40, 41, 42, 45, 48, 49],
                             [1, 1, 0, 1 / 4, 1 / 8, 1 / 8, 1 / 8, 1 / 8]),
    ("mbv2-w0.35", "99kb"): (25, [27, 30, 33, 36, 39, 42, 45, 48],
                             [1, 1, 1, 1, 1, 1 / 8, 1 / 2, 1]),
    ("proxyless-w0.3", "49kb"): (21, [39, 42, 44, 45, 50, 51, 54, 57],
                                 [1 / 4, 1, 0, 1, 0, 1 / 8, 1 / 4, 1 / 4]),
    ("proxyless-w0.3", "98kb"): (25, [36, 39, 42, 45, 48, 51, 54, 57],
                                 [1, 1 / 2, 1, 1, 1 / 4, 1 / 2, 1, 1]),
}


def _path(name: str) -> Path:
    path = MODELS_DIR / f"{name}.pkl"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def _scheme(key) -> dict:
    n_bias, idx, ratios = SCHEMES[key]
    return {"n_bias_update": n_bias, "weight_update_idx": idx, "weight_update_ratio": ratios}


def _channels(arr: np.ndarray, axis: int, lo: int, hi: int | None = None) -> np.ndarray:
    return np.take(arr, range(lo, arr.shape[axis] if hi is None else hi), axis=axis)


@pytest.mark.parametrize("head", ["fp32", "int8"])
@pytest.mark.parametrize("key", list(SCHEMES), ids=lambda k: "-".join(k))
def test_published_scheme_trains_in_c_as_in_the_reference(key, head):
    """Bit for bit: the references sum in the C kernels' order (tte/quant/ordered.py), so
    every loss and every parameter, integer or float, is equal after several steps."""
    path = _path(key[0])
    n_bias, idx, ratios = SCHEMES[key]
    prog = tte.compile(path, num_classes=10, input_size=SIZE, update=_scheme(key),
                       optimizer={"lr": 0.01}, head=head)
    g = prog.training_graph
    convs = conv_layers(prog.forward_graph)
    want = {n.inputs[2] for n in convs[-n_bias:]} | {convs[i].inputs[1] for i, r in
                                                    zip(idx, ratios) if r}
    # an int8 head is the last conv layer: the scheme trains its bias, not its weight
    assert set(prog.trainable) == want | ({"head.weight", "head.bias"} if head == "fp32"
                                          else set())
    c, ref = prog.build(), prog.reference()
    rng = np.random.default_rng(0)
    for step in range(3):
        x = rng.uniform(-1, 1, (3, SIZE, SIZE)).astype(np.float32)
        assert c.train_step(x, step) == ref.train_step(x, step)
    got, expect = c.params(), ref.params()
    for name in prog.trainable:
        np.testing.assert_array_equal(got[name], expect[name], err_msg=name)
    for i, r in zip(idx, ratios):
        w = convs[i].inputs[1]
        part = g.values[w].meta.get("train_channels")
        if r in (0, 1):
            assert part is None
            continue
        axis, count = part["axis"], part["count"]
        assert count == max(1, round(r * g.values[w].shape[axis]))
        np.testing.assert_array_equal(_channels(got[w], axis, count),
                                      _channels(g.data[w], axis, count))


def test_depthwise_ratio_counts_channels_and_pointwise_counts_inputs():
    path = _path("mbv2-w0.35")
    prog = tte.compile(path, num_classes=2, input_size=SIZE, update=_scheme(("mbv2-w0.35",
                                                                             "49kb")))
    convs = conv_layers(prog.forward_graph)
    values = prog.training_graph.values
    pw, dw = convs[48], convs[49]  # blocks.16 pointwise1 and depthwise, ratio 1/8 each
    k_dw, k_pw = round(values[dw.inputs[1]].shape[0] / 8), round(values[pw.inputs[1]].shape[1] / 8)
    assert dw.attrs["group"] > 1 and values[dw.inputs[1]].meta["train_channels"] == \
        {"axis": 0, "count": k_dw, "channels": list(range(k_dw))}
    assert values[pw.inputs[1]].meta["train_channels"] == \
        {"axis": 1, "count": k_pw, "channels": list(range(k_pw))}


def test_no_input_gradient_before_the_first_updated_layer():
    prog = tte.compile(_path("mcunet-5fps"), num_classes=2, input_size=SIZE,
                       update=_scheme(("mcunet-5fps", "49kb")))
    g = prog.training_graph
    first = conv_layers(prog.forward_graph)[-20]  # n_bias_update 20: the earliest trained
    grad_inputs = {n.inputs[0] for n in g.nodes if n.op == "conv2d_s8_grad_input"}
    before = {n.outputs[0] for n in g.nodes[:g.nodes.index(next(
        n for n in g.nodes if n.outputs[0] == first.outputs[0]))]}
    assert not grad_inputs & before
    assert not [n for n in g.nodes if n.op == "conv2d_s8_grad_input" and
                n.outputs[0] not in {i for m in g.nodes for i in m.inputs}]


def test_scheme_from_json_file_and_cli(tmp_path):
    path = _path("proxyless-w0.3")
    scheme_file = tmp_path / "scheme.json"
    scheme_file.write_text(json.dumps(_scheme(("proxyless-w0.3", "49kb"))))
    a = tte.compile(path, num_classes=2, input_size=SIZE, update=scheme_file)
    b = tte.compile(path, num_classes=2, input_size=SIZE,
                    update=_scheme(("proxyless-w0.3", "49kb")))
    assert a.trainable == b.trainable
    out = tmp_path / "out"
    assert main(["compile", str(path), "--num-classes", "2", "--input-size", str(SIZE),
                 "--update", str(scheme_file), "-o", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    assert {u["name"] for u in report["updates"]} == set(a.trainable)


@pytest.mark.parametrize("scheme, message", [
    ({"n_bias_update": -1}, "n_bias_update"),
    ({"weight_update_idx": [1, 2], "weight_update_ratio": [1]}, "ratios"),
    ({"weight_update_idx": [1], "weight_update_ratio": [0.3]}, "not in"),
    ({"bias": 3}, "unknown update-scheme keys"),
    ({"channels": "largest"}, "channels"),
])
def test_bad_schemes(scheme, message):
    with pytest.raises(TTEError, match=message):
        parse_scheme(scheme)


def test_scheme_out_of_range():
    with pytest.raises(TTEError, match="not a convolution layer"):
        tte.compile(_path("mbv2-w0.35"), num_classes=2, input_size=SIZE,
                    update={"weight_update_idx": [999]})
    with pytest.raises(TTEError, match="convolution layers"):
        tte.compile(_path("mbv2-w0.35"), num_classes=2, input_size=SIZE,
                    update={"n_bias_update": 999})


def test_last_k_layers_trains_weights_and_biases_of_the_last_k_convolutions(tmp_path):
    path = _path("mcunet-5fps")
    prog = tte.compile(path, num_classes=2, input_size=SIZE, update="last:3")
    convs = conv_layers(prog.forward_graph)
    want = {p for c in convs[-3:] for p in c.inputs[1:3]} | {"head.weight", "head.bias"}
    assert set(prog.trainable) == want
    same = tte.compile(path, num_classes=2, input_size=SIZE, update={"last_k_layers": 3})
    assert same.trainable == prog.trainable
    assert main(["compile", str(path), "--num-classes", "2", "--input-size", str(SIZE),
                 "--update", "last:3", "-o", str(tmp_path / "out")]) == 0
    with pytest.raises(TTEError, match="last_k_layers"):
        tte.compile(path, num_classes=2, input_size=SIZE, update="last:999")
