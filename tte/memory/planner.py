"""Arena planner: lifetimes from the schedule, in-place reuse, largest-first first-fit offsets."""
from __future__ import annotations

from dataclasses import dataclass, field

from tte.ir.graph import Graph
from tte.ir.types import Role
from tte.ops.registry import get_op

ALIGN = 8  # bytes; every buffer starts on this boundary


@dataclass
class Buffer:
    """One arena region shared by `values` (a value and the in-place results that reuse it)."""
    values: list[str]
    size: int       # bytes, aligned
    start: int      # index of the node that first writes it
    end: int        # index of the node that last reads it (len(nodes) for graph outputs)
    offset: int = -1

    def overlaps_in_time(self, other: "Buffer") -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclass
class MemoryPlan:
    arena_bytes: int
    lower_bound: int  # largest sum of sizes live at one node: no plan can be smaller
    buffers: list[Buffer]
    offsets: dict[str, int] = field(default_factory=dict)
    live: list[int] = field(default_factory=list)  # bytes live at each schedule slot

    def check(self) -> None:
        """No two buffers that are live at the same time may share a byte."""
        for i, a in enumerate(self.buffers):
            assert 0 <= a.offset and a.offset + a.size <= self.arena_bytes, a
            for b in self.buffers[i + 1:]:
                if a.overlaps_in_time(b):
                    assert a.offset + a.size <= b.offset or b.offset + b.size <= a.offset, \
                        f"buffers {a.values[0]} and {b.values[0]} overlap"


def _aligned(n: int) -> int:
    return (n + ALIGN - 1) // ALIGN * ALIGN


def _lifetimes(g: Graph) -> dict[str, list[int]]:
    span: dict[str, list[int]] = {}
    for i, node in enumerate(g.nodes):
        for o in node.outputs:
            span[o] = [i, i]
        for v in node.inputs:
            if v in span:
                span[v][1] = i
    for o in g.outputs:
        if o in span:
            span[o][1] = len(g.nodes)
    return span


def _group_in_place(g: Graph, span: dict[str, list[int]],
                    pinned: list[Buffer]) -> list[Buffer]:
    """Let an op's output take over its input's buffer when the op allows it and the
    input (with everything already sharing its buffer) dies at that op."""
    owner: dict[str, Buffer] = {b.values[0]: b for b in pinned}
    buffers: list[Buffer] = list(pinned)
    for i, node in enumerate(g.nodes):
        k = get_op(node.op).inplace
        for j, o in enumerate(node.outputs):
            v = g.values[o]
            # only the first output may take over the input, so two outputs never share
            src = node.inputs[k] if j == 0 and k is not None and k < len(node.inputs) else ""
            buf = owner.get(src)
            # exact sizes: a broadcast operand a few bytes smaller would be overwritten
            # while the op still reads it
            if buf is not None and buf.end == i and g.values[src].nbytes == v.nbytes \
                    and src not in g.outputs:
                buf.values.append(o)
                buf.end = span[o][1]
            else:
                buf = Buffer([o], _aligned(v.nbytes), *span[o])
                buffers.append(buf)
            owner[o] = buf
    return buffers


def place(buffers: list[Buffer], steps: int, pinned: tuple[Buffer, ...] = ()) -> MemoryPlan:
    """Offsets for buffers live over [start, end] of `steps` schedule slots: the pinned ones
    (among buffers, offsets already set) stay where they are; the others largest first, each
    at the lowest offset that fits between the buffers already placed and live with it."""
    placed: list[Buffer] = list(pinned)
    for buf in sorted((b for b in buffers if b not in pinned), key=lambda b: (-b.size, b.start)):
        offset = 0
        for other in sorted((p for p in placed if p.overlaps_in_time(buf)),
                            key=lambda p: p.offset):
            if offset + buf.size <= other.offset:
                break  # the gap below `other` is large enough
            offset = max(offset, other.offset + other.size)
        buf.offset = offset
        placed.append(buf)
    arena = max((b.offset + b.size for b in buffers), default=0)
    live = [0] * steps
    for b in buffers:
        for t in range(b.start, b.end + 1):
            live[t] += b.size
    plan = MemoryPlan(arena, max(live, default=0), sorted(buffers, key=lambda b: b.start),
                      {v: b.offset for b in buffers for v in b.values}, live)
    plan.check()
    return plan


def plan_memory(g: Graph) -> MemoryPlan:
    """Place every activation of g in one arena, and the sample (the graph's first input) at
    offset 0 until its last reader, so its bytes serve later layers as on an MCU where the
    camera writes into the arena; persistent values and the label live outside."""
    span = _lifetimes(g)
    sample = g.inputs[0] if g.inputs else ""
    readers = [i for i, n in enumerate(g.nodes) if sample and sample in n.inputs]
    pinned = [Buffer([sample], _aligned(g.values[sample].nbytes), 0, max(readers), offset=0)] \
        if readers else []
    buffers = [b for b in _group_in_place(g, span, pinned)
               if g.values[b.values[0]].role in (Role.activation, Role.input)]
    return place(buffers, len(g.nodes) + 1, tuple(pinned))

