"""Patch-based execution of the first stage (tte/passes/patch.py): tile by tile equals whole
maps (exactly for int8, 1e-6 for fp32) in the numpy reference and in C, training is
unchanged, the arena shrinks, the chooser is deterministic and errors are clear.

Run as `python tests/test_patch.py child` it is the sanitized child of test_c_sanitized."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import tte  # noqa: E402
from tte.errors import TTEError  # noqa: E402
from tte.interpreter import run  # noqa: E402
from tte.ir.graph import Graph  # noqa: E402
from tte.memory import plan_memory  # noqa: E402
from tte.passes.patch import (candidate_stages, choose_patch, find_stage,  # noqa: E402
                              patch_stage)
from tests.models import MODELS as ONNX_MODELS  # noqa: E402

MODELS = ROOT.parent / "shared" / "models"
MCU = MODELS / "mcu_imagenet"
BACKBONES = ["mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3"]
SCHEME_49KB = {"n_bias_update": 20, "weight_update_idx": [23, 24, 27, 30, 33, 39],
               "weight_update_ratio": [0, 0.25, 0.5, 0.5, 0, 0]}  # mcunet-5fps, 49kb


def _x(g: Graph, seed: int = 0) -> np.ndarray:
    v = g.values[g.inputs[0]]
    rng = np.random.default_rng(seed)
    if v.dtype.is_float:
        return rng.uniform(-1, 1, v.shape).astype(v.dtype.numpy)
    return rng.integers(-128, 128, v.shape).astype(v.dtype.numpy)


def _stage_outputs(g: Graph, nodes: int, tiles: int, x: np.ndarray):
    """The stage output, whole and tile by tile (the rest of the graph reads it unchanged,
    so equal stage outputs give equal logits; the compile tests run whole graphs)."""
    stage = find_stage(g, nodes)
    whole, tiled = g.copy(), g.copy()
    patch_stage(tiled, nodes, tiles)
    cut = next(i for i, n in enumerate(tiled.nodes) if stage.output in n.outputs)
    whole.nodes, tiled.nodes = whole.nodes[:nodes], tiled.nodes[:cut + 1]
    whole.outputs = tiled.outputs = [stage.output]
    return run(whole, {g.inputs[0]: x}), run(tiled, {g.inputs[0]: x})


def _splits(g: Graph) -> list[tuple[int, int]]:
    """Every candidate stage with 2, 3 and the most tiles the chooser tries."""
    out = []
    for stage in candidate_stages(g):
        side = min(g.values[stage.output].shape[2:])
        out += sorted({(stage.nodes, n) for n in (2, min(side, 3), min(side, 8))})
    return out


# --- forward: the numpy reference --------------------------------------------------------

def _assert_same(whole: dict, tiled: dict, exact: bool) -> None:
    for name, want in whole.items():
        if exact:
            np.testing.assert_array_equal(tiled[name], want, err_msg=name)
        else:  # relative to the map's largest element
            err = np.abs(tiled[name] - want).max() / max(np.abs(want).max(), 1e-30)
            assert err <= 1e-6, (name, err)


@pytest.mark.parametrize("name", BACKBONES)
def test_int8_backbone_tiles_equal_whole_maps(name):
    g = tte.load_model(MCU / f"{name}.pkl", num_classes=10, head="int8", input_size=64)
    x = _x(g)
    splits = _splits(g)
    assert len({k for k, _ in splits}) >= 5, splits
    for nodes, tiles in splits:
        _assert_same(*_stage_outputs(g, nodes, tiles, x), exact=True)


@pytest.mark.parametrize("path", ["mlperf_tiny/vww_96_int8.tflite", "tflm/person_detect.tflite",
                                  "mlperf_tiny/resnet8_int8.tflite"])
def test_int8_tflite_tiles_equal_whole_maps(path):
    """TFLite SAME padding (pads only at the bottom/right), input zero points of -128 and -1,
    and resnet8's residual add_s8 inside the stage."""
    g = tte.load_model(MODELS / path)
    x = _x(g, seed=1)
    for nodes, tiles in _splits(g):
        _assert_same(*_stage_outputs(g, nodes, tiles, x), exact=True)


def test_fp32_models_tiles_match_whole_maps():
    graphs = [tte.load_model(MCU / "mcunet-5fps.pkl", num_classes=10, precision="fp32",
                             input_size=64),
              tte.load_model(MODELS / "mlperf_tiny/vww_96_float.tflite")]
    graphs += [tte.load_model(build()) for key, build in ONNX_MODELS.items()
               if key in ("pool_concat_hswish", "residual", "mbv2_stack")]
    graphs.append(tte.load_model(ONNX_MODELS["dwsep_bn_relu6"](), fold_batchnorm=False))
    for g in graphs:
        splits = _splits(g)
        assert splits, g.name
        for nodes, tiles in splits:
            _assert_same(*_stage_outputs(g, nodes, tiles, _x(g, seed=2)), exact=False)


