"""In-place depthwise input gradients (tte/ops/inplace_grad.py): where the VJPs use them, the
kernels with and without gx aliasing gy (and with split weights) against the general input
gradient kernels, training in C against the reference interpreter (int8 and fp32) and the
float64 JAX oracle, a sanitized build, and the training arenas of the MCU backbones."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import tte
from tte.ir.graph import Graph
from tte.ir.types import DType
from tte.ir.verify import VerifyError, verify
from tte.memory.planner import plan_memory
from tte.ops import get_op, inplace_grad

from tests import sanitized_run as sr
from tests.jax_oracle import jax_train_folded
from tests.kernels import ckernels
from tests.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
MCU = ROOT.parent / "shared" / "models" / "mcu_imagenet"
SCHEMES = ROOT / "tte" / "schemes"
BACKBONES = ["mcunet-5fps", "mbv2-w0.35", "proxyless-w0.3"]
IN_PLACE = tuple(inplace_grad.BASE)


def _backbone(name: str) -> Path:
    path = MCU / f"{name}.pkl"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def _in_place_nodes(g: Graph) -> tuple[list, list]:
    """(aliased, not aliased) in-place gradient nodes under g's memory plan."""
    off = plan_memory(g).offsets
    nodes = [n for n in g.nodes if n.op in IN_PLACE]
    return ([n for n in nodes if off[n.inputs[0]] == off[n.outputs[0]]],
            [n for n in nodes if off[n.inputs[0]] != off[n.outputs[0]]])


# --- where the VJPs emit it ---------------------------------------------------------------

@pytest.mark.parametrize("x_shape, w_shape, attrs, in_place", [
    ((1, 4, 6, 6), (4, 1, 3, 3), {"pads": [1, 1, 1, 1], "group": 4}, True),
    ((2, 3, 5, 7), (3, 1, 5, 3), {"pads": [2, 1, 2, 1], "group": 3}, True),
    ((1, 4, 6, 6), (4, 1, 3, 3), {"pads": [2, 2, 2, 2], "dilations": [2, 2], "group": 4}, True),
    ((1, 4, 6, 6), (4, 1, 3, 3), {"pads": [1, 1, 1, 1], "strides": [2, 2], "group": 4}, False),
    ((1, 4, 6, 6), (4, 1, 3, 3), {"group": 4}, False),                 # valid padding
    ((1, 4, 6, 6), (8, 1, 3, 3), {"pads": [1, 1, 1, 1], "group": 4}, False),  # multiplier 2
    ((1, 4, 6, 6), (4, 2, 3, 3), {"pads": [1, 1, 1, 1], "group": 2}, False),  # grouped
    ((1, 4, 6, 6), (4, 4, 3, 3), {"pads": [1, 1, 1, 1]}, False),
])
def test_fp32_vjp_uses_the_in_place_op_only_where_legal(x_shape, w_shape, attrs, in_place):
    g = Graph()
    x, w = g.add_input("x", x_shape), g.add_input("w", w_shape)
    y = g.emit("conv2d", [x, w], attrs)
    gy = g.add_input("gy", g.values[y].shape)
    gx = get_op("conv2d").vjp(g, g.nodes[0], [gy], [True, True])[0]
    node = next(n for n in g.nodes if gx in n.outputs)
    assert node.op == ("depthwise_grad_input" if in_place else "conv2d_grad_input")
    g.outputs = [gx]
    verify(g)
    rng = np.random.default_rng(0)
    args = [rng.standard_normal(g.values[v].shape).astype(np.float32) for v in node.inputs]
    want = get_op("conv2d_grad_input").ref(*args, **node.attrs)[0]
    np.testing.assert_array_equal(get_op(node.op).ref(*args, **node.attrs)[0], want)


def test_scratch_output_is_never_read():
    g = Graph()
    x, w = g.add_input("x", (1, 2, 4, 4)), g.add_input("w", (2, 1, 3, 3))
    y = g.emit("conv2d", [x, w], {"pads": [1, 1, 1, 1], "group": 2})
    gx = get_op("conv2d").vjp(g, g.nodes[0], [y], [True, False])[0]
    scratch = g.nodes[-1].outputs[1]
    assert get_op(g.nodes[-1].op).scratch == (1,) and g.values[scratch].shape == (16,)
    assert g.values[scratch].dtype == DType.f32
    g.outputs = [gx]
    verify(g)
    g.outputs = [gx, scratch]
    with pytest.raises(VerifyError, match="scratch"):
        verify(g)
    g.outputs = [g.emit("relu", [scratch])]
    with pytest.raises(VerifyError, match="scratch"):
        verify(g)


# --- kernels ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def k():
    return ckernels.load()


