"""Compile-time reverse-mode autodiff: append VJP nodes to a graph."""
from __future__ import annotations

from tte.errors import UnsupportedError
from tte.ir.graph import Graph
from tte.ops.registry import get_op


def depends_on(g: Graph, sources: set[str]) -> set[str]:
    """Values whose computation reads any of `sources` (including the sources)."""
    reached = set(sources)
    for node in g.nodes:
        if any(i in reached for i in node.inputs if i):
            reached.update(node.outputs)
    return reached


def append_backward(g: Graph, seeds: dict[str, str | None], wrt: set[str]) -> dict[str, str]:
    """Append the backward pass to g and return {value in wrt: gradient value}.

    seeds maps an output to its cotangent value; None seeds a scalar loss with 1.
    Only inputs on a path from `wrt` get gradients, so nothing unneeded is computed.
    """
    active = depends_on(g, wrt)
    contribs: dict[str, list[str]] = {}
    seeded: set[str] = set()
    for out, ct in seeds.items():
        if ct is None:
            seeded.add(out)
        else:
            contribs[out] = [ct]

    def total(name: str) -> str | None:
        parts = contribs.pop(name, [])
        while len(parts) > 1:  # accumulate fan-out in pairs
            parts = [g.emit("add", [parts[0], parts[1]], name_hint=f"grad.{name}")] + parts[2:]
        if parts:
            contribs[name] = parts
        return parts[0] if parts else None

    for node in reversed(list(g.nodes)):
        gys = [total(o) for o in node.outputs]
        is_seed = any(o in seeded for o in node.outputs)
        if not is_seed and all(ct is None for ct in gys):
            continue
        needs = [bool(i) and i in active for i in node.inputs]
        if not any(needs):
            continue
        opdef = get_op(node.op)
        if opdef.vjp is None:
            raise UnsupportedError(f"op {node.op} (producing {node.outputs[0]}) is not "
                                   "differentiable, but a trained parameter lies before it")
        for inp, need, ct in zip(node.inputs, needs, opdef.vjp(g, node, gys, needs)):
            if need and ct is not None:
                contribs.setdefault(inp, []).append(ct)
    return {w: grad for w in wrt if (grad := total(w)) is not None}
