"""An ONNX model as a jitted JAX training step, for the host-latency benchmark.

Independent of ``tte`` and of ``tests/``: the ONNX graph is walked node by node
and evaluated with ``jax.numpy`` / ``jax.lax`` in float32, NCHW as in the model.

BatchNormalization is folded into the preceding Conv exactly where TTE's ONNX
frontend folds it by default (``tte.compile(..., fold_batchnorm=True)``): the
BN reads a Conv output that nothing else reads, the Conv's weight and bias are
initializers used by that Conv only, and the BN's four inputs are initializers.
The fold is computed in float64 and stored as float32, like TTE's. A BN that
cannot be folded stays a BN whose gamma and beta are trained.

Trained ("full" update): every float initializer that is a Conv weight/bias, a
Gemm/MatMul operand or an unfolded BN gamma/beta; everything else (BN running
statistics, Clip bounds, shapes) is a constant closed over by the jitted step.

``make_train_step(model, lr, momentum)`` returns ``(step, params, momentum)``
where ``step(params, momentum, x, label) -> (loss, params, momentum)`` is one
SGD step (PyTorch semantics, dampening 0: buf = m*buf + g; w -= lr*buf, with
buf starting at zero) on softmax cross-entropy of one sample, compiled with
``jax.jit`` and donating the parameter and momentum buffers.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import onnx
from jax import lax
from onnx import helper, numpy_helper

F32 = jnp.float32


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _pairs(pads, nsp: int) -> list[tuple[int, int]]:
    pads = list(pads) if pads else [0] * (2 * nsp)
    return [(int(pads[i]), int(pads[i + nsp])) for i in range(nsp)]


def _check_auto_pad(a: dict) -> None:
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise NotImplementedError("auto_pad")


# --------------------------------------------------------------------------
# BN folding, at the ONNX level
# --------------------------------------------------------------------------

def fold_batchnorm(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``model`` with every foldable Conv+BN pair replaced by one Conv."""
    g = model.graph
    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    uses: dict[str, int] = {}
    for n in g.node:
        for i in n.input:
            if i:
                uses[i] = uses.get(i, 0) + 1
    for o in g.output:
        uses[o.name] = uses.get(o.name, 0) + 1
    producer = {o: n for n in g.node for o in n.output}
    new_inits = dict(inits)
    drop: set[int] = set()
    rewired: dict[int, onnx.NodeProto] = {}
    for n in g.node:
        if n.op_type != "BatchNormalization" or _attrs(n).get("training_mode", 0):
            continue
        x = n.input[0]
        conv = producer.get(x)
        if conv is None or conv.op_type != "Conv" or uses.get(x, 0) != 1:
            continue
        bn_params = list(n.input[1:5])
        if not all(p in inits for p in bn_params):
            continue
        conv_params = [p for p in conv.input[1:] if p]
        if not all(p in inits and uses[p] == 1 for p in conv_params):
            continue
        eps = float(_attrs(n).get("epsilon", 1e-5))
        gamma, beta, mean, var = (inits[p].astype(np.float64) for p in bn_params)
        s = gamma / np.sqrt(var + eps)
        w_name = conv.input[1]
        w = inits[w_name]
        has_b = len(conv.input) > 2 and conv.input[2] != ""
        b = inits[conv.input[2]].astype(np.float64) if has_b else 0.0
        new_inits[w_name] = (w.astype(np.float64) * s.reshape(-1, 1, 1, 1)).astype(w.dtype)
        b_name = conv.input[2] if has_b else f"{bn_params[1]}.folded_bias"
        new_inits[b_name] = ((beta - mean * s) + b * s).astype(w.dtype)
        c = onnx.NodeProto()
        c.CopyFrom(rewired.get(id(conv), conv))
        del c.input[:]
        c.input.extend([conv.input[0], w_name, b_name])
        c.output[0] = n.output[0]
        rewired[id(conv)] = c
        drop.add(id(n))
        for p in bn_params:
            uses[p] -= 1
    nodes = [rewired.get(id(n), n) for n in g.node if id(n) not in drop]
    used = {i for n in nodes for i in n.input}
    graph = helper.make_graph(
        nodes, g.name, list(g.input), list(g.output),
        initializer=[numpy_helper.from_array(v, k) for k, v in new_inits.items() if k in used])
    out = helper.make_model(graph, opset_imports=list(model.opset_import))
    out.ir_version = model.ir_version
    return out


# --------------------------------------------------------------------------
# which initializers are trained
# --------------------------------------------------------------------------

_TRAINED_SLOTS = {"Conv": (1, 2), "Gemm": (0, 1, 2), "MatMul": (0, 1),
                  "BatchNormalization": (1, 2)}


def trainable_names(model: onnx.ModelProto) -> list[str]:
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    names: list[str] = []
    for n in model.graph.node:
        for k in _TRAINED_SLOTS.get(n.op_type, ()):
            if k < len(n.input) and n.input[k] in inits and n.input[k] not in names \
                    and np.issubdtype(inits[n.input[k]].dtype, np.floating):
                names.append(n.input[k])
    return names


# --------------------------------------------------------------------------
# ops (float32, NCHW / OIHW)
# --------------------------------------------------------------------------

def _conv(x, w, b, a):
    _check_auto_pad(a)
    nsp = x.ndim - 2
    y = lax.conv_general_dilated(
        x, w, window_strides=list(a.get("strides", [1] * nsp)),
        padding=_pairs(a.get("pads"), nsp), rhs_dilation=list(a.get("dilations", [1] * nsp)),
        dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=int(a.get("group", 1)))
    return y if b is None else y + b.reshape((1, -1) + (1,) * nsp)


