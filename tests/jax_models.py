"""The six whole-model test models of tests/models.py written again as plain JAX functions
apply(params, x) -> logits, the way a JAX user writes them (lax convolutions with
dimension numbers, reduce_window pools, jax.nn activations, inference-form BN whose running
statistics are closed-over constants), plus the jax.grad-based SGD+momentum training that
TTE's trained parameters are checked against.

Inputs are NCHW with batch 1 (as the ONNX models); mbv2_stack transposes to NHWC/HWIO
inside, residual pads "SAME". Weights are drawn from numpy.random.default_rng(seed) with
He scaling so activations stay O(1), in the order and shapes tests/models.py draws them: a
model here holds the same numbers as the ONNX model of the same seed and computes the same
function.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

NCHW = ("NCHW", "OIHW", "NCHW")
NHWC = ("NHWC", "HWIO", "NHWC")


class JaxModel(NamedTuple):
    apply: Callable[[Any, jax.Array], jax.Array]
    params: dict
    input_shape: tuple[int, ...]
    num_classes: int


def _f32(a: np.ndarray) -> np.ndarray:
    return a.astype(np.float32)


class _Init:
    """Deterministic He-scaled weights; BN running statistics kept apart as constants."""

    def __init__(self, seed: int) -> None:
        self.rng = np.random.default_rng(seed)

    def conv(self, cin: int, cout: int, k: int, *, group: int = 1, bias: bool = True,
             hwio: bool = False) -> dict:
        fan_in = cin // group * k * k
        w = self.rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)
        p = {"w": _f32(w.transpose(2, 3, 1, 0) if hwio else w)}
        if bias:
            p["b"] = _f32(0.1 * self.rng.standard_normal(cout))
        return p

    def dense(self, k: int, m: int, scale: float | None = None) -> dict:
        scale = np.sqrt(2.0 / k) if scale is None else scale
        w = self.rng.standard_normal((m, k)) * scale  # drawn [out, in] as the ONNX Gemm's
        return {"w": _f32(w.T),
                "b": _f32(0.1 * self.rng.standard_normal(m))}

    def bn(self, c: int) -> tuple[dict, tuple[np.ndarray, np.ndarray]]:
        """(trainable scale and bias, (running mean, running var))."""
        scale, bias = self.rng.uniform(0.5, 1.5, c), 0.2 * self.rng.standard_normal(c)
        mean, var = 0.3 * self.rng.standard_normal(c), self.rng.uniform(0.5, 2.0, c)
        return ({"scale": _f32(scale), "bias": _f32(bias)},
                (_f32(mean), _f32(var)))


def batchnorm(x: jax.Array, p: dict, stats: tuple[np.ndarray, np.ndarray],
              axis: int = 1) -> jax.Array:
    """Inference-form BN over channel axis `axis` of x."""
    shape = [1] * x.ndim
    shape[axis] = -1
    mean, var = (s.reshape(shape) for s in stats)
    return ((x - mean) / jnp.sqrt(var + 1e-5) * p["scale"].reshape(shape)
            + p["bias"].reshape(shape))


def conv(x: jax.Array, p: dict, *, stride: int = 1, pad: Any = 1, dilation: int = 1,
         group: int = 1, dn: tuple = NCHW) -> jax.Array:
    """pad: an int for the same padding on every side, [(top, bottom), (left, right)] or a
    string such as "SAME"."""
    padding = [(pad, pad)] * 2 if isinstance(pad, int) else pad
    y = lax.conv_general_dilated(x, p["w"], (stride, stride), padding,
                                 rhs_dilation=(dilation, dilation), dimension_numbers=dn,
                                 feature_group_count=group)
    if "b" not in p:
        return y
    return y + (p["b"] if dn[2] == "NHWC" else p["b"][:, None, None])


def dense(x: jax.Array, p: dict) -> jax.Array:
    return x @ p["w"] + p["b"]


def max_pool(x: jax.Array, k: int, stride: int,
             pads: tuple = ((0, 0), (0, 0))) -> jax.Array:
    """NCHW max pool; pads: ((top, bottom), (left, right))."""
    return lax.reduce_window(x, -jnp.inf, lax.max, (1, 1, k, k), (1, 1, stride, stride),
                             ((0, 0), (0, 0), *pads))


def avg_pool(x: jax.Array, k: int, stride: int) -> jax.Array:
    return lax.reduce_window(x, 0.0, lax.add, (1, 1, k, k), (1, 1, stride, stride),
                             "VALID") / (k * k)


def mlp(seed: int = 0) -> JaxModel:
    init = _Init(seed)
    params = {"fc1": init.dense(64, 32), "fc2": init.dense(32, 10)}

    def apply(p, x):
        return dense(jax.nn.relu(dense(x, p["fc1"])), p["fc2"])
    return JaxModel(apply, params, (1, 64), 10)


def lenet(seed: int = 1) -> JaxModel:
    init = _Init(seed)
    params = {"conv1": init.conv(1, 6, 5), "conv2": init.conv(6, 8, 3),
              "fc1": init.dense(72, 32), "fc2": init.dense(32, 10)}

    def apply(p, x):
        h = avg_pool(jax.nn.relu(conv(x, p["conv1"], pad=2)), 2, 2)       # 6x8x8
        h = max_pool(jax.nn.relu(conv(h, p["conv2"], pad=0)), 2, 2)       # 8x3x3
        h = jax.nn.relu(dense(h.reshape(h.shape[0], -1), p["fc1"]))
        return dense(h, p["fc2"])
    return JaxModel(apply, params, (1, 1, 16, 16), 10)


def dwsep_bn_relu6(seed: int = 2) -> JaxModel:
    init = _Init(seed)
    params, stats = {}, {}
    for name, (cin, cout, k, group, bias) in {"stem": (3, 8, 3, 1, False),
                                              "dw": (8, 8, 3, 8, False),
                                              "pw": (8, 16, 1, 1, True)}.items():
        params[f"conv_{name}"] = init.conv(cin, cout, k, group=group, bias=bias)
        params[f"bn_{name}"], stats[name] = init.bn(cout)
    params["fc"] = init.dense(16, 10)

    def apply(p, x):
        h = conv(x, p["conv_stem"], stride=2)                               # 8x8x8
        h = jax.nn.relu6(batchnorm(h, p["bn_stem"], stats["stem"]))
        h = jax.nn.relu6(batchnorm(conv(h, p["conv_dw"], group=8), p["bn_dw"], stats["dw"]))
        h = jax.nn.relu6(batchnorm(conv(h, p["conv_pw"], pad=0), p["bn_pw"], stats["pw"]))
        return dense(jnp.mean(h, axis=(2, 3)), p["fc"])
    return JaxModel(apply, params, (1, 3, 16, 16), 10)


def residual(seed: int = 3) -> JaxModel:
    init = _Init(seed)
    params = {"conv1": init.conv(4, 4, 3), "conv2": init.conv(4, 4, 3), "fc": init.dense(4, 5)}

    def apply(p, x):
        h = jax.nn.relu(conv(x, p["conv1"], pad="SAME"))
        h = jax.nn.relu(conv(h, p["conv2"], pad="SAME") + x)
        return dense(h.mean(axis=(2, 3)), p["fc"])
    return JaxModel(apply, params, (1, 4, 8, 8), 5)


def mbv2_stack(seed: int = 4) -> JaxModel:
    """Three inverted-residual blocks, computed in NHWC with HWIO weights."""
    init = _Init(seed)
    params, stats = {"stem": init.conv(3, 8, 3, bias=False, hwio=True)}, {}
    params["stem_bn"], stats["stem_bn"] = init.bn(8)
    blocks, c = [], 8
    for i, (t, cout, s) in enumerate([(2, 8, 1), (3, 12, 2), (2, 12, 1)]):
        ce, block = c * t, {}
        for layer, cin, co, k, group in (("expand", c, ce, 1, 1), ("dw", ce, ce, 3, ce),
                                         ("project", ce, cout, 1, 1)):
            block[layer] = init.conv(cin, co, k, group=group, bias=False, hwio=True)
            block[f"{layer}_bn"], stats[f"block{i}/{layer}"] = init.bn(co)
        params[f"block{i}"] = block
        blocks.append((s, s == 1 and c == cout))
        c = cout
    params["classifier"] = init.dense(c, 10)

    def bn(h, p, key):
        return batchnorm(h, p, stats[key], axis=3)

    def apply(p, x):
        h = jnp.transpose(x, (0, 2, 3, 1))
        h = jax.nn.relu6(bn(conv(h, p["stem"], stride=2, dn=NHWC), p["stem_bn"], "stem_bn"))
        for i, (s, skip) in enumerate(blocks):
            b, key = p[f"block{i}"], f"block{i}/"
            y = jax.nn.relu6(bn(conv(h, b["expand"], pad=0, dn=NHWC), b["expand_bn"],
                                key + "expand"))
            ce = y.shape[3]
            y = jax.nn.relu6(bn(conv(y, b["dw"], stride=s, group=ce, dn=NHWC), b["dw_bn"],
                                key + "dw"))
            y = bn(conv(y, b["project"], pad=0, dn=NHWC), b["project_bn"], key + "project")
            h = y + h if skip else y
        return dense(jnp.mean(h, axis=(1, 2)), p["classifier"])
    return JaxModel(apply, params, (1, 3, 32, 32), 10)


def pool_concat_hswish(seed: int = 5) -> JaxModel:
    init = _Init(seed)
    params = {"branch3": init.conv(3, 6, 3), "branch1": init.conv(3, 4, 1),
              "conv_dil": init.conv(10, 8, 3), "fc": init.dense(8, 6, scale=2.0)}

    def apply(p, x):
        h = jnp.concatenate([jax.nn.hard_swish(conv(x, p["branch3"])),
                             jax.nn.hard_swish(conv(x, p["branch1"], pad=0))], axis=1)
        h = max_pool(h, 3, 2, pads=((0, 1), (0, 1)))                        # 10x8x8
        # asymmetric pads (top, bottom) = (2, 1), (left, right) = (1, 2), dilation 2
        h = jax.nn.sigmoid(conv(h, p["conv_dil"], pad=[(2, 1), (1, 2)], dilation=2))
        return dense(jnp.mean(h, axis=(2, 3)).reshape(1, 8), p["fc"])
    return JaxModel(apply, params, (1, 3, 16, 16), 6)


MODELS: dict[str, Callable[[], JaxModel]] = {
    "mlp": mlp, "lenet": lenet, "dwsep_bn_relu6": dwsep_bn_relu6, "residual": residual,
    "mbv2_stack": mbv2_stack, "pool_concat_hswish": pool_concat_hswish,
}


def sgd_momentum_train(apply: Callable, params: Any, xs: np.ndarray, labels: list[int], *,
                       lr: float, momentum: float) -> Any:
    """params after one SGD+momentum step per (x, label) on softmax cross-entropy, with
    gradients from jax.grad in float64 (the oracle TTE's runners are held to)."""
    def loss(p, x, y):
        return -jax.nn.log_softmax(apply(p, x))[0, y]
    grad = jax.jit(jax.grad(loss))
    with jax.enable_x64(True):
        p = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), params)
        mom = jax.tree_util.tree_map(jnp.zeros_like, p)
        for x, y in zip(xs, labels):
            g = grad(p, jnp.asarray(x, jnp.float64), y)
            mom = jax.tree_util.tree_map(lambda m, d: momentum * m + d, mom, g)
            p = jax.tree_util.tree_map(lambda a, m: a - lr * m, p, mom)
        return jax.tree_util.tree_map(np.asarray, p)