def _conv_stack(layers, size: int, channels: int = 3) -> Graph:
    g = Graph("stack")
    h = g.add_input("x", (1, channels, size, size))
    rng = np.random.default_rng(0)
    for i, (op, k, s, p, d) in enumerate(layers):
        if op == "conv":
            w = g.add_param(f"w{i}", rng.standard_normal((4, channels, k, k)).astype(np.float32))
            h = g.emit("conv2d", [h, w], {"strides": [s, s], "pads": p, "dilations": [d, d]})
            channels = 4
        elif op == "pad":
            h = g.emit("pad", [h], {"pads": [0, 0, p[0], p[1], 0, 0, p[2], p[3]], "value": 0.5})
        else:
            h = g.emit(op, [h], {"kernel": [k, k], "strides": [s, s], "pads": p})
        h = g.emit("relu", [h])
    g.outputs = [h]
    return g


@st.composite
def _stacks(draw):
    layers = []
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["conv", "conv", "max_pool2d", "avg_pool2d", "pad"]))
        k = draw(st.integers(1, 3))
        p = [draw(st.integers(0, k - 1 if op != "pad" else 2)) for _ in range(4)]
        d = draw(st.integers(1, 2)) if op == "conv" else 1
        layers.append((op, k, draw(st.integers(1, 2)), p, d))
    return layers, draw(st.integers(6, 20)), draw(st.integers(2, 8))


@settings(max_examples=40, deadline=None)
@given(_stacks())
def test_random_stacks_tiles_match_whole_maps(case):
    layers, size, tiles = case
    try:
        g = _conv_stack(layers, size)
    except ValueError:
        assume(False)  # the windows do not fit this input
    side = min(g.values[g.outputs[0]].shape[2:])
    assume(side >= 2)
    nodes = len(g.nodes)
    try:
        whole, tiled = _stage_outputs(g, nodes, min(tiles, side), _x(g))
    except TTEError as e:
        assert "lie wholly in the padding" in str(e)
        return
    _assert_same(whole, tiled, exact=False)


# --- compile, training, memory -----------------------------------------------------------

def _compile(patch, update, **kw):
    return tte.compile(MCU / "mcunet-5fps.pkl", num_classes=10, input_size=kw.pop("size", 64),
                       update=update, patch=patch, optimizer={"lr": 0.01}, **kw)


@pytest.mark.parametrize("patch", ["auto", {"nodes": 6, "tiles": 3}])
def test_training_with_patch_matches_whole_maps(patch):
    update = {"n_bias_update": 20, "weight_update_idx": [30], "weight_update_ratio": [1]}
    whole, tiled = _compile(None, update), _compile(patch, update)
    assert tiled.patch["training"]["applied"] and tiled.patch["inference"]["applied"]
    assert any(n.op == "paste" for n in tiled.training_graph.nodes)
    a, b = whole.reference(), tiled.reference()
    for step in range(2):
        x = np.random.default_rng(step).uniform(-1, 1, (3, 64, 64)).astype(np.float32)
        assert a.train_step(x, step) == b.train_step(x, step)
        np.testing.assert_array_equal(a.forward(x), b.forward(x))
    pa, pb = a.params(), b.params()
    for name in whole.trainable:
        np.testing.assert_array_equal(pa[name], pb[name], err_msg=name)


def test_stage_on_the_backward_path_stays_whole():
    prog = _compile({"nodes": 6, "tiles": 2}, "bias")
    train = prog.patch["training"]
    assert not train["applied"] and "backward" in train["reason"]
    assert prog.patch["inference"]["applied"]
    assert not any(n.op == "paste" for n in prog.training_graph.nodes)


def test_arena_shrinks_for_mcunet_at_128(capsys):
    for update in (SCHEME_49KB, "bias"):
        prog = _compile("auto", update, size=128, int8_input=True)  # the sample is in the arena
        p = prog.patch
        with capsys.disabled():
            print(f"\nmcunet-5fps 128x128 update={'49kb' if update != 'bias' else 'bias'}: "
                  + json.dumps({k: {f: v for f, v in p[k].items() if f != "reason"}
                                for k in ("training", "inference")}))
        inf = p["inference"]
        assert inf["applied"] and inf["arena_bytes"] < 0.5 * inf["arena_bytes_before"]
        assert plan_memory(prog.forward_graph).arena_bytes == inf["arena_bytes"]
        if update == "bias":
            assert not p["training"]["applied"]
        else:
            assert p["training"]["arena_bytes"] < p["training"]["arena_bytes_before"]
        report = prog.report()
        assert report["patch"] == p
        assert report["memory"]["inference_arena_bytes"] == inf["arena_bytes"]