def _window(x, a):
    _check_auto_pad(a)
    if a.get("ceil_mode", 0):
        raise NotImplementedError("ceil_mode")
    nsp = x.ndim - 2
    win = (1, 1, *a["kernel_shape"])
    strides = (1, 1, *a.get("strides", [1] * nsp))
    dil = (1, 1, *a.get("dilations", [1] * nsp))
    pads = [(0, 0), (0, 0)] + _pairs(a.get("pads"), nsp)
    return win, strides, dil, pads


def _maxpool(x, a):
    win, strides, dil, pads = _window(x, a)
    return lax.reduce_window(x, -jnp.inf, lax.max, win, strides, pads, window_dilation=dil)


def _avgpool(x, a):
    win, strides, dil, pads = _window(x, a)
    s = lax.reduce_window(x, 0.0, lax.add, win, strides, pads, window_dilation=dil)
    if a.get("count_include_pad", 0):
        return s / float(np.prod(win))
    # divisor: the number of real (unpadded) elements in each window, computed at trace time
    with jax.ensure_compile_time_eval():
        ones = jnp.ones((1, 1) + x.shape[2:], F32)
        cnt = lax.reduce_window(ones, 0.0, lax.add, win, strides, pads, window_dilation=dil)
    return s / cnt


def _clip(x, lo, hi):
    if lo is not None:
        x = jnp.maximum(x, lo)
    if hi is not None:
        x = jnp.minimum(x, hi)
    return x


def _eval(n: onnx.NodeProto, ins: list, consts: dict):
    op, a = n.op_type, _attrs(n)
    if op == "Conv":
        return _conv(ins[0], ins[1], ins[2] if len(ins) > 2 else None, a)
    if op == "Gemm":
        A, B = ins[0], ins[1]
        A = A.T if a.get("transA", 0) else A
        B = B.T if a.get("transB", 0) else B
        y = a.get("alpha", 1.0) * (A @ B)
        return y + a.get("beta", 1.0) * ins[2] if len(ins) > 2 else y
    if op == "MatMul":
        return ins[0] @ ins[1]
    if op == "BatchNormalization":
        x, gamma, beta, mean, var = ins
        sh = (1, -1) + (1,) * (x.ndim - 2)
        s = gamma / jnp.sqrt(var + a.get("epsilon", 1e-5))
        return x * s.reshape(sh) + (beta - mean * s).reshape(sh)
    if op == "Relu":
        return jnp.maximum(ins[0], 0.0)
    if op == "Clip":
        return _clip(ins[0], ins[1] if len(ins) > 1 else None, ins[2] if len(ins) > 2 else None)
    if op == "HardSwish":
        return ins[0] * _clip(ins[0] / 6.0 + 0.5, 0.0, 1.0)
    if op == "Sigmoid":
        return jax.nn.sigmoid(ins[0])
    if op in ("Add", "Sub", "Mul", "Div"):
        f = {"Add": jnp.add, "Sub": jnp.subtract, "Mul": jnp.multiply, "Div": jnp.divide}[op]
        return f(ins[0], ins[1])
    if op in ("Identity", "Dropout"):
        return ins[0]
    if op == "Concat":
        return jnp.concatenate(ins, axis=a["axis"])
    if op == "Flatten":
        ax = a.get("axis", 1)
        x = ins[0]
        return x.reshape((int(np.prod(x.shape[:ax])), -1))
    if op == "Reshape":
        shape = [int(s) for s in consts[n.input[1]]]
        shape = [ins[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
        return ins[0].reshape(shape)
    if op == "GlobalAveragePool":
        return jnp.mean(ins[0], axis=tuple(range(2, ins[0].ndim)), keepdims=True)
    if op == "MaxPool":
        return _maxpool(ins[0], a)
    if op == "AveragePool":
        return _avgpool(ins[0], a)
    raise NotImplementedError(f"benchmarks.jax_models: ONNX op {op}")


def forward_fn(model: onnx.ModelProto, trainable: list[str]):
    """forward(params, x) -> logits; params holds the trainable initializers."""
    consts = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer
              if t.name not in trainable}
    x_name, out_name = model.graph.input[0].name, model.graph.output[0].name
    nodes = list(model.graph.node)

    def forward(params, x):
        env = dict(consts)
        env.update(params)
        env[x_name] = x
        for n in nodes:
            ins = [env[i] if i else None for i in n.input]
            while ins and ins[-1] is None:
                ins.pop()
            env[n.output[0]] = _eval(n, ins, consts)
        return env[out_name]

    return forward


def make_train_step(model: onnx.ModelProto, *, lr: float, momentum: float,
                    fold_bn: bool = True):
    """(jitted step, initial params, zero momentum) for ``model``; see the module docstring."""
    if fold_bn:
        model = fold_batchnorm(model)
    names = trainable_names(model)
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    params = {k: jnp.asarray(inits[k], F32) for k in names}
    mom = {k: jnp.zeros(v.shape, F32) for k, v in params.items()}
    forward = forward_fn(model, names)

    def loss_fn(p, x, label):
        logp = jax.nn.log_softmax(forward(p, x), axis=-1)
        return -jnp.mean(jnp.take_along_axis(logp, label[:, None], axis=-1))

    def step(p, m, x, label):
        loss, g = jax.value_and_grad(loss_fn)(p, x, label)
        m = {k: momentum * m[k] + g[k] for k in p}
        p = {k: p[k] - lr * m[k] for k in p}
        return loss, p, m

    return jax.jit(step, donate_argnums=(0, 1)), params, mom
