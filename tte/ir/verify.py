"""Graph verifier, run after every pass: types, def-before-use, safe in-place updates,
unread kernel scratch."""
from __future__ import annotations

from tte.ir.graph import Graph
from tte.ops.registry import get_op


class VerifyError(AssertionError):
    pass


def verify(g: Graph) -> None:
    defined = {n for n, v in g.values.items() if v.role.persistent} | set(g.inputs)
    for name in defined:
        if g.values[name].role.persistent and g.values[name].role.value != "state" \
                and name not in g.data:
            raise VerifyError(f"persistent value {name} has no data")
    mutated_at: dict[str, int] = {}
    scratch: set[str] = set()
    for i, node in enumerate(g.nodes):
        where = f"node {i} ({node.op})"
        opdef = get_op(node.op)
        for v in node.inputs:
            if not v:
                continue
            if v not in defined:
                raise VerifyError(f"{where}: input {v} used before it is defined")
            if v in mutated_at:
                raise VerifyError(f"{where}: reads {v} after node {mutated_at[v]} updated it in place")
            if v in scratch:
                raise VerifyError(f"{where}: reads {v}, another op's kernel scratch")
        ins = [g.values[v] if v else None for v in node.inputs]
        types = opdef.infer(ins, node.attrs)
        if len(types) != len(node.outputs):
            raise VerifyError(f"{where}: {len(node.outputs)} outputs, op defines {len(types)}")
        for out, (shape, dtype) in zip(node.outputs, types):
            if out in defined:
                raise VerifyError(f"{where}: output {out} defined twice")
            val = g.values.get(out)
            if val is None or tuple(val.shape) != tuple(shape) or val.dtype != dtype:
                raise VerifyError(f"{where}: output {out} is {val and val.type_str()}, "
                                  f"shape rule gives {dtype.value}{list(shape)}")
            defined.add(out)
        scratch.update(node.outputs[k] for k in opdef.scratch if k < len(node.outputs))
        for k in opdef.mutates:
            target = node.inputs[k] if k < len(node.inputs) else ""
            if not target:
                continue  # optional state input not given
            if not g.values[target].role.persistent:
                raise VerifyError(f"{where}: updates non-persistent value {target} in place")
            if target in mutated_at:
                raise VerifyError(f"{where}: {target} updated twice")
            mutated_at[target] = i
    for out in g.outputs:
        if out not in defined:
            raise VerifyError(f"graph output {out} is never defined")
        if out in scratch:
            raise VerifyError(f"graph output {out} is an op's kernel scratch")
