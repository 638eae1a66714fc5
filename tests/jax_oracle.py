"""Independent JAX oracle for whole-model forward and training tests.

Nothing here imports ``tte``: the ONNX graph is walked node by node and each
node is evaluated with ``jax.numpy`` / ``jax.lax`` so that ``jax.grad`` can
differentiate the model with respect to its initializers.  The oracle runs in
float64 (``jax_enable_x64``) so it is a high-precision reference.

Public helpers
--------------
* ``initializers(model)``            -> dict name -> float64 numpy array (float initializers)
* ``jax_forward(model, params, x)``  -> logits (numpy, float64)
* ``trainable_names(model, update)`` -> which initializers an ``update`` scheme trains
* ``jax_train(model, params, xs, labels, lr=, momentum=, weight_decay=, trainable=)``
* ``fold_batchnorm(model)``          -> folded parameters (dict) of the conv+BN fold
* ``folded_model(model)``            -> the model with every BN folded into its conv
* ``jax_train_folded(model, xs, labels, ...)`` -> trains the folded model
"""

from __future__ import annotations

from functools import lru_cache

import jax
import jax.numpy as jnp
import numpy as np
import onnx
from jax import lax
from onnx import helper, numpy_helper

jax.config.update("jax_enable_x64", True)

__all__ = [
    "initializers", "jax_forward", "jax_loss", "trainable_names", "jax_train",
    "fold_batchnorm", "folded_model", "jax_train_folded",
]


# --------------------------------------------------------------------------
# model inspection
# --------------------------------------------------------------------------

