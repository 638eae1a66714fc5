"""The arena planner: placement of random buffers, and the plans of the six test models.

Every property is checked here from first principles (byte ranges, lifetimes recomputed
from the node list), not only through MemoryPlan.check().
"""
from __future__ import annotations

import functools
import statistics

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import tte
from tests.models import MODELS
from tte.ir.graph import Graph
from tte.ir.types import Role
from tte.memory import ALIGN, Buffer, MemoryPlan, place, plan_memory
from tte.ops.registry import get_op

STEPS = 61          # lifetimes lie within schedule slots 0..60
MAX_SIZE = 4096     # bytes before alignment


def aligned(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


# --- independent checks on a list of placed buffers ------------------------------------

def live_sums(spans: list[tuple[int, int, int]], steps: int) -> list[int]:
    """Bytes live at each slot, for (size, start, end) triples with inclusive ends."""
    return [sum(size for size, s, e in spans if s <= t <= e) for t in range(steps)]


def assert_no_overlap(buffers: list[Buffer], arena: int) -> None:
    for b in buffers:
        assert b.offset >= 0 and b.offset % ALIGN == 0, b
        assert b.offset + b.size <= arena, b
    for i, a in enumerate(buffers):
        for b in buffers[i + 1:]:
            same_time = max(a.start, b.start) <= min(a.end, b.end)
            same_bytes = max(a.offset, b.offset) < min(a.offset + a.size, b.offset + b.size)
            assert not (same_time and same_bytes), (a, b)


def make_buffers(problem: list[tuple[int, int, int]]) -> list[Buffer]:
    """(raw size, one end, other end) -> buffers with aligned sizes and ordered lifetimes."""
    return [Buffer([f"b{i}"], aligned(size), min(t0, t1), max(t0, t1))
            for i, (size, t0, t1) in enumerate(problem)]


PROBLEM = st.lists(st.tuples(st.integers(1, MAX_SIZE), st.integers(0, STEPS - 1),
                             st.integers(0, STEPS - 1)), max_size=40)


@settings(max_examples=400, deadline=None)
@given(PROBLEM)
def test_place_random_buffers(problem):
    buffers = make_buffers(problem)
    spans = [(b.size, b.start, b.end) for b in buffers]
    plan = place(buffers, STEPS)
    # every buffer placed, once, keeping its size and lifetime
    assert sorted(b.values[0] for b in plan.buffers) == sorted(b.values[0] for b in buffers)
    assert sorted((b.size, b.start, b.end) for b in plan.buffers) == sorted(spans)
    assert plan.offsets == {b.values[0]: b.offset for b in buffers}
    assert_no_overlap(plan.buffers, plan.arena_bytes)
    assert plan.arena_bytes == max((b.offset + b.size for b in buffers), default=0)
    lower = max(live_sums(spans, STEPS), default=0)
    assert plan.lower_bound == lower
    assert plan.arena_bytes >= plan.lower_bound
    # a buffer alone at its time never needs more than its own size
    assert plan.arena_bytes <= sum(b.size for b in buffers)


def test_place_simple_cases():
    assert place([], STEPS).arena_bytes == 0 and place([], STEPS).lower_bound == 0
    # disjoint lifetimes: all at offset 0, arena = largest
    bufs = [Buffer([f"b{t}"], 8 * (t + 1), t, t) for t in range(10)]
    plan = place(bufs, STEPS)
    assert {b.offset for b in bufs} == {0} and plan.arena_bytes == plan.lower_bound == 80
    # all live together: stacked, arena = sum = lower bound
    bufs = [Buffer([f"b{i}"], 16 * (i + 1), 0, 5) for i in range(4)]
    plan = place(bufs, STEPS)
    assert plan.arena_bytes == plan.lower_bound == 160
    assert_no_overlap(bufs, plan.arena_bytes)


def test_check_rejects_overlapping_buffers():
    a, b = Buffer(["a"], 16, 0, 3, offset=0), Buffer(["b"], 16, 3, 5, offset=8)
    with pytest.raises(AssertionError):
        MemoryPlan(24, 32, [a, b]).check()
    b.offset = 16  # same time, disjoint bytes
    MemoryPlan(32, 32, [a, b]).check()


def random_problem(rng: np.random.Generator) -> list[tuple[int, int, int]]:
    n = int(rng.integers(1, 41))
    return [(int(rng.integers(1, MAX_SIZE + 1)), int(rng.integers(0, STEPS)),
             int(rng.integers(0, STEPS))) for _ in range(n)]


def test_arena_over_lower_bound_statistics(capsys):
    """Information, not a threshold: how far largest-first first-fit is from the bound."""
    rng = np.random.default_rng(20240611)
    ratios = []
    for _ in range(500):
        buffers = make_buffers(random_problem(rng))
        plan = place(buffers, STEPS)
        assert_no_overlap(buffers, plan.arena_bytes)
        assert plan.arena_bytes >= plan.lower_bound > 0
        ratios.append(plan.arena_bytes / plan.lower_bound)
    qs = np.quantile(ratios, [0.5, 0.9, 0.99])
    models = {}
    for name in MODELS:
        for config in CONFIGS:
            p = plan_memory(compiled(name, config).training_graph)
            models[f"{name}/{config}"] = p.arena_bytes / p.lower_bound
    with capsys.disabled():
        print(f"\narena/lower bound over 500 random problems (1-40 buffers, 1-{MAX_SIZE} B, "
              f"lifetimes in 0..{STEPS - 1}): mean {statistics.mean(ratios):.4f}, "
              f"median {qs[0]:.4f}, p90 {qs[1]:.4f}, p99 {qs[2]:.4f}, max {max(ratios):.4f}, "
              f"at the bound {sum(r == 1 for r in ratios) / len(ratios):.0%}")
        print("arena/lower bound of the six models' training steps (update full or bias): "
              + ", ".join(f"{k} {v:.4f}" for k, v in models.items()))


# --- the six models -----------------------------------------------------------------

CONFIGS = {"full": dict(update="full"),
           "bias_momentum": dict(update="bias",
                                 optimizer={"name": "sgd", "lr": 0.01, "momentum": 0.9})}


@functools.lru_cache(maxsize=None)
def compiled(model: str, config: str):
    return tte.compile(MODELS[model](), **CONFIGS[config])


def lifetimes(g: Graph) -> dict[str, tuple[int, int]]:
    """[first write, last read] of the sample (written before node 0) and of every node
    output, from the node list alone."""
    born = {o: i for i, node in enumerate(g.nodes) for o in node.outputs}
    born[g.inputs[0]] = 0
    last = dict(born)
    for i, node in enumerate(g.nodes):
        for v in node.inputs:
            if v in born:
                last[v] = max(last[v], i)
    for o in g.outputs:
        if o in born:
            last[o] = len(g.nodes)
    return {v: (born[v], last[v]) for v in born}


def in_place_source(g: Graph, producer: int, out: str) -> str | None:
    """The input `out` may legally share with: the op's `inplace` input, dying at producer."""
    node = g.nodes[producer]
    k = get_op(node.op).inplace
    if k is None or k >= len(node.inputs) or not node.inputs[k]:
        return None
    return node.inputs[k]


GRAPHS = [(m, c, which) for m in MODELS for c in CONFIGS for which in ("training", "forward")]


@pytest.mark.parametrize("model,config,which", GRAPHS)
def test_model_plan(model, config, which):
    prog = compiled(model, config)
    g = prog.training_graph if which == "training" else prog.forward_graph
    plan = plan_memory(g)
    span = lifetimes(g)
    arena_values = {v for v in span if g.values[v].role in (Role.activation, Role.input)}
    size = {v: aligned(g.values[v].nbytes) for v in arena_values}
    off = plan.offsets
    assert off[g.inputs[0]] == 0  # where the generated input() points

    # every arena value has an aligned offset inside the arena, and nothing else has one
    assert set(off) == arena_values
    for v in arena_values:
        assert off[v] >= 0 and off[v] % ALIGN == 0 and off[v] + size[v] <= plan.arena_bytes, v

    # in-place sharing: only along an op's `inplace` input, which dies at that node
    shared_with: dict[str, str] = {}  # value -> the input whose bytes it took over
    for buf in plan.buffers:
        for a, b in zip(buf.values, buf.values[1:]):
            i = span[b][0]
            assert in_place_source(g, i, b) == a, (g.nodes[i].op, a, b)
            assert span[a][1] == i and a not in g.outputs, f"{a} shared with {b} but lives on"
            assert size[a] == size[b] == buf.size
            shared_with[b] = a

    # no two values live at the same node share a byte, except such an in-place hand-over
    vals = sorted(arena_values)
    for x, v in enumerate(vals):
        for w in vals[x + 1:]:
            if max(off[v], off[w]) >= min(off[v] + size[v], off[w] + size[w]):
                continue  # disjoint bytes
            (s1, e1), (s2, e2) = span[v], span[w]
            if max(s1, s2) > min(e1, e2):
                continue  # disjoint lifetimes
            assert shared_with.get(w) == v or shared_with.get(v) == w, \
                f"{v} {span[v]} and {w} {span[w]} live together on overlapping bytes"

    # the lower bound is the peak of live bytes (an in-place source hands over its bytes)
    ends = {v: span[v][1] - (1 if v in shared_with.values() else 0) for v in arena_values}
    live = live_sums([(size[v], span[v][0], ends[v]) for v in arena_values], len(g.nodes) + 1)
    assert plan.lower_bound == max(live, default=0)
    assert plan.arena_bytes >= plan.lower_bound


@pytest.mark.parametrize("model", MODELS)
def test_model_plan_takes_every_in_place_chance(model):
    """Where an op allows it and its input dies there (same size), the output reuses it."""
    g = compiled(model, "full").training_graph
    plan, span = plan_memory(g), lifetimes(g)
    taken = 0
    for i, node in enumerate(g.nodes):
        if not node.outputs:
            continue
        out = node.outputs[0]
        src = in_place_source(g, i, out)
        if (src in plan.offsets and span[src][1] == i and src not in g.outputs
                and g.values[src].nbytes == g.values[out].nbytes):
            assert plan.offsets[out] == plan.offsets[src], (node.op, src, out)
            taken += 1
    assert taken > 0


def test_no_in_place_over_a_smaller_broadcast_operand():
    """add(s[1], x[2]) may not write over s: 4 and 8 bytes round to the same 8-byte buffer,
    but the kernel reads s[0] again after writing y[0]."""
    g = Graph("bcast")
    x = g.add_input("x", (2,))
    s = g.emit("reduce_sum", [x], {"axes": [0], "keepdims": 1})
    y = g.emit("add", [s, g.emit("neg", [x])])
    g.outputs = [y]
    plan = plan_memory(g)
    assert plan.offsets[y] != plan.offsets[s]


def test_sample_written_into_the_arena_needs_no_copy():
    """input() points at the sample's arena place: a step on a sample written there equals
    a step on a caller's buffer, and the report counts the sample in the arena only."""
    prog = compiled("lenet", "full")
    runner, ref = prog.build(), prog.reference()
    g = prog.forward_graph
    x = np.random.default_rng(0).standard_normal(g.values[g.inputs[0]].shape).astype(np.float32)
    fn = runner._fn
    ffi = runner.ffi
    ffi.memmove(fn("input")(), x.tobytes(), x.nbytes)
    loss = np.zeros(1, np.float32)
    assert fn("train_step")(fn("input")(), 3, ffi.cast("float *", loss.ctypes.data)) == 0
    assert loss[0] == pytest.approx(ref.train_step(x, 3), rel=1e-6)
    assert runner.train_step(x, 1) == pytest.approx(ref.train_step(x, 1), rel=1e-6)
    memory = prog.report()["memory"]
    assert memory["sram"]["inputs"] == 4  # the label
