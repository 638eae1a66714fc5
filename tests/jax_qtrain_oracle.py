"""Independent JAX oracle for training THROUGH the int8 forward of an McuModel.

Used as the reference for the compiler's int8 training gradients (quantization-
aware scaling, QAS, as in tiny-training). Nothing here imports TTE's IR,
compiler or kernels: only the McuModel data classes of
``tte.frontends.mcu_pickle`` (plain arrays and numbers) are read. The
semantics are those of ../shared/models/README.md (section "mcu_imagenet")
and of ``tests/mcu_reference.py``, written again with ``jax.numpy`` / ``lax``
so that ``jax.grad`` can differentiate them. Everything runs in float64
(``jax_enable_x64`` is set when this module is imported), so the
oracle is a high-precision reference; all integer tensors (int8 activations,
int32 accumulators, weights and biases) are integer-valued float64 arrays,
which represent every value that occurs exactly (|acc| << 2**53).

What is computed
----------------
Network: the int8 backbone up to and including the global average pool
(first_conv -> blocks (pointwise1, depthwise, pointwise2, residual add) ->
feature_mix if any -> pool); the original int8 classifier is DROPPED and
replaced by

* dequantize: ``feat = s * (pooled_q - z)``, (s, z) = the pool's input scale /
  zero point = feature_mix's output (or the last block's output: the residual
  add's output scale/zero when that block has a residual, else its last conv's
  y_scale/y_zero);
* a float linear head: ``logits = feat @ W.T + b`` (W [num_classes, C], b
  [num_classes]);
* softmax cross-entropy with integer labels, mean over the batch.

Quantized ops (x_q etc. are integer-valued floats):

* conv: ``acc = conv(x_q - x_zero, w_q) + b_q`` (exact; zero padding of
  (k-1)//2 in the shifted domain; ``feature_group_count`` = groups, so the
  depthwise convs are grouped convs), ``u = acc * (x_scale * w_scale[c] /
  y_scale)`` (the multiplier is formed in float64 exactly as
  mcu_reference.py does: ``(x_scale * w_scales) / y_scale``), ``v = round(u) +
  y_zero``, ``y_q = clamp(v, -128, 127)``;
* residual add: ``v = round(((a - za) * sa + (b - zb) * sb) / sy) + zy``, clamp;
* global average pool: ``round(sum over H, W / (H * W))`` (clamp, a no-op);
* every float64 operation is rounded as numpy rounds it in the reference. The
  network is jitted (one XLA program per model), and XLA CPU changes some float
  arithmetic: it replaces a division by a constant or broadcast scalar with a
  multiplication by the reciprocal, and it contracts ``p * s + q`` into a fused
  multiply-add (both were seen to move int8 outputs of the residual add by 1;
  optimization barriers do not stop it). So the two ops whose float results
  are not exact -- the residual add's requantization and the pool's division
  -- are evaluated by numpy on the host (``jax.pure_callback``, formulas copied
  from mcu_reference.py) inside a ``jax.custom_jvp`` that supplies the STE
  tangent: ``(ta * sa + tb * sb) / sy`` and ``sum(t) / (H*W)``. The conv's
  requantization is one multiplication by the multiplier formed in numpy
  (``(x_scale * w_scales) / y_scale``, as the reference), then the round: no
  rewrite or contraction can change it; accumulators and sums are integers.

Rounding and clamping (the important part):

* FORWARD: ``round`` is round-half-to-even (``jnp.round`` in the convs,
  ``np.round`` in the add and the pool, like ``np.round`` in mcu_reference.py),
  so the forward equals ``mcu_reference.forward_quantized`` bit for bit
  (checked by tests/test_jax_qtrain_oracle.py on the three published models
  at two input sizes, and on a synthetic model with many ties).
* BACKWARD: straight-through estimator, d round(u)/du = 1, for the convs
  (``round_ste``, a ``jax.custom_jvp``), the residual adds (dv/da = sa/sy,
  dv/db = sb/sy) and the pool (dL/dpooled / (H*W) to every element).
* clamp: gradient 1 where -128 <= v <= 127 (BOTH bounds inclusive: an output
  that lands exactly on -128 or 127 still passes gradient), else 0
  (``clamp_int8``, a ``jax.custom_jvp`` with an explicit mask; ``jnp.clip``
  is not used because its gradient at a tie is 0.5). v is the rounded,
  zero-point-shifted value, so e.g. v = -128.0 passes and v = -129.0 does not.

Gradients are with respect to the integer-domain parameters w_q (int8 weights
as floats) and b_q (int32 biases as floats) of chosen conv layers (indices
into ``model.conv_layers()``; the classifier cannot be chosen, it is dropped),
plus the head's W and b. Derived per output channel c:

* real domain (w_real = w_scale[c] * w_q, b_real = x_scale * w_scale[c] * b_q):
  ``dL/dw_real = dL/dw_q / w_scale[c]``, ``dL/db_real = dL/db_q / (x_scale * w_scale[c])``;
* QAS-scaled (what the update uses): ``g_w = dL/dw_q * w_scale[c]**-2``,
  ``g_b = dL/db_q * (x_scale * w_scale[c])**-2``.

Public API
----------
* ``quantize_image(model, image)``              -> int8 image_q (any H, W; batched ok)
* ``prepare_input(model, image, input_size)``    -> int8 image_q (resizes a float image)
* ``classifier_head(model)``                     -> (W, b): the original classifier in
  the real domain, the default head of ``quantized_forward``
* ``quantized_forward(model, image_q, params=None, trace=None)`` -> (logits, pooled_q)
* ``make_loss(model, image_q, label, layers, head_W, head_b)`` -> (loss(params), params0)
* ``qtrain_grads(model, image, label, head_W, head_b, layers, input_size=None)`` -> dict

Compatibility with the first version of this module (used by
tests/test_int8_grads_vs_jax.py): ``layers`` may also be conv names, the result
also holds the flat keys "<conv>.weight", "<conv>.bias", "<conv>.weight.qas",
"<conv>.bias.qas", and ``backbone``, ``feature_qparams`` and ``loss_fn`` remain.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from tte.frontends.mcu_pickle import McuConv, McuConvResidual, McuModel

__all__ = ["INT8_MIN", "INT8_MAX", "round_ste", "clamp_int8", "quantize_image",
           "prepare_input", "classifier_head", "pool_quantization", "quantized_forward",
           "make_loss", "qtrain_grads", "backbone", "feature_qparams", "loss_fn"]

INT8_MIN, INT8_MAX = -128, 127

# float64 for the whole process, set at import like tests/jax_oracle.py does. (Scoping it
# with the jax.enable_x64 context manager is not enough: the host callbacks below run on
# XLA's threads, where the thread-local setting is off and float64 results are refused.)
jax.config.update("jax_enable_x64", True)

Params = dict[str, Any]


# --------------------------------------------------------------------------------------
# rounding and clamping with their training gradients
# --------------------------------------------------------------------------------------


@jax.custom_jvp
def round_ste(u: jax.Array) -> jax.Array:
    """Forward: round half to even. Backward: straight through (derivative 1)."""
    return jnp.round(u)


@round_ste.defjvp
def _round_ste_jvp(primals, tangents):
    (u,), (t,) = primals, tangents
    return jnp.round(u), t


@jax.custom_jvp
def clamp_int8(v: jax.Array) -> jax.Array:
    """Forward: clamp to [-128, 127]. Backward: 1 where -128 <= v <= 127, else 0."""
    return jnp.where(v < INT8_MIN, float(INT8_MIN), jnp.where(v > INT8_MAX, float(INT8_MAX), v))


@clamp_int8.defjvp
def _clamp_int8_jvp(primals, tangents):
    (v,), (t,) = primals, tangents
    inside = (v >= INT8_MIN) & (v <= INT8_MAX)
    return clamp_int8(v), jnp.where(inside, t, jnp.zeros_like(t))


# --------------------------------------------------------------------------------------
# the quantized ops (x: (N, C, H, W) integer-valued float64)
# --------------------------------------------------------------------------------------


def _multiplier(layer: McuConv) -> np.ndarray:
    """x_scale * w_scale[c] / y_scale, formed exactly as mcu_reference.conv does."""
    return (layer.x_scale * np.asarray(layer.w_scales, dtype=np.float64)) / layer.y_scale


def _conv(x: jax.Array, layer: McuConv, w_q: jax.Array, b_q: jax.Array) -> jax.Array:
    (ph, pw) = layer.padding
    acc = lax.conv_general_dilated(
        x - float(layer.x_zero), w_q, window_strides=tuple(layer.stride),
        padding=[(ph, ph), (pw, pw)], dimension_numbers=("NCHW", "OIHW", "NCHW"),
        feature_group_count=layer.groups, precision=lax.Precision.HIGHEST)
    acc = acc + b_q[None, :, None, None]
    u = acc * jnp.asarray(_multiplier(layer))[None, :, None, None]
    return clamp_int8(round_ste(u) + float(layer.y_zero))


def _on_host(fn: Callable, like: jax.Array, *args: jax.Array) -> jax.Array:
    """fn (numpy, float64) run outside XLA on the arguments; the result has like's shape."""
    return jax.pure_callback(lambda *xs: np.asarray(fn(*(np.asarray(x) for x in xs)),
                                                    dtype=np.float64),
                             jax.ShapeDtypeStruct(like.shape, like.dtype), *args)


