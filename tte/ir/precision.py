"""Run a float graph in half precision: every f32 value becomes f16, its data rounded; and
how each half kernel sums (accumulate)."""
from __future__ import annotations

import numpy as np

from tte.errors import TTEError
from tte.ir.graph import Graph, Node
from tte.ir.types import DType
from tte.ops.registry import get_op, node_macs

ACCUMULATE = ("fp16", "fp32", "auto")
# "auto" sums in float where a sum has more terms than this: the rounding error of a half
# sum of K terms grows up to about K * 2^-11 of its magnitude (3% at 64), while a float
# accumulator keeps it at one final rounding (2^-11) for any K
AUTO_MAX_HALF_TERMS = 64


def to_fp16(fwd: Graph, accumulate: str = "fp16") -> Graph:
    """A copy of the forward graph with f16 activations and parameters (so its gradients,
    updates and optimizer state are f16 too). accumulate: how f16 kernels sum, in a half
    accumulator ("fp16", PULP-TrainLib's choice), in float ("fp32"), or chosen per node by
    the length of its sums ("auto", see accumulate_fp32)."""
    if accumulate not in ACCUMULATE:
        raise TTEError(f"accumulate={accumulate!r}: choose one of {ACCUMULATE}")
    if any(v.dtype not in (DType.f32, DType.i32) or v.quant is not None
           for v in fwd.values.values()):
        raise TTEError("precision='fp16' converts float models; this one has int8 tensors "
                       "(an MCU backbone converts from precision='fp32' weights)")
    g = fwd.copy()
    g.accumulate = accumulate
    for name, v in g.values.items():
        if v.dtype == DType.f32:
            v.dtype = DType.f16
            if name in g.data:
                g.data[name] = g.data[name].astype(np.float16)
    return g


def sum_terms(g: Graph, node: Node) -> int:
    """Terms per output element of a summing node: its MACs (or, for a plain sum such as a
    channel sum or pooling, its input elements) over the elements it writes (for a fused
    gradient+update: the trained elements of the parameter it updates)."""
    total = node_macs(g, node) or g.values[node.inputs[0]].size
    if node.outputs:
        written = g.values[node.outputs[0]].size
    else:
        p = g.values[node.inputs[get_op(node.op).mutates[0]]]
        part = p.meta.get("train_channels")
        written = p.size if part is None else p.size // p.shape[part["axis"]] * part["count"]
    return -(-total // max(written, 1))


def accumulate_fp32(g: Graph, node: Node) -> bool:
    """Whether half kernel `node` keeps its running sums in float."""
    if g.accumulate == "auto":
        return sum_terms(g, node) > AUTO_MAX_HALF_TERMS
    return g.accumulate == "fp32"
