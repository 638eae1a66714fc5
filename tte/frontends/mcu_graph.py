"""An MCU backbone (tte.frontends.mcu_pickle.McuModel) as an IR graph.

precision="int8": the published int8 semantics (half-even requantization in double, see
mcu_pickle.McuConv): quantize -> conv2d_s8 / add_s8 -> avg_pool2d_s8 -> head ->
dequantize, float logits. precision="fp32": the same network with dequantized parameters
(w = s_w * w_q, b = s_x * s_w * b_q) and each int8 clamp as a float clip, which is what
"fp32 training of the quantized model" means in the transfer experiment.

Parameter names follow the file: "<conv name>.weight" / ".bias" (conv names as in
McuModel.conv_layers(), e.g. "blocks.3.depthwise"). With num_classes, the classifier is
replaced by a new head "head.weight" / "head.bias": fp32 (as the paper recommends) or int8.
"""
from __future__ import annotations

import numpy as np

from tte.errors import TTEError
from tte.frontends.mcu_pickle import McuConv, McuConvResidual, McuModel
from tte.ir.graph import Graph
from tte.ir.types import DType, QuantParams
from tte.ops import get_op

HEADS = ("fp32", "int8")
PRECISIONS = ("int8", "fp32")
HEAD_SEED = 0
INT8_HEAD_LOGIT_RANGE = 16.0  # int8 head logits cover [-16, 16)


def mcu_graph(model: McuModel, *, num_classes: int | None = None, head: str = "fp32",
              precision: str = "int8", input_size: int | None = None,
              int8_input: bool = False) -> Graph:
    """Forward graph: image [1, 3, S, S] in [-1, 1] (float) -> logits [1, classes].

    int8_input: the image arrives already quantized with first_conv's input scale and zero
    point (a quarter of the float input's SRAM; `quantize_image` does it on the host)."""
    if int8_input and precision != "int8":
        raise TTEError("int8_input needs precision='int8'")
    if precision not in PRECISIONS:
        raise TTEError(f"precision={precision!r}: choose one of {PRECISIONS}")
    if head not in HEADS:
        raise TTEError(f"head={head!r}: choose one of {HEADS}")
    if num_classes is not None and (not isinstance(num_classes, int) or num_classes < 2):
        raise TTEError(f"num_classes={num_classes!r}: a new head needs an integer >= 2")
    size = input_size or model.input_shape[1]
    if size < 32 or size % 32:
        raise TTEError(f"input_size={size}: the backbones take a multiple of 32 (>= 32)")
    b = _Builder(model, precision)
    return b.build(size, num_classes, head, int8_input)


def quantize_image(model: McuModel, image: np.ndarray) -> np.ndarray:
    """A float image in [-1, 1] as the int8 input of mcu_graph(..., int8_input=True): the
    same rule as the graph's own quantize (round half to even in double)."""
    c = model.first_conv
    quantize = get_op("quantize").ref
    return quantize(np.asarray(image), scale=c.x_scale, zero=c.x_zero, rounding="half_even")[0]


def _head_init(classes: int, features: int) -> tuple[np.ndarray, np.ndarray]:
    """PyTorch nn.Linear's default (uniform +-1/sqrt(fan_in)), from a fixed seed."""
    bound = 1.0 / np.sqrt(features)
    rng = np.random.default_rng(HEAD_SEED)
    w = rng.uniform(-bound, bound, (classes, features)).astype(np.float32)
    return w, np.zeros(classes, np.float32)