@functools.partial(jax.custom_jvp, nondiff_argnums=(2,))
def _add_requant(a: jax.Array, b: jax.Array, q: tuple) -> jax.Array:
    """v = round(((a - za) * sa + (b - zb) * sb) / sy) + zy, computed by numpy exactly as
    in mcu_reference.add (see the module docstring for why not by XLA)."""
    za, sa, zb, sb, zy, sy = q
    return _on_host(lambda a, b: np.round(((a - za) * sa + (b - zb) * sb) / sy) + zy,
                    a, a, b)


@_add_requant.defjvp
def _add_requant_jvp(q, primals, tangents):
    (a, b), (ta, tb) = primals, tangents
    za, sa, zb, sb, zy, sy = q
    return _add_requant(a, b, q), (ta * sa + tb * sb) / sy  # straight through the round


@jax.custom_jvp
def _pool_round(x: jax.Array) -> jax.Array:
    """(N, C, H, W) -> (N, C): round(sum / (H*W)) by numpy, as mcu_reference.avg_pool."""
    hw = x.shape[2] * x.shape[3]
    return _on_host(lambda x: np.round(x.sum(axis=(2, 3)) / hw), x[:, :, 0, 0], x)


@_pool_round.defjvp
def _pool_round_jvp(primals, tangents):
    (x,), (t,) = primals, tangents
    return _pool_round(x), t.sum(axis=(2, 3)) / (x.shape[2] * x.shape[3])  # STE