GEOMETRIES = [((2, 5, 6, 7), (3, 3), [1, 1, 1, 1], [1, 1]),
              ((1, 3, 8, 8), (5, 5), [2, 2, 2, 2], [1, 1]),
              ((1, 4, 7, 5), (7, 7), [3, 3, 3, 3], [1, 1]),
              ((1, 3, 6, 6), (3, 3), [2, 2, 2, 2], [2, 2]),
              ((1, 2, 5, 5), (2, 3), [0, 1, 1, 1], [1, 1])]  # asymmetric


def _split(ffi, keep: list, channels: int, trained: list[int] | None, w: np.ndarray):
    """(w as the kernel takes it, tte_split) for a depthwise weight whose `trained` channels
    (None: whole weight) sit in SRAM and the rest in flash."""
    if trained is None:
        return w, ffi.new("tte_split *")[0]
    frozen = [c for c in range(channels) if c not in trained]
    pos = np.empty(channels, np.int32)
    pos[trained], pos[frozen] = np.arange(len(trained)), len(trained) + np.arange(len(frozen))
    part, rest = np.ascontiguousarray(w[trained]), np.ascontiguousarray(w[frozen])
    keep += [part, rest, pos]  # alive while the kernel reads them
    s = ffi.new("tte_split *", {"frozen": ffi.cast("void *", rest.ctypes.data),
                                "pos": ffi.cast("int32_t *", pos.ctypes.data), "axis": 0,
                                "count": len(trained)})[0]
    return part, s


def _ptr(ffi, a: np.ndarray):
    return ffi.cast({np.float32: "float *", np.int8: "int8_t *"}[a.dtype.type], a.ctypes.data)


@pytest.mark.parametrize("int8", [False, True], ids=["f32", "s8"])
@pytest.mark.parametrize("split", [False, True], ids=["whole", "split"])
@pytest.mark.parametrize("geometry", GEOMETRIES, ids=lambda g: f"{g[0]}k{g[1]}")
def test_kernel_equals_the_general_one_aliased_or_not(k, geometry, split, int8):
    ffi, lib = k
    shape, kernel, pads, dil = geometry
    n, c, h, wd = shape
    rng = np.random.default_rng(sum(shape))
    gy = rng.standard_normal(shape).astype(np.float32)
    gy[rng.random(shape) < 0.3] = 0.0  # masked-out gradients
    w = (rng.integers(-127, 128, (c, 1, *kernel)).astype(np.int8) if int8
         else rng.standard_normal((c, 1, *kernel)).astype(np.float32))
    scales = rng.uniform(0.001, 0.05, c).astype(np.float32)
    attrs = {"strides": [1, 1], "pads": pads, "dilations": dil, "group": c}
    keep: list = []
    wk, s = _split(ffi, keep, c, [c - 1, 0] if split else None, w)
    win = ckernels.window(kernel, pads=pads, dilations=dil, group=c)
    d = ckernels.dims4(shape)

    def general() -> np.ndarray:
        gx = np.full(shape, np.nan, np.float32)
        if int8:
            lib.tte_conv2d_s8_grad_input(_ptr(ffi, gy), d, _ptr(ffi, wk), _ptr(ffi, scales),
                                         _ptr(ffi, gx), d, win, s)
        else:
            lib.tte_conv2d_grad_input_f32(_ptr(ffi, gy), d, _ptr(ffi, wk), _ptr(ffi, gx), d,
                                          win, s)
        return gx

    def in_place(gy_buf: np.ndarray, gx: np.ndarray) -> np.ndarray:
        scratch = np.full(h * wd + 1, np.nan, np.float32)  # one sentinel past the plane
        if int8:
            lib.tte_depthwise_s8_grad_input(_ptr(ffi, gy_buf), d, _ptr(ffi, wk),
                                            _ptr(ffi, scales), _ptr(ffi, gx),
                                            _ptr(ffi, scratch), win, s)
        else:
            lib.tte_depthwise_grad_input_f32(_ptr(ffi, gy_buf), d, _ptr(ffi, wk),
                                             _ptr(ffi, gx), _ptr(ffi, scratch), win, s)
        assert np.isnan(scratch[-1])
        return gx

    want = general()
    separate = gy.copy()
    np.testing.assert_array_equal(in_place(separate, np.full(shape, np.nan, np.float32)), want)
    np.testing.assert_array_equal(separate, gy)  # gy untouched when gx is elsewhere
    aliased = gy.copy()
    np.testing.assert_array_equal(in_place(aliased, aliased), want)
    op = "depthwise_s8_grad_input" if int8 else "depthwise_grad_input"
    ref = get_op(op).ref(gy, w, input_shape=list(shape), **attrs,
                         **({"w_scales": scales.tolist()} if int8 else {}))[0]
    if int8:  # the int8 reference sums in the kernels' order
        np.testing.assert_array_equal(want, ref)
    else:
        np.testing.assert_allclose(want, ref, rtol=1e-5, atol=1e-5 * np.abs(ref).max())


