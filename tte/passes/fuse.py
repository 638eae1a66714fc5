"""Fuse a weight or bias gradient with the SGD update that consumes it."""
from __future__ import annotations

from tte.ir.graph import Graph
from tte.ops.registry import all_ops
from tte.passes.core import schedule_updates_early


# update op -> suffix of the fused op: grad_op + suffix
UPDATE_SUFFIX = {"sgd_update": "_sgd", "sgd_update_q": "_sgd_q"}


def fuse_gradient_updates(g: Graph) -> None:
    """grad(x, gy) -> gw; sgd_update(w, gw, buf) becomes grad_sgd(x, gy, w, buf) at the
    update's place (likewise sgd_update_q -> grad_sgd_q), when a fused kernel exists and
    nothing else reads gw; then moves each fused node up to where its inputs are ready."""
    fusable = set(all_ops())
    uses = g.consumers()
    producer = g.producers()
    drop: set[int] = set()
    for node in g.nodes:
        if node.op not in UPDATE_SUFFIX:
            continue
        grad = node.inputs[1]
        j = producer.get(grad)
        if j is None or len(uses.get(grad, [])) != 1:
            continue
        src = g.nodes[j]
        fused = src.op + UPDATE_SUFFIX[node.op]
        if fused not in fusable:
            continue
        node.op = fused
        node.inputs = src.inputs + [node.inputs[0]] + node.inputs[2:]
        node.attrs = {**src.attrs, **node.attrs}
        del g.values[grad]
        drop.add(j)
    g.nodes = [n for k, n in enumerate(g.nodes) if k not in drop]
    schedule_updates_early(g)