def _add(a: jax.Array, za: int, sa: float, b: jax.Array, zb: int, sb: float,
         zy: int, sy: float) -> jax.Array:
    v = _add_requant(a, b, (float(za), float(sa), float(zb), float(sb), float(zy), float(sy)))
    return clamp_int8(v)


def _avg_pool(x: jax.Array) -> jax.Array:
    """(N, C, H, W) -> (N, C): round(mean), STE (each element gets 1/(H*W))."""
    return clamp_int8(_pool_round(x))


# --------------------------------------------------------------------------------------
# the network
# --------------------------------------------------------------------------------------


def pool_quantization(model: McuModel) -> tuple[float, int]:
    """(scale, zero) of the int8 map that enters the global pool (and of pooled_q)."""
    if model.feature_mix is not None:
        return model.feature_mix.y_scale, model.feature_mix.y_zero
    block = model.blocks[-1] if model.blocks else None
    if block is None:
        return model.first_conv.y_scale, model.first_conv.y_zero
    res = block.residual
    if isinstance(res, McuConvResidual):
        return res.out_scale, res.out_zero
    if res is not None:
        return res.y_scale, res.y_zero
    last = block.main_convs()[-1]
    return last.y_scale, last.y_zero


def _layer_params(layer: McuConv, params: Params | None) -> tuple[jax.Array, jax.Array]:
    p = (params or {}).get(layer.name)
    if p is None:
        return (jnp.asarray(layer.weight, dtype=jnp.float64),
                jnp.asarray(layer.bias, dtype=jnp.float64))
    if isinstance(p, dict):
        return p["w_q"], p["b_q"]
    return p[0], p[1]


def _backbone(model: McuModel, x: jax.Array, params: Params | None,
              record: Callable[[str, jax.Array], None]) -> jax.Array:
    """int8-valued (N, 3, H, W) -> pooled int8-valued (N, C)."""
    def conv(v: jax.Array, layer: McuConv) -> jax.Array:
        out = _conv(v, layer, *_layer_params(layer, params))
        record(layer.name, out)
        return out

    x = conv(x, model.first_conv)
    for block in model.blocks:
        block_in = x
        for layer in block.main_convs():
            x = conv(x, layer)
        last = block.main_convs()[-1]
        res = block.residual
        if isinstance(res, McuConvResidual):
            shortcut = conv(block_in, res.conv)
            x = _add(shortcut, res.conv.y_zero, res.conv.y_scale, x, last.y_zero, last.y_scale,
                     res.out_zero, res.out_scale)
            record(f"blocks.{block.index}.add", x)
        elif res is not None:
            x = _add(block_in, res.x_zero, res.x_scale, x, last.y_zero, last.y_scale,
                     res.y_zero, res.y_scale)
            record(f"blocks.{block.index}.add", x)
    if model.feature_mix is not None:
        x = conv(x, model.feature_mix)
    pooled = _avg_pool(x)
    record("avg_pool", pooled[:, :, None, None])
    return pooled


