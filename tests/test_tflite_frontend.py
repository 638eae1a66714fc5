"""TFLite frontend: every int8 .tflite model of ../shared/models runs in TTE's numpy
interpreter and in its generated host C exactly as in tflite-micro (the bit-exact MCU
reference), every element of the output and of every intermediate tensor, on random inputs
and the shipped test images; float models within float32 rounding."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tte
from tte.errors import TTEError, UnsupportedError
from tte.frontends.tflite_frontend import load_tflite, to_ir_layout
from tte.interpreter import run

MODELS = Path(__file__).resolve().parents[2] / "shared" / "models"
INT8 = ["mlperf_tiny/vww_96_int8", "mlperf_tiny/kws_ref_model", "mlperf_tiny/resnet8_int8",
        "mlperf_tiny/ad01_int8", "mlperf_tiny/str_ww_ref_model", "tflm/person_detect",
        "tflm/micro_speech_quantized", "tflm/hello_world_int8"]
FLOAT = ["mlperf_tiny/vww_96_float", "mlperf_tiny/resnet8_float", "tflm/hello_world_float"]
SEEDS = range(3)


def _path(name: str) -> Path:
    path = MODELS / f"{name}.tflite"
    if not path.exists():
        pytest.skip(f"{path} not present")
    return path


def _tflm(path: Path, preserve: bool = False):
    runtime = pytest.importorskip("tflite_micro").runtime
    config = runtime.InterpreterConfig
    return runtime.Interpreter.from_file(
        str(path), intrepreter_config=config.kPreserveAllTensors if preserve
        else config.kAllocationRecording)


def _random_input(it, seed: int) -> np.ndarray:
    d = it.get_input_details(0)
    rng = np.random.default_rng(seed)
    if d["dtype"] == np.int8:
        return rng.integers(-128, 127, size=d["shape"], endpoint=True).astype(np.int8)
    return rng.uniform(-1, 1, size=d["shape"]).astype(np.float32)


def _as_tflite(got: np.ndarray, want_shape) -> np.ndarray:
    """An IR (NCHW) value in TFLite's layout."""
    if got.ndim == 4 and len(want_shape) == 4:
        got = got.transpose(0, 2, 3, 1)
    return got.reshape(want_shape)


@pytest.fixture(scope="module", params=INT8)
def int8_model(request):
    path = _path(request.param)
    prog = tte.compile(path, update=[])
    return path, prog, prog.build()


def test_int8_every_layer_equals_tflite_micro(int8_model):
    """All IR values bound to a TFLite tensor, in the numpy interpreter, against TFLM's
    preserved tensors; plus the final output of the host C."""
    path, prog, c = int8_model
    g = prog.forward_graph.copy()
    bound = {n: v.meta["tflite_tensor"] for n, v in g.values.items() if "tflite_tensor" in v.meta}
    g.outputs = list(bound)
    it = _tflm(path, preserve=True)
    compared = 0
    for seed in SEEDS:
        x = _random_input(it, seed)
        it.set_input(x, 0)
        it.invoke()
        values = run(g, {g.inputs[0]: to_ir_layout(x)})
        for name, index in bound.items():
            want = it.GetTensor(index, 0)["tensor_data"]
            got = _as_tflite(values[name], want.shape)
            assert np.array_equal(got, want), (f"{path.name} seed {seed}: {name} differs in "
                                               f"{np.count_nonzero(got != want)} of {want.size}")
            compared += want.size
        want = it.get_output(0)
        np.testing.assert_array_equal(_as_tflite(c.forward(to_ir_layout(x)), want.shape), want)
    print(f"\n{path.name}: {len(bound)} tensors x {len(SEEDS)} inputs, {compared} elements equal")


