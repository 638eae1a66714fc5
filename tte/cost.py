"""What each node of a training step computes, for cost tables: its direction (forward,
input/weight/bias gradient, ...), the kind of layer it belongs to and its
multiply-accumulates (OpDef.macs)."""
from __future__ import annotations

from tte.ir.graph import Graph, Node
from tte.ops.registry import get_op, node_macs

# kernel names are tte_<op>[_<direction>]_<type> (kernels_c/tte_common.h), so are IR ops
_DIRECTIONS = (("_grad_input", "input gradient"), ("_grad_weight", "weight gradient"),
               ("channel_sum", "bias gradient"))


def direction(node: Node) -> str:
    """forward, input/weight/bias gradient (a fused gradient+update counts as its gradient),
    loss, update, or backward for the other backward nodes (masks, activation gradients)."""
    for key, name in _DIRECTIONS:
        if key in node.op:
            return name
    return node.phase


def layer_kind(g: Graph, node: Node) -> str:
    """depthwise / pointwise / conv KxK / linear for MAC ops, else the op's name."""
    if get_op(node.op).macs is None:
        return node.op
    if node.op.startswith("linear"):
        return "linear"
    o, cg, kh, kw = node.attrs.get("weight_shape") or g.values[node.inputs[1]].shape
    if cg == 1 and node.attrs.get("group", 1) == o and o > 1:
        return "depthwise"
    return "pointwise" if kh == kw == 1 else f"conv {kh}x{kw}"


def node_costs(g: Graph) -> list[dict]:
    """Per node in schedule order: {"layer", "direction", "macs"}."""
    return [{"layer": layer_kind(g, n), "direction": direction(n), "macs": node_macs(g, n)}
            for n in g.nodes]