def _head_logits(model: McuModel, pooled: jax.Array, head_W: jax.Array,
                 head_b: jax.Array) -> jax.Array:
    s, z = pool_quantization(model)
    feat = s * (pooled - float(z))
    return feat @ head_W.T + head_b


def _cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    logp = logits - jax.scipy.special.logsumexp(logits, axis=1, keepdims=True)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=1))


# --------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------


def quantize_image(model: McuModel, image: np.ndarray) -> np.ndarray:
    """Float image(s) (3, H, W) or (N, 3, H, W) in [-1, 1] -> int8 with first_conv's
    x_scale / x_zero: clamp(round_half_even(img / x_scale) + x_zero). Any H, W."""
    conv = model.first_conv
    q = np.round(np.asarray(image, dtype=np.float64) / conv.x_scale) + conv.x_zero
    return np.clip(q, INT8_MIN, INT8_MAX).astype(np.int8)


def prepare_input(model: McuModel, image: np.ndarray, input_size: int | None = None
                  ) -> np.ndarray:
    """The int8 image the oracle runs on.

    An integer array is taken as already quantized (it must fit int8 and, if
    input_size is given, be input_size x input_size). A float image in [-1, 1]
    is first resized to input_size x input_size when its size differs
    (``jax.image.resize``, linear, antialiased, float64), then quantized.
    """
    image = np.asarray(image)
    if image.ndim not in (3, 4) or image.shape[-3] != model.first_conv.in_channels:
        raise ValueError(f"image shape {image.shape}: expected (3, H, W) or (N, 3, H, W)")
    if np.issubdtype(image.dtype, np.integer):
        if image.min(initial=0) < INT8_MIN or image.max(initial=0) > INT8_MAX:
            raise ValueError("an integer image must hold int8 values")
        if input_size is not None and image.shape[-2:] != (input_size, input_size):
            raise ValueError(f"int8 image of size {image.shape[-2:]}, input_size {input_size}")
        return image.astype(np.int8)
    if input_size is not None and image.shape[-2:] != (input_size, input_size):
        shape = image.shape[:-2] + (input_size, input_size)
        image = np.asarray(jax.image.resize(jnp.asarray(image, dtype=jnp.float64), shape,
                                            method="linear", antialias=True))
    return quantize_image(model, image)


def _batched(image_q: np.ndarray) -> tuple[jax.Array, bool]:
    image_q = np.asarray(image_q)
    single = image_q.ndim == 3
    x = image_q[None] if single else image_q
    return jnp.asarray(x.astype(np.float64)), single


# --------------------------------------------------------------------------------------
# public entry points
# --------------------------------------------------------------------------------------


def classifier_head(model: McuModel) -> tuple[np.ndarray, np.ndarray]:
    """The original int8 classifier as a real-domain head on the dequantized pooled
    features: logits = x_scale_cls * w_scale[c] * acc_cls[c], i.e. the classifier's
    output before its requantization (divide by the classifier's y_scale, round
    and add y_zero to get the int8 logits)."""
    cls = model.classifier
    s, z = pool_quantization(model)
    w_q = np.asarray(cls.weight, dtype=np.float64)[:, :, 0, 0]
    real = cls.x_scale * np.asarray(cls.w_scales, dtype=np.float64)
    W = real[:, None] * w_q / s
    b = real * (np.asarray(cls.bias, dtype=np.float64) + w_q.sum(axis=1) * (z - cls.x_zero))
    return W, b


def _normalize_convs(params: Params | None) -> dict[str, tuple[jax.Array, jax.Array]]:
    convs = {}
    for name, p in (params or {}).items():
        if name.startswith("head."):
            continue
        w, b = (p["w_q"], p["b_q"]) if isinstance(p, dict) else p
        convs[name] = (jnp.asarray(w, dtype=jnp.float64), jnp.asarray(b, dtype=jnp.float64))
    return convs