def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _all_initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Float initializers of ``model`` as float64 numpy arrays."""
    return {k: v.astype(np.float64) for k, v in _all_initializers(model).items()
            if np.issubdtype(v.dtype, np.floating)}


def trainable_names(model: onnx.ModelProto, update="full") -> set[str]:
    """Initializers trained under ``update``.

    * ``"full"``: weights and biases of Conv / Gemm / MatMul and BN gamma/beta
      (BN running mean/var are frozen statistics; Clip bounds, shapes etc. are
      constants).
    * ``"bias"``: only the bias inputs of Conv and Gemm and the BN shift (beta).
    * a list of names: exactly those.
    """
    inits = initializers(model)
    if not isinstance(update, str):
        return set(update)
    names: set[str] = set()
    for n in model.graph.node:
        ins = list(n.input)
        if n.op_type == "Conv":
            idx = [1, 2] if update == "full" else [2]
        elif n.op_type == "Gemm":
            idx = [0, 1, 2] if update == "full" else [2]
        elif n.op_type == "MatMul":
            idx = [0, 1] if update == "full" else []
        elif n.op_type == "BatchNormalization":
            idx = [1, 2] if update == "full" else [2]
        else:
            idx = []
        names.update(ins[i] for i in idx if i < len(ins) and ins[i] in inits)
    if update not in ("full", "bias"):
        raise ValueError(update)
    return names


# --------------------------------------------------------------------------
# op implementations (float64, NCHW / OIHW)
# --------------------------------------------------------------------------

def _pads_pairs(pads, nsp):
    pads = list(pads) if pads else [0] * (2 * nsp)
    return [(pads[i], pads[i + nsp]) for i in range(nsp)]


def _conv(x, w, b, a):
    nsp = x.ndim - 2
    assert a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    y = lax.conv_general_dilated(
        x, w,
        window_strides=list(a.get("strides", [1] * nsp)),
        padding=_pads_pairs(a.get("pads"), nsp),
        rhs_dilation=list(a.get("dilations", [1] * nsp)),
        dimension_numbers=("NCHW", "OIHW", "NCHW"),
        feature_group_count=int(a.get("group", 1)),
        precision=lax.Precision.HIGHEST,
    )
    if b is not None:
        y = y + b.reshape((1, -1) + (1,) * nsp)
    return y


def _pool_cfg(x, a):
    nsp = x.ndim - 2
    k = list(a["kernel_shape"])
    s = list(a.get("strides", [1] * nsp))
    d = list(a.get("dilations", [1] * nsp))
    assert a.get("ceil_mode", 0) == 0, "ceil_mode unsupported in oracle"
    assert a.get("auto_pad", b"NOTSET") in (b"NOTSET", "NOTSET")
    pads = [(0, 0), (0, 0)] + _pads_pairs(a.get("pads"), nsp)
    return (1, 1, *k), (1, 1, *s), (1, 1, *d), pads


def _maxpool(x, a):
    win, strides, dil, pads = _pool_cfg(x, a)
    # padding value -inf: a padded position never wins
    return lax.reduce_window(x, -jnp.inf, lax.max, win, strides, pads,
                             window_dilation=dil)


def _avgpool(x, a):
    win, strides, dil, pads = _pool_cfg(x, a)
    s = lax.reduce_window(x, 0.0, lax.add, win, strides, pads, window_dilation=dil)
    if a.get("count_include_pad", 0):
        return s / float(np.prod(win))
    ones = jnp.ones(x.shape[2:], x.dtype)[None, None]
    cnt = lax.reduce_window(ones, 0.0, lax.add, win, strides, pads, window_dilation=dil)
    return s / cnt


def _relu(x):
    return jnp.where(x > 0, x, 0.0)


def _clip(x, lo, hi):
    if lo is not None:
        x = jnp.where(x < lo, lo, x)
    if hi is not None:
        x = jnp.where(x > hi, hi, x)
    return x


def _hardswish(x):
    # x * max(0, min(1, x/6 + 1/2))
    return x * _clip(x / 6.0 + 0.5, 0.0, 1.0)


def _sigmoid(x):
    return 1.0 / (1.0 + jnp.exp(-x))


def _reshape(x, shape):
    shape = [int(s) for s in shape]
    out = [x.shape[i] if s == 0 else s for i, s in enumerate(shape)]
    return jnp.reshape(x, out)


def _eval_node(n: onnx.NodeProto, ins: list, const: dict):
    op, a = n.op_type, _attrs(n)
    if op == "Conv":
        return _conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a)
    if op == "Gemm":
        A, B = ins[0], ins[1]
        if a.get("transA", 0):
            A = A.T
        if a.get("transB", 0):
            B = B.T
        y = a.get("alpha", 1.0) * jnp.matmul(A, B, precision=lax.Precision.HIGHEST)
        if len(ins) > 2 and ins[2] is not None:
            y = y + a.get("beta", 1.0) * ins[2]
        return y
    if op == "MatMul":
        return jnp.matmul(ins[0], ins[1], precision=lax.Precision.HIGHEST)
    if op == "BatchNormalization":
        assert a.get("training_mode", 0) == 0
        x, g, b, m, v = ins
        sh = (1, -1) + (1,) * (x.ndim - 2)
        eps = a.get("epsilon", 1e-5)
        return (x - m.reshape(sh)) / jnp.sqrt(v.reshape(sh) + eps) * g.reshape(sh) + b.reshape(sh)
    if op == "Relu":
        return _relu(ins[0])
    if op == "Clip":
        lo = ins[1] if len(ins) > 1 else None
        hi = ins[2] if len(ins) > 2 else None
        return _clip(ins[0], lo, hi)
    if op == "HardSwish":
        return _hardswish(ins[0])
    if op == "Sigmoid":
        return _sigmoid(ins[0])
    if op == "Add":
        return ins[0] + ins[1]
    if op == "Sub":
        return ins[0] - ins[1]
    if op == "Mul":
        return ins[0] * ins[1]
    if op == "Concat":
        return jnp.concatenate(ins, axis=a["axis"])
    if op == "Flatten":
        ax = a.get("axis", 1)
        x = ins[0]
        return jnp.reshape(x, (int(np.prod(x.shape[:ax])), -1))
    if op == "Reshape":
        assert a.get("allowzero", 0) == 0
        return _reshape(ins[0], const[n.input[1]])
    if op == "GlobalAveragePool":
        return jnp.mean(ins[0], axis=tuple(range(2, ins[0].ndim)), keepdims=True)
    if op == "MaxPool":
        assert len(n.output) == 1
        return _maxpool(ins[0], a)
    if op == "AveragePool":
        return _avgpool(ins[0], a)
    raise NotImplementedError(f"jax oracle: op {op}")


def _forward(model: onnx.ModelProto, params: dict, x, dtype=jnp.float64):
    """Traceable forward. ``params`` overrides the model's float initializers."""
    const = _all_initializers(model)
    env: dict = {}
    for k, v in const.items():
        env[k] = jnp.asarray(v, dtype) if np.issubdtype(v.dtype, np.floating) else v
    env.update(params)
    env[model.graph.input[0].name] = x
    for n in model.graph.node:
        ins = [env[i] if i else None for i in n.input]
        while ins and ins[-1] is None:
            ins.pop()
        env[n.output[0]] = _eval_node(n, ins, const)
    return env[model.graph.output[0].name]


