"""report.json: what the compiled training step contains and where its bytes go."""
from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING

from tte.ir.types import Role

if TYPE_CHECKING:
    from tte.program import Program


def program_report(prog: "Program") -> dict:
    g = prog.training_graph
    tensors = [{"name": v.name, "shape": list(v.shape), "dtype": v.dtype.value,
                "role": v.role.value, "bytes": v.nbytes}
               for v in g.values.values() if v.role.persistent]

    def total(*roles: Role) -> int:
        return sum(v.nbytes for v in g.values.values() if v.role in roles)

    return {
        "model": g.name,
        "target": prog.target,
        "loss": prog.loss,
        "optimizer": prog.optimizer,
        "inputs": {n: list(g.values[n].shape) for n in g.inputs},
        "nodes": dict(Counter(n.phase for n in g.nodes)),
        "trainable": prog.trainable,
        "bytes": {
            "frozen_parameters": total(Role.frozen, Role.const),
            "trainable_parameters": total(Role.trainable, Role.partial),
            "optimizer_state": total(Role.state),
            # no memory planner yet: every intermediate counted as if all were live at once
            "activations_unplanned": total(Role.activation),
        },
        "tensors": tensors,
    }
