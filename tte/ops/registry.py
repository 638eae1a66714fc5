"""The op registry: one entry per op keeps its shape rule, numpy reference, VJP and C kernel."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from tte.errors import TTEError
from tte.ir.types import DType, Value

TypeRule = Callable[[list[Value | None], dict], list[tuple[tuple[int, ...], DType]]]
RefFn = Callable[..., Sequence[np.ndarray]]
# vjp(graph, node, output_cotangents, needs) -> one cotangent name (or None) per input.
VjpRule = Callable[[Any, Any, list[str | None], list[bool]], list[str | None]]
# macs(inputs, outputs, attrs) -> multiply-accumulates of one call
MacsRule = Callable[[list[Value | None], list[Value], dict], int]


@dataclass(frozen=True)
class OpDef:
    name: str
    infer: TypeRule
    ref: RefFn                  # ref(*input_arrays, **attrs) -> list of output arrays
    vjp: VjpRule | None = None  # None: not differentiable (backward/update ops, integer ops)
    kernel: str | None = None   # C kernel family, e.g. "tte_conv2d" -> tte_conv2d_f32
    attrs: dict[str, Any] = field(default_factory=dict)  # attribute names and defaults
    mutates: tuple[int, ...] = ()  # inputs updated in place; ref returns their new contents
    inplace: int | None = None  # input whose buffer the output may reuse (same size, dies here)
    scratch: tuple[int, ...] = ()  # outputs that are kernel scratch: bytes at this node, no reader
    # multiply-accumulates of one call, from input and output types and the attributes
    # (None: not a MAC op); a gradient counts the MACs of the forward terms it differentiates
    macs: MacsRule | None = None
    doc: str = ""

    def full_attrs(self, given: dict) -> dict:
        unknown = set(given) - set(self.attrs)
        if unknown:
            raise ValueError(f"op {self.name}: unknown attributes {sorted(unknown)}")
        return {**self.attrs, **given}


_REGISTRY: dict[str, OpDef] = {}


def register(opdef: OpDef) -> OpDef:
    if opdef.name in _REGISTRY:
        raise ValueError(f"op {opdef.name} registered twice")
    _REGISTRY[opdef.name] = opdef
    return opdef


def get_op(name: str) -> OpDef:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise TTEError(f"unknown IR op {name!r}") from None


def node_macs(g: Any, node: Any) -> int:
    """Multiply-accumulates of one node of graph g (0 for ops without a MAC rule)."""
    rule = get_op(node.op).macs
    if rule is None:
        return 0
    ins = [g.values[v] if v else None for v in node.inputs]
    return rule(ins, [g.values[v] for v in node.outputs], node.attrs)


def all_ops() -> dict[str, OpDef]:
    return dict(sorted(_REGISTRY.items()))


def same_as(index: int = 0) -> TypeRule:
    """Shape rule: one output with the type of input `index`."""
    def rule(ins: list[Value | None], attrs: dict) -> list[tuple[tuple[int, ...], DType]]:
        return [(ins[index].shape, ins[index].dtype)]
    return rule
