"""A readable, diff-able text form of a graph."""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tte.ir.graph import Graph


def _attr(v: object) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_attr(x) for x in v) + "]"
    return str(v)


def format_graph(g: "Graph") -> str:
    lines = [f"graph {g.name}"]
    for name in g.inputs:
        lines.append(f"  {'input':<10}{name}: {g.values[name].type_str()}")
    for name, v in g.values.items():
        if v.role.persistent:
            part = v.meta.get("train_channels")
            extra = f" ({part['count']} channels trainable)" if part else ""
            lines.append(f"  {v.role.value:<10}{name}: {v.type_str()}{extra}")
    phase = None
    for n in g.nodes:
        if n.phase != phase:
            phase = n.phase
            lines.append(f"  # {phase}")
        attrs = ", ".join(f"{k}={_attr(v)}" for k, v in n.attrs.items())
        ins = ", ".join(i or "_" for i in n.inputs)
        lhs = ", ".join(f"{o}: {g.values[o].type_str()}" for o in n.outputs)
        call = f"{n.op}({ins})" + (f" {{{attrs}}}" if attrs else "")
        lines.append(f"  {lhs} = {call}" if lhs else f"  {call}")
    lines.append("  return " + ", ".join(g.outputs))
    return "\n".join(lines)