def _bmp_int8(path: Path) -> np.ndarray:
    """person_detect's test image as the upstream test feeds it: the raw 8-bit pixels viewed as
    int8 (TFLITE_NOTES.md, section 4). A BMP stores rows bottom-up after its pixel offset."""
    data = path.read_bytes()
    offset = int.from_bytes(data[10:14], "little")
    w, h = (int.from_bytes(data[k:k + 4], "little", signed=True) for k in (18, 22))
    rows = np.frombuffer(data, np.uint8, count=abs(h) * w, offset=offset).reshape(abs(h), w)
    return (rows[::-1] if h > 0 else rows).view(np.int8).reshape(1, 1, abs(h), w)


@pytest.mark.parametrize("image, label", [("person.bmp", 1), ("no_person.bmp", 0)])
def test_person_detection_on_the_shipped_images(image, label):
    path = _path("tflm/person_detect")
    img_path = MODELS / "tflm" / image
    if not img_path.exists():
        pytest.skip(f"{img_path} not present")
    x = _bmp_int8(img_path)
    prog = tte.compile(path, update=[])
    scores_c = prog.build().forward(x).reshape(-1)
    scores_ref = prog.reference().forward(x).reshape(-1)
    it = _tflm(path)
    it.set_input(x.transpose(0, 2, 3, 1), 0)
    it.invoke()
    want = it.get_output(0).reshape(-1)  # [no person, person]
    np.testing.assert_array_equal(scores_c, want)
    np.testing.assert_array_equal(scores_ref, want)
    assert int(np.argmax(want)) == label


def test_hello_world_sine_sweep():
    path = _path("tflm/hello_world_int8")
    prog = tte.compile(path, update=[])
    c = prog.build()
    it = _tflm(path)
    d = it.get_input_details(0)
    (scale,), (zero,) = d["quantization_parameters"]["scales"], \
        d["quantization_parameters"]["zero_points"]
    for v in np.linspace(0, 2 * np.pi, 50):
        x = np.clip(np.round(v / scale) + zero, -128, 127).astype(np.int8).reshape(1, 1)
        it.set_input(x, 0)
        it.invoke()
        np.testing.assert_array_equal(c.forward(x), it.get_output(0))


@pytest.mark.parametrize("name", FLOAT)
def test_float_models(name):
    path = _path(name)
    prog = tte.compile(path, update=[])
    c = prog.build()
    it = _tflm(path)
    for seed in SEEDS:
        x = _random_input(it, seed)
        it.set_input(x, 0)
        it.invoke()
        want = it.get_output(0)
        for runner in (c, prog.reference()):
            got = _as_tflite(runner.forward(to_ir_layout(x)), want.shape)
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_fully_connected_on_4d_input_permutes_weights():
    """micro_speech flattens a [1, 25, 20, 8] NHWC map: no run-time transpose is emitted."""
    g = load_tflite(_path("tflm/micro_speech_quantized"))
    assert not [n for n in g.nodes if n.op == "transpose"]


def test_errors():
    with pytest.raises(TTEError, match="not a TFLite flatbuffer"):
        load_tflite(b"\x00" * 16)
    data = _path("tflm/hello_world_int8").read_bytes()
    with pytest.raises(TTEError, match="malformed|TFLite"):
        load_tflite(data[:len(data) // 3])
    with pytest.raises(UnsupportedError, match="hybrid"):
        load_tflite(_path("mlperf_tiny/kws_ref_model_float32"))


def test_unsupported_op_is_named():
    """A real model with one op code changed to TANH is refused with the op and the list."""
    fb = pytest.importorskip("tflite_micro.tensorflow.lite.micro.python.schema_py_generated")
    import flatbuffers
    m = fb.ModelT.InitFromPackedBuf(bytearray(_path("tflm/hello_world_int8").read_bytes()), 0)
    code = m.operatorCodes[m.subgraphs[0].operators[0].opcodeIndex]
    code.builtinCode = code.deprecatedBuiltinCode = fb.BuiltinOperator.TANH
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    with pytest.raises(UnsupportedError, match=r"TANH .*CONV_2D"):
        load_tflite(bytes(b.Output()))
