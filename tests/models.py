"""Six small ONNX models built in code for whole-model tests.

Each builder returns an ``onnx.ModelProto`` (opset 17, float32) with a single
input ``"x"`` of batch 1 and a single output ``"logits"`` of shape
``[1, num_classes]``.  Weights are drawn deterministically from
``numpy.random.default_rng(seed)`` with He-style scaling so activations stay
O(1).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class _Builder:
    """Tiny helper that accumulates nodes and initializers."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0
        self._names: set[str] = set()

    def fresh(self, base: str) -> str:
        self._n += 1
        return f"{base}_{self._n}"

    def init(self, name: str, arr: np.ndarray) -> str:
        assert name not in self._names, name
        self._names.add(name)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def node(self, op: str, inputs: list[str], n_out: int = 1, name: str | None = None, **attrs):
        name = name or self.fresh(op.lower())
        outs = [f"{name}_out{i}" if n_out > 1 else f"{name}_out" for i in range(n_out)]
        self.nodes.append(helper.make_node(op, inputs, outs, name=name, **attrs))
        return outs[0] if n_out == 1 else outs

    # ---- layers -------------------------------------------------------
    def conv(self, x, cin, cout, k, *, stride=1, pads=None, dilation=1, group=1,
             bias=True, name=None):
        name = name or self.fresh("conv")
        fan_in = (cin // group) * k * k
        w = self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)
        inputs = [self.init(f"{name}.weight", w.astype(np.float32))]
        if bias:
            b = 0.1 * self.rng.standard_normal(cout)
            inputs.append(self.init(f"{name}.bias", b.astype(np.float32)))
        if pads is None:
            p = dilation * (k - 1) // 2
            pads = [p, p, p, p]
        return self.node("Conv", [x] + inputs, name=name, kernel_shape=[k, k],
                         strides=[stride, stride], pads=list(pads),
                         dilations=[dilation, dilation], group=group)

    def bn(self, x, c, name=None):
        name = name or self.fresh("bn")
        rng = self.rng
        gamma = rng.uniform(0.5, 1.5, c)
        beta = 0.2 * rng.standard_normal(c)
        mean = 0.3 * rng.standard_normal(c)
        var = rng.uniform(0.5, 2.0, c)
        ins = [x,
               self.init(f"{name}.weight", gamma.astype(np.float32)),
               self.init(f"{name}.bias", beta.astype(np.float32)),
               self.init(f"{name}.running_mean", mean.astype(np.float32)),
               self.init(f"{name}.running_var", var.astype(np.float32))]
        return self.node("BatchNormalization", ins, name=name, epsilon=1e-5)

    def clip6(self, x):
        if "clip_min" not in self._names:
            self.init("clip_min", np.array(0.0, np.float32))
            self.init("clip_max", np.array(6.0, np.float32))
        return self.node("Clip", [x, "clip_min", "clip_max"])

    def relu(self, x):
        return self.node("Relu", [x])

    def gemm(self, x, k, m, name=None, scale=None):
        name = name or self.fresh("fc")
        scale = np.sqrt(2.0 / k) if scale is None else scale
        w = self.rng.standard_normal((m, k)) * scale
        b = 0.1 * self.rng.standard_normal(m)
        ins = [x, self.init(f"{name}.weight", w.astype(np.float32)),
               self.init(f"{name}.bias", b.astype(np.float32))]
        return self.node("Gemm", ins, name=name, transB=1)

    def build(self, name: str, in_shape, out, n_classes) -> onnx.ModelProto:
        # rename final output to "logits"
        last = self.nodes[-1]
        assert last.output[0] == out
        last.output[0] = "logits"
        graph = helper.make_graph(
            self.nodes, name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))],
            [helper.make_tensor_value_info("logits", TensorProto.FLOAT, [1, n_classes])],
            initializer=self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                                  producer_name="tte-tests")
        model.ir_version = 8
        onnx.checker.check_model(model, full_check=True)
        return model