@functools.lru_cache(maxsize=32)
def _compiled_forward(model: McuModel, with_trace: bool) -> tuple[Callable, list[str]]:
    """One jitted XLA program per model (jit retraces per input shape by itself).
    Returns the function and the list of recorded names (filled at trace time)."""
    names: list[str] = []

    def fn(x, convs, W, b):
        values: list[jax.Array] = []

        def record(name: str, value: jax.Array) -> None:
            if with_trace:
                if len(names) < len(values) + 1:
                    names.append(name)
                values.append(value)

        pooled = _backbone(model, x, convs, record)
        return _head_logits(model, pooled, W, b), pooled, tuple(values)

    return jax.jit(fn), names


def quantized_forward(model: McuModel, image_q: np.ndarray, params: Params | None = None,
                      trace: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """int8 image (3, H, W) or (N, 3, H, W) -> (float64 logits, int8 pooled features).

    ``params`` may override conv parameters by layer name ({"w_q": ..., "b_q": ...}
    or (w_q, b_q), integer-valued floats) and give the head as "head.weight" /
    "head.bias"; without a head the original classifier is used in the real
    domain (``classifier_head``). ``trace`` collects, for the first image, (name,
    int8 output) after every conv, residual add and the pool, with the names and
    shapes of mcu_reference.forward_quantized's trace (minus the classifier).
    """
    x, single = _batched(image_q)
    if params is not None and "head.weight" in params:
        W, b = params["head.weight"], params["head.bias"]
    else:
        W, b = classifier_head(model)
    fn, names = _compiled_forward(model, trace is not None)
    logits, pooled, values = fn(x, _normalize_convs(params), jnp.asarray(W, jnp.float64),
                                jnp.asarray(b, jnp.float64))
    if trace is not None:
        trace.extend((name, np.asarray(value[0]).astype(np.int8))
                     for name, value in zip(names, values, strict=True))
    logits, pooled = np.asarray(logits), np.asarray(pooled).astype(np.int8)
    return (logits[0], pooled[0]) if single else (logits, pooled)


def _check_layers(model: McuModel, layers: Sequence[int | str]) -> list[McuConv]:
    """Indices into model.conv_layers() (or conv names) -> the convs, without repeats."""
    convs = model.conv_layers()
    index = {c.name: i for i, c in enumerate(convs)}
    chosen = []
    for i in dict.fromkeys(layers):
        if isinstance(i, str):
            if i not in index:
                raise ValueError(f"no conv named {i!r}")
            i = index[i]
        i = int(i)
        if not 0 <= i < len(convs) - 1:
            raise ValueError(f"layer index {i}: trainable convs are 0..{len(convs) - 2} "
                             f"(the classifier, {len(convs) - 1}, is replaced by the head)")
        chosen.append(convs[i])
    return chosen


def _loss_aux(model: McuModel, params: Params, x: jax.Array, labels: jax.Array
              ) -> tuple[jax.Array, tuple[jax.Array, jax.Array]]:
    pooled = _backbone(model, x, _normalize_convs(params), lambda name, value: None)
    logits = _head_logits(model, pooled, params["head.weight"], params["head.bias"])
    return _cross_entropy(logits, labels), (logits, pooled)


def _loss(model: McuModel, params: Params, x: jax.Array, labels: jax.Array) -> jax.Array:
    return _loss_aux(model, params, x, labels)[0]


@functools.lru_cache(maxsize=32)
def _compiled_grad(model: McuModel) -> Callable:
    """jit(value_and_grad) of the loss, with (logits, pooled) as auxiliary outputs."""
    return jax.jit(jax.value_and_grad(functools.partial(_loss_aux, model), has_aux=True))


def _inputs(image_q: np.ndarray, label: int | Sequence[int]) -> tuple[jax.Array, jax.Array]:
    x, _ = _batched(image_q)
    labels = jnp.atleast_1d(jnp.asarray(label, dtype=jnp.int32))
    if labels.ndim != 1 or labels.shape[0] != x.shape[0]:
        raise ValueError(f"{labels.shape} labels for {x.shape[0]} images")
    return x, labels


def _initial_params(chosen: list[McuConv], head_W: np.ndarray, head_b: np.ndarray) -> Params:
    params: Params = {c.name: {"w_q": jnp.asarray(c.weight, dtype=jnp.float64),
                               "b_q": jnp.asarray(c.bias, dtype=jnp.float64)} for c in chosen}
    params["head.weight"] = jnp.asarray(head_W, dtype=jnp.float64)
    params["head.bias"] = jnp.asarray(head_b, dtype=jnp.float64)
    return params


def make_loss(model: McuModel, image_q: np.ndarray, label: int | Sequence[int],
              layers: Sequence[int | str], head_W: np.ndarray, head_b: np.ndarray
              ) -> tuple[Callable[[Params], jax.Array], Params]:
    """The loss as a function of the trainable parameters, and their current values.

    params = {conv.name: {"w_q", "b_q"} for the chosen layers, "head.weight",
    "head.bias"} (float64 jax arrays). Not jitted (wrap it in jax.jit for speed)."""
    chosen = _check_layers(model, layers)
    x, labels = _inputs(image_q, label)
    return (lambda params: _loss(model, params, x, labels)), _initial_params(chosen, head_W,
                                                                             head_b)


def qtrain_grads(model: McuModel, image: np.ndarray, label: int | Sequence[int],
                 head_W: np.ndarray, head_b: np.ndarray, layers: Sequence[int | str],
                 input_size: int | None = None) -> dict[str, Any]:
    """Loss and gradients of training through the quantized forward (float64).

    image: float (3, H, W) in [-1, 1] (quantized with first_conv's x_scale and
    x_zero, resized first if input_size differs from its size) or an int8
    image_q; a leading batch axis is allowed, with one label per image (the loss
    is the batch mean). layers: indices into model.conv_layers() (or conv names).

    Returns {conv.name: {"w_q", "b_q", "w_real", "b_real", "w_qas", "b_qas"} per
    trained layer, "head.weight", "head.bias": gradients (float64 numpy),
    "loss": float, and for convenience "logits", "pooled_q" and "image_q" (the
    int8 input actually used)}. One jitted program per model (cached), so later
    calls with the same shapes skip the compilation.
    """
    image_q = prepare_input(model, image, input_size)
    chosen = _check_layers(model, layers)
    x, labels = _inputs(image_q, label)
    (loss_value, (logits, pooled)), grads = _compiled_grad(model)(
        _initial_params(chosen, head_W, head_b), x, labels)
    out: dict[str, Any] = {"loss": float(loss_value),
                           "head.weight": np.asarray(grads["head.weight"]),
                           "head.bias": np.asarray(grads["head.bias"])}
    for conv in chosen:
        gw = np.asarray(grads[conv.name]["w_q"])
        gb = np.asarray(grads[conv.name]["b_q"])
        ws = np.asarray(conv.w_scales, dtype=np.float64)
        bs = conv.x_scale * ws
        out[conv.name] = {
            "w_q": gw, "b_q": gb,
            "w_real": gw / ws[:, None, None, None], "b_real": gb / bs,
            "w_qas": gw * ws[:, None, None, None] ** -2, "b_qas": gb * bs ** -2,
        }
        # flat keys of the first version of this module
        out[f"{conv.name}.weight"], out[f"{conv.name}.bias"] = gw, gb
        out[f"{conv.name}.weight.qas"] = out[conv.name]["w_qas"]
        out[f"{conv.name}.bias.qas"] = out[conv.name]["b_qas"]
    logits, pooled_q = np.asarray(logits), np.asarray(pooled).astype(np.int8)
    if image_q.ndim == 3:
        logits, pooled_q = logits[0], pooled_q[0]
    out.update(logits=logits, pooled_q=pooled_q, image_q=image_q)
    return out


# --------------------------------------------------------------------------------------
# the first version's entry points (same semantics)
# --------------------------------------------------------------------------------------

feature_qparams = pool_quantization


def backbone(model: McuModel, image_q: np.ndarray, trained: Params | None = None) -> jax.Array:
    """int8 image (3, H, W) -> pooled int8 features (C,) as floats; ``trained`` maps a
    conv name to (w_q, b_q) replacing the file's."""
    x, _ = _batched(image_q)
    return _backbone(model, x, _normalize_convs(trained), lambda name, value: None)[0]


def loss_fn(model: McuModel, image_q: np.ndarray, label: int, trained: Params,
            head_w: jax.Array, head_b: jax.Array) -> jax.Array:
    """Cross-entropy of one image as a function of ``trained`` and the head."""
    x, labels = _inputs(image_q, label)
    params = dict(trained, **{"head.weight": jnp.asarray(head_w, jnp.float64),
                              "head.bias": jnp.asarray(head_b, jnp.float64)})
    return _loss(model, params, x, labels)
