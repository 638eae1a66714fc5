"""Cost of a training step on a target: the instructions each node took (a profiled firmware
run, FirmwareResult.node_instructions) beside its multiply-accumulates from the IR, summed
per layer kind and direction."""
from __future__ import annotations

from dataclasses import dataclass

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
    shape = node.attrs.get("weight_shape") or g.values[node.inputs[1]].shape
    o, cg, kh, kw = shape
    if cg == 1 and node.attrs.get("group", 1) == o and o > 1:
        return "depthwise"
    return "pointwise" if kh == kw == 1 else f"conv {kh}x{kw}"


@dataclass
class CostRow:
    kind: str
    direction: str
    nodes: int
    macs: int
    instructions: int

    @property
    def macs_per_instruction(self) -> float:
        return self.macs / self.instructions if self.instructions else 0.0


def cost_rows(g: Graph, node_instructions: dict[int, int]) -> list[CostRow]:
    """One row per (layer kind, direction), in order of first appearance."""
    rows: dict[tuple[str, str], CostRow] = {}
    for i, node in enumerate(g.nodes):
        key = (layer_kind(g, node), direction(node))
        row = rows.setdefault(key, CostRow(*key, 0, 0, 0))
        row.nodes += 1
        row.macs += node_macs(g, node)
        row.instructions += node_instructions.get(i, 0)
    return list(rows.values())