def _xent(logits, labels):
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.mean(jnp.take_along_axis(logp, labels[:, None], axis=-1))


# jitted closures are cached per model (keyed by its serialization).  The
# gradient is taken w.r.t. every float parameter (one compile per model); the
# optimizer then only applies it to the trainable ones.
@lru_cache(maxsize=64)
def _compiled(model_bytes: bytes, dtype: str = "float64"):
    model = onnx.load_from_string(model_bytes)
    dt = jnp.dtype(dtype)

    def loss(params, x, labels):
        return _xent(_forward(model, params, x, dt), labels)

    return (jax.jit(lambda p, x: _forward(model, p, x, dt)),
            jax.jit(jax.value_and_grad(loss)))


def jax_forward(model: onnx.ModelProto, params: dict | None, x) -> np.ndarray:
    params = initializers(model) if params is None else params
    fwd, _ = _compiled(model.SerializeToString())
    p = {k: jnp.asarray(v, jnp.float64) for k, v in params.items()}
    return np.asarray(fwd(p, jnp.asarray(x, jnp.float64)))


def jax_loss(model, params, x, label) -> float:
    logits = jax_forward(model, params, x)
    return float(_xent(jnp.asarray(logits), jnp.asarray([label])))


def jax_train(model: onnx.ModelProto, params: dict | None, xs, labels, *, lr: float,
              momentum: float = 0.0, weight_decay: float = 0.0,
              trainable: set[str] | None = None, dtype: str = "float64"):
    """SGD, one sample per step (batch 1), PyTorch semantics.

    g = grad + wd*p ; buf = g (first step) else momentum*buf + g ; p -= lr*buf.
    Returns (losses before each update, final params as numpy arrays).
    ``dtype="float32"`` runs the same computation in single precision (only
    used to estimate how far an honest float32 implementation may drift).
    """
    params = initializers(model) if params is None else params
    params = {k: jnp.asarray(v, dtype) for k, v in params.items()}
    trainable = trainable_names(model, "full") if trainable is None else set(trainable)
    missing = trainable - params.keys()
    assert not missing, f"trainable names not in params: {missing}"
    _, vg = _compiled(model.SerializeToString(), dtype)
    bufs: dict = {}
    losses = []
    for x, y in zip(xs, labels):
        x = jnp.asarray(x, dtype)
        if x.ndim == len(model.graph.input[0].type.tensor_type.shape.dim) - 1:
            x = x[None]
        loss, grads = vg(params, x, jnp.asarray([int(y)]))
        losses.append(float(loss))
        params = dict(params)
        for k in trainable:
            g = grads[k] + weight_decay * params[k] if weight_decay else grads[k]
            if momentum:
                bufs[k] = g if k not in bufs else momentum * bufs[k] + g
                g = bufs[k]
            params[k] = params[k] - lr * g
    return losses, {k: np.asarray(v) for k, v in params.items()}


