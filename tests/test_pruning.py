"""The compiled training graph computes and keeps nothing it does not need (issue 5): walk
the graphs of the published schemes (and of full and bias-only updates of the ONNX test
models) and check pruning, the place of every in-place update and the 1-bit masks."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import tte
from tte.ir.graph import Graph
from tte.ir.types import DType, Role
from tte.ops.registry import get_op
from tte.sparse import conv_layers

from tests.models import MODELS

ROOT = Path(__file__).resolve().parents[1]
MODELS_DIR = ROOT.parent / "shared" / "models" / "mcu_imagenet"
SCHEMES = sorted((ROOT / "tte" / "schemes").glob("*.json"))
SIZE = 64


def _program(scheme: Path, **options) -> tte.Program:
    backbone = MODELS_DIR / f"{scheme.stem.rsplit('-', 1)[0]}.pkl"
    if not backbone.exists():
        pytest.skip(f"{backbone} not present")
    return tte.compile(backbone, num_classes=10, input_size=SIZE, update=scheme, **options)


def _programs() -> list:
    return [pytest.param(scheme, id=scheme.stem) for scheme in SCHEMES]


def unused_nodes(g: Graph) -> list[str]:
    """Nodes without an effect whose outputs nothing reads."""
    read = {i for n in g.nodes for i in n.inputs if i} | set(g.outputs)
    return [f"{n.op} -> {n.outputs}" for n in g.nodes
            if not get_op(n.op).mutates and not any(o in read for o in n.outputs)]


def updates(g: Graph) -> list[tuple[int, list[str]]]:
    """(node index, parameters it overwrites) of every in-place update."""
    out = []
    for i, n in enumerate(g.nodes):
        targets = [n.inputs[k] for k in get_op(n.op).mutates if k < len(n.inputs) and n.inputs[k]]
        if targets:
            out.append((i, targets))
    return out


@pytest.mark.parametrize("scheme", _programs())
def test_published_scheme_graph_is_pruned(scheme):
    prog = _program(scheme)
    g = prog.training_graph
    assert not unused_nodes(g)
    trained = set(prog.trainable)
    for i, targets in updates(g):
        assert set(targets) <= trained | {v for v in g.values if g.values[v].role is Role.state}
    # no weight gradient for a frozen weight, no input gradient before the first trained layer
    convs = conv_layers(prog.forward_graph)
    frozen = {c.inputs[1] for c in convs} - trained
    assert not [n for n in g.nodes if "grad_weight" in n.op and n.inputs[-1] in frozen]
    first = min(g.nodes.index(next(n for n in g.nodes if n.outputs and n.outputs[0] ==
                                   c.outputs[0]))
                for c in convs if set(c.inputs[1:3]) & trained)
    before = {o for n in g.nodes[:first] for o in n.outputs}
    assert not [n for n in g.nodes if n.op.endswith("grad_input") and n.outputs[0] in before]
    assert not [n for n in g.nodes if n.op.endswith("grad_input") and
                set(n.outputs) & {c.inputs[0] for c in convs[:1]}]


@pytest.mark.parametrize("scheme", _programs())
def test_updates_run_as_soon_as_their_gradient_exists(scheme):
    """Every update comes right after the last node it depends on (only other updates in
    between), every weight gradient is fused into its update (no gradient buffer), and
    everything that reads a parameter's old value runs before it is overwritten."""
    g = _program(scheme).training_graph
    producer = g.producers()
    assert not [n for n in g.nodes if n.op in ("conv2d_s8_grad_weight", "conv2d_grad_weight")]
    for i, targets in updates(g):
        node = g.nodes[i]
        deps = {producer[v] for v in node.inputs if v in producer}
        readers = {j for j, n in enumerate(g.nodes) if j != i and set(n.inputs) & set(targets)}
        assert all(j < i for j in readers), f"{node.op} overwrites a value read later"
        ready = max(deps | {j for j in readers if j < i})
        between = g.nodes[ready + 1:i]
        assert all(get_op(n.op).mutates for n in between), \
            f"{node.op} of {targets} waits {len(between)} nodes after its inputs are ready"


@pytest.mark.parametrize("scheme", _programs())
def test_masks_are_one_bit_per_element(scheme):
    g = _program(scheme).training_graph
    masks = [(n, n.outputs[1]) for n in g.nodes if n.op == "conv2d_s8" and len(n.outputs) > 1]
    assert masks
    for node, mask in masks:
        v = g.values[mask]
        assert v.dtype == DType.u8
        assert v.nbytes == -(-g.values[node.outputs[0]].size // 8)


def test_reordering_only_moves_updates():
    """reorder=False keeps the same computation with every update at the end: same nodes,
    larger arena, same training result in the reference interpreter."""
    scheme = SCHEMES[0]
    fast, slow = _program(scheme), _program(scheme, reorder=False)
    mutating = [i for i, n in enumerate(slow.training_graph.nodes) if get_op(n.op).mutates]
    assert mutating == list(range(len(slow.training_graph.nodes) - len(mutating),
                                  len(slow.training_graph.nodes)))
    assert fast.report()["memory"]["training_arena_bytes"] < \
        slow.report()["memory"]["training_arena_bytes"]
    a, b = fast.reference(), slow.reference()
    x = np.random.default_rng(0).uniform(-1, 1, (3, SIZE, SIZE)).astype(np.float32)
    assert a.train_step(x, 3) == b.train_step(x, 3)
    for name, value in a.params().items():
        np.testing.assert_array_equal(value, b.params()[name], err_msg=name)


@pytest.mark.parametrize("update", ["full", "bias"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_onnx_training_graphs_have_no_unused_node(name, update):
    prog = tte.compile(MODELS[name](), update=update)
    assert not unused_nodes(prog.training_graph)
    assert not unused_nodes(prog.forward_graph)