# --- training: C against the reference and the oracle ---------------------------------------

@pytest.mark.parametrize("name, update, aliased", [
    ("dwsep_bn_relu6", "bias", True), ("dwsep_bn_relu6", "full", False),
    ("mbv2_stack", "bias", True), ("mbv2_stack", "full", False)])
def test_fp32_training_matches_reference_and_jax(name, update, aliased):
    model = MODELS[name]()
    prog = tte.compile(model, update=update, optimizer=sr.optimizer(name))
    shared, apart = _in_place_nodes(prog.training_graph)
    assert shared if aliased else (apart and not shared)
    xs, ys, x_test = sr.samples(model, 5)
    run = sr.run_pair(prog.build(out_dir=sr.project_dir(f"inplace-{name}-{update}")),
                      prog.reference(), xs, ys, x_test)
    assert not sr.failures(sr.errors_vs_reference(run))
    want_losses, want = jax_train_folded(model, xs, ys, lr=sr.LR, momentum=sr.MOMENTUM,
                                         update=update)
    assert sr.rel_err(run["losses_c"], want_losses) <= sr.TOL
    errs = {p: sr.rel_err(v, want[p]) for p, v in run["params_c"].items()}
    assert max(errs.values()) <= sr.TOL, errs
    assert sr.max_change(run, prog.trainable) >= 1e-3


def _int8_program(name: str, size: int = 32, **options) -> tte.Program:
    return tte.compile(_backbone(name), num_classes=10, input_size=size,
                       update=SCHEMES / f"{name}-49kb.json", optimizer={"lr": 0.01}, **options)


@pytest.mark.parametrize("name", BACKBONES)
def test_int8_training_equals_reference(name):
    """Bit for bit, as tests/test_sparse_update.py: the references sum in the kernels' order."""
    prog = _int8_program(name)
    g = prog.training_graph
    shared, apart = _in_place_nodes(g)
    assert shared  # frozen depthwise layers overwrite gy
    if name == "mbv2-w0.35":  # a partially trained one reads gy after gx, through a split
        assert [n for n in apart if "train_channels" in g.values[n.inputs[1]].meta]
    c, ref = prog.build(out_dir=sr.project_dir(f"inplace-{name}")), prog.reference()
    rng = np.random.default_rng(0)
    for step in range(3):
        x = rng.uniform(-1, 1, (3, 32, 32)).astype(np.float32)
        assert c.train_step(x, step) == ref.train_step(x, step)
    got, expect = c.params(), ref.params()
    for p in prog.trainable:
        np.testing.assert_array_equal(got[p], expect[p], err_msg=p)


SANITIZED_CHILD = """
import sys, numpy as np, tte
assert "libasan" in open("/proc/self/maps").read()
prog = tte.compile(sys.argv[1], num_classes=10, input_size=32, update=sys.argv[2],
                   optimizer={"lr": 0.01})
c, ref = prog.build(sanitize=True, out_dir=sys.argv[3]), prog.reference()
x = np.random.default_rng(0).uniform(-1, 1, (3, 32, 32)).astype(np.float32)
sys.exit(0 if c.train_step(x, 1) == ref.train_step(x, 1) else 3)
"""


def test_sanitized_int8_training_runs_clean():
    name = "mcunet-5fps"
    run = subprocess.run([sys.executable, "-c", SANITIZED_CHILD, str(_backbone(name)),
                          str(SCHEMES / f"{name}-49kb.json"),
                          sr.project_dir(f"inplace-{name}-sanitized")],
                         env=sr.sanitizer_env(), capture_output=True, text=True, timeout=600,
                         cwd=str(ROOT))
    assert run.returncode == 0, run.stderr[-3000:]


# --- training memory ------------------------------------------------------------------------

@pytest.mark.parametrize("name", BACKBONES)
def test_backbone_training_arena_shrinks(name, monkeypatch, capsys):
    """The 49kb schemes at 128x128 with patches, int8 head and input: arena with and without
    the in-place op (the VJP told it never applies)."""
    def arena() -> int:
        prog = _int8_program(name, 128, head="int8", int8_input=True, patch="auto")
        return prog.report()["memory"]["training_arena_bytes"]
    after = arena()
    with monkeypatch.context() as m:
        m.setattr(inplace_grad, "applies", lambda *a: False)
        before = arena()
    with capsys.disabled():
        print(f"\n{name} 49kb training arena: {before:,} -> {after:,} B")
    assert after < before