# --------------------------------------------------------------------------
# Conv + BatchNormalization folding
# --------------------------------------------------------------------------

def _bn_folds(model: onnx.ModelProto):
    """Yield (conv_node, bn_node) pairs where BN directly follows a Conv whose
    output feeds only that BN."""
    consumers: dict[str, list] = {}
    for n in model.graph.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    producer = {o: n for n in model.graph.node for o in n.output}
    graph_outs = {o.name for o in model.graph.output}
    pairs = []
    for n in model.graph.node:
        if n.op_type != "BatchNormalization":
            continue
        p = producer.get(n.input[0])
        if p is None or p.op_type != "Conv":
            continue
        if len(consumers[p.output[0]]) != 1 or p.output[0] in graph_outs:
            continue
        pairs.append((p, n))
    return pairs


def fold_batchnorm(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Float parameters of the BN-folded model (float64).

    For every Conv followed by BN: w' = w * gamma/sqrt(var+eps) (per output
    channel), b' = (b - mean) * gamma/sqrt(var+eps) + beta.  w' keeps the conv
    weight's name; b' keeps the conv bias name, or the BN beta name if the conv
    had no bias.  BN gamma/mean/var disappear; every other float initializer
    is carried over unchanged.
    """
    p = initializers(model)
    out = dict(p)
    for conv, bn in _bn_folds(model):
        eps = _attrs(bn).get("epsilon", 1e-5)
        _, g_n, beta_n, m_n, v_n = bn.input
        w_n = conv.input[1]
        has_b = len(conv.input) > 2 and conv.input[2] != ""
        b_n = conv.input[2] if has_b else beta_n
        w = p[w_n]
        b = p[conv.input[2]] if has_b else np.zeros(w.shape[0])
        s = p[g_n] / np.sqrt(p[v_n] + eps)
        out[w_n] = w * s.reshape((-1,) + (1,) * (w.ndim - 1))
        out[b_n] = (b - p[m_n]) * s + p[beta_n]
        for k in (g_n, m_n, v_n) + ((beta_n,) if has_b else ()):
            out.pop(k, None)
    return out


def folded_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """``model`` with each foldable BN removed and its conv carrying the folded
    weight/bias (initializers stored as float32 casts of ``fold_batchnorm``)."""
    folded = fold_batchnorm(model)
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    rename: dict[str, str] = {}
    drop_nodes = set()
    conv_by_name = {n.name: n for n in g.node}
    for conv, bn in _bn_folds(model):
        c = conv_by_name[conv.name]
        has_b = len(c.input) > 2 and c.input[2] != ""
        if not has_b:
            while len(c.input) < 3:
                c.input.append("")
            c.input[2] = bn.input[2]
        c.output[0] = bn.output[0]
        drop_nodes.add(bn.name)
        rename[conv.output[0]] = bn.output[0]
    keep = [n for n in g.node if n.name not in drop_nodes]
    del g.node[:]
    g.node.extend(keep)
    old = list(g.initializer)
    del g.initializer[:]
    for t in old:
        if t.name in folded:
            g.initializer.append(numpy_helper.from_array(folded[t.name].astype(np.float32), t.name))
        elif not np.issubdtype(numpy_helper.to_array(t).dtype, np.floating):
            g.initializer.append(t)
    onnx.checker.check_model(m)
    return m


def jax_train_folded(model: onnx.ModelProto, xs, labels, *, lr: float, momentum: float = 0.0,
                     weight_decay: float = 0.0, update="full"):
    """Train the BN-folded version of ``model``; parameters are named as TTE
    names them after folding (see ``fold_batchnorm``)."""
    fm = folded_model(model)
    params = fold_batchnorm(model)
    trainable = trainable_names(fm, update)
    return jax_train(fm, params, xs, labels, lr=lr, momentum=momentum,
                     weight_decay=weight_decay, trainable=trainable)