def test_chooser_is_deterministic():
    g = tte.load_model(MCU / "mcunet-5fps.pkl", num_classes=10, input_size=64)
    choice = choose_patch(g)
    assert choice is not None and choose_patch(g.copy()) == choice
    info = patch_stage(g, *choice)
    assert info.macs_after > info.macs_before and info.overhead > 0


# --- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize("spec", ["5x9", "fast", {"nodes": 3}, {"nodes": 3, "tiles": "2"},
                                  {"nodes": True, "tiles": 2}, 7])
def test_bad_spec_is_one_clear_error(spec):
    with pytest.raises(TTEError, match="is not understood; use patch='auto'"):
        _compile(spec, "bias")


@pytest.mark.parametrize("spec, message", [
    ({"nodes": 0, "tiles": 2}, "the graph has"),
    ({"nodes": 500, "tiles": 2}, "the graph has"),
    ({"nodes": 2, "tiles": 1}, "use 2 to 32 tiles per side"),
    ({"nodes": 9, "tiles": 2}, "must hand on exactly one"),
    ({"nodes": 53, "tiles": 2}, "reshape is not a spatial op"),
])
def test_illegal_split_is_one_clear_error(spec, message):
    with pytest.raises(TTEError, match=message):
        _compile(spec, "bias")


def test_auto_without_a_spatial_stage_is_an_error():
    with pytest.raises(TTEError, match="no stage of the model can run tile by tile"):
        tte.compile(ONNX_MODELS["mlp"](), patch="auto")


def test_cli_patch_and_report(tmp_path, capsys):
    from tte.cli import main
    out = tmp_path / "out"
    args = ["compile", str(MCU / "mcunet-5fps.pkl"), "--num-classes", "10", "--input-size",
            "64", "--update", "bias", "-o", str(out)]
    assert main(args + ["--patch", "6:3"]) == 0
    printed = capsys.readouterr().out
    assert "first 6 nodes (up to blocks.1.depthwise) on 3x3 tiles" in printed
    report = json.loads((out / "report.json").read_text())
    assert report["patch"]["spec"] == {"nodes": 6, "tiles": 3}
    assert main(["report", str(out)]) == 0
    assert "patch-based first stage" in capsys.readouterr().out
    assert main(args + ["--patch", "6x3"]) == 2
    assert "tte: error: patch='6x3' is not understood" in capsys.readouterr().err


# --- C --------------------------------------------------------------------------------------

def _c_cases():
    """(program, patched program) pairs: int8 logits (exact) and the fp32 backbone."""
    update = {"n_bias_update": 20, "weight_update_idx": [30], "weight_update_ratio": [1]}
    for kw in ({"head": "int8"}, {"precision": "fp32"}):
        yield _compile(None, update, **kw), _compile("auto", update, **kw), kw


def child() -> int:
    """Sanitized C runs: patched C forward equals patched reference and unpatched C; training
    steps give the unpatched losses and parameters."""
    bad = []
    for whole, tiled, kw in _c_cases():
        c_whole, c_tiled, ref = whole.build(), tiled.build(sanitize=True), tiled.reference()
        exact = "head" in kw
        if not (tiled.patch["training"]["applied"] and tiled.patch["inference"]["applied"]):
            bad.append(f"{kw}: not patched: {tiled.patch}")
        for step in range(2):
            x = np.random.default_rng(step).uniform(-1, 1, (3, 64, 64)).astype(np.float32)
            f_tiled, f_whole, f_ref = c_tiled.forward(x), c_whole.forward(x), ref.forward(x)
            if not np.array_equal(f_tiled, f_whole):
                bad.append(f"{kw}: patched C forward differs from whole-map C")
            f_ref = f_ref.astype(np.float64)
            err = np.abs(f_tiled - f_ref).max() / max(np.abs(f_ref).max(), 1.0)
            if (exact and not np.array_equal(f_tiled, f_ref)) or err > 1e-5:
                bad.append(f"{kw}: patched C forward differs from the reference ({err:.3g})")
            loss = c_tiled.train_step(x, step)
            if loss != c_whole.train_step(x, step) or abs(loss - ref.train_step(x, step)) > \
                    1e-5 * abs(loss):
                bad.append(f"{kw}: losses differ")
        pt, pw = c_tiled.params(), c_whole.params()
        bad += [f"{kw}: {k} differs" for k in pw if not np.array_equal(pt[k], pw[k])]
    print(json.dumps({"failures": bad}))
    return 3 if bad else 0


def test_c_sanitized_patched_equals_whole_maps():
    import subprocess
    from tests.sanitized_run import sanitizer_env
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "child"],
                          env=sanitizer_env(), capture_output=True, text=True, timeout=900,
                          cwd=str(ROOT))
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {"failures": []}


if __name__ == "__main__":
    sys.exit(child() if sys.argv[1:] == ["child"] else 2)
