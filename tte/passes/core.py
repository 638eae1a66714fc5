"""Dead-node elimination and early placement of in-place updates."""
from __future__ import annotations

from typing import Callable

from tte.ir.graph import Graph
from tte.ir.types import Role
from tte.ir.verify import verify
from tte.ops.registry import get_op

Pass = Callable[[Graph], None]


def run_passes(g: Graph, passes: list[Pass]) -> Graph:
    verify(g)
    for p in passes:
        p(g)
        verify(g)
    return g


def eliminate_dead_nodes(g: Graph) -> None:
    """Drop nodes whose results nothing reads (updates have effects and always stay), and
    the constants only they read (a C `static const` nothing uses fails -Werror)."""
    live = set(g.outputs)
    kept = []
    for node in reversed(g.nodes):
        if get_op(node.op).mutates or any(o in live for o in node.outputs):
            kept.append(node)
            live.update(i for i in node.inputs if i)
        else:
            for o in node.outputs:
                del g.values[o]
    g.nodes = kept[::-1]
    for name in [n for n, v in g.values.items() if v.role == Role.const and n not in live]:
        del g.values[name]
        g.data.pop(name, None)


def schedule_updates_early(g: Graph) -> None:
    """Place each in-place update right after its last input is ready and the last read of
    the value it overwrites, so gradient buffers die as soon as possible."""
    updates = [n for n in g.nodes if get_op(n.op).mutates]
    rest = [n for n in g.nodes if not get_op(n.op).mutates]
    for upd in updates:
        deps = {i for i in upd.inputs if i}
        overwritten = {upd.inputs[k] for k in get_op(upd.op).mutates
                       if k < len(upd.inputs) and upd.inputs[k]}
        last = -1
        for idx, node in enumerate(rest):
            if deps & set(node.outputs) or overwritten & set(node.inputs):
                last = idx
        rest.insert(last + 1, upd)
    g.nodes = rest
