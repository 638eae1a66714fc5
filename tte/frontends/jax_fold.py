"""Rewrites of a traced graph into the IR's layer ops, after the walk: conv2d / linear
followed by a bias add, and inference batch-norm written out in JAX, become one node each,
so they cost one buffer and update="bias" and the sparse-update schemes see JAX models'
biases as they see ONNX models'."""
from __future__ import annotations

import numpy as np

from tte.ir import Graph, Role
from tte.ir.graph import Node


def fold_layers(g: Graph) -> None:
    _fold_batch_norms(g)
    _fold_bias_adds(g)


def _fold_bias_adds(g: Graph) -> None:
    """conv2d or linear followed by `+ b` (b a parameter or constant along the channel
    axis) becomes the layer with its bias input: one node, and a bias that update="bias"
    and the sparse-update schemes see as one."""
    producers = {o: n for n in g.nodes for o in n.outputs}
    consumers = g.consumers()  # counts only: still right after a fold
    for node in [n for n in g.nodes if n.op == "add"]:
        for y, c in (node.inputs, node.inputs[::-1]):
            layer = producers.get(y)
            if (layer is None or layer.op not in ("conv2d", "linear") or len(consumers[y]) != 1
                    or y in g.outputs or any(layer.inputs[2:])):
                continue
            bias = _channel_vector(g, c, g.values[y].shape, producers)
            if bias is not None:
                layer.inputs[2:] = [bias]
                del g.values[y]
                layer.outputs = node.outputs
                g.nodes.remove(node)
                break


def _channel_vector(g: Graph, c: str, shape: tuple[int, ...],
                    producers: dict[str, Node]) -> str | None:
    """The 1-D parameter or constant that c holds along axis 1 of `shape` (directly or
    reshaped to 1s elsewhere), or None."""
    if not _along_channels(g.values[c].shape, shape):
        return None
    while c in producers and producers[c].op == "reshape":
        c = producers[c].inputs[0]
    return c if g.values[c].shape == (shape[1],) and c not in producers else None


def _along_channels(small: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """small broadcasts against `shape` along axis 1 only, with all of its extent."""
    full = (1,) * (len(shape) - len(small)) + tuple(small)
    return full == tuple(shape[1] if i == 1 else 1 for i in range(len(shape)))


def _const_channel(g: Graph, c: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """The per-channel numbers of a constant laid out along axis 1 of `shape`, or None."""
    if g.values[c].role != Role.const or not _along_channels(g.values[c].shape, shape):
        return None
    return g.data[c].reshape(shape[1]).astype(np.float32)


def _fold_batch_norms(g: Graph) -> None:
    """(x - mean) / d * scale + bias, mean and d constants per channel (d = sqrt(var + eps)
    folded at trace time) and scale, bias parameters, is batch_norm(x, scale, bias, mean,
    d * d) with epsilon 0. The mul, div and sub it replaces die (eliminate_dead_nodes)."""
    producers = {o: n for n in g.nodes for o in n.outputs}
    consumers = g.consumers()

    def only(v: str, op: str) -> Node | None:
        """The node making v, if it is `op` and nothing else reads v."""
        n = producers.get(v)
        ok = n is not None and n.op == op and len(consumers[v]) == 1 and v not in g.outputs
        return n if ok else None

    def batch_norm(node: Node) -> Node | None:
        shape = g.values[node.outputs[0]].shape
        for product, b in (node.inputs, node.inputs[::-1]):
            mul, bias = only(product, "mul"), _channel_vector(g, b, shape, producers)
            for quotient, s in (mul.inputs, mul.inputs[::-1]) if mul and bias else ():
                div, scale = only(quotient, "div"), _channel_vector(g, s, shape, producers)
                sub = only(div.inputs[0], "sub") if div and scale else None
                if sub is None:
                    continue
                d = _const_channel(g, div.inputs[1], shape)
                mean = _const_channel(g, sub.inputs[1], shape)
                if d is None or mean is None:
                    continue
                stats = [g.add_param(g.fresh(f"{bias}.{k}"), v, Role.const)
                         for k, v in (("mean", mean), ("var", d * d))]
                return Node("batch_norm", [sub.inputs[0], scale, bias, *stats], node.outputs,
                            {"epsilon": 0.0})
        return None

    for i, node in enumerate(g.nodes):
        if node.op == "add" and len(g.values[node.outputs[0]].shape) >= 2:
            g.nodes[i] = batch_norm(node) or node
