"""Independent JAX oracle of training through an MCU backbone's int8 forward.

Written from the published semantics (../shared/models/README.md, "mcu_imagenet"; the same
as tests/mcu_reference.py) and not from TTE's IR. The network: the int8 backbone up to the
global average pool, the pooled int8 features dequantized, a new float head
(logits = feat @ W.T + b), softmax cross-entropy. Everything in float64, with integer-valued
tensors standing for the int8 / int32 ones.

Rounding. The forward rounds exactly as the published simulator (round half to even of
acc * s_x * s_w / s_y, of the residual sum / s_y and of the pool's mean), so its values equal
tests/mcu_reference.py bit for bit (checked by tests). The backward treats every rounding as
the identity (straight-through estimator: d round(u) / du = 1) and every clamp to [-128, 127]
as passing the gradient where the value before it lies inside [-128, 127] (inclusive; an
explicit mask, not jnp.clip, whose gradient at a tie is 1/2).

Gradients are taken w.r.t. the stored integers: w_q (int8 weights) and b_q (int32 biases) of
the chosen convolutions, and w.r.t. the float head. `qtrain_grads` also gives the QAS-scaled
gradients an update applies: w_q: s_w[c]^-2, b_q: (s_x s_w[c])^-2.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tte.frontends.mcu_pickle import McuConv, McuConvResidual, McuModel

jax.config.update("jax_enable_x64", True)


def _ste_round(u):
    return u + lax.stop_gradient(jnp.round(u) - u)


def _clamp(v):
    inside = (v >= -128) & (v <= 127)
    return jnp.where(inside, v, lax.stop_gradient(jnp.clip(v, -128, 127)))


def _conv(x, c: McuConv, w, b):
    """x: (1, C, H, W) integer-valued -> (1, O, H', W')."""
    ph, pw = c.padding
    acc = lax.conv_general_dilated(x - c.x_zero, w, c.stride, [(ph, ph), (pw, pw)],
                                   feature_group_count=c.groups,
                                   precision=lax.Precision.HIGHEST)
    acc = acc + b[None, :, None, None]
    eff = (c.x_scale * np.asarray(c.w_scales, np.float64)) / c.y_scale
    return _clamp(_ste_round(acc * eff[None, :, None, None]) + c.y_zero)


def _add(a, za, sa, b, zb, sb, zy, sy):
    return _clamp(_ste_round(((a - za) * sa + (b - zb) * sb) / sy) + zy)


def _params(model: McuModel, trained: dict) -> dict:
    return {c.name: trained.get(c.name, (jnp.asarray(c.weight, jnp.float64),
                                         jnp.asarray(c.bias, jnp.float64)))
            for c in model.conv_layers()}


def backbone(model: McuModel, image_q, trained: dict | None = None):
    """int8 image (3, H, W) -> pooled int8 features (C,), as floats; trained maps conv name
    -> (w_q, b_q) replacing the file's (the differentiable arguments)."""
    p = _params(model, trained or {})

    def conv(x, c):
        return _conv(x, c, *p[c.name])

    x = conv(jnp.asarray(image_q, jnp.float64)[None], model.first_conv)
    for block in model.blocks:
        block_in = x
        for c in block.main_convs():
            x = conv(x, c)
        last, res = block.main_convs()[-1], block.residual
        if isinstance(res, McuConvResidual):
            x = _add(conv(block_in, res.conv), res.conv.y_zero, res.conv.y_scale, x,
                     last.y_zero, last.y_scale, res.out_zero, res.out_scale)
        elif res is not None:
            x = _add(block_in, res.x_zero, res.x_scale, x, last.y_zero, last.y_scale,
                     res.y_zero, res.y_scale)
    if model.feature_mix is not None:
        x = conv(x, model.feature_mix)
    return _ste_round(x.mean(axis=(2, 3)))[0]


def feature_qparams(model: McuModel) -> tuple[float, int]:
    """Scale and zero point of the pooled features (the last feature map's)."""
    if model.feature_mix is not None:
        return model.feature_mix.y_scale, model.feature_mix.y_zero
    res = model.blocks[-1].residual
    if isinstance(res, McuConvResidual):
        return res.out_scale, res.out_zero
    if res is not None:
        return res.y_scale, res.y_zero
    last = model.blocks[-1].main_convs()[-1]
    return last.y_scale, last.y_zero


def loss_fn(model: McuModel, image_q, label: int, trained: dict, head_w, head_b):
    s, z = feature_qparams(model)
    feat = s * (backbone(model, image_q, trained) - z)
    logits = head_w @ feat + head_b
    return -jax.nn.log_softmax(logits)[label]


def qtrain_grads(model: McuModel, image_q: np.ndarray, label: int, head_w: np.ndarray,
                 head_b: np.ndarray, layers: list[str]) -> dict:
    """Loss and gradients w.r.t. the integers of the named convs and the head, plus the
    QAS-scaled integer gradients: {"loss", "<conv>.weight", "<conv>.bias",
    "<conv>.weight.qas", "<conv>.bias.qas", "head.weight", "head.bias"}."""
    convs = {c.name: c for c in model.conv_layers()}
    trained = {n: (jnp.asarray(convs[n].weight, jnp.float64),
                   jnp.asarray(convs[n].bias, jnp.float64)) for n in layers}
    fn = jax.value_and_grad(lambda t, w, b: loss_fn(model, image_q, label, t, w, b),
                            argnums=(0, 1, 2))
    loss, (g_t, g_w, g_b) = fn(trained, jnp.asarray(head_w, jnp.float64),
                               jnp.asarray(head_b, jnp.float64))
    out = {"loss": float(loss), "head.weight": np.asarray(g_w), "head.bias": np.asarray(g_b)}
    for n, (gw, gb) in g_t.items():
        s_w = np.asarray(convs[n].w_scales, np.float64)
        out[f"{n}.weight"], out[f"{n}.bias"] = np.asarray(gw), np.asarray(gb)
        out[f"{n}.weight.qas"] = np.asarray(gw) * (s_w ** -2)[:, None, None, None]
        out[f"{n}.bias.qas"] = np.asarray(gb) * (convs[n].x_scale * s_w) ** -2
    return out