class _Builder:
    def __init__(self, model: McuModel, precision: str) -> None:
        self.m, self.int8 = model, precision == "int8"
        self.g = Graph(f"{model.name}_{precision}")

    def build(self, size: int, num_classes: int | None, head: str, int8_input: bool) -> Graph:
        g, m = self.g, self.m
        first = m.first_conv
        x = g.add_input("image", (1, 3, size, size), DType.i8 if int8_input else DType.f32)
        if int8_input:
            self.quant(x, first.x_scale, first.x_zero)
        elif self.int8:
            x = g.emit("quantize", [x], {"scale": first.x_scale, "zero": first.x_zero,
                                         "rounding": "half_even"}, name_hint="image_q")
            self.quant(x, first.x_scale, first.x_zero)
        x = self.conv(x, first)
        for block in m.blocks:
            x = self.block(x, block)
        if m.feature_mix is not None:
            x = self.conv(x, m.feature_mix)
        last = m.feature_mix or _last_conv(m)
        scale, zero = _out_qparams(m, last)
        x = self.pool(x, scale, zero)
        if num_classes is None:
            logits = self.classifier(x, m.classifier)
        else:
            logits = self.new_head(x, scale, zero, num_classes, head)
        g.outputs = [logits]
        return g

    # --- layers -----------------------------------------------------------------------------
    def quant(self, name: str, scale: float, zero: int) -> None:
        self.g.values[name].quant = QuantParams((float(scale),), (int(zero),))

    def conv(self, x: str, c: McuConv, *, name: str | None = None) -> str:
        g = self.g
        ph, pw = c.padding
        geo = {"strides": list(c.stride), "pads": [ph, pw, ph, pw], "dilations": [1, 1],
               "group": c.groups}
        w_scales = np.asarray(c.w_scales, np.float64)
        if self.int8:
            w = g.add_param(f"{c.name}.weight", np.asarray(c.weight, np.int8))
            g.values[w].quant = QuantParams(tuple(w_scales), (0,) * len(w_scales), axis=0)
            b = g.add_param(f"{c.name}.bias", np.asarray(c.bias, np.int32))
            g.values[b].quant = QuantParams(tuple(c.x_scale * w_scales),
                                            (0,) * len(w_scales), axis=0)
            y = g.emit("conv2d_s8", [x, w, b], {
                **geo, "in_scale": c.x_scale, "in_zero": c.x_zero,
                "w_scales": [float(s) for s in w_scales], "out_scale": c.y_scale,
                "out_zero": c.y_zero, "rounding": "half_even"}, name_hint=name or c.name)
            self.quant(y, c.y_scale, c.y_zero)
            return y
        w_real = (c.weight.astype(np.float64) * w_scales[:, None, None, None]).astype(np.float32)
        b_real = (c.bias.astype(np.float64) * c.x_scale * w_scales).astype(np.float32)
        w = g.add_param(f"{c.name}.weight", w_real)
        b = g.add_param(f"{c.name}.bias", b_real)
        y = g.emit("conv2d", [x, w, b], geo, name_hint=name or c.name)
        return self.clip(y, c.y_scale, c.y_zero)

    def clip(self, y: str, scale: float, zero: int) -> str:
        """The float image of an int8 clamp to [-128, 127] at (scale, zero)."""
        lo, hi = scale * (-128 - zero), scale * (127 - zero)
        return self.g.emit("clip", [y], {"min": float(lo), "max": float(hi)},
                           name_hint=f"{y}.clip")

    def add(self, a: str, sa: float, za: int, b: str, sb: float, zb: int, sy: float, zy: int,
            name: str) -> str:
        g = self.g
        if not self.int8:
            return self.clip(g.emit("add", [a, b], name_hint=name), sy, zy)
        y = g.emit("add_s8", [a, b], {"a_scale": sa, "a_zero": za, "b_scale": sb, "b_zero": zb,
                                      "out_scale": sy, "out_zero": zy, "rounding": "half_even"},
                   name_hint=name)
        self.quant(y, sy, zy)
        return y

    def block(self, x: str, block) -> str:
        block_in = x
        for c in block.main_convs():
            x = self.conv(x, c)
        last = block.main_convs()[-1]
        res, name = block.residual, f"blocks.{block.index}.add"
        if isinstance(res, McuConvResidual):
            short = self.conv(block_in, res.conv)
            return self.add(short, res.conv.y_scale, res.conv.y_zero, x, last.y_scale,
                            last.y_zero, res.out_scale, res.out_zero, name)
        if res is not None:
            return self.add(block_in, res.x_scale, res.x_zero, x, last.y_scale, last.y_zero,
                            res.y_scale, res.y_zero, name)
        return x

    def pool(self, x: str, scale: float, zero: int) -> str:
        g = self.g
        h, w = g.values[x].shape[2:]
        geo = {"kernel": [h, w], "strides": [h, w], "pads": [0, 0, 0, 0]}
        if not self.int8:
            return g.emit("global_avg_pool", [x], name_hint="pool")
        y = g.emit("avg_pool2d_s8", [x], {**geo, "rounding": "half_even"}, name_hint="pool")
        self.quant(y, scale, zero)
        return y

    def classifier(self, x: str, c: McuConv) -> str:
        g = self.g
        y = self.conv(x, c, name="classifier")
        y = g.emit("reshape", [y], {"shape": [1, c.out_channels]}, name_hint="logits_q")
        if self.int8:
            self.quant(y, c.y_scale, c.y_zero)
            y = g.emit("dequantize", [y], {"scale": c.y_scale, "zero": c.y_zero},
                       name_hint="logits")
        return y

    def new_head(self, x: str, scale: float, zero: int, classes: int, head: str) -> str:
        g = self.g
        feats = g.values[x].shape[1]
        w, bias = _head_init(classes, feats)
        if head == "int8" and self.int8:
            return self.classifier(x, _int8_head(w, feats, scale, zero))
        if self.int8:
            x = g.emit("dequantize", [x], {"scale": scale, "zero": zero}, name_hint="features")
        x = g.emit("reshape", [x], {"shape": [1, feats]}, name_hint="features_flat")
        wn = g.add_param("head.weight", w)
        bn = g.add_param("head.bias", bias)
        return g.emit("linear", [x, wn, bn], name_hint="logits")


def _int8_head(w: np.ndarray, feats: int, x_scale: float, x_zero: int) -> McuConv:
    """The new head as an int8 1x1 conv: symmetric per-channel weights, zero bias, logits
    quantized to [-16, 16)."""
    w_scales = np.maximum(np.abs(w).max(axis=1), 1e-8) / 127.0
    wq = np.clip(np.rint(w / w_scales[:, None]), -127, 127).astype(np.int8)
    classes = w.shape[0]
    return McuConv("head", feats, classes, (1, 1), (1, 1), 1, False, (0, 0),
                   wq[:, :, None, None], np.zeros(classes, np.int32), w_scales.astype(np.float64),
                   float(x_scale), int(x_zero), 2 * INT8_HEAD_LOGIT_RANGE / 256, 0)


def _last_conv(m: McuModel) -> McuConv:
    return m.blocks[-1].main_convs()[-1] if m.blocks else m.first_conv


def _out_qparams(m: McuModel, last: McuConv) -> tuple[float, int]:
    """Scale and zero point of the backbone's last feature map (the pool keeps them)."""
    if m.feature_mix is None and m.blocks and m.blocks[-1].residual is not None:
        res = m.blocks[-1].residual
        if isinstance(res, McuConvResidual):
            return res.out_scale, res.out_zero
        return res.y_scale, res.y_zero
    return last.y_scale, last.y_zero