def mlp(seed: int = 0) -> onnx.ModelProto:
    b = _Builder(seed)
    h = b.relu(b.gemm("x", 64, 32, name="fc1"))
    out = b.gemm(h, 32, 10, name="fc2")
    return b.build("mlp", [1, 64], out, 10)


def lenet(seed: int = 1) -> onnx.ModelProto:
    b = _Builder(seed)
    h = b.relu(b.conv("x", 1, 6, 5, pads=[2, 2, 2, 2], name="conv1"))
    h = b.node("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2])          # 6x8x8
    h = b.relu(b.conv(h, 6, 8, 3, pads=[0, 0, 0, 0], name="conv2"))              # 8x6x6
    h = b.node("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])              # 8x3x3
    h = b.node("Flatten", [h], axis=1)                                           # 72
    h = b.relu(b.gemm(h, 72, 32, name="fc1"))
    out = b.gemm(h, 32, 10, name="fc2")
    return b.build("lenet", [1, 1, 16, 16], out, 10)


def dwsep_bn_relu6(seed: int = 2) -> onnx.ModelProto:
    b = _Builder(seed)
    h = b.conv("x", 3, 8, 3, stride=2, bias=False, name="conv_stem")             # 8x8x8
    h = b.clip6(b.bn(h, 8, name="bn_stem"))
    h = b.conv(h, 8, 8, 3, group=8, bias=False, name="conv_dw")                  # 8x8x8
    h = b.clip6(b.bn(h, 8, name="bn_dw"))
    h = b.conv(h, 8, 16, 1, bias=True, name="conv_pw")                           # 16x8x8
    h = b.clip6(b.bn(h, 16, name="bn_pw"))
    h = b.node("GlobalAveragePool", [h])
    h = b.node("Flatten", [h], axis=1)
    out = b.gemm(h, 16, 10, name="fc")
    return b.build("dwsep_bn_relu6", [1, 3, 16, 16], out, 10)


def residual(seed: int = 3) -> onnx.ModelProto:
    b = _Builder(seed)
    h = b.relu(b.conv("x", 4, 4, 3, name="conv1"))
    h = b.conv(h, 4, 4, 3, name="conv2")
    h = b.relu(b.node("Add", [h, "x"]))
    h = b.node("GlobalAveragePool", [h])
    h = b.node("Flatten", [h], axis=1)
    out = b.gemm(h, 4, 5, name="fc")
    return b.build("residual", [1, 4, 8, 8], out, 5)


def mbv2_stack(seed: int = 4) -> onnx.ModelProto:
    b = _Builder(seed)
    h = b.conv("x", 3, 8, 3, stride=2, bias=False, name="stem")                  # 8x16x16
    h = b.clip6(b.bn(h, 8, name="stem_bn"))
    c = 8
    # (expand ratio, out channels, stride)
    for i, (t, cout, s) in enumerate([(2, 8, 1), (3, 12, 2), (2, 12, 1)]):
        inp = h
        ce = c * t
        p = f"block{i}"
        h = b.conv(h, c, ce, 1, bias=False, name=f"{p}.expand")
        h = b.clip6(b.bn(h, ce, name=f"{p}.expand_bn"))
        h = b.conv(h, ce, ce, 3, stride=s, group=ce, bias=False, name=f"{p}.dw")
        h = b.clip6(b.bn(h, ce, name=f"{p}.dw_bn"))
        h = b.conv(h, ce, cout, 1, bias=False, name=f"{p}.project")
        h = b.bn(h, cout, name=f"{p}.project_bn")
        if s == 1 and c == cout:
            h = b.node("Add", [h, inp])
        c = cout
    h = b.node("GlobalAveragePool", [h])
    h = b.node("Flatten", [h], axis=1)
    out = b.gemm(h, c, 10, name="classifier")
    return b.build("mbv2_stack", [1, 3, 32, 32], out, 10)


def pool_concat_hswish(seed: int = 5) -> onnx.ModelProto:
    b = _Builder(seed)
    a = b.node("HardSwish", [b.conv("x", 3, 6, 3, pads=[1, 1, 1, 1], name="branch3")])
    c = b.node("HardSwish", [b.conv("x", 3, 4, 1, pads=[0, 0, 0, 0], name="branch1")])
    h = b.node("Concat", [a, c], axis=1)                                         # 10x16x16
    h = b.node("MaxPool", [h], kernel_shape=[3, 3], strides=[2, 2],
               pads=[0, 0, 1, 1])                                                # 10x8x8
    # asymmetric pads (top,left,bottom,right) = (2,1,1,2), dilation 2, 3x3
    h = b.conv(h, 10, 8, 3, pads=[2, 1, 1, 2], dilation=2, name="conv_dil")      # 8x7x7
    h = b.node("Sigmoid", [h])
    h = b.node("GlobalAveragePool", [h])
    shape = b.init("reshape_shape", np.array([1, 8], np.int64))
    h = b.node("Reshape", [h, shape])
    out = b.gemm(h, 8, 6, name="fc", scale=2.0)
    return b.build("pool_concat_hswish", [1, 3, 16, 16], out, 6)


MODELS = {
    "mlp": mlp,
    "lenet": lenet,
    "dwsep_bn_relu6": dwsep_bn_relu6,
    "residual": residual,
    "mbv2_stack": mbv2_stack,
    "pool_concat_hswish": pool_concat_hswish,
}


def input_shape(model: onnx.ModelProto) -> tuple[int, ...]:
    t = model.graph.input[0].type.tensor_type
    return tuple(d.dim_value for d in t.shape.dim)


def num_classes(model: onnx.ModelProto) -> int:
    return model.graph.output[0].type.tensor_type.shape.dim[1].dim_value


# --------------------------------------------------------------------------
# MobileNetV2 width 0.35 (not in MODELS: it is large; tests/test_host_c.py uses it)
# --------------------------------------------------------------------------

def _make_divisible(v: float, divisor: int = 8) -> int:
    """torchvision's rounding of a scaled channel count (never below 90% of v)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new


MBV2_SETTINGS = [  # (expand ratio t, channels c, repeats n, first stride s)
    (1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
    (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1),
]


def _np_conv(x: np.ndarray, w: np.ndarray, stride: int, pad: int, group: int) -> np.ndarray:
    """float64 NCHW/OIHW grouped convolution (no bias) for BN calibration."""
    n, c, _, _ = x.shape
    o, cg, k, _ = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), (pad, pad), (pad, pad)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (k, k), axis=(2, 3))[:, :, ::stride, ::stride]
    ho, wo = win.shape[2:4]
    win = win.reshape(n, group, cg, ho, wo, k, k)
    wg = w.reshape(group, o // group, cg, k, k)
    y = np.einsum("ngchwij,gocij->ngohw", win, wg, optimize=True)
    return y.reshape(n, o, ho, wo)


class _Calibrated:
    """Builds conv/BN/ReLU6 layers while pushing a batch of random inputs through them in
    float64, so that each BN gets running statistics close to those of its real input (as a
    trained network has), jittered so they are not exact: mean + 0.1*std*N(0,1), var*U(0.7,1.4).
    gamma ~ U(0.5, 1.5), beta ~ 0.2*N(0,1), as in _Builder.bn."""

    def __init__(self, b: _Builder, x: np.ndarray) -> None:
        self.b, self.act = b, {"x": x}

    def conv(self, h, cin, cout, k, *, stride=1, group=1, name):
        out = self.b.conv(h, cin, cout, k, stride=stride, group=group, bias=False, name=name)
        w = numpy_helper.to_array(self.b.inits[-1]).astype(np.float64)
        self.act[out] = _np_conv(self.act[h], w, stride, (k - 1) // 2, group)
        return out

    def bn(self, h, c, *, name):
        rng, a = self.b.rng, self.act[h]
        mean, var = a.mean(axis=(0, 2, 3)), a.var(axis=(0, 2, 3)) + 1e-3
        mean = mean + 0.1 * np.sqrt(var) * rng.standard_normal(c)
        var = var * rng.uniform(0.7, 1.4, c)
        gamma, beta = rng.uniform(0.5, 1.5, c), 0.2 * rng.standard_normal(c)
        f32 = lambda v: v.astype(np.float32)  # noqa: E731
        ins = [h, self.b.init(f"{name}.weight", f32(gamma)), self.b.init(f"{name}.bias", f32(beta)),
               self.b.init(f"{name}.running_mean", f32(mean)),
               self.b.init(f"{name}.running_var", f32(var))]
        out = self.b.node("BatchNormalization", ins, name=name, epsilon=1e-5)
        sh = (1, -1, 1, 1)
        self.act[out] = ((a - f32(mean).reshape(sh)) / np.sqrt(f32(var).reshape(sh) + 1e-5)
                         * f32(gamma).reshape(sh) + f32(beta).reshape(sh))
        return out

    def clip6(self, h):
        out = self.b.clip6(h)
        self.act[out] = np.clip(self.act[h], 0.0, 6.0)
        return out

    def add(self, h, other):
        out = self.b.node("Add", [h, other])
        self.act[out] = self.act[h] + self.act[other]
        return out


def mobilenetv2_w035(resolution: int = 64, num_classes: int = 10,
                     seed: int = 6) -> onnx.ModelProto:
    """MobileNetV2 at width multiplier 0.35, the torchvision architecture.

    Stem 3x3/s2 conv to 16 channels, the 17 inverted-residual blocks of
    ``MBV2_SETTINGS`` with channels ``_make_divisible(c * 0.35)`` (16, 8, 8, 16,
    24, 32, 56, 112), BN after every conv, ReLU6 after every conv but the
    projection, a residual Add when stride 1 and in == out channels, a final
    1x1 conv to 1280, global average pool, flatten and a Gemm classifier.
    He-initialised weights.  BN statistics are calibrated on 32 standard-normal
    inputs and then jittered (see ``_Calibrated``): with purely random
    statistics the per-layer gains compound over 52 convolutions and batch-1 SGD
    becomes chaotic (a single float32 rounding that flips a ReLU6 gate grows
    10-30x per step), which no float32 implementation could reproduce.
    """
    width = 0.35
    b = _Builder(seed)
    cal = _Calibrated(b, b.rng.standard_normal((32, 3, resolution, resolution)))
    c = _make_divisible(32 * width)                                              # 16
    h = cal.conv("x", 3, c, 3, stride=2, name="stem")
    h = cal.clip6(cal.bn(h, c, name="stem_bn"))
    block = 0
    for t, ch, n, s in MBV2_SETTINGS:
        cout = _make_divisible(ch * width)
        for i in range(n):
            stride = s if i == 0 else 1
            inp, ce, p = h, c * t, f"block{block}"
            if t != 1:
                h = cal.conv(h, c, ce, 1, name=f"{p}.expand")
                h = cal.clip6(cal.bn(h, ce, name=f"{p}.expand_bn"))
            h = cal.conv(h, ce, ce, 3, stride=stride, group=ce, name=f"{p}.dw")
            h = cal.clip6(cal.bn(h, ce, name=f"{p}.dw_bn"))
            h = cal.conv(h, ce, cout, 1, name=f"{p}.project")
            h = cal.bn(h, cout, name=f"{p}.project_bn")
            if stride == 1 and c == cout:
                h = cal.add(h, inp)
            c = cout
            block += 1
    last = 1280  # _make_divisible(1280 * max(1.0, width))
    h = cal.conv(h, c, last, 1, name="head")
    h = cal.clip6(cal.bn(h, last, name="head_bn"))
    h = b.node("GlobalAveragePool", [h])
    h = b.node("Flatten", [h], axis=1)
    out = b.gemm(h, last, num_classes, name="classifier")
    return b.build("mobilenetv2_w035", [1, 3, resolution, resolution], out, num_classes)
